// Tiny Gemma3 / Phi3 / Qwen3-MoE / Mixtral HF folders for GGUF tests that need no fixture: a
// config.json shaped like the generator's tiny-gemma3 / tiny-phi3 / tiny-qwen3-moe / tiny-mixtral
// presets (written out here, since the export and model test
// binaries do not link the generator), one F32 model.safetensors with every tensor
// block_tensor_specs lists (Gemma norms as small offsets from one, as HF stores them; other norms
// near one), and a minimal byte-level BPE tokenizer.json that GGUF export accepts. Header-only.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "io/safetensors_writer.h"
#include "model/block_specs.h"
#include "model/config.h"

namespace ar::test {

// tiny-gemma3: 4 layers, window 16 on layers 0, 1, 3 (layer 2 global), head_dim 32, linear RoPE
// scaling 2 on the global layer, local base 10000, tied embeddings.
inline nlohmann::json tiny_gemma3_config() {
  return {{"architectures", {"Gemma3ForCausalLM"}},
          {"model_type", "gemma3_text"},
          {"hidden_activation", "gelu_pytorch_tanh"},
          {"hidden_size", 128},
          {"intermediate_size", 384},
          {"num_hidden_layers", 4},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"head_dim", 32},
          {"vocab_size", 1024},
          {"tie_word_embeddings", true},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 1000000.0},
          {"rope_local_base_freq", 10000.0},
          {"rope_scaling", {{"rope_type", "linear"}, {"factor", 2.0}}},
          {"max_position_embeddings", 1024},
          {"sliding_window", 16},
          {"layer_types", {"sliding_attention", "sliding_attention", "full_attention", "sliding_attention"}},
          {"query_pre_attn_scalar", 32},
          {"final_logit_softcapping", nullptr},
          {"attn_logit_softcapping", nullptr},
          {"torch_dtype", "float32"}};
}

// tiny-phi3: 4 layers, fused qkv_proj / gate_up_proj, window 48 on every layer, untied lm_head.
inline nlohmann::json tiny_phi3_config() {
  return {{"architectures", {"Phi3ForCausalLM"}},
          {"model_type", "phi3"},
          {"hidden_act", "silu"},
          {"hidden_size", 128},
          {"intermediate_size", 320},
          {"num_hidden_layers", 4},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"vocab_size", 1024},
          {"tie_word_embeddings", false},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"rope_scaling", nullptr},
          {"max_position_embeddings", 1024},
          {"original_max_position_embeddings", 1024},
          {"sliding_window", 48},
          {"torch_dtype", "float32"}};
}

// tiny-qwen3-moe: 4 layers, layer 1 dense (mlp_only_layers), the others 8 experts of 64, top 2,
// renormalised; q/k norms, head_dim 32, tied embeddings.
inline nlohmann::json tiny_qwen3_moe_config() {
  return {{"architectures", {"Qwen3MoeForCausalLM"}},
          {"model_type", "qwen3_moe"},
          {"hidden_act", "silu"},
          {"hidden_size", 128},
          {"intermediate_size", 256},
          {"moe_intermediate_size", 64},
          {"num_experts", 8},
          {"num_experts_per_tok", 2},
          {"norm_topk_prob", true},
          {"decoder_sparse_step", 1},
          {"mlp_only_layers", {1}},
          {"num_hidden_layers", 4},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"head_dim", 32},
          {"vocab_size", 1024},
          {"tie_word_embeddings", true},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 1000000.0},
          {"max_position_embeddings", 1024},
          {"torch_dtype", "float32"}};
}

// tiny-mixtral: 4 layers, 4 experts of 96 (intermediate_size), top 2; untied lm_head.
inline nlohmann::json tiny_mixtral_config() {
  return {{"architectures", {"MixtralForCausalLM"}},
          {"model_type", "mixtral"},
          {"hidden_act", "silu"},
          {"hidden_size", 128},
          {"intermediate_size", 96},
          {"num_local_experts", 4},
          {"num_experts_per_tok", 2},
          {"num_hidden_layers", 4},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"vocab_size", 1024},
          {"tie_word_embeddings", false},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 1000000.0},
          {"max_position_embeddings", 1024},
          {"sliding_window", nullptr},
          {"torch_dtype", "float32"}};
}

// Writes config.json, tokenizer.json, tokenizer_config.json and model.safetensors (F32).
inline std::filesystem::path write_tiny_arch(const std::filesystem::path& dir, const nlohmann::json& config,
                                             uint32_t seed = 7) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << config.dump(2);
  // 256 single-byte tokens in GPT-2's byte-to-unicode spelling would be the real thing; the GGUF
  // export only needs a byte-level BPE it can name, so a few tokens and no merges do (the rest
  // of the vocabulary is padded with [PADi] as the converter does).
  nlohmann::json vocab = nlohmann::json::object();
  for (int i = 0; i < 26; ++i) vocab[std::string(1, char('a' + i))] = i;
  const nlohmann::json tok = {{"version", "1.0"},
                              {"added_tokens", nlohmann::json::array()},
                              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  std::ofstream(dir / "tokenizer.json") << tok.dump();
  std::ofstream(dir / "tokenizer_config.json") << R"({"add_bos_token": false, "add_eos_token": false})";

  const ModelConfig c = parse_model_config(config, (dir / "config.json").string());
  const int64_t C = c.hidden_size, V = c.vocab_size;
  std::vector<TensorSpec> specs;
  specs.push_back({"model.embed_tokens.weight", DType::F32, {V, C}});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    for (const BlockTensorSpec& s : block_tensor_specs(c, l)) specs.push_back({s.name, DType::F32, s.shape});
  specs.push_back({"model.norm.weight", DType::F32, {C}});
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", DType::F32, {V, C}});

  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  SafetensorsWriter w(dir / "model.safetensors", specs, {{"format", "pt"}});
  for (const TensorSpec& s : specs) {
    std::vector<float> v(size_t(s.size_bytes() / sizeof(float)));
    const bool norm = s.shape.size() == 1;
    const float base = norm && !c.norm_weight_offset ? 1.0f : 0.0f;
    for (float& x : v) x = base + nd(rng);
    w.write(s.name, v.data(), s.size_bytes());
  }
  w.finish();
  return dir;
}

}  // namespace ar::test
