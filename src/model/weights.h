// Names, shapes and loading of a decoder block's weights (HF tensor names) and of the
// embedding / final norm / lm_head, checked against ModelConfig at the edge.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/buffer.h"
#include "model/config.h"

namespace ar {

class SafetensorsReader;
struct TensorInfo;

// One nn.Linear: weight (out, in) row-major f32, optional bias (out).
struct LinearWeights {
  std::string name;  // HF prefix, e.g. "model.layers.3.self_attn.q_proj"
  int64_t in = 0, out = 0;
  Buffer w;
  Buffer b;  // empty when the layer has no bias
  bool has_bias() const { return b.size_bytes() != 0; }
  // False for the empty slots a fused block leaves (block_specs.h).
  bool present() const { return out > 0; }
};

// Everything one decoder layer owns, converted to f32.
struct BlockWeights {
  int64_t layer = -1;
  Buffer input_norm;  // (C)
  Buffer post_norm;   // (C)
  Buffer q_norm;      // (D), Qwen3 only
  Buffer k_norm;      // (D), Qwen3 only
  Buffer pre_ffn_norm;   // (C), Gemma3 only (sandwich_norms)
  Buffer post_ffn_norm;  // (C), Gemma3 only
  // Phi3 (fused_qkv / fused_gate_up): q holds qkv_proj, gate holds gate_up_proj, and k, v, up
  // are empty (out = 0; see block_specs.h). A mixture-of-experts layer leaves gate/up/down empty
  // and has a router and experts instead.
  LinearWeights q, k, v, o, gate, up, down;
  // MoE: the router (num_experts, C), kept in 16 bits (never quantized), and every expert's
  // gate, up, down in that order (3 per expert); both empty on dense layers.
  LinearWeights router;
  std::vector<LinearWeights> experts;
  size_t size_bytes() const;
};

std::string block_prefix(int64_t layer);  // "model.layers.<layer>."
// The linear layers of a block, in a fixed order: the seven dense slots (q, k, v, o, gate, up,
// down; some empty, see LinearWeights::present), then the experts' (expert e's gate, up, down at
// kDenseLinears + 3e + 0/1/2). The router is not among them: it is never quantized.
LinearWeights* block_linears(BlockWeights& b, int i);
const LinearWeights* block_linears(const BlockWeights& b, int i);
constexpr int kDenseLinears = 7;
inline int block_linear_count(const BlockWeights& b) { return kDenseLinears + int(b.experts.size()); }

// Throws ar::Error naming `file`, `tensor` and the first bad index when w[0, n) holds a NaN or an
// infinity: quantizing such a checkpoint would silently write garbage scales.
void check_finite_weights(const float* w, size_t n, const std::string& file, const std::string& tensor);

// Reads block `layer` from the model files, checking every shape and that every value is finite.
// Throws ar::Error naming the file and tensor.
BlockWeights load_block(const SafetensorsReader& st, const ModelConfig& c, int64_t layer);
// Gives the block's file pages back to the kernel (advisory).
void release_block_pages(const SafetensorsReader& st, int64_t layer);

// The output projection: lm_head.weight, or the embedding when tied. Shape (vocab, C).
const TensorInfo& lm_head_tensor(const SafetensorsReader& st, const ModelConfig& c);
const TensorInfo& embedding_tensor(const SafetensorsReader& st, const ModelConfig& c);

// Where a Decoder's weights come from: a HF safetensors folder or a GGUF file. Everything is
// handed out as f32 in HF layout (names, shapes and row order of the HF model), whatever the
// file stores.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual BlockWeights load_block(int64_t layer) const = 0;
  // Gives the block's file pages back to the kernel (advisory).
  virtual void release_block(int64_t layer) const = 0;
  // dst (n, C) = embedding rows [row0, row0 + n).
  virtual void embedding_rows(int64_t row0, int64_t n, float* dst) const = 0;
  // dst (n, C) = output projection rows [row0, row0 + n) (the embedding when tied).
  virtual void lm_head_rows(int64_t row0, int64_t n, float* dst) const = 0;
  // dst (C) = the final RMSNorm weight.
  virtual void final_norm(float* dst) const = 0;
};

// A view of `st` (which must outlive it); checks the embedding, lm_head and final norm exist with
// the config's shapes.
std::unique_ptr<WeightSource> make_safetensors_source(const SafetensorsReader& st, const ModelConfig& c);

}  // namespace ar
