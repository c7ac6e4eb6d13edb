// Reading GPTQ-packed linears (auto_round / auto_gptq checkpoints) back into f32 weights, and the
// bit-stream packing both the exporter and this reader use. Layout: see packed_linear.h (AutoGPTQ v1).
#include "model/packed_linear.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <regex>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/config.h"

namespace ar {

namespace {

bool supported_bits(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// Regex search that treats an invalid pattern as "no match" (names are tried literally first).
bool regex_matches(const std::string& pattern, const std::string& name) {
  try {
    return std::regex_search(name, std::regex(pattern));
  } catch (const std::regex_error&) {
    return false;
  }
}

PackedScheme parse_layer_scheme(const nlohmann::json& j, const PackedScheme& base, const std::string& where) {
  PackedScheme s = base;
  if (!j.is_object()) AR_THROW(where, ": expected an object");
  if (j.contains("bits")) {
    if (!j["bits"].is_number_integer()) AR_THROW(where, ": 'bits' is not an integer");
    s.bits = j["bits"].get<int>();
  }
  if (j.contains("group_size")) {
    if (!j["group_size"].is_number_integer()) AR_THROW(where, ": 'group_size' is not an integer");
    s.group_size = j["group_size"].get<int64_t>();
  }
  if (j.contains("sym") && j["sym"].is_boolean()) s.sym = j["sym"].get<bool>();
  if (j.contains("data_type") && j["data_type"].is_string()) {
    const std::string dt = j["data_type"].get<std::string>();
    // 16-bit float layers are declared either by bits >= 16 or by a float data_type.
    if (dt == "float" || dt == "fp" || dt == "fp16" || dt == "bf16" || dt == "float16") s.bits = 16;
    else if (dt != "int" && s.bits < 16) AR_THROW(where, ": data_type '", dt, "' is not supported (only int)");
  }
  if (s.bits < 16 && !supported_bits(s.bits)) AR_THROW(where, ": bits ", s.bits, " is not supported (2, 3, 4, 8)");
  if (s.group_size == 0 || s.group_size < -1) AR_THROW(where, ": group_size ", s.group_size, " is invalid");
  return s;
}

}  // namespace

int64_t gptq_packed_words(int bits, int64_t n) {
  AR_CHECK(supported_bits(bits) && n >= 0 && (n * bits) % 32 == 0, "cannot pack ", n, " values of ", bits, " bits");
  return n * bits / 32;
}

void gptq_pack_values(uint32_t* words, const uint8_t* v, int64_t n, int bits) {
  const int64_t nw = gptq_packed_words(bits, n);
  for (int64_t w = 0; w < nw; ++w) words[w] = 0;
  const uint32_t mask = (1u << bits) - 1u;
  uint32_t all = 0;  // OR of every value: one range check instead of one per value
  if (32 % bits == 0) {  // 2, 4, 8 bits: whole values per word
    const int per = 32 / bits;
    for (int64_t w = 0; w < nw; ++w) {
      uint32_t word = 0;
      for (int j = 0; j < per; ++j) {
        all |= v[w * per + j];
        word |= uint32_t(v[w * per + j]) << (bits * j);
      }
      words[w] = word;
    }
    AR_CHECK((all & ~mask) == 0, "a value does not fit in ", bits, " bits");
    return;
  }
  for (int64_t k = 0; k < n; ++k) {
    all |= v[k];
    const int64_t bit = k * bits;
    const int64_t w = bit / 32;
    const int off = int(bit % 32);
    words[w] |= uint32_t(v[k]) << off;
    if (off + bits > 32) words[w + 1] |= uint32_t(v[k]) >> (32 - off);  // 3-bit values straddle words
  }
  AR_CHECK((all & ~mask) == 0, "a value does not fit in ", bits, " bits");
}

void gptq_unpack_values(uint8_t* v, const uint32_t* words, int64_t n, int bits) {
  const int64_t nw = gptq_packed_words(bits, n);
  const uint64_t mask = (1u << bits) - 1u;
  if (32 % bits == 0) {
    const int per = 32 / bits;
    for (int64_t w = 0; w < nw; ++w)
      for (int j = 0; j < per; ++j) v[w * per + j] = uint8_t((words[w] >> (bits * j)) & mask);
    return;
  }
  for (int64_t k = 0; k < n; ++k) {
    const int64_t bit = k * bits;
    const int64_t w = bit / 32;
    const int off = int(bit % 32);
    uint64_t window = words[w];
    if (w + 1 < nw) window |= uint64_t(words[w + 1]) << 32;
    v[k] = uint8_t((window >> off) & mask);
  }
}

PackedScheme PackedQuantConfig::scheme_for(const std::string& linear_name) const {
  for (const std::string& re : not_converted)
    if (re == linear_name || regex_matches(re, linear_name)) return PackedScheme{16, scheme.group_size, scheme.sym};
  for (const auto& [key, s] : overrides)
    if (key == linear_name) return s;
  for (const auto& [key, s] : overrides)
    if (regex_matches(key, linear_name)) return s;
  return scheme;
}

PackedQuantConfig parse_packed_quant_config(const std::string& json_text, const std::string& source) {
  const std::string where = source + ": quantization_config";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    AR_THROW(where, " is not valid JSON: ", e.what());
  }
  if (!j.is_object()) AR_THROW(where, " is not an object");
  PackedQuantConfig qc;
  qc.quant_method = j.value("quant_method", std::string());
  qc.packing_format = j.value("packing_format", std::string());
  // quant_method "awq" (AutoAWQ, and AutoRound's / our auto_awq format): the GEMM layout below.
  const bool awq_method = qc.quant_method == "awq";
  if (qc.quant_method != "auto-round" && qc.quant_method != "intel/auto-round" && qc.quant_method != "gptq" &&
      !awq_method)
    AR_THROW(where, ": quant_method '", qc.quant_method,
             "' is not supported (this reader handles 'auto-round', 'gptq' and 'awq' packed checkpoints)");
  if (awq_method) {
    // AutoAWQ's own spelling of the fields (w_bit, q_group_size) next to transformers' (bits, group_size).
    if (!j.contains("bits") && j.contains("w_bit")) j["bits"] = j["w_bit"];
    if (!j.contains("group_size") && j.contains("q_group_size")) j["group_size"] = j["q_group_size"];
    const std::string version = j.value("version", std::string("gemm"));
    if (version != "gemm" && version != "GEMM")
      AR_THROW(where, ": AWQ version '", version, "' is not supported (only the GEMM packing)");
  }
  // Only the GPTQ layout is read; AWQ packs another order, and the fp8/mx formats are not integer.
  // "auto_round" (what AutoRound writes for asymmetric int schemes) is the GPTQ layout with the
  // zeros stored as they are, like "auto_round:gptqmodel".
  const bool plain_auto_round = qc.packing_format == "auto_round";
  qc.awq = qc.packing_format == "auto_round:auto_awq" || awq_method;
  if (!qc.packing_format.empty() && !plain_auto_round && !qc.awq && qc.packing_format.find("gptq") == std::string::npos)
    AR_THROW(where, ": packing_format '", qc.packing_format, "' is not supported (only GPTQ-style packing)");
  if (j.contains("backend") && j["backend"].is_string()) {
    const std::string b = j["backend"].get<std::string>();
    if (b.find("awq") != std::string::npos && !qc.awq)
      AR_THROW(where, ": backend '", b, "' (AWQ packing) is not supported");
  }
  if (j.value("checkpoint_format", std::string()) == "gptq_v2") qc.zeros_minus_one = false;
  if (qc.packing_format.find("gptqmodel") != std::string::npos || plain_auto_round || qc.awq)
    qc.zeros_minus_one = false;
  PackedScheme base;
  base.sym = true;
  qc.scheme = parse_layer_scheme(j, base, where);
  if (!j.contains("bits")) AR_THROW(where, ": 'bits' is missing");
  if (qc.scheme.bits >= 16) AR_THROW(where, ": default bits ", qc.scheme.bits, " is not a quantized width");
  if (j.contains("extra_config") && j["extra_config"].is_object())
    for (const auto& [name, v] : j["extra_config"].items())
      qc.overrides.emplace_back(name, parse_layer_scheme(v, qc.scheme, where + ".extra_config['" + name + "']"));
  if (j.contains("modules_to_not_convert") && j["modules_to_not_convert"].is_array())
    for (const auto& v : j["modules_to_not_convert"])
      if (v.is_string()) qc.not_converted.push_back(v.get<std::string>());
  // gptqmodel's "dynamic": {"-:regex": {}} excludes layers, "+:regex" / "regex" overrides them.
  if (j.contains("dynamic") && j["dynamic"].is_object())
    for (const auto& [key, v] : j["dynamic"].items()) {
      if (key.rfind("-:", 0) == 0) qc.not_converted.push_back(key.substr(2));
      else
        qc.overrides.emplace_back(key.rfind("+:", 0) == 0 ? key.substr(2) : key,
                                  parse_layer_scheme(v, qc.scheme, where + ".dynamic['" + key + "']"));
    }
  return qc;
}

bool has_packed_linear(const SafetensorsReader& st, const std::string& name) {
  return st.find(name + ".qweight") != nullptr;
}

void load_packed_linear_weight(float* w, const SafetensorsReader& st, const PackedQuantConfig& qc,
                               const std::string& name, int64_t in, int64_t out) {
  const PackedScheme s = qc.scheme_for(name);
  const std::string src = st.source_path().string();
  if (s.bits >= 16)
    AR_THROW(src, ": '", name, ".qweight' is present but quantization_config keeps '", name, "' unquantized");
  const int bits = s.bits;
  if ((in * bits) % 32 != 0 || (out * bits) % 32 != 0)
    AR_THROW(src, ": linear '", name, "' (in ", in, ", out ", out, ") cannot be stored with ", bits, "-bit packing");
  const int64_t group = s.group_size == -1 ? in : s.group_size;
  const int64_t n_groups = (in + group - 1) / group;

  auto require = [&](const std::string& tname, DType dt, std::vector<int64_t> shape) -> const TensorInfo& {
    const TensorInfo& t = st.require(tname);
    if (t.dtype != dt || t.shape != shape)
      AR_THROW(st.file_path(t.file_index).string(), ": tensor '", tname, "' is ", dtype_name(t.dtype), " ",
               shape_str(t.shape), ", expected ", dtype_name(dt), " ", shape_str(shape), " for ", bits,
               "-bit group ", s.group_size, " (in ", in, ", out ", out, ")");
    return t;
  };
  auto require_scales = [&]() -> const TensorInfo& {
    const TensorInfo& t = st.require(name + ".scales");
    if (t.shape != std::vector<int64_t>{n_groups, out} ||
        !(t.dtype == DType::F16 || t.dtype == DType::BF16 || t.dtype == DType::F32))
      AR_THROW(st.file_path(t.file_index).string(), ": tensor '", t.name, "' is ", dtype_name(t.dtype), " ",
               shape_str(t.shape), ", expected F16 ", shape_str({n_groups, out}));
    return t;
  };
  if (qc.awq) {
    // AutoAWQ GEMM layout: word c of input row i holds outputs 8c..8c+7, output 8c+j in nibble
    // kSlot[j]; qzeros (n_groups, out/8) the same way; groups run along the inputs.
    if (bits != 4) AR_THROW(src, ": linear '", name, "': AWQ packing is read for 4 bits, not ", bits);
    static constexpr int kSlot[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    const int64_t wc = out / 8;
    const TensorInfo& qweight = require(name + ".qweight", DType::I32, {in, wc});
    const TensorInfo& qzeros = require(name + ".qzeros", DType::I32, {n_groups, wc});
    std::vector<float> scales(static_cast<size_t>(n_groups * out));
    st.read_f32(require_scales(), scales.data());
    std::vector<uint32_t> qw(static_cast<size_t>(in * wc)), zw(static_cast<size_t>(n_groups * wc));
    st.read(qweight, qw.data());
    st.read(qzeros, zw.data());
    for (int64_t o = 0; o < out; ++o) {
      const int64_t c = o / 8;
      const unsigned shift = 4u * unsigned(kSlot[o % 8]);
      float* wr = w + o * in;
      for (int64_t i = 0; i < in; ++i) {
        const int64_t g = i / group;
        const int q = int((qw[size_t(i * wc + c)] >> shift) & 15u), z = int((zw[size_t(g * wc + c)] >> shift) & 15u);
        wr[i] = scales[size_t(g * out + o)] * float(q - z);
      }
    }
    return;
  }
  const int64_t qw_rows = gptq_packed_words(bits, in), qz_cols = gptq_packed_words(bits, out);
  const TensorInfo& qweight = require(name + ".qweight", DType::I32, {qw_rows, out});
  const TensorInfo& qzeros = require(name + ".qzeros", DType::I32, {n_groups, qz_cols});
  const TensorInfo& scales_t = require_scales();

  std::vector<int32_t> g_idx(static_cast<size_t>(in));
  if (const TensorInfo* gi = st.find(name + ".g_idx")) {
    require(gi->name, DType::I32, {in});
    st.read(*gi, g_idx.data());
    for (int64_t i = 0; i < in; ++i)
      if (g_idx[size_t(i)] < 0 || g_idx[size_t(i)] >= n_groups)
        AR_THROW(st.file_path(gi->file_index).string(), ": tensor '", gi->name, "' entry ", i, " = ",
                 g_idx[size_t(i)], " is outside [0, ", n_groups, ")");
  } else {
    for (int64_t i = 0; i < in; ++i) g_idx[size_t(i)] = int32_t(i / group);
  }

  std::vector<float> scales(static_cast<size_t>(n_groups * out));
  st.read_f32(scales_t, scales.data());
  // zeros (n_groups, out), unpacked row by row; v1 stores (zero - 1) & mask, so add 1 back mod 2^bits
  // (a zero of 0 wraps to the all-ones slot and comes back as 0; GPTQ kernels would read 2^bits).
  std::vector<uint32_t> zwords(static_cast<size_t>(n_groups * qz_cols));
  st.read(qzeros, zwords.data());
  std::vector<uint8_t> zeros(static_cast<size_t>(n_groups * out));
  const unsigned mask = (1u << bits) - 1u;
  for (int64_t g = 0; g < n_groups; ++g) {
    uint8_t* zr = zeros.data() + g * out;
    gptq_unpack_values(zr, zwords.data() + g * qz_cols, out, bits);
    if (qc.zeros_minus_one)
      for (int64_t o = 0; o < out; ++o) zr[o] = uint8_t((zr[o] + 1u) & mask);
  }
  zwords = {};

  std::vector<uint32_t> qw(static_cast<size_t>(qw_rows * out));
  st.read(qweight, qw.data());
  // Columns gathered kTile at a time (the packed words of one column are `out` apart).
  constexpr int64_t kTile = 64;
  std::vector<uint32_t> cols(static_cast<size_t>(kTile * qw_rows));
  std::vector<uint8_t> codes(static_cast<size_t>(in));
  for (int64_t o0 = 0; o0 < out; o0 += kTile) {
    const int64_t nt = std::min(kTile, out - o0);
    for (int64_t r = 0; r < qw_rows; ++r)
      for (int64_t t = 0; t < nt; ++t) cols[size_t(t * qw_rows + r)] = qw[size_t(r * out + o0 + t)];
    for (int64_t t = 0; t < nt; ++t) {
      const int64_t o = o0 + t;
      gptq_unpack_values(codes.data(), cols.data() + t * qw_rows, in, bits);
      float* wr = w + o * in;
      for (int64_t i = 0; i < in; ++i) {
        const size_t gz = size_t(int64_t(g_idx[size_t(i)]) * out + o);
        // Same expression as QuantizedWeight::dequantize, so a round trip is exact.
        wr[i] = scales[gz] * float(int(codes[size_t(i)]) - int(zeros[gz]));
      }
    }
  }
}

void load_packed_linear_weight(float* w, const SafetensorsReader& st, const std::string& name, int64_t in,
                               int64_t out) {
  const std::filesystem::path cfg_path = st.file_path(0).parent_path() / "config.json";
  const ModelConfig c = load_model_config(cfg_path);
  if (c.quantization_config.empty())
    AR_THROW(cfg_path.string(), ": '", name, ".qweight' is packed but config.json has no quantization_config");
  load_packed_linear_weight(w, st, parse_packed_quant_config(c.quantization_config, cfg_path.string()), name, in,
                            out);
}

}  // namespace ar
