// UTF-8 helpers for the tokenizer: validation with WHATWG/Rust-style lossy repair, code point
// iteration, Unicode normal forms (libutf8proc) and GPT-2's byte-level byte <-> character map.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace ar::tok {

// Byte length of the UTF-8 sequence that starts with `lead` (1 for ASCII and for stray bytes).
inline size_t utf8_seq_len(unsigned char lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool is_valid_utf8(std::string_view s);
// Copy of `s` where every maximal invalid subsequence becomes U+FFFD, as Rust's
// String::from_utf8_lossy and the WHATWG decoder do.
std::string utf8_lossy(std::string_view s);
// Appends the UTF-8 encoding of code point `cp`.
void append_utf8(std::string& out, uint32_t cp);
// Decodes the code point at s[i] (s must be valid UTF-8) and advances i past it.
uint32_t next_code_point(std::string_view s, size_t& i);

enum class NormalForm { NFC, NFD, NFKC, NFKD };
// Unicode normalisation of valid UTF-8 text; pure-ASCII text is returned unchanged quickly.
std::string normalize_unicode(std::string_view s, NormalForm form);
// Unicode lower-casing, code point by code point (as Rust's str::to_lowercase for the BMP cases).
std::string lowercase_unicode(std::string_view s);
// Unicode White_Space, as Rust's char::is_whitespace.
bool is_unicode_space(uint32_t cp);

// GPT-2 byte-level alphabet: printable Latin-1 bytes stand for themselves, the other 68 bytes
// are shifted to U+0100.. so every byte becomes a visible character.
// Appends the mapped form of the raw bytes `raw` to `out`.
void byte_level_encode(std::string_view raw, std::string& out);
// Inverse map of one mapped token; false (out untouched past its old size) when some character
// is not in the alphabet.
bool byte_level_decode(std::string_view mapped, std::string& out);

}  // namespace ar::tok
