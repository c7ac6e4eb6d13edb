// RMSNorm forward/backward (HF LlamaRMSNorm, fp32 compute) and a double-precision reference.
// The sum of squares is accumulated in double: C is a few thousand, the cost is negligible, and
// the result then no longer depends on summation order.
#include "kernels/rms_norm.h"

#include "core/dtype.h"

#include <algorithm>
#include <cmath>

namespace ar {

namespace {

// 1/sqrt(mean(x²) + eps) of one row: the sum in double, mean and rsqrt in f32 as HF does (variance
// is an f32 tensor there).
float row_rstd(const float* xr, int64_t C, float eps) {
  double ss = 0.0;
  for (int64_t c = 0; c < C; ++c) ss += double(xr[c]) * double(xr[c]);
  const float var = float(ss / double(C));
  return 1.0f / std::sqrt(var + eps);
}

}  // namespace

void rms_norm_forward(float* out, float* rstd, const float* x, const float* w, int64_t rows,
                      int64_t C, float eps) {
#pragma omp parallel for if (rows * C > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    const float rs = row_rstd(xr, C, eps);
    if (rstd) rstd[r] = rs;
    float* yr = out + r * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] * rs) * w[c];
  }
}

void rms_norm_forward_bf16(uint16_t* out16, float* rstd, const float* x, const float* w, int64_t rows, int64_t C,
                           float eps) {
#pragma omp parallel for if (rows * C > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    const float rs = row_rstd(xr, C, eps);
    if (rstd) rstd[r] = rs;
    uint16_t* yr = out16 + r * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = f32_to_bf16((xr[c] * rs) * w[c]);
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
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = dout + r * C;
    const float* xr = x + r * C;
    const float rs = rstd[r];
    double dot = 0.0;
    for (int64_t c = 0; c < C; ++c) dot += double(g[c]) * w[c] * xr[c];
    const float coef = float(dot / double(C)) * rs * rs;
    float* d = dx + r * C;
    for (int64_t c = 0; c < C; ++c) d[c] = rs * (w[c] * g[c] - xr[c] * coef);
  }
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
