// GGUF-backed weight source: positioned reads of one tensor (or a range of rows) at a time,
// dequantized with the block formats' reference dequantizers (bit-identical with ggml's).
#include "model/gguf_weights.h"

#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"
#include "model/block_specs.h"
#include "model/gguf_names.h"
#include "quant/gguf_blocks.h"

namespace ar {

namespace {

// Below this many weights a read is dequantized on the calling thread.
constexpr int64_t kParallelDequantElems = 1 << 16;

std::string dims_str(const std::vector<int64_t>& d) {
  std::string r = "[";
  for (size_t i = 0; i < d.size(); ++i) r += (i ? ", " : "") + std::to_string(d[i]);
  return r + "]";
}

class GgufSource final : public WeightSource {
 public:
  GgufSource(std::unique_ptr<GgufReader> r, const ModelConfig& c) : r_(std::move(r)), c_(c) {
    const int64_t C = c.hidden_size, V = c.vocab_size;
    embd_ = &require("token_embd.weight", {C, V});
    head_ = r_->find_tensor("output.weight") ? &require("output.weight", {C, V}) : embd_;
    norm_ = &require("output_norm.weight", {C});
  }

  BlockWeights load_block(int64_t layer) const override {
    const ModelConfig& c = c_;
    AR_CHECK(layer >= 0 && layer < c.num_hidden_layers, "layer ", layer);
    const int64_t D = c.head_dim, H = c.num_attention_heads, Hkv = c.num_key_value_heads;
    const int64_t C = c.hidden_size;
    BlockWeights b = block_shapes(c, layer);
    for (const BlockTensorSpec& s : block_tensor_specs(c, layer)) {
      Buffer& dst = block_tensor_buffer(b, s);
      if (s.expert >= 0) {
        dst = load_expert(s);
        continue;
      }
      dst = load(s.gguf_name, std::vector<int64_t>(s.shape.rbegin(), s.shape.rend()));
      if (!s.is_linear()) undo_norm_offset(dst.as<float>(), s.numel());
    }
    if (gguf_permutes_qk(c.arch)) {  // back to HF's rotate-half order
      gguf_permute_qk_rows(b.q.w.as<float>(), H, D, C, false);
      gguf_permute_qk_rows(b.k.w.as<float>(), Hkv, D, C, false);
      if (b.q.has_bias()) gguf_permute_qk_rows(b.q.b.as<float>(), H, D, 1, false);
      if (b.k.has_bias()) gguf_permute_qk_rows(b.k.b.as<float>(), Hkv, D, 1, false);
    }
    return b;
  }

  void release_block(int64_t layer) const override {
    const std::string p = cat("blk.", layer, ".");
    for (const GgufTensorInfo& t : r_->tensors())
      if (t.name.compare(0, p.size(), p) == 0) r_->release(t);
  }

  void embedding_rows(int64_t row0, int64_t n, float* dst) const override { rows(*embd_, row0, n, dst); }
  void lm_head_rows(int64_t row0, int64_t n, float* dst) const override { rows(*head_, row0, n, dst); }
  void final_norm(float* dst) const override {
    dequantize(*norm_, dst);
    undo_norm_offset(dst, c_.hidden_size);
  }

 private:
  // Gemma: the file holds the multiplier 1 + w (llama.cpp's converter adds the 1); the model
  // keeps HF's w. Subtracting in f32 gives back exactly the w whose 1 + w the file states.
  void undo_norm_offset(float* w, int64_t n) const {
    if (!c_.norm_weight_offset) return;
    for (int64_t i = 0; i < n; ++i) w[i] -= 1.0f;
  }

  // The tensor, checked to have GGUF dims `dims` (the HF shape reversed: fastest first).
  const GgufTensorInfo& require(const std::string& name, const std::vector<int64_t>& dims) const {
    const GgufTensorInfo& t = r_->require_tensor(name);
    if (t.dims != dims)
      AR_THROW(r_->path().string(), ": tensor '", name, "' has shape ", dims_str(t.dims), ", expected ",
               dims_str(dims), " from the model's metadata");
    return t;
  }

  void dequantize(const GgufTensorInfo& t, float* dst) const {
    std::vector<uint8_t> raw(t.size_bytes);
    r_->read(t, raw.data());
    dequantize_rows(t, raw.data(), t.n_rows(), dst);
  }

  // Embedding lookups come one row at a time: a parallel region per row costs more than the
  // row (and spins badly on shared cores), so small reads stay on this thread.
  static void dequantize_rows(const GgufTensorInfo& t, const uint8_t* raw, int64_t n, float* dst) {
    if (n * t.row_elems() >= kParallelDequantElems) return gguf_dequantize_tensor(t.type, raw, n, t.row_elems(), dst);
    for (int64_t i = 0; i < n; ++i)
      gguf_dequantize_row(t.type, raw + size_t(i) * t.row_bytes(), t.row_elems(), dst + i * t.row_elems());
  }

  void rows(const GgufTensorInfo& t, int64_t row0, int64_t n, float* dst) const {
    AR_CHECK(row0 >= 0 && n >= 0 && row0 + n <= t.n_rows(), "rows ", row0, "+", n, " of ", t.name);
    std::vector<uint8_t> raw(size_t(n) * t.row_bytes());
    r_->read_rows(t, row0, n, raw.data());
    dequantize_rows(t, raw.data(), n, dst);
  }

  Buffer load(const std::string& name, const std::vector<int64_t>& dims) const {
    const GgufTensorInfo& t = require(name, dims);
    Buffer b(size_t(t.numel()) * sizeof(float), name);
    dequantize(t, b.as<float>());
    check_finite_weights(b.as<float>(), size_t(t.numel()), r_->path().string(), name);
    return b;
  }

  // One expert's (out, in) matrix: rows [e * out, (e + 1) * out) of the stacked tensor, whose
  // GGUF dims are (in, out, n_expert) (llama.cpp's ffn_*_exps).
  Buffer load_expert(const BlockTensorSpec& s) const {
    const int64_t out = s.shape[0], in = s.shape[1];
    const GgufTensorInfo& t = require(s.gguf_name, {in, out, c_.num_experts});
    Buffer b(size_t(out * in) * sizeof(float), s.name);
    rows(t, s.expert * out, out, b.as<float>());
    check_finite_weights(b.as<float>(), size_t(out * in), r_->path().string(), s.name);
    return b;
  }

  std::unique_ptr<GgufReader> r_;
  ModelConfig c_;
  const GgufTensorInfo* embd_ = nullptr;
  const GgufTensorInfo* head_ = nullptr;
  const GgufTensorInfo* norm_ = nullptr;
};

}  // namespace

std::optional<std::filesystem::path> find_gguf_model(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    if (path.extension() == ".gguf") return path;
    return std::nullopt;
  }
  if (!fs::is_directory(path, ec)) return std::nullopt;
  std::vector<fs::path> ggufs;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    if (!e.is_regular_file(ec)) continue;
    const std::string ext = e.path().extension().string();
    if (ext == ".safetensors") return std::nullopt;  // a HF folder; its weights win
    if (ext == ".gguf") ggufs.push_back(e.path());
  }
  if (ggufs.empty()) return std::nullopt;
  if (ggufs.size() > 1) {
    std::sort(ggufs.begin(), ggufs.end());
    std::string names;
    for (const auto& g : ggufs) names += " " + g.filename().string();
    AR_THROW(path.string(), ": holds ", ggufs.size(), " GGUF files (", names.substr(1),
             "); pass the one to use as --model FILE.gguf");
  }
  return ggufs[0];
}

std::unique_ptr<WeightSource> make_gguf_source(std::unique_ptr<GgufReader> r, const ModelConfig& c) {
  return std::make_unique<GgufSource>(std::move(r), c);
}

}  // namespace ar
