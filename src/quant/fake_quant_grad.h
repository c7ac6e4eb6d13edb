// The differentiable quantizer of one linear layer for SignRound tuning (SPEC §2): forward
// w' = qdq(w; v, min_scale, max_scale) and its backward to v / min_scale / max_scale under the
// Python AutoRound's gradient conventions (round and fp16 casts straight-through, clamps masked).
// A floating-point scheme (s.is_fp()) goes to quant/fp_fake_quant_grad: min_scale is then unused,
// dmin_scale untouched and max_scale laid out as fp_scale_count says.
#pragma once
#include <cstdint>

#include "quant/quantized.h"

namespace ar {

// w_dq (out, in) f32, overwritten = the fake-quantized weight, bit-identical to
// quantize_rtn(w, out, in, s, v, min_scale, max_scale).dequantize(). w (out, in); v (out, in) or
// null (= 0); min_scale, max_scale (out, n_groups) already clamped to [0, 1], or null (= 1).
void fake_quant_forward(float* w_dq, const float* w, int64_t out, int64_t in, const QuantScheme& s,
                        const float* v, const float* min_scale, const float* max_scale);

// Backward of fake_quant_forward given dw_dq = dL/dw' (out, in). Accumulates (+=):
//   dv (out, in)                        dL/dv (skipped if null)
//   dmin_scale, dmax_scale (out, n_groups)  dL/dmin_scale, dL/dmax_scale (each skipped if null).
// Conventions (AutoRound quant_tensor_sym / quant_tensor_asym under autograd):
//  - round(w/s + v) and the zero point round(-wmin*min_scale/s) pass the gradient unchanged;
//  - the fp16 rounding of s passes it unchanged; the |s| >= 1e-5 floor blocks it where it floors;
//  - clamp(x, a, b) passes it only where a <= x <= b (the integer before clamping);
//  - sym: the side choice hi >= lo is a constant, the chosen side is differentiated;
//  - wmin = min(0, min w), wmax = max(0, max w) are constants (the weights are not trained).
// Group sums of the scale gradient are taken in f32, as the reference gradients in
// fixtures/gradients/ are (they agree with ours to ~1e-6 relative norm).
void fake_quant_backward(float* dv, float* dmin_scale, float* dmax_scale, const float* dw_dq,
                         const float* w, int64_t out, int64_t in, const QuantScheme& s,
                         const float* v, const float* min_scale, const float* max_scale);

// Both with the original weight given as bf16 bits, w_bf16 (out, in), widened to f32 a row at a
// time: the same bits as passing those values in f32, for a tuner that keeps a bf16 checkpoint's
// weights at half the memory.
void fake_quant_forward(float* w_dq, const uint16_t* w_bf16, int64_t out, int64_t in, const QuantScheme& s,
                        const float* v, const float* min_scale, const float* max_scale);
void fake_quant_backward(float* dv, float* dmin_scale, float* dmax_scale, const float* dw_dq,
                         const uint16_t* w_bf16, int64_t out, int64_t in, const QuantScheme& s,
                         const float* v, const float* min_scale, const float* max_scale);

}  // namespace ar
