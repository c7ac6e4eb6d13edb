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

// AVX2 and baseline clones only: AVX2 without FMA keeps a·c − b·s two roundings, as the scalar
// code has them, so the vector loop gives the same bits (GCC's AVX-512 clone would contract them
// into fused multiply-adds).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AR_ROPE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define AR_ROPE_CLONES
#endif

// Rotates each (x1[j], x2[j]) pair of the H heads of one token by the angle whose cosine/sine
// are c[j], sin_sign*s[j]: +1 is RoPE itself; -1 is the inverse rotation, i.e. the transpose of
// RoPE, which is its backward.
AR_ROPE_CLONES void rope_rotate_token(float* x, const float* c, const float* s, float sin_sign, int64_t H,
                                      int64_t D) {
  const int64_t half = D / 2;
  for (int64_t h = 0; h < H; ++h) {
    float* __restrict x1 = x + h * D;
    float* __restrict x2 = x1 + half;
#pragma omp simd
    for (int64_t j = 0; j < half; ++j) {
      const float a = x1[j], b = x2[j], sj = sin_sign * s[j];
      x1[j] = a * c[j] - b * sj;
      x2[j] = b * c[j] + a * sj;
    }
  }
}

namespace {
void rotate_pairs(float* x, const float* cos, const float* sin, float sin_sign, int64_t T, int64_t H,
                  int64_t D) {
  const int64_t half = D / 2;
#pragma omp parallel for if (T * H * D > (1 << 15))
  for (int64_t t = 0; t < T; ++t) rope_rotate_token(x + t * H * D, cos + t * half, sin + t * half, sin_sign, H, D);
}
}  // namespace

void rope_forward(float* x, const float* cos, const float* sin, int64_t T, int64_t H, int64_t D) {
  rotate_pairs(x, cos, sin, 1.0f, T, H, D);
}

void rope_backward(float* dx, const float* cos, const float* sin, int64_t T, int64_t H, int64_t D) {
  rotate_pairs(dx, cos, sin, -1.0f, T, H, D);
}

}  // namespace ar
