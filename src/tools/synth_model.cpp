// Synthetic model generation: the tensor list is the loader's (model/block_specs.h, from the
// config.json as the loader parses it); weights ~ N(0, initializer_range) from a counter-
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
#include "model/block_specs.h"
#include "model/config.h"
#include "calib/builtin_text.h"
#include "tools/synth_random.h"
#include "tools/synth_tokenizer.h"

namespace ar {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

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
void write_tensor(ShardedSafetensorsWriter& w, const TensorSpec& s, uint64_t seed, float stddev, float norm_mean,
                  Buffer& f32_buf, Buffer& out_buf) {
  const int64_t rows = s.shape.size() >= 2 ? s.shape[0] : 1;
  const int64_t cols = s.shape.size() >= 2 ? int64_t(s.size_bytes() / dtype_size(s.dtype)) / std::max<int64_t>(rows, 1)
                                           : int64_t(s.size_bytes() / dtype_size(s.dtype));
  const bool norm = is_norm(s.name);
  // Norm weights: 1 + small noise (as multipliers; Gemma stores them as offsets from one, so its
  // mean is 0), so they are not trivially all-ones yet keep activations sane.
  const float mean = norm ? norm_mean : 0.0f;
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
  // The loader's own reading of config.json: what it would refuse is not generated.
  const ModelConfig mc = parse_model_config(c, "model config");
  std::vector<TensorSpec> s;
  auto add = [&](std::string name, std::vector<int64_t> shape) { s.push_back({std::move(name), dtype, std::move(shape)}); };
  add("model.embed_tokens.weight", {mc.vocab_size, mc.hidden_size});
  for (int64_t l = 0; l < mc.num_hidden_layers; ++l)
    for (BlockTensorSpec& t : block_tensor_specs(mc, l)) add(std::move(t.name), std::move(t.shape));
  add("model.norm.weight", {mc.hidden_size});
  if (!mc.tie_word_embeddings) add("lm_head.weight", {mc.vocab_size, mc.hidden_size});
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
    const float norm_mean = parse_model_config(opt.config, "model config").norm_weight_offset ? 0.0f : 1.0f;
    for (const auto& s : specs) write_tensor(w, s, opt.seed, stddev, norm_mean, f32_buf, out_buf);
    w.finish();
  }

  if (fs::exists(final_dir, ec)) fs::remove_all(final_dir);
  fs::rename(tmp.dir, final_dir, ec);
  if (ec) AR_THROW(final_dir.string(), ": cannot move the finished model into place: ", ec.message());
  tmp.keep = true;
}

}  // namespace ar
