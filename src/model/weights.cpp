// Loads one decoder block at a time (pread through SafetensorsReader), so a model's resident
// weights never exceed one block plus what the caller keeps.
#include "model/weights.h"

#include <bit>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/block_specs.h"
#include "model/compressed_tensors_linear.h"
#include "model/fp_packed_linear.h"
#include "model/packed_linear.h"

namespace ar {

namespace {

void check_shape(const TensorInfo& t, std::vector<int64_t> expected, const SafetensorsReader& st) {
  if (t.shape != expected) {
    auto fmt = [](const std::vector<int64_t>& s) {
      std::string r = "[";
      for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
      return r + "]";
    };
    AR_THROW(st.file_path(t.file_index).string(), ": tensor '", t.name, "' has shape ", fmt(t.shape),
             ", expected ", fmt(expected), " from config.json");
  }
}

// The folder's config.json declares quant_method "compressed-tensors".
bool compressed_tensors_folder(const SafetensorsReader& st) {
  const std::filesystem::path cfg = st.file_path(0).parent_path() / "config.json";
  if (!std::filesystem::exists(cfg)) return false;
  const ModelConfig c = load_model_config(cfg);
  return !c.quantization_config.empty() && is_ct_quant_config(c.quantization_config);
}

Buffer load_f32(const SafetensorsReader& st, const std::string& name, std::vector<int64_t> shape) {
  const TensorInfo& t = st.require(name);
  check_shape(t, shape, st);
  Buffer b(size_t(t.numel()) * sizeof(float), name);
  st.read_f32(t, b.as<float>());
  check_finite_weights(b.as<float>(), size_t(t.numel()), st.file_path(t.file_index).string(), name);
  return b;
}

// A linear's weight: f32/f16/bf16 as stored, or dequantized from a GPTQ-packed checkpoint
// (auto_round / auto_gptq: qweight / qzeros / scales instead of ".weight").
// compressed-tensors (llm_compressor: weight_packed / FP8 weight + weight_scale) likewise.
Buffer load_linear_weight(const SafetensorsReader& st, const BlockTensorSpec& s) {
  if (has_ct_linear(st, s.module) || has_fp_packed_linear(st, s.module)) {
    // weight_packed / weight_scale(_inv) tensors: compressed-tensors layouts when quant_method says
    // so, else auto_round's floating-point tensors (MXFP4, NVFP4, FP8, ...).
    const int64_t out = s.shape[0], in = s.shape[1];
    Buffer w(size_t(out * in) * sizeof(float), s.name);
    if (compressed_tensors_folder(st)) {
      load_ct_linear_weight(w.as<float>(), st, s.module, in, out);
      check_finite_weights(w.as<float>(), size_t(out * in),
                           st.file_path(st.require(s.module + ".weight_scale").file_index).string(),
                           s.module + " (dequantized from compressed-tensors)");
    } else {
      load_fp_packed_linear_weight(w.as<float>(), st, s.module, in, out);
    }
    return w;
  }
  if (st.find(s.name) || !has_packed_linear(st, s.module)) return load_f32(st, s.name, s.shape);
  const int64_t out = s.shape[0], in = s.shape[1];
  Buffer w(size_t(out * in) * sizeof(float), s.name);
  load_packed_linear_weight(w.as<float>(), st, s.module, in, out);
  check_finite_weights(w.as<float>(), size_t(out * in), st.file_path(st.require(s.module + ".scales").file_index).string(),
                       s.module + " (dequantized from qweight/scales)");
  return w;
}

}  // namespace

void check_finite_weights(const float* w, size_t n, const std::string& file, const std::string& tensor) {
  // An exponent of all ones is NaN or infinity; OR-reducing the test keeps the scan vectorized,
  // and the index is searched for only once something is bad.
  auto nonfinite = [](float v) { return (std::bit_cast<uint32_t>(v) & 0x7f800000u) == 0x7f800000u; };
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad |= uint32_t(nonfinite(w[i]));
  if (!bad) return;
  size_t i = 0;
  while (!nonfinite(w[i])) ++i;
  AR_THROW(file, ": tensor '", tensor, "' holds a non-finite value (", w[i], ") at element ", i,
           "; the checkpoint is corrupted or was saved after a diverged run");
}

std::string block_prefix(int64_t layer) { return cat("model.layers.", layer, "."); }

LinearWeights* block_linears(BlockWeights& b, int i) {
  LinearWeights* dense[kDenseLinears] = {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down};
  AR_CHECK(i >= 0 && i < block_linear_count(b), "linear index ", i, " of ", block_linear_count(b));
  return i < kDenseLinears ? dense[i] : &b.experts[size_t(i - kDenseLinears)];
}

const LinearWeights* block_linears(const BlockWeights& b, int i) {
  return block_linears(const_cast<BlockWeights&>(b), i);  // same lookup; constness restored
}

size_t BlockWeights::size_bytes() const {
  size_t n = input_norm.size_bytes() + post_norm.size_bytes() + q_norm.size_bytes() + k_norm.size_bytes() +
             pre_ffn_norm.size_bytes() + post_ffn_norm.size_bytes();
  for (const LinearWeights* l : {&q, &k, &v, &o, &gate, &up, &down, &router}) n += l->w.size_bytes() + l->b.size_bytes();
  for (const LinearWeights& l : experts) n += l.w.size_bytes() + l.b.size_bytes();
  return n;
}

BlockWeights load_block(const SafetensorsReader& st, const ModelConfig& c, int64_t layer) {
  AR_CHECK(layer >= 0 && layer < c.num_hidden_layers, "layer ", layer);
  BlockWeights b = block_shapes(c, layer);
  for (const BlockTensorSpec& s : block_tensor_specs(c, layer))
    block_tensor_buffer(b, s) = s.quantizable() ? load_linear_weight(st, s) : load_f32(st, s.name, s.shape);
  return b;
}

void release_block_pages(const SafetensorsReader& st, int64_t layer) {
  const std::string p = block_prefix(layer);
  for (const TensorInfo& t : st.tensors())
    if (t.name.compare(0, p.size(), p) == 0) st.release(t);
}

const TensorInfo& embedding_tensor(const SafetensorsReader& st, const ModelConfig& c) {
  const TensorInfo& t = st.require("model.embed_tokens.weight");
  check_shape(t, {c.vocab_size, c.hidden_size}, st);
  return t;
}

const TensorInfo& lm_head_tensor(const SafetensorsReader& st, const ModelConfig& c) {
  if (const TensorInfo* t = st.find("lm_head.weight")) {
    check_shape(*t, {c.vocab_size, c.hidden_size}, st);
    return *t;
  }
  if (!c.tie_word_embeddings)
    AR_THROW("model has no 'lm_head.weight' and config.json does not set tie_word_embeddings");
  return embedding_tensor(st, c);
}

namespace {

class SafetensorsSource final : public WeightSource {
 public:
  SafetensorsSource(const SafetensorsReader& st, const ModelConfig& c)
      : st_(st), c_(c), embd_(embedding_tensor(st, c)), head_(lm_head_tensor(st, c)),
        norm_(st.require("model.norm.weight")) {
    check_shape(norm_, {c.hidden_size}, st);
  }
  BlockWeights load_block(int64_t layer) const override { return ar::load_block(st_, c_, layer); }
  void release_block(int64_t layer) const override { release_block_pages(st_, layer); }
  void embedding_rows(int64_t row0, int64_t n, float* dst) const override { st_.read_rows_f32(embd_, row0, n, dst); }
  void lm_head_rows(int64_t row0, int64_t n, float* dst) const override { st_.read_rows_f32(head_, row0, n, dst); }
  void final_norm(float* dst) const override { st_.read_f32(norm_, dst); }

 private:
  const SafetensorsReader& st_;
  ModelConfig c_;
  const TensorInfo& embd_;
  const TensorInfo& head_;
  const TensorInfo& norm_;
};

}  // namespace

std::unique_ptr<WeightSource> make_safetensors_source(const SafetensorsReader& st, const ModelConfig& c) {
  return std::make_unique<SafetensorsSource>(st, c);
}

}  // namespace ar
