// RMSNorm forward/backward (HF LlamaRMSNorm, fp32 compute) and a double-precision reference.
// The sums are accumulated in double: C is a few thousand, and the f32 results then hardly depend
// on the summation order.
#include "kernels/rms_norm.h"

#include "core/dtype.h"
#include "core/vector_clones.h"

#include <algorithm>
#include <cmath>

namespace ar {

// One row's pieces, compiled per vector width (core/vector_clones.h). The sums run in double in
// the width's order: a different width can change the last bit of an f32 result, rarely (the
// tuning bench's loss after 8 steps moved in its 3rd digit when this replaced scalar loops).

// 1/sqrt(mean(x²) + eps): the sum in double, mean and rsqrt in f32 as HF does (variance is an f32
// tensor there).
AR_VECTOR_CLONES float rms_norm_row_rstd(const float* xr, int64_t C, float eps) {
  double ss = 0.0;
#pragma omp simd reduction(+ : ss)
  for (int64_t c = 0; c < C; ++c) ss += double(xr[c]) * double(xr[c]);
  const float var = float(ss / double(C));
  return 1.0f / std::sqrt(var + eps);
}

AR_VECTOR_CLONES void rms_norm_row_scale(float* yr, const float* xr, const float* w, float rs, int64_t C) {
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] * rs) * w[c];
}

AR_VECTOR_CLONES void rms_norm_row_scale_bf16(uint16_t* yr, const float* xr, const float* w, float rs, int64_t C) {
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) yr[c] = f32_to_bf16((xr[c] * rs) * w[c]);
}

// dx of one row (see rms_norm_backward); d may be g.
AR_VECTOR_CLONES void rms_norm_row_backward(float* d, const float* g, const float* xr, const float* w, float rs,
                                            int64_t C) {
  double dot = 0.0;
#pragma omp simd reduction(+ : dot)
  for (int64_t c = 0; c < C; ++c) dot += double(g[c]) * w[c] * xr[c];
  const float coef = float(dot / double(C)) * rs * rs;
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) d[c] = rs * (w[c] * g[c] - xr[c] * coef);
}

void rms_norm_forward(float* out, float* rstd, const float* x, const float* w, int64_t rows,
                      int64_t C, float eps) {
#pragma omp parallel for if (rows * C > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float rs = rms_norm_row_rstd(x + r * C, C, eps);
    if (rstd) rstd[r] = rs;
    rms_norm_row_scale(out + r * C, x + r * C, w, rs, C);
  }
}

void rms_norm_forward_bf16(uint16_t* out16, float* rstd, const float* x, const float* w, int64_t rows, int64_t C,
                           float eps) {
#pragma omp parallel for if (rows * C > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float rs = rms_norm_row_rstd(x + r * C, C, eps);
    if (rstd) rstd[r] = rs;
    rms_norm_row_scale_bf16(out16 + r * C, x + r * C, w, rs, C);
  }
}

// y_c = x_c·r·w_c with r = (Σx²/C + eps)^-1/2, dr/dx_c = −r³·x_c/C, so
// dx_c = r·(w_c·g_c − x_c·r²·Σ_k g_k·w_k·x_k / C).
void rms_norm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                       const float* rstd, int64_t rows, int64_t C) {
  if (dw) {
    // Column sums over rows, rows in order, so the result is the same for any thread count;
    // columns go in chunks so each thread streams along rows. Runs before the dx loop because
    // dx may overwrite dout.
    constexpr int64_t kCols = 64;
    const int64_t chunks = (C + kCols - 1) / kCols;
#pragma omp parallel for if (rows * C > (1 << 15))
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t c0 = ch * kCols, c1 = std::min(C, c0 + kCols);
      double acc[kCols] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const float* g = dout + r * C;
        const float* xr = x + r * C;
        const double rs = rstd[r];
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += double(g[c]) * double(xr[c]) * rs;
      }
      for (int64_t c = c0; c < c1; ++c) dw[c] += float(acc[c - c0]);
    }
  }
#pragma omp parallel for if (rows * C > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) rms_norm_row_backward(dx + r * C, dout + r * C, x + r * C, w, rstd[r], C);
}

void rms_norm_ref(float* out, float* rstd, const float* x, const float* w, int64_t rows,
                  int64_t C, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    double ss = 0.0;
    for (int64_t c = 0; c < C; ++c) ss += double(xr[c]) * double(xr[c]);
    const double rs = 1.0 / std::sqrt(ss / double(C) + double(eps));
    if (rstd) rstd[r] = float(rs);
    for (int64_t c = 0; c < C; ++c) out[r * C + c] = float(double(xr[c]) * rs * double(w[c]));
  }
}

}  // namespace ar
