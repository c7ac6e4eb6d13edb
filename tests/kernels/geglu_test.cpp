// Tests for kernels/geglu: hand values, large |gate| (finite, no NaN), the forward against a
// double formula, and geglu_tanh_backward against central differences and against the analytic
// derivative in double (PyTorch's tanh form), in place included.
#include "kernels/geglu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace ar {
namespace {

constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kCubic = 0.044715;
constexpr double kEps = 5.960464477539063e-08;  // 2^-24, f32 unit roundoff

double two_u(double g) { return 2.0 * kSqrt2OverPi * (g + kCubic * g * g * g); }

// gelu_tanh in double, as PyTorch writes it: 0.5·g·(1 + tanh(u)). Fine for moderate g; for
// g << 0 the 1 + tanh(u) cancels even in double, so the range tests use gelu_sigmoid below.
double gelu_tanh(double g) { return 0.5 * g * (1.0 + std::tanh(0.5 * two_u(g))); }

// The same function as g·sigmoid(2u): no cancellation anywhere.
double gelu_sigmoid(double g) { return g / (1.0 + std::exp(-two_u(g))); }

// d/dg gelu_tanh in double, PyTorch's tanh form: 0.5·(1 + t) + 0.5·g·(1 − t²)·u'.
double gelu_tanh_grad(double g) {
  const double t = std::tanh(0.5 * two_u(g));
  return 0.5 * (1.0 + t) + 0.5 * g * (1.0 - t * t) * kSqrt2OverPi * (1.0 + 3.0 * kCubic * g * g);
}

// f32 input rounding of 2u (~|2u|·eps absolute) becomes that much relative error in
// exp(−2u), hence in sigmoid(2u); fast_exp, the division and two products add a few eps.
// Absolute floor: once exp(−2u) overflows f32 (g < −10.05) the result is flushed to 0 where the
// true one is below |g·up|·2^-127 (< 1e-35 for |g| <= 12, |up| <= 4).
double forward_tol(double g, double expected) {
  return 8.0 * kEps * (1.0 + std::fabs(two_u(g))) * std::fabs(expected) + 1e-35;
}

TEST(Geglu, SigmoidFormIsTheTanhForm) {
  // The kernel's rewrite, checked in double where the tanh form does not cancel.
  for (double g = -6.0; g <= 6.0; g += 0.01)
    ASSERT_NEAR(gelu_sigmoid(g), gelu_tanh(g), 1e-14 * (1.0 + std::fabs(g))) << g;
}

TEST(Geglu, HandValues) {
  // Values of 0.5·g·(1 + tanh(sqrt(2/π)·(g + 0.044715·g³))) from Python's math module.
  const float gate[] = {0.0f, 1.0f, -1.0f, 0.5f, -3.0f, 2.0f};
  const float up[] = {3.0f, 1.0f, 1.0f, 2.0f, 1.0f, -1.0f};
  const double expected[] = {0.0, 0.8411919906082768, -0.15880800939172324, 2 * 0.34571400982514394,
                             -0.0036373920817729943, -1.954597694087775};
  float out[6];
  geglu_tanh_forward(out, gate, up, 6);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(out[i], expected[i], 1e-6 * std::fabs(expected[i])) << i;
}

TEST(Geglu, LargeGatesStayFinite) {
  const float big = std::numeric_limits<float>::max();
  const float gate[] = {100.0f, -100.0f, 1e20f, -1e20f, big, -big, 12.0f, -12.0f};
  const float up[] = {0.5f, 1.0f, 1.0f, 1.0f, 0.5f, 0.5f, 1.0f, 1.0f};
  float out[8];
  geglu_tanh_forward(out, gate, up, 8);
  EXPECT_EQ(out[0], 50.0f);      // sigmoid(2u) = 1 in f32
  EXPECT_EQ(out[1], 0.0f);       // -100·e^-(huge): 0, not NaN
  EXPECT_EQ(out[2], 1e20f);
  EXPECT_EQ(out[3], 0.0f);
  EXPECT_EQ(out[4], 0.5f * big);
  EXPECT_EQ(out[5], 0.0f);
  EXPECT_EQ(out[6], 12.0f);
  EXPECT_EQ(out[7], 0.0f);       // true value ~1e-62 underflows
  const float dout[] = {1, 1, 1, 1, 1, 1, 1, 1};
  float dg[8], du[8];
  geglu_tanh_backward(dg, du, dout, gate, up, 8);
  for (int i = 0; i < 8; ++i) {
    EXPECT_TRUE(std::isfinite(dg[i])) << i;
    EXPECT_TRUE(std::isfinite(du[i])) << i;
    EXPECT_EQ(dg[i], gate[i] > 0 ? up[i] : 0.0f) << i;  // gelu' is exactly 1 or 0 out here
    EXPECT_EQ(du[i], out[i] / up[i]) << i;  // up is 0.5 or 1: exact
  }
}

TEST(Geglu, MatchesDoubleFormula) {
  std::mt19937 rng(14);
  std::uniform_real_distribution<float> dist(-12.0f, 12.0f), udist(-4.0f, 4.0f);
  for (int64_t n : {1, 3, 17, 33, 129, 100003}) {
    std::vector<float> g(static_cast<size_t>(n)), u(g.size()), out(g.size());
    for (auto& x : g) x = dist(rng);
    for (auto& x : u) x = udist(rng);
    if (n > 2) g[1] = 1e-30f, g[2] = -30.0f;  // tiny and beyond the clamp
    geglu_tanh_forward(out.data(), g.data(), u.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double e = gelu_sigmoid(g[i]) * u[i];
      ASSERT_NEAR(out[i], e, forward_tol(g[i], e)) << n << " @" << i << " g=" << g[i];
    }
  }
  // Dense sweep of the curved part, against PyTorch's tanh form directly.
  std::vector<float> g, u;
  for (float x = -6.0f; x <= 6.0f; x += 0.001f) g.push_back(x), u.push_back(1.0f);
  std::vector<float> out(g.size());
  geglu_tanh_forward(out.data(), g.data(), u.data(), int64_t(g.size()));
  for (size_t i = 0; i < g.size(); ++i) {
    const double e = gelu_tanh(g[i]);
    // the tanh form itself loses ~1e-16/|e| relative below g ≈ -5 in double: absolute slack
    ASSERT_NEAR(out[i], e, forward_tol(g[i], e) + 1e-15) << "g=" << g[i];
  }
}

TEST(Geglu, ForwardInPlace) {
  std::mt19937 rng(15);
  std::uniform_real_distribution<float> dist(-8.0f, 8.0f);
  for (int64_t n : {1, 15, 100003}) {
    std::vector<float> g(static_cast<size_t>(n)), u(g.size()), out(g.size());
    for (auto& x : g) x = dist(rng);
    for (auto& x : u) x = dist(rng);
    geglu_tanh_forward(out.data(), g.data(), u.data(), n);
    auto g2 = g, u2 = u;
    geglu_tanh_forward(g2.data(), g2.data(), u.data(), n);
    geglu_tanh_forward(u2.data(), g.data(), u2.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(g2[i], out[i]) << n << " over gate @" << i;
      ASSERT_EQ(u2[i], out[i]) << n << " over up @" << i;
    }
  }
}

struct BackwardCase {
  std::vector<float> g, u, d, dg, du;
};

BackwardCase run_backward(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-8.0f, 8.0f);
  BackwardCase c;
  c.g.resize(static_cast<size_t>(n)), c.u.resize(c.g.size()), c.d.resize(c.g.size());
  c.dg.resize(c.g.size()), c.du.resize(c.g.size());
  for (auto& x : c.g) x = dist(rng);
  for (auto& x : c.u) x = dist(rng);
  for (auto& x : c.d) x = dist(rng) / 8.0f;
  geglu_tanh_backward(c.dg.data(), c.du.data(), c.d.data(), c.g.data(), c.u.data(), n);
  return c;
}

TEST(Geglu, BackwardMatchesFiniteDifferences) {
  // Central differences in double with h = 1e-5 are exact to ~1e-10 here; the kernel's f32
  // sigmoid and products leave a few eps relative to the gradient's scale |d·u|·(1 + |g|·u').
  constexpr double kGradRel = 2e-6;
  const int64_t n = 1001;
  auto c = run_backward(n, 16);
  const double h = 1e-5;
  for (int64_t i = 0; i < n; ++i) {
    const double g = c.g[i], du_scale = std::fabs(c.d[i] * c.u[i]);
    const double ng = c.d[i] * c.u[i] * (gelu_sigmoid(g + h) - gelu_sigmoid(g - h)) / (2 * h);
    const double nu = c.d[i] * gelu_sigmoid(g);  // linear in up: exact
    const double scale = du_scale * (1.0 + std::fabs(g) * (1.0 + 3.0 * kCubic * g * g)) + 1e-3;
    ASSERT_NEAR(c.dg[i], ng, kGradRel * scale) << "dgate @" << i << " g=" << g;
    ASSERT_NEAR(c.du[i], nu, kGradRel * (std::fabs(c.d[i] * g) + 1e-3)) << "dup @" << i;
  }
}

TEST(Geglu, BackwardMatchesAnalyticDerivative) {
  // The kernel's sigmoid-form derivative against PyTorch's tanh-form derivative in double, on
  // odd sizes across parallel chunks; same tolerance reasoning as the finite differences.
  constexpr double kGradRel = 2e-6;
  uint32_t seed = 20;
  for (int64_t n : {1, 3, 17, 33, 129, 100003}) {
    auto c = run_backward(n, seed++);
    for (int64_t i = 0; i < n; ++i) {
      const double g = c.g[i];
      const double e = c.d[i] * c.u[i] * gelu_tanh_grad(g);
      const double scale = std::fabs(c.d[i] * c.u[i]) * (1.0 + std::fabs(g) * (1.0 + 3.0 * kCubic * g * g));
      ASSERT_NEAR(c.dg[i], e, kGradRel * scale + 1e-30) << n << " @" << i << " g=" << g;
    }
  }
}

TEST(Geglu, BackwardInPlace) {
  // Outputs over dout, and over gate and up (as block_backward reuses its (T, F) buffers):
  // bit-identical to separate outputs, over several parallel chunks.
  for (int64_t n : {1, 15, 100003}) {
    auto c = run_backward(n, 30);
    auto d2 = c.d;
    std::vector<float> du2(c.g.size());
    geglu_tanh_backward(d2.data(), du2.data(), d2.data(), c.g.data(), c.u.data(), n);
    auto g2 = c.g, u2 = c.u;
    geglu_tanh_backward(g2.data(), u2.data(), c.d.data(), g2.data(), u2.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(d2[i], c.dg[i]) << n << " dgate over dout @" << i;
      ASSERT_EQ(du2[i], c.du[i]) << n << " dup @" << i;
      ASSERT_EQ(g2[i], c.dg[i]) << n << " dgate over gate @" << i;
      ASSERT_EQ(u2[i], c.du[i]) << n << " dup over up @" << i;
    }
  }
}

}  // namespace
}  // namespace ar
