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
  linear_forward(y, MatrixView(x), WeightView(w), bias, T, K, N, p);
}

void linear_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                     const float* w, int64_t T, int64_t K, int64_t N, Precision p, bool dw_accumulate) {
  linear_backward(dx, dw, dbias, MatrixView(dy), MatrixView(x), WeightView(w), T, K, N, p, dw_accumulate);
}

void linear_forward(float* y, MatrixView x, WeightView w, const float* bias, int64_t T, int64_t K, int64_t N,
                    Precision p) {
  gemm_view(y, x, w, T, N, K, /*trans_a=*/false, /*trans_b=*/true, /*accumulate=*/false, p);
  add_bias(y, bias, T, N);
}

void linear_input_grad(float* dx, MatrixView dy, WeightView w, int64_t T, int64_t K, int64_t N, bool accumulate,
                       Precision p) {
  gemm_view(dx, dy, w, T, K, N, false, false, accumulate, p);
}

void linear_weight_grad_bf16_out(uint16_t* dw, MatrixView dy, MatrixView x, int64_t T, int64_t K, int64_t N,
                                 Precision p) {
  gemm_view_bf16_out(dw, dy, x, N, K, T, /*trans_a=*/true, false, p);  // the same product as linear_backward's
}

void linear_backward(float* dx, float* dw, float* dbias, MatrixView dy, MatrixView x, WeightView w, int64_t T,
                     int64_t K, int64_t N, Precision p, bool dw_accumulate) {
  if (dx) linear_input_grad(dx, dy, w, T, K, N, /*accumulate=*/false, p);
  if (dw) gemm_view(dw, dy, x, N, K, T, /*trans_a=*/true, false, dw_accumulate, p);
  if (!dbias) return;
  AR_CHECK(dy.f32, "linear_backward: the bias gradient needs an f32 dy");
  const float* g = dy.f32;
  // Column sums in a fixed order (rows outer) so the result is the same for any thread count.
#pragma omp parallel for if (T * N > (1 << 16))
  for (int64_t n = 0; n < N; ++n) {
    double s = 0.0;
    for (int64_t t = 0; t < T; ++t) s += g[t * N + n];
    dbias[n] += float(s);
  }
}

}  // namespace ar
