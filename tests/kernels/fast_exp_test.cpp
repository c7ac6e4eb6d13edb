// Tests for kernels/fast_exp: relative error against double exp over the whole useful range,
// exact anchor points, and the documented behaviour at the ends (0 and +inf, never NaN).
#include "kernels/fast_exp.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace ar
