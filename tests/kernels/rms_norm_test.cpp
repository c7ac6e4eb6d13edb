// Tests for kernels/rms_norm: a hand-worked row, the f32 kernel against the double reference on
// odd shapes, and backward against central differences of a double forward written here.
#include "kernels/rms_norm.h"

#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace ar {
namespace {

// Outputs are O(1) (normalised, w ~ 1); f32 rounding of mean/rsqrt/products stays within a few
// ulps, i.e. ~1e-6 relative.
constexpr float kRel = 4e-6f;

std::vector<float> random_vec(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(RmsNorm, HandWorked) {
  // x = [3, 4]: mean(x^2) = 12.5, rstd = 1/sqrt(12.5) = 0.28284271; w = [1, 2].
  const float x[] = {3, 4}, w[] = {1, 2};
  float out[2], rstd[1];
  rms_norm_forward(out, rstd, x, w, 1, 2, 0.0f);
  EXPECT_NEAR(rstd[0], 0.28284271f, 1e-7);
  EXPECT_NEAR(out[0], 0.84852814f, 1e-6);
  EXPECT_NEAR(out[1], 2.2627417f, 1e-6);
  // eps sits inside the sqrt: x = 0 gives rstd = 1/sqrt(eps), out = 0.
  const float z[] = {0, 0};
  rms_norm_forward(out, rstd, z, w, 1, 2, 1e-6f);
  EXPECT_NEAR(rstd[0], 1000.0f, 1e-2);
  EXPECT_EQ(out[0], 0.0f);
}

TEST(RmsNorm, MatchesReferenceOddSizes) {
  uint32_t seed = 1;
  for (int64_t rows : {1, 3, 17})
    for (int64_t C : {1, 3, 17, 33, 129}) {
      auto x = random_vec(size_t(rows * C), seed++, -3.0f, 3.0f);
      auto w = random_vec(size_t(C), seed++, 0.5f, 1.5f);
      std::vector<float> out(x.size()), ref(x.size()), rstd(static_cast<size_t>(rows)), rstd_ref(static_cast<size_t>(rows));
      rms_norm_forward(out.data(), rstd.data(), x.data(), w.data(), rows, C, 1e-5f);
      rms_norm_ref(ref.data(), rstd_ref.data(), x.data(), w.data(), rows, C, 1e-5f);
      for (int64_t r = 0; r < rows; ++r)
        ASSERT_NEAR(rstd[r], rstd_ref[r], kRel * std::fabs(rstd_ref[r])) << rows << "x" << C;
      for (size_t i = 0; i < out.size(); ++i)
        ASSERT_NEAR(out[i], ref[i], kRel * (std::fabs(ref[i]) + 1.0f)) << rows << "x" << C << " @" << i;
    }
}

// The bf16 variant: the f32 kernel's outputs rounded, bit for bit, and the same rstd; 300 x 129 is
// large enough to run rows in parallel.
TEST(RmsNorm, Bf16OutputIsTheF32OutputRounded) {
  uint32_t seed = 70;
  for (int64_t rows : {1, 17, 300})
    for (int64_t C : {3, 129}) {
      auto x = random_vec(size_t(rows * C), seed++, -3.0f, 3.0f);
      auto w = random_vec(size_t(C), seed++, 0.5f, 1.5f);
      std::vector<float> out(x.size()), rstd(static_cast<size_t>(rows)), rstd16(rstd.size());
      std::vector<uint16_t> out16(x.size());
      rms_norm_forward(out.data(), rstd.data(), x.data(), w.data(), rows, C, 1e-5f);
      rms_norm_forward_bf16(out16.data(), rstd16.data(), x.data(), w.data(), rows, C, 1e-5f);
      EXPECT_EQ(rstd16, rstd) << rows << "x" << C;
      for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out16[i], f32_to_bf16(out[i])) << rows << "x" << C << " @" << i;
    }
}

TEST(RmsNorm, InPlaceAndNullRstd) {
  auto x = random_vec(33 * 17, 99, -2.0f, 2.0f);
  auto w = random_vec(33, 98, 0.5f, 1.5f);
  std::vector<float> out(x.size());
  rms_norm_forward(out.data(), nullptr, x.data(), w.data(), 17, 33, 1e-6f);
  rms_norm_forward(x.data(), nullptr, x.data(), w.data(), 17, 33, 1e-6f);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(x[i], out[i]) << i;
}

// Backward in f32 vs central differences in double (h = 1e-5: truncation ~1e-10, rounding
// ~1e-11): what remains is f32 rounding in the kernel, ~1e-6 of the largest gradient.
constexpr double kGradRel = 1e-5;

// L = Σ R ⊙ rmsnorm(x, w), in double.
double rms_loss(const std::vector<double>& x, const std::vector<double>& w,
                const std::vector<float>& R, int64_t rows, int64_t C, double eps) {
  double L = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += x[r * C + c] * x[r * C + c];
    const double rs = 1.0 / std::sqrt(ss / double(C) + eps);
    for (int64_t c = 0; c < C; ++c) L += R[r * C + c] * x[r * C + c] * rs * w[c];
  }
  return L;
}

TEST(RmsNorm, BackwardMatchesFiniteDifferences) {
  uint32_t seed = 200;
  const float eps = 1e-5f;
  for (int64_t rows : {1, 3, 17})
    for (int64_t C : {1, 3, 17, 33}) {
      auto x = random_vec(size_t(rows * C), seed++, -2.0f, 2.0f);
      auto w = random_vec(size_t(C), seed++, 0.5f, 1.5f);
      auto R = random_vec(size_t(rows * C), seed++, -1.0f, 1.0f);
      std::vector<float> out(x.size()), rstd(static_cast<size_t>(rows)), dx(x.size());
      std::vector<float> dw(static_cast<size_t>(C), 0.25f);  // dw accumulates onto this
      rms_norm_forward(out.data(), rstd.data(), x.data(), w.data(), rows, C, eps);
      rms_norm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), rows, C);

      std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end());
      const double h = 1e-5;
      std::vector<double> ndx(x.size()), ndw(w.size());
      for (size_t i = 0; i < xd.size(); ++i) {
        const double x0 = xd[i];
        xd[i] = x0 + h;
        const double lp = rms_loss(xd, wd, R, rows, C, eps);
        xd[i] = x0 - h;
        const double lm = rms_loss(xd, wd, R, rows, C, eps);
        xd[i] = x0;
        ndx[i] = (lp - lm) / (2 * h);
      }
      for (size_t i = 0; i < wd.size(); ++i) {
        const double w0 = wd[i];
        wd[i] = w0 + h;
        const double lp = rms_loss(xd, wd, R, rows, C, eps);
        wd[i] = w0 - h;
        const double lm = rms_loss(xd, wd, R, rows, C, eps);
        wd[i] = w0;
        ndw[i] = (lp - lm) / (2 * h);
      }
      double gmax = 1.0;
      for (double g : ndx) gmax = std::max(gmax, std::fabs(g));
      for (double g : ndw) gmax = std::max(gmax, std::fabs(g));
      for (size_t i = 0; i < ndx.size(); ++i)
        ASSERT_NEAR(dx[i], ndx[i], kGradRel * gmax) << "dx " << rows << "x" << C << " @" << i;
      for (size_t i = 0; i < ndw.size(); ++i)
        ASSERT_NEAR(dw[i] - 0.25f, ndw[i], kGradRel * gmax) << "dw " << rows << "x" << C << " @" << i;
    }
}

TEST(RmsNorm, BackwardNullDwAndAliasedDout) {
  auto x = random_vec(17 * 33, 301, -2.0f, 2.0f);
  auto w = random_vec(33, 302, 0.5f, 1.5f);
  auto g = random_vec(17 * 33, 303, -1.0f, 1.0f);
  std::vector<float> out(x.size()), rstd(17), dx(x.size());
  rms_norm_forward(out.data(), rstd.data(), x.data(), w.data(), 17, 33, 1e-6f);
  rms_norm_backward(dx.data(), nullptr, g.data(), x.data(), w.data(), rstd.data(), 17, 33);
  rms_norm_backward(g.data(), nullptr, g.data(), x.data(), w.data(), rstd.data(), 17, 33);
  for (size_t i = 0; i < dx.size(); ++i) ASSERT_EQ(g[i], dx[i]) << i;
}

}  // namespace
}  // namespace ar
