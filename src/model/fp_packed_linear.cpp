// auto_round floating-point linears (layout: fp_packed_linear.h): packing a QuantizedWeight into
// AutoRound's tensors and reading them back. Facts from AutoRound 0.16.1's qlinear_fp.py and
// export_to_fp8.py (tensor names, dtypes, nibble order), checked against its own output files.
#include "model/fp_packed_linear.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <optional>

#include "core/dtype.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "quant/fp_formats.h"
#include "quant/scheme.h"

namespace ar {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

bool fp4_codes(DataType t) { return t == DataType::MXFP4 || t == DataType::NVFP4; }
bool fp8_scales(DataType t) { return t == DataType::FP8 || t == DataType::FP8Block; }
int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

Buffer bytes_of(const void* p, size_t n, const std::string& name) {
  Buffer b(n, name);
  if (n) std::memcpy(b.data(), p, n);
  return b;
}

}  // namespace

std::string autoround_fp_shape_problem(const QuantScheme& s, int64_t in, int64_t out) {
  AR_CHECK(s.is_fp(), "autoround_fp_shape_problem: ", scheme_label(s), " is not a floating-point scheme");
  if ((s.data_type == DataType::MXFP4 || s.data_type == DataType::MXFP8 || s.data_type == DataType::NVFP4) &&
      in % s.group_size != 0)
    return cat("in_features ", in, " is not a multiple of the ", data_type_name(s.data_type), " block ", s.group_size);
  (void)out;
  return {};
}

std::vector<TensorSpec> autoround_fp_tensor_specs(const std::string& linear, const QuantScheme& s, int64_t in,
                                                  int64_t out) {
  const int64_t ng = num_groups(s, in);
  switch (s.data_type) {
    case DataType::MXFP4:
      return {{linear + ".weight_packed", DType::U8, {out, in / 2}}, {linear + ".weight_scale", DType::U8, {out, ng}}};
    case DataType::MXFP8:
      return {{linear + ".weight", DType::F8_E4M3, {out, in}}, {linear + ".weight_scale", DType::U8, {out, ng}}};
    case DataType::NVFP4:
      return {{linear + ".weight_global_scale", DType::F32, {1}},
              {linear + ".weight_packed", DType::U8, {out, in / 2}},
              {linear + ".weight_scale", DType::F8_E4M3, {out, ng}}};
    case DataType::FP8:
      return {{linear + ".weight", DType::F8_E4M3, {out, in}}, {linear + ".weight_scale", DType::F32, {out}}};
    case DataType::FP8Block:
      return {{linear + ".weight", DType::F8_E4M3, {out, in}},
              {linear + ".weight_scale_inv", DType::F32, {ceil_div(out, kFp8BlockSize), ng}}};
    case DataType::Int: break;
  }
  AR_CHECK(false, "autoround_fp_tensor_specs: ", scheme_label(s));
  return {};
}

std::vector<Buffer> pack_autoround_fp(const QuantizedWeight& q) {
  const std::string problem = autoround_fp_shape_problem(q.scheme, q.in, q.out);
  AR_CHECK(problem.empty(), "pack_autoround_fp: ", problem);
  AR_CHECK(q.sizes_match(), "pack_autoround_fp: QuantizedWeight sizes do not match its shape");
  const DataType t = q.scheme.data_type;
  Buffer codes;
  if (fp4_codes(t)) {
    codes = Buffer(q.codes.size() / 2, "weight_packed");
    uint8_t* p = codes.as<uint8_t>();
    for (size_t k = 0; k < q.codes.size() / 2; ++k)
      p[k] = uint8_t((q.codes[2 * k] & 15u) | ((q.codes[2 * k + 1] & 15u) << 4));
  } else {
    codes = bytes_of(q.codes.data(), q.codes.size(), "weight");
  }
  std::vector<Buffer> r;
  if (t == DataType::NVFP4) r.push_back(bytes_of(&q.global_scale, 4, "weight_global_scale"));
  r.push_back(std::move(codes));
  if (fp8_scales(t)) r.push_back(bytes_of(q.scales_f32.data(), q.scales_f32.size() * 4, "weight_scale"));
  else r.push_back(bytes_of(q.scale_codes.data(), q.scale_codes.size(), "weight_scale"));
  return r;
}

bool has_fp_packed_linear(const SafetensorsReader& st, const std::string& name) {
  return st.find(name + ".weight_scale") || st.find(name + ".weight_packed") || st.find(name + ".weight_scale_inv");
}

QuantizedWeight read_fp_packed_linear(const SafetensorsReader& st, const std::string& name, int64_t in, int64_t out,
                                      const std::string& declared_data_type, int declared_bits) {
  const std::string src = st.source_path().string();
  auto file_of = [&](const TensorInfo& t) { return st.file_path(t.file_index).string(); };
  const TensorInfo* packed = st.find(name + ".weight_packed");
  const TensorInfo* weight = st.find(name + ".weight");
  const TensorInfo* scale = st.find(name + ".weight_scale");
  const TensorInfo* scale_inv = st.find(name + ".weight_scale_inv");
  const TensorInfo* global = st.find(name + ".weight_global_scale");
  // The data type, from the tensors present.
  DataType t;
  if (scale_inv) t = DataType::FP8Block;
  else if (global) t = DataType::NVFP4;
  else if (packed) t = DataType::MXFP4;
  else if (!scale) AR_THROW(src, ": linear '", name, "': no weight_scale / weight_scale_inv tensor");
  else if (scale->dtype == DType::U8) t = DataType::MXFP8;
  else t = DataType::FP8;
  const QuantScheme s = fp_scheme(t);
  if (!declared_data_type.empty()) {
    const std::optional<ParsedDataType> d = parse_autoround_data_type(declared_data_type);
    const TypeFamily fam = t == DataType::MXFP4 || t == DataType::MXFP8 ? TypeFamily::MxFp
                           : t == DataType::NVFP4                      ? TypeFamily::NvFp
                                                                       : TypeFamily::Fp;
    const int bits = declared_bits ? declared_bits : d && d->bits ? *d->bits : s.bits;
    if (!d || d->family != fam || bits != s.bits)
      AR_THROW(src, ": linear '", name, "' holds ", data_type_name(t), " tensors but quantization_config declares "
               "data_type '", declared_data_type, "' with ", bits, " bits");
  }
  auto require = [&](const TensorInfo* ti, const char* suffix, std::initializer_list<DType> dts,
                     std::vector<int64_t> shape) -> const TensorInfo& {
    const std::string tname = name + suffix;
    if (!ti) AR_THROW(src, ": tensor '", tname, "' is missing (", data_type_name(t), " linear '", name, "')");
    bool ok_dtype = false;
    std::string want;
    for (DType d : dts) {
      ok_dtype = ok_dtype || ti->dtype == d;
      want += (want.empty() ? "" : "/") + std::string(dtype_name(d));
    }
    if (!ok_dtype || ti->shape != shape)
      AR_THROW(file_of(*ti), ": tensor '", tname, "' is ", dtype_name(ti->dtype), " ", shape_str(ti->shape),
               ", expected ", want, " ", shape_str(shape), " for ", data_type_name(t), " (in ", in, ", out ", out, ")");
    return *ti;
  };
  const std::string problem = autoround_fp_shape_problem(s, in, out);
  if (!problem.empty()) AR_THROW(src, ": linear '", name, "' (", data_type_name(t), "): ", problem);
  QuantizedWeight q = QuantizedWeight::allocate(s, out, in);
  const int64_t ng = q.n_groups;
  auto nan_error = [&](const TensorInfo& ti, size_t idx, const char* what) {
    AR_THROW(file_of(ti), ": tensor '", ti.name, "' element ", idx, " is a NaN ", what);
  };
  if (fp4_codes(t)) {
    const TensorInfo& p = require(packed, ".weight_packed", {DType::U8}, {out, in / 2});
    std::vector<uint8_t> b(size_t(out * in / 2));
    st.read(p, b.data());
    for (size_t k = 0; k < b.size(); ++k) {
      q.codes[2 * k] = b[k] & 15u;
      q.codes[2 * k + 1] = b[k] >> 4;
    }
  } else {
    const TensorInfo& w = require(weight, ".weight", {DType::F8_E4M3}, {out, in});
    st.read(w, q.codes.data());
    for (size_t k = 0; k < q.codes.size(); ++k)
      if ((q.codes[k] & 0x7f) == 0x7f) nan_error(w, k, "E4M3 code");
  }
  switch (t) {
    case DataType::MXFP4:
    case DataType::MXFP8: {
      const TensorInfo& sc = require(scale, ".weight_scale", {DType::U8}, {out, ng});
      st.read(sc, q.scale_codes.data());
      for (size_t k = 0; k < q.scale_codes.size(); ++k)
        if (q.scale_codes[k] == 255) nan_error(sc, k, "E8M0 scale");
      break;
    }
    case DataType::NVFP4: {
      const TensorInfo& sc = require(scale, ".weight_scale", {DType::F8_E4M3}, {out, ng});
      st.read(sc, q.scale_codes.data());
      for (size_t k = 0; k < q.scale_codes.size(); ++k)
        if ((q.scale_codes[k] & 0x7f) == 0x7f) nan_error(sc, k, "E4M3 scale");
      const TensorInfo& g = require(global, ".weight_global_scale", {DType::F32, DType::BF16, DType::F16}, {1});
      st.read_f32(g, &q.global_scale);
      if (!std::isfinite(q.global_scale))
        AR_THROW(file_of(g), ": tensor '", g.name, "' is ", q.global_scale, ", not a finite global scale");
      break;
    }
    case DataType::FP8:
    case DataType::FP8Block: {
      const TensorInfo* sc = t == DataType::FP8 ? scale : scale_inv;
      const char* suffix = t == DataType::FP8 ? ".weight_scale" : ".weight_scale_inv";
      std::vector<int64_t> shape = t == DataType::FP8 ? std::vector<int64_t>{out} : std::vector<int64_t>{q.scale_rows(), ng};
      if (t == DataType::FP8 && sc && sc->shape == std::vector<int64_t>{out, 1}) shape = {out, 1};  // unsqueezed
      const TensorInfo& si = require(sc, suffix, {DType::F32, DType::BF16, DType::F16}, shape);
      st.read_f32(si, q.scales_f32.data());
      for (size_t k = 0; k < q.scales_f32.size(); ++k)
        if (!std::isfinite(q.scales_f32[k]))
          AR_THROW(file_of(si), ": tensor '", si.name, "' element ", k, " is ", q.scales_f32[k], ", not a finite scale");
      break;
    }
    case DataType::Int: break;
  }
  return q;
}

void load_fp_packed_linear_weight(float* w, const SafetensorsReader& st, const std::string& name, int64_t in,
                                  int64_t out) {
  const std::filesystem::path cfg_path = st.file_path(0).parent_path() / "config.json";
  const ModelConfig c = load_model_config(cfg_path);
  const std::string where = cfg_path.string() + ": quantization_config";
  if (c.quantization_config.empty())
    AR_THROW(cfg_path.string(), ": '", name, "' is stored in a floating-point format but config.json has no "
             "quantization_config");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(c.quantization_config);
  } catch (const nlohmann::json::exception& e) {
    AR_THROW(where, " is not valid JSON: ", e.what());
  }
  const std::string method = j.is_object() ? j.value("quant_method", std::string()) : std::string();
  if (method != "auto-round" && method != "intel/auto-round")
    AR_THROW(where, ": quant_method '", method, "' with floating-point tensors ('", name,
             ".weight_scale') is not supported (this reader handles AutoRound's auto_round format)");
  std::string dt = j.value("data_type", std::string());
  int bits = j.contains("bits") && j["bits"].is_number_integer() ? j["bits"].get<int>() : 0;
  if (j.contains("extra_config") && j["extra_config"].is_object() && j["extra_config"].contains(name)) {
    const nlohmann::json& e = j["extra_config"][name];
    if (e.is_object()) {
      if (e.contains("data_type") && e["data_type"].is_string()) {
        dt = e["data_type"].get<std::string>();
        bits = 0;
      }
      if (e.contains("bits") && e["bits"].is_number_integer()) bits = e["bits"].get<int>();
    }
  }
  if (dt.empty()) AR_THROW(where, ": no data_type for the floating-point linear '", name, "'");
  const QuantizedWeight q = read_fp_packed_linear(st, name, in, out, dt, bits);
  q.dequantize(w);
}

}  // namespace ar
