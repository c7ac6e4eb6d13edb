#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cstring>

#include <cmath>
#include <limits>
#include <vector>
#include <cstdint>

namespace ar {
namespace {

// Hand-checked bit patterns (IEEE 754 binary16 / bfloat16 tables).
TEST(DType, F16KnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);           // rounds to inf
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -26)), 0x0000);  // below half a subnormal
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie -> even (up)
  EXPECT_FLOAT_EQ(f16_to_f32(0x3555), 0.333251953125f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
}

TEST(DType, F16RoundTripAllFinite) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;  // inf/nan
    EXPECT_EQ(f32_to_f16(f16_to_f32(uint16_t(h))), h) << std::hex << h;
  }
}

// f32_to_f16 / f16_to_f32 use F16C where the CPU has it: the bits of the portable versions for
// every half, and for floats across the whole range (a stride through all bit patterns, plus
// each exponent's ties and neighbours of the rounding point), NaNs and infinities included.
TEST(DType, F16ConversionsGiveThePortableBits) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float a = f16_to_f32(uint16_t(h)), b = f16_to_f32_ref(uint16_t(h));
    uint32_t ua, ub;
    std::memcpy(&ua, &a, 4);
    std::memcpy(&ub, &b, 4);
    ASSERT_EQ(ua, ub) << std::hex << h;
  }
  auto check = [](uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    ASSERT_EQ(f32_to_f16(f), f32_to_f16_ref(f)) << std::hex << u;
  };
  for (uint64_t u = 0; u <= 0xffffffffull; u += 4099) check(uint32_t(u));
  for (uint32_t sign : {0u, 0x80000000u})
    for (uint32_t e = 0; e < 256; ++e)
      for (uint32_t low : {0x0u, 0x0fffu, 0x1000u, 0x1001u, 0x2fffu, 0x3000u, 0x3001u, 0x7fffffu})
        check(sign | e << 23 | low);
}

TEST(DType, BF16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  float tie_low;   // 1 + 2^-8: halfway between 1 and 1+2^-7 -> even (1.0)
  tie_low = 1.0f + std::ldexp(1.0f, -8);
  EXPECT_EQ(f32_to_bf16(tie_low), 0x3f80);
  float tie_high = 1.0f + 3 * std::ldexp(1.0f, -8);  // halfway, rounds up to even
  EXPECT_EQ(f32_to_bf16(tie_high), 0x3f82);
  EXPECT_EQ(bf16_to_f32(0xc040), -3.0f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

// Every implementation of the array conversion the CPU has gives the scalar f32_to_bf16's bits:
// for each of the 65 536 upper halves with the lower halves around the rounding point (ties
// both ways, NaN payloads, infinities, subnormals, zeros), at every length 0..40 (the 16-wide
// loops' tails) and with a subnormal among normal values (the AVX512-BF16 instruction reads
// one as zero; that block must go the integer way).
TEST(DType, Bf16ArrayConversionsGiveTheScalarBits) {
  std::vector<float> x;
  for (uint32_t hi = 0; hi < 0x10000; ++hi)
    for (uint32_t lo : {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xc000u, 0xffffu}) {
      const uint32_t u = hi << 16 | lo;
      float f;
      std::memcpy(&f, &u, 4);
      x.push_back(f);
    }
  const std::vector<float> small = {1.5f, std::ldexp(1.0f, -140), -2.f, std::ldexp(-1.0f, -127), 0.f, -0.f, 3.f};
  int ran = 0;
  for (Bf16Path p : {Bf16Path::Auto, Bf16Path::Portable, Bf16Path::Avx512, Bf16Path::Avx512Bf16}) {
    std::vector<uint16_t> got(x.size());
    if (!f32_to_bf16_path(p, got.data(), x.data(), x.size())) continue;
    ++ran;
    for (size_t i = 0; i < x.size(); ++i) {
      uint32_t u;
      std::memcpy(&u, &x[i], 4);
      ASSERT_EQ(got[i], f32_to_bf16(x[i])) << "path " << int(p) << " bits " << std::hex << u;
    }
    for (size_t n = 0; n <= 40; ++n) {
      std::vector<float> y(n);
      for (size_t i = 0; i < n; ++i) y[i] = n % 3 == 0 && i == n / 2 ? small[i % small.size()] : x[(n * 7919 + i * 104729) % x.size()];
      std::vector<uint16_t> out(n + 1, 0xabcd);
      ASSERT_TRUE(f32_to_bf16_path(p, out.data(), y.data(), n));
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], f32_to_bf16(y[i])) << "path " << int(p) << " n=" << n << " i=" << i;
      EXPECT_EQ(out[n], 0xabcd) << "path " << int(p) << " wrote past n=" << n;
    }
    std::vector<float> z(64, 1.25f);
    z[37] = std::ldexp(1.0f, -130);  // subnormal: rounds to a bf16 subnormal, not to zero
    std::vector<uint16_t> zo(64);
    ASSERT_TRUE(f32_to_bf16_path(p, zo.data(), z.data(), z.size()));
    for (size_t i = 0; i < z.size(); ++i) ASSERT_EQ(zo[i], f32_to_bf16(z[i])) << "path " << int(p) << " i=" << i;
    EXPECT_NE(zo[37], 0) << "path " << int(p);
  }
  EXPECT_GE(ran, 2);  // Auto and Portable run everywhere
}

// In place: n floats become n packed bf16 values, each the rounded float, for sizes below one chunk
// (16384), at one chunk and across several of the ranges [m, 2m) that run in parallel.
TEST(DType, F32ToBf16InPlacePacksTheRoundedValues) {
  for (size_t n : {size_t(1), size_t(7), size_t(16384), size_t(16385), size_t(3 * 16384 + 5), size_t((1 << 19) + 3)}) {
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = std::sin(float(i) * 0.37f) * float(1 + i % 97);
    std::vector<uint16_t> want(n);
    f32_to_bf16(want.data(), x.data(), n);
    f32_to_bf16_in_place(x.data(), n);
    const uint16_t* got = reinterpret_cast<const uint16_t*>(x.data());
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << "n=" << n << " i=" << i;
  }
}

TEST(DType, NamesParse) {
  DType t;
  EXPECT_TRUE(parse_dtype("BF16", &t));
  EXPECT_EQ(t, DType::BF16);
  EXPECT_EQ(dtype_size(t), 2u);
  EXPECT_TRUE(parse_dtype("F8_E4M3", &t));  // FP8 weights / NVFP4 scales (compressed-tensors, auto_round FP)
  EXPECT_EQ(dtype_size(t), 1u);
  EXPECT_FALSE(parse_dtype("F8_E5M2", &t));
}

}  // namespace
}  // namespace ar
