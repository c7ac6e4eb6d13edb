// A tiny BF16 Llama folder for writer/reader tests that need a real model layout but no fixture:
// config.json, one model.safetensors with random weights (norms near 1), a stand-in tokenizer.json
// to be copied along, and optionally a generation_config.json. Header-only: the test binaries
// already link the io and model layers this needs.
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

namespace ar::test {

struct TinyLlama {
  int64_t hidden = 64, intermediate = 172, layers = 2, vocab = 96, heads = 8, kv_heads = 4, head_dim = 8;
  uint32_t seed = 42;
  bool generation_config = false;
};

inline std::filesystem::path write_tiny_llama(const std::filesystem::path& dir, const TinyLlama& t) {
  std::filesystem::create_directories(dir);
  const nlohmann::json cfg = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
                              {"hidden_size", t.hidden}, {"intermediate_size", t.intermediate},
                              {"num_hidden_layers", t.layers}, {"num_attention_heads", t.heads},
                              {"num_key_value_heads", t.kv_heads}, {"head_dim", t.head_dim},
                              {"vocab_size", t.vocab}, {"tie_word_embeddings", false}, {"rms_norm_eps", 1e-5},
                              {"rope_theta", 10000.0}, {"max_position_embeddings", 256},
                              {"torch_dtype", "bfloat16"}};
  std::ofstream(dir / "config.json") << cfg.dump(2);
  std::ofstream(dir / "tokenizer.json") << "{\"fake\": true}";
  if (t.generation_config) std::ofstream(dir / "generation_config.json") << "{\"bos_token_id\": 1}";

  const int64_t C = t.hidden, F = t.intermediate, q = t.heads * t.head_dim, kv = t.kv_heads * t.head_dim;
  std::vector<TensorSpec> specs;
  auto add = [&](const std::string& n, std::vector<int64_t> shape) { specs.push_back({n, DType::BF16, shape}); };
  add("model.embed_tokens.weight", {t.vocab, C});
  for (int64_t l = 0; l < t.layers; ++l) {
    const std::string p = block_prefix(l);
    add(p + "input_layernorm.weight", {C});
    add(p + "post_attention_layernorm.weight", {C});
    add(p + "self_attn.q_proj.weight", {q, C});
    add(p + "self_attn.k_proj.weight", {kv, C});
    add(p + "self_attn.v_proj.weight", {kv, C});
    add(p + "self_attn.o_proj.weight", {C, q});
    add(p + "mlp.gate_proj.weight", {F, C});
    add(p + "mlp.up_proj.weight", {F, C});
    add(p + "mlp.down_proj.weight", {C, F});
  }
  add("model.norm.weight", {C});
  add("lm_head.weight", {t.vocab, C});
  std::mt19937 rng(t.seed);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  SafetensorsWriter w(dir / "model.safetensors", specs, {{"format", "pt"}});
  for (const TensorSpec& s : specs) {
    std::vector<uint16_t> v(static_cast<size_t>(s.size_bytes() / 2));
    const bool norm = s.shape.size() == 1;
    for (auto& x : v) x = f32_to_bf16(norm ? 1.0f + nd(rng) : nd(rng));
    w.write(s.name, v.data(), s.size_bytes());
  }
  w.finish();
  return dir;
}

}  // namespace ar::test
