// HuggingFace tokenizer.json semantics for BPE models: byte-level BPE (GPT-2, Llama-3, Qwen2/3)
// and SentencePiece-style BPE with byte fallback (Llama-2), added tokens, BOS/EOS post-processing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ar {

class Tokenizer {
 public:
  // Loads dir/tokenizer.json and, if present, dir/tokenizer_config.json. Throws ar::Error naming
  // the file (missing, invalid JSON, unsupported model/normalizer/pre-tokenizer/decoder type,
  // merges naming unknown tokens, invalid regex).
  static Tokenizer load(const std::filesystem::path& dir);
  // Same, from the text of tokenizer.json (and tokenizer_config.json, "" if absent); `name`
  // is what error messages call the source.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json,
                             const std::string& name);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Ids for `text` (invalid UTF-8 is first repaired with U+FFFD). Added tokens found in the text
  // always become their ids; with add_special_tokens the post-processor's BOS/EOS are added.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // Text for `ids` through the declared decoder. Ids the vocabulary does not know are dropped
  // (as HF does); skip_special_tokens drops added tokens marked special.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  int32_t bos_id() const;      // -1 if none
  int32_t eos_id() const;      // -1 if none
  bool adds_bos() const;       // whether encode(.., true) prepends BOS
  size_t vocab_size() const;   // number of ids incl. added tokens (max id + 1)
  // Token string of `id` ("" when unknown): model tokens in the model's alphabet, added tokens
  // as written.
  std::string id_to_token(int32_t id) const;
  // Id of a token string (added tokens first, then the model vocabulary), or -1.
  int32_t token_to_id(std::string_view token) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ar
