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

TEST(ModelConfig, TransformersFiveRopeParameters) {
  // transformers 5 writes RoPE as rope_parameters and no top-level rope_theta; reading the
  // default 10000 there would silently change every rotation of a Qwen3 model.
  json j = qwen3_like();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_theta", 1000000.0}, {"rope_type", "default"}};
  ModelConfig c = parse_model_config(j, "cfg.json");
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::None);
  j["rope_parameters"] = {{"rope_theta", 500000.0}, {"rope_type", "linear"}, {"factor", 4.0}};
  c = parse_model_config(j, "cfg.json");
  EXPECT_EQ(c.rope_theta, 5e5);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Linear);
  EXPECT_EQ(c.rope_scaling.factor, 4.0);
  j["rope_parameters"]["partial_rotary_factor"] = 0.75;
  EXPECT_NE(error_of(j).find("partial_rotary_factor 0.75 is not supported"), std::string::npos) << error_of(j);
}

json gemma3_like() {  // google/gemma-3-1b-it's config.json, shortened to 8 layers
  return json::parse(R"({"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
    "hidden_size": 1152, "intermediate_size": 6912, "num_hidden_layers": 8, "num_attention_heads": 4,
    "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 262144, "rms_norm_eps": 1e-6,
    "rope_theta": 1000000, "rope_local_base_freq": 10000, "rope_scaling": null, "sliding_window": 512,
    "sliding_window_pattern": 6, "query_pre_attn_scalar": 256, "hidden_activation": "gelu_pytorch_tanh",
    "final_logit_softcapping": null, "attn_logit_softcapping": null, "max_position_embeddings": 32768})");
}

TEST(ModelConfig, ParsesGemma3) {
  ModelConfig c = parse_model_config(gemma3_like(), "cfg.json");
  EXPECT_EQ(c.arch, Arch::Gemma3);
  EXPECT_TRUE(c.qk_norm && c.sandwich_norms && c.norm_weight_offset);
  EXPECT_TRUE(c.tie_word_embeddings);  // Gemma3TextConfig's default
  EXPECT_EQ(c.hidden_act, Activation::GeluTanh);
  EXPECT_NEAR(c.embed_scale, std::sqrt(1152.0), 1e-12);
  EXPECT_EQ(c.sliding_window, 512);
  EXPECT_EQ(c.rope_local_theta, 1e4);
  EXPECT_EQ(c.rope_theta, 1e6);
  // sliding_window_pattern 6: layers 5, 11, ... are global.
  for (int64_t l = 0; l < 8; ++l) {
    EXPECT_EQ(layer_is_sliding(c, l), l != 5) << l;
    EXPECT_EQ(layer_window(c, l), l == 5 ? 0 : 512) << l;
    EXPECT_EQ(layer_uses_local_rope(c, l), l != 5) << l;
  }
  EXPECT_FLOAT_EQ(attention_scale(c), 1.0f / 16.0f);
  // The local tables rotate with base 1e4, unscaled; the global ones with 1e6 and the scaling.
  json j = gemma3_like();
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  c = parse_model_config(j, "cfg.json");
  EXPECT_FLOAT_EQ(rope_inv_freq(c, true)[1], 1.0f / std::pow(1e4f, 2.0f / 256));
  EXPECT_FLOAT_EQ(rope_inv_freq(c)[1], float(1.0f / std::pow(1e6f, 2.0f / 256) / 8.0));
}

TEST(ModelConfig, Gemma3LayerTypesAndRopeParameters) {
  json j = gemma3_like();
  j["layer_types"] = {"full_attention", "sliding_attention", "full_attention", "sliding_attention",
                      "sliding_attention", "sliding_attention", "sliding_attention", "full_attention"};
  j.erase("rope_theta");
  j.erase("rope_local_base_freq");
  j["rope_parameters"] = {{"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}, {"rope_theta", 1e6}}},
                          {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 2e4}}}};
  ModelConfig c = parse_model_config(j, "cfg.json");
  EXPECT_EQ(c.layer_sliding, (std::vector<uint8_t>{0, 1, 0, 1, 1, 1, 1, 0}));
  EXPECT_EQ(c.rope_local_theta, 2e4);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Linear);
  j["layer_types"][3] = "chunked_attention";
  EXPECT_NE(error_of(j).find("layer_types[3]"), std::string::npos) << error_of(j);
  j["layer_types"] = {"full_attention"};
  EXPECT_NE(error_of(j).find("layer_types must be a list of num_hidden_layers (8)"), std::string::npos);
}

TEST(ModelConfig, Gemma3RefusalsAndIgnoredAttentionSoftcap) {
  json j = gemma3_like();
  j["use_bidirectional_attention"] = true;
  EXPECT_NE(error_of(j).find("use_bidirectional_attention"), std::string::npos);
  j = gemma3_like();
  j["architectures"] = {"Gemma3ForConditionalGeneration"};
  EXPECT_NE(error_of(j).find("text_config"), std::string::npos) << error_of(j);
  j = gemma3_like();
  j["hidden_activation"] = "relu";
  EXPECT_NE(error_of(j).find("unsupported hidden_activation \"relu\""), std::string::npos) << error_of(j);
  j = gemma3_like();
  j["attn_logit_softcapping"] = 50.0;
  j["final_logit_softcapping"] = 30.0;
  const ModelConfig c = parse_model_config(j, "cfg.json");
  EXPECT_EQ(c.attn_logit_softcapping, 0);  // transformers' and llama.cpp's Gemma3 never apply it
  EXPECT_EQ(c.final_logit_softcapping, 30.0);
}

TEST(ModelConfig, ParsesPhi3) {
  json j = json::parse(R"({"architectures": ["Phi3ForCausalLM"], "model_type": "phi3",
    "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 32, "vocab_size": 32064, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "rope_scaling": null, "sliding_window": 2047, "hidden_act": "silu", "max_position_embeddings": 4096,
    "original_max_position_embeddings": 4096, "tie_word_embeddings": false})");
  ModelConfig c = parse_model_config(j, "cfg.json");
  EXPECT_EQ(c.arch, Arch::Phi3);
  EXPECT_TRUE(c.fused_qkv && c.fused_gate_up);
  EXPECT_EQ(c.head_dim, 96);
  EXPECT_EQ(c.sliding_window, 2047);
  for (int64_t l : {0, 31}) EXPECT_EQ(layer_window(c, l), 2047);
  EXPECT_FALSE(c.qk_norm || c.sandwich_norms || c.norm_weight_offset);
  j["rope_scaling"] = {{"type", "longrope"}, {"long_factor", {1.0}}, {"short_factor", {1.0}}};
  EXPECT_NE(error_of(j).find("unsupported rope_scaling type 'longrope'"), std::string::npos) << error_of(j);
  j["rope_scaling"] = nullptr;
  j["partial_rotary_factor"] = 0.75;  // Phi-4-mini
  EXPECT_NE(error_of(j).find("partial_rotary_factor"), std::string::npos);
}

TEST(ModelConfig, MoeFieldsAndTheirErrors) {
  json j = qwen3_like();
  j["architectures"] = {"Qwen3MoeForCausalLM"};
  j["num_hidden_layers"] = 4;
  j["num_experts"] = 16;
  j["num_experts_per_tok"] = 4;
  j["moe_intermediate_size"] = 96;
  j["norm_topk_prob"] = true;
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = {3};
  ModelConfig c = parse_model_config(j, "cfg.json");
  EXPECT_EQ(c.arch, Arch::Qwen3Moe);
  EXPECT_TRUE(c.qk_norm && c.norm_topk_prob);
  // Sparse where (layer + 1) % step == 0, minus mlp_only_layers: only layer 1.
  for (int64_t l = 0; l < 4; ++l) EXPECT_EQ(layer_is_moe(c, l), l == 1) << l;
  const auto error_with = [&](const char* key, json v) {
    json k = j;
    k[key] = std::move(v);
    return error_of(k);
  };
  EXPECT_NE(error_with("num_experts_per_tok", 17).find("num_experts_per_tok (17) must be in [1, number of experts (16)]"),
            std::string::npos);
  EXPECT_NE(error_with("mlp_only_layers", json{4}).find("mlp_only_layers holds 4, not a layer index below 4"),
            std::string::npos);
  EXPECT_NE(error_with("mlp_only_layers", 3).find("mlp_only_layers must be a list"), std::string::npos);
  EXPECT_NE(error_with("decoder_sparse_step", 0).find("decoder_sparse_step must be positive"), std::string::npos);
  EXPECT_NE(error_with("moe_intermediate_size", 0).find("moe_intermediate_size must be positive"), std::string::npos);
  EXPECT_NE(error_with("num_experts", "8").find("'num_experts' must be an integer"), std::string::npos);
  // Mixtral: every layer sparse, top-k always renormalised, experts of intermediate_size.
  json m = qwen3_like();
  m["architectures"] = {"MixtralForCausalLM"};
  m["num_local_experts"] = 8;
  m["num_experts_per_tok"] = 2;
  c = parse_model_config(m, "cfg.json");
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.moe_intermediate_size, c.intermediate_size);
  EXPECT_TRUE(layer_is_moe(c, 0) && layer_is_moe(c, 35));
}

TEST(ModelConfig, MistralSlidingWindowApplies) {
  json j = qwen3_like();
  j["architectures"] = {"MistralForCausalLM"};
  j["sliding_window"] = 4096;
  ModelConfig c = parse_model_config(j, "cfg.json");
  EXPECT_EQ(layer_window(c, 3), 4096);
  j["sliding_window"] = nullptr;
  EXPECT_EQ(layer_window(parse_model_config(j, "cfg.json"), 3), 0);
  // Qwen3's window is behind use_sliding_window, which is ignored with a warning.
  j = qwen3_like();
  j["sliding_window"] = 4096;
  EXPECT_EQ(layer_window(parse_model_config(j, "cfg.json"), 3), 0);
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
