// Trainable forward and hand-written backward of one decoder layer (HF LlamaDecoderLayer /
// Qwen2 / Qwen3 / Phi3 / Gemma3), one sample at a time, for SignRound tuning (SPEC §2): the forward saves what the
// backward needs; the backward runs from dL/dy to dL/dW' of the seven linears (accumulated).
#pragma once
#include <vector>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/buffer.h"
#include "core/precision.h"
#include "kernels/linear.h"
#include "model/block.h"
#include "model/moe.h"
#include "model/config.h"
#include "model/weights.h"

namespace ar {

// The linear weights a trainable forward multiplies with, in block_linears() order (q, k, v, o,
// gate, up, down), each (out, in) f32: typically the fake-quantized W'. Norm weights and biases
// come from the BlockWeights (frozen).
using BlockLinearWeights = std::vector<const float*>;
// The same weights handed out one at a time: source(i) returns linear i's weight, and the pointer
// may be invalidated by the next call. This lets a tuner materialize W' on demand into one buffer
// sized for the largest linear instead of keeping a W' per linear (7 of them are ~0.4 GB for a
// Qwen3-4B block). The forward asks for 0..6 in order, the backward for 6, 4, 5, 3 (and 0, 1, 2
// when dx is wanted); no call ever holds two of them. With fused linears (Phi3) slots 1, 2 and 5
// are never asked for: slot 0's and 4's weights hold them as row ranges, and dw[0] / dw[4] get
// the whole fused gradient.
// A source may hand out a dense linear's W' as bf16 (WeightView) when the products run in bf16 on a
// CPU with native bf16; experts' weights (MoE) always come as f32.
using LinearWeightSource = std::function<WeightView(int i)>;
// Their gradients, same order and shapes, accumulated (+=); a null entry is skipped.
using BlockLinearGrads = std::vector<float*>;

// Saved activations and backward temporaries of up to `seqs` samples of T tokens each, sized once
// from the config (STYLE §5). Several samples go through one forward/backward as one (seqs·T, C)
// matrix: the row-wise steps (norms, linears, activations) then see seqs·T rows, and attention and
// RoPE run per sample. Small models need that: a 256-wide linear on 256 rows is too small a GEMM
// to keep two cores busy. Shapes below are for one sample; every view holds `seqs` of them. Letters as in kernels/README.md. Buffers whose lifetimes do not overlap share
// storage (about 0.43 GB instead of 0.71 GB for a Qwen3-4B block at T = 2048):
//  - the MLP's three (T, F) buffers are reused by the backward in place (d act over act, d gate
//    over gate, d up over up), then act's buffer holds d xn2 and d h;
//  - the attention-half backward temporaries live where gate/up were (dead by then), and the
//    attention scratch there too (before the MLP runs, and after the MLP backward).
// So the MLP and attention-backward views below are only valid in the phases their comments name.
class BlockGradScratch {
 public:
  BlockGradScratch(const ModelConfig& c, int64_t T, int64_t seqs = 1);
  ~BlockGradScratch();
  BlockGradScratch(BlockGradScratch&&) noexcept;
  static size_t size_bytes(const ModelConfig& c, int64_t T, int64_t seqs = 1);
  int64_t T() const { return T_; }
  int64_t capacity() const { return cap_; }
  // Samples in the last forward (set by block_forward_train, read by block_backward).
  int64_t seqs() const { return seqs_; }
  void set_seqs(int64_t n);

  // Saved by block_forward_train, read by block_backward.
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
  // Sandwich norms (Gemma3) only, else null: the norms' inputs and rstd, and the gradient of a
  // normed branch (d down-output, then d o-output).
  float* o_out;    // (T, C) o_proj output, input of post_attention_layernorm
  float* rstd_pa;  // (T)
  float* m_out;    // (T, C) down_proj output, input of post_feedforward_layernorm
  float* rstd_pf;  // (T)
  float* d_branch; // (T, C)
  // MLP: saved by the forward; the backward overwrites them with their gradients.
  float* gate;    // (T, F) pre-activation; backward: d gate
  float* up;      // (T, F); backward: d up
  float* act;     // (T, F) silu(gate)*up = down_proj input; backward: d act, then d_c = d xn2 and
                  // d_h (T, C) = dL/dh
  // Attention-half backward temporaries (over gate/up, after the MLP backward).
  float *d_attn, *dq;  // (T, H*D)
  float *dk, *dv;      // (T, Hkv*D)
  float* d_xn1;        // (T, C), only when dx is wanted
  float* att_scratch;  // attention forward/backward scratch for one sample (also over gate/up)
  size_t att_floats;   // its size
  // With native bf16 products (and BF16 precision), activations that only feed bf16 products are
  // kept as bf16 bits over their own f32 storage (element i at bf16 index i): the forward's xn1,
  // attn, xn2 and act, the backward's d gate, d up and dq, dk, dv. The products then read them in
  // place instead of each converting them again. The owner turns this off while it reads those
  // inputs as f32 after a forward (an importance matrix).
  bool allow_bf16_activations = true;
  // Set by block_forward_train from the above and the precision; block_backward follows it.
  bool bf16_activations = false;
  // The MoE MLP's saved state (moe.h), when the config has experts; on MoE layers the dense MLP
  // views above are unused, and act's slot holds d xn2.
  std::unique_ptr<MoeTrainScratch> moe;

 private:
  int64_t T_, cap_, seqs_ = 1;
  Buffer buf_;
};

// y (n·T, C) overwritten = the block applied to each of the n samples in x (n·T, C), one after
// another, with linear weights w; n ≤ s.capacity(). s keeps what block_backward needs; x must stay
// unchanged until then. y must not alias x. experts, if given, makes an MoE layer's expert
// weights in place of w (moe.h's MoeWeightMaker; backward the same).
void block_forward_train(float* y, BlockGradScratch& s, const float* x, const BlockWeights& b,
                         const LinearWeightSource& w, const ModelConfig& c, const RopeTables& rope,
                         Precision p, int64_t n = 1, const MoeWeightMaker* experts = nullptr);
void block_forward_train(float* y, BlockGradScratch& s, const float* x, const BlockWeights& b,
                         const BlockLinearWeights& w, const ModelConfig& c, const RopeTables& rope,
                         Precision p, int64_t n = 1);

// Backward of the last block_forward_train on s (which it consumes: a second backward needs a
// second forward), over its n samples: dy (n·T, C) = dL/dy. dw[i] (out, in) += dL/dW'_i (summed
// over all n·T rows in one GEMM); dx (n·T, C) overwritten = dL/dx,
// skipped if null (tuning does not need it, which saves the q/k/v input-gradient GEMMs). x, b, w,
// c, rope, p as given to the forward (w giving the same values). Norm weights and biases are
// frozen: no gradient for them.
// DenseGrads::Overwrite: the dense linears' dw[i] (i < kDenseLinears, every part of a fused one)
// are written (=) rather than added to, for the first backward into zero gradients, which then
// need no clearing. The experts' (MoE) are added to either way: an expert no token reached is not
// written at all. DenseGrads::OverwriteBf16 (native bf16 products only): the same, with each dense
// dL/dW' written as bf16 bits (its f32 sum rounded once, element j at bf16 index j of
// reinterpret_cast<uint16_t*>(dw[i]), so a buffer of half the floats is enough), as PyTorch's
// autocast gives a bf16 product's weight gradient: half the bytes for the GEMM to write and the
// tuner to read.
enum class DenseGrads : uint8_t { Add, Overwrite, OverwriteBf16 };
void block_backward(float* dx, const BlockLinearGrads& dw, BlockGradScratch& s, const float* dy,
                    const float* x, const BlockWeights& b, const LinearWeightSource& w,
                    const ModelConfig& c, const RopeTables& rope, Precision p, DenseGrads dense = DenseGrads::Add,
                    const MoeWeightMaker* experts = nullptr);
void block_backward(float* dx, const BlockLinearGrads& dw, BlockGradScratch& s, const float* dy,
                    const float* x, const BlockWeights& b, const BlockLinearWeights& w,
                    const ModelConfig& c, const RopeTables& rope, Precision p, DenseGrads dense = DenseGrads::Add);

}  // namespace ar
