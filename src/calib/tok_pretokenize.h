// Pre-tokenizers of a HF tokenizer.json ("pre_tokenizer"): Split (regex or string, all five
// behaviours, invert), ByteLevel (GPT-2 regex when use_regex), Metaspace, Digits, Whitespace,
// WhitespaceSplit, or a Sequence of these.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "calib/tok_regex.h"

namespace ar::tok {

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct PreTokStep {
  enum class Kind { Split, ByteLevel, Metaspace };
  Kind kind{};
  // Split: regex (or a literal when !use_regex_pattern); ByteLevel: the GPT-2 regex if use_regex.
  Regex regex;
  bool has_regex = false;
  std::string literal;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
  std::string replacement;        // Metaspace ("▁")
  enum class Prepend { Always, Never, First } prepend = Prepend::Always;  // Metaspace
  bool split = true;                                                      // Metaspace
};

struct PreTokenizer {
  std::vector<PreTokStep> steps;
  // True when the last step is ByteLevel: run() then leaves its byte -> character mapping to the
  // caller, who maps a piece only on a cache miss (most pieces repeat).
  bool defer_byte_map = false;

  // Splits one normalized span into pieces (replacing `pieces`). `first_span`: the span starts
  // the input (Metaspace prepend_scheme "first").
  void run(std::string_view span, bool first_span, std::vector<std::string>& pieces) const;
};

// Throws ar::Error naming `file` for unsupported types, behaviours or invalid regexes.
PreTokenizer parse_pre_tokenizer(const nlohmann::json& j, const std::string& file);

}  // namespace ar::tok
