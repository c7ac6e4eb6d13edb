// Normalizer steps, following the Rust `tokenizers` normalizers (normalizers/{unicode,
// prepend,replace,strip,utils}.rs semantics; our own implementation).
#include "calib/tok_normalize.h"

#include <nlohmann/json.hpp>

#include "calib/tok_unicode.h"
#include "core/error.h"

namespace ar::tok {
namespace {

NormalizerStep make(NormalizerStep::Kind k) {
  NormalizerStep s;
  s.kind = k;
  return s;
}

void parse_into(const nlohmann::json& j, const std::string& file, std::vector<NormalizerStep>& out) {
  if (j.is_null()) return;
  if (!j.is_object() || !j.contains("type")) AR_THROW(file, ": normalizer without a \"type\"");
  const std::string type = j["type"].get<std::string>();
  using K = NormalizerStep::Kind;
  if (type == "Sequence") {
    for (const auto& n : j.at("normalizers")) parse_into(n, file, out);
  } else if (type == "NFC") {
    out.push_back(make(K::NFC));
  } else if (type == "NFD") {
    out.push_back(make(K::NFD));
  } else if (type == "NFKC") {
    out.push_back(make(K::NFKC));
  } else if (type == "NFKD") {
    out.push_back(make(K::NFKD));
  } else if (type == "Lowercase") {
    out.push_back(make(K::Lowercase));
  } else if (type == "Prepend") {
    NormalizerStep s = make(K::Prepend);
    s.a = j.at("prepend").get<std::string>();
    out.push_back(s);
  } else if (type == "Replace") {
    const auto& pat = j.at("pattern");
    NormalizerStep s = make(K::Replace);
    s.b = j.at("content").get<std::string>();
    if (pat.contains("Regex")) {
      s.regex = Regex::compile(pat["Regex"].get<std::string>(), file + ": Replace normalizer");
      s.has_regex = true;
    } else if (pat.contains("String")) {
      s.a = pat["String"].get<std::string>();
      if (s.a.empty()) AR_THROW(file, ": Replace normalizer with an empty pattern");
    } else {
      AR_THROW(file, ": Replace normalizer pattern ", pat.dump(), " is neither String nor Regex");
    }
    out.push_back(s);
  } else if (type == "Strip") {
    NormalizerStep s = make(K::Strip);
    s.left = j.value("strip_left", false);
    s.right = j.value("strip_right", false);
    out.push_back(s);
  } else {
    AR_THROW(file, ": unsupported normalizer type '", type, "'");
  }
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  size_t pos = s.find(from);
  if (pos == std::string::npos) return;
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t last = 0;
  for (; pos != std::string::npos; pos = s.find(from, last)) {
    out.append(s, last, pos - last);
    out += to;
    last = pos + from.size();
  }
  out.append(s, last, std::string::npos);
  s.swap(out);
}

// Every match replaced by `to`, taken literally (HF's Replace has no back-references).
void replace_regex(std::string& s, const Regex& re, const std::string& to) {
  std::vector<std::pair<size_t, size_t>> spans;
  re.find_all(s, spans);
  if (spans.empty()) return;
  std::string out;
  size_t last = 0;
  for (auto [b, e] : spans) {
    out.append(s, last, b - last);
    out += to;
    last = e;
  }
  out.append(s, last, std::string::npos);
  s.swap(out);
}

void strip_spaces(std::string& s, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e) {
      size_t i = b;
      if (!is_unicode_space(next_code_point(s, i))) break;
      b = i;
    }
  }
  if (right) {
    while (e > b) {
      size_t i = e - 1;
      while (i > b && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
      size_t k = i;
      if (!is_unicode_space(next_code_point(s, k))) break;
      e = i;
    }
  }
  s = s.substr(b, e - b);
}

}  // namespace

std::vector<NormalizerStep> parse_normalizer(const nlohmann::json& j, const std::string& file) {
  std::vector<NormalizerStep> out;
  parse_into(j, file, out);
  return out;
}

void apply_normalizer(const std::vector<NormalizerStep>& steps, std::string& s) {
  using K = NormalizerStep::Kind;
  for (const auto& st : steps) {
    switch (st.kind) {
      case K::NFC: s = normalize_unicode(s, NormalForm::NFC); break;
      case K::NFD: s = normalize_unicode(s, NormalForm::NFD); break;
      case K::NFKC: s = normalize_unicode(s, NormalForm::NFKC); break;
      case K::NFKD: s = normalize_unicode(s, NormalForm::NFKD); break;
      case K::Lowercase: s = lowercase_unicode(s); break;
      case K::Prepend:
        if (!s.empty()) s.insert(0, st.a);  // HF prepends only to non-empty text
        break;
      case K::Replace:
        if (st.has_regex) replace_regex(s, st.regex, st.b);
        else replace_all(s, st.a, st.b);
        break;
      case K::Strip: strip_spaces(s, st.left, st.right); break;
    }
  }
}

}  // namespace ar::tok
