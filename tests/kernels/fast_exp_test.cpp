// Tests for kernels/fast_exp: relative error against double exp over the whole useful range,
// exact anchor points, and the documented behaviour at the ends (0 and +inf, never NaN); the same
// for fast_tanh and fast_sech2 against double tanh and 1/cosh².
#include "kernels/fast_exp.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace ar {
namespace {

// Degree-6 Taylor on |r| <= ln2/2 truncates at ~1.2e-7 relative, plus a few f32 roundings.
constexpr double kRel = 4e-7;

TEST(FastExp, RelativeErrorOverRange) {
  double worst = 0;
  for (double x = -87.0; x <= 88.0; x += 0.00137) {
    const float xf = float(x);
    const double e = std::exp(double(xf));
    worst = std::max(worst, std::fabs(double(fast_exp(xf)) - e) / e);
  }
  EXPECT_LE(worst, kRel);
}

TEST(FastExp, AnchorsAndEnds) {
  EXPECT_EQ(fast_exp(0.0f), 1.0f);
  EXPECT_NEAR(fast_exp(1.0f), 2.718281828, 2.718281828 * kRel);
  EXPECT_EQ(fast_exp(-100.0f), 0.0f);
  EXPECT_EQ(fast_exp(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(fast_exp(100.0f), std::numeric_limits<float>::infinity());
  EXPECT_EQ(fast_exp(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  EXPECT_GT(fast_exp(-87.3f), 0.0f);  // still a normal number just above ln(FLT_MIN)
  EXPECT_TRUE(std::isnan(fast_exp(std::numeric_limits<float>::quiet_NaN())));
}

// Polynomial branch: truncation < 1e-8; exp branch: fast_exp's 4e-7 on E <= 0.61 grows by at most
// E/(1 − E) < 1.6 in 1 − E, plus two roundings.
constexpr double kTanhRel = 8e-7;
// 4E/(1 + E)²: fast_exp's error on E, twice through (1 + E)², plus roundings.
constexpr double kSech2Rel = 1.5e-6;

TEST(FastTanh, RelativeErrorOverRange) {
  double worst_t = 0, worst_s = 0;
  for (double x = -30.0; x <= 30.0; x += 0.000731) {
    const float xf = float(x);
    const double t = std::tanh(double(xf)), c = std::cosh(double(xf));
    worst_t = std::max(worst_t, std::fabs(double(fast_tanh(xf)) - t) / std::fabs(t));
    worst_s = std::max(worst_s, std::fabs(double(fast_sech2(xf)) - 1.0 / (c * c)) * (c * c));
  }
  EXPECT_LE(worst_t, kTanhRel);
  EXPECT_LE(worst_s, kSech2Rel);
  // Around the branch point and for tiny arguments, where 1 − E would cancel.
  for (float x : {0.2499999f, 0.25f, 0.2500001f, 1e-3f, 1e-8f, 1e-30f, -1e-30f}) {
    EXPECT_NEAR(fast_tanh(x), std::tanh(double(x)), kTanhRel * std::fabs(std::tanh(double(x)))) << x;
  }
}

TEST(FastTanh, EndsAndSymmetry) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(fast_tanh(0.0f), 0.0f);
  EXPECT_EQ(fast_tanh(50.0f), 1.0f);
  EXPECT_EQ(fast_tanh(-50.0f), -1.0f);
  EXPECT_EQ(fast_tanh(inf), 1.0f);
  EXPECT_EQ(fast_tanh(-inf), -1.0f);
  EXPECT_EQ(fast_tanh(-1e30f), -1.0f);
  EXPECT_EQ(fast_sech2(0.0f), 1.0f);
  EXPECT_EQ(fast_sech2(50.0f), 0.0f);
  EXPECT_EQ(fast_sech2(-inf), 0.0f);
  EXPECT_GT(fast_sech2(20.0f), 0.0f);  // still resolved where 1 − tanh² already rounds to 0
  for (float x : {0.1f, 0.3f, 2.0f, 7.5f}) {
    EXPECT_EQ(fast_tanh(-x), -fast_tanh(x)) << x;
    EXPECT_EQ(fast_sech2(-x), fast_sech2(x)) << x;
  }
}

}  // namespace
}  // namespace ar
