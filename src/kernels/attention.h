// Causal scaled-dot-product attention with grouped-query heads (HF eager attention: softmax in
// fp32, q head h reads kv head h / (H/Hkv)), optionally with a sliding window (Mistral, Phi-3,
// Gemma's local layers) and logit soft-capping (Gemma-2). Scores exist one (256, T) row block per
// thread at a time, never a whole batch's (or, for long T, even a whole head's).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/precision.h"

namespace ar {

// Floats of scratch attention_forward needs: one sample's q, k, v as bf16 (T·(H + 2·Hkv)·D
// values, each head tight, for the native bf16 path; reserved whatever the precision, so that the
// size does not depend on the CPU), then one row block of one head's probabilities,
// (min(T, 256), T), per OpenMP thread (heads run in parallel), sized for omp_get_max_threads()
// now. For T >= 256·threads a row block is at most one head's (T, T). The kernels take the size
// they were given and never use more threads than it has slots, so a thread count raised between
// allocation and call costs parallelism, not memory safety.
size_t attention_scratch_floats(int64_t T, int64_t H, int64_t Hkv, int64_t D);
// Floats of scratch attention_backward needs: the bf16 copies (with dO's), then probabilities
// and their gradient per block and thread.
size_t attention_backward_scratch_floats(int64_t T, int64_t H, int64_t Hkv, int64_t D);

// out (T, H, D) overwritten; scratch: scratch_floats >= the bf16 copies and one slot (block of T)
// floats, clobbered;
// q (T, H, D) (already RoPE'd, and q-normed where the model has it); k, v (T, Hkv, D).
// scale = 1/sqrt(D) typically. H must be a multiple of Hkv. Q·Kᵀ and P·V run through gemm with
// precision p (BF16: q, k, v and the probabilities rounded to bf16 for the products, as a bf16
// model's matmuls would); the softmax is always fp32. One sample: batch by calling per sample.
// window > 0: query i sees key j only if j <= i and i − j < window (HF sliding_window_overlay,
// kv_idx > q_idx − sliding_window); row blocks skip the keys that slid out of every row's window.
// window = 0 (or >= T): plain causal. softcap > 0: each scaled score s becomes
// softcap·tanh(s/softcap) before the mask and softmax (HF Gemma-2 attn_logit_softcapping);
// 0: none. With both 0 the result is bit-identical to the kernel before these options existed.
void attention_forward(float* out, float* scratch, size_t scratch_floats, const float* q,
                       const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv, int64_t D,
                       float scale, Precision p, int64_t window = 0, float softcap = 0.0f);

// Gradients of attention_forward, recomputing the probabilities from q, k, v one head and one
// row block at a time (nothing saved from forward). dq (T, H, D), dk, dv (T, Hkv, D): input
// gradients, overwritten; scratch >= attention_backward_scratch_floats(T, H, Hkv, D) floats; dout (T, H, D);
// q, k, v, T, H, Hkv, D, scale, p, window, softcap as in forward (the soft-cap's derivative
// sech²(s/softcap) multiplies dS). No output may alias an input. softcap > 0 additionally keeps
// one row block of that derivative, block_floats(T), in a per-thread grow-only buffer outside
// the caller's scratch (named "attention.softcap_sech2"), so scratch sizes do not depend on it.
void attention_backward(float* dq, float* dk, float* dv, float* scratch, size_t scratch_floats,
                        const float* dout, const float* q, const float* k, const float* v, int64_t T, int64_t H,
                        int64_t Hkv, int64_t D, float scale, Precision p, int64_t window = 0,
                        float softcap = 0.0f);

// Reference: same contract (no scratch), plain loops with double accumulation and a double
// softmax; with BF16 it rounds q, k, v and the probabilities to bf16 where the fast path does.
void attention_ref(float* out, const float* q, const float* k, const float* v, int64_t T,
                   int64_t H, int64_t Hkv, int64_t D, float scale, Precision p, int64_t window = 0,
                   float softcap = 0.0f);

}  // namespace ar
