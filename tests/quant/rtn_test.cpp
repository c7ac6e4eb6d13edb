// RTN per SPEC §2 on groups worked out by hand (each value derived on paper and cross-checked with
// an independent f32/fp16 emulation), plus a whole-matrix check against a plain test-local loop.
#include "quant/rtn.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "core/dtype.h"
#include "quant/opt_rtn.h"

namespace ar {
namespace {

QuantScheme scheme(int bits, int64_t group, bool sym) {
  QuantScheme s;
  s.bits = bits;
  s.group_size = group;
  s.sym = sym;
  return s;
}

std::vector<int> codes_of(const QuantizedWeight& q) { return std::vector<int>(q.codes.begin(), q.codes.end()); }

// One row, one group: scale bits, zero and codes.
void expect_group(const std::vector<float>& w, const QuantScheme& s, uint16_t scale_bits, int zero,
                  const std::vector<int>& codes, const float* v = nullptr, const float* min_scale = nullptr,
                  const float* max_scale = nullptr) {
  const QuantizedWeight q = quantize_rtn(w.data(), 1, int64_t(w.size()), s, v, min_scale, max_scale);
  ASSERT_EQ(q.n_groups, 1);
  EXPECT_EQ(q.scales[0], scale_bits);
  EXPECT_EQ(q.zeros[0], zero);
  EXPECT_EQ(codes_of(q), codes);
}

TEST(Rtn, Sym4NegativeSideLarger) {
  // lo = 0.8 > hi = 0.5: s = +0.8/8 = 0.1 -> fp16 0x2E66 = 0.0999755859375; -0.8 -> q = -8 (code 0).
  expect_group({0.1f, -0.8f, 0.3f, 0.5f}, scheme(4, 4, true), 0x2E66, 8, {9, 0, 11, 13});
}

TEST(Rtn, Sym4PositiveSideLargerGivesNegativeScale) {
  // hi = 0.8 >= lo = 0.2: s = -0.1 (fp16 0xAE66), so 0.8 lands on q = -8.
  expect_group({0.8f, -0.2f, 0.4f, 0.0f}, scheme(4, 4, true), 0xAE66, 8, {0, 10, 4, 8});
}

TEST(Rtn, Sym2TieAndClamp) {
  // hi = lo = 1: the positive side wins, s = -0.5 (exact). 0.25/-0.5 = -0.5 rounds to even (0 -> code 2);
  // -1/-0.5 = 2 is clamped to 1 (code 3).
  expect_group({1.0f, -0.5f, 0.25f, -1.0f}, scheme(2, 4, true), 0xB800, 2, {0, 3, 2, 3});
}

TEST(Rtn, Sym3) {
  expect_group({0.4f, -0.1f, 0.2f, 0.3f}, scheme(3, 4, true), 0xAE66, 4, {0, 5, 2, 1});
}

TEST(Rtn, Sym8) {
  // s = -1/128 = -2^-7 exactly; -1.0 -> q = 128, clamped to 127 (code 255).
  expect_group({1.0f, -0.5f, 0.003f, -1.0f}, scheme(8, 4, true), 0xA000, 128, {0, 192, 128, 255});
}

TEST(Rtn, RoundHalfToEven) {
  // s = +0.5 exactly; w/s = 0.5, 1.5, 2.5, -0.5, -1.5 round to 0, 2, 2, -0, -2 (not away from zero).
  expect_group({-4.f, 0.25f, 0.75f, 1.25f, -0.25f, -0.75f}, scheme(4, 6, true), 0x3800, 8, {0, 8, 10, 10, 8, 6});
}

TEST(Rtn, Asym4) {
  // s = 1.35/15 = 0.09 -> fp16 0x2DC3 = 0.09002685546875; zp = round(0.6/s) = round(6.66) = 7.
  expect_group({0.0f, 0.3f, 0.75f, -0.6f}, scheme(4, 4, false), 0x2DC3, 7, {7, 10, 15, 0});
}

TEST(Rtn, ScaleIsRoundedToFp16BeforeTheCodes) {
  // s = 0.1 in f32 would give -0.74995/0.1 = -7.4995 -> -7 (code 1); the fp16 scale 0.0999756 gives
  // -7.5013 -> -8 (code 0).
  expect_group({-0.8f, -0.74995f, 0.1f, 0.0f}, scheme(4, 4, true), 0x2E66, 8, {0, 0, 9, 8});
}

TEST(Rtn, ScaleFloor) {
  // s = -2.5e-6 is floored to -fp16(1e-5) = -168 * 2^-24 (0x80A8); zero groups get +fp16(1e-5).
  expect_group({2e-5f, -1e-5f}, scheme(4, 2, true), 0x80A8, 8, {6, 9});
  expect_group({0.f, 0.f, 0.f, 0.f}, scheme(4, 4, true), 0x00A8, 8, {8, 8, 8, 8});
  expect_group({0.f, 0.f, 0.f, 0.f}, scheme(4, 4, false), 0x00A8, 0, {0, 0, 0, 0});
}

TEST(Rtn, VShiftsTheRounding) {
  // w/s = 1.0002 + 0.6 -> 2 (code 10); 3.0007 - 0.6 -> 2 (code 10).
  const std::vector<float> v = {0.6f, 0.f, -0.6f, 0.f};
  expect_group({0.1f, -0.8f, 0.3f, 0.5f}, scheme(4, 4, true), 0x2E66, 8, {10, 0, 10, 13}, v.data());
}

TEST(Rtn, MinScaleAndMaxScale) {
  const float half = 0.5f;
  // min_scale 0.5: lo = 0.4 < hi = 0.5 -> s = -0.0625; -0.8 -> 12.8 clamped to 7 (code 15).
  expect_group({0.1f, -0.8f, 0.3f, 0.5f}, scheme(4, 4, true), 0xAC00, 8, {6, 15, 3, 0}, nullptr, &half);
  // max_scale 0.5 clips the positive side: hi = 0.4 -> s = -0.05; 0.8 -> -16 clamped to -8 (code 0).
  expect_group({0.8f, -0.2f, 0.4f, 0.0f}, scheme(4, 4, true), 0xAA66, 8, {0, 12, 0, 8}, nullptr, nullptr, &half);
  // asym, max_scale 0.5: s = 0.975/15 -> 0x2C29 = 0.06500244; zp = round(9.23) = 9; 0.75 clamps to 15.
  expect_group({0.0f, 0.3f, 0.75f, -0.6f}, scheme(4, 4, false), 0x2C29, 9, {9, 14, 15, 0}, nullptr, nullptr,
               &half);
}

TEST(Rtn, GroupsAlongTheRowAndWholeRow) {
  const std::vector<float> w = {0.1f, -0.8f, 0.3f, 0.5f, 0.05f, 0.2f, -0.4f, 0.f};
  const QuantizedWeight g4 = quantize_rtn(w.data(), 1, 8, scheme(4, 4, true));
  ASSERT_EQ(g4.n_groups, 2);
  EXPECT_EQ(g4.scales, (std::vector<uint16_t>{0x2E66, 0x2A66}));  // 0.1 and 0.05 in fp16
  EXPECT_EQ(codes_of(g4), (std::vector<int>{9, 0, 11, 13, 9, 12, 0, 8}));
  const QuantizedWeight all = quantize_rtn(w.data(), 1, 8, scheme(4, -1, true));
  ASSERT_EQ(all.n_groups, 1);
  EXPECT_EQ(all.group, 8);
  EXPECT_EQ(all.scales[0], 0x2E66);
  EXPECT_EQ(codes_of(all), (std::vector<int>{9, 0, 11, 13, 9, 10, 4, 8}));
}

TEST(Rtn, PaddedLastGroup) {
  // in = 172, group 32: 5 full groups of zeros and a last group of 12 real weights 0.05 * (k + 1).
  // Sym: s = -0.6/8 -> 0xACCD = -0.0750122; asym: s = 0.6/15 -> 0x291F = 0.0400085, zp = 0.
  std::vector<float> w(2 * 172, 0.f);
  for (int k = 0; k < 12; ++k) w[160 + k] = w[172 + 160 + k] = 0.05f * float(k + 1);
  const QuantizedWeight s = quantize_rtn(w.data(), 2, 172, scheme(4, 32, true));
  ASSERT_EQ(s.n_groups, 6);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(s.scales[size_t(r * 6 + 5)], 0xACCD);
    EXPECT_EQ(s.scales[size_t(r * 6 + 0)], 0x00A8);
    const std::vector<int> tail(s.codes.begin() + r * 172 + 160, s.codes.begin() + r * 172 + 172);
    EXPECT_EQ(tail, (std::vector<int>{7, 7, 6, 5, 5, 4, 3, 3, 2, 1, 1, 0}));
  }
  const QuantizedWeight a = quantize_rtn(w.data(), 2, 172, scheme(4, 32, false));
  EXPECT_EQ(a.scales[5], 0x291F);
  EXPECT_EQ(a.zeros[5], 0);
  const std::vector<int> tail(a.codes.begin() + 160, a.codes.begin() + 172);
  EXPECT_EQ(tail, (std::vector<int>{1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15}));
}

// Test-local SPEC §2 reference: the formulas written out once more with the core fp16 conversions.
void reference_rtn(const std::vector<float>& w, int64_t out, int64_t in, const QuantScheme& s,
                   std::vector<int>* codes, std::vector<uint16_t>* scales, std::vector<int>* zeros) {
  const int64_t G = s.group_size == -1 ? in : s.group_size, ng = (in + G - 1) / G;
  const float floor16 = f16_to_f32(f32_to_f16(1e-5f));
  codes->assign(size_t(out * in), 0);
  scales->assign(size_t(out * ng), 0);
  zeros->assign(size_t(out * ng), 0);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t g = 0; g < ng; ++g) {
      float mn = 0, mx = 0;
      for (int64_t i = g * G; i < std::min(in, (g + 1) * G); ++i) {
        mn = std::min(mn, w[size_t(o * in + i)]);
        mx = std::max(mx, w[size_t(o * in + i)]);
      }
      float sc;
      int zero, qmax = (1 << s.bits) - 1;
      if (s.sym) {
        sc = f16_to_f32(f32_to_f16((mx >= -mn ? -mx : -mn) / float(1 << (s.bits - 1))));
        if (sc < 0 && sc > -1e-5f) sc = -floor16;
        if (sc >= 0 && sc < 1e-5f) sc = floor16;
        zero = 1 << (s.bits - 1);
      } else {
        sc = f16_to_f32(f32_to_f16((mx - mn) / float(qmax)));
        if (sc < 1e-5f) sc = floor16;
        zero = int(std::nearbyint(-mn / sc));
      }
      (*scales)[size_t(o * ng + g)] = f32_to_f16(sc);
      (*zeros)[size_t(o * ng + g)] = zero;
      for (int64_t i = g * G; i < std::min(in, (g + 1) * G); ++i) {
        const float q = std::nearbyint(w[size_t(o * in + i)] / sc) + float(zero);
        (*codes)[size_t(o * in + i)] = int(std::clamp(q, 0.f, float(qmax)));
      }
    }
}

class RtnMatrix : public ::testing::TestWithParam<std::tuple<int, int64_t, bool>> {};

TEST_P(RtnMatrix, MatchesPlainLoopAndDequantizes) {
  const auto [bits, group, sym] = GetParam();
  const int64_t out = 37, in = 172;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> w(size_t(out * in));
  for (auto& x : w) x = nd(rng);
  w[5] = 0.9f;  // an outlier in one group
  const QuantScheme s = scheme(bits, group, sym);
  const QuantizedWeight q = quantize_rtn(w.data(), out, in, s);
  std::vector<int> codes, zeros;
  std::vector<uint16_t> scales;
  reference_rtn(w, out, in, s, &codes, &scales, &zeros);
  EXPECT_EQ(codes_of(q), codes);
  EXPECT_EQ(q.scales, scales);
  EXPECT_EQ(std::vector<int>(q.zeros.begin(), q.zeros.end()), zeros);

  // fake_quantize writes exactly QuantizedWeight::dequantize's values.
  std::vector<float> deq(w.size()), fq = w;
  q.dequantize(deq.data());
  fake_quantize(fq.data(), out, in, s, false);
  EXPECT_EQ(fq, deq);
  // Round-trip error: at most half a step inside the range (plus fp16 slack), larger only where clipped.
  double max_err = 0;
  for (size_t i = 0; i < w.size(); ++i) max_err = std::max(max_err, double(std::fabs(deq[i] - w[i])));
  EXPECT_LT(max_err, 0.9);
}

INSTANTIATE_TEST_SUITE_P(Schemes, RtnMatrix,
                         ::testing::Combine(::testing::Values(2, 3, 4, 8), ::testing::Values(int64_t(32), int64_t(-1)),
                                            ::testing::Bool()));

TEST(Rtn, SixteenBitsLeavesWeightsAlone) {
  std::vector<float> w = {0.123f, -4.5f};
  fake_quantize(w.data(), 1, 2, scheme(16, 128, true), true);
  EXPECT_EQ(w, (std::vector<float>{0.123f, -4.5f}));
}

// The tuner's form: into an existing result (its storage kept when the shape matches, replaced
// when not), from f32 or bf16 weights, equal to quantize_rtn.
TEST(Rtn, IntoReusesStorageAndEqualsQuantizeRtn) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::uniform_real_distribution<float> ud(-0.5f, 0.5f), sd(0.6f, 1.f);
  QuantizedWeight q;
  for (const auto& [bits, group, sym, out, in] : {std::tuple{4, int64_t(32), true, int64_t(200), int64_t(96)},
                                                  std::tuple{4, int64_t(32), true, int64_t(200), int64_t(96)},
                                                  std::tuple{3, int64_t(-1), false, int64_t(9), int64_t(40)}}) {
    QuantScheme s;
    s.bits = bits;
    s.group_size = group;
    s.sym = sym;
    const int64_t ng = num_groups(s, in);
    std::vector<uint16_t> wb(size_t(out * in));
    std::vector<float> w(wb.size()), v(wb.size()), mn(size_t(out * ng)), mx(mn.size());
    for (size_t i = 0; i < wb.size(); ++i) {
      wb[i] = f32_to_bf16(nd(rng));
      w[i] = bf16_to_f32(wb[i]);
      v[i] = ud(rng);
    }
    for (auto& e : mn) e = sd(rng);
    for (auto& e : mx) e = sd(rng);
    const QuantizedWeight want = quantize_rtn(w.data(), out, in, s, v.data(), mn.data(), mx.data());
    const bool same_shape = q.out == out && q.in == in && q.scheme == s;
    const uint8_t* before = q.codes.data();
    quantize_rtn_into(q, w.data(), out, in, s, v.data(), mn.data(), mx.data());
    if (same_shape) {
      EXPECT_EQ(q.codes.data(), before);  // reused, not reallocated
    }
    EXPECT_EQ(q.codes, want.codes);
    EXPECT_EQ(q.scales, want.scales);
    EXPECT_EQ(q.zeros, want.zeros);
    std::fill(q.codes.begin(), q.codes.end(), uint8_t(0));
    quantize_rtn_into(q, wb.data(), out, in, s, v.data(), mn.data(), mx.data());
    EXPECT_EQ(q.codes, want.codes);
    EXPECT_EQ(q.scales, want.scales);
    EXPECT_EQ(q.zeros, want.zeros);
    EXPECT_TRUE(q.sizes_match());
  }
}

}  // namespace
}  // namespace ar
