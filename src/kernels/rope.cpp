// RoPE forward/backward (HF apply_rotary_pos_emb with rotate_half) and its cos/sin tables.
// Backward applies the transposed rotation (angle -> -angle) to the incoming gradient.
#include "kernels/rope.h"

#include <cmath>

namespace ar {

void rope_tables(float* cos, float* sin, const float* inv_freq, int64_t pos0, int64_t T,
                 int64_t half_D) {
  for (int64_t t = 0; t < T; ++t) {
    const float pos = float(pos0 + t);
    for (int64_t j = 0; j < half_D; ++j) {
      const float angle = pos * inv_freq[j];  // f32 product, as HF
      cos[t * half_D + j] = float(std::cos(double(angle)));
      sin[t * half_D + j] = float(std::sin(double(angle)));
    }
  }
}

void rope_forward(float* x, const float* cos, const float* sin, int64_t T, int64_t H, int64_t D) {
  const int64_t half = D / 2;
#pragma omp parallel for if (T * H * D > (1 << 15))
  for (int64_t t = 0; t < T; ++t) {
    const float* c = cos + t * half;
    const float* s = sin + t * half;
    for (int64_t h = 0; h < H; ++h) {
      float* x1 = x + (t * H + h) * D;
      float* x2 = x1 + half;
      for (int64_t j = 0; j < half; ++j) {
        const float a = x1[j], b = x2[j];
        x1[j] = a * c[j] - b * s[j];
        x2[j] = b * c[j] + a * s[j];
      }
    }
  }
}

void rope_backward(float* dx, const float* cos, const float* sin, int64_t T, int64_t H, int64_t D) {
  const int64_t half = D / 2;
#pragma omp parallel for if (T * H * D > (1 << 15))
  for (int64_t t = 0; t < T; ++t) {
    const float* c = cos + t * half;
    const float* s = sin + t * half;
    for (int64_t h = 0; h < H; ++h) {
      float* g1 = dx + (t * H + h) * D;
      float* g2 = g1 + half;
      for (int64_t j = 0; j < half; ++j) {
        const float a = g1[j], b = g2[j];
        g1[j] = a * c[j] + b * s[j];
        g2[j] = b * c[j] - a * s[j];
      }
    }
  }
}

}  // namespace ar
