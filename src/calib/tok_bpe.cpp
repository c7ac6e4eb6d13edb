// BPE merge loop: symbols in a doubly linked list, candidate pairs in a min-heap ordered by
// (merge rank, position) (rank buckets for very long words), stale entries skipped on pop.
// Same result as the Rust `tokenizers` Word::merge_all (lowest rank first, leftmost on ties).
#include "calib/tok_bpe.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

#include "calib/tok_json.h"
#include "calib/tok_unicode.h"
#include "core/error.h"

namespace ar::tok {
namespace {

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// Words at least this long (and long next to the merge list) take the bucket path.
constexpr size_t kBucketMinSymbols = 4096;
// Long words are tokenized in slices of about this many bytes, cut where no merge can cross.
constexpr size_t kSliceBytes = 4096;

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
};

struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  // std heap is a max-heap: "greater" = later in merge order.
  bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

std::string optional_string(const nlohmann::json& m, const char* key) {
  auto it = m.find(key);
  if (it == m.end() || it->is_null()) return {};
  return it->get<std::string>();
}

bool optional_bool(const nlohmann::json& m, const char* key) {
  auto it = m.find(key);
  return it != m.end() && !it->is_null() && it->get<bool>();
}

// Applies merge (rank, new_id) to the pair starting at `pos` if it is still there; returns false
// for a stale candidate.
bool apply_merge(std::vector<Symbol>& sym, const FlatPairMap<BpeModel::Merge>& merges, int32_t pos,
                 int32_t rank, int32_t new_id) {
  Symbol& s = sym[pos];
  if (s.id < 0 || s.next < 0) return false;  // merged away meanwhile
  const BpeModel::Merge* m = merges.find(pair_key(s.id, sym[s.next].id));
  if (!m || m->rank != rank) return false;  // the pair changed
  Symbol& r = sym[s.next];
  s.id = new_id;
  s.next = r.next;
  if (r.next >= 0) sym[r.next].prev = pos;
  r.id = -1;
  return true;
}

// Merge candidate at `pos` (the pair pos, next(pos)), or nullptr.
const BpeModel::Merge* pair_at(const std::vector<Symbol>& sym, const FlatPairMap<BpeModel::Merge>& merges,
                               int32_t pos) {
  if (pos < 0 || sym[pos].next < 0) return nullptr;
  return merges.find(pair_key(sym[pos].id, sym[sym[pos].next].id));
}

void merge_with_heap(std::vector<Symbol>& sym, const FlatPairMap<BpeModel::Merge>& merges) {
  std::vector<Candidate> heap;
  auto consider = [&](int32_t pos) {
    if (const BpeModel::Merge* m = pair_at(sym, merges, pos)) {
      heap.push_back({m->rank, pos, m->new_id});
      std::push_heap(heap.begin(), heap.end());
    }
  };
  for (int32_t k = 0; k + 1 < static_cast<int32_t>(sym.size()); ++k) consider(k);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Candidate c = heap.back();
    heap.pop_back();
    if (!apply_merge(sym, merges, c.pos, c.rank, c.new_id)) continue;
    consider(sym[c.pos].prev);
    consider(c.pos);
  }
}

// Same order as the heap, (rank, position) ascending: one bucket of positions per rank, each
// sorted when its turn comes. A merge that creates a pair of lower rank than the one being
// applied (only in hand-made merge lists) sends the scan back to that rank.
void merge_with_buckets(std::vector<Symbol>& sym, const FlatPairMap<BpeModel::Merge>& merges, int32_t n_ranks) {
  std::vector<std::vector<int32_t>> buckets(static_cast<size_t>(n_ranks));
  std::vector<int32_t> new_id_of(static_cast<size_t>(n_ranks), -1);
  int32_t lowest = n_ranks;
  auto consider = [&](int32_t pos) {
    if (const BpeModel::Merge* m = pair_at(sym, merges, pos)) {
      buckets[m->rank].push_back(pos);
      new_id_of[m->rank] = m->new_id;
      lowest = std::min(lowest, m->rank);
    }
  };
  for (int32_t k = 0; k + 1 < static_cast<int32_t>(sym.size()); ++k) consider(k);
  std::vector<int32_t> work;
  int32_t r = lowest;
  while (r < n_ranks) {
    if (buckets[r].empty()) {
      ++r;
      continue;
    }
    work.clear();
    work.swap(buckets[r]);
    std::sort(work.begin(), work.end());
    lowest = n_ranks;
    size_t k = 0;
    for (; k < work.size(); ++k) {
      if (!apply_merge(sym, merges, work[k], r, new_id_of[r])) continue;
      consider(sym[work[k]].prev);
      consider(work[k]);
      if (lowest < r) break;
    }
    if (lowest < r) {
      // Put back what is left of this rank and go back to the lower one.
      buckets[r].insert(buckets[r].end(), work.begin() + static_cast<std::ptrdiff_t>(k) + 1, work.end());
      r = lowest;
    }
  }
}

}  // namespace

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges) {
    int32_t id = find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (!cuttable || word.size() <= 2 * kSliceBytes) {
    tokenize_slice(word, out);
    return;
  }
  size_t pos = 0;
  while (word.size() - pos > 2 * kSliceBytes) {
    size_t from = pos + kSliceBytes;
    while (from < word.size() && (static_cast<unsigned char>(word[from]) & 0xC0) == 0x80) ++from;
    size_t cut = find_cut(word, from, word.size());
    if (cut == std::string_view::npos) break;  // nothing is safe: the rest in one go
    tokenize_slice(word.substr(pos, cut - pos), out);
    pos = cut;
  }
  tokenize_slice(word.substr(pos), out);
}

size_t BpeModel::find_cut(std::string_view word, size_t from, size_t to) const {
  // Single-character token id and code point of the character at byte i (id -1 if none).
  auto char_at = [&](size_t i, size_t& next, uint32_t& cp) {
    next = i;
    cp = next_code_point(word, next);
    return cp < small_char_ids.size() ? small_char_ids[cp] : find(word.substr(i, next - i));
  };
  size_t prev_start = from;  // find the character that ends at `from`
  do --prev_start; while (prev_start > 0 && (static_cast<unsigned char>(word[prev_start]) & 0xC0) == 0x80);
  size_t i = prev_start, next = 0;
  uint32_t x = 0, y = 0;
  int32_t left = char_at(i, next, x);
  i = next;
  while (i < to) {
    int32_t right = char_at(i, next, y);
    if (left >= 0 && right >= 0 && !junctions.find((static_cast<uint64_t>(x) << 32) | y)) return i;
    left = right;
    x = y;
    i = next;
  }
  return std::string_view::npos;
}

void BpeModel::tokenize_slice(std::string_view word, std::vector<int32_t>& out) const {
  // Initial symbols: one per character, with byte fallback or (fused) unk for unknown ones.
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  auto push = [&](int32_t id) {
    sym.push_back({id, static_cast<int32_t>(sym.size()) - 1, -1});
  };
  bool pending_unk = false;
  std::string key;
  size_t i = 0;
  while (i < word.size()) {
    size_t start = i;
    size_t n = std::min(utf8_seq_len(static_cast<unsigned char>(word[i])), word.size() - i);
    i += n;
    std::string_view ch = word.substr(start, n);
    int32_t id;
    bool affixed = (start > 0 && !continuing_subword_prefix.empty()) ||
                   (i == word.size() && !end_of_word_suffix.empty());
    if (affixed) {
      key.clear();
      if (start > 0) key += continuing_subword_prefix;
      key += ch;
      if (i == word.size()) key += end_of_word_suffix;
      id = find(key);
    } else if (n <= 2) {
      uint32_t cp = n == 1 ? static_cast<unsigned char>(ch[0])
                           : ((static_cast<unsigned char>(ch[0]) & 0x1Fu) << 6) | (static_cast<unsigned char>(ch[1]) & 0x3Fu);
      id = cp < small_char_ids.size() ? small_char_ids[cp] : find(ch);
    } else {
      id = find(ch);
    }
    if (id >= 0) {
      if (pending_unk) push(unk_id), pending_unk = false;
      push(id);
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      for (char c : ch) all = all && byte_ids[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        if (pending_unk) push(unk_id), pending_unk = false;
        for (char c : ch) push(byte_ids[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id < 0) continue;  // no unk token: the character is dropped, as in HF
    if (pending_unk && !fuse_unk) push(unk_id);
    pending_unk = true;
  }
  if (pending_unk) push(unk_id);
  if (!sym.empty()) sym.back().next = -1;
  for (size_t k = 0; k + 1 < sym.size(); ++k) sym[k].next = static_cast<int32_t>(k + 1);

  // Long words (a whole paragraph when there is no pre-tokenizer) use rank buckets: same order,
  // without a heap of millions of entries.
  if (sym.size() >= kBucketMinSymbols && sym.size() * 4 >= static_cast<size_t>(n_ranks))
    merge_with_buckets(sym, merges, n_ranks);
  else
    merge_with_heap(sym, merges);
  for (int32_t k = sym.empty() ? -1 : 0; k >= 0; k = sym[k].next) out.push_back(sym[k].id);
}

BpeModel load_bpe_model(TokenizerJson& src, const std::string& file) {
  const auto mi = src.doc.find("model");
  if (mi == src.doc.end() || !mi->is_object()) AR_THROW(file, ": \"model\" is missing or not an object");
  const nlohmann::json& m = *mi;
  std::string type = m.contains("type") && !m["type"].is_null() ? m["type"].get<std::string>() : "BPE";
  if (type != "BPE")
    AR_THROW(file, ": unsupported tokenizer model type '", type, "' (only BPE is supported)");
  BpeModel b;
  // Vocabulary: gathered by the SAX pass, or still in the DOM if it was not an object.
  if (!src.has_vocab) {
    if (m.contains("vocab")) AR_THROW(file, ": model.vocab is not an object");
    AR_THROW(file, ": model.vocab is missing");
  }
  b.vocab.reserve(src.vocab.size());
  int64_t max_id = -1;
  for (auto& [tok, id] : src.vocab) {
    if (!plausible_token_id(id, src.vocab.size()))
      AR_THROW(file, ": model.vocab['", tok, "'] = ", id, " is far beyond the vocabulary size (",
               src.vocab.size(), " tokens)");
    max_id = std::max(max_id, id);
    b.vocab.insert_or_assign(tok, static_cast<int32_t>(id));
  }
  src.vocab = {};
  b.id_to_token.resize(static_cast<size_t>(max_id + 1));
  b.vocab.for_each([&](std::string_view tok, int32_t id) { b.id_to_token[static_cast<size_t>(id)] = tok; });

  b.continuing_subword_prefix = optional_string(m, "continuing_subword_prefix");
  b.end_of_word_suffix = optional_string(m, "end_of_word_suffix");
  b.fuse_unk = optional_bool(m, "fuse_unk");
  b.byte_fallback = optional_bool(m, "byte_fallback");
  b.ignore_merges = optional_bool(m, "ignore_merges");
  if (auto it = m.find("dropout"); it != m.end() && !it->is_null() && it->get<double>() != 0.0)
    AR_THROW(file, ": BPE dropout is not supported (deterministic tokenization only)");
  std::string unk = optional_string(m, "unk_token");
  if (!unk.empty()) b.unk_id = b.find(unk);  // may also be an added token: resolved by the caller
  b.small_char_ids.assign(0x800, -1);
  for (uint32_t cp = 0; cp < 0x800; ++cp) {
    std::string ch;
    append_utf8(ch, cp);
    b.small_char_ids[cp] = b.find(ch);
  }
  b.byte_ids.fill(-1);
  for (int v = 0; v < 256; ++v) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", v);
    b.byte_ids[v] = b.find(name);
  }

  if (!src.has_merges && m.contains("merges") && !m["merges"].is_null())
    AR_THROW(file, ": model.merges is not an array");
  b.merges.reserve(src.merges.size());
  std::string merged;
  for (size_t r = 0; r < src.merges.size(); ++r) {
    const auto& [left, right] = src.merges[r];
    int32_t a = b.find(left), c = b.find(right);
    if (a < 0) AR_THROW(file, ": model.merges[", r, "] names token '", left, "' that is not in the vocabulary");
    if (c < 0) AR_THROW(file, ": model.merges[", r, "] names token '", right, "' that is not in the vocabulary");
    merged.assign(left);
    merged += std::string_view(right).substr(
        right.starts_with(b.continuing_subword_prefix) ? b.continuing_subword_prefix.size() : 0);
    int32_t id = b.find(merged);
    if (id < 0) AR_THROW(file, ": model.merges[", r, "]: merged token '", merged, "' is not in the vocabulary");
    // A repeated pair: the last rank wins, as in HF.
    b.merges.insert_or_assign(pair_key(a, c), BpeModel::Merge{static_cast<int32_t>(r), id});
  }
  b.n_ranks = static_cast<int32_t>(src.merges.size());
  b.cuttable = b.continuing_subword_prefix.empty() && b.end_of_word_suffix.empty();
  for (const auto& [left, right] : src.merges) {
    if (left.empty() || right.empty()) continue;
    size_t i = left.size() - 1;
    while (i > 0 && (static_cast<unsigned char>(left[i]) & 0xC0) == 0x80) --i;
    size_t j = 0;
    uint64_t x = next_code_point(left, i), y = next_code_point(right, j);
    b.junctions.insert_or_assign((x << 32) | y, 1);
  }
  src.merges = {};
  return b;
}

}  // namespace ar::tok
