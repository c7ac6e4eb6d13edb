// Forward pass of one decoder layer (HF LlamaDecoderLayer / Qwen3DecoderLayer), one sample at a time:
// RMSNorm -> q/k/v -> [q/k per-head RMSNorm] -> RoPE -> causal GQA attention -> o_proj -> residual
// -> RMSNorm -> SiLU(gate) * up -> down_proj -> residual. Every linear adds its bias when it has one
// (which ones do is decided in block_specs.h).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/buffer.h"
#include "core/precision.h"
#include "model/config.h"
#include "model/weights.h"

namespace ar {

// cos/sin tables (T, D/2) for positions 0..T-1.
struct RopeTables {
  int64_t T = 0, half_D = 0;
  std::vector<float> cos, sin;
};
RopeTables make_rope_tables(const ModelConfig& c, int64_t T);

// Activations of one sample of T tokens, sized once from the config (STYLE §5: size, then allocate).
class BlockScratch {
 public:
  BlockScratch(const ModelConfig& c, int64_t T);
  static size_t size_bytes(const ModelConfig& c, int64_t T);
  int64_t T() const { return T_; }
  float *xn, *q, *k, *v, *attn, *proj, *gate, *up, *att_scratch;
  size_t att_floats;  // size of att_scratch

 private:
  int64_t T_;
  Buffer buf_;
};

// Sees the input of every linear layer as the forward runs (e.g. to accumulate the per-channel
// mean squared activations of an importance matrix). `linear` indexes block_linears().
// Inputs of q/k/v (and of gate/up) are the same buffer, reported once per linear.
using LinearInputObserver = std::function<void(int linear, const float* x, int64_t T, int64_t K)>;

// x (T, C): the residual stream of one sample, updated in place to the block's output.
void block_forward(float* x, const BlockWeights& w, const ModelConfig& c, const RopeTables& rope,
                   BlockScratch& s, Precision p, const LinearInputObserver& observe = {});

}  // namespace ar
