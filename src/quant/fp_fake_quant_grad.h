// SignRound's differentiable quantizer for the floating-point formats of issue 19 (MXFP4, MXFP8,
// NVFP4, FP8, FP8Block): forward w' = qdq(w; v, max_scale) and its backward to v and max_scale,
// under the gradient conventions AutoRound's autograd gives its quantizers (data_type/mxfp.py
// quant_mx, nvfp.py nv_fp4, fp8.py quant_fp8_sym / quant_block_fp_sym, v0.16.1):
//  - every rounding (element, E4M3 block scale, E8M0 exponent floor) passes the gradient unchanged;
//  - clamps (and FP8's scale floor) pass it only strictly inside their bounds with
//    ClampGrad::Strict, as torch 2.15's clamp with number bounds does: an element that rounds to
//    the format's largest value (±6, ±448) gets no gradient, nor does a block whose scale sits
//    exactly at a bound. ClampGrad::Inclusive also passes it at the bounds (SPEC §2's rule);
//  - MX elements: AutoRound rounds t / 2^p · 2^(m-2) with a straight-through private exponent
//    p = floor(log2 |t|), so the element's derivative is q(t) / t where p is above the format's
//    smallest exponent, 1 where p was clipped to it, and 0 at t = 0 (torch.sign's zero);
//  - NVFP4 elements: derivative 1, and 0 at t = 0 (the same sign); the global scale is a constant;
//  - amax (of a block, row or 128x128 tile) is a constant: the weights are not trained.
// There is no min_scale: these formats are symmetric, so AutoRound never reads it.
#pragma once
#include <cstdint>

#include "quant/fake_quant_grad.h"
#include "quant/quantized.h"
#include "quant/weight_rows.h"

namespace ar {

// How many max_scale entries a layer (out, in) of FP scheme s tunes: (out, n_groups) for MXFP4 /
// MXFP8 / NVFP4, (out, 1) for FP8, (ceil(out / 128), n_groups) for FP8Block. Laid out as
// quantize_fp reads them.
int64_t fp_scale_count(const QuantScheme& s, int64_t out, int64_t in);

// w_dq (out, in) = quantize_fp(w, out, in, s, v, max_scale, global_amax).dequantize(), bit for bit.
// v (out, in) or null; max_scale (fp_scale_count) or null (= 1), already clamped to [0, 1];
// global_amax: NVFP4's, as quantize_fp takes it (< 0: this tensor's own amax).
void fp_fake_quant_forward(float* w_dq, const F32Rows& w, int64_t out, const QuantScheme& s, const float* v,
                           const float* max_scale, float global_amax = -1.f);
void fp_fake_quant_forward(float* w_dq, const Bf16Rows& w, int64_t out, const QuantScheme& s, const float* v,
                           const float* max_scale, float global_amax = -1.f);

// Given dw_dq = dL/dw' (out, in), accumulates (+=) dv (out, in) and dmax_scale (fp_scale_count);
// either may be null. Per-scale sums run in a fixed order: the same bits for any thread count.
void fp_fake_quant_backward(float* dv, float* dmax_scale, const float* dw_dq, const F32Rows& w, int64_t out,
                            const QuantScheme& s, const float* v, const float* max_scale, ClampGrad cg,
                            float global_amax = -1.f);
void fp_fake_quant_backward(float* dv, float* dmax_scale, const float* dw_dq, const Bf16Rows& w, int64_t out,
                            const QuantScheme& s, const float* v, const float* max_scale, ClampGrad cg,
                            float global_amax = -1.f);

}  // namespace ar
