// Tests for kernels/mse_loss: hand values, a large n across chunks against a plain double sum,
// and the gradient against central differences (exact for a quadratic up to rounding).
#include "kernels/mse_loss.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include <omp.h>

namespace ar {
namespace {

TEST(MseLoss, HandValues) {
  const float y[] = {1.0f, 2.0f, 3.0f}, t[] = {1.0f, 0.0f, 4.0f};
  EXPECT_DOUBLE_EQ(mse_loss_forward(y, t, 3), (0.0 + 4.0 + 1.0) / 3.0);
  float dy[3];
  mse_loss_backward(dy, y, t, 3, 1.0f);
  EXPECT_FLOAT_EQ(dy[0], 0.0f);
  EXPECT_FLOAT_EQ(dy[1], 2.0f * 2.0f / 3.0f);
  EXPECT_FLOAT_EQ(dy[2], 2.0f * -1.0f / 3.0f);
  mse_loss_backward(dy, y, t, 3, 0.5f);  // grad_scale multiplies through
  EXPECT_FLOAT_EQ(dy[1], 2.0f / 3.0f);
  EXPECT_EQ(mse_loss_forward(y, t, 0), 0.0);
}

TEST(MseLoss, ManyChunksMatchPlainSum) {
  // Chunked vs sequential double sums of 10^5 positive terms differ by ~1e-16 relative.
  constexpr double kRel = 1e-12;
  const int64_t n = 100003;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> y(n), t(n);
  for (auto& v : y) v = dist(rng);
  for (auto& v : t) v = dist(rng);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += (double(y[i]) - t[i]) * (double(y[i]) - t[i]);
  EXPECT_NEAR(mse_loss_forward(y.data(), t.data(), n), s / n, kRel * s / n);
}

TEST(MseLoss, BackwardMatchesFiniteDifferences) {
  // The loss is quadratic, so central differences are exact up to rounding of the loss
  // (~1e-16·L/h); the f32 gradient carries ~1e-7 relative.
  constexpr double kRel = 1e-6;
  const int64_t n = 33;
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> y(n), t(n), dy(n);
  for (auto& v : y) v = dist(rng);
  for (auto& v : t) v = dist(rng);
  mse_loss_backward(dy.data(), y.data(), t.data(), n, 1.0f);
  for (int64_t i = 0; i < n; ++i) {
    // Perturb in double: L(y + h e_i) - L(y - h e_i) = 4 h (y_i - t_i) / n exactly.
    double lp = 0, lm = 0;
    const double h = 1e-3;
    for (int64_t j = 0; j < n; ++j) {
      const double d = double(y[j]) - t[j];
      lp += (j == i ? d + h : d) * (j == i ? d + h : d);
      lm += (j == i ? d - h : d) * (j == i ? d - h : d);
    }
    const double g = (lp - lm) / n / (2 * h);
    ASSERT_NEAR(dy[i], g, kRel * (std::fabs(g) + 1e-3)) << i;
  }
}

// The one-pass version: mse_loss_backward's dy bit for bit and mse_loss_forward's value, at
// lengths that end inside a chunk's 8-wide loop, at a chunk's end and across chunks; dy may be y.
// And the value is the same for 1 and 2 threads.
TEST(MseLoss, OnePassGivesTheBitsOfTheTwo) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(8), int64_t(13), int64_t(16384), int64_t(16389), int64_t(70001)}) {
    const size_t len = static_cast<size_t>(n);
    std::vector<float> y(len), t(len), want(len), got(len);
    for (auto& v : y) v = dist(rng);
    for (auto& v : t) v = dist(rng);
    const double loss = mse_loss_forward(y.data(), t.data(), n);
    mse_loss_backward(want.data(), y.data(), t.data(), n, 0.25f);
    EXPECT_EQ(mse_loss_forward_backward(got.data(), y.data(), t.data(), n, 0.25f), loss) << n;
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[size_t(i)], want[size_t(i)]) << "n=" << n << " i=" << i;
    std::vector<float> in_place = y;
    EXPECT_EQ(mse_loss_forward_backward(in_place.data(), in_place.data(), t.data(), n, 0.25f), loss) << n;
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(in_place[size_t(i)], want[size_t(i)]) << "in place n=" << n << " i=" << i;
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const double one = mse_loss_forward(y.data(), t.data(), n);
    omp_set_num_threads(2);
    const double two = mse_loss_forward(y.data(), t.data(), n);
    omp_set_num_threads(threads);
    EXPECT_EQ(one, two) << n;
    EXPECT_EQ(one, loss) << n;
  }
}

}  // namespace
}  // namespace ar
