// Normalizers of a HF tokenizer.json ("normalizer"): NFC/NFD/NFKC/NFKD, Lowercase, Prepend,
// Replace (string or regex pattern), Strip, and Sequence of these, applied to each
// non-added-token span.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "calib/tok_regex.h"

namespace ar::tok {

struct NormalizerStep {
  enum class Kind { NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip };
  Kind kind{};
  std::string a;  // Prepend: the prefix; Replace: the pattern
  std::string b;  // Replace: the replacement
  Regex regex;            // Replace with {"Regex": ...}
  bool has_regex = false;
  bool left = false, right = false;  // Strip
};

// Flattens `j` (null, one normalizer or a Sequence) into steps; throws ar::Error naming `file`
// for unsupported types.
std::vector<NormalizerStep> parse_normalizer(const nlohmann::json& j, const std::string& file);
// Applies the steps in order to `s`.
void apply_normalizer(const std::vector<NormalizerStep>& steps, std::string& s);

}  // namespace ar::tok
