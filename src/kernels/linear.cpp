// Linear forward/backward as GEMM calls: y = x·Wᵀ + b, the nn.Linear convention.
// The bias is a separate f32 pass so the GEMM itself stays a plain (cached) primitive.
#include "kernels/linear.h"

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

}  // namespace ar
