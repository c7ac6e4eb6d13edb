// Per-layer quantization settings (issue 3 item 2): the run's default QuantScheme plus rules from a
// --layer_config JSON file, like the Python tool's layer_config (names or regexes -> bits/group_size/sym).
#pragma once
#include <filesystem>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "quant/quantized.h"

namespace ar {

// JSON: an object whose keys select layers and whose values are objects with any of
//   "bits": 2 | 3 | 4 | 8 | 16 (16 keeps the layer unquantized), "group_size": -1 or > 0, "sym": bool,
//   "data_type": AutoRound's names (quant/scheme.h: "int", "mx_fp", "mx_fp4", "nv_fp", "fp8", ...,
//   "float" = keep), "group_size": [128, 128] for FP8 in 128 x 128 blocks;
// or a --scheme preset name as a string ("MXFP8", "W8A16"), which sets all of them, as AutoRound
// accepts. Also accepted, for configs written for the Python tool: "act_bits" >= 16.
// A data_type naming its width ("mx_fp8") sets bits too; a "bits" in the same rule must agree.
// A floating-point data type fixes group size and symmetry (quant/scheme.h resolve_scheme_fields).
// A key selects layers (HF names without ".weight") in one of two ways:
//   - a regular expression, searched anywhere in the name (Python's re.search; ECMAScript syntax),
//     when it starts with "re:" (the prefix is dropped) or contains any of * + ? ( ) [ ] { } | ^ $ \ ;
//   - otherwise a name: the full layer name or a dotted suffix of it ("mlp.down_proj" selects every
//     block's down_proj, "model.layers.0.mlp.down_proj" just that one; "proj" selects nothing).
// Every matching rule applies, each overriding only the fields it sets, in increasing precedence:
// regexes in file order, then name rules from the shortest key to the longest, so the full name wins
// (as in the Python tool, where an exact name comes before regex matches).
class LayerConfig {
 public:
  LayerConfig() = default;
  explicit LayerConfig(QuantScheme defaults);
  // Throws ar::Error naming `source` and the offending key for malformed JSON or rules.
  static LayerConfig parse(const std::string& json_text, QuantScheme defaults, const std::string& source);
  static LayerConfig load(const std::filesystem::path& file, QuantScheme defaults);

  // Scheme for a linear inside a decoder block (HF name without ".weight"), defaults if no rule
  // matches. ar::Error naming the layer when the merged rules contradict each other or the
  // defaults (e.g. "data_type": "mx_fp" over a 2-bit default without "bits").
  QuantScheme scheme_for(const std::string& layer_name) const;
  // Just the fields the matching rules set (merged by precedence); unset ones take the defaults.
  // A GGUF output needs them apart: a rule's bits pick the layer's block type there.
  using RuleFields = SchemeFields;
  RuleFields rule_fields(const std::string& layer_name) const;
  // {"layer name": {"bits": .., "group_size": .., "sym": .. (, "data_type": ..)}} for each of
  // `layer_names` whose scheme differs from the defaults: quantization_config.extra_config.
  nlohmann::json extra_config(const std::vector<std::string>& layer_names) const;
  const QuantScheme& defaults() const { return defaults_; }

  // Keys of rules that select none of `layer_names` (worth a warning: likely a typo).
  std::vector<std::string> unmatched_rules(const std::vector<std::string>& layer_names) const;
  size_t rule_count() const { return rules_.size(); }

 private:
  struct Rule {
    std::string key;
    bool is_regex = false;
    std::regex re;
    SchemeFields fields;
    bool matches(const std::string& name) const;
  };
  QuantScheme defaults_;
  std::vector<Rule> rules_;  // regexes first (file order), then names by increasing key length
};

}  // namespace ar
