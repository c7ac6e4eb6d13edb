// Linear forward/backward as GEMM calls: y = x·Wᵀ + b, the nn.Linear convention.
// The bias is a separate f32 pass so the GEMM itself stays a plain (cached) primitive.
#include "kernels/linear.h"

#include "kernels/gemm.h"

namespace ar {

void linear_forward(float* y, const float* x, const float* w, const float* bias, int64_t T,
                    int64_t K, int64_t N, Precision p) {
  gemm(y, x, w, T, N, K, /*trans_a=*/false, /*trans_b=*/true, /*accumulate=*/false, p);
  if (!bias) return;
#pragma omp parallel for if (T * N > (1 << 16))
  for (int64_t t = 0; t < T; ++t) {
    float* row = y + t * N;
    for (int64_t n = 0; n < N; ++n) row[n] += bias[n];
  }
}

void linear_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                     const float* w, int64_t T, int64_t K, int64_t N, Precision p) {
  if (dx) gemm(dx, dy, w, T, K, N, false, false, false, p);
  if (dw) gemm(dw, dy, x, N, K, T, /*trans_a=*/true, false, /*accumulate=*/true, p);
  if (!dbias) return;
  // Column sums in a fixed order (rows outer) so the result is the same for any thread count.
#pragma omp parallel for if (T * N > (1 << 16))
  for (int64_t n = 0; n < N; ++n) {
    double s = 0.0;
    for (int64_t t = 0; t < T; ++t) s += dy[t * N + n];
    dbias[n] += float(s);
  }
}

}  // namespace ar
