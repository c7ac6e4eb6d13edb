// Linear layer (HF nn.Linear layout: weight stored out×in) on top of gemm.
// Shapes: T tokens, K in_features, N out_features (see kernels/README.md).
#pragma once
#include <cstdint>

#include "core/precision.h"

namespace ar {

// A weight (out, in) as the products read it: f32, or bf16 bits when the products run in bf16 on a
// CPU with native bf16 (what they would round an f32 weight to anyway; a tuner makes W' that way
// once instead of having every product convert it). Exactly one of the two is set.
struct WeightView {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
  WeightView() = default;
  WeightView(const float* w) : f32(w) {}  // NOLINT: an f32 weight is the common case
  explicit WeightView(const uint16_t* w) : bf16(w) {}
  // The rows from element `elems` on (a fused weight's part).
  WeightView offset(int64_t elems) const {
    return f32 ? WeightView(f32 + elems) : WeightView(bf16 + elems);
  }
  explicit operator bool() const { return f32 || bf16; }
};

// y (T, N) overwritten = x (T, K) · w (N, K)^T (+ bias (N) if not null). All f32.
// With Precision::BF16, x and w are rounded to bf16 for the product; the bias is added in f32.
void linear_forward(float* y, const float* x, const float* w, const float* bias, int64_t T,
                    int64_t K, int64_t N, Precision p);

// Gradients of linear_forward. dx (T, K) overwritten = dy (T, N) · w (N, K) (skipped if null);
// dw (N, K) accumulated (+=) dyᵀ · x (skipped if null); dbias (N) accumulated Σ_t dy (skipped
// if null). dy (T, N), x (T, K), w (N, K) as in forward; p rounds GEMM inputs as in forward.
void linear_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                     const float* w, int64_t T, int64_t K, int64_t N, Precision p);

// Both with the weight as a WeightView (a bf16 one requires Precision::BF16).
void linear_forward(float* y, const float* x, WeightView w, const float* bias, int64_t T, int64_t K, int64_t N,
                    Precision p);
void linear_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x, WeightView w, int64_t T,
                     int64_t K, int64_t N, Precision p);
// dx (T, K) [+]= dy (T, N) · w (N, K): the input-gradient product alone.
void linear_input_grad(float* dx, const float* dy, WeightView w, int64_t T, int64_t K, int64_t N, bool accumulate,
                       Precision p);

}  // namespace ar
