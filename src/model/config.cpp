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

RopeScaling parse_rope_scaling(const json& j, const std::string& src) {
  RopeScaling r;
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return r;
  if (!it->is_object()) AR_THROW(src, ": rope_scaling must be an object or null, got ", it->dump());
  const json& rs = *it;
  std::string type;
  for (const char* k : {"rope_type", "type"}) {
    auto t = rs.find(k);
    if (t != rs.end() && t->is_string()) {
      type = t->get<std::string>();
      break;
    }
  }
  if (type == "default") return r;
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
  else
    AR_THROW(src, ": unsupported architecture ", c.architecture,
             " (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)");
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
  int64_t default_head_dim = c.hidden_size / c.num_attention_heads;
  c.head_dim = get_int(j, "head_dim", src, false, default_head_dim);
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    AR_THROW(src, ": head_dim must be positive and even (RoPE rotates pairs), got ", c.head_dim);
  if (!j.contains("head_dim") && c.hidden_size % c.num_attention_heads != 0)
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

  c.rms_norm_eps = get_num(j, "rms_norm_eps", src, 1e-6);
  if (!(c.rms_norm_eps > 0)) AR_THROW(src, ": rms_norm_eps must be > 0, got ", c.rms_norm_eps);
  c.rope_theta = get_num(j, "rope_theta", src, 10000.0);
  if (!(c.rope_theta > 1)) AR_THROW(src, ": rope_theta must be > 1, got ", c.rope_theta);
  c.rope_scaling = parse_rope_scaling(j, src);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", src, false);
  c.attention_bias = c.arch == Arch::Qwen2 ? true : get_bool(j, "attention_bias", src, false);
  c.qk_norm = c.arch == Arch::Qwen3;
  c.mlp_bias = get_bool(j, "mlp_bias", src, false);

  if (auto act = j.find("hidden_act"); act != j.end() && !act->is_null()) {
    if (!act->is_string() || (*act != "silu" && *act != "swish"))
      AR_THROW(src, ": unsupported hidden_act ", act->dump(), " (only silu)");
  }
  // Sliding-window attention only matters past the window; we evaluate shorter contexts.
  if (get_bool(j, "use_sliding_window", src, false))
    log_warn(src, ": use_sliding_window = true is ignored (full causal attention is used)");

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

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int64_t half = c.head_dim / 2;
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; ++i) {
    // HF: 1 / base^(2i/dim), evaluated in float32.
    float expo = float(2 * i) / float(c.head_dim);
    inv[i] = 1.0f / std::pow(float(c.rope_theta), expo);
  }
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

}  // namespace ar
