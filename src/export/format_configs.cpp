// quantization_config for auto_awq and the auto_round FP variants (see format_configs.h).
#include "export/format_configs.h"

#include <string_view>

#include "core/error.h"

namespace ar {

namespace {

constexpr const char* kBlockPrefix = "model.layers";

// ar::Error: `format` cannot store layer l's scheme next to the model's scheme d.
[[noreturn]] void refuse_other_scheme(const char* format, const QuantScheme& d, const StoredLinear& l) {
  AR_THROW("--format ", format, " stores one scheme for the whole model (", scheme_label(d), "); layer '", l.name,
           "' is ", scheme_label(l.scheme),
           " (keep it 16-bit, or use --format llm_compressor or fake, which store a scheme per layer",
           std::string_view(format) == "auto_round" ? "; auto_round mixes MXFP4 and MXFP8 only)" : ")");
}

// The one scheme every quantized layer uses (a format without per-layer schemes).
QuantScheme uniform_scheme(const std::vector<StoredLinear>& linears, const char* format) {
  const QuantScheme d = dominant_scheme(linears);
  for (const StoredLinear& l : linears)
    if (l.scheme.quantized() && !(l.scheme == d)) refuse_other_scheme(format, d, l);
  return d;
}

void add_tuning(nlohmann::json& q, const nlohmann::json& tuning) {
  for (const auto& [k, v] : tuning.items())
    if (!q.contains(k)) q[k] = v;
}

}  // namespace

nlohmann::json make_awq_quantization_config(const std::vector<StoredLinear>& linears, const nlohmann::json& tuning) {
  const QuantScheme d = uniform_scheme(linears, "auto_awq");
  AR_CHECK(!d.is_fp() && d.bits == 4, "auto_awq with ", scheme_label(d));
  nlohmann::json not_converted = nlohmann::json::array({"lm_head"});
  for (const StoredLinear& l : linears)
    if (!l.scheme.quantized()) not_converted.push_back(l.name);
  nlohmann::json q = {{"quant_method", "awq"},
                      {"version", "gemm"},
                      {"bits", d.bits},
                      {"group_size", d.group_size},
                      {"sym", d.sym},
                      {"zero_point", !d.sym},
                      {"data_type", "int"},
                      {"to_quant_block_names", kBlockPrefix},
                      {"modules_to_not_convert", not_converted},
                      {"provider", kQuantizerName},
                      {"quantizer", kQuantizerName}};
  add_tuning(q, tuning);
  return q;
}

nlohmann::json make_autoround_fp_quantization_config(const std::vector<StoredLinear>& linears,
                                                     const nlohmann::json& tuning) {
  const QuantScheme d = dominant_scheme(linears);
  if (!d.is_fp()) AR_THROW("make_autoround_fp_quantization_config: ", scheme_label(d), " is not floating point");
  // MXFP4 and MXFP8 share one file, the other layers' bits in extra_config, as AutoRound 0.16.1 writes a
  // mixed MX model (its only FP mix that quantizes: an NVFP4 or FP8 model with a layer of another
  // FP type stops in its quantizer, "Only group_size=16 is supported").
  const auto is_mx = [](const QuantScheme& s) {
    return s.data_type == DataType::MXFP4 || s.data_type == DataType::MXFP8;
  };
  nlohmann::json extra = nlohmann::json::object();
  for (const StoredLinear& l : linears) {
    if (!l.scheme.quantized()) {
      extra[l.name] = {{"bits", 16}, {"data_type", "float"}};
    } else if (!(l.scheme == d)) {
      if (!is_mx(d) || !is_mx(l.scheme)) refuse_other_scheme("auto_round", d, l);
      extra[l.name] = {{"bits", l.scheme.bits}};
    }
  }
  const DataType t = d.data_type;
  const bool fp8 = t == DataType::FP8 || t == DataType::FP8Block;
  nlohmann::json q = {{"quant_method", "auto-round"},
                      {"bits", d.bits},
                      {"group_size", t == DataType::FP8Block ? nlohmann::json::array({kFp8BlockSize, kFp8BlockSize})
                                                             : nlohmann::json(d.group_size)},
                      {"sym", true},
                      {"data_type", autoround_data_type(t)},
                      {"block_name_to_quantize", kBlockPrefix},
                      {"quantizer", kQuantizerName}};
  if (t == DataType::MXFP4 || t == DataType::MXFP8) {
    q["act_bits"] = d.bits;
    q["act_data_type"] = "mx_fp";
    q["act_group_size"] = 32;
    q["act_sym"] = true;
    q["act_dynamic"] = true;
  } else if (t == DataType::FP8Block) {
    q["act_bits"] = 8;
    q["act_data_type"] = "fp";
    q["act_group_size"] = 128;
    q["act_sym"] = true;
    q["act_dynamic"] = true;
  }
  // AutoRound writes no packing_format for per-channel FP8 (weight-only "fp" is its default FP8 layout).
  if (!fp8) q["packing_format"] = "auto_round:llm_compressor";
  if (t == DataType::FP8Block) {
    q["packing_format"] = "auto_round:fp8";
    q["weight_block_size"] = nlohmann::json::array({kFp8BlockSize, kFp8BlockSize});
  }
  if (fp8) {
    q["fmt"] = "e4m3";
    q["activation_scheme"] = "dynamic";
  }
  if (!extra.empty()) q["extra_config"] = extra;
  add_tuning(q, tuning);
  return q;
}

}  // namespace ar
