// Linear layer (HF nn.Linear layout: weight stored out×in) on top of gemm.
// Shapes: T tokens, K in_features, N out_features (see kernels/README.md).
#pragma once
#include <cstdint>

#include "core/precision.h"
#include "kernels/gemm.h"

namespace ar {

// A weight (out, in) as the products read it: f32, or bf16 bits when the products run in bf16 on a
// CPU with native bf16 (what they would round an f32 weight to anyway; a tuner makes W' that way
// once instead of having every product convert it).
using WeightView = MatrixView;

// y (T, N) overwritten = x (T, K) · w (N, K)^T (+ bias (N) if not null). All f32.
// With Precision::BF16, x and w are rounded to bf16 for the product; the bias is added in f32.
void linear_forward(float* y, const float* x, const float* w, const float* bias, int64_t T,
                    int64_t K, int64_t N, Precision p);

// Gradients of linear_forward. dx (T, K) overwritten = dy (T, N) · w (N, K) (skipped if null);
// dw (N, K) accumulated (+=) dyᵀ · x, or overwritten with dw_accumulate false (skipped if null);
// dbias (N) accumulated Σ_t dy (skipped if null). dy (T, N), x (T, K), w (N, K) as in forward; p
// rounds GEMM inputs as in forward.
void linear_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                     const float* w, int64_t T, int64_t K, int64_t N, Precision p, bool dw_accumulate = true);

// All three with the input (x, or dy) and the weight as views: a bf16 one requires Precision::BF16
// (an activation its producer wrote as bf16 for the products that read it). dbias needs an f32 dy.
void linear_forward(float* y, MatrixView x, WeightView w, const float* bias, int64_t T, int64_t K, int64_t N,
                    Precision p);
void linear_backward(float* dx, float* dw, float* dbias, MatrixView dy, MatrixView x, WeightView w, int64_t T,
                     int64_t K, int64_t N, Precision p, bool dw_accumulate = true);
// dx (T, K) [+]= dy (T, N) · w (N, K): the input-gradient product alone.
void linear_input_grad(float* dx, MatrixView dy, WeightView w, int64_t T, int64_t K, int64_t N, bool accumulate,
                       Precision p);
// dw (N, K) overwritten = dyᵀ · x as bf16 bits, each element its f32 sum rounded once
// (gemm_view_bf16_out): the weight-gradient product alone, for a reader that needs no more (a
// tuning step's signed updates). Only with native_bf16_products(p).
void linear_weight_grad_bf16_out(uint16_t* dw, MatrixView dy, MatrixView x, int64_t T, int64_t K, int64_t N,
                                 Precision p);

}  // namespace ar
