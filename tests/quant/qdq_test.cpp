// Group primitives: fp16 scale rounding and floor, and the AVX2 paths against their _ref siblings
// (bit for bit, odd sizes, with and without v / importance).
#include "quant/qdq.h"

#include <gtest/gtest.h>

#include "core/dtype.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace ar {
namespace {

TEST(Qdq, RoundScaleF16) {
  EXPECT_EQ(round_scale_f16(0.1f), 0x2E66);
  EXPECT_EQ(round_scale_f16(-0.1f), 0xAE66);
  EXPECT_EQ(round_scale_f16(0.f), 0x00A8);    // fp16(1e-5) = 168 * 2^-24
  EXPECT_EQ(round_scale_f16(-0.f), 0x00A8);   // torch.where(s < 0, ...) sends -0 to the + side
  EXPECT_EQ(round_scale_f16(3e-6f), 0x00A8);
  EXPECT_EQ(round_scale_f16(-3e-6f), 0x80A8);
  EXPECT_EQ(round_scale_f16(1.0013580322265625e-05f), 0x00A8);  // exactly the floor: kept
  EXPECT_EQ(round_scale_f16(1.2e-5f), 0x00C9);                  // above the floor: 201 * 2^-24
}

TEST(Qdq, GroupParamsHandValues) {
  const float w[4] = {0.1f, -0.8f, 0.3f, 0.5f};
  const GroupQuant s = sym_group_params(w, 4, 4);
  EXPECT_EQ(s.scale_f16, 0x2E66);
  EXPECT_EQ(s.scale, 0.0999755859375f);
  EXPECT_EQ(s.zero, 8);
  // asym 4-bit: s = 1.3/15 = 0.08667 -> fp16 0x2D8C = 0.086669921875; zp = round(0.8/s) = round(9.23) = 9.
  const GroupQuant a = asym_group_params(w, 4, 4);
  EXPECT_EQ(a.scale_f16, 0x2D8C);
  EXPECT_EQ(a.zero, 9);
}

std::vector<float> random_vec(size_t n, uint32_t seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

TEST(Qdq, FastCodesEqualReference) {
  if (!qdq_simd_available()) GTEST_SKIP() << "no AVX2: only the reference path exists here";
  for (int64_t n : {1, 3, 7, 8, 9, 17, 32, 33, 129}) {
    const auto w = random_vec(size_t(n), uint32_t(n), 0.3f), v = random_vec(size_t(n), 99, 0.3f);
    for (int bits : {2, 3, 4, 8})
      for (int zero : {0, 1 << (bits - 1)})
        for (const float* vp : {(const float*)nullptr, v.data()}) {
          std::vector<uint8_t> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
          quantize_group_codes(a.data(), w.data(), vp, n, 0.0371f, zero, bits);
          quantize_group_codes_ref(b.data(), w.data(), vp, n, 0.0371f, zero, bits);
          EXPECT_EQ(a, b) << "n " << n << " bits " << bits;
        }
  }
}

// W' of a group: the vector version against the reference, and both against the codes.
TEST(Qdq, GroupFakeQuantIsTheDequantizedCodes) {
  for (int64_t n : {1, 3, 7, 8, 9, 17, 32, 33, 129}) {
    const auto w = random_vec(size_t(n), uint32_t(n), 0.3f), v = random_vec(size_t(n), 99, 0.3f);
    for (int bits : {2, 3, 4, 8})
      for (int zero : {0, 1 << (bits - 1)})
        for (float scale : {0.0371f, -0.05f})
          for (const float* vp : {(const float*)nullptr, v.data()}) {
            std::vector<uint8_t> codes(static_cast<size_t>(n));
            quantize_group_codes_ref(codes.data(), w.data(), vp, n, scale, zero, bits);
            std::vector<float> want(static_cast<size_t>(n)), a(want), b(want);
            for (int64_t i = 0; i < n; ++i) want[size_t(i)] = scale * float(int(codes[size_t(i)]) - zero);
            group_fake_quant(a.data(), w.data(), vp, n, scale, zero, bits);
            group_fake_quant_ref(b.data(), w.data(), vp, n, scale, zero, bits);
            EXPECT_EQ(a, want) << "n " << n << " bits " << bits;
            EXPECT_EQ(b, want) << "n " << n << " bits " << bits;
          }
  }
}

// The bf16 W' of a group: f32_to_bf16 of the f32 W', on both paths (a NaN weight, and an
// infinite scale, whose W' holds NaNs, included).
TEST(Qdq, GroupFakeQuantBf16IsTheRoundedF32) {
  for (int64_t n : {1, 7, 8, 9, 17, 128, 129}) {
    auto w = random_vec(size_t(n), uint32_t(n) + 7, 0.3f);
    const auto v = random_vec(size_t(n), 5, 0.3f);
    if (n > 8) w[3] = NAN;
    for (int bits : {2, 4, 8})
      for (int zero : {0, 1 << (bits - 1)})
        for (float scale : {0.0371f, -0.05f, 1e-5f, float(INFINITY)})  // inf: W' has NaNs and infs
          for (const float* vp : {(const float*)nullptr, v.data()}) {
            std::vector<float> f(static_cast<size_t>(n));
            group_fake_quant_ref(f.data(), w.data(), vp, n, scale, zero, bits);
            std::vector<uint16_t> want(static_cast<size_t>(n)), a(want), b(want);
            for (int64_t i = 0; i < n; ++i) want[size_t(i)] = f32_to_bf16(f[size_t(i)]);
            group_fake_quant_bf16(a.data(), w.data(), vp, n, scale, zero, bits);
            group_fake_quant_bf16_ref(b.data(), w.data(), vp, n, scale, zero, bits);
            EXPECT_EQ(a, want) << "n " << n << " bits " << bits << " scale " << scale;
            EXPECT_EQ(b, want) << "n " << n << " bits " << bits << " scale " << scale;
          }
  }
}

// Many groups' symmetric scales at once: the bits of sym_range_params, with which side won and
// whether the floor applied, for ranges that hit every branch: zero and -0 ranges, tiny ones
// (the floor, both signs), ties between the sides, scales at 0 and 1, fp16 overflow, infinite
// weights and NaN scales (which go to the scalar version), and counts that leave a tail.
TEST(Qdq, SymRangeParamsForManyGroupsGiveTheScalarBits) {
  std::mt19937 rng(31);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::uniform_real_distribution<float> ud(0.f, 1.f);
  const int64_t n = 203;
  std::vector<float> mn(static_cast<size_t>(n)), mx(mn), lo(mn), hi(mn);
  for (int64_t i = 0; i < n; ++i) {
    const size_t k = size_t(i);
    mn[k] = -std::fabs(nd(rng));
    mx[k] = std::fabs(nd(rng));
    lo[k] = ud(rng);
    hi[k] = ud(rng);
    switch (i % 13) {
      case 0: mn[k] = mx[k] = 0.f; break;
      case 1: mn[k] = -0.f; mx[k] = 0.f; break;
      case 2: mn[k] *= 1e-4f; mx[k] *= 1e-4f; break;   // below the floor
      case 3: mn[k] = -mx[k]; lo[k] = hi[k]; break;      // the sides tie
      case 4: lo[k] = 0.f; break;
      case 5: hi[k] = 1.f; lo[k] = 1.f; break;
      case 6: mx[k] = 1e6f; break;                        // the fp16 scale overflows
      case 7: if (i % 2) mx[k] = INFINITY; else mn[k] = -INFINITY; break;
      case 8: mn[k] = -INFINITY; lo[k] = 0.f; break;      // inf * 0: NaN
      case 9: {                                           // a NaN with a payload (a corrupt state)
        const uint32_t bits_nan = 0x7fd12345u;
        std::memcpy(&lo[k], &bits_nan, 4);
        break;
      }
      default: break;
    }
  }
  for (int bits : {2, 3, 4, 8})
    for (int64_t count : {n, int64_t(8), int64_t(13)}) {
      std::vector<GroupQuant> a(static_cast<size_t>(count)), b(a);
      std::vector<uint8_t> ha(static_cast<size_t>(count)), hb(ha), fa(ha), fb(ha);
      sym_range_params_n(a.data(), count, mn.data(), mx.data(), bits, lo.data(), hi.data(), ha.data(), fa.data());
      sym_range_params_n_ref(b.data(), count, mn.data(), mx.data(), bits, lo.data(), hi.data(), hb.data(), fb.data());
      for (int64_t i = 0; i < count; ++i) {
        const size_t k = size_t(i);
        const GroupQuant want = sym_range_params(mn[k], mx[k], bits, lo[k], hi[k]);
        EXPECT_EQ(a[k].scale_f16, want.scale_f16) << "group " << i << " bits " << bits;
        EXPECT_EQ(b[k].scale_f16, want.scale_f16) << "group " << i << " bits " << bits;
        uint32_t ua, uw;
        std::memcpy(&ua, &a[k].scale, 4);
        std::memcpy(&uw, &want.scale, 4);
        EXPECT_EQ(ua, uw) << "group " << i << " bits " << bits;
        EXPECT_EQ(a[k].zero, want.zero);
        EXPECT_EQ(ha[k], hb[k]) << "group " << i;
        EXPECT_EQ(fa[k], fb[k]) << "group " << i << " bits " << bits;
      }
      int floored = 0;
      for (uint8_t f : fb) floored += f;
      if (count == n) {
        EXPECT_GT(floored, 0) << "no group reached the floor";
      }
    }
}

TEST(Qdq, GroupRangeIsMinAndMaxWithZero) {
  for (int64_t n : {1, 7, 8, 15, 16, 17, 33, 128, 129}) {
    auto w = random_vec(size_t(n), uint32_t(n) + 5, 0.3f);
    for (int variant = 0; variant < 3; ++variant) {
      if (variant == 1)
        for (auto& x : w) x = std::fabs(x);  // all positive: the minimum is 0
      if (variant == 2) {
        w[size_t(n / 2)] = std::nanf("");  // skipped
        w[0] = -0.f;
      }
      float want_mn = 0, want_mx = 0;
      for (float x : w) {
        if (std::isnan(x)) continue;
        want_mn = std::min(want_mn, x);
        want_mx = std::max(want_mx, x);
      }
      float mn = 1, mx = -1;
      group_range(w.data(), n, &mn, &mx);
      EXPECT_EQ(mn, want_mn) << "n " << n << " variant " << variant;
      EXPECT_EQ(mx, want_mx) << "n " << n << " variant " << variant;
      EXPECT_FALSE(std::signbit(mn) && mn == 0) << "a zero minimum is +0";
    }
  }
}

TEST(Qdq, FastErrorsEqualReference) {
  if (!qdq_simd_available()) GTEST_SKIP() << "no AVX2: only the reference path exists here";
  const float scales[kErrorBatch] = {0.05f, -0.05f, 0.031f, -0.2f, 1e-5f, 0.07f, -0.013f, 0.5f};
  const int zeros[kErrorBatch] = {8, 8, 0, 15, 7, 3, 8, 12};
  for (int64_t n : {1, 3, 7, 8, 9, 17, 32, 33, 129, 1000}) {
    const auto w = random_vec(size_t(n), uint32_t(n), 0.3f);
    auto imp = random_vec(size_t(n), 5, 1.f);
    for (auto& x : imp) x = x * x;
    for (const float* ip : {(const float*)nullptr, (const float*)imp.data()})
      for (int count : {1, 3, 8}) {
        float a[kErrorBatch], b[kErrorBatch];
        group_errors(a, w.data(), ip, n, scales, zeros, count, 15);
        group_errors_ref(b, w.data(), ip, n, scales, zeros, count, 15);
        for (int k = 0; k < count; ++k) EXPECT_EQ(a[k], b[k]) << "n " << n << " candidate " << k;
      }
  }
}

// The fake quantizer's per-group backward: the AVX2 version against the reference, bit for bit,
// in both modes (dv accumulated, or v stepped in place), for groups whose codes hit the clamp.
TEST(Qdq, FastGroupGradEqualsReference) {
  if (!qdq_simd_available()) GTEST_SKIP() << "no AVX2: only the reference path exists here";
  const GroupGradConsts consts[] = {{0.0371f, 0.f, -8.f, 7.f, false}, {0.0371f, 0.f, -8.f, 7.f, true},
                                    {-0.05f, 0.f, -2.f, 1.f, false}, {0.0213f, 9.f, 0.f, 15.f, false},
                                    {0.0213f, 9.f, 0.f, 15.f, true}};
  for (int64_t n : {1, 3, 7, 8, 9, 17, 32, 33, 128, 129}) {
    const auto w = random_vec(size_t(n), uint32_t(n), 0.3f), v = random_vec(size_t(n), 99, 0.3f);
    const auto g = random_vec(size_t(n), 7, 1.f);
    for (const GroupGradConsts& k : consts)
      for (const float* vp : {(const float*)nullptr, v.data()}) {
        std::vector<float> dva(size_t(n), 0.25f), dvb(dva);
        const GroupGradSums a = group_grad(g.data(), w.data(), vp, n, k, dva.data(), nullptr, 0.f);
        const GroupGradSums b = group_grad_ref(g.data(), w.data(), vp, n, k, dvb.data(), nullptr, 0.f);
        EXPECT_EQ(a.ds, b.ds) << "n " << n;
        EXPECT_EQ(a.dzp, b.dzp) << "n " << n;
        EXPECT_EQ(dva, dvb) << "n " << n;
        std::vector<float> va(v), vb(v);
        const GroupGradSums c = group_grad(g.data(), w.data(), va.data(), n, k, nullptr, va.data(), 0.01f);
        const GroupGradSums d = group_grad_ref(g.data(), w.data(), vb.data(), n, k, nullptr, vb.data(), 0.01f);
        EXPECT_EQ(c.ds, d.ds) << "n " << n;
        EXPECT_EQ(c.dzp, d.dzp) << "n " << n;
        EXPECT_EQ(va, vb) << "n " << n;
        EXPECT_NE(va, v) << "n " << n;  // the step moved v
        // The codes taken in the pass: quantize_group_codes' with zero - qlo as its zero.
        const int bits = int(std::lround(std::log2(k.qhi - k.qlo + 1)));
        std::vector<uint8_t> want(static_cast<size_t>(n)), ca(static_cast<size_t>(n) + 8, 0xee), cb(ca);
        quantize_group_codes_ref(want.data(), w.data(), vp, n, k.scale, int(k.zero - k.qlo), bits);
        group_grad(g.data(), w.data(), vp, n, k, nullptr, nullptr, 0.f, ca.data());
        group_grad_ref(g.data(), w.data(), vp, n, k, nullptr, nullptr, 0.f, cb.data());
        EXPECT_EQ(0, std::memcmp(want.data(), ca.data(), size_t(n))) << "n " << n;
        EXPECT_EQ(ca, cb) << "n " << n;  // and nothing past n
        EXPECT_EQ(ca[size_t(n)], 0xee) << "n " << n;
      }
  }
}

// dL/dW' as bf16 bits: both versions give the f32 versions' sums, dv, stepped v and codes on its
// widened values, for group sizes with and without a tail (the vector one reads nothing past n).
TEST(Qdq, GroupGradOfBf16GradientsIsThatOfTheirValues) {
  const GroupGradConsts consts[] = {{0.0371f, 0.f, -8.f, 7.f, false}, {0.0213f, 9.f, 0.f, 15.f, true}};
  for (int64_t n : {1, 7, 8, 9, 33, 128, 129}) {
    const auto w = random_vec(size_t(n), uint32_t(n), 0.3f), v = random_vec(size_t(n), 98, 0.3f);
    const auto g32 = random_vec(size_t(n), 8, 1.f);
    // A copy with room past n holding a marker a read past the group would turn into a gradient.
    std::vector<uint16_t> g16(size_t(n) + 8, 0x7f80);
    std::vector<float> gw(static_cast<size_t>(n));
    for (size_t i = 0; i < size_t(n); ++i) {
      g16[i] = f32_to_bf16(g32[i]);
      gw[i] = bf16_to_f32(g16[i]);
    }
    for (const GroupGradConsts& k : consts)
      for (const auto fast : {true, false}) {
        using Fn16 = GroupGradSums (*)(const uint16_t*, const float*, const float*, int64_t, const GroupGradConsts&,
                                       float*, float*, float, uint8_t*);
        const Fn16 run16 = fast ? static_cast<Fn16>(&group_grad) : static_cast<Fn16>(&group_grad_ref);
        std::vector<float> dva(size_t(n), 0.25f), dvb(dva), va(v), vb(v);
        std::vector<uint8_t> ca(static_cast<size_t>(n)), cb(ca);
        const GroupGradSums a = run16(g16.data(), w.data(), v.data(), n, k, dva.data(), nullptr, 0.f, ca.data());
        const GroupGradSums b = group_grad_ref(gw.data(), w.data(), v.data(), n, k, dvb.data(), nullptr, 0.f, cb.data());
        EXPECT_EQ(a.ds, b.ds) << "n " << n << " fast " << fast;
        EXPECT_EQ(a.dzp, b.dzp) << "n " << n << " fast " << fast;
        EXPECT_EQ(dva, dvb) << "n " << n << " fast " << fast;
        EXPECT_EQ(ca, cb) << "n " << n << " fast " << fast;
        run16(g16.data(), w.data(), va.data(), n, k, nullptr, va.data(), 0.01f, nullptr);
        group_grad_ref(gw.data(), w.data(), vb.data(), n, k, nullptr, vb.data(), 0.01f, nullptr);
        EXPECT_EQ(va, vb) << "n " << n << " fast " << fast;
      }
  }
}

TEST(Qdq, ErrorHandValues) {
  // Candidate 0: s = 0.5, zero 8 (4-bit sym): w = {0.3, -1.1, 5.0} -> q = 1, -2, 7 (clamped from 10);
  // errors 0.2^2, 0.1^2, 1.5^2 weighted by imp {1, 2, 0.5} = 0.04 + 0.02 + 1.125 = 1.185.
  // Candidate 1: s = 0.25, zero 2 (asym 4-bit, codes 0..15): q - zero = 1, -2 (clamped from -4), 13
  // (clamped from 20) -> errors 0.05^2, 0.6^2, 1.75^2 -> 0.0025 + 0.72 + 1.53125 = 2.25375.
  const float w[3] = {0.3f, -1.1f, 5.0f}, imp[3] = {1.f, 2.f, 0.5f};
  const float scales[2] = {0.5f, 0.25f};
  const int zeros[2] = {8, 2};
  float e[2];
  group_errors(e, w, imp, 3, scales, zeros, 2, 15);
  EXPECT_NEAR(e[0], 1.185f, 1e-6f);
  EXPECT_NEAR(e[1], 2.25375f, 1e-6f);
  group_errors(e, w, nullptr, 3, scales, zeros, 1, 15);
  EXPECT_NEAR(e[0], 0.04f + 0.01f + 2.25f, 1e-6f);
}

TEST(Qdq, CandidateScalesEqualReference) {
  std::vector<float> den(201);
  for (int j = 0; j < 201; ++j) den[size_t(j)] = 8.f * float(1.0 - 0.0075 * (j - 100));
  for (float num : {0.37f, -0.37f, 1e-4f, -3e-5f, 0.f, -0.f, 65000.f, 1e-9f}) {
    std::vector<float> a(201), b(201);
    candidate_scales(a.data(), num, den.data(), 201);
    candidate_scales_ref(b.data(), num, den.data(), 201);
    for (int j = 0; j < 201; ++j) {
      EXPECT_EQ(a[size_t(j)], b[size_t(j)]) << "num " << num << " j " << j;
      EXPECT_EQ(b[size_t(j)], f16_to_f32(round_scale_f16(num / den[size_t(j)])));
    }
  }
}

}  // namespace
}  // namespace ar
