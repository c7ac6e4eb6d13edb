// GGUF metadata -> ModelConfig: the keys are turned into the equivalent config.json object and
// checked by the same parser as a HF folder's, so both paths share one set of validations.
#include "model/gguf_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gguf.h"
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

}  // namespace

ModelConfig gguf_model_config(const GgufReader& r) {
  const std::string file = r.path().string();
  const std::string arch = r.get_string("general.architecture");
  nlohmann::json j;
  if (arch == "llama") j["architectures"] = {"LlamaForCausalLM"};
  else if (arch == "qwen2") j["architectures"] = {"Qwen2ForCausalLM"};
  else if (arch == "qwen3") j["architectures"] = {"Qwen3ForCausalLM"};
  else AR_THROW(file, ": unsupported general.architecture '", arch, "' (supported: llama, qwen2, qwen3)");
  j["model_type"] = arch;
  const std::string p = arch + ".";
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
