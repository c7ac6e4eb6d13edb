// Decoder chain, following the Rust `tokenizers` decoders (decode_chain of byte_level.rs,
// byte_fallback.rs, fuse.rs, strip.rs, metaspace.rs, normalizers/replace.rs); our own code.
#include "calib/tok_decode.h"

#include <nlohmann/json.hpp>

#include "calib/tok_unicode.h"
#include "core/error.h"

namespace ar::tok {
namespace {

DecoderStep make(DecoderStep::Kind k) {
  DecoderStep s;
  s.kind = k;
  return s;
}

void parse_into(const nlohmann::json& j, const std::string& file, std::vector<DecoderStep>& out) {
  if (j.is_null()) return;
  if (!j.is_object() || !j.contains("type")) AR_THROW(file, ": decoder without a \"type\"");
  const std::string type = j["type"].get<std::string>();
  using K = DecoderStep::Kind;
  if (type == "Sequence") {
    for (const auto& d : j.at("decoders")) parse_into(d, file, out);
  } else if (type == "ByteLevel") {
    out.push_back(make(K::ByteLevel));
  } else if (type == "ByteFallback") {
    out.push_back(make(K::ByteFallback));
  } else if (type == "Fuse") {
    out.push_back(make(K::Fuse));
  } else if (type == "Replace") {
    const auto& pat = j.at("pattern");
    if (!pat.contains("String") || pat["String"].get<std::string>().empty())
      AR_THROW(file, ": unsupported Replace decoder pattern ", pat.dump(), " (only a non-empty String)");
    DecoderStep s = make(K::Replace);
    s.a = pat["String"].get<std::string>();
    s.b = j.at("content").get<std::string>();
    out.push_back(s);
  } else if (type == "Strip") {
    DecoderStep s = make(K::Strip);
    s.a = j.at("content").get<std::string>();
    s.start = j.value("start", size_t{0});
    s.stop = j.value("stop", size_t{0});
    out.push_back(s);
  } else if (type == "Metaspace") {
    DecoderStep s = make(K::Metaspace);
    s.a = j.value("replacement", std::string("\xE2\x96\x81"));
    if (auto it = j.find("prepend_scheme"); it != j.end() && !it->is_null())
      s.prepend = it->get<std::string>() != "never";
    else
      s.prepend = j.value("add_prefix_space", true);
    out.push_back(s);
  } else {
    AR_THROW(file, ": unsupported decoder type '", type, "'");
  }
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  size_t last = 0;
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, last)) {
    out.append(s, last, pos - last);
    out += to;
    last = pos + from.size();
  }
  if (last == 0) return;
  out.append(s, last, std::string::npos);
  s.swap(out);
}

// "<0xAB>" -> 0xAB, or -1.
int parse_byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    char c = t[k];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10
          : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// Consecutive byte tokens become their UTF-8 text, or one U+FFFD per byte when the run is not
// valid UTF-8 (Rust's rule; tokenizers.js decodes such runs leniently instead).
void byte_fallback(std::vector<std::string>& tokens) {
  std::vector<std::string> out;
  out.reserve(tokens.size());
  std::string bytes;
  auto flush = [&] {
    if (bytes.empty()) return;
    if (is_valid_utf8(bytes)) {
      out.push_back(bytes);
    } else {
      for (size_t k = 0; k < bytes.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
    }
    bytes.clear();
  };
  for (auto& t : tokens) {
    int b = parse_byte_token(t);
    if (b >= 0) {
      bytes.push_back(static_cast<char>(b));
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  tokens.swap(out);
}

// Removes up to `n` leading (front) or trailing (!front) copies of the character `c`.
void strip_chars(std::string& t, const std::string& c, size_t n, bool front) {
  if (c.empty()) return;
  for (size_t k = 0; k < n; ++k) {
    if (front && t.starts_with(c)) t.erase(0, c.size());
    else if (!front && t.ends_with(c)) t.erase(t.size() - c.size());
    else break;
  }
}

}  // namespace

std::vector<DecoderStep> parse_decoder(const nlohmann::json& j, const std::string& file) {
  std::vector<DecoderStep> out;
  parse_into(j, file, out);
  return out;
}

std::string run_decoder(const std::vector<DecoderStep>& steps, std::vector<std::string> tokens) {
  using K = DecoderStep::Kind;
  if (steps.empty()) {
    std::string s;
    for (size_t k = 0; k < tokens.size(); ++k) s += (k ? " " : "") + tokens[k];
    return s;
  }
  for (const auto& st : steps) {
    switch (st.kind) {
      case K::ByteLevel: {
        // Each token maps back to bytes (a token with characters outside the alphabet, such as
        // an added token, keeps its own bytes); the whole byte string is then read lossily.
        std::string bytes;
        for (const auto& t : tokens)
          if (!byte_level_decode(t, bytes)) bytes += t;
        tokens.assign(1, utf8_lossy(bytes));
        break;
      }
      case K::Replace:
        for (auto& t : tokens) replace_all(t, st.a, st.b);
        break;
      case K::ByteFallback:
        byte_fallback(tokens);
        break;
      case K::Fuse: {
        std::string s;
        for (const auto& t : tokens) s += t;
        tokens.assign(1, std::move(s));
        break;
      }
      case K::Strip:
        for (auto& t : tokens) {
          strip_chars(t, st.a, st.start, true);
          strip_chars(t, st.a, st.stop, false);
        }
        break;
      case K::Metaspace:
        for (size_t k = 0; k < tokens.size(); ++k) {
          replace_all(tokens[k], st.a, " ");
          if (k == 0 && st.prepend && tokens[k].starts_with(' ')) tokens[k].erase(0, 1);
        }
        break;
    }
  }
  std::string s;
  for (const auto& t : tokens) s += t;
  return s;
}

}  // namespace ar::tok
