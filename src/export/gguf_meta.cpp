// Model hyper-parameter KVs for GGUF export (llama.cpp's key names and types; u32 for counts,
// f32 for rope base and RMS epsilon), and the llama3 rope_freqs values. Tokenizer keys are in
// gguf_meta_vocab.cpp.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "export/gguf_meta.h"
#include "io/file.h"
#include "model/gguf_names.h"

namespace ar {

std::string gguf_arch_name(Arch arch) {
  switch (arch) {
    case Arch::Llama:
    case Arch::Mistral: return "llama";  // llama.cpp converts MistralForCausalLM as llama
    case Arch::Qwen2: return "qwen2";
    case Arch::Qwen3: return "qwen3";
    case Arch::Gemma3: return "gemma3";
    case Arch::Phi3: return "phi3";
    case Arch::Qwen3Moe: return "qwen3moe";
    case Arch::Mixtral: return "llama";  // convert_hf_to_gguf: Mixtral is llama with ffn_*_exps
  }
  AR_CHECK(false, "unknown Arch ", int(arch));
  return {};
}

namespace {

constexpr std::pair<GgufFileType, std::string_view> kFileTypes[] = {
    {GgufFileType::ALL_F32, "F32"},         {GgufFileType::MOSTLY_F16, "F16"},
    {GgufFileType::MOSTLY_BF16, "BF16"},    {GgufFileType::MOSTLY_Q4_0, "Q4_0"},
    {GgufFileType::MOSTLY_Q4_1, "Q4_1"},    {GgufFileType::MOSTLY_Q5_0, "Q5_0"},
    {GgufFileType::MOSTLY_Q5_1, "Q5_1"},    {GgufFileType::MOSTLY_Q8_0, "Q8_0"},
    {GgufFileType::MOSTLY_Q2_K, "Q2_K"},    {GgufFileType::MOSTLY_Q2_K_S, "Q2_K_S"},
    {GgufFileType::MOSTLY_Q3_K_S, "Q3_K_S"}, {GgufFileType::MOSTLY_Q3_K_M, "Q3_K_M"},
    {GgufFileType::MOSTLY_Q3_K_L, "Q3_K_L"}, {GgufFileType::MOSTLY_Q4_K_S, "Q4_K_S"},
    {GgufFileType::MOSTLY_Q4_K_M, "Q4_K_M"}, {GgufFileType::MOSTLY_Q5_K_S, "Q5_K_S"},
    {GgufFileType::MOSTLY_Q5_K_M, "Q5_K_M"}, {GgufFileType::MOSTLY_Q6_K, "Q6_K"},
};

GgufValue u32_value(int64_t v, const std::string& what, const std::string& src) {
  if (v < 0 || v > int64_t(std::numeric_limits<uint32_t>::max()))
    AR_THROW(src, ": ", what, " = ", v, " does not fit a GGUF u32");
  return GgufValue::scalar<uint32_t>(uint32_t(v));
}

// Phi3's original_max_position_embeddings (top level or in rope_scaling / rope_parameters), which
// ModelConfig does not keep; max_position_embeddings when the folder states none, as Phi3Config.
int64_t phi3_original_context(const ModelConfig& c, const std::filesystem::path& config_file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(config_file, ec)) return c.max_position_embeddings;
  const nlohmann::json j = nlohmann::json::parse(read_text_file(config_file), nullptr, false);
  if (!j.is_object()) return c.max_position_embeddings;
  for (const char* holder : {"", "rope_parameters", "rope_scaling"}) {
    const nlohmann::json* o = &j;
    if (*holder) {
      auto it = j.find(holder);
      if (it == j.end() || !it->is_object()) continue;
      o = &*it;
    }
    auto v = o->find("original_max_position_embeddings");
    if (v != o->end() && v->is_number_integer()) return v->get<int64_t>();
  }
  return c.max_position_embeddings;
}


// Gemma3Model's keys: the sliding window and which layers use it (one bool per layer, so any
// layer_types pattern survives; llama.cpp reads the array before the period-6 default), the
// sliding layers' RoPE base, the final soft-cap. Warns when llama.cpp will scale attention
// scores differently from query_pre_attn_scalar.
template <typename Add>
void add_gemma3_kvs(const ModelConfig& c, const std::string& src, Add&& add) {
  if (c.sliding_window > 0) {
    add("gemma3.attention.sliding_window", u32_value(c.sliding_window, "sliding_window", src));
    std::vector<bool> swa;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) swa.push_back(layer_is_sliding(c, l));
    add("gemma3.attention.sliding_window_pattern", GgufValue::array(swa));
  }
  if (c.rope_local_theta > 0)
    add("gemma3.rope.freq_base_swa", GgufValue::scalar<float>(float(c.rope_local_theta)));
  if (c.final_logit_softcapping > 0)
    add("gemma3.final_logit_softcapping", GgufValue::scalar<float>(float(c.final_logit_softcapping)));
  const double llama_scalar =
      gguf_gemma3_query_scalar(c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.head_dim);
  if (c.query_pre_attn_scalar > 0 && c.query_pre_attn_scalar != llama_scalar)
    log_warn(src, ": query_pre_attn_scalar = ", c.query_pre_attn_scalar, " but llama.cpp's gemma3 scales attention "
             "scores by 1/sqrt(", llama_scalar, ") for a ", c.num_hidden_layers, "-layer model (it has no GGUF key "
             "for the scalar): llama.cpp will run this file as a different model");
}

// llama.cpp's vocabulary loader sets token attributes of "</s>", "<unk>", "<s>" and
// "<|endoftext|>" for every model whose general.name contains "phi3" or "phi-3" (any
// architecture) and fails to load the file ("unordered_map::at") when one of them is missing.
void warn_phi3_name(const std::vector<GgufKV>& kv, const std::filesystem::path& model_dir) {
  std::string name;
  const std::vector<std::string>* tokens = nullptr;
  for (const GgufKV& k : kv) {
    if (k.key == "general.name") name = k.value.as_string();
    if (k.key == "tokenizer.ggml.tokens") tokens = &k.value.as_string_array();
  }
  for (char& ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  if (!tokens || (name.find("phi3") == std::string::npos && name.find("phi-3") == std::string::npos)) return;
  std::string missing;
  for (const char* t : {"</s>", "<unk>", "<s>", "<|endoftext|>"})
    if (std::find(tokens->begin(), tokens->end(), t) == tokens->end()) missing += cat(missing.empty() ? "" : ", ", t);
  if (!missing.empty())
    log_warn(model_dir.string(), ": general.name '", name, "' contains \"phi3\"/\"phi-3\" and the vocabulary has no ",
             missing, ": llama.cpp's loader requires those tokens for such names and will refuse the file "
             "(rename the model folder)");
}

// Mixture-of-experts keys (TextModel / Qwen2MoeModel.set_gguf_parameters): expert_count,
// expert_used_count, and for qwen3moe the experts' own FFN width. llama.cpp's qwen3moe graph
// renormalises the top-k weights and builds every layer as MoE; a config that differs is written
// anyway (our reader handles it) with a warning that llama.cpp will not run the same model.
template <typename Add>
void add_moe_kvs(const ModelConfig& c, const std::string& a, const std::string& src, Add&& add) {
  add(a + ".expert_count", u32_value(c.num_experts, "num_experts", src));
  add(a + ".expert_used_count", u32_value(c.num_experts_per_tok, "num_experts_per_tok", src));
  if (c.arch != Arch::Qwen3Moe) return;
  add(a + ".expert_feed_forward_length", u32_value(c.moe_intermediate_size, "moe_intermediate_size", src));
  if (!c.norm_topk_prob)
    log_warn(src, ": norm_topk_prob = false, but llama.cpp's qwen3moe always renormalises the top-",
             c.num_experts_per_tok, " routing weights: llama.cpp will run this file as a different model");
  std::string dense;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    if (!layer_is_moe(c, l)) dense += cat(dense.empty() ? "" : ", ", l);
  if (!dense.empty())
    log_warn(src, ": layer(s) ", dense, " have a dense MLP (mlp_only_layers / decoder_sparse_step); llama.cpp's "
             "qwen3moe expects experts in every layer and will refuse the file (autoround eval reads it)");
}

}  // namespace

std::optional<GgufFileType> parse_gguf_file_type(std::string_view name) {
  std::string up(name);
  for (char& ch : up) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  for (const auto& [t, n] : kFileTypes)
    if (n == up) return t;
  return std::nullopt;
}

std::string_view gguf_file_type_name(GgufFileType t) {
  for (const auto& [ft, n] : kFileTypes)
    if (ft == t) return n;
  AR_CHECK(false, "unknown GgufFileType ", uint32_t(t));
  return {};
}

std::vector<GgufKV> gguf_model_kvs(const ModelConfig& c, const std::filesystem::path& model_dir,
                                   const GgufMetaOptions& o) {
  const std::string src = (model_dir / "config.json").string();
  const std::string a = gguf_arch_name(c.arch);
  std::string name = o.name;
  if (name.empty()) {
    // convert_hf_to_gguf names the model after its folder when nothing else is known.
    std::filesystem::path d = model_dir;
    if (d.filename().empty()) d = d.parent_path();
    name = d.filename().string();
  }
  if (o.alignment == 0 || (o.alignment & (o.alignment - 1)) != 0)
    AR_THROW("GGUF export: alignment ", o.alignment, " is not a power of two");

  std::vector<GgufKV> kv;
  auto add = [&](std::string key, GgufValue v) { kv.push_back({std::move(key), std::move(v)}); };
  auto add_u32 = [&](const std::string& suffix, int64_t v) { add(a + "." + suffix, u32_value(v, suffix, src)); };
  add("general.architecture", GgufValue::string(a));
  add("general.name", GgufValue::string(name));
  add_u32("context_length", c.max_position_embeddings);
  add_u32("embedding_length", c.hidden_size);
  add_u32("block_count", c.num_hidden_layers);
  add_u32("feed_forward_length", c.intermediate_size);
  add_u32("attention.head_count", c.num_attention_heads);
  add_u32("attention.head_count_kv", c.num_key_value_heads);
  add_u32("attention.key_length", c.head_dim);
  add_u32("attention.value_length", c.head_dim);
  add_u32("rope.dimension_count", c.head_dim);  // these architectures rotate the whole head
  add(a + ".rope.freq_base", GgufValue::scalar<float>(float(c.rope_theta)));
  add(a + ".attention.layer_norm_rms_epsilon", GgufValue::scalar<float>(float(c.rms_norm_eps)));
  add_u32("vocab_size", c.vocab_size);
  if (c.rope_scaling.type == RopeScaling::Type::Linear) {
    add(a + ".rope.scaling.type", GgufValue::string("linear"));
    add(a + ".rope.scaling.factor", GgufValue::scalar<float>(float(c.rope_scaling.factor)));
  }
  if (c.num_experts > 0) add_moe_kvs(c, a, src, add);
  if (c.arch == Arch::Gemma3) add_gemma3_kvs(c, src, add);
  if (c.arch == Arch::Phi3) {
    // Phi3MiniModel: the training context (LongRoPE's reference length) and the window, 0 when
    // the config has none. llama.cpp's phi3 graph reads the window but runs full causal
    // attention today (llama_model_phi3::load_arch_hparams), unlike transformers.
    add_u32("rope.scaling.original_context_length", phi3_original_context(c, model_dir / "config.json"));
    add_u32("attention.sliding_window", c.sliding_window);
  }
  const bool quantized = o.file_type != GgufFileType::ALL_F32 && o.file_type != GgufFileType::MOSTLY_F16 &&
                         o.file_type != GgufFileType::MOSTLY_BF16;
  if (quantized) add("general.quantization_version", GgufValue::scalar<uint32_t>(kGgmlQuantizationVersion));
  add("general.file_type", GgufValue::scalar<uint32_t>(uint32_t(o.file_type)));
  add("general.alignment", GgufValue::scalar<uint32_t>(o.alignment));
  return kv;
}

std::vector<float> gguf_rope_freqs(const ModelConfig& c) {
  const RopeScaling& rs = c.rope_scaling;
  if (rs.type != RopeScaling::Type::Llama3) return {};
  // llama.cpp multiplies each rotary wavelength by its factor: 1 for high frequencies, `factor`
  // for low ones, and a smooth blend in between (the HF llama3 rule, expressed as divisors).
  const int64_t dim = c.head_dim;
  const double old_ctx = double(rs.original_max_position_embeddings);
  const double low_wavelen = old_ctx / rs.low_freq_factor, high_wavelen = old_ctx / rs.high_freq_factor;
  std::vector<float> out;
  for (int64_t i = 0; i < dim; i += 2) {
    // f32 like the converter's torch arithmetic, so borderline wavelengths land on the same side.
    const float expo = float(i) / float(dim);
    const float freq = 1.0f / std::pow(float(c.rope_theta), expo);
    const double wavelen = 2.0 * M_PI / double(freq);
    double f;
    if (wavelen < high_wavelen) {
      f = 1.0;
    } else if (wavelen > low_wavelen) {
      f = rs.factor;
    } else {
      const double smooth = (old_ctx / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
      f = 1.0 / ((1.0 - smooth) / rs.factor + smooth);
    }
    out.push_back(float(f));
  }
  return out;
}

std::vector<GgufKV> gguf_metadata(const std::filesystem::path& model_dir, const GgufMetaOptions& o) {
  const ModelConfig c = load_model_config(model_dir);
  std::vector<GgufKV> kv = gguf_model_kvs(c, model_dir, o);
  std::vector<GgufKV> tok = gguf_tokenizer_kvs(model_dir, c.vocab_size, c.arch);
  for (GgufKV& t : tok) kv.push_back(std::move(t));
  warn_phi3_name(kv, model_dir);
  return kv;
}

}  // namespace ar
