// Reading evaluation / calibration data: plain text, JSON Lines with a "text" field, or token ids
// in JSON (a flat list for one document, or a list of lists for separate sequences).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ar {

class Tokenizer;

enum class DatasetKind { Text, JsonLines, TokenIds };
// By content: a file whose first non-space byte is '[' is token ids; '.jsonl' files are JSON Lines.
DatasetKind detect_dataset_kind(const std::filesystem::path& file);

// Token ids from a JSON file: [1, 2, ...] -> one sequence; [[...], [...]] -> several.
std::vector<std::vector<int32_t>> read_token_id_file(const std::filesystem::path& file);

// Texts of a JSON Lines file (the "text" field of every line).
std::vector<std::string> read_jsonl_texts(const std::filesystem::path& file);

// Dataset name that selects the built-in English text (src/calib/builtin_text.h) instead of a file.
inline constexpr const char* kBuiltinDataset = "builtin";

// The evaluation token stream(s) of SPEC §5 (or the built-in text for kBuiltinDataset): text -> tokenizer with special tokens (BOS if the tokenizer
// adds one); JSON Lines -> texts joined with "\n\n" then tokenized; ids -> as given.
std::vector<std::vector<int32_t>> load_eval_tokens(const std::filesystem::path& file, const Tokenizer* tok);

// Consecutive non-overlapping windows of seqlen tokens; the remainder is dropped (SPEC §5).
std::vector<std::vector<int32_t>> cut_windows(const std::vector<std::vector<int32_t>>& docs, int64_t seqlen);

}  // namespace ar
