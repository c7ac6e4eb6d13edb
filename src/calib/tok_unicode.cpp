// UTF-8 helpers, normal forms via libutf8proc, and the GPT-2 byte-level alphabet
// (bytes_to_unicode in openai/gpt-2 encoder.py; the same table HF ByteLevel uses).
#include "calib/tok_unicode.h"

#include <utf8proc.h>

#include <array>
#include <cstdlib>

#include "core/error.h"

namespace ar::tok {
namespace {

// Accepted range for the second byte of a sequence with this lead byte (Unicode Table 3-7);
// returns the number of continuation bytes, or -1 for a byte that cannot start a sequence.
int lead_info(unsigned char b, unsigned char& lo, unsigned char& hi) {
  lo = 0x80;
  hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) return 1;
  if (b == 0xE0) { lo = 0xA0; return 2; }
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return 2;
  if (b == 0xED) { hi = 0x9F; return 2; }
  if (b == 0xF0) { lo = 0x90; return 3; }
  if (b >= 0xF1 && b <= 0xF3) return 3;
  if (b == 0xF4) { hi = 0x8F; return 3; }
  return -1;
}

// Length of the valid sequence at s[i], or 0 with `bad_end` set to the first byte after the
// maximal invalid subpart.
size_t valid_seq_at(std::string_view s, size_t i, size_t& bad_end) {
  unsigned char b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return 1;
  unsigned char lo, hi;
  int need = lead_info(b, lo, hi);
  if (need < 0) { bad_end = i + 1; return 0; }
  size_t j = i + 1;
  for (int k = 0; k < need; ++k, ++j) {
    if (j >= s.size()) { bad_end = j; return 0; }
    unsigned char c = static_cast<unsigned char>(s[j]);
    if (c < lo || c > hi) { bad_end = j; return 0; }
    lo = 0x80;
    hi = 0xBF;
  }
  return j - i;
}

struct ByteLevelTables {
  std::array<uint16_t, 256> byte_to_cp{};
  std::array<int16_t, 512> cp_to_byte{};  // every mapped code point is below U+0144
  std::array<std::string, 256> byte_to_utf8;
  ByteLevelTables() {
    cp_to_byte.fill(-1);
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      uint16_t cp = printable ? static_cast<uint16_t>(b) : static_cast<uint16_t>(256 + shifted++);
      byte_to_cp[b] = cp;
      cp_to_byte[cp] = static_cast<int16_t>(b);
      append_utf8(byte_to_utf8[b], cp);
    }
  }
};

const ByteLevelTables& byte_tables() {
  static const ByteLevelTables t;
  return t;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  size_t i = 0, bad = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) { ++i; continue; }
    size_t n = valid_seq_at(s, i, bad);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t bad = 0;
    size_t n = valid_seq_at(s, i, bad);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i = bad;
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t next_code_point(std::string_view s, size_t& i) {
  auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(s[k])); };
  uint32_t c = b(i);
  size_t n = utf8_seq_len(static_cast<unsigned char>(c));
  if (n > s.size() - i) n = 1;  // only reached on invalid input; never read past the end
  uint32_t cp;
  switch (n) {
    case 1: cp = c; break;
    case 2: cp = ((c & 0x1F) << 6) | (b(i + 1) & 0x3F); break;
    case 3: cp = ((c & 0x0F) << 12) | ((b(i + 1) & 0x3F) << 6) | (b(i + 2) & 0x3F); break;
    default:
      cp = ((c & 0x07) << 18) | ((b(i + 1) & 0x3F) << 12) | ((b(i + 2) & 0x3F) << 6) | (b(i + 3) & 0x3F);
  }
  i += n;
  return cp;
}

namespace {

// utf8proc on one run of text (explicit length, so NUL bytes do not end it).
void normalize_run(std::string_view s, int flags, std::string& out) {
  utf8proc_uint8_t* dst = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                    static_cast<utf8proc_ssize_t>(s.size()), &dst,
                                    static_cast<utf8proc_option_t>(flags));
  if (n < 0) AR_THROW("tokenizer: Unicode normalisation failed: ", utf8proc_errmsg(n));
  out.append(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
  std::free(dst);
}

}  // namespace

std::string normalize_unicode(std::string_view s, NormalForm form) {
  int flags = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::NFC: flags |= UTF8PROC_COMPOSE; break;
    case NormalForm::NFD: flags |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::NFKC: flags |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::NFKD: flags |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  // ASCII characters are invariant under all four forms, never reorder, and never combine with
  // a character before them; only a non-ASCII run plus the one ASCII character before it (a base
  // that a combining mark may compose with) can change. Mostly-ASCII text skips utf8proc.
  std::string out;
  out.reserve(s.size());
  size_t copied = 0, i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t b = i > copied ? i - 1 : i;
    size_t e = i;
    while (e < s.size() && static_cast<unsigned char>(s[e]) >= 0x80) ++e;
    out.append(s.substr(copied, b - copied));
    normalize_run(s.substr(b, e - b), flags, out);
    copied = i = e;
  }
  out.append(s.substr(copied));
  return out;
}

std::string lowercase_unicode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
      ++i;
      continue;
    }
    append_utf8(out, static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(next_code_point(s, i)))));
  }
  return out;
}

bool is_unicode_space(uint32_t cp) {
  if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return true;
  if (cp < 0x85) return false;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

void byte_level_encode(std::string_view raw, std::string& out) {
  const auto& t = byte_tables();
  for (char c : raw) out.append(t.byte_to_utf8[static_cast<unsigned char>(c)]);
}

bool byte_level_decode(std::string_view mapped, std::string& out) {
  const auto& t = byte_tables();
  size_t old = out.size();
  size_t i = 0;
  while (i < mapped.size()) {
    uint32_t cp = next_code_point(mapped, i);
    if (cp >= t.cp_to_byte.size() || t.cp_to_byte[cp] < 0) {
      out.resize(old);
      return false;
    }
    out.push_back(static_cast<char>(t.cp_to_byte[cp]));
  }
  return true;
}

}  // namespace ar::tok
