// Synthetic model generation: tensor list derived from config.json the way HF's Llama/Mistral/
// Qwen2/Qwen3 modeling code builds its modules; weights ~ N(0, initializer_range) from a counter-
// based RNG (splitmix64 per row + ziggurat normals), streamed in row chunks straight into the shards.
#include "tools/synth_model.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>

#include "core/buffer.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"
#include "io/atomic_output.h"
#include "calib/builtin_text.h"
#include "tools/synth_random.h"
#include "tools/synth_tokenizer.h"

namespace ar {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

int64_t get_positive(const json& c, const char* key) {
  if (!c.contains(key) || !c[key].is_number_integer() || c[key].get<int64_t>() <= 0)
    AR_THROW("model config: '", key, "' is missing or not a positive integer");
  return c[key].get<int64_t>();
}

int64_t get_positive_or(const json& c, const char* key, int64_t fallback) {
  if (!c.contains(key) || c[key].is_null()) return fallback;
  return get_positive(c, key);
}

bool get_bool_or(const json& c, const char* key, bool fallback) {
  if (!c.contains(key) || c[key].is_null()) return fallback;
  if (!c[key].is_boolean()) AR_THROW("model config: '", key, "' is not true/false");
  return c[key].get<bool>();
}

std::string architecture(const json& c) {
  if (!c.contains("architectures") || !c["architectures"].is_array() || c["architectures"].empty() ||
      !c["architectures"][0].is_string())
    AR_THROW("model config: 'architectures' is missing or not a list of names");
  std::string a = c["architectures"][0].get<std::string>();
  for (const char* ok : {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"})
    if (a == ok) return a;
  AR_THROW("model config: architecture '", a,
           "' is not supported by the generator (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
           "Qwen3ForCausalLM)");
}

uint64_t hash_name(std::string_view s) {  // FNV-1a, then mixed
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return mix64(h);
}

bool is_norm(const std::string& name) { return name.find("norm.weight") != std::string::npos; }

const char* torch_dtype_name(DType t) {
  switch (t) {
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    case DType::F32: return "float32";
    default: AR_THROW("synthetic models can be F32, F16 or BF16, not ", dtype_name(t));
  }
}

// Streams one tensor to the writer in chunks of rows (~4 MiB of f32 each).
void write_tensor(ShardedSafetensorsWriter& w, const TensorSpec& s, uint64_t seed, float stddev,
                  Buffer& f32_buf, Buffer& out_buf) {
  const int64_t rows = s.shape.size() >= 2 ? s.shape[0] : 1;
  const int64_t cols = s.shape.size() >= 2 ? int64_t(s.size_bytes() / dtype_size(s.dtype)) / std::max<int64_t>(rows, 1)
                                           : int64_t(s.size_bytes() / dtype_size(s.dtype));
  const bool norm = is_norm(s.name);
  // Norm weights: 1 + small noise, so they are not trivially all-ones yet keep activations sane.
  const float mean = norm ? 1.0f : 0.0f;
  const uint64_t key = mix64(seed ^ hash_name(s.name));
  const int64_t chunk_rows = std::max<int64_t>(1, (int64_t(4) << 20) / std::max<int64_t>(cols * 4, 1));
  const size_t esize = dtype_size(s.dtype);
  f32_buf.reserve(size_t(std::min(rows, chunk_rows) * cols) * 4);
  out_buf.reserve(size_t(std::min(rows, chunk_rows) * cols) * esize);
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, rows - r0);
    float* f = f32_buf.as<float>();
    // One stream per row: identical bytes for any thread count or chunk size.
#pragma omp parallel for schedule(static) if (nr * cols >= (int64_t(1) << 16))
    for (int64_t r = 0; r < nr; ++r) fill_normal(f + r * cols, cols, mix64(key + uint64_t(r0 + r)), mean, stddev);
    const size_t n = size_t(nr * cols);
    switch (s.dtype) {
      case DType::F32: w.write(s.name, f, n * 4); continue;
      case DType::BF16: f32_to_bf16(out_buf.as<uint16_t>(), f, n); break;
      case DType::F16: f32_to_f16(out_buf.as<uint16_t>(), f, n); break;
      default: AR_CHECK(false, "dtype ", dtype_name(s.dtype));
    }
    w.write(s.name, out_buf.data(), n * esize);
  }
}

// Removes the temporary folder unless the generation completed.
struct TmpDirGuard {
  fs::path dir;
  bool keep = false;
  ~TmpDirGuard() {
    if (!keep && !dir.empty()) {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  }
};

}  // namespace

std::vector<TensorSpec> synth_tensor_specs(const json& c, DType dtype) {
  const std::string arch = architecture(c);
  const int64_t hidden = get_positive(c, "hidden_size");
  const int64_t inter = get_positive(c, "intermediate_size");
  const int64_t layers = get_positive(c, "num_hidden_layers");
  const int64_t heads = get_positive(c, "num_attention_heads");
  const int64_t kv_heads = get_positive_or(c, "num_key_value_heads", heads);
  const int64_t vocab = get_positive(c, "vocab_size");
  const bool explicit_head_dim = c.contains("head_dim") && !c["head_dim"].is_null();
  if (!explicit_head_dim && hidden % heads != 0)
    AR_THROW("model config: hidden_size ", hidden, " is not divisible by num_attention_heads ", heads);
  const int64_t head_dim = get_positive_or(c, "head_dim", hidden / heads);
  if (heads % kv_heads != 0)
    AR_THROW("model config: num_attention_heads ", heads, " is not a multiple of num_key_value_heads ", kv_heads);
  const bool tied = get_bool_or(c, "tie_word_embeddings", false);
  const bool qwen2 = arch == "Qwen2ForCausalLM";
  const bool qwen3 = arch == "Qwen3ForCausalLM";
  const bool attn_bias = get_bool_or(c, "attention_bias", false);
  const bool mlp_bias = get_bool_or(c, "mlp_bias", false);

  std::vector<TensorSpec> s;
  auto add = [&](std::string name, std::vector<int64_t> shape) { s.push_back({std::move(name), dtype, std::move(shape)}); };
  add("model.embed_tokens.weight", {vocab, hidden});
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const int64_t q_out = heads * head_dim, kv_out = kv_heads * head_dim;
    // Qwen2 always has q/k/v bias and no o bias; Llama/Mistral/Qwen3 put `attention_bias` on all four.
    const bool qkv_bias = qwen2 || attn_bias;
    const bool o_bias = !qwen2 && attn_bias;
    add(p + "self_attn.q_proj.weight", {q_out, hidden});
    if (qkv_bias) add(p + "self_attn.q_proj.bias", {q_out});
    add(p + "self_attn.k_proj.weight", {kv_out, hidden});
    if (qkv_bias) add(p + "self_attn.k_proj.bias", {kv_out});
    add(p + "self_attn.v_proj.weight", {kv_out, hidden});
    if (qkv_bias) add(p + "self_attn.v_proj.bias", {kv_out});
    add(p + "self_attn.o_proj.weight", {hidden, q_out});
    if (o_bias) add(p + "self_attn.o_proj.bias", {hidden});
    if (qwen3) {
      add(p + "self_attn.q_norm.weight", {head_dim});
      add(p + "self_attn.k_norm.weight", {head_dim});
    }
    add(p + "mlp.gate_proj.weight", {inter, hidden});
    if (mlp_bias) add(p + "mlp.gate_proj.bias", {inter});
    add(p + "mlp.up_proj.weight", {inter, hidden});
    if (mlp_bias) add(p + "mlp.up_proj.bias", {inter});
    add(p + "mlp.down_proj.weight", {hidden, inter});
    if (mlp_bias) add(p + "mlp.down_proj.bias", {hidden});
    add(p + "input_layernorm.weight", {hidden});
    add(p + "post_attention_layernorm.weight", {hidden});
  }
  add("model.norm.weight", {hidden});
  if (!tied) add("lm_head.weight", {vocab, hidden});
  return s;
}

void generate_synthetic_model(const SynthOptions& opt) {
  if (opt.output_dir.empty()) AR_THROW("generate: no output folder given");
  const char* torch_dtype = torch_dtype_name(opt.dtype);
  const std::vector<TensorSpec> specs = synth_tensor_specs(opt.config, opt.dtype);
  const int64_t vocab = opt.config["vocab_size"].get<int64_t>();
  if (vocab < 257) AR_THROW("model config: vocab_size ", vocab, " is too small for a byte-level tokenizer (needs >= 257)");
  if (opt.max_shard_bytes == 0) AR_THROW("generate: max shard size must be positive");

  const fs::path out = fs::absolute(opt.output_dir).lexically_normal();
  const fs::path final_dir = out.has_filename() ? out : out.parent_path();
  std::error_code ec;
  if (fs::exists(final_dir, ec)) {
    if (!opt.overwrite) AR_THROW(final_dir.string(), ": already exists (pass --overwrite to replace it)");
    if (!fs::is_directory(final_dir, ec)) AR_THROW(final_dir.string(), ": exists and is not a folder; not replacing it");
    // Only ever delete what looks like a model folder (or nothing at all).
    if (!fs::exists(final_dir / "config.json", ec) && !fs::is_empty(final_dir, ec))
      AR_THROW(final_dir.string(), ": exists and has no config.json; refusing to replace a folder that is not a model");
  }
  fs::create_directories(final_dir.parent_path(), ec);
  TmpDirGuard tmp{final_dir.parent_path() / ("." + final_dir.filename().string() + ".tmp-" + std::to_string(::getpid()))};
  fs::remove_all(tmp.dir, ec);
  if (!fs::create_directory(tmp.dir, ec)) AR_THROW(tmp.dir.string(), ": cannot create folder: ", ec.message());

  // Tokenizer first (cheap), so config.json can point at its special token.
  const int max_merges = int(std::min<int64_t>(opt.max_merges, vocab - 257));
  int64_t max_pos = 2048;
  if (opt.config.contains("max_position_embeddings") && opt.config["max_position_embeddings"].is_number_integer())
    max_pos = opt.config["max_position_embeddings"].get<int64_t>();
  SynthTokenizer tok = build_synth_tokenizer(builtin_calibration_text(), max_merges, max_pos);

  json config = opt.config;
  config["torch_dtype"] = torch_dtype;
  config["bos_token_id"] = tok.eos_id;  // the tokenizer has one special token, as GPT-2 does
  config["eos_token_id"] = tok.eos_id;
  json gen = {{"_from_model_config", true}, {"bos_token_id", tok.eos_id}, {"eos_token_id", tok.eos_id}};
  write_file_atomic(tmp.dir / "config.json", config.dump(2) + "\n");
  write_file_atomic(tmp.dir / "generation_config.json", gen.dump(2) + "\n");
  write_file_atomic(tmp.dir / "tokenizer.json", tok.tokenizer_json.dump(2) + "\n");
  write_file_atomic(tmp.dir / "tokenizer_config.json", tok.tokenizer_config.dump(2) + "\n");
  write_file_atomic(tmp.dir / "special_tokens_map.json", tok.special_tokens_map.dump(2) + "\n");

  float stddev = 0.02f;
  if (opt.config.contains("initializer_range") && opt.config["initializer_range"].is_number())
    stddev = opt.config["initializer_range"].get<float>();
  uint64_t total = 0;
  for (const auto& s : specs) total += s.size_bytes();
  log_info("generate: ", specs.size(), " tensors, ", format_bytes(total), " in ",
           plan_shards(specs, opt.max_shard_bytes).size(), " shard(s) -> ", final_dir.string());
  {
    ShardedSafetensorsWriter w(tmp.dir, specs, opt.max_shard_bytes, {{"format", "pt"}});
    Buffer f32_buf(0, "synth f32 rows"), out_buf(0, "synth converted rows");
    for (const auto& s : specs) write_tensor(w, s, opt.seed, stddev, f32_buf, out_buf);
    w.finish();
  }

  if (fs::exists(final_dir, ec)) fs::remove_all(final_dir);
  fs::rename(tmp.dir, final_dir, ec);
  if (ec) AR_THROW(final_dir.string(), ": cannot move the finished model into place: ", ec.message());
  tmp.keep = true;
}

}  // namespace ar
