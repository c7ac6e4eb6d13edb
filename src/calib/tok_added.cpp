// Added-token splitting, after the Rust `tokenizers` AddedVocabulary (leftmost-longest matching,
// lstrip/rstrip absorbing whitespace, single_word requiring non-word neighbours).
#include "calib/tok_added.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "calib/tok_unicode.h"
#include "core/error.h"

namespace ar::tok {
namespace {

// Code point ending just before byte `i` (i > 0).
uint32_t code_point_before(std::string_view s, size_t i) {
  size_t b = i - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  return next_code_point(s, b);
}

// \w approximated: ASCII letters, digits and '_' plus every non-ASCII letter-ish code point.
bool is_word_char(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  return !is_unicode_space(cp);
}

}  // namespace

AddedVocab AddedVocab::parse(const nlohmann::json& j, const std::string& file) {
  AddedVocab v;
  if (j.is_null()) return v;
  if (!j.is_array()) AR_THROW(file, ": \"added_tokens\" is not an array");
  for (size_t k = 0; k < j.size(); ++k) {
    const auto& e = j[k];
    if (!e.is_object() || !e.contains("id") || !e.contains("content") || !e["id"].is_number_integer() ||
        e["id"].get<int64_t>() < 0 || e["id"].get<int64_t>() > INT32_MAX || !e["content"].is_string())
      AR_THROW(file, ": added_tokens[", k, "] needs a non-negative integer \"id\" and a string \"content\"");
    AddedToken t;
    t.id = static_cast<int32_t>(e["id"].get<int64_t>());
    t.content = e["content"].get<std::string>();
    t.special = e.value("special", false);
    t.lstrip = e.value("lstrip", false);
    t.rstrip = e.value("rstrip", false);
    t.single_word = e.value("single_word", false);
    t.normalized = e.value("normalized", !t.special);
    v.tokens_.push_back(std::move(t));
  }
  for (uint32_t k = 0; k < v.tokens_.size(); ++k) {
    const std::string& c = v.tokens_[k].content;
    if (!c.empty()) v.by_first_byte_[static_cast<unsigned char>(c[0])].push_back(k);
  }
  for (auto& list : v.by_first_byte_)
    std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) {
      return v.tokens_[a].content.size() > v.tokens_[b].content.size();
    });
  return v;
}

void AddedVocab::split(std::string_view text, std::vector<Segment>& out) const {
  out.clear();
  size_t seg_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& cands = by_first_byte_[static_cast<unsigned char>(text[pos])];
    const AddedToken* hit = nullptr;
    for (uint32_t k : cands) {
      const AddedToken& t = tokens_[k];
      if (text.compare(pos, t.content.size(), t.content) != 0) continue;
      if (t.single_word) {
        size_t e = pos + t.content.size();
        if (pos > 0 && is_word_char(code_point_before(text, pos))) continue;
        if (e < text.size()) {
          size_t i = e;
          if (is_word_char(next_code_point(text, i))) continue;
        }
      }
      hit = &t;
      break;
    }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t b = pos, e = pos + hit->content.size();
    if (hit->lstrip) {
      while (b > seg_start) {
        size_t prev = b - 1;
        while (prev > seg_start && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80) --prev;
        size_t i = prev;
        if (!is_unicode_space(next_code_point(text, i))) break;
        b = prev;
      }
    }
    if (hit->rstrip) {
      while (e < text.size()) {
        size_t i = e;
        if (!is_unicode_space(next_code_point(text, i))) break;
        e = i;
      }
    }
    if (b > seg_start) out.push_back({seg_start, b, -1});
    out.push_back({b, e, hit->id});
    seg_start = pos = e;
  }
  if (seg_start < text.size()) out.push_back({seg_start, text.size(), -1});
}

}  // namespace ar::tok
