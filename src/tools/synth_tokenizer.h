// A small byte-level BPE tokenizer for synthetic models, in HuggingFace tokenizer.json form
// (GPT-2 layout: ByteLevel pre-tokenizer with the GPT-2 split regex, ByteLevel decoder, BPE model).
// Merges are learned at generation time from a text (normally builtin_calibration_text()).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ar {

// GPT-2's byte -> printable unicode mapping (bytes_to_unicode), as a UTF-8 string.
std::string byte_level_symbol(uint8_t b);
// Maps every byte of `bytes` through byte_level_symbol.
std::string byte_level_encode(std::string_view bytes);

// The GPT-2 pre-tokenizer split ('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)
// for ASCII text; non-ASCII bytes are treated as letters. Used only to learn merges.
std::vector<std::string_view> split_gpt2_ascii(std::string_view text);

struct SynthTokenizer {
  nlohmann::ordered_json tokenizer_json;    // tokenizer.json
  nlohmann::ordered_json tokenizer_config;  // tokenizer_config.json
  nlohmann::ordered_json special_tokens_map;
  int64_t vocab_size = 0;  // byte symbols + learned tokens + the special token
  int64_t eos_id = 0;      // "<|endoftext|>"
  std::vector<std::pair<std::string, std::string>> merges;  // byte-level strings, in rank order
};

// Learns up to `max_merges` merges (most frequent adjacent pair first, ties to the smaller ids;
// stops early when no pair occurs twice). Ids: 0..255 bytes, then learned tokens, then eos.
SynthTokenizer build_synth_tokenizer(std::string_view text, int max_merges, int64_t model_max_length);

}  // namespace ar
