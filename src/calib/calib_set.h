// The calibration set: --nsamples sequences of --seqlen tokens built from a dataset file the way the
// Python AutoRound does: tokenize each document, keep those with at least seqlen tokens, truncate
// them to seqlen, seeded shuffle; too few long documents -> concatenate all and cut windows instead.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ar {

class Tokenizer;

struct CalibOptions {
  int64_t nsamples = 128;
  int64_t seqlen = 2048;
  uint64_t seed = 42;
};

struct CalibSet {
  std::vector<std::vector<int32_t>> samples;  // each exactly seqlen ids
  bool concatenated = false;                  // the fallback was used
  std::string note;                           // what was done, for the log
};

// Documents of a dataset file: JSON Lines -> one per "text"; token-id JSON -> one per list;
// plain text -> paragraphs separated by blank lines.
std::vector<std::string> split_text_documents(const std::string& text);

// `tok` may be null only for token-id files.
CalibSet build_calib_set(const std::filesystem::path& file, const Tokenizer* tok, const CalibOptions& opt);
// From documents in memory (the Python API's list of texts), each tokenized as a file's are.
CalibSet build_calib_set_from_texts(const std::vector<std::string>& texts, const Tokenizer& tok, const CalibOptions& opt);
// From already tokenized documents (the core of build_calib_set, for tests and the built-in text).
CalibSet build_calib_set(std::vector<std::vector<int32_t>> docs, const CalibOptions& opt);

// Fisher-Yates with a fixed 64-bit generator, so the order is the same on every platform.
void seeded_shuffle(std::vector<size_t>& idx, uint64_t seed);

}  // namespace ar
