// Byte-level BPE training for the synthetic tokenizer and its tokenizer.json / tokenizer_config.json,
// following the HuggingFace `tokenizers` serialisation (model.type "BPE", merges as [left, right]
// pairs, as in the Qwen3 tokenizer.json) and GPT-2's bytes_to_unicode table.
#include "tools/synth_tokenizer.h"

#include <map>
#include <utility>

#include "core/error.h"

namespace ar {

namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xc0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3f));
  } else {
    s += char(0xe0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3f));
    s += char(0x80 | (cp & 0x3f));
  }
  return s;
}

bool printable_byte(uint32_t b) {  // the bytes GPT-2 maps to themselves
  return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (static_cast<unsigned char>(c) >= 0x80);
}

}  // namespace

std::string byte_level_symbol(uint8_t b) {
  if (printable_byte(b)) return utf8(b);
  uint32_t n = 0;  // rank among the non-printable bytes below b
  for (uint32_t x = 0; x < b; ++x)
    if (!printable_byte(x)) ++n;
  return utf8(256 + n);
}

std::string byte_level_encode(std::string_view bytes) {
  static const auto table = [] {
    std::vector<std::string> t(256);
    for (int b = 0; b < 256; ++b) t[b] = byte_level_symbol(uint8_t(b));
    return t;
  }();
  std::string out;
  for (char c : bytes) out += table[static_cast<unsigned char>(c)];
  return out;
}

std::vector<std::string_view> split_gpt2_ascii(std::string_view s) {
  std::vector<std::string_view> out;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    // Contractions come first in the alternation.
    if (s[i] == '\'') {
      for (std::string_view c : {"s", "t", "re", "ve", "m", "ll", "d"}) {
        if (s.substr(i + 1, c.size()) == c) {
          j = i + 1 + c.size();
          break;
        }
      }
      if (j != i) {
        out.push_back(s.substr(i, j - i));
        i = j;
        continue;
      }
    }
    size_t k = (s[i] == ' ' && i + 1 < n && !is_space(s[i + 1])) ? i + 1 : i;  // optional leading space
    if (!is_space(s[k])) {
      j = k + 1;
      if (is_letter(s[k])) {
        while (j < n && is_letter(s[j])) ++j;
      } else if (is_digit(s[k])) {
        while (j < n && is_digit(s[j])) ++j;
      } else {
        while (j < n && !is_space(s[j]) && !is_letter(s[j]) && !is_digit(s[j])) ++j;
      }
    } else {
      // Whitespace run: \s+(?!\S) leaves the last space for the next word; a lone one is \s+.
      j = i;
      while (j < n && is_space(s[j])) ++j;
      if (j < n && j - i >= 2) --j;
    }
    out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

SynthTokenizer build_synth_tokenizer(std::string_view text, int max_merges, int64_t model_max_length) {
  AR_CHECK(max_merges >= 0, "negative merge count");
  // Unique pre-tokenized words with counts; each word as token ids.
  std::map<std::string_view, int64_t> counts;
  for (std::string_view w : split_gpt2_ascii(text)) ++counts[w];
  std::vector<std::vector<int>> words;
  std::vector<int64_t> freq;
  for (const auto& [w, c] : counts) {
    std::vector<int> ids;
    for (char ch : w) ids.push_back(static_cast<unsigned char>(ch));
    words.push_back(std::move(ids));
    freq.push_back(c);
  }
  std::vector<std::string> token_bytes(256);
  for (int b = 0; b < 256; ++b) token_bytes[b] = std::string(1, char(b));
  std::map<std::string, int> id_of;
  for (int b = 0; b < 256; ++b) id_of[token_bytes[b]] = b;

  SynthTokenizer tok;
  for (int m = 0; m < max_merges; ++m) {
    std::map<std::pair<int, int>, int64_t> pairs;  // ordered: ties resolve to the smallest pair
    for (size_t w = 0; w < words.size(); ++w)
      for (size_t i = 0; i + 1 < words[w].size(); ++i) pairs[{words[w][i], words[w][i + 1]}] += freq[w];
    std::pair<int, int> best{-1, -1};
    int64_t best_count = 1;
    for (const auto& [p, c] : pairs)
      if (c > best_count) {
        best = p;
        best_count = c;
      }
    if (best.first < 0) break;  // nothing occurs twice any more
    const std::string merged = token_bytes[best.first] + token_bytes[best.second];
    int new_id;
    if (auto it = id_of.find(merged); it != id_of.end()) {
      new_id = it->second;  // same bytes reached by another pair: reuse the token, as HF does
    } else {
      new_id = int(token_bytes.size());
      token_bytes.push_back(merged);
      id_of[merged] = new_id;
    }
    tok.merges.emplace_back(byte_level_encode(token_bytes[best.first]), byte_level_encode(token_bytes[best.second]));
    for (auto& w : words) {
      std::vector<int> nw;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == best.first && w[i + 1] == best.second) {
          nw.push_back(new_id);
          ++i;
        } else {
          nw.push_back(w[i]);
        }
      }
      w = std::move(nw);
    }
  }

  const std::string eos = "<|endoftext|>";
  tok.eos_id = int64_t(token_bytes.size());
  tok.vocab_size = tok.eos_id + 1;

  using oj = nlohmann::ordered_json;
  oj vocab = oj::object();
  for (size_t id = 0; id < token_bytes.size(); ++id) vocab[byte_level_encode(token_bytes[id])] = id;
  oj merges = oj::array();
  for (const auto& [a, b] : tok.merges) merges.push_back(oj::array({a, b}));
  oj added = {{"id", tok.eos_id}, {"content", eos}, {"single_word", false}, {"lstrip", false},
              {"rstrip", false}, {"normalized", false}, {"special", true}};
  oj& t = tok.tokenizer_json;
  t["version"] = "1.0";
  t["truncation"] = nullptr;
  t["padding"] = nullptr;
  t["added_tokens"] = oj::array({added});
  t["normalizer"] = nullptr;
  t["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  t["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}};
  t["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  t["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", std::move(vocab)},
                {"merges", std::move(merges)}};

  oj decoder_entry = {{"content", eos}, {"lstrip", false}, {"normalized", false},
                      {"rstrip", false}, {"single_word", false}, {"special", true}};
  oj& c = tok.tokenizer_config;
  c["add_bos_token"] = false;
  c["add_eos_token"] = false;
  c["add_prefix_space"] = false;
  c["added_tokens_decoder"] = {{std::to_string(tok.eos_id), decoder_entry}};
  c["bos_token"] = nullptr;
  c["clean_up_tokenization_spaces"] = false;
  c["eos_token"] = eos;
  c["model_max_length"] = model_max_length;
  c["pad_token"] = eos;
  c["tokenizer_class"] = "PreTrainedTokenizerFast";
  c["unk_token"] = nullptr;
  tok.special_tokens_map = {{"eos_token", eos}, {"pad_token", eos}};
  return tok;
}

}  // namespace ar
