// Dataset files for eval and calibration. Every failure names the file and the offending line/value.
#include "calib/dataset.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "calib/builtin_text.h"
#include "calib/tokenizer.h"
#include "core/error.h"
#include "io/file.h"

namespace ar {

DatasetKind detect_dataset_kind(const std::filesystem::path& file) {
  if (file.extension() == ".jsonl") return DatasetKind::JsonLines;
  std::ifstream in(file, std::ios::binary);
  if (!in) AR_THROW(file.string(), ": cannot open");
  char ch;
  while (in.get(ch))
    if (!std::isspace(static_cast<unsigned char>(ch))) return ch == '[' ? DatasetKind::TokenIds : DatasetKind::Text;
  return DatasetKind::Text;
}

std::vector<std::vector<int32_t>> read_token_id_file(const std::filesystem::path& file) {
  const std::string text = read_text_file(file, kNoSizeLimit);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) AR_THROW(file.string(), ": invalid JSON (expected a list of token ids)");
  if (!j.is_array()) AR_THROW(file.string(), ": expected a JSON list of token ids");
  auto to_ids = [&](const nlohmann::json& a, size_t seq) {
    std::vector<int32_t> ids;
    ids.reserve(a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      const auto& v = a[i];
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
        AR_THROW(file.string(), ": sequence ", seq, ", position ", i, ": ", v.dump(), " is not a token id");
      ids.push_back(int32_t(v.get<int64_t>()));
    }
    return ids;
  };
  std::vector<std::vector<int32_t>> out;
  if (!j.empty() && j[0].is_array()) {
    for (size_t s = 0; s < j.size(); ++s) {
      if (!j[s].is_array()) AR_THROW(file.string(), ": element ", s, " is not a list (mixed flat and nested ids)");
      out.push_back(to_ids(j[s], s));
    }
  } else {
    out.push_back(to_ids(j, 0));
  }
  return out;
}

std::vector<std::string> read_jsonl_texts(const std::filesystem::path& file) {
  // Read whole first: a read error then throws instead of silently ending the getline loop early.
  std::istringstream in(read_text_file(file, kNoSizeLimit));
  std::vector<std::string> texts;
  std::string line;
  for (size_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) AR_THROW(file.string(), ":", lineno, ": not a JSON object");
    auto t = j.find("text");
    if (t == j.end() || !t->is_string()) AR_THROW(file.string(), ":", lineno, ": no string field \"text\"");
    texts.push_back(t->get<std::string>());
  }
  return texts;
}

std::vector<std::vector<int32_t>> load_eval_tokens(const std::filesystem::path& file, const Tokenizer* tok) {
  if (file == kBuiltinDataset) {
    if (!tok) AR_THROW("the built-in text needs a tokenizer");
    return {tok->encode(builtin_calibration_text(), true)};
  }
  switch (detect_dataset_kind(file)) {
    case DatasetKind::TokenIds: return read_token_id_file(file);
    case DatasetKind::JsonLines: {
      if (!tok) AR_THROW(file.string(), ": a tokenizer is needed to read text");
      std::string joined;
      auto texts = read_jsonl_texts(file);
      for (size_t i = 0; i < texts.size(); ++i) joined += (i ? "\n\n" : "") + texts[i];
      return {tok->encode(joined, true)};
    }
    case DatasetKind::Text:
      if (!tok) AR_THROW(file.string(), ": a tokenizer is needed to read text");
      return {tok->encode(read_text_file(file, kNoSizeLimit), true)};
  }
  return {};
}

std::vector<std::vector<int32_t>> cut_windows(const std::vector<std::vector<int32_t>>& docs, int64_t seqlen) {
  AR_CHECK(seqlen >= 2, "seqlen ", seqlen);
  std::vector<std::vector<int32_t>> w;
  for (const auto& d : docs)
    for (size_t s = 0; s + size_t(seqlen) <= d.size(); s += size_t(seqlen))
      w.emplace_back(d.begin() + s, d.begin() + s + seqlen);
  return w;
}

}  // namespace ar
