// PCRE2 wrapper for the pre-tokenizer split patterns. Subjects are validated UTF-8 before they
// get here, so matching skips PCRE2's per-call UTF check (which would be O(n) per match).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "calib/tok_regex.h"

#include <pcre2.h>

#include "core/error.h"

namespace ar::tok {

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

namespace {

// Unicode White_Space, the set Oniguruma's \s matches in HF's patterns. PCRE2's own \s (UCP)
// also matches U+180E MONGOLIAN VOWEL SEPARATOR, which left White_Space in Unicode 6.3.
constexpr const char* kSpaceSet =
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

}  // namespace

std::string rewrite_space_classes(const std::string& pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  size_t class_start = 0;  // index in `pattern` just after '[' or '[^'
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char n = pattern[i + 1];
      if (n == 's') {
        out += in_class ? std::string(kSpaceSet) : ar::cat("[", kSpaceSet, "]");
      } else if (n == 'S' && !in_class) {
        out += ar::cat("[^", kSpaceSet, "]");
      } else {
        out += c;  // any other escape (and \S inside a class) is left to PCRE2
        out += n;
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      class_start = i + 1;
      continue;
    }
    if (in_class && c == ']' && i != class_start) in_class = false;  // a leading ']' is literal
    out += c;
  }
  return out;
}

Regex Regex::compile(const std::string& pattern_in, const std::string& where) {
  const std::string pattern = rewrite_space_classes(pattern_in);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
  if (!code) {
    // Report the error against the pattern as written in the file.
    pcre2_code* orig = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern_in.data()), pattern_in.size(),
                                     PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
    pcre2_code_free(orig);
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    AR_THROW(where, ": invalid regex '", pattern_in, "': ", reinterpret_cast<const char*>(msg),
             " at offset ", err_off);
  }
  auto c = std::make_shared<Code>();
  c->code = code;
  c->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;  // interpreter if JIT is missing
  Regex r;
  r.code_ = std::move(c);
  r.pattern_ = pattern_in;
  return r;
}

void Regex::find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& spans) const {
  for_each_match(subject, [&](size_t b, size_t e) { spans.emplace_back(b, e); });
}

void Regex::for_each_match(std::string_view subject, const std::function<void(size_t, size_t)>& on_match) const {
  // Per-call match data keeps find_all thread-safe on a shared pattern.
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(code_->code, nullptr), &pcre2_match_data_free);
  auto subj = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t pos = 0;
  while (pos <= subject.size()) {
    int rc = code_->jit ? pcre2_jit_match(code_->code, subj, subject.size(), pos, 0, md.get(), nullptr)
                        : pcre2_match(code_->code, subj, subject.size(), pos, PCRE2_NO_UTF_CHECK,
                                      md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      AR_THROW("tokenizer: regex '", pattern_, "' failed on the input: ",
               reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    size_t b = ov[0], e = ov[1];
    if (e > b) {
      on_match(b, e);
      pos = e;
    } else {
      // Empty match: step over one whole character so the next search starts on a boundary.
      if (b >= subject.size()) break;
      pos = b + 1;
      while (pos < subject.size() && (static_cast<unsigned char>(subject[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
}

}  // namespace ar::tok
