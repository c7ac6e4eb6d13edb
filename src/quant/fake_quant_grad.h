// The differentiable quantizer of one linear layer for SignRound tuning (SPEC §2): forward
// w' = qdq(w; v, min_scale, max_scale) and its backward to v / min_scale / max_scale under the
// Python AutoRound's gradient conventions (round and fp16 casts straight-through, clamps masked).
// A floating-point scheme (s.is_fp()) goes to quant/fp_fake_quant_grad: min_scale is then unused,
// dmin_scale untouched and max_scale laid out as fp_scale_count says.
#pragma once
#include <cstdint>

#include "kernels/gemm.h"  // MatrixView
#include "quant/quantized.h"

namespace ar {

// Where a clamp (or a scale floor) passes the gradient at its own bound. SPEC §2 and the shared
// gradient fixtures: inclusively, lo <= x <= hi, as torch's clamp backward once did. torch 2.15,
// which AutoRound 0.16.1 runs on today, gives 0 at the bound itself (number bounds): Strict. It
// matters most at 2 bits, where many weights sit on an end code: qwen3-student W2G64 asym, seed
// 42, gave held-out ppl 3.9453 Inclusive, 3.9265 Strict, AutoRound 3.9271 (W4G128 sym: 3.84964
// vs 3.84977, AutoRound 3.8495-3.8502).
enum class ClampGrad : uint8_t { Inclusive, Strict };

// w_dq (out, in) f32, overwritten = the fake-quantized weight, bit-identical to
// quantize_rtn(w, out, in, s, v, min_scale, max_scale, name, global_amax).dequantize(); global_amax
// is read by NVFP4 only (quant/fp_quantize.h). w (out, in); v (out, in) or
// null (= 0); min_scale, max_scale (out, n_groups) already clamped to [0, 1], or null (= 1).
void fake_quant_forward(float* w_dq, const float* w, int64_t out, int64_t in, const QuantScheme& s,
                        const float* v, const float* min_scale, const float* max_scale, float global_amax = -1.f);

// Backward of fake_quant_forward given dw_dq = dL/dw' (out, in). Accumulates (+=):
//   dv (out, in)                        dL/dv (skipped if null)
//   dmin_scale, dmax_scale (out, n_groups)  dL/dmin_scale, dL/dmax_scale (each skipped if null).
// Conventions (AutoRound quant_tensor_sym / quant_tensor_asym under autograd):
//  - round(w/s + v) and the zero point round(-wmin*min_scale/s) pass the gradient unchanged;
//  - the fp16 rounding of s passes it unchanged; the |s| >= 1e-5 floor blocks it where it floors;
//  - clamp(x, a, b) passes it only where a <= x <= b (the integer before clamping), or only where
//    a < x < b with ClampGrad::Strict (see there);
//  - sym: the side choice hi >= lo is a constant, the chosen side is differentiated;
//  - wmin = min(0, min w), wmax = max(0, max w) are constants (the weights are not trained).
// Group sums of the scale gradient are taken in f32, as the reference gradients in
// fixtures/gradients/ are (they agree with ours to ~1e-6 relative norm).
void fake_quant_backward(float* dv, float* dmin_scale, float* dmax_scale, const float* dw_dq,
                         const float* w, int64_t out, int64_t in, const QuantScheme& s,
                         const float* v, const float* min_scale, const float* max_scale,
                         ClampGrad cg = ClampGrad::Inclusive, float global_amax = -1.f);

// Both with the original weight given as bf16 bits, w_bf16 (out, in), widened to f32 a row at a
// time: the same bits as passing those values in f32, for a tuner that keeps a bf16 checkpoint's
// weights at half the memory.
void fake_quant_forward(float* w_dq, const uint16_t* w_bf16, int64_t out, int64_t in, const QuantScheme& s,
                        const float* v, const float* min_scale, const float* max_scale, float global_amax = -1.f);
void fake_quant_backward(float* dv, float* dmin_scale, float* dmax_scale, const float* dw_dq,
                         const uint16_t* w_bf16, int64_t out, int64_t in, const QuantScheme& s,
                         const float* v, const float* min_scale, const float* max_scale,
                         ClampGrad cg = ClampGrad::Inclusive, float global_amax = -1.f);

// fake_quant_forward rounded to bf16 bits (round to nearest even, as the bf16 products round their
// inputs), integer schemes only: the W' a tuner hands to native bf16 products.
void fake_quant_forward_bf16(uint16_t* w_dq, const float* w, int64_t out, int64_t in, const QuantScheme& s,
                             const float* v, const float* min_scale, const float* max_scale);
void fake_quant_forward_bf16(uint16_t* w_dq, const uint16_t* w_bf16, int64_t out, int64_t in, const QuantScheme& s,
                             const float* v, const float* min_scale, const float* max_scale);

// fake_quant_backward and SignRound's signed step on v in one pass, for integer schemes (not
// is_fp()): v (out, in) becomes v - lr*sign(dL/dv) in place, the bits signed_step gives with the dv
// fake_quant_backward accumulates into zeros; dmin_scale / dmax_scale accumulate as there. The
// tuner's step without a weight-sized dL/dv buffer and two more passes over it. dw_dq may be bf16
// bits (DenseGrads::OverwriteBf16): the results of its widened values. The signed step of v reads
// only the sign of dL/dW', which bf16 rounding keeps, so v moves exactly as with the f32 gradient;
// the scales' sums (and through them, rarely, a scale's step) may differ in the last bits.
//
// With `next`, the same pass can also (each where its pointer is given):
//  - codes: write the RTN codes, scales and zero points of the parameters before the step into
//    *codes (already allocated for this scheme and shape): the bits quantize_rtn_into gives, for
//    a tuner whose loss just reached a new best;
//  - w_dq16: take each group's min/max_scale step (lr mm_lr, only where dmin_scale / dmax_scale
//    are given, then clamped to [0, 1] as the tuner does before every step) in min_scale /
//    max_scale (the min_scale / max_scale arrays, stepped in place), and write the next step's W'
//    from the updated parameters as bf16 bits into w_dq16 (out, in): the bits of signed_step and
//    clamp01 on the scales followed by fake_quant_forward_bf16.
// Both without reading v and the weight again.
struct NextStepWprime {
  float mm_lr = 0.f;
  float* min_scale = nullptr;
  float* max_scale = nullptr;
  uint16_t* w_dq16 = nullptr;
  QuantizedWeight* codes = nullptr;
};
void fake_quant_backward_step(float* v, float lr, float* dmin_scale, float* dmax_scale, MatrixView dw_dq,
                              const float* w, int64_t out, int64_t in, const QuantScheme& s, const float* min_scale,
                              const float* max_scale, ClampGrad cg = ClampGrad::Inclusive,
                              const NextStepWprime* next = nullptr);
void fake_quant_backward_step(float* v, float lr, float* dmin_scale, float* dmax_scale, MatrixView dw_dq,
                              const uint16_t* w_bf16, int64_t out, int64_t in, const QuantScheme& s,
                              const float* min_scale, const float* max_scale, ClampGrad cg = ClampGrad::Inclusive,
                              const NextStepWprime* next = nullptr);

// One element of SignRound's signed step, p - lr·sign(g) (sign(0) = 0, as torch.sign), and the
// projection of a min/max_scale to [0, 1]: shared by the tuner and the fused step above.
inline float signed_step_value(float p, float g, float lr) { return p - ((g > 0 ? lr : 0.f) - (g < 0 ? lr : 0.f)); }
inline float clamp01_value(float x) { return x < 0.f ? 0.f : x > 1.f ? 1.f : x; }

}  // namespace ar
