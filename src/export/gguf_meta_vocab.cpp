// tokenizer.ggml.* KVs from a HF tokenizer folder, following the rules of llama.cpp's
// convert_hf_to_gguf.py (_set_vocab_sentencepiece, _set_vocab_gpt2, gguf-py SpecialVocab):
// which tokens are control / user-defined / byte / unused, the [PADi] filler up to the model's
// vocab_size, how special-token ids are looked up, and how merges with spaces are spelled.
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstring>
#include <map>
#include <optional>

#include "core/error.h"
#include "export/gguf_meta.h"
#include "io/file.h"

namespace ar {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kMetaspace = "\xe2\x96\x81";  // U+2581, SentencePiece's space

json load_json(const fs::path& p) {
  try {
    return json::parse(read_text_file(p));
  } catch (const json::exception& e) {
    AR_THROW(p.string(), ": invalid JSON: ", e.what());
  }
}

// An optional JSON object file: {} when absent.
json load_json_if_exists(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return json::object();
  json j = load_json(p);
  if (!j.is_object()) AR_THROW(p.string(), ": expected a JSON object");
  return j;
}

// Added tokens that should be control tokens although the tokenizer does not mark them special
// (convert_hf_to_gguf's does_token_look_special).
bool looks_special(const std::string& t) {
  auto wrapped = [&](std::string_view l, std::string_view r) {
    return t.size() >= l.size() + r.size() && t.starts_with(l) && t.ends_with(r);
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || wrapped("<|", "|>") ||
         wrapped("<\xef\xbd\x9c", "\xef\xbd\x9c>") || wrapped("<unused", ">");
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

bool is_byte_token(const std::string& t) {
  auto hex = [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)) != 0; };
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && hex(t[3]) && hex(t[4]) && t[5] == '>';
}

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  void init(int64_t n, float score) {
    tokens.clear();
    for (int64_t i = 0; i < n; ++i) tokens.push_back("[PAD" + std::to_string(i) + "]");
    scores.assign(size_t(n), score);
    types.assign(size_t(n), int32_t(GgufTokenType::Unused));
  }
};

// The tokenizer.json pieces: id -> text for the model vocabulary and the added tokens.
struct HfTokenizer {
  std::string src;
  json j;
  std::map<int64_t, std::string> vocab;  // model.vocab
  struct Added {
    std::string content;
    bool special = false;
  };
  std::map<int64_t, Added> added;  // added_tokens
  int64_t size() const {
    int64_t n = 0;
    if (!vocab.empty()) n = std::max(n, vocab.rbegin()->first + 1);
    if (!added.empty()) n = std::max(n, added.rbegin()->first + 1);
    return n;
  }
  std::optional<int64_t> find_added(const std::string& content) const {
    for (const auto& [id, a] : added)
      if (a.content == content) return id;
    return std::nullopt;
  }
};

HfTokenizer load_hf_tokenizer(const fs::path& p) {
  HfTokenizer t;
  t.src = p.string();
  t.j = load_json(p);
  if (!t.j.is_object() || !t.j.contains("model") || !t.j["model"].is_object())
    AR_THROW(t.src, ": no \"model\" object; not a HF tokenizer.json");
  const json& m = t.j["model"];
  if (!m.contains("vocab") || !m["vocab"].is_object()) AR_THROW(t.src, ": model.vocab is missing or not an object");
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0)
      AR_THROW(t.src, ": vocab entry '", it.key(), "' has a bad id ", it.value().dump());
    if (!t.vocab.emplace(it.value().get<int64_t>(), it.key()).second)
      AR_THROW(t.src, ": id ", it.value().dump(), " appears twice in model.vocab");
  }
  if (t.j.contains("added_tokens") && t.j["added_tokens"].is_array()) {
    for (const json& a : t.j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
          !a.contains("content") || !a["content"].is_string())
        AR_THROW(t.src, ": malformed added_tokens entry ", a.dump());
      t.added[a["id"].get<int64_t>()] = {a["content"].get<std::string>(), a.value("special", false)};
    }
  }
  return t;
}

// ---- SentencePiece tokenizer.model (protobuf ModelProto) ----
// ModelProto field 1 = repeated SentencePiece {1: piece (string), 2: score (float), 3: type
// (enum: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte)}; everything else is
// skipped by wire type.
struct Pb {
  const uint8_t* p;
  const uint8_t* end;
  const std::string& src;
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) AR_THROW(src, ": truncated protobuf varint");
      const uint8_t b = *p++;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    AR_THROW(src, ": protobuf varint longer than 10 bytes");
  }
  void need(uint64_t n) {
    if (n > uint64_t(end - p)) AR_THROW(src, ": protobuf field of ", n, " bytes runs past the end of the file");
  }
  // Skips a field of wire type wt (its tag already read).
  void skip(uint64_t wt) {
    if (wt == 0) varint();
    else if (wt == 1) need(8), p += 8;
    else if (wt == 5) need(4), p += 4;
    else if (wt == 2) {
      const uint64_t n = varint();
      need(n);
      p += n;
    } else {
      AR_THROW(src, ": unsupported protobuf wire type ", wt);
    }
  }
};

struct SpmPiece {
  std::string text;
  float score = 0.0f;
  int32_t type = 1;
};

std::vector<SpmPiece> read_spm_pieces(const fs::path& path) {
  const std::string src = path.string();
  const std::string bytes = read_text_file(path);
  const auto* base = reinterpret_cast<const uint8_t*>(bytes.data());
  Pb pb{base, base + bytes.size(), src};
  std::vector<SpmPiece> pieces;
  while (pb.p < pb.end) {
    const uint64_t tag = pb.varint();
    if ((tag >> 3) != 1 || (tag & 7) != 2) {
      pb.skip(tag & 7);
      continue;
    }
    const uint64_t n = pb.varint();
    pb.need(n);
    Pb sub{pb.p, pb.p + n, src};
    pb.p += n;
    SpmPiece piece;
    while (sub.p < sub.end) {
      const uint64_t t = sub.varint();
      if (t == ((1 << 3) | 2)) {
        const uint64_t len = sub.varint();
        sub.need(len);
        piece.text.assign(reinterpret_cast<const char*>(sub.p), size_t(len));
        sub.p += len;
      } else if (t == ((2 << 3) | 5)) {
        sub.need(4);
        std::memcpy(&piece.score, sub.p, 4);
        sub.p += 4;
      } else if (t == ((3 << 3) | 0)) {
        piece.type = int32_t(sub.varint());
      } else {
        sub.skip(t & 7);
      }
    }
    pieces.push_back(std::move(piece));
  }
  if (pieces.empty()) AR_THROW(src, ": no pieces; not a SentencePiece model");
  return pieces;
}

// ---- "llama" (SentencePiece-style) vocabulary ----

Vocab spm_vocab(const fs::path& dir, const HfTokenizer& hf, const json& tok_config, int64_t n_vocab) {
  Vocab v;
  const fs::path spm_path = dir / "tokenizer.model";
  std::error_code ec;
  if (fs::exists(spm_path, ec)) {
    // llama.cpp takes pieces, scores and types from the SentencePiece model itself.
    const std::vector<SpmPiece> pieces = read_spm_pieces(spm_path);
    if (n_vocab == 0) n_vocab = int64_t(pieces.size());
    if (int64_t(pieces.size()) > n_vocab)
      AR_THROW(spm_path.string(), ": ", pieces.size(), " pieces but the model's vocab_size is ", n_vocab);
    v.init(n_vocab, -10000.0f);
    for (size_t i = 0; i < pieces.size(); ++i) {
      v.tokens[i] = pieces[i].text;
      v.scores[i] = pieces[i].score;
      // sentencepiece reports unknown/control/unused/byte; anything else (user-defined too) is normal.
      const int32_t t = pieces[i].type;
      v.types[i] = (t == 2 || t == 3 || t == 5 || t == 6) ? t : int32_t(GgufTokenType::Normal);
    }
  } else {
    // No .model: rebuild what SentencePiece BPE stores. Its normal pieces are scored by their
    // order (merged pieces first, then single characters): score = -(rank among normal pieces).
    if (n_vocab == 0) n_vocab = hf.size();
    if (hf.size() > n_vocab) AR_THROW(hf.src, ": ", hf.size(), " token ids but the model's vocab_size is ", n_vocab);
    v.init(n_vocab, -10000.0f);
    std::optional<int64_t> unk;
    const json& m = hf.j["model"];
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      const std::string u = m["unk_token"].get<std::string>();
      for (const auto& [id, text] : hf.vocab)
        if (text == u) unk = id;
    }
    int64_t rank = 0;
    for (const auto& [id, text] : hf.vocab) {
      v.tokens[size_t(id)] = text;
      v.scores[size_t(id)] = 0.0f;
      auto a = hf.added.find(id);
      if (unk && id == *unk) v.types[size_t(id)] = int32_t(GgufTokenType::Unknown);
      else if (a != hf.added.end() && a->second.special) v.types[size_t(id)] = int32_t(GgufTokenType::Control);
      else if (is_byte_token(text)) v.types[size_t(id)] = int32_t(GgufTokenType::Byte);
      else {
        v.types[size_t(id)] = int32_t(GgufTokenType::Normal);
        v.scores[size_t(id)] = -float(rank++);
      }
    }
    for (const auto& [id, a] : hf.added) {
      if (hf.vocab.count(id)) continue;
      v.tokens[size_t(id)] = a.content;
      v.scores[size_t(id)] = -1000.0f;
      v.types[size_t(id)] = int32_t(a.special ? GgufTokenType::Control : GgufTokenType::UserDefined);
    }
  }
  // added_tokens.json, then tokenizer_config's added_tokens_decoder, override entries (score
  // -1000), as the converter does.
  const json added_json = load_json_if_exists(dir / "added_tokens.json");
  for (auto it = added_json.begin(); it != added_json.end(); ++it) {
    if (!it.value().is_number_integer()) continue;
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= n_vocab) continue;  // the converter ignores out-of-range ids too
    v.tokens[size_t(id)] = it.key();
    v.scores[size_t(id)] = -1000.0f;
    v.types[size_t(id)] = int32_t(GgufTokenType::UserDefined);
  }
  if (tok_config.contains("added_tokens_decoder") && tok_config["added_tokens_decoder"].is_object()) {
    const json& d = tok_config["added_tokens_decoder"];
    for (auto it = d.begin(); it != d.end(); ++it) {
      int64_t id = -1;
      try {
        id = std::stoll(it.key());
      } catch (const std::exception&) {
        AR_THROW((dir / "tokenizer_config.json").string(), ": added_tokens_decoder key '", it.key(), "' is not an id");
      }
      if (id < 0 || id >= n_vocab || !it.value().is_object() || !it.value().contains("content") ||
          !it.value()["content"].is_string())
        continue;
      std::string content = it.value()["content"].get<std::string>();
      if (it.value().value("special", false) || looks_special(content)) {
        v.types[size_t(id)] = int32_t(GgufTokenType::Control);
      } else {
        content = replace_all(content, kMetaspace, " ");  // user-defined tokens are pre-normalised
        v.types[size_t(id)] = int32_t(GgufTokenType::UserDefined);
      }
      v.scores[size_t(id)] = -1000.0f;
      v.tokens[size_t(id)] = content;
    }
  }
  return v;
}

// ---- "gpt2" (byte-level BPE) vocabulary ----

Vocab bpe_vocab(const HfTokenizer& hf, int64_t n_vocab) {
  if (n_vocab == 0) n_vocab = hf.size();
  if (hf.size() > n_vocab) AR_THROW(hf.src, ": ", hf.size(), " token ids but the model's vocab_size is ", n_vocab);
  Vocab v;
  v.init(n_vocab, 0.0f);
  for (const auto& [id, text] : hf.vocab) {
    v.tokens[size_t(id)] = text;
    v.types[size_t(id)] = int32_t(GgufTokenType::Normal);
  }
  for (const auto& [id, a] : hf.added) {
    if (a.special || looks_special(a.content)) {
      v.tokens[size_t(id)] = a.content;
      v.types[size_t(id)] = int32_t(GgufTokenType::Control);
    } else {
      v.tokens[size_t(id)] = replace_all(a.content, kMetaspace, " ");
      v.types[size_t(id)] = int32_t(GgufTokenType::UserDefined);
    }
  }
  return v;
}

std::vector<std::string> bpe_merges(const HfTokenizer& hf) {
  const json& m = hf.j["model"];
  if (!m.contains("merges") || !m["merges"].is_array()) AR_THROW(hf.src, ": byte-level BPE without model.merges");
  std::vector<std::string> out;
  out.reserve(m["merges"].size());
  // Newer tokenizer.json files store pairs, which may contain spaces; llama.cpp's merge list is
  // "left right", so spaces inside a part are written as U+0120 (space + 256, as byte-level BPE
  // spells a space byte).
  for (const json& e : m["merges"]) {
    if (e.is_string()) {
      out.push_back(e.get<std::string>());
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      out.push_back(replace_all(e[0].get<std::string>(), " ", "\xc4\xa0") + " " +
                    replace_all(e[1].get<std::string>(), " ", "\xc4\xa0"));
    } else {
      AR_THROW(hf.src, ": unrecognised merge entry ", e.dump());
    }
  }
  return out;
}

// Collects the Split regexes and whether a ByteLevel pre-tokenizer applies its own (GPT-2) regex.
void scan_pre_tokenizer(const json& p, std::vector<std::string>* regexes, bool* byte_level_regex) {
  if (!p.is_object()) return;
  const std::string type = p.value("type", "");
  if (type == "Sequence" && p.contains("pretokenizers") && p["pretokenizers"].is_array()) {
    for (const json& q : p["pretokenizers"]) scan_pre_tokenizer(q, regexes, byte_level_regex);
  } else if (type == "Split" && p.contains("pattern") && p["pattern"].is_object() &&
             p["pattern"].contains("Regex") && p["pattern"]["Regex"].is_string()) {
    regexes->push_back(p["pattern"]["Regex"].get<std::string>());
  } else if (type == "ByteLevel" && p.value("use_regex", true)) {
    *byte_level_regex = true;
  }
}

// llama.cpp names each pre-tokenizer it implements; the converter identifies it by hashing a
// probe text's tokens. We identify it by the regex itself, which is what that name stands for.
std::string bpe_pre_name(const HfTokenizer& hf) {
  std::vector<std::string> regexes;
  bool byte_level_regex = false;
  if (hf.j.contains("pre_tokenizer")) scan_pre_tokenizer(hf.j["pre_tokenizer"], &regexes, &byte_level_regex);
  const std::string common_tail = "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const std::string head = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|";
  if (regexes.size() == 1 && !byte_level_regex) {
    if (regexes[0] == head + "\\p{N}" + common_tail) return "qwen2";
    if (regexes[0] == head + "\\p{N}{1,3}" + common_tail) return "llama-bpe";
  }
  if (regexes.empty() && byte_level_regex) return "gpt-2";
  AR_THROW(hf.src, ": byte-level BPE pre-tokenizer not recognised (",
           regexes.empty() ? std::string("no Split regex") : "regex " + regexes[0],
           "); known: qwen2, llama-bpe (llama 3), gpt-2");
}

}  // namespace

std::vector<GgufKV> gguf_tokenizer_kvs(const fs::path& dir, int64_t n_vocab, Arch arch) {
  const HfTokenizer hf = load_hf_tokenizer(dir / "tokenizer.json");
  const json tok_config = load_json_if_exists(dir / "tokenizer_config.json");
  const json config = load_json_if_exists(dir / "config.json");
  const json& m = hf.j["model"];
  const std::string model_type = m.value("type", "");
  const bool byte_fallback = m.value("byte_fallback", false);

  std::vector<GgufKV> kv;
  auto add = [&](std::string key, GgufValue v) { kv.push_back({std::move(key), std::move(v)}); };
  bool spm = false;
  int64_t n_tokens = 0;
  if (model_type == "BPE" && byte_fallback) {
    spm = true;
    Vocab v = spm_vocab(dir, hf, tok_config, n_vocab);
    n_tokens = int64_t(v.tokens.size());
    add("tokenizer.ggml.model", GgufValue::string("llama"));
    add("tokenizer.ggml.pre", GgufValue::string("default"));
    add("tokenizer.ggml.tokens", GgufValue::string_array(std::move(v.tokens)));
    add("tokenizer.ggml.scores", GgufValue::array(v.scores));
    add("tokenizer.ggml.token_type", GgufValue::array(v.types));
  } else if (model_type == "BPE") {
    Vocab v = bpe_vocab(hf, n_vocab);
    add("tokenizer.ggml.model", GgufValue::string("gpt2"));
    add("tokenizer.ggml.pre", GgufValue::string(bpe_pre_name(hf)));
    add("tokenizer.ggml.tokens", GgufValue::string_array(std::move(v.tokens)));
    add("tokenizer.ggml.token_type", GgufValue::array(v.types));
    add("tokenizer.ggml.merges", GgufValue::string_array(bpe_merges(hf)));
  } else {
    AR_THROW(hf.src, ": tokenizer model type '", model_type,
             "' is not supported for GGUF export (SentencePiece-style or byte-level BPE only)");
  }

  // Special tokens, as gguf-py's SpecialVocab finds them: tokenizer_config's "<x>_token" text
  // looked up among tokenizer.json's added tokens, else config.json's "<x>_token_id"; the first
  // found wins. Ids past the vocabulary are dropped for SentencePiece vocabularies.
  static const std::pair<const char*, const char*> kSpecial[] = {
      {"bos", "tokenizer.ggml.bos_token_id"},     {"eos", "tokenizer.ggml.eos_token_id"},
      {"unk", "tokenizer.ggml.unknown_token_id"}, {"sep", "tokenizer.ggml.seperator_token_id"},
      {"pad", "tokenizer.ggml.padding_token_id"}, {"cls", nullptr},
      {"mask", "tokenizer.ggml.mask_token_id"},
  };
  std::vector<std::pair<std::string, int64_t>> ids;  // (type, id) in the order found
  auto set_id = [&](const std::string& typ, const json& tid) {
    if (!tid.is_number_integer()) return;
    const int64_t id = tid.get<int64_t>();
    if (id < 0) AR_THROW(dir.string(), ": negative id ", id, " for the ", typ, " token");
    if (spm && id >= n_tokens) return;
    for (const auto& e : ids)
      if (e.first == typ) return;
    ids.emplace_back(typ, id);
  };
  for (const auto& [typ, key] : kSpecial) {
    const json entry = tok_config.value(std::string(typ) + "_token", json());
    std::string content;
    if (entry.is_string()) content = entry.get<std::string>();
    else if (entry.is_object() && entry.contains("content") && entry["content"].is_string())
      content = entry["content"].get<std::string>();
    else
      continue;
    if (auto id = hf.find_added(content)) set_id(typ, json(*id));
  }
  for (const auto& [typ, key] : kSpecial) set_id(typ, config.value(std::string(typ) + "_token_id", json()));
  for (const auto& [typ, id] : ids) {
    const char* key = nullptr;
    for (const auto& [t, k] : kSpecial)
      if (typ == t) key = k;
    if (!key) continue;  // no GGUF key for cls
    if (id > int64_t(UINT32_MAX)) AR_THROW(dir.string(), ": ", typ, " token id ", id, " does not fit u32");
    add(key, GgufValue::scalar<uint32_t>(uint32_t(id)));
  }
  for (const char* typ : {"bos", "eos"}) {
    const json e = tok_config.value(std::string("add_") + typ + "_token", json());
    if (e.is_boolean()) add(std::string("tokenizer.ggml.add_") + typ + "_token", GgufValue::scalar<bool>(e.get<bool>()));
  }
  if (tok_config.contains("chat_template") && tok_config["chat_template"].is_string())
    add("tokenizer.chat_template", GgufValue::string(tok_config["chat_template"].get<std::string>()));
  // LlamaModel.set_vocab only.
  if ((arch == Arch::Llama || arch == Arch::Mistral || arch == Arch::Mixtral) && tok_config.contains("add_prefix_space") &&
      tok_config["add_prefix_space"].is_boolean())
    add("tokenizer.ggml.add_space_prefix", GgufValue::scalar<bool>(tok_config["add_prefix_space"].get<bool>()));
  // Gemma3Model.set_vocab: a SentencePiece vocabulary never gets a space prefix.
  if (arch == Arch::Gemma3 && spm) add("tokenizer.ggml.add_space_prefix", GgufValue::scalar<bool>(false));
  return kv;
}

}  // namespace ar
