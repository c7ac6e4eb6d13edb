// Reading compressed-tensors linears (llm_compressor checkpoints) back into f32 weights, the
// quantization_config rules that pick each layer's scheme, and the bit streams of pack-quantized.
// Layouts: see compressed_tensors_linear.h.
#include "model/compressed_tensors_linear.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <initializer_list>
#include <regex>

#include "core/dtype.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "quant/fp_formats.h"

namespace ar {

namespace {

using nlohmann::json;

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

std::string dtype_names(std::initializer_list<DType> dts) {
  std::string r;
  for (DType d : dts) r += (r.empty() ? "" : "/") + std::string(dtype_name(d));
  return r;
}

int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

// Python's re.match: the pattern must match at the start of the name (not necessarily to its end).
// An invalid pattern matches nothing.
bool regex_match_start(const std::string& pattern, const std::string& name) {
  try {
    return std::regex_search(name, std::regex(pattern), std::regex_constants::match_continuous);
  } catch (const std::regex_error&) {
    return false;
  }
}

bool is_regex_target(const std::string& t) { return t.rfind("re:", 0) == 0; }

bool name_matches(const std::string& target, const std::string& name) {
  return is_regex_target(target) ? regex_match_start(target.substr(3), name) : target == name;
}

// Every linear we read is a torch.nn.Linear; vLLM's LinearBase counts as one too.
bool class_matches(const std::string& target) { return target == "Linear" || target == "LinearBase"; }

std::vector<std::string> string_list(const json& j, const std::string& where) {
  std::vector<std::string> r;
  if (j.is_null()) return r;
  if (!j.is_array()) AR_THROW(where, ": expected a list of strings");
  for (const json& v : j) {
    if (!v.is_string()) AR_THROW(where, ": expected a list of strings");
    r.push_back(v.get<std::string>());
  }
  return r;
}

// The format compressed-tensors would pick for these weights when the config names none
// (compressors/format.py: infer_module_format, for weight-only schemes).
std::string inferred_format(const std::string& type, int bits, int64_t group_size, const json& w) {
  if (type == "int") return "pack-quantized";
  if (bits == 4 && group_size == 32) return "mxfp4-pack-quantized";
  if (bits == 4 && group_size == 16) return "nvfp4-pack-quantized";
  if (bits == 8 && group_size == 32 && w.value("scale_dtype", json()).is_string() &&
      w["scale_dtype"].get<std::string>().find("uint8") != std::string::npos)
    return "mxfp8-quantized";
  return "float-quantized";
}

CtLayerScheme parse_group_scheme(const json& g, const std::string& top_format, const std::string& where) {
  CtLayerScheme s;
  if (!g.is_object()) AR_THROW(where, ": expected an object");
  const json w = g.value("weights", json());
  if (w.is_null()) return s;  // activation-only group: weights stay as they are
  if (!w.is_object()) AR_THROW(where, ".weights: expected an object");
  if (!w.contains("num_bits") || !w["num_bits"].is_number_integer()) AR_THROW(where, ".weights: 'num_bits' missing or not an integer");
  s.bits = w["num_bits"].get<int>();
  const std::string type = w.value("type", json("int")).is_string() ? w.value("type", std::string("int")) : "";
  if (type != "int" && type != "float") AR_THROW(where, ".weights: type '", w.value("type", json()).dump(), "' is not int or float");
  s.sym = w.value("symmetric", json(true)).is_boolean() ? w.value("symmetric", true) : true;
  const json gs = w.value("group_size", json());
  if (!gs.is_null() && !gs.is_number_integer()) AR_THROW(where, ".weights: 'group_size' is not an integer");
  const int64_t group_size = gs.is_null() ? 0 : gs.get<int64_t>();
  const json bs = w.value("block_structure", json());
  if (!bs.is_null()) {
    if (!bs.is_array() || bs.size() != 2 || !bs[0].is_number_integer() || !bs[1].is_number_integer() ||
        bs[0].get<int64_t>() <= 0 || bs[1].get<int64_t>() <= 0)
      AR_THROW(where, ".weights: block_structure ", bs.dump(), " is not [rows, cols]");
    s.block_rows = bs[0].get<int64_t>();
    s.block_cols = bs[1].get<int64_t>();
  }
  const json st = w.value("strategy", json());
  if (!st.is_null() && !st.is_string()) AR_THROW(where, ".weights: 'strategy' is not a string");
  // compressed-tensors' default: group when a group size is given, block with a block structure.
  s.strategy = st.is_string() ? st.get<std::string>() : group_size > 0 ? "group" : !bs.is_null() ? "block" : "tensor";
  if (s.strategy == "group" || s.strategy == "tensor_group") {
    if (group_size <= 0) AR_THROW(where, ".weights: strategy ", s.strategy, " needs a positive group_size");
    s.group_size = group_size;
  } else if (s.strategy == "block") {
    if (bs.is_null()) AR_THROW(where, ".weights: strategy block needs block_structure");
  } else if (s.strategy != "channel" && s.strategy != "tensor") {
    AR_THROW(where, ".weights: strategy '", s.strategy, "' is not supported for weights");
  }
  const json f = g.value("format", json());
  std::string format = f.is_string() ? f.get<std::string>() : top_format;
  if (format.empty() || format == "mixed-precision") format = inferred_format(type, s.bits, group_size, w);
  s.format = format;
  auto need = [&](bool ok, const char* what) {
    if (!ok) AR_THROW(where, ": format ", format, " with ", type, " ", s.bits, "-bit weights, strategy ", s.strategy,
                      group_size > 0 ? cat(" group_size ", group_size) : std::string(), ": ", what);
  };
  if (format == "pack-quantized") {
    need(type == "int" && s.bits >= 1 && s.bits <= 8, "pack-quantized holds 1..8-bit integers");
    need(s.strategy == "group" || s.strategy == "channel" || s.strategy == "tensor", "strategy not supported");
    need(s.sym || s.strategy != "tensor", "asymmetric per-tensor packing is not supported");
    s.layout = CtLayout::PackQuantized;
  } else if (format == "nvfp4-pack-quantized" || format == "mxfp4-pack-quantized") {
    const bool nv = format[0] == 'n';
    need(type == "float" && s.bits == 4 && s.group_size == (nv ? 16 : 32) && s.sym,
         nv ? "NVFP4 is symmetric 4-bit float in groups of 16" : "MXFP4 is symmetric 4-bit float in groups of 32");
    s.layout = nv ? CtLayout::Nvfp4 : CtLayout::Mxfp4;
  } else if (format == "mxfp8-quantized") {
    need(type == "float" && s.bits == 8 && s.group_size == 32 && s.sym, "MXFP8 is symmetric 8-bit float in groups of 32");
    s.layout = CtLayout::Mxfp8;
  } else if (format == "float-quantized" || format == "naive-quantized") {
    need(type == "float" && s.bits == 8 && s.sym, "only symmetric FP8 (E4M3) weights are read in this format");
    need(s.strategy != "tensor_group", "strategy not supported");
    s.layout = CtLayout::Float;
  } else {
    AR_THROW(where, ": format '", format,
             "' is not supported (this reader handles pack-quantized, nvfp4-pack-quantized, mxfp4-pack-quantized, "
             "mxfp8-quantized, float-quantized and naive-quantized)");
  }
  s.quantized = true;
  return s;
}

}  // namespace

// ---- bit streams ---------------------------------------------------------------------------------

int64_t ct_packed_words(int bits, int64_t n) {
  AR_CHECK(bits >= 1 && bits <= 8 && n >= 0, "cannot pack ", n, " values of ", bits, " bits");
  return ceil_div(n * bits, 32);
}

void ct_pack_bits(uint32_t* words, const uint8_t* v, int64_t n, int bits) {
  const int64_t nw = ct_packed_words(bits, n);
  std::fill(words, words + nw, 0u);
  const uint32_t mask = (1u << bits) - 1u;
  uint32_t all = 0;  // OR of every value: one range check instead of one per value
  for (int64_t k = 0; k < n; ++k) {
    all |= v[k];
    const int64_t bit = k * bits;
    const int off = int(bit % 32);
    words[bit / 32] |= uint32_t(v[k]) << off;
    if (off + bits > 32) words[bit / 32 + 1] |= uint32_t(v[k]) >> (32 - off);  // straddles two words
  }
  AR_CHECK((all & ~mask) == 0, "a value does not fit in ", bits, " bits");
}

void ct_unpack_bits(uint8_t* v, const uint32_t* words, int64_t n, int bits) {
  const int64_t nw = ct_packed_words(bits, n);
  const uint64_t mask = (1u << bits) - 1u;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t bit = k * bits, w = bit / 32;
    uint64_t window = words[w];
    if (w + 1 < nw) window |= uint64_t(words[w + 1]) << 32;
    v[k] = uint8_t((window >> (bit % 32)) & mask);
  }
}

// ---- quantization_config -------------------------------------------------------------------------

CtLayerScheme CtQuantConfig::scheme_for(const std::string& linear_name) const {
  for (const std::string& t : ignore)
    if (name_matches(t, linear_name) || class_matches(t)) return {};
  // compressed-tensors (quantization/lifecycle/apply.py): target -> group, a later group taking a
  // target string over; among the matching targets exact names win, then regexes (sorted), then
  // the class name.
  std::vector<std::pair<std::string, const Group*>> by_target;
  for (const Group& g : groups)
    for (const std::string& t : g.targets) {
      auto it = std::find_if(by_target.begin(), by_target.end(), [&](const auto& p) { return p.first == t; });
      if (it != by_target.end()) it->second = &g;
      else by_target.emplace_back(t, &g);
    }
  std::sort(by_target.begin(), by_target.end(), [](const auto& a, const auto& b) {
    return std::make_pair(is_regex_target(a.first), a.first) < std::make_pair(is_regex_target(b.first), b.first);
  });
  for (const auto& [t, g] : by_target)
    if (name_matches(t, linear_name)) return g->scheme;
  for (const auto& [t, g] : by_target)
    if (class_matches(t)) return g->scheme;
  return {};
}

bool is_ct_quant_config(const std::string& json_text) {
  try {
    const json j = json::parse(json_text);
    return j.is_object() && j.value("quant_method", json()).is_string() &&
           j["quant_method"].get<std::string>() == "compressed-tensors";
  } catch (const json::exception&) {
    return false;
  }
}

CtQuantConfig parse_ct_quant_config(const std::string& json_text, const std::string& source) {
  const std::string where = source + ": quantization_config";
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    AR_THROW(where, " is not valid JSON: ", e.what());
  }
  if (!j.is_object()) AR_THROW(where, " is not an object");
  if (j.value("quant_method", json()) != json("compressed-tensors"))
    AR_THROW(where, ": quant_method ", j.value("quant_method", json()).dump(), " is not \"compressed-tensors\"");
  const json sparsity = j.value("sparsity_config", json());
  if (sparsity.is_object() && !sparsity.empty() && sparsity.value("format", std::string("dense")) != "dense")
    AR_THROW(where, ": sparse checkpoints (sparsity_config format ", sparsity.value("format", json()).dump(),
             ") are not supported");
  const json tr = j.value("transform_config", json());
  if (tr.is_object() && !tr.empty() && tr.value("config_groups", json::object()).size() != 0)
    AR_THROW(where, ": transform_config (rotations) is not supported");
  const json top = j.value("format", json());
  const std::string top_format = top.is_string() ? top.get<std::string>() : "";
  CtQuantConfig qc;
  const json groups = j.value("config_groups", json());
  if (!groups.is_object() || groups.empty()) AR_THROW(where, ": 'config_groups' is missing or empty");
  for (const auto& [name, g] : groups.items()) {
    const std::string gw = where + ".config_groups['" + name + "']";
    CtQuantConfig::Group grp;
    grp.name = name;
    if (!g.is_object()) AR_THROW(gw, ": expected an object");
    grp.targets = string_list(g.value("targets", json()), gw + ".targets");
    grp.scheme = parse_group_scheme(g, top_format, gw);
    qc.groups.push_back(std::move(grp));
  }
  qc.ignore = string_list(j.value("ignore", json()), where + ".ignore");
  return qc;
}

// ---- loading -------------------------------------------------------------------------------------

bool has_ct_linear(const SafetensorsReader& st, const std::string& name) {
  return st.find(name + ".weight_packed") != nullptr || st.find(name + ".weight_scale") != nullptr;
}

void load_ct_linear_weight(float* w, const SafetensorsReader& st, const CtQuantConfig& qc, const std::string& name,
                           int64_t in, int64_t out) {
  const CtLayerScheme s = qc.scheme_for(name);
  const std::string src = st.source_path().string();
  if (!s.quantized)
    AR_THROW(src, ": '", name, "' is stored compressed (weight_packed / weight_scale) but quantization_config ",
             "does not quantize it (ignored or matched by no config group)");
  const std::string what = cat(s.format, " ", s.strategy, s.group_size > 0 ? cat(" group_size ", s.group_size) : "",
                               " (in ", in, ", out ", out, ")");
  auto find = [&](const std::string& suffix) -> const TensorInfo& {
    const TensorInfo* t = st.find(name + suffix);
    if (!t) AR_THROW(src, ": tensor '", name, suffix, "' not found; ", what, " stores it");
    return *t;
  };
  auto require = [&](const std::string& suffix, std::initializer_list<DType> dts,
                     const std::vector<int64_t>& shape) -> const TensorInfo& {
    const TensorInfo& t = find(suffix);
    const bool dt_ok = std::find(dts.begin(), dts.end(), t.dtype) != dts.end();
    if (!dt_ok || t.shape != shape)
      AR_THROW(st.file_path(t.file_index).string(), ": tensor '", t.name, "' is ", dtype_name(t.dtype), " ",
               shape_str(t.shape), ", expected ", dtype_names(dts), " ", shape_str(shape), " for ", what);
    return t;
  };
  // A single scale (tensor strategy) may be stored as [1], [1, 1] or a scalar.
  auto require_single = [&](const std::string& suffix, std::initializer_list<DType> dts) -> const TensorInfo& {
    const TensorInfo& t = find(suffix);
    if (t.numel() != 1 || t.shape.size() > 2 || std::find(dts.begin(), dts.end(), t.dtype) == dts.end())
      AR_THROW(st.file_path(t.file_index).string(), ": tensor '", t.name, "' is ", dtype_name(t.dtype), " ",
               shape_str(t.shape), ", expected one ", dtype_names(dts), " value for ", what);
    return t;
  };
  const std::initializer_list<DType> float_types = {DType::F16, DType::BF16, DType::F32};

  // Groups along a row (every layout but block and tensor / channel).
  int64_t group = in;
  if (s.group_size > 0) {
    group = s.group_size;
    if (in % group != 0)
      AR_THROW(src, ": linear '", name, "' (in ", in, ") is not a whole number of groups of ", group, " (", s.format, ")");
  }
  const int64_t n_groups = in / group;

  switch (s.layout) {
    case CtLayout::PackQuantized: {
      const int b = s.bits;
      const int64_t row_words = ct_packed_words(b, in);
      const TensorInfo& packed = require(".weight_packed", {DType::I32}, {out, row_words});
      const TensorInfo& shape_t = require(".weight_shape", {DType::I64, DType::I32}, {2});
      std::vector<int64_t> shape(2);
      if (shape_t.dtype == DType::I64) {
        st.read(shape_t, shape.data());
      } else {
        int32_t s32[2];
        st.read(shape_t, s32);
        shape = {s32[0], s32[1]};
      }
      if (shape != std::vector<int64_t>{out, in})
        AR_THROW(st.file_path(shape_t.file_index).string(), ": tensor '", shape_t.name, "' holds ", shape_str(shape),
                 ", expected ", shape_str({out, in}));
      const bool per_tensor = s.strategy == "tensor";
      const TensorInfo& scale_t = per_tensor ? require_single(".weight_scale", float_types)
                                             : require(".weight_scale", float_types, {out, n_groups});
      std::vector<float> scales(static_cast<size_t>(scale_t.numel()));
      st.read_f32(scale_t, scales.data());
      // zeros (out, n_groups): unsigned; 2^(b-1) everywhere when symmetric.
      std::vector<uint8_t> zeros(static_cast<size_t>(out * n_groups), uint8_t(1u << (b - 1)));
      if (!s.sym) {
        const int64_t zw = ct_packed_words(b, out);
        const TensorInfo& zp_t = require(".weight_zero_point", {DType::I32}, {zw, n_groups});
        std::vector<uint32_t> words(static_cast<size_t>(zw * n_groups)), col(static_cast<size_t>(zw));
        std::vector<uint8_t> zcol(static_cast<size_t>(out));
        st.read(zp_t, words.data());
        for (int64_t g = 0; g < n_groups; ++g) {
          for (int64_t r = 0; r < zw; ++r) col[size_t(r)] = words[size_t(r * n_groups + g)];
          ct_unpack_bits(zcol.data(), col.data(), out, b);
          for (int64_t o = 0; o < out; ++o) zeros[size_t(o * n_groups + g)] = zcol[size_t(o)];
        }
      }
      std::vector<uint32_t> words(static_cast<size_t>(out * row_words));
      st.read(packed, words.data());
      std::vector<uint8_t> codes(static_cast<size_t>(in));
      for (int64_t o = 0; o < out; ++o) {
        ct_unpack_bits(codes.data(), words.data() + o * row_words, in, b);
        float* wr = w + o * in;
        for (int64_t i = 0; i < in; ++i) {
          const size_t gi = size_t(o * n_groups + i / group);
          // Same expression as QuantizedWeight::dequantize, so our own files read back exactly.
          wr[i] = scales[per_tensor ? 0 : gi] * float(int(codes[size_t(i)]) - int(zeros[gi]));
        }
      }
      return;
    }
    case CtLayout::Nvfp4:
    case CtLayout::Mxfp4: {
      if (in % 2 != 0) AR_THROW(src, ": linear '", name, "' (in ", in, ") cannot hold packed FP4 pairs");
      const bool nv = s.layout == CtLayout::Nvfp4;
      const TensorInfo& packed = require(".weight_packed", {DType::U8}, {out, in / 2});
      const TensorInfo& scale_t = require(".weight_scale", {nv ? DType::F8_E4M3 : DType::U8}, {out, n_groups});
      float gs = 0;
      if (nv) {
        const TensorInfo& g = require_single(".weight_global_scale", {DType::F32});
        st.read(g, &gs);
      }
      std::vector<uint8_t> bytes(static_cast<size_t>(out * (in / 2))), sc(static_cast<size_t>(out * n_groups)), codes(static_cast<size_t>(in));
      st.read(packed, bytes.data());
      st.read(scale_t, sc.data());
      for (int64_t o = 0; o < out; ++o) {
        const uint8_t* br = bytes.data() + o * (in / 2);
        for (int64_t k = 0; k < in / 2; ++k) {
          codes[size_t(2 * k)] = br[k] & 15u;
          codes[size_t(2 * k + 1)] = uint8_t(br[k] >> 4);
        }
        for (int64_t g = 0; g < n_groups; ++g) {
          const uint8_t c = sc[size_t(o * n_groups + g)];
          float* dst = w + o * in + g * group;
          if (nv) {
            // compressed-tensors' own arithmetic (dequantize: x_q * (scale / global_scale), in f32
            // once the scales are widened), which is what its runtimes compute; AutoRound's fake
            // quantizer (our fake format) reaches the same codes through 1 / (1 / (scale / gs)),
            // which can differ from this by one f32 ulp.
            const float step = decode_e4m3(c) / gs;
            for (int64_t j = 0; j < group; ++j) dst[j] = decode_e2m1(codes[size_t(g * group + j)]) * step;
          } else {
            mx_dequantize_block(dst, codes.data() + g * group, group, c, MxElem::FP4);
          }
        }
      }
      return;
    }
    case CtLayout::Mxfp8:
    case CtLayout::Float: {
      const TensorInfo& weight = require(".weight", {DType::F8_E4M3}, {out, in});
      std::vector<uint8_t> codes(static_cast<size_t>(out * in));
      st.read(weight, codes.data());
      if (s.layout == CtLayout::Mxfp8) {
        const TensorInfo& scale_t = require(".weight_scale", {DType::U8}, {out, n_groups});
        std::vector<uint8_t> sc(static_cast<size_t>(out * n_groups));
        st.read(scale_t, sc.data());
        for (int64_t o = 0; o < out; ++o)
          for (int64_t g = 0; g < n_groups; ++g)
            mx_dequantize_block(w + o * in + g * group, codes.data() + o * in + g * group, group,
                                sc[size_t(o * n_groups + g)], MxElem::FP8);
        return;
      }
      // FP8 with f32 (or 16-bit) scales: one per tensor, per row, per group or per block.
      int64_t rows_per_scale = 1, scale_cols = n_groups;
      const TensorInfo* scale_t = nullptr;
      if (s.strategy == "tensor") {
        scale_t = &require_single(".weight_scale", float_types);
        rows_per_scale = out;
        scale_cols = 1;
        group = in;
      } else if (s.strategy == "channel") {
        const TensorInfo& t = find(".weight_scale");
        scale_t = t.shape.size() == 1 ? &require(".weight_scale", float_types, {out})
                                      : &require(".weight_scale", float_types, {out, 1});
      } else if (s.strategy == "block") {
        rows_per_scale = s.block_rows;
        group = s.block_cols;
        scale_cols = ceil_div(in, group);
        scale_t = &require(".weight_scale", float_types, {ceil_div(out, rows_per_scale), scale_cols});
      } else {  // group
        scale_t = &require(".weight_scale", float_types, {out, n_groups});
      }
      std::vector<float> scales(static_cast<size_t>(scale_t->numel()));
      st.read_f32(*scale_t, scales.data());
      for (int64_t o = 0; o < out; ++o)
        for (int64_t c = 0; c < scale_cols; ++c) {
          const int64_t i0 = c * group, n = std::min(group, in - i0);
          fp8_dequantize(w + o * in + i0, codes.data() + o * in + i0, n,
                         scales[size_t((o / rows_per_scale) * scale_cols + c)]);
        }
      return;
    }
  }
}

void load_ct_linear_weight(float* w, const SafetensorsReader& st, const std::string& name, int64_t in, int64_t out) {
  const std::filesystem::path cfg_path = st.file_path(0).parent_path() / "config.json";
  const ModelConfig c = load_model_config(cfg_path);
  if (c.quantization_config.empty())
    AR_THROW(cfg_path.string(), ": '", name, "' is stored compressed (weight_packed / weight_scale) but config.json ",
             "has no quantization_config");
  if (!is_ct_quant_config(c.quantization_config))
    AR_THROW(cfg_path.string(), ": '", name, "' has weight_packed / weight_scale tensors, but quantization_config is ",
             "not compressed-tensors (quant_method \"compressed-tensors\"), the only format read with them");
  load_ct_linear_weight(w, st, parse_ct_quant_config(c.quantization_config, cfg_path.string()), name, in, out);
}

}  // namespace ar
