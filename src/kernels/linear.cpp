// Linear forward/backward as GEMM calls: y = x·Wᵀ + b, the nn.Linear convention.
// The bias is a separate f32 pass so the GEMM itself stays a plain (cached) primitive.
#include "kernels/linear.h"

#include "core/error.h"
#include "kernels/gemm.h"

namespace ar {
namespace {

// y (T, N) += bias (N) on every row; nothing when bias is null.
void add_bias(float* y, const float* bias, int64_t T, int64_t N) {
  if (!bias) return;
#pragma omp parallel for if (T * N > (1 << 16))
  for (int64_t t = 0; t < T; ++t) {
    float* row = y + t * N;
    for (int64_t n = 0; n < N; ++n) row[n] += bias[n];
  }
}

}  // namespace

void linear_forward(float* y, const float* x, const float* w, const float* bias, int64_t T,
                    int64_t K, int64_t N, Precision p) {
  gemm(y, x, w, T, N, K, /*trans_a=*/false, /*trans_b=*/true, /*accumulate=*/false, p);
  add_bias(y, bias, T, N);
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

void linear_forward(float* y, const float* x, WeightView w, const float* bias, int64_t T, int64_t K, int64_t N,
                    Precision p) {
  if (w.f32) return linear_forward(y, x, w.f32, bias, T, K, N, p);
  AR_CHECK(w.bf16 && p == Precision::BF16, "linear_forward: a bf16 weight needs BF16 products");
  gemm_b16(y, x, w.bf16, T, N, K, /*trans_a=*/false, /*trans_b=*/true, /*accumulate=*/false);
  add_bias(y, bias, T, N);
}

void linear_input_grad(float* dx, const float* dy, WeightView w, int64_t T, int64_t K, int64_t N, bool accumulate,
                       Precision p) {
  if (w.f32) return gemm(dx, dy, w.f32, T, K, N, false, false, accumulate, p);
  AR_CHECK(w.bf16 && p == Precision::BF16, "linear_input_grad: a bf16 weight needs BF16 products");
  gemm_b16(dx, dy, w.bf16, T, K, N, false, false, accumulate);
}

void linear_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x, WeightView w, int64_t T,
                     int64_t K, int64_t N, Precision p) {
  if (w.f32 || !dx) return linear_backward(dx, dw, dbias, dy, x, w.f32, T, K, N, p);
  linear_input_grad(dx, dy, w, T, K, N, false, p);
  linear_backward(nullptr, dw, dbias, dy, x, nullptr, T, K, N, p);
}

}  // namespace ar
