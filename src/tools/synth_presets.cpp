// Built-in configs for synthetic models. Sizes follow the published HF config.json of each model
// (Qwen/Qwen3-0.6B, Qwen/Qwen3-4B, Qwen/Qwen2.5-0.5B, meta-llama/Llama-3.2-1B, google/gemma-3-4b-it's
// text_config, microsoft/Phi-3-mini-4k-instruct); "tiny*" are ours.
#include <algorithm>

#include "core/error.h"
#include "tools/synth_model.h"

namespace ar {

using nlohmann::json;

namespace {

json llama_like(const char* arch, const char* model_type, int64_t hidden, int64_t inter, int64_t layers,
                int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t vocab, bool tied, double eps,
                double rope_theta, int64_t max_pos) {
  return json{{"architectures", json::array({arch})},
              {"model_type", model_type},
              {"hidden_act", "silu"},
              {"hidden_size", hidden},
              {"intermediate_size", inter},
              {"num_hidden_layers", layers},
              {"num_attention_heads", heads},
              {"num_key_value_heads", kv_heads},
              {"head_dim", head_dim},
              {"vocab_size", vocab},
              {"tie_word_embeddings", tied},
              {"rms_norm_eps", eps},
              {"rope_theta", rope_theta},
              {"rope_scaling", nullptr},
              {"max_position_embeddings", max_pos},
              {"attention_bias", false},
              {"attention_dropout", 0.0},
              {"initializer_range", 0.02},
              {"use_cache", true}};
}

// Gemma3ForCausalLM (Gemma3TextConfig): GeGLU, four norms per block stored as offsets from one,
// q/k norms, scaled embeddings, sliding-window layers with their own RoPE base.
json gemma3_like(int64_t hidden, int64_t inter, int64_t layers, int64_t heads, int64_t kv_heads, int64_t head_dim,
                 int64_t vocab, int64_t window, int64_t query_pre_attn_scalar, double rope_scaling_factor,
                 int64_t max_pos) {
  json types = json::array();
  for (int64_t i = 0; i < layers; ++i) types.push_back((i + 1) % 6 ? "sliding_attention" : "full_attention");
  json c = llama_like("Gemma3ForCausalLM", "gemma3_text", hidden, inter, layers, heads, kv_heads, head_dim, vocab,
                      true, 1e-6, 1000000.0, max_pos);
  c.erase("hidden_act");
  c["hidden_activation"] = "gelu_pytorch_tanh";
  c["rope_local_base_freq"] = 10000.0;
  c["rope_scaling"] = rope_scaling_factor == 1.0 ? json(nullptr) : json{{"rope_type", "linear"}, {"factor", rope_scaling_factor}};
  c["sliding_window"] = window;
  c["layer_types"] = types;
  c["query_pre_attn_scalar"] = query_pre_attn_scalar;
  c["final_logit_softcapping"] = nullptr;
  c["attn_logit_softcapping"] = nullptr;
  return c;
}

// Phi3ForCausalLM: fused qkv_proj and gate_up_proj, a sliding window on every layer.
json phi3_like(int64_t hidden, int64_t inter, int64_t layers, int64_t heads, int64_t kv_heads, int64_t vocab,
               int64_t window, int64_t max_pos) {
  json c = llama_like("Phi3ForCausalLM", "phi3", hidden, inter, layers, heads, kv_heads, hidden / heads, vocab,
                      false, 1e-5, 10000.0, max_pos);
  c.erase("head_dim");  // Phi3Config has none: hidden / heads
  c.erase("attention_bias");
  c["sliding_window"] = window;
  c["original_max_position_embeddings"] = max_pos;
  c["resid_pdrop"] = 0.0;
  c["embd_pdrop"] = 0.0;
  c["pad_token_id"] = vocab > 32000 ? json(32000) : json(nullptr);  // Phi3Config's default would be outside a small vocab
  return c;
}

// Qwen3MoeForCausalLM: Qwen3 attention, a router over num_experts SwiGLU experts per layer.
json qwen3_moe_like(int64_t hidden, int64_t inter, int64_t moe_inter, int64_t layers, int64_t heads, int64_t kv_heads,
                    int64_t head_dim, int64_t vocab, int64_t experts, int64_t top_k, int64_t max_pos) {
  json c = llama_like("Qwen3MoeForCausalLM", "qwen3_moe", hidden, inter, layers, heads, kv_heads, head_dim, vocab,
                      false, 1e-6, 1000000.0, max_pos);
  c["num_experts"] = experts;
  c["num_experts_per_tok"] = top_k;
  c["moe_intermediate_size"] = moe_inter;
  c["norm_topk_prob"] = true;
  c["decoder_sparse_step"] = 1;
  c["mlp_only_layers"] = json::array();
  c["use_sliding_window"] = false;
  c["router_aux_loss_coef"] = 0.001;
  return c;
}

// MixtralForCausalLM: Mistral attention, block_sparse_moe with top-2 of 8 experts.
json mixtral_like(int64_t hidden, int64_t inter, int64_t layers, int64_t heads, int64_t kv_heads, int64_t vocab,
                  int64_t experts, int64_t top_k, int64_t max_pos) {
  json c = llama_like("MixtralForCausalLM", "mixtral", hidden, inter, layers, heads, kv_heads, hidden / heads, vocab,
                      false, 1e-5, 1000000.0, max_pos);
  c["num_local_experts"] = experts;
  c["num_experts_per_tok"] = top_k;
  c["sliding_window"] = nullptr;
  c["router_jitter_noise"] = 0.0;
  return c;
}

}  // namespace

std::vector<std::string> synth_preset_names() {
  return {"tiny",       "tiny-qwen3",  "tiny-qwen2",   "tiny-gemma3",  "tiny-phi3",     "tiny-qwen3-moe",
          "tiny-mixtral", "qwen3-0.6b", "qwen3-4b",     "qwen2.5-0.5b", "llama-3.2-1b",  "gemma-3-4b",
          "phi-3-mini", "qwen3-30b-a3b", "mixtral-8x7b"};
}

json synth_preset_config(const std::string& name) {
  if (name == "tiny") {  // stories260K-like: ragged intermediate (172), GQA 8/4, head_dim 8
    json c = llama_like("LlamaForCausalLM", "llama", 64, 172, 4, 8, 4, 8, 512, true, 1e-5, 10000.0, 512);
    c["mlp_bias"] = false;
    return c;
  }
  if (name == "tiny-qwen3")  // q/k norm, head_dim != hidden / heads
    return llama_like("Qwen3ForCausalLM", "qwen3", 128, 384, 4, 4, 2, 64, 1024, true, 1e-6, 1000000.0, 1024);
  if (name == "tiny-qwen2")  // q/k/v bias
    return llama_like("Qwen2ForCausalLM", "qwen2", 128, 320, 4, 4, 2, 32, 1024, true, 1e-6, 1000000.0, 1024);
  // Small windows so that 64-token tests see them; 4 layers: 3 sliding, then (with 6) a global one
  // would not come, so tiny-gemma3 marks its last layer global itself.
  if (name == "tiny-gemma3") {
    json c = gemma3_like(128, 384, 4, 4, 2, 32, 1024, 16, 32, 2.0, 1024);
    c["layer_types"] = {"sliding_attention", "sliding_attention", "full_attention", "sliding_attention"};
    return c;
  }
  if (name == "tiny-phi3") return phi3_like(128, 320, 4, 4, 2, 1024, 48, 1024);
  if (name == "tiny-qwen3-moe") {  // layer 1 dense (mlp_only_layers), the others 8 experts, top 2
    json c = qwen3_moe_like(128, 256, 64, 4, 4, 2, 32, 1024, 8, 2, 1024);
    c["mlp_only_layers"] = {1};
    return c;
  }
  if (name == "tiny-mixtral") return mixtral_like(128, 96, 4, 4, 2, 1024, 4, 2, 1024);
  if (name == "qwen3-30b-a3b") return qwen3_moe_like(2048, 6144, 768, 48, 32, 4, 128, 151936, 128, 8, 40960);
  if (name == "mixtral-8x7b") return mixtral_like(4096, 14336, 32, 32, 8, 32000, 8, 2, 32768);
  if (name == "gemma-3-4b") return gemma3_like(2560, 10240, 34, 8, 4, 256, 262208, 1024, 256, 8.0, 131072);
  if (name == "phi-3-mini") return phi3_like(3072, 8192, 32, 32, 32, 32064, 2047, 4096);
  if (name == "qwen3-0.6b")
    return llama_like("Qwen3ForCausalLM", "qwen3", 1024, 3072, 28, 16, 8, 128, 151936, true, 1e-6, 1000000.0,
                      40960);
  if (name == "qwen3-4b")
    return llama_like("Qwen3ForCausalLM", "qwen3", 2560, 9728, 36, 32, 8, 128, 151936, true, 1e-6, 1000000.0,
                      40960);
  if (name == "qwen2.5-0.5b")
    return llama_like("Qwen2ForCausalLM", "qwen2", 896, 4864, 24, 14, 2, 64, 151936, true, 1e-6, 1000000.0, 32768);
  if (name == "llama-3.2-1b") {
    json c = llama_like("LlamaForCausalLM", "llama", 2048, 8192, 16, 32, 8, 64, 128256, true, 1e-5, 500000.0,
                        131072);
    c["rope_scaling"] = {{"factor", 32.0},
                         {"high_freq_factor", 4.0},
                         {"low_freq_factor", 1.0},
                         {"original_max_position_embeddings", 8192},
                         {"rope_type", "llama3"}};
    c["mlp_bias"] = false;
    return c;
  }
  std::string valid;
  for (const auto& n : synth_preset_names()) valid += (valid.empty() ? "" : ", ") + n;
  AR_THROW("unknown synthetic model preset '", name, "'; valid presets: ", valid);
}

void synth_set_num_layers(json& config, int64_t n_layers) {
  if (n_layers <= 0) AR_THROW("number of layers must be positive, got ", n_layers);
  config["num_hidden_layers"] = n_layers;
  if (config.contains("layer_types") && config["layer_types"].is_array() && !config["layer_types"].empty()) {
    json types = config["layer_types"];
    json resized = json::array();
    for (int64_t i = 0; i < n_layers; ++i) resized.push_back(types[std::min<size_t>(size_t(i), types.size() - 1)]);
    config["layer_types"] = resized;
  }
  if (config.contains("max_window_layers") && config["max_window_layers"].is_number_integer())
    config["max_window_layers"] = std::min<int64_t>(config["max_window_layers"].get<int64_t>(), n_layers);
}

}  // namespace ar
