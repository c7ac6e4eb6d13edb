// RMSNorm over the last axis, as HF LlamaRMSNorm computed in fp32:
// y = x * rsqrt(mean(x^2) + eps) * w (eps inside the square root; w multiplies after normalising).
#pragma once
#include <cstdint>

namespace ar {

// out (rows, C) f32, overwritten; rstd (rows) f32 = 1/sqrt(mean(x^2)+eps), saved for backward
// (may be nullptr in forward-only use); x (rows, C); w (C). rows = B*T, or T*H for per-head
// q_norm/k_norm (Qwen3), where C = D. out may alias x (each row is read before it is written).
void rms_norm_forward(float* out, float* rstd, const float* x, const float* w, int64_t rows,
                      int64_t C, float eps);

// The same with the output as bf16 bits (the f32 result rounded), for a normed input that only
// feeds bf16 products. out16 must not overlap x.
void rms_norm_forward_bf16(uint16_t* out16, float* rstd, const float* x, const float* w, int64_t rows, int64_t C,
                           float eps);

// Gradients of rms_norm_forward. dx (rows, C) overwritten; dw (C) accumulated (+=), skipped if
// null (norm weights are frozen while tuning); dout (rows, C); x, w, rstd as given to / saved
// by forward. dx may alias dout.
void rms_norm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                       const float* rstd, int64_t rows, int64_t C);

// Reference: same contract, everything in double, rounded to f32 at the end.
void rms_norm_ref(float* out, float* rstd, const float* x, const float* w, int64_t rows,
                  int64_t C, float eps);

}  // namespace ar
