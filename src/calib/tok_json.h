// Reads tokenizer.json in one SAX pass: the large model.vocab / model.merges go straight into
// flat vectors, everything else into a small nlohmann DOM. A full DOM of the 11 MB Qwen3 file
// costs ~0.9 s to build and free; this path avoids most of that.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ar::tok {

struct TokenizerJson {
  nlohmann::json doc;  // the whole file minus model.vocab / model.merges when gathered below
  bool has_vocab = false;   // model.vocab was an object, gathered into `vocab`
  bool has_merges = false;  // model.merges was an array, gathered into `merges`
  std::vector<std::pair<std::string, int64_t>> vocab;           // in file order
  std::vector<std::pair<std::string, std::string>> merges;      // "a b" already split
};

// Throws ar::Error naming `file` on invalid JSON, non-integer vocab ids or malformed merges.
TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& file);

}  // namespace ar::tok
