// Calibration samples (SPEC §2 / issue 6 item 1). Deterministic for a given seed on every platform.
#include "calib/calib_set.h"

#include "calib/builtin_text.h"
#include "calib/dataset.h"
#include "calib/tokenizer.h"
#include "core/error.h"
#include "io/file.h"

namespace ar {

namespace {
// splitmix64: tiny, well-mixed, and fully specified (unlike std::uniform_int_distribution).
uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

void seeded_shuffle(std::vector<size_t>& idx, uint64_t seed) {
  uint64_t s = seed;
  for (size_t i = idx.size(); i > 1; --i) {
    size_t j = size_t(splitmix(s) % i);
    std::swap(idx[i - 1], idx[j]);
  }
}

std::vector<std::string> split_text_documents(const std::string& text) {
  std::vector<std::string> docs;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    std::string d = text.substr(pos, end - pos);
    if (d.find_first_not_of(" \t\r\n") != std::string::npos) docs.push_back(std::move(d));
    pos = end + 2;
  }
  return docs;
}

CalibSet build_calib_set(std::vector<std::vector<int32_t>> docs, const CalibOptions& opt) {
  AR_CHECK(opt.nsamples > 0 && opt.seqlen > 1, "calibration options");
  CalibSet set;
  std::vector<size_t> longs;
  for (size_t i = 0; i < docs.size(); ++i)
    if (int64_t(docs[i].size()) >= opt.seqlen) longs.push_back(i);
  if (int64_t(longs.size()) >= opt.nsamples) {
    seeded_shuffle(longs, opt.seed);
    for (int64_t k = 0; k < opt.nsamples; ++k) {
      const auto& d = docs[longs[size_t(k)]];
      set.samples.emplace_back(d.begin(), d.begin() + opt.seqlen);
    }
    set.note = cat(opt.nsamples, " samples from ", longs.size(), " documents of at least ", opt.seqlen, " tokens");
    return set;
  }
  // Too few long documents: concatenate everything (in a seeded order) and cut windows.
  std::vector<size_t> order(docs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  seeded_shuffle(order, opt.seed);
  std::vector<int32_t> all;
  for (size_t i : order) all.insert(all.end(), docs[i].begin(), docs[i].end());
  for (size_t s = 0; s + size_t(opt.seqlen) <= all.size() && int64_t(set.samples.size()) < opt.nsamples;
       s += size_t(opt.seqlen))
    set.samples.emplace_back(all.begin() + s, all.begin() + s + opt.seqlen);
  set.concatenated = true;
  if (set.samples.empty())
    AR_THROW("calibration data has ", all.size(), " tokens in all: not enough for one sample of --seqlen ",
             opt.seqlen);
  set.note = cat("only ", longs.size(), " documents have ", opt.seqlen,
                 " tokens; concatenated all documents and cut ", set.samples.size(), " windows");
  if (int64_t(set.samples.size()) < opt.nsamples)
    set.note += cat(" (fewer than --nsamples ", opt.nsamples, ")");
  return set;
}

CalibSet build_calib_set_from_texts(const std::vector<std::string>& texts, const Tokenizer& tok,
                                    const CalibOptions& opt) {
  std::vector<std::vector<int32_t>> docs;
  docs.reserve(texts.size());
  for (const auto& t : texts) docs.push_back(tok.encode(t, true));
  return build_calib_set(std::move(docs), opt);
}

CalibSet build_calib_set(const std::filesystem::path& file, const Tokenizer* tok, const CalibOptions& opt) {
  std::vector<std::vector<int32_t>> docs;
  if (file == kBuiltinDataset) {
    if (!tok) AR_THROW("the built-in text needs a tokenizer");
    for (const auto& t : split_text_documents(std::string(builtin_calibration_text()))) docs.push_back(tok->encode(t, true));
    return build_calib_set(std::move(docs), opt);
  }
  switch (detect_dataset_kind(file)) {
    case DatasetKind::TokenIds: docs = read_token_id_file(file); break;
    case DatasetKind::JsonLines:
      if (!tok) AR_THROW(file.string(), ": a tokenizer is needed to read text");
      for (const auto& t : read_jsonl_texts(file)) docs.push_back(tok->encode(t, true));
      break;
    case DatasetKind::Text:
      if (!tok) AR_THROW(file.string(), ": a tokenizer is needed to read text");
      for (const auto& t : split_text_documents(read_text_file(file, kNoSizeLimit))) docs.push_back(tok->encode(t, true));
      break;
  }
  return build_calib_set(std::move(docs), opt);
}

}  // namespace ar
