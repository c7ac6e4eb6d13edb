// Reads config.json for the supported decoder families, checking every field we rely on.
// Defaults mirror the HF config classes (e.g. head_dim = hidden/heads when absent).
#include "model/config.h"

#include <cmath>
#include <numbers>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "io/file.h"

namespace ar {

namespace {

using json = nlohmann::json;

int64_t get_int(const json& j, const char* key, const std::string& src, bool required, int64_t dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) AR_THROW(src, ": missing required field '", key, "'");
    return dflt;
  }
  if (!it->is_number_integer()) AR_THROW(src, ": field '", key, "' must be an integer, got ", it->dump());
  return it->get<int64_t>();
}

double get_num(const json& j, const char* key, const std::string& src, double dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  if (!it->is_number()) AR_THROW(src, ": field '", key, "' must be a number, got ", it->dump());
  return it->get<double>();
}

bool get_bool(const json& j, const char* key, const std::string& src, bool dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) AR_THROW(src, ": field '", key, "' must be true or false, got ", it->dump());
  return it->get<bool>();
}

// eos_token_id may be a list in newer configs (Llama 3); the first entry is the primary one.
int64_t get_token_id(const json& j, const char* key, const std::string& src) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return -1;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) return (*it)[0].get<int64_t>();
  AR_THROW(src, ": field '", key, "' must be an integer or a list of integers, got ", it->dump());
}

// rope_scaling (older configs) or one entry of rope_parameters (transformers 5): both name the
// type as rope_type (or type) next to its factors.
RopeScaling parse_rope_scaling(const json& rs, const std::string& src) {
  RopeScaling r;
  if (rs.is_null()) return r;
  if (!rs.is_object()) AR_THROW(src, ": rope_scaling must be an object or null, got ", rs.dump());
  std::string type;
  for (const char* k : {"rope_type", "type"}) {
    auto t = rs.find(k);
    if (t != rs.end() && t->is_string()) {
      type = t->get<std::string>();
      break;
    }
  }
  if (type.empty() || type == "default") return r;
  if (type == "linear") {
    r.type = RopeScaling::Type::Linear;
  } else if (type == "llama3") {
    r.type = RopeScaling::Type::Llama3;
    r.low_freq_factor = get_num(rs, "low_freq_factor", src + " rope_scaling", 1.0);
    r.high_freq_factor = get_num(rs, "high_freq_factor", src + " rope_scaling", 4.0);
    r.original_max_position_embeddings =
        get_int(rs, "original_max_position_embeddings", src + " rope_scaling", true, 0);
    if (r.high_freq_factor <= r.low_freq_factor || r.original_max_position_embeddings <= 0)
      AR_THROW(src, ": rope_scaling llama3 needs high_freq_factor > low_freq_factor and "
                    "original_max_position_embeddings > 0");
  } else {
    AR_THROW(src, ": unsupported rope_scaling type '", type,
             "' (supported: linear, llama3, or none)");
  }
  r.factor = get_num(rs, "factor", src + " rope_scaling", 1.0);
  if (!(r.factor > 0)) AR_THROW(src, ": rope_scaling factor must be > 0, got ", r.factor);
  return r;
}

// RoPE's base and scaling. Older configs give rope_theta and rope_scaling at the top level;
// transformers 5 writes rope_parameters {rope_theta, rope_type, ...}, or for models whose layer
// types rotate differently (Gemma3) one such object per type: {full_attention, sliding_attention}.
void parse_rope(ModelConfig& c, const json& j, const std::string& src, double default_theta,
                double default_local_theta) {
  const json* global = nullptr;
  const json* local = nullptr;
  if (auto rp = j.find("rope_parameters"); rp != j.end() && !rp->is_null()) {
    if (!rp->is_object()) AR_THROW(src, ": rope_parameters must be an object, got ", rp->dump());
    if (rp->contains("full_attention") || rp->contains("sliding_attention")) {
      if (auto f = rp->find("full_attention"); f != rp->end() && f->is_object()) global = &*f;
      if (auto s = rp->find("sliding_attention"); s != rp->end() && s->is_object()) local = &*s;
    } else {
      global = &*rp;
    }
  }
  const std::string rp_src = src + " rope_parameters";
  c.rope_theta = global && global->contains("rope_theta") ? get_num(*global, "rope_theta", rp_src, default_theta)
                                                          : get_num(j, "rope_theta", src, default_theta);
  if (!(c.rope_theta > 1)) AR_THROW(src, ": rope_theta must be > 1, got ", c.rope_theta);
  const json no_scaling;
  auto top_scaling = j.find("rope_scaling");
  const json& scaling = global && global->contains("rope_type") ? *global
                        : top_scaling != j.end()               ? *top_scaling
                                                               : no_scaling;
  c.rope_scaling = parse_rope_scaling(scaling, src);
  for (const json* o : {&j, global, local}) {
    if (!o) continue;
    const double partial = get_num(*o, "partial_rotary_factor", src, 1.0);
    if (partial != 1.0)
      AR_THROW(src, ": partial_rotary_factor ", partial, " is not supported (RoPE over the whole head only)");
  }
  if (default_local_theta > 0) {
    c.rope_local_theta = local && local->contains("rope_theta")
                             ? get_num(*local, "rope_theta", rp_src, default_local_theta)
                             : get_num(j, "rope_local_base_freq", src, default_local_theta);
    if (!(c.rope_local_theta > 1)) AR_THROW(src, ": the sliding layers' rope_theta must be > 1, got ", c.rope_local_theta);
    if (local && parse_rope_scaling(*local, src).type != RopeScaling::Type::None)
      AR_THROW(src, ": RoPE scaling on the sliding-window layers is not supported");
  }
}

// Gemma3's layer_types (["sliding_attention", "full_attention", ...]) or, in older configs,
// sliding_window_pattern: every pattern-th layer is global.
std::vector<uint8_t> parse_layer_types(const json& j, int64_t layers, const std::string& src) {
  std::vector<uint8_t> r(size_t(layers), 0);
  if (auto lt = j.find("layer_types"); lt != j.end() && !lt->is_null()) {
    if (!lt->is_array() || int64_t(lt->size()) != layers)
      AR_THROW(src, ": layer_types must be a list of num_hidden_layers (", layers, ") entries");
    for (size_t i = 0; i < r.size(); ++i) {
      const json& t = (*lt)[i];
      if (t == "sliding_attention") r[i] = 1;
      else if (t != "full_attention")
        AR_THROW(src, ": layer_types[", i, "] = ", t.dump(), " (expected \"sliding_attention\" or \"full_attention\")");
    }
    return r;
  }
  const int64_t pattern = get_int(j, "sliding_window_pattern", src, false, 6);
  if (pattern <= 0) AR_THROW(src, ": sliding_window_pattern must be positive, got ", pattern);
  for (int64_t i = 0; i < layers; ++i) r[size_t(i)] = (i + 1) % pattern != 0;
  return r;
}

Activation parse_activation(const json& j, const std::string& src, Activation dflt) {
  // Gemma names it hidden_activation; everything else hidden_act.
  for (const char* key : {"hidden_activation", "hidden_act"}) {
    auto act = j.find(key);
    if (act == j.end() || act->is_null()) continue;
    if (act->is_string()) {
      const std::string a = *act;
      if (a == "silu" || a == "swish") return Activation::SiLU;
      if (a == "gelu_pytorch_tanh" || a == "gelu_new") return Activation::GeluTanh;
    }
    AR_THROW(src, ": unsupported ", key, " ", act->dump(), " (supported: silu, gelu_pytorch_tanh)");
  }
  return dflt;
}

// Qwen3MoeConfig: num_experts, moe_intermediate_size, norm_topk_prob, decoder_sparse_step,
// mlp_only_layers. MixtralConfig: num_local_experts, every layer sparse, experts of
// intermediate_size, top-k always renormalised.
void parse_moe(ModelConfig& c, const json& j, const std::string& src) {
  const bool mixtral = c.arch == Arch::Mixtral;
  c.num_experts = get_int(j, mixtral ? "num_local_experts" : "num_experts", src, false, mixtral ? 8 : 128);
  c.num_experts_per_tok = get_int(j, "num_experts_per_tok", src, false, mixtral ? 2 : 8);
  c.moe_intermediate_size =
      mixtral ? c.intermediate_size : get_int(j, "moe_intermediate_size", src, false, 768);
  c.norm_topk_prob = mixtral || get_bool(j, "norm_topk_prob", src, false);
  if (c.num_experts <= 0 || c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.num_experts)
    AR_THROW(src, ": num_experts_per_tok (", c.num_experts_per_tok, ") must be in [1, number of experts (",
             c.num_experts, ")]");
  if (c.moe_intermediate_size <= 0) AR_THROW(src, ": moe_intermediate_size must be positive, got ", c.moe_intermediate_size);
  if (get_num(j, "router_jitter_noise", src, 0) != 0) log_warn(src, ": router_jitter_noise is a training option; ignored");
  c.layer_moe.assign(size_t(c.num_hidden_layers), 1);
  if (mixtral) return;
  const int64_t step = get_int(j, "decoder_sparse_step", src, false, 1);
  if (step <= 0) AR_THROW(src, ": decoder_sparse_step must be positive, got ", step);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) c.layer_moe[size_t(l)] = (l + 1) % step == 0;
  if (auto m = j.find("mlp_only_layers"); m != j.end() && !m->is_null()) {
    if (!m->is_array()) AR_THROW(src, ": mlp_only_layers must be a list of layer indices");
    for (const json& v : *m) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= c.num_hidden_layers)
        AR_THROW(src, ": mlp_only_layers holds ", v.dump(), ", not a layer index below ", c.num_hidden_layers);
      c.layer_moe[size_t(v.get<int64_t>())] = 0;
    }
  }
}

}  // namespace

ModelConfig parse_model_config(const json& j, const std::string& src) {
  if (!j.is_object()) AR_THROW(src, ": expected a JSON object");
  ModelConfig c;
  auto archs = j.find("architectures");
  if (archs == j.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string())
    AR_THROW(src, ": missing 'architectures' (expected e.g. [\"LlamaForCausalLM\"])");
  c.architecture = (*archs)[0].get<std::string>();
  if (c.architecture == "LlamaForCausalLM") c.arch = Arch::Llama;
  else if (c.architecture == "MistralForCausalLM") c.arch = Arch::Mistral;
  else if (c.architecture == "Qwen2ForCausalLM") c.arch = Arch::Qwen2;
  else if (c.architecture == "Qwen3ForCausalLM") c.arch = Arch::Qwen3;
  else if (c.architecture == "Gemma3ForCausalLM") c.arch = Arch::Gemma3;
  else if (c.architecture == "Phi3ForCausalLM") c.arch = Arch::Phi3;
  else if (c.architecture == "Qwen3MoeForCausalLM") c.arch = Arch::Qwen3Moe;
  else if (c.architecture == "MixtralForCausalLM") c.arch = Arch::Mixtral;
  else if (c.architecture == "Gemma3ForConditionalGeneration")
    AR_THROW(src, ": Gemma3ForConditionalGeneration (text and vision) is not supported; its text model "
                  "(Gemma3ForCausalLM, config text_config) is");
  else
    AR_THROW(src, ": unsupported architecture ", c.architecture,
             " (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, "
             "Gemma3ForCausalLM, Phi3ForCausalLM, Qwen3MoeForCausalLM, MixtralForCausalLM)");
  const bool gemma = c.arch == Arch::Gemma3;
  if (auto mt = j.find("model_type"); mt != j.end() && mt->is_string()) c.model_type = *mt;

  c.hidden_size = get_int(j, "hidden_size", src, true, 0);
  c.intermediate_size = get_int(j, "intermediate_size", src, true, 0);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", src, true, 0);
  c.num_attention_heads = get_int(j, "num_attention_heads", src, true, 0);
  c.num_key_value_heads = get_int(j, "num_key_value_heads", src, false, c.num_attention_heads);
  c.vocab_size = get_int(j, "vocab_size", src, true, 0);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", src, false, 2048);
  for (auto [name, v] : {std::pair{"hidden_size", c.hidden_size}, {"intermediate_size", c.intermediate_size},
                         {"num_hidden_layers", c.num_hidden_layers}, {"num_attention_heads", c.num_attention_heads},
                         {"num_key_value_heads", c.num_key_value_heads}, {"vocab_size", c.vocab_size}})
    if (v <= 0) AR_THROW(src, ": ", name, " must be positive, got ", v);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    AR_THROW(src, ": num_attention_heads (", c.num_attention_heads,
             ") must be a multiple of num_key_value_heads (", c.num_key_value_heads, ")");
  // Gemma3TextConfig's head_dim defaults to 256 rather than hidden / heads.
  int64_t default_head_dim = gemma ? 256 : c.hidden_size / c.num_attention_heads;
  c.head_dim = get_int(j, "head_dim", src, false, default_head_dim);
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    AR_THROW(src, ": head_dim must be positive and even (RoPE rotates pairs), got ", c.head_dim);
  if (!gemma && !j.contains("head_dim") && c.hidden_size % c.num_attention_heads != 0)
    AR_THROW(src, ": hidden_size (", c.hidden_size, ") is not divisible by num_attention_heads (",
             c.num_attention_heads, ") and no head_dim is given");

  // Every tensor of the model is sized from these; refuse products that overflow int64 (f32 bytes
  // of the largest weights) here, before anything is allocated or offset from them.
  const auto f32_bytes = [&](const char* what, std::initializer_list<int64_t> dims) {
    uint64_t n = sizeof(float);
    for (int64_t d : dims) {
      if (n > uint64_t(INT64_MAX) / uint64_t(d))
        AR_THROW(src, ": ", what, " is too large: its f32 size overflows a 64-bit byte count (hidden_size ",
                 c.hidden_size, ", intermediate_size ", c.intermediate_size, ", num_attention_heads ",
                 c.num_attention_heads, ", head_dim ", c.head_dim, ", vocab_size ", c.vocab_size, ")");
      n *= uint64_t(d);
    }
  };
  f32_bytes("q_proj (num_attention_heads * head_dim x hidden_size)", {c.num_attention_heads, c.head_dim, c.hidden_size});
  f32_bytes("mlp (intermediate_size x hidden_size)", {c.intermediate_size, c.hidden_size});
  f32_bytes("the embedding (vocab_size x hidden_size)", {c.vocab_size, c.hidden_size});
  f32_bytes("a block (hidden_size x intermediate_size x 8)", {c.hidden_size, c.intermediate_size + c.num_attention_heads * c.head_dim, 8});

  const bool five = c.arch == Arch::Phi3 || c.arch == Arch::Mixtral;  // their configs' default eps is 1e-5
  c.rms_norm_eps = get_num(j, "rms_norm_eps", src, five ? 1e-5 : 1e-6);
  if (!(c.rms_norm_eps > 0)) AR_THROW(src, ": rms_norm_eps must be > 0, got ", c.rms_norm_eps);
  parse_rope(c, j, src, gemma ? 1e6 : 1e4, gemma ? 1e4 : 0);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", src, gemma);
  c.attention_bias = c.arch == Arch::Qwen2 ? true : get_bool(j, "attention_bias", src, false);
  c.qk_norm = c.arch == Arch::Qwen3 || c.arch == Arch::Qwen3Moe || gemma;
  c.mlp_bias = get_bool(j, "mlp_bias", src, false);
  c.hidden_act = parse_activation(j, src, gemma ? Activation::GeluTanh : Activation::SiLU);
  if (c.arch == Arch::Phi3) {
    if (c.attention_bias || c.mlp_bias) AR_THROW(src, ": Phi3 has no attention or MLP bias");
    c.fused_qkv = c.fused_gate_up = true;
  }

  // Sliding windows. Mistral, Phi3: every layer when sliding_window is set. Gemma3: the layers
  // layer_types marks. Qwen2/Qwen3 gate theirs behind use_sliding_window and max_window_layers,
  // which their released checkpoints leave off.
  if (c.arch == Arch::Mistral || c.arch == Arch::Phi3 || c.arch == Arch::Mixtral || gemma) {
    c.sliding_window = get_int(j, "sliding_window", src, false, gemma ? 4096 : 0);
    if (c.sliding_window < 0) AR_THROW(src, ": sliding_window must be positive or null, got ", c.sliding_window);
    if (gemma) c.layer_sliding = parse_layer_types(j, c.num_hidden_layers, src);
  } else if (get_bool(j, "use_sliding_window", src, false)) {
    log_warn(src, ": use_sliding_window = true is ignored (full causal attention is used)");
  }
  if (c.arch == Arch::Qwen3Moe || c.arch == Arch::Mixtral) parse_moe(c, j, src);
  if (gemma) {
    if (get_bool(j, "use_bidirectional_attention", src, false))
      AR_THROW(src, ": use_bidirectional_attention = true is not supported (causal decoders only)");
    c.query_pre_attn_scalar = get_num(j, "query_pre_attn_scalar", src, 256);
    if (!(c.query_pre_attn_scalar > 0))
      AR_THROW(src, ": query_pre_attn_scalar must be > 0, got ", c.query_pre_attn_scalar);
    c.norm_weight_offset = true;
    c.sandwich_norms = true;
    c.embed_scale = std::sqrt(double(c.hidden_size));
  }
  for (auto [key, dst] : {std::pair{"attn_logit_softcapping", &c.attn_logit_softcapping},
                          {"final_logit_softcapping", &c.final_logit_softcapping}}) {
    *dst = get_num(j, key, src, 0);
    if (*dst < 0) AR_THROW(src, ": ", key, " must be positive or null, got ", *dst);
  }
  if (gemma && c.attn_logit_softcapping > 0) {
    // Gemma3's attention never applies it (transformers' Gemma3Attention does not pass it on,
    // llama.cpp's gemma3 graph has none): tuning with it would fit a function no runtime runs.
    log_warn(src, ": attn_logit_softcapping = ", c.attn_logit_softcapping,
             " is ignored, as transformers and llama.cpp ignore it for Gemma3");
    c.attn_logit_softcapping = 0;
  }

  c.bos_token_id = get_token_id(j, "bos_token_id", src);
  c.eos_token_id = get_token_id(j, "eos_token_id", src);
  if (auto dt = j.find("torch_dtype"); dt != j.end() && dt->is_string()) c.torch_dtype = *dt;
  if (auto q = j.find("quantization_config"); q != j.end() && !q->is_null()) {
    if (!q->is_object()) AR_THROW(src, ": quantization_config must be an object");
    c.quantization_config = q->dump();
  }
  return c;
}

ModelConfig load_model_config(const std::filesystem::path& path) {
  std::filesystem::path file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) AR_THROW(file.string(), ": not found (is this a HuggingFace model folder?)");
  json j = json::parse(read_text_file(file), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) AR_THROW(file.string(), ": invalid JSON");
  return parse_model_config(j, file.string());
}

std::vector<float> rope_inv_freq(const ModelConfig& c, bool local) {
  const int64_t half = c.head_dim / 2;
  std::vector<float> inv(half);
  const double theta = local && c.rope_local_theta > 0 ? c.rope_local_theta : c.rope_theta;
  for (int64_t i = 0; i < half; ++i) {
    // HF: 1 / base^(2i/dim), evaluated in float32.
    float expo = float(2 * i) / float(c.head_dim);
    inv[i] = 1.0f / std::pow(float(theta), expo);
  }
  if (local && c.rope_local_theta > 0) return inv;  // Gemma3's local RoPE is never scaled
  if (!c.rope_freq_factors.empty()) {
    AR_CHECK(int64_t(c.rope_freq_factors.size()) == half, "rope_freq_factors: ", c.rope_freq_factors.size());
    for (int64_t i = 0; i < half; ++i) inv[size_t(i)] /= c.rope_freq_factors[size_t(i)];
    return inv;
  }
  const RopeScaling& rs = c.rope_scaling;
  if (rs.type == RopeScaling::Type::Linear) {
    for (auto& f : inv) f = float(f / rs.factor);
  } else if (rs.type == RopeScaling::Type::Llama3) {
    const double old_ctx = double(rs.original_max_position_embeddings);
    const double low_wavelen = old_ctx / rs.low_freq_factor;
    const double high_wavelen = old_ctx / rs.high_freq_factor;
    for (auto& f : inv) {
      double wavelen = 2 * std::numbers::pi / f;
      if (wavelen < high_wavelen) continue;  // high frequency: unchanged
      if (wavelen > low_wavelen) {
        f = float(f / rs.factor);
      } else {  // smooth interpolation between the two regimes
        double smooth = (old_ctx / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        f = float((1 - smooth) * f / rs.factor + smooth * f);
      }
    }
  }
  return inv;
}

bool layer_is_sliding(const ModelConfig& c, int64_t layer) {
  if (c.sliding_window <= 0) return false;
  if (c.layer_sliding.empty()) return true;
  AR_CHECK(layer >= 0 && size_t(layer) < c.layer_sliding.size(), "layer ", layer);
  return c.layer_sliding[size_t(layer)] != 0;
}

int64_t layer_window(const ModelConfig& c, int64_t layer) { return layer_is_sliding(c, layer) ? c.sliding_window : 0; }

bool layer_uses_local_rope(const ModelConfig& c, int64_t layer) {
  return c.rope_local_theta > 0 && !c.layer_sliding.empty() && c.layer_sliding[size_t(layer)] != 0;
}

bool layer_is_moe(const ModelConfig& c, int64_t layer) {
  if (c.num_experts <= 0) return false;
  AR_CHECK(layer >= 0 && size_t(layer) < c.layer_moe.size(), "layer ", layer);
  return c.layer_moe[size_t(layer)] != 0;
}

float attention_scale(const ModelConfig& c) {
  // HF evaluates query_pre_attn_scalar**-0.5 in double; head_dim's in float, as before.
  if (c.query_pre_attn_scalar > 0) return float(1.0 / std::sqrt(c.query_pre_attn_scalar));
  return 1.0f / std::sqrt(float(c.head_dim));
}

}  // namespace ar
