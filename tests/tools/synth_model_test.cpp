// Synthetic model generator: tensor lists per architecture (expected shapes written by hand from
// the HF modeling code), generated folders reopened with SafetensorsReader, sharding, determinism,
// weight statistics, and the refusal to overwrite.
#include "tools/synth_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/safetensors.h"
#include "support/fixtures.h"

namespace ar {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Shape = std::vector<int64_t>;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

std::map<std::string, Shape> shapes_of(const std::vector<TensorSpec>& specs) {
  std::map<std::string, Shape> m;
  for (const auto& s : specs) m[s.name] = s.shape;
  return m;
}

TEST(SynthSpecs, TinyLlama) {
  auto specs = synth_tensor_specs(synth_preset_config("tiny"), DType::BF16);
  EXPECT_EQ(specs.size(), 1u + 4 * 9 + 1);  // embed, 4 x (4 attn + 3 mlp + 2 norms), final norm; tied
  auto m = shapes_of(specs);
  EXPECT_EQ(m.at("model.embed_tokens.weight"), (Shape{512, 64}));
  EXPECT_EQ(m.at("model.layers.3.self_attn.q_proj.weight"), (Shape{64, 64}));   // 8 heads x 8
  EXPECT_EQ(m.at("model.layers.3.self_attn.k_proj.weight"), (Shape{32, 64}));   // 4 kv heads x 8
  EXPECT_EQ(m.at("model.layers.3.self_attn.v_proj.weight"), (Shape{32, 64}));
  EXPECT_EQ(m.at("model.layers.3.self_attn.o_proj.weight"), (Shape{64, 64}));
  EXPECT_EQ(m.at("model.layers.3.mlp.gate_proj.weight"), (Shape{172, 64}));
  EXPECT_EQ(m.at("model.layers.3.mlp.up_proj.weight"), (Shape{172, 64}));
  EXPECT_EQ(m.at("model.layers.3.mlp.down_proj.weight"), (Shape{64, 172}));
  EXPECT_EQ(m.at("model.layers.3.input_layernorm.weight"), (Shape{64}));
  EXPECT_EQ(m.at("model.layers.3.post_attention_layernorm.weight"), (Shape{64}));
  EXPECT_EQ(m.at("model.norm.weight"), (Shape{64}));
  EXPECT_FALSE(m.count("lm_head.weight"));
  EXPECT_EQ(specs.front().name, "model.embed_tokens.weight");  // stream order: embedding, blocks, norm
  EXPECT_EQ(specs.back().name, "model.norm.weight");
}

TEST(SynthSpecs, Qwen3HasQkNormAndWideHeads) {
  auto m = shapes_of(synth_tensor_specs(synth_preset_config("tiny-qwen3"), DType::BF16));
  EXPECT_EQ(m.at("model.layers.0.self_attn.q_proj.weight"), (Shape{256, 128}));  // 4 heads x 64
  EXPECT_EQ(m.at("model.layers.0.self_attn.k_proj.weight"), (Shape{128, 128}));  // 2 kv heads x 64
  EXPECT_EQ(m.at("model.layers.0.self_attn.o_proj.weight"), (Shape{128, 256}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.q_norm.weight"), (Shape{64}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.k_norm.weight"), (Shape{64}));
  EXPECT_FALSE(m.count("model.layers.0.self_attn.q_proj.bias"));
}

TEST(SynthSpecs, Qwen2HasQkvBiasOnly) {
  auto m = shapes_of(synth_tensor_specs(synth_preset_config("tiny-qwen2"), DType::BF16));
  EXPECT_EQ(m.at("model.layers.1.self_attn.q_proj.bias"), (Shape{128}));
  EXPECT_EQ(m.at("model.layers.1.self_attn.k_proj.bias"), (Shape{64}));
  EXPECT_EQ(m.at("model.layers.1.self_attn.v_proj.bias"), (Shape{64}));
  EXPECT_FALSE(m.count("model.layers.1.self_attn.o_proj.bias"));
  EXPECT_FALSE(m.count("model.layers.1.self_attn.q_norm.weight"));
}

TEST(SynthSpecs, Qwen3_4BMatchesPublishedSizes) {
  auto specs = synth_tensor_specs(synth_preset_config("qwen3-4b"), DType::BF16);
  uint64_t params = 0;
  for (const auto& s : specs) params += s.size_bytes() / 2;
  // Qwen3-4B: 4,022,468,096 parameters (tied embeddings), 36 x 11 + 2 tensors.
  EXPECT_EQ(params, 4022468096ull);
  EXPECT_EQ(specs.size(), 36u * 11 + 2);
  auto m = shapes_of(specs);
  EXPECT_EQ(m.at("model.embed_tokens.weight"), (Shape{151936, 2560}));
  EXPECT_EQ(m.at("model.layers.35.self_attn.q_proj.weight"), (Shape{4096, 2560}));
  EXPECT_EQ(m.at("model.layers.35.self_attn.k_proj.weight"), (Shape{1024, 2560}));
  EXPECT_EQ(m.at("model.layers.35.mlp.down_proj.weight"), (Shape{2560, 9728}));
}

TEST(SynthSpecs, UntiedAndBiasOptions) {
  json c = synth_preset_config("tiny");
  c["tie_word_embeddings"] = false;
  c["attention_bias"] = true;
  c["mlp_bias"] = true;
  auto m = shapes_of(synth_tensor_specs(c, DType::F32));
  EXPECT_EQ(m.at("lm_head.weight"), (Shape{512, 64}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.o_proj.bias"), (Shape{64}));
  EXPECT_EQ(m.at("model.layers.0.mlp.down_proj.bias"), (Shape{64}));
  EXPECT_EQ(m.at("model.layers.0.mlp.gate_proj.bias"), (Shape{172}));
}

TEST(SynthSpecs, BadConfigsAndPresets) {
  json c = synth_preset_config("tiny");
  c.erase("hidden_size");
  EXPECT_THAT([&] { synth_tensor_specs(c, DType::BF16); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("hidden_size")));
  json d = synth_preset_config("tiny");
  d["architectures"] = json::array({"GPT2LMHeadModel"});
  EXPECT_THROW(synth_tensor_specs(d, DType::BF16), Error);
  EXPECT_THAT([] { synth_preset_config("nope"); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("qwen3-4b")));
  json e = synth_preset_config("tiny");
  e["layer_types"] = json::array({"full_attention", "full_attention", "full_attention", "full_attention"});
  e["max_window_layers"] = 4;
  synth_set_num_layers(e, 2);
  EXPECT_EQ(e["num_hidden_layers"], 2);
  EXPECT_EQ(e["layer_types"].size(), 2u);
  EXPECT_EQ(e["max_window_layers"], 2);
  EXPECT_THROW(synth_set_num_layers(e, 0), Error);
}

class SynthGenerate : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::make_temp_dir("synth"); }
  void TearDown() override { fs::remove_all(dir_); }
  SynthOptions opts(const std::string& preset, const std::string& sub) {
    SynthOptions o;
    o.config = synth_preset_config(preset);
    o.output_dir = dir_ / sub;
    return o;
  }
  fs::path dir_;
};

TEST_F(SynthGenerate, TinyPresetReopens) {
  SynthOptions o = opts("tiny", "m");
  generate_synthetic_model(o);
  auto r = SafetensorsReader::open(o.output_dir);
  auto expected = synth_tensor_specs(o.config, DType::BF16);
  ASSERT_EQ(r.tensors().size(), expected.size());
  for (const auto& s : expected) {
    const TensorInfo& t = r.require(s.name);
    EXPECT_EQ(t.shape, s.shape) << s.name;
    EXPECT_EQ(t.dtype, DType::BF16) << s.name;
  }
  EXPECT_EQ(r.metadata().at("format"), "pt");
  json cfg = json::parse(slurp(o.output_dir / "config.json"));
  EXPECT_EQ(cfg["torch_dtype"], "bfloat16");
  EXPECT_EQ(cfg["hidden_size"], 64);
  json tok = json::parse(slurp(o.output_dir / "tokenizer.json"));
  EXPECT_EQ(tok["model"]["type"], "BPE");
  EXPECT_EQ(tok["pre_tokenizer"]["type"], "ByteLevel");
  EXPECT_EQ(cfg["eos_token_id"], tok["added_tokens"][0]["id"]);
  EXPECT_LE(cfg["eos_token_id"].get<int64_t>(), 511);  // fits the model's 512-entry embedding
  for (const char* f : {"generation_config.json", "tokenizer_config.json"}) EXPECT_TRUE(fs::exists(o.output_dir / f));
  // No temporary folders or files left behind.
  for (const auto& e : fs::directory_iterator(dir_)) EXPECT_EQ(e.path().filename(), "m");

  // Weight statistics: linear weights ~ N(0, 0.02), norms ~ 1 + N(0, 0.02).
  std::vector<float> w(512 * 64);
  r.read_f32(r.require("model.embed_tokens.weight"), w.data());
  double sum = 0, sq = 0;
  for (float v : w) sum += v, sq += double(v) * v;
  const double mean = sum / double(w.size()), sd = std::sqrt(sq / double(w.size()) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.001);  // 5 standard errors of the mean (0.02 / sqrt(32768))
  EXPECT_NEAR(sd, 0.02, 0.001);
  std::vector<float> n(64);
  r.read_f32(r.require("model.norm.weight"), n.data());
  for (float v : n) EXPECT_NEAR(v, 1.0f, 0.12f);  // 6 sigma
}

TEST_F(SynthGenerate, ShardedOutputHasIndexAndAllShardsOpen) {
  SynthOptions o = opts("tiny-qwen3", "sharded");
  o.max_shard_bytes = 300'000;
  o.dtype = DType::F16;
  generate_synthetic_model(o);
  ASSERT_TRUE(fs::exists(o.output_dir / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(o.output_dir / "model.safetensors"));
  json idx = json::parse(slurp(o.output_dir / "model.safetensors.index.json"));
  std::set<std::string> shards;
  for (auto& [k, v] : idx["weight_map"].items()) shards.insert(v.get<std::string>());
  EXPECT_GT(shards.size(), 2u);
  for (const auto& s : shards) {
    auto r = SafetensorsReader::open(o.output_dir / s);  // each shard is a valid file on its own
    uint64_t data = 0;
    for (const auto& t : r.tensors()) data += t.size_bytes;
    // The 1024 x 128 f16 embedding (262,144 bytes) fits the limit, so every shard must too.
    EXPECT_LE(data, o.max_shard_bytes) << s;
  }
  auto all = SafetensorsReader::open(o.output_dir);
  EXPECT_EQ(all.tensors().size(), synth_tensor_specs(o.config, DType::F16).size());
  EXPECT_EQ(all.require("model.layers.2.self_attn.k_norm.weight").dtype, DType::F16);
  EXPECT_EQ(json::parse(slurp(o.output_dir / "config.json"))["torch_dtype"], "float16");
}

TEST_F(SynthGenerate, DeterministicForASeed) {
  SynthOptions a = opts("tiny", "a"), b = opts("tiny", "b"), c = opts("tiny", "c");
  a.seed = b.seed = 5;
  c.seed = 6;
  generate_synthetic_model(a);
  generate_synthetic_model(b);
  generate_synthetic_model(c);
  const std::string wa = slurp(a.output_dir / "model.safetensors");
  EXPECT_EQ(wa, slurp(b.output_dir / "model.safetensors"));
  EXPECT_NE(wa, slurp(c.output_dir / "model.safetensors"));
  EXPECT_EQ(slurp(a.output_dir / "tokenizer.json"), slurp(c.output_dir / "tokenizer.json"));
}

TEST_F(SynthGenerate, ExistingFolderNeedsOverwrite) {
  SynthOptions o = opts("tiny", "m");
  generate_synthetic_model(o);
  EXPECT_THAT([&] { generate_synthetic_model(o); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("already exists")));
  o.overwrite = true;
  o.config = synth_preset_config("tiny-qwen3");
  generate_synthetic_model(o);
  EXPECT_NE(SafetensorsReader::open(o.output_dir).find("model.layers.0.self_attn.q_norm.weight"), nullptr);

  // A folder that is not a model is never deleted, even with overwrite.
  fs::create_directories(dir_ / "notes");
  std::ofstream(dir_ / "notes" / "todo.txt") << "keep me";
  SynthOptions n = opts("tiny", "notes");
  n.overwrite = true;
  EXPECT_THAT([&] { generate_synthetic_model(n); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("no config.json")));
  EXPECT_TRUE(fs::exists(dir_ / "notes" / "todo.txt"));
}

}  // namespace
}  // namespace ar
