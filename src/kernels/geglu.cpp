// GeGLU (tanh-approximate GELU) forward/backward, elementwise in f32 like swiglu.cpp. The tanh
// form 0.5·g·(1 + tanh(u)) equals g·sigmoid(2u) exactly; the sigmoid form needs one fast_exp and
// no cancellation, so negative gates keep their (tiny) values instead of rounding to 0.
#include "kernels/geglu.h"

#include <algorithm>
#include <bit>
#include <cstdint>

#include "kernels/fast_exp.h"

namespace ar {

namespace {

// Elements per parallel chunk: big enough to amortise the fork, small enough to balance.
constexpr int64_t kChunk = 1 << 14;

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

// sigmoid(2u(g)). For huge |g|, g³ overflows to ±inf and fast_exp(∓inf) gives 0 or inf, so the
// result is exactly 1 or 0 rather than NaN. (No clamp of g here: a min/max in the loop body
// makes GCC keep it scalar, the trap fast_exp's comment describes.)
inline float gelu_gate(float g) {
  const float two_u = 2.0f * kSqrt2OverPi * g * (1.0f + kCubic * g * g);
  return 1.0f / (1.0f + fast_exp(-two_u));
}

// |g| past which sigmoid(2u) is exactly 0 or 1 in f32 (2u > 112 already at |g| = 11, where
// fast_exp gives 0 or inf), so the derivative's second term is exactly 0.
constexpr float kFlat = 20.0f;

// x where keep, +0 elsewhere: a bit mask rather than a select, for the reason given in fast_exp.
inline float keep_if(float x, bool keep) {
  return std::bit_cast<float>(std::bit_cast<uint32_t>(x) & (0u - uint32_t(keep)));
}

void geglu_chunk(float* out, const float* gate, const float* up, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g * gelu_gate(g) * up[i];
  }
}

void geglu_backward_chunk(float* dgate, float* dup, const float* dout, const float* gate,
                          const float* up, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], u = up[i], d = dout[i];
    const float s = gelu_gate(g);
    // d/dg [g·sigmoid(2u)] = s + g·s·(1 − s)·2u'. The second term is masked to 0 where it is 0
    // anyway (|g| >= kFlat), because for |g| > ~1.8e19 it would be 0·inf = NaN.
    const float du_dg = kSqrt2OverPi * (1.0f + 3.0f * kCubic * g * g);
    const float abs_g = std::bit_cast<float>(std::bit_cast<uint32_t>(g) & 0x7fffffffu);
    const float grad = s + keep_if(g * s * (1.0f - s) * 2.0f * du_dg, abs_g < kFlat);
    dup[i] = d * g * s;
    dgate[i] = d * u * grad;
  }
}

}  // namespace

void geglu_tanh_forward(float* out, const float* gate, const float* up, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk;
    geglu_chunk(out + i0, gate + i0, up + i0, std::min(kChunk, n - i0));
  }
}

void geglu_tanh_backward(float* dgate, float* dup, const float* dout, const float* gate,
                         const float* up, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk;
    geglu_backward_chunk(dgate + i0, dup + i0, dout + i0, gate + i0, up + i0,
                         std::min(kChunk, n - i0));
  }
}

}  // namespace ar
