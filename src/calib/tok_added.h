// Added tokens of a HF tokenizer.json ("added_tokens"): found in the raw text before anything
// else (leftmost, then longest match), honouring lstrip / rstrip / single_word; never BPE'd.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ar::tok {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;  // matched on the raw text all the same (see tokenizer.cpp)
};

// A piece of the input: either plain text to normalize and BPE, or one added token.
struct Segment {
  size_t begin = 0, end = 0;  // byte span in the input
  int32_t added_id = -1;      // >= 0: the span is this added token
};

class AddedVocab {
 public:
  // Throws ar::Error naming `file` for malformed entries.
  static AddedVocab parse(const nlohmann::json& added_tokens, const std::string& file);
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  // Splits `text` into plain spans and added tokens, in order; empty plain spans are omitted.
  void split(std::string_view text, std::vector<Segment>& out) const;

 private:
  std::vector<AddedToken> tokens_;
  // Indices into tokens_ by first byte of the content, longest content first.
  std::array<std::vector<uint32_t>, 256> by_first_byte_;
};

}  // namespace ar::tok
