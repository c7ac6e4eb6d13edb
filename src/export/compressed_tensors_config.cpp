// quantization_config for llm_compressor outputs; the field values follow what AutoRound 0.16.1
// writes through compressed-tensors' QuantizationConfig.to_dict (see the header for the layouts).
#include "export/compressed_tensors_config.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "export/compressed_tensors_pack.h"

namespace ar {

namespace {

using nlohmann::json;

bool is_mx_or_nv(const QuantScheme& s) {
  return s.data_type == DataType::MXFP4 || s.data_type == DataType::MXFP8 || s.data_type == DataType::NVFP4;
}

// HF module order inside a block (attention, then MLP), for the ignore list and group order: the
// order compressed-tensors' QuantizationConfig.from_pretrained walks named_modules() in.
std::pair<int64_t, int> module_rank(const std::string& name) {
  static const char* kOrder[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                 "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
  int64_t block = -1;
  static const std::string p = "model.layers.";
  if (name.rfind(p, 0) == 0) block = std::atoll(name.c_str() + p.size());
  for (int i = 0; i < 7; ++i)
    if (name.ends_with(std::string(".") + kOrder[i])) return {block, i};
  return {block, 7};
}

json group_json(const QuantScheme& s, json targets, bool with_format) {
  return {{"targets", std::move(targets)},
          {"weights", ct_weight_args(s)},
          {"input_activations", ct_input_args(s)},
          {"output_activations", nullptr},
          {"format", with_format ? json(ct_format_name(s)) : json(nullptr)}};
}

}  // namespace

json ct_weight_args(const QuantScheme& s) {
  switch (s.data_type) {
    case DataType::Int:
      return {{"num_bits", s.bits},
              {"type", "int"},
              {"symmetric", s.sym},
              {"group_size", s.group_size > 0 ? json(s.group_size) : json(nullptr)},
              {"strategy", s.group_size > 0 ? "group" : "channel"},
              {"dynamic", false}};
    case DataType::MXFP4:
    case DataType::MXFP8:
      return {{"dynamic", false},          {"group_size", 32},   {"num_bits", s.bits}, {"scale_dtype", "torch.uint8"},
              {"strategy", "group"},       {"symmetric", true},  {"type", "float"}};
    case DataType::NVFP4:
      return {{"dynamic", false},           {"group_size", 16},  {"num_bits", 4}, {"scale_dtype", "torch.float8_e4m3fn"},
              {"strategy", "tensor_group"}, {"symmetric", true}, {"type", "float"}};
    case DataType::FP8:
      return {{"dynamic", false},     {"group_size", nullptr}, {"num_bits", 8},
              {"strategy", "channel"}, {"symmetric", true},     {"type", "float"}};
    case DataType::FP8Block:
      return {{"block_structure", {kFp8BlockSize, kFp8BlockSize}},
              {"dynamic", false},
              {"group_size", nullptr},
              {"num_bits", 8},
              {"strategy", "block"},
              {"symmetric", true},
              {"type", "float"}};
  }
  return nullptr;
}

json ct_input_args(const QuantScheme& s) {
  switch (s.data_type) {
    case DataType::MXFP4:
    case DataType::MXFP8:
      return {{"dynamic", true},     {"group_size", 32},  {"num_bits", s.bits}, {"scale_dtype", "torch.uint8"},
              {"strategy", "group"}, {"symmetric", true}, {"type", "float"}};
    case DataType::FP8Block:
      return {{"dynamic", true},     {"group_size", kFp8BlockSize}, {"num_bits", 8},
              {"strategy", "group"}, {"symmetric", true},           {"type", "float"}};
    default: return nullptr;
  }
}

json make_ct_quantization_config(const std::vector<StoredLinear>& linears, const json& tuning) {
  std::vector<StoredLinear> ordered = linears;
  std::stable_sort(ordered.begin(), ordered.end(), [](const StoredLinear& a, const StoredLinear& b) {
    return std::make_pair(module_rank(a.name), a.name) < std::make_pair(module_rank(b.name), b.name);
  });
  const QuantScheme dominant = dominant_scheme(ordered);  // throws when nothing is quantized
  // Schemes in order of first appearance, with their layers.
  std::vector<std::pair<QuantScheme, std::vector<std::string>>> groups;
  json ignore = json::array();
  for (const StoredLinear& l : ordered) {
    if (!l.scheme.quantized()) {
      ignore.push_back(l.name);
      continue;
    }
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == l.scheme; });
    if (it == groups.end()) groups.push_back({l.scheme, {l.name}});
    else it->second.push_back(l.name);
  }
  ignore.push_back("lm_head");

  json config_groups = json::object();
  std::string format = ct_format_name(groups[0].first);
  for (const auto& g : groups)
    if (ct_format_name(g.first) != format) format = "mixed-precision";
  const bool fp_layout = is_mx_or_nv(dominant);  // AutoRound's export_to_fp.py
  if (groups.size() == 1) {
    config_groups["group_0"] = group_json(groups[0].first, json::array({"Linear"}), !fp_layout);
  } else if (fp_layout) {
    format = "mixed-precision";
    int idx = 0;
    for (const auto& g : groups)
      if (!(g.first == dominant)) config_groups[cat("group_", idx++)] = group_json(g.first, json(g.second), true);
    config_groups[cat("group_", idx)] = group_json(dominant, json::array({"Linear"}), true);
  } else {
    for (size_t i = 0; i < groups.size(); ++i) {
      std::vector<std::string> names = groups[i].second;
      std::sort(names.begin(), names.end());
      config_groups[cat("group_", i)] = group_json(groups[i].first, json(names), true);
    }
  }
  json q = {{"config_groups", config_groups},
            {"quant_method", "compressed-tensors"},
            {"kv_cache_scheme", nullptr},
            {"format", format},
            {"quantization_status", "compressed"},
            {"global_compression_ratio", nullptr},
            {"ignore", ignore},
            {"moe_sparsity_config", nullptr},
            {"quantizer", kQuantizerName}};
  if (fp_layout) q["provider"] = "auto-round";
  for (const auto& [k, v] : tuning.items())
    if (!q.contains(k)) q[k] = v;
  return q;
}

}  // namespace ar
