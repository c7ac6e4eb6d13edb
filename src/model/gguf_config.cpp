// GGUF metadata -> ModelConfig: the keys are turned into the equivalent config.json object and
// checked by the same parser as a HF folder's, so both paths share one set of validations.
// Keys and defaults are llama.cpp's (llama-model.cpp and src/models/<arch>.cpp).
#include "model/gguf_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gguf.h"
#include "model/gguf_names.h"
#include <optional>

namespace ar {

namespace {

// An integer key stored as any GGUF integer type (writers differ: u32, i32, u64).
std::optional<int64_t> find_int(const GgufReader& r, const std::string& key) {
  const GgufValue* v = r.find_kv(key);
  if (!v) return std::nullopt;
  switch (v->type) {
    case GgufType::U8: return int64_t(v->as<uint8_t>());
    case GgufType::I8: return int64_t(v->as<int8_t>());
    case GgufType::U16: return int64_t(v->as<uint16_t>());
    case GgufType::I16: return int64_t(v->as<int16_t>());
    case GgufType::U32: return int64_t(v->as<uint32_t>());
    case GgufType::I32: return int64_t(v->as<int32_t>());
    case GgufType::U64: return int64_t(v->as<uint64_t>());
    case GgufType::I64: return v->as<int64_t>();
    default: break;
  }
  AR_THROW(r.path().string(), ": metadata key '", key, "' is ", v->type_str(), ", expected an integer");
}

int64_t require_int(const GgufReader& r, const std::string& key) {
  if (auto v = find_int(r, key)) return *v;
  AR_THROW(r.path().string(), ": metadata key '", key, "' is missing");
}

std::optional<double> find_float(const GgufReader& r, const std::string& key) {
  const GgufValue* v = r.find_kv(key);
  if (!v) return std::nullopt;
  if (v->type == GgufType::F32) return double(v->as<float>());
  if (v->type == GgufType::F64) return v->as<double>();
  AR_THROW(r.path().string(), ": metadata key '", key, "' is ", v->type_str(), ", expected a float");
}

// gemma3's keys as Gemma3TextConfig fields, with llama.cpp's defaults and meanings
// (llama_model_gemma3::load_arch_hparams): no sliding_window key means no window at all; the
// sliding layers are the per-layer bool array attention.sliding_window_pattern, else every layer
// but each pattern-th (u32 key, default 6); their RoPE base is rope.freq_base_swa (default
// 10000); the score scale is the one llama.cpp derives from the model size (no key states it).
void gemma3_keys(const GgufReader& r, nlohmann::json& j) {
  const std::string file = r.path().string();
  const int64_t layers = j["num_hidden_layers"].get<int64_t>();
  const int64_t window = find_int(r, "gemma3.attention.sliding_window").value_or(0);
  j["sliding_window"] = window;
  nlohmann::json types = nlohmann::json::array();
  const std::string pattern_key = "gemma3.attention.sliding_window_pattern";
  const GgufValue* pv = r.find_kv(pattern_key);
  if (pv && pv->is_array()) {
    if (pv->elem_type != GgufType::Bool && pv->elem_type != GgufType::U32 && pv->elem_type != GgufType::I32)
      AR_THROW(file, ": metadata key '", pattern_key, "' is ", pv->type_str(), ", expected an array of bool");
    if (int64_t(pv->size()) != layers)
      AR_THROW(file, ": metadata key '", pattern_key, "' has ", pv->size(), " entries for ", layers, " layers");
    const size_t width = pv->elem_type == GgufType::Bool ? 1 : 4;
    for (int64_t l = 0; l < layers; ++l) {
      bool sliding = false;
      for (size_t b = 0; b < width; ++b) sliding |= pv->bytes[size_t(l) * width + b] != 0;
      types.push_back(sliding ? "sliding_attention" : "full_attention");
    }
  } else {
    const int64_t n = find_int(r, pattern_key).value_or(6);
    if (n < 0) AR_THROW(file, ": metadata key '", pattern_key, "' = ", n, " must not be negative");
    for (int64_t l = 0; l < layers; ++l)
      types.push_back(n == 0 || l % n < n - 1 ? "sliding_attention" : "full_attention");
  }
  j["layer_types"] = types;
  j["rope_local_base_freq"] = find_float(r, "gemma3.rope.freq_base_swa").value_or(10000.0);
  if (!j.contains("rope_theta")) j["rope_theta"] = 10000.0;  // llama.cpp's default, not Gemma3Config's
  if (auto v = find_float(r, "gemma3.final_logit_softcapping")) j["final_logit_softcapping"] = *v;
  const int64_t head_dim = j.contains("head_dim") ? j["head_dim"].get<int64_t>()
                                                  : j["hidden_size"].get<int64_t>() / j["num_attention_heads"].get<int64_t>();
  j["head_dim"] = head_dim;
  j["query_pre_attn_scalar"] = gguf_gemma3_query_scalar(layers, j["hidden_size"].get<int64_t>(),
                                                        j["num_attention_heads"].get<int64_t>(), head_dim);
  j["hidden_activation"] = "gelu_pytorch_tanh";
}

// Mixture-of-experts keys as Qwen3MoeConfig / MixtralConfig fields: expert_count,
// expert_used_count, for qwen3moe expert_feed_forward_length (llama.cpp's default without it:
// feed_forward_length / expert_used_count). llama.cpp always renormalises the top-k weights of
// both. A layer without a router (blk.N.ffn_gate_inp) has a dense MLP: qwen3moe's
// mlp_only_layers, which our exporter writes and llama.cpp cannot run; Mixtral has none.
void moe_keys(const GgufReader& r, const std::string& arch, nlohmann::json& j) {
  const std::string file = r.path().string(), p = arch + ".";
  const int64_t experts = require_int(r, p + "expert_count"), used = require_int(r, p + "expert_used_count");
  const bool mixtral = arch == "llama";
  j[mixtral ? "num_local_experts" : "num_experts"] = experts;
  j["num_experts_per_tok"] = used;
  if (mixtral) return;
  j["norm_topk_prob"] = true;
  const int64_t ff = j["intermediate_size"].get<int64_t>();
  j["moe_intermediate_size"] = find_int(r, p + "expert_feed_forward_length").value_or(used > 0 ? ff / used : ff);
  j["decoder_sparse_step"] = 1;
  nlohmann::json dense = nlohmann::json::array();
  const int64_t layers = j["num_hidden_layers"].get<int64_t>();
  for (int64_t l = 0; l < layers; ++l)
    if (!r.find_tensor(cat("blk.", l, ".ffn_gate_inp.weight"))) dense.push_back(l);
  j["mlp_only_layers"] = dense;
}

}  // namespace

ModelConfig gguf_model_config(const GgufReader& r) {
  const std::string file = r.path().string();
  const std::string arch = r.get_string("general.architecture");
  nlohmann::json j;
  if (arch == "llama") j["architectures"] = {"LlamaForCausalLM"};
  else if (arch == "qwen2") j["architectures"] = {"Qwen2ForCausalLM"};
  else if (arch == "qwen3") j["architectures"] = {"Qwen3ForCausalLM"};
  else if (arch == "gemma3") j["architectures"] = {"Gemma3ForCausalLM"};
  else if (arch == "phi3") j["architectures"] = {"Phi3ForCausalLM"};
  else if (arch == "qwen3moe") j["architectures"] = {"Qwen3MoeForCausalLM"};
  else AR_THROW(file, ": unsupported general.architecture '", arch, "' (supported: llama, qwen2, qwen3, gemma3, phi3, qwen3moe)");
  j["model_type"] = arch == "gemma3" ? "gemma3_text" : arch == "qwen3moe" ? "qwen3_moe" : arch;
  const std::string p = arch + ".";
  // llama with experts is how llama.cpp's converter stores Mixtral.
  const bool moe = arch == "qwen3moe" || find_int(r, p + "expert_count").value_or(0) > 0;
  if (arch == "llama" && moe) {
    j["architectures"] = {"MixtralForCausalLM"};
    j["model_type"] = "mixtral";
  }
  j["hidden_size"] = require_int(r, p + "embedding_length");
  j["intermediate_size"] = require_int(r, p + "feed_forward_length");
  j["num_hidden_layers"] = require_int(r, p + "block_count");
  j["num_attention_heads"] = require_int(r, p + "attention.head_count");
  if (auto v = find_int(r, p + "attention.head_count_kv")) j["num_key_value_heads"] = *v;
  if (auto v = find_int(r, p + "attention.key_length")) j["head_dim"] = *v;
  if (auto v = find_int(r, p + "context_length")) j["max_position_embeddings"] = *v;
  if (auto v = find_float(r, p + "attention.layer_norm_rms_epsilon")) j["rms_norm_eps"] = *v;
  if (auto v = find_float(r, p + "rope.freq_base")) j["rope_theta"] = *v;
  if (const GgufValue* t = r.find_kv(p + "rope.scaling.type")) {
    const std::string type = t->type == GgufType::String ? t->as_string() : "";
    if (type == "linear") {
      const double f = find_float(r, p + "rope.scaling.factor").value_or(1.0);
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", f}};
    } else if (type != "none" && !type.empty()) {
      AR_THROW(file, ": rope.scaling.type '", type, "' is not supported (linear, or llama3 via rope_freqs)");
    }
  }
  const GgufTensorInfo& embd = r.require_tensor("token_embd.weight");
  if (embd.dims.size() != 2) AR_THROW(file, ": token_embd.weight is not 2-D");
  j["vocab_size"] = embd.dims[1];
  j["tie_word_embeddings"] = r.find_tensor("output.weight") == nullptr;
  j["attention_bias"] = r.find_tensor("blk.0.attn_q.bias") != nullptr;
  j["mlp_bias"] = r.find_tensor("blk.0.ffn_up.bias") != nullptr;
  if (moe && j["mlp_bias"].get<bool>()) AR_THROW(file, ": MLP biases in a mixture-of-experts model are not supported");
  if (moe) moe_keys(r, arch, j);
  if (arch == "gemma3") gemma3_keys(r, j);
  if (arch == "phi3") {
    // llama.cpp runs phi3 without its window today; transformers (and so this tool) applies it.
    j["sliding_window"] = find_int(r, p + "attention.sliding_window").value_or(0);
    if (auto v = find_int(r, p + "rope.scaling.original_context_length")) j["original_max_position_embeddings"] = *v;
  }
  if (auto v = find_int(r, "tokenizer.ggml.bos_token_id")) j["bos_token_id"] = *v;
  if (auto v = find_int(r, "tokenizer.ggml.eos_token_id")) j["eos_token_id"] = *v;
  ModelConfig c = parse_model_config(j, file);
  if (const GgufTensorInfo* f = r.find_tensor("rope_freqs.weight")) {
    if (f->type != GgmlType::F32 || f->numel() != c.head_dim / 2)
      AR_THROW(file, ": rope_freqs.weight must be F32 with head_dim/2 = ", c.head_dim / 2, " values");
    c.rope_freq_factors.resize(size_t(c.head_dim / 2));
    r.read(*f, c.rope_freq_factors.data());
  }
  return c;
}

}  // namespace ar
