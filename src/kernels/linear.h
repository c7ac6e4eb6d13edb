// Linear layer (HF nn.Linear layout: weight stored out×in) on top of gemm.
// Shapes: T tokens, K in_features, N out_features (see kernels/README.md).
#pragma once
#include <cstdint>

#include "core/precision.h"

namespace ar {

// y (T, N) overwritten = x (T, K) · w (N, K)^T (+ bias (N) if not null). All f32.
// With Precision::BF16, x and w are rounded to bf16 for the product; the bias is added in f32.
void linear_forward(float* y, const float* x, const float* w, const float* bias, int64_t T,
                    int64_t K, int64_t N, Precision p);

// Gradients of linear_forward. dx (T, K) overwritten = dy (T, N) · w (N, K) (skipped if null);
// dw (N, K) accumulated (+=) dyᵀ · x (skipped if null); dbias (N) accumulated Σ_t dy (skipped
// if null). dy (T, N), x (T, K), w (N, K) as in forward; p rounds GEMM inputs as in forward.
void linear_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                     const float* w, int64_t T, int64_t K, int64_t N, Precision p);

}  // namespace ar
