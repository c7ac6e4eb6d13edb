// SignRound's differentiable quantizer for a GGUF target (issue 5, "tuned GGUF"): forward
// w' = qdq(w; v, min_scale, max_scale) under the format's own scale structure (k-quants: sub-block
// scales/mins quantized to 4/6/8 bits against fp16 super-block scales) and its straight-through
// backward, so that what SignRound tunes is exactly what the GGUF file stores.
//
// Parametrisation (after the Python AutoRound's int_asym_dq / int_sym_dq GGUF types, but started
// from our RTN, gguf_quantize_tensor, instead of from the plain min/max range):
//  - gguf_tune_init runs the format's own scale search once (the same calls, with the same float
//    arithmetic, as gguf_quantize_row) and keeps each group's (sub-block's) scale s and min m;
//  - min_scale a / max_scale b, one pair per group, multiply the group's range endpoints:
//      affine (Q4_1 Q5_1 Q2_K Q4_K Q5_K), x ~ s*q - m, range [lo, hi] = [-m, s*N - m]:
//        s' = (b*hi - a*lo) / N  (clamped at 0),   m' = a*m;
//      symmetric (Q4_0 Q5_0 Q8_0 Q3_K Q6_K), x ~ s*l: the group's extreme is mapped by a signed s
//        (s < 0: the extreme is the max, s > 0: the min); s' = s*b if s < 0, else s*a. Q4_0/Q5_0/
//        Q8_0 also keep the opposite side's candidate and switch to it once it is the larger;
//  - the format then quantizes s', m' exactly as its RTN does (k-quants: the 6-bit / 4-bit sub-
//    block scales against an fp16 d, by max or, with an importance vector, by the weighted search);
//  - codes = clamp(round((x + m_r) / s_r + v)) with (s_r, m_r) the values the RTN rounds with (the
//    stored, dequantized ones; the f32 s' for the reference simple formats), then packed.
// At v = 0, a = b = 1 the bytes equal gguf_quantize_tensor's (without importance; with it, the
// k-quants are equal and the simple formats re-round with the stored scale, never worse per weight).
//
// Straight-through conventions (as fake_quant_grad.h): round passes the gradient unchanged, clamp
// blocks it where the integer left the range, the scale quantization (fp16 d, 6-bit sc ...) passes
// it unchanged as a whole (dd_eff/ds' = 1, dm_eff/dm' = 1). Where a group's dequantized scale is 0
// only the min path carries a gradient.
#pragma once
#include <cstdint>
#include <vector>

#include "core/ggml_type.h"
#include "quant/fake_quant_grad.h"  // ClampGrad

namespace ar {

// Per-tensor constants of the tuning, computed once from the original weight.
struct GgufTuneInit {
  GgmlType type = GgmlType::Q4_0;
  int64_t rows = 0, cols = 0, groups = 0;  // groups per row (gguf_tune_groups)
  bool weighted = false;                   // built with an importance vector
  // (rows, groups). affine: scale = s, offset = m (x ~ s*q - m). symmetric: scale = the signed
  // RTN scale; Q4_0/Q5_0/Q8_0: offset = the opposite side's candidate (|offset| <= |scale|).
  std::vector<float> scale, offset;
  // (rows, groups), weighted k-quants only (Q2_K Q3_K Q4_K Q5_K): the group's summed search
  // weights, which the weighted scale quantization uses.
  std::vector<float> weight_sum;
  // Groups whose dequantized scale is 0 at the RTN point keep the search's levels there (they do
  // not change w', only the bytes): sorted keys row*groups + g, and G codes per key.
  std::vector<int64_t> kept_groups;
  std::vector<uint8_t> kept_codes;
};

// True for the formats this file tunes: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K.
bool gguf_tunable(GgmlType t);
// Weights per group (one min/max_scale pair): 32 (simple formats, Q4_K, Q5_K) or 16 (Q2_K Q3_K Q6_K).
int64_t gguf_tune_group_size(GgmlType t);
// min/max_scale entries per row of `cols` weights.
int64_t gguf_tune_groups(GgmlType t, int64_t cols);

// w (rows, cols) f32, cols a multiple of the block size (AR_CHECK); imp: optional per-column
// importance (cols), as gguf_quantize_tensor takes it. Rows in parallel.
GgufTuneInit gguf_tune_init(GgmlType t, const float* w, int64_t rows, int64_t cols, const float* imp = nullptr);

// w_dq (rows, cols) f32, overwritten, or null; bytes (rows * ggml_row_bytes(t, cols)), overwritten,
// or null. w_dq is bit-identical to gguf_dequantize_tensor(bytes). w (rows, cols) the original
// weight; v (rows, cols) or null (= 0); min_scale, max_scale (rows, groups) or null (= 1), used
// as given (the tuner keeps them in [0, 1]).
void gguf_fake_quant_forward(float* w_dq, void* bytes, const float* w, int64_t rows, int64_t cols,
                             const GgufTuneInit& init, const float* v, const float* min_scale, const float* max_scale);
// Backward of gguf_fake_quant_forward given dw_dq = dL/dw' (rows, cols). Accumulates (+=) dv
// (rows, cols), dmin_scale, dmax_scale (rows, groups); each may be null (skipped). `cg`: whether an
// integer exactly on a bound of the code range passes the gradient (Inclusive) or not (Strict, as
// AutoRound's GGUF quantizers give it on torch 2.15; fake_quant_grad.h).
void gguf_fake_quant_backward(float* dv, float* dmin_scale, float* dmax_scale, const float* dw_dq, const float* w,
                              int64_t rows, int64_t cols, const GgufTuneInit& init, const float* v,
                              const float* min_scale, const float* max_scale, ClampGrad cg = ClampGrad::Inclusive);

// The same two with the original weight as bf16 bits (rows, cols), widened a row at a time: the
// same results as passing those values in f32.
void gguf_fake_quant_forward(float* w_dq, void* bytes, const uint16_t* w_bf16, int64_t rows, int64_t cols,
                             const GgufTuneInit& init, const float* v, const float* min_scale, const float* max_scale);
void gguf_fake_quant_backward(float* dv, float* dmin_scale, float* dmax_scale, const float* dw_dq,
                              const uint16_t* w_bf16, int64_t rows, int64_t cols, const GgufTuneInit& init,
                              const float* v, const float* min_scale, const float* max_scale,
                              ClampGrad cg = ClampGrad::Inclusive);

// Per group (rows, groups), overwritten: the dequantized scale and min the forward uses, so that
// w' = d_eff * level - m_eff with level the group's integer (signed for the symmetric formats:
// Q4_0 code-8, Q5_0 code-16, Q3_K code-4, Q6_K code-32, Q8_0 the int8). Does not depend on w or v.
// For inspection and tests; m_eff may be null.
void gguf_tune_group_scales(float* d_eff, float* m_eff, const GgufTuneInit& init, const float* min_scale,
                            const float* max_scale);

}  // namespace ar
