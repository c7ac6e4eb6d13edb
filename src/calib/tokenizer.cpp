// Tokenizer: loads tokenizer.json (+ tokenizer_config.json) and runs the HF pipeline
// added-token split -> normalizer -> pre-tokenizer -> BPE (cached per piece) -> post-processor.
#include "calib/tokenizer.h"

#include <nlohmann/json.hpp>

#include <mutex>

#include "calib/tok_added.h"
#include "calib/tok_bpe.h"
#include "calib/tok_decode.h"
#include "calib/tok_json.h"
#include "calib/tok_normalize.h"
#include "calib/tok_pretokenize.h"
#include "calib/tok_unicode.h"
#include "core/error.h"
#include "io/file.h"

namespace ar {

using nlohmann::json;

struct Tokenizer::Impl {
  tok::BpeModel model;
  tok::AddedVocab added;
  tok::FlatStringMap<int32_t> added_ids;  // content -> id
  std::vector<tok::NormalizerStep> normalizer;
  tok::PreTokenizer pre_tokenizer;
  std::vector<tok::DecoderStep> decoder;
  std::vector<std::string> id_to_token;  // model + added tokens
  std::vector<uint8_t> is_special;
  std::vector<int32_t> prefix, suffix;  // post-processor ids around a single sequence
  int32_t bos = -1, eos = -1;
  bool clean_up_spaces = false;  // tokenizer_config.json clean_up_tokenization_spaces

  // Cache of pre-token -> ids: most words repeat, so BPE runs once per distinct word.
  mutable std::mutex cache_mu;
  mutable tok::FlatStringMap<std::pair<uint32_t, uint32_t>> cache;  // piece -> (offset, count) in pool
  mutable std::vector<int32_t> cache_pool;
  static constexpr size_t kCacheMaxEntries = 1 << 18;  // bounds memory on unbounded vocabularies
  // Long pieces (a whole paragraph when there is no pre-tokenizer) rarely repeat.
  static constexpr size_t kCacheMaxPieceBytes = 256;

  int32_t find_token(std::string_view s) const {
    const int32_t* id = added_ids.find(s);
    return id ? *id : model.find(s);
  }
  // Appends the ids of one pre-token, through the cache.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
};

namespace {

// bos_token / eos_token in tokenizer_config.json: a string, {"content": ...} or null.
std::string config_token(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content")) return (*it)["content"].get<std::string>();
  return {};
}

// Ids one post-processor puts before/after a single sequence.
// `find_token` maps a token string to its id (-1 when unknown).
template <typename FindToken>
void parse_post_processor(const json& j, const std::string& file, const FindToken& find_token,
                          std::vector<int32_t>& prefix, std::vector<int32_t>& suffix) {
  if (j.is_null()) return;
  const std::string type = j.at("type").get<std::string>();
  auto resolve = [&](const std::string& tok) {
    int32_t id = find_token(tok);
    if (id < 0) AR_THROW(file, ": post_processor names token '", tok, "' that is not in the vocabulary");
    return id;
  };
  if (type == "Sequence") {
    for (const auto& p : j.at("processors")) parse_post_processor(p, file, find_token, prefix, suffix);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets.
  } else if (type == "TemplateProcessing") {
    const json& specials = j.contains("special_tokens") ? j["special_tokens"] : json::object();
    bool seen_a = false;
    for (const auto& item : j.at("single")) {
      if (item.contains("Sequence")) {
        seen_a = true;
        continue;
      }
      if (!item.contains("SpecialToken"))
        AR_THROW(file, ": post_processor template item ", item.dump(), " is neither SpecialToken nor Sequence");
      std::string name = item["SpecialToken"].at("id").get<std::string>();
      std::vector<int32_t> ids;
      if (specials.contains(name) && specials[name].contains("ids")) {
        ids = specials[name]["ids"].get<std::vector<int32_t>>();
      } else {
        ids.push_back(resolve(name));
      }
      auto& dst = seen_a ? suffix : prefix;
      dst.insert(dst.end(), ids.begin(), ids.end());
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    // "cls": [token, id], "sep": [token, id]: single = cls $A sep.
    prefix.push_back(j.at("cls").at(1).get<int32_t>());
    suffix.push_back(j.at("sep").at(1).get<int32_t>());
  } else {
    AR_THROW(file, ": unsupported post_processor type '", type, "'");
  }
}

}  // namespace

void Tokenizer::Impl::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  {
    std::lock_guard<std::mutex> lock(cache_mu);
    if (const auto* hit = cache.find(piece)) {
      auto [off, n] = *hit;
      out.insert(out.end(), cache_pool.begin() + off, cache_pool.begin() + off + n);
      return;
    }
  }
  size_t from = out.size();
  if (pre_tokenizer.defer_byte_map) {
    std::string mapped;
    mapped.reserve(piece.size() * 2);
    tok::byte_level_encode(piece, mapped);
    model.tokenize(mapped, out);
  } else {
    model.tokenize(piece, out);
  }
  if (piece.size() > kCacheMaxPieceBytes) return;
  std::lock_guard<std::mutex> lock(cache_mu);
  if (cache.size() >= kCacheMaxEntries) {
    cache.clear();
    cache_pool.clear();
  }
  uint32_t off = static_cast<uint32_t>(cache_pool.size());
  cache_pool.insert(cache_pool.end(), out.begin() + from, out.end());
  cache.insert_or_assign(piece, std::make_pair(off, static_cast<uint32_t>(out.size() - from)));
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::filesystem::path& dir) {
  const auto tj = dir / "tokenizer.json";
  if (!std::filesystem::exists(tj))
    AR_THROW(tj.string(), ": not found (a HuggingFace tokenizer.json is required)");
  std::string text = read_text_file(tj);
  const auto cj = dir / "tokenizer_config.json";
  std::string cfg = std::filesystem::exists(cj) ? read_text_file(cj) : std::string();
  return from_json(text, cfg, tj.string());
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json,
                               const std::string& name) {
  auto impl = std::make_unique<Impl>();
  Impl& t = *impl;
  const std::string cfg_name =
      (std::filesystem::path(name).parent_path() / "tokenizer_config.json").string();
  json cfg = json::object();
  std::string file = name;
  std::string section;  // the part being read, for messages from nlohmann's type errors
  try {
    tok::TokenizerJson src = tok::parse_tokenizer_json(tokenizer_json, name);
    const json& j = src.doc;
    if (!j.is_object()) AR_THROW(name, ": not a JSON object");
    static const json kNull;
    auto member = [&](const char* key) -> const json& {
      auto it = j.find(key);
      return it == j.end() ? kNull : *it;
    };
    section = "model";
    t.model = tok::load_bpe_model(src, name);
    section = "added_tokens";
    t.added = tok::AddedVocab::parse(member("added_tokens"), name);
    section = "normalizer";
    t.normalizer = tok::parse_normalizer(member("normalizer"), name);
    section = "pre_tokenizer";
    t.pre_tokenizer = tok::parse_pre_tokenizer(member("pre_tokenizer"), name);
    section = "decoder";
    t.decoder = tok::parse_decoder(member("decoder"), name);
    section.clear();

    t.id_to_token = std::move(t.model.id_to_token);  // the model keeps only its lookup maps
    for (const auto& a : t.added.tokens()) {
      if (!tok::plausible_token_id(a.id, t.id_to_token.size() + t.added.tokens().size()))
        AR_THROW(name, ": added token '", a.content, "' has id ", a.id, ", far beyond the vocabulary size (",
                 t.id_to_token.size(), " tokens)");
      if (static_cast<size_t>(a.id) >= t.id_to_token.size()) t.id_to_token.resize(a.id + 1);
      t.id_to_token[a.id] = a.content;
      t.added_ids.insert_or_assign(a.content, a.id);
    }
    t.is_special.assign(t.id_to_token.size(), 0);
    for (const auto& a : t.added.tokens()) t.is_special[a.id] = a.special;
    if (const json& m = member("model"); t.model.unk_id < 0 && m.contains("unk_token") && m["unk_token"].is_string())
      t.model.unk_id = t.find_token(m["unk_token"].get<std::string>());

    if (!config_json.empty()) {
      file = cfg_name;
      section.clear();
      cfg = json::parse(config_json);
      if (!cfg.is_object()) AR_THROW(cfg_name, ": not a JSON object");
      file = name;
    }
    const json& post = member("post_processor");
    section = "post_processor";
    parse_post_processor(post, name, [&](const std::string& s) { return t.find_token(s); },
                         t.prefix, t.suffix);

    file = cfg_name;
    section = "bos_token/eos_token";
    std::string bos = config_token(cfg, "bos_token"), eos = config_token(cfg, "eos_token");
    t.bos = bos.empty() ? -1 : t.find_token(bos);
    t.eos = eos.empty() ? -1 : t.find_token(eos);
    // transformers' Llama/Gemma fast tokenizers rebuild the template from add_bos_token /
    // add_eos_token when they load, so for those classes the config flags win over the file.
    const std::string cls = cfg.contains("tokenizer_class") && cfg["tokenizer_class"].is_string()
                                ? cfg["tokenizer_class"].get<std::string>() : std::string();
    const bool llama_like = cls == "LlamaTokenizer" || cls == "LlamaTokenizerFast" ||
                            cls == "CodeLlamaTokenizer" || cls == "CodeLlamaTokenizerFast" ||
                            cls == "GemmaTokenizer" || cls == "GemmaTokenizerFast";
    if (post.is_null() || (llama_like && (cfg.contains("add_bos_token") || cfg.contains("add_eos_token")))) {
      // No post-processor (or a Llama-like class): BOS/EOS per tokenizer_config.json.
      bool add_bos = post.is_null() ? cfg.value("add_bos_token", false)
                                    : cfg.value("add_bos_token", !t.prefix.empty());
      bool add_eos = post.is_null() ? cfg.value("add_eos_token", false)
                                    : cfg.value("add_eos_token", !t.suffix.empty());
      t.prefix.clear();
      t.suffix.clear();
      if (add_bos && t.bos >= 0) t.prefix.push_back(t.bos);
      if (add_eos && t.eos >= 0) t.suffix.push_back(t.eos);
    }
    t.clean_up_spaces = cfg.value("clean_up_tokenization_spaces", false);
    for (const auto* ids : {&t.prefix, &t.suffix})
      for (int32_t id : *ids)
        if (id < 0 || static_cast<size_t>(id) >= t.id_to_token.size())
          AR_THROW(name, ": post_processor adds id ", id, ", outside the vocabulary (", t.id_to_token.size(), " ids)");
    if (t.bos < 0 && !cfg.contains("bos_token") && !t.prefix.empty()) t.bos = t.prefix.front();
    if (t.eos < 0 && !cfg.contains("eos_token") && !t.suffix.empty()) t.eos = t.suffix.back();
  } catch (const json::exception& e) {
    if (section.empty()) AR_THROW(file, ": ", e.what());
    AR_THROW(file, ": in \"", section, "\": ", e.what());
  }
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& t = *impl_;
  std::string repaired;
  if (!tok::is_valid_utf8(text)) {
    repaired = tok::utf8_lossy(text);
    text = repaired;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 4 + 8);  // ~4 bytes per token in English with byte-level BPE
  if (add_special_tokens) out.insert(out.end(), t.prefix.begin(), t.prefix.end());
  std::vector<tok::Segment> segments;
  t.added.split(text, segments);
  std::string span;
  const tok::PreTokenizer::PieceFn emit = [&](std::string_view piece) { t.encode_piece(piece, out); };
  for (const auto& seg : segments) {
    if (seg.added_id >= 0) {
      out.push_back(seg.added_id);
      continue;
    }
    span.assign(text.substr(seg.begin, seg.end - seg.begin));
    tok::apply_normalizer(t.normalizer, span);
    if (span.empty()) continue;
    t.pre_tokenizer.run(span, seg.begin == 0, emit);
  }
  if (add_special_tokens) out.insert(out.end(), t.suffix.begin(), t.suffix.end());
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& t = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= t.id_to_token.size() || t.id_to_token[id].empty()) continue;
    if (skip_special_tokens && t.is_special[id]) continue;
    tokens.push_back(t.id_to_token[id]);
  }
  std::string text = tok::run_decoder(t.decoder, std::move(tokens));
  if (t.clean_up_spaces) {
    // transformers' clean_up_tokenization: drop the space before punctuation and contractions.
    static const std::pair<const char*, const char*> kRules[] = {
        {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
        {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto& [from, to] : kRules) {
      const std::string f(from);
      std::string out;
      size_t last = 0;
      for (size_t pos = text.find(f); pos != std::string::npos; pos = text.find(f, last)) {
        out.append(text, last, pos - last);
        out += to;
        last = pos + f.size();
      }
      out.append(text, last, std::string::npos);
      text.swap(out);
    }
  }
  return text;
}

int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
bool Tokenizer::adds_bos() const {
  return !impl_->prefix.empty() && impl_->bos >= 0 && impl_->prefix.front() == impl_->bos;
}
size_t Tokenizer::vocab_size() const { return impl_->id_to_token.size(); }

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_to_token.size()) return {};
  return impl_->id_to_token[id];
}

int32_t Tokenizer::token_to_id(std::string_view token) const { return impl_->find_token(token); }

}  // namespace ar
