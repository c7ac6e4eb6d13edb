#include "model/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "support/fixtures.h"

namespace ar {
namespace {

using json = nlohmann::json;

json qwen3_like() {
  return json::parse(R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
    "hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000, "tie_word_embeddings": true,
    "attention_bias": false, "hidden_act": "silu", "rope_scaling": null})");
}

std::string error_of(const json& j) {
  try {
    parse_model_config(j, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, ParsesQwen3) {
  ModelConfig c = parse_model_config(qwen3_like(), "cfg.json");
  EXPECT_EQ(c.arch, Arch::Qwen3);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 128);  // not hidden/heads = 80
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
}

TEST(ModelConfig, Qwen2AlwaysHasQkvBias) {
  json j = qwen3_like();
  j["architectures"] = {"Qwen2ForCausalLM"};
  j.erase("head_dim");
  j["hidden_size"] = 896;
  j["num_attention_heads"] = 14;
  j["num_key_value_heads"] = 2;
  ModelConfig c = parse_model_config(j, "cfg.json");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 64);
}

TEST(ModelConfig, FixturesLoad) {
  AR_REQUIRE_FIXTURE(dir, "models/stories260K/hf");
  ModelConfig c = load_model_config(dir);
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_FLOAT_EQ(float(c.rms_norm_eps), 1e-5f);
}

// One malformed config per failure mode; each must name the file and the problem.
TEST(ModelConfig, MalformedConfigsGiveClearErrors) {
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    const char* expect;
  };
  const Case cases[] = {
      {"unsupported arch", [](json& j) { j["architectures"] = {"GPT2LMHeadModel"}; },
       "unsupported architecture GPT2LMHeadModel"},
      {"no architectures", [](json& j) { j.erase("architectures"); }, "missing 'architectures'"},
      {"missing hidden_size", [](json& j) { j.erase("hidden_size"); }, "missing required field 'hidden_size'"},
      {"string size", [](json& j) { j["hidden_size"] = "2560"; }, "'hidden_size' must be an integer"},
      {"zero layers", [](json& j) { j["num_hidden_layers"] = 0; }, "num_hidden_layers must be positive"},
      {"bad gqa", [](json& j) { j["num_key_value_heads"] = 5; }, "must be a multiple of num_key_value_heads"},
      {"odd head_dim", [](json& j) { j["head_dim"] = 127; }, "head_dim must be positive and even"},
      {"negative eps", [](json& j) { j["rms_norm_eps"] = -1; }, "rms_norm_eps must be > 0"},
      {"yarn", [](json& j) { j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}}; },
       "unsupported rope_scaling type 'yarn'"},
      {"llama3 incomplete", [](json& j) { j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}}; },
       "original_max_position_embeddings"},
      {"gelu", [](json& j) { j["hidden_act"] = "gelu"; }, "unsupported hidden_act"},
      {"tie not bool", [](json& j) { j["tie_word_embeddings"] = 1; }, "must be true or false"},
  };
  for (const Case& c : cases) {
    json j = qwen3_like();
    c.edit(j);
    std::string err = error_of(j);
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.what << ": got '" << err << "'";
    EXPECT_NE(err.find("cfg.json"), std::string::npos) << c.what << ": error does not name the file";
  }
}

TEST(ModelConfig, MissingOrInvalidFile) {
  auto dir = test::make_temp_dir("config");
  EXPECT_THROW(load_model_config(dir), Error);  // no config.json
  std::ofstream(dir / "config.json") << "{ not json";
  try {
    load_model_config(dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos) << e.what();
  }
}

// Llama 3.x rope scaling (factor 32, low 1, high 4, original context 8192, theta 500000, D 64).
// Expected values derived by hand from the published rule: wavelengths shorter than 8192/4 keep
// their frequency, longer than 8192/1 are divided by the factor, in between interpolate.
TEST(ModelConfig, Llama3RopeScaling) {
  json j = qwen3_like();
  j["architectures"] = {"LlamaForCausalLM"};
  j["head_dim"] = 64;
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  ModelConfig c = parse_model_config(j, "cfg.json");
  std::vector<float> inv = rope_inv_freq(c);
  ASSERT_EQ(inv.size(), 32u);
  EXPECT_FLOAT_EQ(inv[0], 1.0f);  // wavelength 2*pi: untouched
  const double base31 = std::pow(500000.0, -62.0 / 64.0);  // wavelength ~ 2.0e5 > 8192
  EXPECT_NEAR(inv[31], base31 / 32.0, 1e-6 * base31);
  // i = 14: base = 500000^(-28/64) ~ 3.2e-3, wavelength ~ 1963 < 2048: unchanged.
  EXPECT_NEAR(inv[14], std::pow(500000.0, -28.0 / 64.0), 1e-6);
  // i = 16: wavelength ~ 2*pi/5.4e-4? compute: base = 500000^(-0.5) = 1.414e-3, wavelength 4443 (medium).
  const double b16 = std::pow(500000.0, -0.5), wl = 2 * M_PI / b16;
  const double smooth = (8192.0 / wl - 1.0) / 3.0;
  EXPECT_NEAR(inv[16], (1 - smooth) * b16 / 32 + smooth * b16, 1e-6 * b16);
}

TEST(ModelConfig, LinearRopeScaling) {
  json j = qwen3_like();
  ModelConfig plain = parse_model_config(j, "cfg.json");
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  ModelConfig lin = parse_model_config(j, "cfg.json");
  auto a = rope_inv_freq(plain), b = rope_inv_freq(lin);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_FLOAT_EQ(b[i], a[i] / 4.0f);
}

// Dimensions whose products overflow int64 (the f32 size of q_proj, the MLP, the embedding) are
// refused by the parser, before block shapes or buffers are computed from them.
TEST(ModelConfig, SizesWhoseProductsOverflowAreRefused) {
  json j = qwen3_like();
  j["hidden_size"] = int64_t(1) << 32;
  j["intermediate_size"] = int64_t(1) << 32;
  std::string e = error_of(j);
  EXPECT_NE(e.find("too large"), std::string::npos) << e;
  EXPECT_NE(e.find("cfg.json"), std::string::npos) << e;
  EXPECT_NE(e.find("4294967296"), std::string::npos) << e;
  j = qwen3_like();
  j["vocab_size"] = int64_t(1) << 62;
  e = error_of(j);
  EXPECT_NE(e.find("embedding"), std::string::npos) << e;
  j = qwen3_like();
  j["head_dim"] = int64_t(1) << 60;
  e = error_of(j);
  EXPECT_NE(e.find("q_proj"), std::string::npos) << e;
  EXPECT_EQ(error_of(qwen3_like()), "");  // a real 4B config is far from the limits
}

}  // namespace
}  // namespace ar
