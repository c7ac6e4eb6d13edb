// RMSNorm forward/backward (HF LlamaRMSNorm, fp32 compute) and a double-precision reference.
// The sum of squares is accumulated in double: C is a few thousand, the cost is negligible, and
// the result then no longer depends on summation order.
#include "kernels/rms_norm.h"

#include <cmath>

namespace ar {

void rms_norm_forward(float* out, float* rstd, const float* x, const float* w, int64_t rows,
                      int64_t C, float eps) {
#pragma omp parallel for if (rows * C > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    double ss = 0.0;
    for (int64_t c = 0; c < C; ++c) ss += double(xr[c]) * double(xr[c]);
    // mean and rsqrt in f32 as HF does (variance is an f32 tensor there).
    const float var = float(ss / double(C));
    const float rs = 1.0f / std::sqrt(var + eps);
    if (rstd) rstd[r] = rs;
    float* yr = out + r * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] * rs) * w[c];
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
