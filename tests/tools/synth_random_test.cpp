// Ziggurat normal sampler: determinism, moments and a Kolmogorov-Smirnov test against the normal
// CDF computed with std::erf (an independent path), including the tail beyond the base layer.
#include "tools/synth_random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace ar {
namespace {

TEST(SynthRandom, DeterministicPerKey) {
  std::vector<float> a(1000), b(1000), c(1000);
  fill_normal(a.data(), 1000, 42, 0.0f, 1.0f);
  fill_normal(b.data(), 1000, 42, 0.0f, 1.0f);
  fill_normal(c.data(), 1000, 43, 0.0f, 1.0f);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // mean/stddev are an affine map of the same stream.
  std::vector<float> d(1000);
  fill_normal(d.data(), 1000, 42, 1.0f, 0.5f);
  for (int i = 0; i < 1000; ++i) EXPECT_FLOAT_EQ(d[i], 1.0f + 0.5f * a[i]);
}

TEST(SynthRandom, MatchesStandardNormal) {
  const int64_t n = 200000;
  std::vector<float> x(n);
  fill_normal(x.data(), n, 7, 0.0f, 1.0f);
  double m1 = 0, m2 = 0, m4 = 0;
  int64_t beyond2 = 0, tail = 0;
  for (float v : x) {
    m1 += v;
    m2 += double(v) * v;
    m4 += double(v) * v * v * v;
    beyond2 += std::fabs(v) > 2.0f;
    tail += std::fabs(v) > 3.4426f;  // drawn by the tail algorithm
  }
  m1 /= n, m2 /= n, m4 /= n;
  // Tolerances: about 4-5 standard errors for n = 200000.
  EXPECT_NEAR(m1, 0.0, 0.01);
  EXPECT_NEAR(m2, 1.0, 0.015);
  EXPECT_NEAR(m4 / (m2 * m2), 3.0, 0.1);
  EXPECT_NEAR(double(beyond2) / n, 0.0455, 0.0025);  // P(|Z| > 2) = 4.55 %
  EXPECT_GT(tail, 60);                               // expected 115 (P = 5.76e-4)
  EXPECT_LT(tail, 180);
  // Kolmogorov-Smirnov: D < 1.63 / sqrt(n) at the 1 % level.
  std::sort(x.begin(), x.end());
  double d = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double cdf = 0.5 * std::erfc(-double(x[i]) / std::sqrt(2.0));
    d = std::max({d, std::fabs(cdf - double(i) / n), std::fabs(cdf - double(i + 1) / n)});
  }
  EXPECT_LT(d, 1.63 / std::sqrt(double(n)));
}

}  // namespace
}  // namespace ar
