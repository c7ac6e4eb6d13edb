// Tests for kernels/rope: tables against hand values, the rotate_half pairing on a hand case,
// rope_forward against a double-precision rotation written here, and rope_backward as the
// adjoint of forward (RoPE is linear in x, so <rope(x), y> = <x, rope_backward(y)>).
#include "kernels/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace ar {
namespace {

// cos/sin are rounded from double: within half an f32 ulp of the true value (|value| <= 1).
constexpr double kTableAbs = 6e-8;
// One rotation: two f32 products and a sum on O(1) values, a few ulps.
constexpr double kRotAbs = 1e-6;

TEST(Rope, TablesHandValues) {
  const float inv_freq[] = {1.0f, 0.5f};
  float c[4], s[4];
  rope_tables(c, s, inv_freq, /*pos0=*/2, /*T=*/2, /*half_D=*/2);
  // positions 2 and 3; angles 2, 1, 3, 1.5
  const double angles[] = {2.0, 1.0, 3.0, 1.5};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(c[i], std::cos(angles[i]), kTableAbs) << i;
    EXPECT_NEAR(s[i], std::sin(angles[i]), kTableAbs) << i;
  }
}

TEST(Rope, PairsFirstAndSecondHalf) {
  // D = 4: pairs (0,2) and (1,3). Angle pi/2 on pair 0 maps (1, 0) -> (0, 1); angle 0 on pair 1
  // leaves it alone.
  float x[] = {1.0f, 5.0f, 0.0f, 7.0f};
  const float c[] = {0.0f, 1.0f}, s[] = {1.0f, 0.0f};
  rope_forward(x, c, s, 1, 1, 4);
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_EQ(x[2], 1.0f);
  EXPECT_EQ(x[1], 5.0f);
  EXPECT_EQ(x[3], 7.0f);
}

TEST(Rope, MatchesDoubleRotation) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t T : {1, 3, 17})
    for (int64_t H : {1, 3})
      for (int64_t D : {2, 34, 128}) {
        const int64_t half = D / 2;
        std::vector<float> inv_freq(static_cast<size_t>(half));
        for (int64_t j = 0; j < half; ++j) inv_freq[j] = float(std::pow(10000.0, -2.0 * j / D));
        std::vector<float> c(size_t(T * half)), s(size_t(T * half)), x(size_t(T * H * D));
        rope_tables(c.data(), s.data(), inv_freq.data(), 5, T, half);
        for (float& v : x) v = dist(rng);
        auto y = x;
        rope_forward(y.data(), c.data(), s.data(), T, H, D);
        for (int64_t t = 0; t < T; ++t)
          for (int64_t h = 0; h < H; ++h)
            for (int64_t j = 0; j < half; ++j) {
              const double ang = double(float(5 + t) * inv_freq[j]);
              const double a = x[(t * H + h) * D + j], b = x[(t * H + h) * D + j + half];
              const double e1 = a * std::cos(ang) - b * std::sin(ang);
              const double e2 = b * std::cos(ang) + a * std::sin(ang);
              ASSERT_NEAR(y[(t * H + h) * D + j], e1, kRotAbs);
              ASSERT_NEAR(y[(t * H + h) * D + j + half], e2, kRotAbs);
            }
      }
}

TEST(Rope, BackwardHandCase) {
  // Gradient through a pi/2 rotation of pair (0, 2): y0 = -x2, y2 = x0, so dx0 = dy2, dx2 = -dy0.
  float g[] = {3.0f, 5.0f, 4.0f, 7.0f};
  const float c[] = {0.0f, 1.0f}, s[] = {1.0f, 0.0f};
  rope_backward(g, c, s, 1, 1, 4);
  EXPECT_EQ(g[0], 4.0f);
  EXPECT_EQ(g[2], -3.0f);
  EXPECT_EQ(g[1], 5.0f);
  EXPECT_EQ(g[3], 7.0f);
}

TEST(Rope, BackwardIsAdjointOfForward) {
  // Inner products of O(1) values over T*H*D <= 17*3*128 terms, f32 rotations: ~1e-6 relative.
  constexpr double kAdjointRel = 1e-5;
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t T : {1, 3, 17})
    for (int64_t H : {1, 3})
      for (int64_t D : {2, 34, 128}) {
        const int64_t half = D / 2;
        std::vector<float> inv_freq(static_cast<size_t>(half));
        for (int64_t j = 0; j < half; ++j) inv_freq[j] = float(std::pow(10000.0, -2.0 * j / D));
        std::vector<float> c(size_t(T * half)), s(size_t(T * half)), x(size_t(T * H * D));
        std::vector<float> y(x.size());
        rope_tables(c.data(), s.data(), inv_freq.data(), 11, T, half);
        for (float& v : x) v = dist(rng);
        for (float& v : y) v = dist(rng);
        auto rx = x, by = y;
        rope_forward(rx.data(), c.data(), s.data(), T, H, D);
        rope_backward(by.data(), c.data(), s.data(), T, H, D);
        double lhs = 0, rhs = 0, mag = 0;
        for (size_t i = 0; i < x.size(); ++i) {
          lhs += double(rx[i]) * y[i];
          rhs += double(x[i]) * by[i];
          mag += std::fabs(double(x[i]) * y[i]);
        }
        ASSERT_NEAR(lhs, rhs, kAdjointRel * mag) << T << "," << H << "," << D;
      }
}

// The vector loop gives the bits of the plain one, products rounded before the sum (no fused
// multiply-add), forward and backward, over enough tokens to run in parallel.
TEST(Rope, VectorLoopGivesThePlainLoopsBits) {
  const int64_t T = 64, H = 3, D = 128, half = D / 2;
  std::vector<float> cos(T * half), sin(T * half), x(T * H * D);
  for (size_t i = 0; i < cos.size(); ++i) {
    cos[i] = std::cos(0.37f * float(i));
    sin[i] = std::sin(0.37f * float(i));
  }
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(1.3f * float(i)) * float(1 + i % 7);
  for (float sign : {1.0f, -1.0f}) {
    std::vector<float> got = x, want = x;
    if (sign > 0) rope_forward(got.data(), cos.data(), sin.data(), T, H, D);
    else rope_backward(got.data(), cos.data(), sin.data(), T, H, D);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < half; ++j) {
          float* x1 = want.data() + (t * H + h) * D;
          const volatile float c = cos[size_t(t * half + j)], s = sign * sin[size_t(t * half + j)];
          const volatile float a = x1[j], b = x1[j + half];
          const volatile float ac = a * c, bs = b * s, bc = b * c, as = a * s;
          x1[j] = ac - bs;
          x1[j + half] = bc + as;
        }
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(got[i], want[i]) << "sign " << sign << " i=" << i;
  }
}

}  // namespace
}  // namespace ar
