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

Regex Regex::compile(const std::string& pattern, const std::string& where) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    AR_THROW(where, ": invalid regex '", pattern, "': ", reinterpret_cast<const char*>(msg),
             " at offset ", err_off);
  }
  auto c = std::make_shared<Code>();
  c->code = code;
  c->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;  // interpreter if JIT is missing
  Regex r;
  r.code_ = std::move(c);
  r.pattern_ = pattern;
  return r;
}

void Regex::find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& spans) const {
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
      spans.emplace_back(b, e);
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
