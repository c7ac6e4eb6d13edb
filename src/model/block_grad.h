// Trainable forward and hand-written backward of one decoder layer (HF LlamaDecoderLayer /
// Qwen2 / Qwen3), one sample at a time, for SignRound tuning (SPEC §2): the forward saves what the
// backward needs; the backward runs from dL/dy to dL/dW' of the seven linears (accumulated).
#pragma once
#include <array>
#include <cstdint>

#include "core/buffer.h"
#include "kernels/gemm.h"
#include "model/block.h"
#include "model/config.h"
#include "model/weights.h"

namespace ar {

// The linear weights a trainable forward multiplies with, in block_linears() order (q, k, v, o,
// gate, up, down), each (out, in) f32: typically the fake-quantized W'. Norm weights and biases
// come from the BlockWeights (frozen).
using BlockLinearWeights = std::array<const float*, kBlockLinears>;
// Their gradients, same order and shapes, accumulated (+=); a null entry is skipped.
using BlockLinearGrads = std::array<float*, kBlockLinears>;

// Saved activations and backward temporaries of one sample of T tokens, sized once from the
// config (STYLE §5). Letters as in kernels/README.md.
class BlockGradScratch {
 public:
  BlockGradScratch(const ModelConfig& c, int64_t T);
  static size_t size_bytes(const ModelConfig& c, int64_t T);
  int64_t T() const { return T_; }

  // Saved by block_forward_train.
  float* rstd1;   // (T) input RMSNorm
  float* xn1;     // (T, C) input of q/k/v
  float* q_raw;   // (T, H*D) q_proj output before q_norm (Qwen3 only, else unused)
  float* k_raw;   // (T, Hkv*D) likewise
  float* rstd_q;  // (T*H), rstd_k (T*Hkv): per-head norms
  float* rstd_k;
  float* q;       // (T, H*D) after norm and RoPE: attention's input
  float* k;       // (T, Hkv*D)
  float* v;       // (T, Hkv*D)
  float* attn;    // (T, H*D) attention output = o_proj input
  float* h;       // (T, C) residual stream after attention
  float* rstd2;   // (T)
  float* xn2;     // (T, C) input of gate/up
  float* gate;    // (T, F) pre-activation
  float* up;      // (T, F)
  float* act;     // (T, F) silu(gate)*up = down_proj input
  // Backward temporaries.
  float *d_ffn_a, *d_ffn_b;  // (T, F)
  float *d_c, *d_h;          // (T, C)
  float *d_attn, *dq;        // (T, H*D)
  float *dk, *dv;            // (T, Hkv*D)
  float* att_scratch;        // max of attention forward/backward scratch

 private:
  int64_t T_;
  Buffer buf_;
};

// y (T, C) overwritten = the block applied to x (T, C) with linear weights w. s keeps what
// block_backward needs; x must stay unchanged until then. y must not alias x.
void block_forward_train(float* y, BlockGradScratch& s, const float* x, const BlockWeights& b,
                         const BlockLinearWeights& w, const ModelConfig& c, const RopeTables& rope,
                         Precision p);

// Backward of the last block_forward_train on s: dy (T, C) = dL/dy. dw[i] (out, in) += dL/dW'_i;
// dx (T, C) overwritten = dL/dx, skipped if null (tuning does not need it, which saves the q/k/v
// input-gradient GEMMs). x, b, w, c, rope, p as given to the forward. Norm weights and biases are
// frozen: no gradient for them.
void block_backward(float* dx, const BlockLinearGrads& dw, BlockGradScratch& s, const float* dy,
                    const float* x, const BlockWeights& b, const BlockLinearWeights& w,
                    const ModelConfig& c, const RopeTables& rope, Precision p);

}  // namespace ar
