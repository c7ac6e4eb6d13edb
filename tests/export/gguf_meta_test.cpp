// GGUF metadata: the qwen3-student KV list against the one llama.cpp's converter wrote into
// model-F32.gguf (key by key, types and values), the same with the tokenizer.model removed
// (scores rebuilt from tokenizer.json), the real Qwen3 byte-level tokenizer against its own JSON
// files, the llama/mistral hyper-parameters, llama3 rope factors worked out by hand, and errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <random>

#include "core/error.h"
#include "export/gguf_meta.h"
#include "io/file.h"
#include "io/gguf.h"
#include "support/fixtures.h"

namespace ar {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using nlohmann::json;

const GgufKV* find(const std::vector<GgufKV>& kvs, const std::string& key) {
  for (const GgufKV& kv : kvs)
    if (kv.key == key) return &kv;
  return nullptr;
}

// Every key of `want` is in `got` with the same type and value; `got` has no others except `extra`.
void expect_same_kvs(const std::vector<GgufKV>& got, const std::vector<GgufKV>& want,
                     const std::vector<std::string>& extra) {
  for (const GgufKV& w : want) {
    const GgufKV* g = find(got, w.key);
    if (!g) {
      ADD_FAILURE() << "missing key " << w.key << " = " << w.value.to_string();
      continue;
    }
    EXPECT_TRUE(g->value == w.value) << w.key << ": ours " << g->value.to_string() << ", file "
                                     << w.value.to_string();
  }
  for (const GgufKV& g : got)
    if (!find(want, g.key) && std::find(extra.begin(), extra.end(), g.key) == extra.end())
      ADD_FAILURE() << "unexpected key " << g.key << " = " << g.value.to_string();
}

TEST(GgufMeta, Qwen3StudentEqualsLlamaCppConverterOutput) {
  AR_REQUIRE_FIXTURE(model, "models/qwen3-student/hf");
  AR_REQUIRE_FIXTURE(ref, "gguf/model-F32.gguf");
  const std::vector<GgufKV> ours = gguf_metadata(model, {GgufFileType::ALL_F32, "", 32});
  const GgufReader r = GgufReader::open(ref);
  // general.alignment: we always state it; the converter leaves the default implicit.
  expect_same_kvs(ours, r.metadata(), {"general.alignment"});
  EXPECT_EQ(find(ours, "general.alignment")->value, GgufValue::scalar<uint32_t>(32));
  // Same order too, apart from that key.
  std::vector<std::string> ours_keys, file_keys;
  for (const GgufKV& kv : ours)
    if (kv.key != "general.alignment") ours_keys.push_back(kv.key);
  for (const GgufKV& kv : r.metadata()) file_keys.push_back(kv.key);
  EXPECT_EQ(ours_keys, file_keys);
}

// llama-quantize copies the converter's KVs and adds general.quantization_version and the new
// general.file_type: our metadata for each reference file's type equals that file's.
TEST(GgufMeta, QuantizedFixturesEqualOurMetadataForTheirFileType) {
  AR_REQUIRE_FIXTURE(model, "models/qwen3-student/hf");
  AR_REQUIRE_FIXTURE(index, "gguf/index.json");
  const nlohmann::json j = nlohmann::json::parse(read_text_file(index));
  int n = 0;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string type = it.key().substr(it.key().find('-') + 1);  // "model-Q4_K_M" -> "Q4_K_M"
    SCOPED_TRACE(type);
    const std::optional<GgufFileType> ft = parse_gguf_file_type(type);
    ASSERT_TRUE(ft.has_value());
    EXPECT_EQ(gguf_file_type_name(*ft), type);
    const GgufReader r = GgufReader::open(index.parent_path() / (it.key() + ".gguf"));
    expect_same_kvs(gguf_metadata(model, {*ft, "", 32}), r.metadata(), {"general.alignment"});
    ++n;
  }
  EXPECT_GE(n, 12);
  EXPECT_EQ(parse_gguf_file_type("q4_k_m"), GgufFileType::MOSTLY_Q4_K_M);
  EXPECT_EQ(parse_gguf_file_type("q2_k_s"), GgufFileType::MOSTLY_Q2_K_S);
  EXPECT_EQ(parse_gguf_file_type("q4_k_x"), std::nullopt);
}

TEST(GgufMeta, SentencePieceScoresRebuiltWithoutTokenizerModel) {
  AR_REQUIRE_FIXTURE(model, "models/qwen3-student/hf");
  AR_REQUIRE_FIXTURE(ref, "gguf/model-F32.gguf");
  const fs::path dir = test::make_temp_dir("gguf-meta-notm");
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"}) fs::copy_file(model / f, dir / f);
  const std::vector<GgufKV> ours = gguf_tokenizer_kvs(dir, 512, Arch::Qwen3);
  const GgufReader r = GgufReader::open(ref);
  std::vector<GgufKV> want;
  for (const GgufKV& kv : r.metadata())
    if (kv.key.rfind("tokenizer.", 0) == 0) want.push_back(kv);
  ASSERT_GE(want.size(), 8u);
  expect_same_kvs(ours, want, {});
  fs::remove_all(dir);
}

// stories260K's upstream GGUF (llama.cpp's llama2.c converter, a different tool) holds the same
// SentencePiece vocabulary: tokens, scores and token types must equal ours, with and without
// tokenizer.model in the folder.
TEST(GgufMeta, Stories260KVocabularyEqualsUpstreamGguf) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(ref, "models/stories260K/original/stories260K.gguf");
  const GgufReader r = GgufReader::open(ref);
  const fs::path bare = test::make_temp_dir("gguf-meta-st");
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"}) fs::copy_file(model / f, bare / f);
  for (const fs::path& dir : {model, bare}) {
    SCOPED_TRACE(dir.string());
    const std::vector<GgufKV> kv = gguf_tokenizer_kvs(dir, 512, Arch::Llama);
    for (const char* key : {"tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                            "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id",
                            "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"}) {
      const GgufKV* g = find(kv, key);
      ASSERT_NE(g, nullptr) << key;
      EXPECT_TRUE(g->value == r.require_kv(key)) << key << ": ours " << g->value.to_string() << ", file "
                                                 << r.require_kv(key).to_string();
    }
  }
  fs::remove_all(bare);
}

// A corrupted tokenizer.model (untrusted protobuf) either still parses or fails with an
// ar::Error naming it; never another exception or a crash.
TEST(GgufMeta, CorruptTokenizerModelFailsCleanly) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  const fs::path dir = test::make_temp_dir("gguf-meta-pb");
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"}) fs::copy_file(model / f, dir / f);
  const std::string good = read_text_file(model / "tokenizer.model");
  std::mt19937 rng(7);
  int rejected = 0;
  for (int iter = 0; iter < 300; ++iter) {
    std::string b = good;
    if (iter % 3 == 0) {
      b.resize(rng() % b.size());  // truncated
    } else {
      for (int k = 0; k < 4; ++k) b[rng() % b.size()] = char(rng() % 3 == 0 ? 0xff : rng() & 0xff);
    }
    fs::remove(dir / "tokenizer.model");
    std::ofstream(dir / "tokenizer.model", std::ios::binary) << b;
    try {
      gguf_tokenizer_kvs(dir, 512, Arch::Llama);
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("tokenizer.model"));
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 50);
  fs::remove_all(dir);
}

TEST(GgufMeta, ByteLevelBpeQwen3Tokenizer) {
  AR_REQUIRE_FIXTURE(dir, "tokenizers/qwen3/tokenizer.json");
  const fs::path tdir = dir.parent_path();
  const json tj = json::parse(read_text_file(tdir / "tokenizer.json"));
  const json cfg = json::parse(read_text_file(tdir / "tokenizer_config.json"));
  const int64_t n_vocab = 151936;  // Qwen3's config.json vocab_size: ids past the tokenizer are padding
  const std::vector<GgufKV> kv = gguf_tokenizer_kvs(tdir, n_vocab, Arch::Qwen3);
  EXPECT_EQ(find(kv, "tokenizer.ggml.model")->value.as_string(), "gpt2");
  EXPECT_EQ(find(kv, "tokenizer.ggml.pre")->value.as_string(), "qwen2");
  EXPECT_EQ(find(kv, "tokenizer.ggml.scores"), nullptr);
  const auto& tokens = find(kv, "tokenizer.ggml.tokens")->value.as_string_array();
  const auto types = find(kv, "tokenizer.ggml.token_type")->value.as_array<int32_t>();
  ASSERT_EQ(tokens.size(), size_t(n_vocab));
  ASSERT_EQ(types.size(), size_t(n_vocab));
  for (auto it = tj["model"]["vocab"].begin(); it != tj["model"]["vocab"].end(); ++it) {
    const size_t id = it.value().get<size_t>();
    ASSERT_EQ(tokens[id], it.key());
    ASSERT_EQ(types[id], 1) << it.key();
  }
  int64_t max_added = 0;
  for (const json& a : tj["added_tokens"]) {
    const size_t id = a["id"].get<size_t>();
    EXPECT_EQ(tokens[id], a["content"].get<std::string>());
    // Special tokens and those spelled <|...|> (the converter's does_token_look_special) are
    // control; <think>, <tool_call> ... (special: false) are user-defined.
    const std::string c = a["content"].get<std::string>();
    const bool looks_special = c.rfind("<|", 0) == 0 && c.size() >= 4 && c.compare(c.size() - 2, 2, "|>") == 0;
    EXPECT_EQ(types[id], a["special"].get<bool>() || looks_special ? 3 : 4) << c;
    max_added = std::max<int64_t>(max_added, int64_t(id));
  }
  for (int64_t id = max_added + 1; id < n_vocab; ++id) {
    ASSERT_EQ(tokens[size_t(id)], "[PAD" + std::to_string(id) + "]");
    ASSERT_EQ(types[size_t(id)], 5);
  }
  const auto& merges = find(kv, "tokenizer.ggml.merges")->value.as_string_array();
  ASSERT_EQ(merges.size(), tj["model"]["merges"].size());
  for (size_t i = 0; i < merges.size(); i += 997) {
    const json& m = tj["model"]["merges"][i];
    EXPECT_EQ(merges[i], m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  // eos_token "<|im_end|>" and pad_token "<|endoftext|>" by their added-token ids; no bos (null).
  auto id_of = [&](const std::string& content) {
    for (const json& a : tj["added_tokens"])
      if (a["content"] == content) return a["id"].get<uint32_t>();
    return ~0u;
  };
  EXPECT_EQ(find(kv, "tokenizer.ggml.eos_token_id")->value.as<uint32_t>(), id_of(cfg["eos_token"]));
  EXPECT_EQ(find(kv, "tokenizer.ggml.padding_token_id")->value.as<uint32_t>(), id_of(cfg["pad_token"]));
  EXPECT_EQ(find(kv, "tokenizer.ggml.bos_token_id"), nullptr);
  EXPECT_EQ(find(kv, "tokenizer.ggml.add_bos_token")->value.as<bool>(), false);
  EXPECT_EQ(find(kv, "tokenizer.chat_template")->value.as_string(), cfg["chat_template"].get<std::string>());
}

TEST(GgufMeta, MergesWithSpacesAreSpelledWithU0120) {
  const fs::path dir = test::make_temp_dir("gguf-meta-merges");
  json t = {{"model",
             {{"type", "BPE"},
              {"byte_fallback", false},
              {"vocab", {{"a", 0}, {"b", 1}, {"a b", 2}}},
              {"merges", json::array({json::array({"a", "b"}), json::array({"a b", "b"})})}}},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"use_regex", true}}}};
  std::ofstream(dir / "tokenizer.json") << t.dump();
  const std::vector<GgufKV> kv = gguf_tokenizer_kvs(dir, 0, Arch::Llama);
  EXPECT_EQ(find(kv, "tokenizer.ggml.pre")->value.as_string(), "gpt-2");
  EXPECT_EQ(find(kv, "tokenizer.ggml.merges")->value.as_string_array(),
            (std::vector<std::string>{"a b", "a\xc4\xa0" "b b"}));
  EXPECT_EQ(find(kv, "tokenizer.ggml.tokens")->value.as_string_array().size(), 3u);
  fs::remove_all(dir);
}

TEST(GgufMeta, UnsupportedTokenizersAreErrorsNamingTheFile) {
  const fs::path dir = test::make_temp_dir("gguf-meta-bad");
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "Unigram", "vocab": {}}})";
  try {
    gguf_tokenizer_kvs(dir, 0, Arch::Llama);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("Unigram"));
    EXPECT_THAT(e.what(), HasSubstr("tokenizer.json"));
  }
  std::ofstream(dir / "tokenizer.json")
      << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
             "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+"}}})";
  try {
    gguf_tokenizer_kvs(dir, 0, Arch::Llama);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("pre-tokenizer not recognised"));
    EXPECT_THAT(e.what(), HasSubstr("tokenizer.json"));
  }
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "BPE", "byte_fallback": true, "vocab": {"a": 0, "b": 1}}})";
  EXPECT_THROW(gguf_tokenizer_kvs(dir, 1, Arch::Llama), Error);  // more tokens than vocab_size
  fs::remove_all(dir);
}

TEST(GgufMeta, LlamaHyperParametersFromConfig) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  const json cfg = json::parse(read_text_file(model / "config.json"));
  const std::vector<GgufKV> kv = gguf_metadata(model, {GgufFileType::MOSTLY_Q4_K_M, "stories", 64});
  auto u32 = [&](const std::string& k) { return int64_t(find(kv, k)->value.as<uint32_t>()); };
  EXPECT_EQ(find(kv, "general.architecture")->value.as_string(), "llama");
  EXPECT_EQ(find(kv, "general.name")->value.as_string(), "stories");
  EXPECT_EQ(u32("general.file_type"), 15);
  EXPECT_EQ(u32("general.alignment"), 64);
  EXPECT_EQ(u32("llama.context_length"), cfg["max_position_embeddings"].get<int64_t>());
  EXPECT_EQ(u32("llama.embedding_length"), cfg["hidden_size"].get<int64_t>());
  EXPECT_EQ(u32("llama.block_count"), cfg["num_hidden_layers"].get<int64_t>());
  EXPECT_EQ(u32("llama.feed_forward_length"), cfg["intermediate_size"].get<int64_t>());
  EXPECT_EQ(u32("llama.attention.head_count"), cfg["num_attention_heads"].get<int64_t>());
  EXPECT_EQ(u32("llama.attention.head_count_kv"), cfg["num_key_value_heads"].get<int64_t>());
  const int64_t head_dim = cfg["hidden_size"].get<int64_t>() / cfg["num_attention_heads"].get<int64_t>();
  EXPECT_EQ(u32("llama.attention.key_length"), head_dim);
  EXPECT_EQ(u32("llama.attention.value_length"), head_dim);
  EXPECT_EQ(u32("llama.rope.dimension_count"), head_dim);
  EXPECT_EQ(u32("llama.vocab_size"), cfg["vocab_size"].get<int64_t>());
  EXPECT_EQ(find(kv, "llama.rope.freq_base")->value.as<float>(), float(cfg.value("rope_theta", 10000.0)));
  EXPECT_EQ(find(kv, "llama.attention.layer_norm_rms_epsilon")->value.as<float>(), float(cfg["rms_norm_eps"].get<double>()));
  EXPECT_EQ(find(kv, "tokenizer.ggml.model")->value.as_string(), "llama");
  EXPECT_EQ(find(kv, "tokenizer.ggml.tokens")->value.size(), uint64_t(cfg["vocab_size"].get<int64_t>()));
  EXPECT_EQ(find(kv, "llama.rope.scaling.type"), nullptr);
}

ModelConfig tiny_config(Arch arch) {
  ModelConfig c;
  c.arch = arch;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 100;
  c.max_position_embeddings = 1000;
  c.rope_theta = 10000.0;
  return c;
}

TEST(GgufMeta, MistralIsLlamaAndLinearRopeScalingIsStated) {
  EXPECT_EQ(gguf_arch_name(Arch::Mistral), "llama");
  EXPECT_EQ(gguf_arch_name(Arch::Llama), "llama");
  EXPECT_EQ(gguf_arch_name(Arch::Qwen2), "qwen2");
  EXPECT_EQ(gguf_arch_name(Arch::Qwen3), "qwen3");
  ModelConfig c = tiny_config(Arch::Mistral);
  c.rope_scaling.type = RopeScaling::Type::Linear;
  c.rope_scaling.factor = 4.0;
  const std::vector<GgufKV> kv = gguf_model_kvs(c, "/x/my-model/", {});
  EXPECT_EQ(find(kv, "general.name")->value.as_string(), "my-model");
  EXPECT_EQ(find(kv, "llama.rope.scaling.type")->value.as_string(), "linear");
  EXPECT_EQ(find(kv, "llama.rope.scaling.factor")->value.as<float>(), 4.0f);
  EXPECT_TRUE(gguf_rope_freqs(c).empty());
  c.vocab_size = int64_t(1) << 33;
  EXPECT_THROW(gguf_model_kvs(c, "/x/m", {}), Error);
}

// head_dim 8, theta 10^4: rotary frequencies 1, 0.1, 0.01, 0.001, wavelengths 2*pi/f. With
// original context 1000, low/high factors 1 and 4: wavelengths < 250 keep factor 1, > 1000 get
// `factor` (8), and 628.3 is blended: smooth = (1000/628.3 - 1)/3, 1 / ((1 - smooth)/8 + smooth).
TEST(GgufMeta, Llama3RopeFactorsByHand) {
  ModelConfig c = tiny_config(Arch::Llama);
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 1000;
  const std::vector<float> f = gguf_rope_freqs(c);
  ASSERT_EQ(f.size(), 4u);
  const double smooth = (1000.0 / (2 * M_PI / 0.01) - 1.0) / 3.0;
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[1], 1.0f);
  EXPECT_NEAR(f[2], 1.0 / ((1.0 - smooth) / 8.0 + smooth), 1e-5);
  EXPECT_EQ(f[3], 8.0f);
  // No KV for llama3 scaling: llama.cpp reads the factors from the rope_freqs tensor.
  EXPECT_EQ(find(gguf_model_kvs(c, "/x/m", {}), "llama.rope.scaling.type"), nullptr);
}

}  // namespace
}  // namespace ar
