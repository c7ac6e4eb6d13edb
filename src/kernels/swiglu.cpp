// SwiGLU forward/backward, elementwise in f32 (HF computes act_fn(gate) * up in the model dtype;
// we keep f32 throughout and leave bf16 rounding to the GEMMs on either side).
#include "kernels/swiglu.h"

#include <algorithm>

#include "core/vector_clones.h"
#include "kernels/fast_exp.h"

namespace ar {

// The chunks, compiled per vector width (core/vector_clones.h; elementwise: the same bits in each).
AR_VECTOR_CLONES void swiglu_chunk(float* out, const float* gate, const float* up, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    // g / (1 + exp(-g)) is safe at both ends: exp(-g) -> inf gives -0, -> 0 gives g.
    out[i] = g / (1.0f + fast_exp(-g)) * up[i];
  }
}

AR_VECTOR_CLONES void swiglu_backward_chunk(float* dgate, float* dup, const float* dout, const float* gate,
                           const float* up, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], u = up[i], d = dout[i];
    const float s = 1.0f / (1.0f + fast_exp(-g));
    dup[i] = d * g * s;
    dgate[i] = d * u * s * (1.0f + g * (1.0f - s));
  }
}

namespace {

// Elements per parallel chunk: big enough to amortise the fork, small enough to balance.
constexpr int64_t kChunk = 1 << 14;

}  // namespace

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk;
    swiglu_chunk(out + i0, gate + i0, up + i0, std::min(kChunk, n - i0));
  }
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk;
    swiglu_backward_chunk(dgate + i0, dup + i0, dout + i0, gate + i0, up + i0,
                          std::min(kChunk, n - i0));
  }
}

}  // namespace ar
