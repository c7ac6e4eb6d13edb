// Tests for kernels/swiglu and kernels/residual: hand values, extremes, a double formula, and
// swiglu_backward against central differences of that formula.
#include "kernels/swiglu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/residual.h"

namespace ar {
namespace {

// exp and the division in f32: a few ulps relative.
constexpr double kRel = 1e-6;

double silu_ref(double g) { return g / (1.0 + std::exp(-g)); }

TEST(Swiglu, HandValues) {
  const float gate[] = {0.0f, 1.0f, -1.0f, 100.0f, -100.0f};
  const float up[] = {3.0f, 2.0f, 2.0f, 0.5f, 1.0f};
  float out[5];
  swiglu_forward(out, gate, up, 5);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_NEAR(out[1], 2.0 * 0.7310585786, 1e-6);   // silu(1) = 1/(1+e^-1)
  EXPECT_NEAR(out[2], 2.0 * -0.2689414214, 1e-6);  // silu(-1)
  EXPECT_EQ(out[3], 50.0f);                        // sigmoid(100) = 1 in f32
  EXPECT_NEAR(out[4], 0.0f, 1e-30);                // -100 * e^-100: underflows towards 0
  const float huge[] = {-1000.0f}, one[] = {1.0f};  // exp(1000) = inf must not give NaN
  swiglu_forward(out, huge, one, 1);
  EXPECT_FALSE(std::isnan(out[0]));
  EXPECT_EQ(out[0], 0.0f);
}

TEST(Swiglu, MatchesDoubleFormula) {
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> dist(-8.0f, 8.0f);
  for (int64_t n : {1, 3, 17, 33, 129, 100003}) {
    std::vector<float> g(static_cast<size_t>(n)), u(static_cast<size_t>(n)), out(static_cast<size_t>(n));
    for (auto& x : g) x = dist(rng);
    for (auto& x : u) x = dist(rng);
    swiglu_forward(out.data(), g.data(), u.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double e = silu_ref(g[i]) * u[i];
      ASSERT_NEAR(out[i], e, kRel * std::fabs(e) + 1e-30) << n << " @" << i;
    }
  }
}

TEST(Swiglu, BackwardMatchesFiniteDifferences) {
  // Central differences in double with h = 1e-5 are exact to ~1e-10; the kernel's f32 sigmoid
  // and products leave a few ulps relative to the gradient's size (|g|, |u| <= 8).
  constexpr double kGradRel = 1e-5;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-8.0f, 8.0f);
  const int64_t n = 1001;
  std::vector<float> g(n), u(n), d(n), dg(n), du(n);
  for (auto& x : g) x = dist(rng);
  for (auto& x : u) x = dist(rng);
  for (auto& x : d) x = dist(rng) / 8.0f;
  swiglu_backward(dg.data(), du.data(), d.data(), g.data(), u.data(), n);
  const double h = 1e-5;
  for (int64_t i = 0; i < n; ++i) {
    const double ng = d[i] * u[i] * (silu_ref(g[i] + h) - silu_ref(g[i] - h)) / (2 * h);
    const double nu = d[i] * silu_ref(g[i]);  // linear in up: exact
    ASSERT_NEAR(dg[i], ng, kGradRel * (std::fabs(d[i] * u[i]) + 1e-3)) << "dgate @" << i << " g=" << g[i];
    ASSERT_NEAR(du[i], nu, kGradRel * (std::fabs(d[i] * g[i]) + 1e-3)) << "dup @" << i;
  }
  // In place over dout (the MLP backward reuses buffers): same values.
  auto d2 = d;
  std::vector<float> du2(n);
  swiglu_backward(d2.data(), du2.data(), d2.data(), g.data(), u.data(), n);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(d2[i], dg[i]) << i;
}

TEST(Swiglu, BackwardInPlaceOverGateAndUp) {
  // block_backward writes d gate over gate and d up over up (one (T, F) buffer each instead of
  // two more): bit-identical to separate outputs, over several parallel chunks.
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> dist(-8.0f, 8.0f);
  for (int64_t n : {1, 15, 100003}) {
    std::vector<float> g(static_cast<size_t>(n)), u(g.size()), d(g.size()), dg(g.size()), du(g.size());
    for (auto& x : g) x = dist(rng);
    for (auto& x : u) x = dist(rng);
    for (auto& x : d) x = dist(rng);
    swiglu_backward(dg.data(), du.data(), d.data(), g.data(), u.data(), n);
    auto g2 = g, u2 = u;
    swiglu_backward(g2.data(), u2.data(), d.data(), g2.data(), u2.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(g2[i], dg[i]) << n << " dgate @" << i;
      ASSERT_EQ(u2[i], du[i]) << n << " dup @" << i;
    }
  }
}

TEST(Residual, AddsInPlace) {
  for (int64_t n : {1, 17, 100003}) {
    std::vector<float> out(static_cast<size_t>(n)), x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      out[i] = float(i);
      x[i] = 0.5f;
    }
    residual_add(out.data(), x.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], float(i) + 0.5f);
  }
}

TEST(Residual, SumWritesBothBranches) {
  for (int64_t n : {1, 17, 100003}) {
    std::vector<float> a(static_cast<size_t>(n)), b(a.size()), out(a.size(), -1.0f);
    for (int64_t i = 0; i < n; ++i) {
      a[i] = float(i);
      b[i] = 0.25f * float(i % 7);
    }
    residual_sum(out.data(), a.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], float(i) + 0.25f * float(i % 7));
  }
}

}  // namespace
}  // namespace ar
