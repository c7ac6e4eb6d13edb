// quantization_config JSON for auto_round / auto_gptq outputs (field names as the Python AutoRound
// exporter and the transformers / optimum / gptqmodel loaders use them).
#include "export/quant_config_json.h"

#include <map>
#include <set>

#include "core/error.h"

namespace ar {

namespace {

constexpr const char* kBlockPrefix = "model.layers";

// "model.layers.3.mlp.up_proj" -> {3, "mlp.up_proj"}; {-1, name} outside the blocks.
std::pair<int64_t, std::string> split_block_name(const std::string& name) {
  const std::string p = std::string(kBlockPrefix) + ".";
  if (name.compare(0, p.size(), p) != 0) return {-1, name};
  size_t dot = name.find('.', p.size());
  if (dot == std::string::npos) return {-1, name};
  try {
    return {std::stoll(name.substr(p.size(), dot - p.size())), name.substr(dot + 1)};
  } catch (const std::exception&) {
    return {-1, name};
  }
}

std::string regex_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (std::string(".^$|()[]{}*+?\\").find(c) != std::string::npos) r += '\\';
    r += c;
  }
  return r;
}

nlohmann::json scheme_json(const QuantScheme& s) {
  if (!s.quantized()) return {{"bits", 16}, {"data_type", "float"}};
  return {{"bits", s.bits}, {"group_size", s.group_size}, {"sym", s.sym}, {"data_type", "int"}};
}

}  // namespace

QuantScheme dominant_scheme(const std::vector<StoredLinear>& linears) {
  std::vector<std::pair<QuantScheme, int64_t>> counts;
  for (const StoredLinear& l : linears) {
    if (!l.scheme.quantized()) continue;
    bool found = false;
    for (auto& [s, n] : counts)
      if (s == l.scheme) {
        ++n;
        found = true;
      }
    if (!found) counts.emplace_back(l.scheme, 1);
  }
  if (counts.empty()) AR_THROW("no layer is quantized, so there is no quantized model to write");
  size_t best = 0;
  for (size_t i = 1; i < counts.size(); ++i)
    if (counts[i].second > counts[best].second) best = i;
  return counts[best].first;
}

bool packed_zeros_minus_one(OutputFormat f, const QuantScheme& dominant) {
  return !(f == OutputFormat::AutoRound && !dominant.sym);
}

nlohmann::json make_quantization_config(OutputFormat f, const std::vector<StoredLinear>& linears,
                                        const nlohmann::json& tuning) {
  AR_CHECK(is_packed_format(f), "the fake format has no quantization_config");
  const QuantScheme d = dominant_scheme(linears);
  nlohmann::json q;
  if (f == OutputFormat::AutoRound) {
    q = {{"quant_method", "auto-round"},
         {"packing_format", packed_zeros_minus_one(f, d) ? "auto_round:auto_gptq" : "auto_round"},
         {"bits", d.bits},               {"group_size", d.group_size},
         {"sym", d.sym},                 {"data_type", "int"},
         {"block_name_to_quantize", kBlockPrefix}, {"quantizer", kQuantizerName}};
    nlohmann::json extra = nlohmann::json::object();
    for (const StoredLinear& l : linears) {
      if (l.scheme == d) continue;
      if (!l.scheme.quantized()) {
        extra[l.name] = scheme_json(l.scheme);
        continue;
      }
      nlohmann::json e = nlohmann::json::object();
      if (l.scheme.bits != d.bits) e["bits"] = l.scheme.bits;
      if (l.scheme.group_size != d.group_size) e["group_size"] = l.scheme.group_size;
      if (l.scheme.sym != d.sym) e["sym"] = l.scheme.sym;
      extra[l.name] = e;
    }
    if (!extra.empty()) q["extra_config"] = extra;
  } else {
    q = {{"quant_method", "gptq"},
         {"bits", d.bits},
         {"group_size", d.group_size},
         {"sym", d.sym},
         {"desc_act", false},
         {"true_sequential", false},
         {"damp_percent", 0.01},
         {"static_groups", false},
         {"checkpoint_format", "gptq"},
         {"block_name_to_quantize", kBlockPrefix},
         {"meta", {{"quantizer", {kQuantizerName}}}}};
    nlohmann::json dynamic = nlohmann::json::object();
    std::map<int64_t, std::set<std::string>> quantized_in_block;
    std::set<std::string> all_relative;
    for (const StoredLinear& l : linears) {
      const auto [block, rel] = split_block_name(l.name);
      all_relative.insert(rel);
      if (l.scheme.quantized()) quantized_in_block[block].insert(rel);
      else quantized_in_block[block];
      if (l.scheme == d) continue;
      const std::string key = "^" + regex_escape(l.name) + "$";
      if (!l.scheme.quantized()) dynamic["-:" + key] = nlohmann::json::object();
      else dynamic["+:" + key] = {{"bits", l.scheme.bits}, {"group_size", l.scheme.group_size}, {"sym", l.scheme.sym}};
    }
    if (!dynamic.empty()) q["dynamic"] = dynamic;
    // optimum converts every linear of a block unless told which ones: list them when all blocks agree.
    bool uniform = !quantized_in_block.empty();
    for (const auto& [b, s] : quantized_in_block) uniform = uniform && s == quantized_in_block.begin()->second;
    const auto& first = quantized_in_block.begin()->second;
    if (uniform && first.size() != all_relative.size())
      q["modules_in_block_to_quantize"] =  // explicit arrays: a braced pair would become an object
          nlohmann::json::array({nlohmann::json(std::vector<std::string>(first.begin(), first.end()))});
  }
  for (const auto& [k, v] : tuning.items())
    if (!q.contains(k)) q[k] = v;
  return q;
}

}  // namespace ar
