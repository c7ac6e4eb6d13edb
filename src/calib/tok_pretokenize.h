// Pre-tokenizers of a HF tokenizer.json ("pre_tokenizer"): Split (regex or string, all five
// behaviours, invert), ByteLevel (GPT-2 regex when use_regex), Metaspace, Digits, Whitespace,
// WhitespaceSplit, or a Sequence of these.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <functional>
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

  using PieceFn = std::function<void(std::string_view)>;
  // Splits one normalized span into pieces, handed to `emit` in order. Depth first: no list of
  // pieces is ever built, so memory does not grow with the span. `first_span`: the span starts
  // the input (Metaspace prepend_scheme "first").
  void run(std::string_view span, bool first_span, const PieceFn& emit) const;

 private:
  void run_step(size_t k, std::string_view piece, bool at_start, const PieceFn& emit) const;
};

// Throws ar::Error naming `file` for unsupported types, behaviours or invalid regexes.
PreTokenizer parse_pre_tokenizer(const nlohmann::json& j, const std::string& file);

}  // namespace ar::tok
