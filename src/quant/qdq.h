// Group-level building blocks of the SPEC §2 integer quantizer: scale/zero of one group (scales
// rounded to fp16 and floored as AutoRound's quant_tensor_sym/asym do), the codes, and the weighted
// squared error of a candidate scale used by the optimized-RTN search. Each fast (AVX2) routine
// has a plain `_ref` sibling that gives bit-identical results (same operations, same summation order).
#pragma once
#include <cmath>
#include <cstdint>

namespace ar {

// The magnitude floor AutoRound applies to every scale after fp16 rounding (q_scale_thresh).
constexpr float kScaleFloor = 1e-5f;

// s rounded to fp16, then |s| floored at 1e-5 keeping its sign; -0 and +0 become +1e-5 (torch.where
// on `s < 0`). Returns the fp16 bits; the floor itself is the fp16 value nearest 1e-5.
uint16_t round_scale_f16(float s);

// One group's quantization parameters: the stored fp16 scale, its f32 value, and the unsigned zero
// point so that code = clamp(round(w / scale + v) + zero, 0, 2^bits - 1), w' = scale * (code - zero).
// Symmetric "full range" is the same formula with zero = 2^(bits-1).
struct GroupQuant {
  uint16_t scale_f16 = 0;
  float scale = 0;
  int zero = 0;
};

// min(0, min w) and max(0, max w) over a group of n weights (a NaN is skipped).
void group_range(const float* w, int64_t n, float* mn, float* mx);

// SPEC §2 parameters of a group of n weights (the real ones only: zero padding cannot change
// min(0, .) / max(0, .)). min_scale / max_scale as given (the tuner clamps them to [0, 1]).
GroupQuant sym_group_params(const float* w, int64_t n, int bits, float min_scale = 1.f, float max_scale = 1.f);
GroupQuant asym_group_params(const float* w, int64_t n, int bits, float min_scale = 1.f, float max_scale = 1.f);
// The scheme's own of the two.
inline GroupQuant group_params(const float* w, int64_t n, bool sym, int bits, float min_scale, float max_scale) {
  return sym ? sym_group_params(w, n, bits, min_scale, max_scale) : asym_group_params(w, n, bits, min_scale, max_scale);
}
// The same from the group's range (group_range's mn, mx), for callers that already have it.
GroupQuant sym_range_params(float mn, float mx, int bits, float min_scale = 1.f, float max_scale = 1.f);
GroupQuant asym_range_params(float mn, float mx, int bits, float min_scale = 1.f, float max_scale = 1.f);
// sym_range_params of n groups at once (mn, mx, min_scale, max_scale: n each), 8 at a time where
// AVX2 + F16C are there: out[i] the bits sym_range_params gives. hi_side[i] (if not null): the
// positive side set the scale (max·max_scale >= -min·min_scale); floored[i] (if not null): the
// 1e-5 floor replaced the fp16-rounded scale.
void sym_range_params_n(GroupQuant* out, int64_t n, const float* mn, const float* mx, int bits, const float* min_scale,
                        const float* max_scale, uint8_t* hi_side = nullptr, uint8_t* floored = nullptr);
void sym_range_params_n_ref(GroupQuant* out, int64_t n, const float* mn, const float* mx, int bits,
                            const float* min_scale, const float* max_scale, uint8_t* hi_side = nullptr,
                            uint8_t* floored = nullptr);

// codes[i] = clamp(round(w[i] / scale + v[i]) + zero, 0, 2^bits - 1), round half to even; v may be null.
void quantize_group_codes(uint8_t* codes, const float* w, const float* v, int64_t n, float scale, int zero, int bits);
void quantize_group_codes_ref(uint8_t* codes, const float* w, const float* v, int64_t n, float scale, int zero,
                              int bits);

// The dequantized group in one pass: out[i] = scale * (code_i - zero) with code_i as
// quantize_group_codes computes it (the fake-quantized weight W' of tuning, without the codes).
void group_fake_quant(float* out, const float* w, const float* v, int64_t n, float scale, int zero, int bits);
void group_fake_quant_ref(float* out, const float* w, const float* v, int64_t n, float scale, int zero, int bits);
// The same rounded to bf16 bits (f32_to_bf16 of each), written without an f32 copy: the W' a tuner
// hands to native bf16 products.
void group_fake_quant_bf16(uint16_t* out, const float* w, const float* v, int64_t n, float scale, int zero, int bits);
void group_fake_quant_bf16_ref(uint16_t* out, const float* w, const float* v, int64_t n, float scale, int zero,
                               int bits);

// Weighted squared rounding error of `count` (scale, zero) candidates on one group, evaluated in one
// pass over the weights (count <= kErrorBatch):
//   err[c] = sum_i imp[i] * (scale[c] * (q_ic - zero[c]) - w[i])^2,
//   q_ic = clamp(round(w[i] * (1/scale[c])) + zero[c], 0, qmax),
// imp may be null (all ones), zero[c] in [0, qmax]. The search multiplies by 1/scale where the codes
// divide (vdivps would bound the speed): the two differ only where w/scale is within an ulp of a
// rounding boundary, where rounding either way gives the same error to f32 precision. Sums in f32
// over 8 interleaved partial sums (element i into lane i % 8) added pairwise at the end, so the
// fast and the reference versions agree bit for bit.
constexpr int kErrorBatch = 8;
void group_errors(float* err, const float* w, const float* imp, int64_t n, const float* scales, const int* zeros,
                  int count, int qmax);
void group_errors_ref(float* err, const float* w, const float* imp, int64_t n, const float* scales,
                      const int* zeros, int count, int qmax);

// Candidate scales of a search: out[j] = the f32 value of round_scale_f16(num / den[j]), j < n.
void candidate_scales(float* out, float num, const float* den, int n);
void candidate_scales_ref(float* out, float num, const float* den, int n);

// One group's part of the fake quantizer's backward (quant/fake_quant_grad.h), element by element:
//   x = w/scale + v (v null: 0), t = round(x) + zero, q = clamp(t, qlo, qhi),
//   inside = qlo <= t <= qhi (strict: qlo < t < qhi), g_int = inside ? g*scale : 0 (= dL/d round).
// dv[i] += g_int when dv is given. When v_out is given, SignRound's signed step instead of keeping
// dL/dv: v_out[i] = v[i] - ((g_int > 0 ? lr : 0) - (g_int < 0 ? lr : 0)), the bits signed_step
// gives from a zeroed dv (v_out may be v: each element is read before it is written).
// codes, if given, receives q - qlo as bytes: the codes quantize_group_codes writes for these
// parameters when its zero is zero - qlo (a new best's codes taken in the same pass).
// Returns ds = Σ g*(q - zero) - g_int*w/(scale*scale) and dzp = Σ (inside ? 0 : -g*scale) in f32
// over 8 interleaved partial sums added pairwise (as group_errors), so both versions agree bit for bit.
struct GroupGradConsts {
  float scale, zero, qlo, qhi;
  bool strict;
};
struct GroupGradSums {
  float ds = 0, dzp = 0;
};
GroupGradSums group_grad(const float* g, const float* w, const float* v, int64_t n, const GroupGradConsts& k,
                         float* dv, float* v_out, float lr, uint8_t* codes = nullptr);
GroupGradSums group_grad_ref(const float* g, const float* w, const float* v, int64_t n, const GroupGradConsts& k,
                             float* dv, float* v_out, float lr, uint8_t* codes = nullptr);
// The same from dL/dW' given as bf16 bits (a tuning step's, DenseGrads::OverwriteBf16): the results
// of the f32 versions on its widened values.
GroupGradSums group_grad(const uint16_t* g, const float* w, const float* v, int64_t n, const GroupGradConsts& k,
                         float* dv, float* v_out, float lr, uint8_t* codes = nullptr);
GroupGradSums group_grad_ref(const uint16_t* g, const float* w, const float* v, int64_t n, const GroupGradConsts& k,
                             float* dv, float* v_out, float lr, uint8_t* codes = nullptr);

// True when the AVX2 (+F16C) paths are in use on this CPU (else the _ref versions run).
bool qdq_simd_available();

}  // namespace ar
