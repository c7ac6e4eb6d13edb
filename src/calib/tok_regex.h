// A compiled PCRE2 pattern (UTF + UCP, JIT when available) used by the Split / ByteLevel
// pre-tokenizers: HF compiles the same pattern strings with Oniguruma; PCRE2 accepts that syntax
// once \s is spelled out as Oniguruma's White_Space set (rewrite_space_classes).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ar::tok {

class Regex {
 public:
  // Throws ar::Error "<where>: invalid regex '<pattern>': <PCRE2 message> at offset N".
  static Regex compile(const std::string& pattern, const std::string& where);
  // Appends [begin, end) byte spans of every non-overlapping match in `subject` (valid UTF-8),
  // left to right; empty matches are skipped.
  void find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& spans) const;
  // Same matches, streamed to `on_match(begin, end)` instead of collected.
  void for_each_match(std::string_view subject, const std::function<void(size_t, size_t)>& on_match) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  std::shared_ptr<const Code> code_;  // shared: a Regex is immutable once compiled
  std::string pattern_;
};

// `pattern` with \s / \S spelled out as Unicode White_Space (what Oniguruma matches); exposed
// for tests.
std::string rewrite_space_classes(const std::string& pattern);

}  // namespace ar::tok
