// Forward pass of one decoder layer (HF LlamaDecoderLayer / Qwen3DecoderLayer / Phi3DecoderLayer /
// Gemma3DecoderLayer), one sample at a time:
// RMSNorm -> q/k/v -> [q/k per-head RMSNorm] -> RoPE -> causal GQA attention [sliding window,
// soft-capped scores] -> o_proj -> [RMSNorm] -> residual -> RMSNorm -> act(gate) * up -> down_proj
// -> [RMSNorm] -> residual, act SiLU or GELU-tanh. The bracketed norms are Gemma's sandwich norms.
// Every linear adds its bias when it has one (which ones do is decided in block_specs.h); fused
// linears (Phi3) are multiplied by row ranges.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/buffer.h"
#include "core/precision.h"
#include "model/config.h"
#include "model/weights.h"

namespace ar {

// cos/sin tables (T, D/2) for positions 0..T-1; cos_local/sin_local likewise for the layers that
// rotate with their own base (Gemma3's sliding layers), empty when the config has none.
struct RopeTables {
  int64_t T = 0, half_D = 0;
  std::vector<float> cos, sin;
  std::vector<float> cos_local, sin_local;
  const float* cos_for(const ModelConfig& c, int64_t layer) const;
  const float* sin_for(const ModelConfig& c, int64_t layer) const;
};
RopeTables make_rope_tables(const ModelConfig& c, int64_t T);

// The norm weights a block multiplies with: the stored w, or 1 + w where the config stores
// offsets from one (Gemma). Null for the norms the config does not have.
class BlockNorms {
 public:
  BlockNorms(const BlockWeights& b, const ModelConfig& c);
  const float* input = nullptr;
  const float* post = nullptr;      // post_attention_layernorm
  const float* pre_ffn = nullptr;   // Gemma3
  const float* post_ffn = nullptr;  // Gemma3
  const float* q = nullptr;
  const float* k = nullptr;
  // The norm in front of the MLP: pre_feedforward_layernorm with sandwich norms, else
  // post_attention_layernorm.
  const float* mlp_in() const { return pre_ffn ? pre_ffn : post; }

 private:
  std::vector<float> store_;
};

// Where q/k/v and gate/up start in their weights: separate linears, or row ranges of the fused
// one in the Q / Gate slot (Phi3). Offsets in elements from the slot's weight.
struct FusedOffsets {
  int64_t k = 0, v = 0, up = 0;  // 0 when not fused (each has its own weight)
};
FusedOffsets fused_offsets(const ModelConfig& c);

// The MLP activation: act(gate) * up, act from c.hidden_act; out may alias gate or up.
void mlp_act_forward(float* out, const float* gate, const float* up, int64_t n, const ModelConfig& c);
void mlp_act_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                      const ModelConfig& c);
// The same with bf16 outputs, for an MLP whose products run natively in bf16 (they would round the
// f32 results to the same bits): act written once as bf16 instead of converted by each product that
// reads it. Forward: out16 (n) = bf16(act(gate) * up). Backward: d gate and d up as bf16 over
// gate's and up's own storage (element i at bf16 index i of reinterpret_cast<uint16_t*>(gate)),
// which their (T, F) f32 buffers have room for, so the step needs no more memory.
void mlp_act_forward_bf16(uint16_t* out16, const float* gate, const float* up, int64_t n, const ModelConfig& c);
void mlp_act_backward_bf16_in_place(float* gate, float* up, const float* dout, int64_t n, const ModelConfig& c);

class MoeScratch;

// Activations of one sample of T tokens, sized once from the config (STYLE §5: size, then allocate).
class BlockScratch {
 public:
  BlockScratch(const ModelConfig& c, int64_t T);
  ~BlockScratch();
  BlockScratch(BlockScratch&&) noexcept;
  BlockScratch& operator=(BlockScratch&&) noexcept;
  static size_t size_bytes(const ModelConfig& c, int64_t T);
  int64_t T() const { return T_; }
  float *xn, *q, *k, *v, *attn, *proj, *gate, *up, *att_scratch;
  size_t att_floats;  // size of att_scratch
  std::unique_ptr<MoeScratch> moe;  // the MoE MLP's, when the config has experts

 private:
  int64_t T_;
  Buffer buf_;
};

// Sees the input of every linear layer as the forward runs (e.g. to accumulate the per-channel
// mean squared activations of an importance matrix). `linear` indexes block_linears().
// Inputs of q/k/v (and of gate/up) are the same buffer, reported once per linear.
using LinearInputObserver = std::function<void(int linear, const float* x, int64_t T, int64_t K)>;

// The dense linears' weights (index as block_linears) rounded to bf16 once, for a pass of many
// samples in native bf16 products, which would otherwise round every f32 weight again in every
// product: the same bits. Null entries (and the experts) use their f32 weights.
struct DenseBf16Weights {
  std::array<std::vector<uint16_t>, kDenseLinears> w;
  // Copies of every present dense linear; empty (all null) unless p is BF16 and products are native.
  static DenseBf16Weights make(const BlockWeights& b, Precision p);
  // Bytes make(b, p) holds: for blocks shaped as b.
  static uint64_t bytes(const BlockWeights& b, Precision p);
  const uint16_t* get(int i) const { return w[size_t(i)].empty() ? nullptr : w[size_t(i)].data(); }
};

// x (T, C): the residual stream of one sample, updated in place to the block's output. w16: the
// dense weights already in bf16 (see DenseBf16Weights), or null.
void block_forward(float* x, const BlockWeights& w, const ModelConfig& c, const RopeTables& rope,
                   BlockScratch& s, Precision p, const LinearInputObserver& observe = {},
                   const DenseBf16Weights* w16 = nullptr);

}  // namespace ar
