// ModelConfig: the hyper-parameters of a decoder-only HF model, read from config.json.
// Field names follow HF (LlamaConfig / Qwen2Config / Qwen3Config / MistralConfig).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace ar {

enum class Arch { Llama, Mistral, Qwen2, Qwen3 };

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
  bool qk_norm = false;         // per-head RMSNorm of q and k before RoPE (Qwen3)
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
  std::string torch_dtype;      // as declared; the weights' own dtypes are authoritative
  std::string quantization_config;  // config.json's "quantization_config" as JSON text; empty if none
};

// Parses and validates; `source` names the file in errors. Throws ar::Error.
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& source);
// Reads <dir>/config.json (or the file itself if `path` is a file).
ModelConfig load_model_config(const std::filesystem::path& path);
// Rotary inverse frequencies (head_dim/2 values) with rope_scaling applied, as HF computes them.
std::vector<float> rope_inv_freq(const ModelConfig& c);

}  // namespace ar
