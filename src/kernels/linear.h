// Linear layer (HF nn.Linear layout: weight stored out×in) on top of gemm.
// Shapes: T tokens, K in_features, N out_features (see kernels/README.md).
#pragma once
#include <cstdint>

#include "kernels/gemm.h"

namespace ar {

// y (T, N) overwritten = x (T, K) · w (N, K)^T (+ bias (N) if not null). All f32.
// With Precision::BF16, x and w are rounded to bf16 for the product; the bias is added in f32.
void linear_forward(float* y, const float* x, const float* w, const float* bias, int64_t T,
                    int64_t K, int64_t N, Precision p);

}  // namespace ar
