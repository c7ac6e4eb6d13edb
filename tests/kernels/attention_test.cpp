// Tests for kernels/attention: forward against attention_ref (double) for GQA ratios 1/2/4 and
// odd T (including T past the causal row-block size), T = 1 by hand, and causality exactly.
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace ar {
namespace {

// Values in [-1, 1]: scores err ~D·2^-24, exp/normalise a few ulps, and P·V is a convex
// combination of |v| <= 1, so outputs stay within ~1e-6 (observed <= 4e-7).
constexpr double kF32Abs = 2e-6;
// BF16: fast path and reference may round a probability to neighbouring bf16 values (2^-8
// relative apart) when their f32 inputs differ in the last bits; since Σp = 1 and |v| <= 1 such
// flips move an output by at most 2^-8 ≈ 3.9e-3 in total (observed <= 5e-5).
constexpr double kBF16Abs = 4e-3;

std::vector<float> random_vec(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

struct Inputs {
  std::vector<float> q, k, v;
};

Inputs make_inputs(int64_t T, int64_t H, int64_t Hkv, int64_t D, uint32_t seed) {
  std::mt19937 rng(seed);
  // Larger q spreads the softmax so the test is not dominated by a near-uniform average.
  auto q = random_vec(size_t(T * H * D), rng);
  for (float& x : q) x *= 3.0f;
  return {q, random_vec(size_t(T * Hkv * D), rng), random_vec(size_t(T * Hkv * D), rng)};
}

void compare_to_ref(int64_t T, int64_t H, int64_t Hkv, int64_t D, Precision p, double tol,
                    uint32_t seed) {
  auto in = make_inputs(T, H, Hkv, D, seed);
  const float scale = 1.0f / std::sqrt(float(D));
  std::vector<float> out(size_t(T * H * D)), ref(out.size()), scratch(attention_scratch_floats(T));
  attention_forward(out.data(), scratch.data(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv,
                    D, scale, p);
  attention_ref(ref.data(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv, D, scale, p);
  double max_err = 0;
  for (size_t i = 0; i < out.size(); ++i) max_err = std::max(max_err, double(std::fabs(out[i] - ref[i])));
  EXPECT_LE(max_err, tol) << "T=" << T << " H=" << H << " Hkv=" << Hkv << " D=" << D;
}

TEST(Attention, ScratchIsOneHeadOfScores) { EXPECT_EQ(attention_scratch_floats(33), 33u * 33u); }

TEST(Attention, SingleTokenReturnsItsValue) {
  // T = 1: softmax over one score is exactly 1, so each q head outputs its kv head's v.
  const int64_t H = 8, Hkv = 2, D = 5;
  auto in = make_inputs(1, H, Hkv, D, 1);
  std::vector<float> out(size_t(H * D)), scratch(attention_scratch_floats(1));
  attention_forward(out.data(), scratch.data(), in.q.data(), in.k.data(), in.v.data(), 1, H, Hkv, D,
                    0.5f, Precision::F32);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t d = 0; d < D; ++d) ASSERT_EQ(out[h * D + d], in.v[(h / 4) * D + d]) << h << "," << d;
}

TEST(Attention, MatchesReferenceF32) {
  uint32_t seed = 10;
  for (int64_t T : {1, 3, 17, 33, 129})
    for (int64_t ratio : {1, 2, 4}) compare_to_ref(T, 4, 4 / ratio, 16, Precision::F32, kF32Abs, seed++);
  // Past the 256-row causal block: a full block plus a partial one.
  compare_to_ref(300, 2, 1, 8, Precision::F32, kF32Abs, seed++);
  // Odd head_dim.
  compare_to_ref(17, 3, 1, 33, Precision::F32, kF32Abs, seed++);
}

TEST(Attention, MatchesReferenceBf16) {
  uint32_t seed = 100;
  for (int64_t T : {1, 17, 129})
    for (int64_t ratio : {1, 2, 4}) compare_to_ref(T, 4, 4 / ratio, 16, Precision::BF16, kBF16Abs, seed++);
  compare_to_ref(300, 2, 1, 8, Precision::BF16, kBF16Abs, seed++);
}

TEST(Attention, CausalFutureDoesNotLeak) {
  // Changing k, v at positions > t0 must leave rows 0..t0 bit-identical (masked products are
  // exact zeros), while rows after t0 do change.
  for (int64_t T : {33, 300}) {
    const int64_t H = 4, Hkv = 2, D = 8, t0 = T / 2;
    auto in = make_inputs(T, H, Hkv, D, 7);
    auto k2 = in.k, v2 = in.v;
    for (int64_t i = (t0 + 1) * Hkv * D; i < T * Hkv * D; ++i) {
      k2[i] += 0.75f;
      v2[i] = -v2[i] * 2.0f;
    }
    std::vector<float> a(size_t(T * H * D)), b(a.size()), scratch(attention_scratch_floats(T));
    attention_forward(a.data(), scratch.data(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv, D,
                      0.35f, Precision::F32);
    attention_forward(b.data(), scratch.data(), in.q.data(), k2.data(), v2.data(), T, H, Hkv, D,
                      0.35f, Precision::F32);
    for (int64_t i = 0; i < (t0 + 1) * H * D; ++i) ASSERT_EQ(a[i], b[i]) << "T=" << T << " @" << i;
    bool later_changed = false;
    for (int64_t i = (t0 + 1) * H * D; i < T * H * D; ++i) later_changed |= a[i] != b[i];
    EXPECT_TRUE(later_changed);
  }
}

}  // namespace
}  // namespace ar
