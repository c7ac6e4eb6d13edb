// Tests for kernels/linear: y = x·Wᵀ + b and its gradients against loops written here in
// double, F32 and BF16 (the layer is linear, so exact sums are the finite-difference limit).
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

void check_backward(int64_t T, int64_t K, int64_t N, Precision p, uint32_t seed) {
  auto x = random_vec(size_t(T * K), seed), w = random_vec(size_t(N * K), seed + 1);
  auto dy = random_vec(size_t(T * N), seed + 2);
  auto dw0 = random_vec(size_t(N * K), seed + 3), db0 = random_vec(size_t(N), seed + 4);
  std::vector<float> dx(size_t(T * K), 99.0f), dw = dw0, db = db0;
  linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), T, K, N, p);
  auto in = [p](float v) {
    return p == Precision::BF16 ? double(bf16_to_f32(f32_to_bf16(v))) : double(v);
  };
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < K; ++k) {  // dx = dy · W, overwritten
      double s = 0, sa = 0;
      for (int64_t n = 0; n < N; ++n) {
        s += in(dy[t * N + n]) * in(w[n * K + k]);
        sa += std::fabs(in(dy[t * N + n]) * in(w[n * K + k]));
      }
      ASSERT_NEAR(dx[t * K + k], s, kRel * (sa + 1.0)) << "dx " << T << "," << K << "," << N;
    }
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) {  // dW += dyᵀ · x
      double s = dw0[n * K + k], sa = std::fabs(dw0[n * K + k]);
      for (int64_t t = 0; t < T; ++t) {
        s += in(dy[t * N + n]) * in(x[t * K + k]);
        sa += std::fabs(in(dy[t * N + n]) * in(x[t * K + k]));
      }
      ASSERT_NEAR(dw[n * K + k], s, kRel * (sa + 1.0)) << "dw " << T << "," << K << "," << N;
    }
    double s = db0[n];  // dbias += Σ_t dy, in f32 from a double sum
    for (int64_t t = 0; t < T; ++t) s += dy[t * N + n];
    ASSERT_NEAR(db[n], s, 1e-6 * (std::fabs(s) + T)) << "db " << n;
  }
}

TEST(Linear, BackwardF32OddSizes) {
  uint32_t seed = 900;
  for (int64_t T : {1, 3, 17, 33})
    for (int64_t K : {1, 17, 129})
      for (int64_t N : {3, 33}) check_backward(T, K, N, Precision::F32, seed += 5);
}

TEST(Linear, BackwardBf16) {
  uint32_t seed = 1900;
  for (int64_t T : {1, 17})
    for (int64_t K : {3, 129})
      for (int64_t N : {1, 33}) check_backward(T, K, N, Precision::BF16, seed += 5);
}

TEST(Linear, BackwardSkipsNullOutputs) {
  const int64_t T = 3, K = 5, N = 4;
  auto x = random_vec(size_t(T * K), 1), w = random_vec(size_t(N * K), 2), dy = random_vec(size_t(T * N), 3);
  std::vector<float> dx(size_t(T * K)), dx2(size_t(T * K)), dw(size_t(N * K), 0.0f);
  linear_backward(dx.data(), nullptr, nullptr, dy.data(), x.data(), w.data(), T, K, N, Precision::F32);
  linear_backward(dx2.data(), dw.data(), nullptr, dy.data(), x.data(), w.data(), T, K, N, Precision::F32);
  for (size_t i = 0; i < dx.size(); ++i) ASSERT_EQ(dx[i], dx2[i]);
  std::vector<float> dw2(size_t(N * K), 0.0f);
  linear_backward(nullptr, dw2.data(), nullptr, dy.data(), x.data(), w.data(), T, K, N, Precision::F32);
  for (size_t i = 0; i < dw.size(); ++i) ASSERT_EQ(dw[i], dw2[i]);
}

}  // namespace
}  // namespace ar
