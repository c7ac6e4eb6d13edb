// The BPE model of a HF tokenizer.json ("model": {"type": "BPE", ...}): vocabulary, ranked merges,
// unk / fuse_unk / byte_fallback / ignore_merges, following the Rust `tokenizers` BPE semantics.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "calib/tok_hash.h"

namespace ar::tok {

struct BpeModel {
  FlatStringMap<int32_t> vocab;
  std::vector<std::string> id_to_token;  // "" for unused ids; the Tokenizer takes it over at load
  struct Merge {
    int32_t rank;    // position in the merges list: lower merges first
    int32_t new_id;  // id of the concatenated token
  };
  FlatPairMap<Merge> merges;  // key: (left id << 32) | right id
  int32_t n_ranks = 0;         // length of the merges list (ranks are below it)
  int32_t unk_id = -1;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  std::string continuing_subword_prefix;  // added to every symbol but the first of a word
  std::string end_of_word_suffix;         // added to the last symbol of a word
  std::array<int32_t, 256> byte_ids;      // id of "<0xNN>" or -1 (byte_fallback)
  // Id of each single-character token below U+0800 (ASCII, the byte-level alphabet, Latin,
  // Cyrillic...), -1 if absent: the first step of every word looks characters up here.
  std::vector<int32_t> small_char_ids;

  // Id of token `s` in the vocabulary, or -1.
  int32_t find(std::string_view s) const {
    const int32_t* id = vocab.find(s);
    return id ? *id : -1;
  }
  // Character pairs (x, y) that some merge joins: x ends its left token, y starts its right one
  // (key (x << 32) | y). A word can be cut between two in-vocabulary characters that form no
  // such pair: no merge will ever cross that point, so both sides tokenize independently.
  FlatPairMap<uint8_t> junctions;
  bool cuttable = false;  // no subword prefix / suffix, so cutting a word changes nothing

  // Appends the ids of one pre-tokenized word (already in the model's alphabet). Long words
  // (a whole paragraph when there is no pre-tokenizer) are done in bounded slices at safe cuts.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

 private:
  void tokenize_slice(std::string_view word, std::vector<int32_t>& out) const;
  // First safe cut at or after byte `from` (a character boundary) and before `to`, or npos.
  size_t find_cut(std::string_view word, size_t from, size_t to) const;
};

// Ids index dense tables, so a vocabulary may leave only so many ids unused: an id past
// 4 x (number of tokens) + 65536 is taken as a corrupt file rather than allocated for.
inline bool plausible_token_id(int64_t id, size_t n_tokens) {
  return id >= 0 && static_cast<uint64_t>(id) <= 4 * static_cast<uint64_t>(n_tokens) + 65536;
}

struct TokenizerJson;
// Builds the model from the "model" object of `file` (vocab and merges taken, moved, from `src`
// when its SAX pass gathered them); throws ar::Error naming the file for an unsupported type,
// malformed vocab/merges or merges that name unknown tokens.
BpeModel load_bpe_model(TokenizerJson& src, const std::string& file);

}  // namespace ar::tok
