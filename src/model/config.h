// ModelConfig: the hyper-parameters of a decoder-only HF model, read from config.json.
// Field names follow HF (LlamaConfig / Qwen2Config / Qwen3Config / MistralConfig /
// Gemma3TextConfig / Phi3Config).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace ar {

enum class Arch { Llama, Mistral, Qwen2, Qwen3, Gemma3, Phi3, Qwen3Moe, Mixtral };

// The MLP's gate activation: SiLU (SwiGLU) or GELU with the tanh approximation (Gemma's GeGLU,
// HF "gelu_pytorch_tanh").
enum class Activation { SiLU, GeluTanh };

struct RopeScaling {
  enum class Type { None, Linear, Llama3 };
  Type type = Type::None;
  double factor = 1.0;
  double low_freq_factor = 1.0;                   // llama3 only
  double high_freq_factor = 4.0;                  // llama3 only
  int64_t original_max_position_embeddings = 0;   // llama3 only
};

struct ModelConfig {
  std::string architecture;  // HF class name, e.g. "Qwen3ForCausalLM"
  Arch arch = Arch::Llama;
  std::string model_type;    // "llama", "qwen3", ...
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  // Per-frequency divisors of the rotary frequencies (head_dim/2), as a GGUF file's rope_freqs
  // tensor states llama3-style scaling; empty otherwise (rope_scaling then applies).
  std::vector<float> rope_freq_factors;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q/k/v/o; Qwen2: always on, q/k/v only (block_specs.h)
  bool mlp_bias = false;        // bias on gate/up/down (LlamaMLP)
  bool qk_norm = false;         // per-head RMSNorm of q and k before RoPE (Qwen3, Gemma3)
  Activation hidden_act = Activation::SiLU;
  // Sliding-window attention: a token sees the `sliding_window` newest positions (itself
  // included) on the layers layer_sliding marks; 0 = plain causal everywhere.
  int64_t sliding_window = 0;
  std::vector<uint8_t> layer_sliding;  // per layer; empty = every layer when sliding_window > 0
  // Gemma3's sliding layers rotate with their own base (rope_local_base_freq) and no scaling;
  // 0 = the same RoPE as every other layer.
  double rope_local_theta = 0;
  // Attention scores are scaled by 1/sqrt(query_pre_attn_scalar) (Gemma3); 0 = 1/sqrt(head_dim).
  double query_pre_attn_scalar = 0;
  double attn_logit_softcapping = 0;   // scores -> cap·tanh(scores/cap); 0 = off
  double final_logit_softcapping = 0;  // logits likewise
  // Gemma: every RMSNorm multiplies by (1 + w); the file stores w.
  bool norm_weight_offset = false;
  // Gemma's four norms per block: post_attention_layernorm normalizes the attention output before
  // the residual add, pre_feedforward_layernorm feeds the MLP, post_feedforward_layernorm
  // normalizes its output. Llama-style blocks have two (input, post_attention = pre-MLP).
  bool sandwich_norms = false;
  double embed_scale = 1.0;  // embeddings are multiplied by this (Gemma: sqrt(hidden_size))
  // Phi-3 stores q/k/v as one qkv_proj (rows q | k | v) and gate/up as one gate_up_proj (rows
  // gate | up); each is one linear to quantize, as AutoRound treats it (block_specs.h).
  bool fused_qkv = false;
  bool fused_gate_up = false;
  // Mixture of experts (Qwen3Moe, Mixtral): on the layers layer_is_moe names, the MLP is a router
  // (num_experts x hidden, softmax in f32, top num_experts_per_tok, renormalised when
  // norm_topk_prob) over num_experts SwiGLU experts of moe_intermediate_size. 0 experts = dense.
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  bool norm_topk_prob = false;
  std::vector<uint8_t> layer_moe;  // per layer (Qwen3Moe: decoder_sparse_step, mlp_only_layers)
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
  std::string torch_dtype;      // as declared; the weights' own dtypes are authoritative
  std::string quantization_config;  // config.json's "quantization_config" as JSON text; empty if none
};

// Parses and validates; `source` names the file in errors. Throws ar::Error.
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& source);
// Reads <dir>/config.json (or the file itself if `path` is a file).
ModelConfig load_model_config(const std::filesystem::path& path);
// Rotary inverse frequencies (head_dim/2 values) with rope_scaling applied, as HF computes them;
// `local`: for the layers with their own base (rope_local_theta), unscaled.
std::vector<float> rope_inv_freq(const ModelConfig& c, bool local = false);

// Whether layer `layer` attends through the sliding window.
bool layer_is_sliding(const ModelConfig& c, int64_t layer);
// The window layer `layer` attends through (0 = plain causal).
int64_t layer_window(const ModelConfig& c, int64_t layer);
// Whether layer `layer` uses the local RoPE tables (Gemma3's sliding layers).
bool layer_uses_local_rope(const ModelConfig& c, int64_t layer);
// The factor attention scores are scaled by.
float attention_scale(const ModelConfig& c);
// Whether layer `layer`'s MLP is a mixture of experts.
bool layer_is_moe(const ModelConfig& c, int64_t layer);

}  // namespace ar
