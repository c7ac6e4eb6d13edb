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

namespace {
// Rotates each (x1[j], x2[j]) pair of every head by the angle whose cosine/sine are c[j], sin_sign*s[j]:
// +1 is RoPE itself; -1 is the inverse rotation, i.e. the transpose of RoPE, which is its backward.
void rotate_pairs(float* x, const float* cos, const float* sin, float sin_sign, int64_t T, int64_t H,
                  int64_t D) {
  const int64_t half = D / 2;
#pragma omp parallel for if (T * H * D > (1 << 15))
  for (int64_t t = 0; t < T; ++t) {
    const float* c = cos + t * half;
    const float* s = sin + t * half;
    for (int64_t h = 0; h < H; ++h) {
      float* x1 = x + (t * H + h) * D;
      float* x2 = x1 + half;
      for (int64_t j = 0; j < half; ++j) {
        const float a = x1[j], b = x2[j], sj = sin_sign * s[j];
        x1[j] = a * c[j] - b * sj;
        x2[j] = b * c[j] + a * sj;
      }
    }
  }
}
}  // namespace

void rope_forward(float* x, const float* cos, const float* sin, int64_t T, int64_t H, int64_t D) {
  rotate_pairs(x, cos, sin, 1.0f, T, H, D);
}

void rope_backward(float* dx, const float* cos, const float* sin, int64_t T, int64_t H, int64_t D) {
  rotate_pairs(dx, cos, sin, -1.0f, T, H, D);
}

}  // namespace ar
