// Tests for kernels/linear: y = x·Wᵀ + b against loops written here in double, F32 and BF16.
#include "kernels/linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"

namespace ar {
namespace {

// fp32 accumulation over K ≤ 129 terms: ≤ K·2^-24·Σ|x·w| ≈ 7.7e-6·Σ|x·w|.
constexpr double kRel = 1e-5;

std::vector<float> random_vec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

void check(int64_t T, int64_t K, int64_t N, bool with_bias, Precision p, uint32_t seed) {
  auto x = random_vec(size_t(T * K), seed), w = random_vec(size_t(N * K), seed + 1);
  auto b = random_vec(size_t(N), seed + 2);
  std::vector<float> y(size_t(T * N), 123.0f);  // overwritten, never read
  linear_forward(y.data(), x.data(), w.data(), with_bias ? b.data() : nullptr, T, K, N, p);
  auto in = [p](float v) {
    return p == Precision::BF16 ? double(bf16_to_f32(f32_to_bf16(v))) : double(v);
  };
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0, sa = 0;
      for (int64_t k = 0; k < K; ++k) {
        s += in(x[t * K + k]) * in(w[n * K + k]);
        sa += std::fabs(in(x[t * K + k]) * in(w[n * K + k]));
      }
      if (with_bias) s += b[n];
      ASSERT_NEAR(y[t * N + n], s, kRel * (sa + 1.0)) << T << "," << K << "," << N;
    }
}

TEST(Linear, ForwardF32OddSizes) {
  uint32_t seed = 1;
  for (int64_t T : {1, 3, 17, 33})
    for (int64_t K : {1, 17, 129})
      for (int64_t N : {3, 33}) {
        check(T, K, N, true, Precision::F32, seed += 3);
        check(T, K, N, false, Precision::F32, seed += 3);
      }
}

TEST(Linear, ForwardBf16) {
  uint32_t seed = 500;
  for (int64_t T : {1, 17})
    for (int64_t K : {3, 129})
      for (int64_t N : {1, 33}) check(T, K, N, true, Precision::BF16, seed += 3);
}

}  // namespace
}  // namespace ar
