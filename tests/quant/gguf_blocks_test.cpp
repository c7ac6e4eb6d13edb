// GGUF block formats without fixtures: hand-built blocks decoded to values worked out on paper
// from the byte layouts (ggml-common.h), hand-checked rounding of the simple formats, round-trip
// error bounds on Gaussian data, idempotence, all-zero and constant rows, the importance-weighted
// path, tensor == rows, and the row-length check.
#include "quant/gguf_blocks.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/gguf_scale_search.h"

namespace ar {
namespace {

constexpr GgmlType kAll[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                             GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
                             GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

// fp16 bit patterns used below: 1.0 = 0x3C00, 0.5 = 0x3800, 0.25 = 0x3400, 2.0 = 0x4000, -1.0 = 0xBC00.
constexpr uint16_t kOne = 0x3C00, kHalf = 0x3800, kQuarter = 0x3400, kTwo = 0x4000, kMinusOne = 0xBC00;

template <typename Block>
std::vector<float> decode(GgmlType t, const Block& b) {
  std::vector<float> y(size_t(ggml_info(t).block_elems));
  gguf_dequantize_row(t, &b, int64_t(y.size()), y.data());
  return y;
}

TEST(GgufBlocks, StructSizesMatchTypeTable) {
  EXPECT_EQ(sizeof(BlockQ4_0), ggml_info(GgmlType::Q4_0).block_bytes);
  EXPECT_EQ(sizeof(BlockQ4_1), ggml_info(GgmlType::Q4_1).block_bytes);
  EXPECT_EQ(sizeof(BlockQ5_0), ggml_info(GgmlType::Q5_0).block_bytes);
  EXPECT_EQ(sizeof(BlockQ5_1), ggml_info(GgmlType::Q5_1).block_bytes);
  EXPECT_EQ(sizeof(BlockQ8_0), ggml_info(GgmlType::Q8_0).block_bytes);
  EXPECT_EQ(sizeof(BlockQ2K), ggml_info(GgmlType::Q2_K).block_bytes);
  EXPECT_EQ(sizeof(BlockQ3K), ggml_info(GgmlType::Q3_K).block_bytes);
  EXPECT_EQ(sizeof(BlockQ4K), ggml_info(GgmlType::Q4_K).block_bytes);
  EXPECT_EQ(sizeof(BlockQ5K), ggml_info(GgmlType::Q5_K).block_bytes);
  EXPECT_EQ(sizeof(BlockQ6K), ggml_info(GgmlType::Q6_K).block_bytes);
}

TEST(GgufBlocks, HandBuiltSimpleBlocksDecode) {
  BlockQ4_0 a{};
  a.d = kHalf;
  a.qs[0] = 0x1F;  // weight 0: 15, weight 16: 1
  auto y = decode(GgmlType::Q4_0, a);
  EXPECT_EQ(y[0], 3.5f);     // (15 - 8) * 0.5
  EXPECT_EQ(y[16], -3.5f);   // (1 - 8) * 0.5
  EXPECT_EQ(y[1], -4.0f);    // (0 - 8) * 0.5

  BlockQ4_1 b{};
  b.d = kQuarter;
  b.m = kMinusOne;
  b.qs[3] = 0xA2;
  y = decode(GgmlType::Q4_1, b);
  EXPECT_EQ(y[3], -0.5f);  // 2 * 0.25 - 1
  EXPECT_EQ(y[19], 1.5f);  // 10 * 0.25 - 1

  BlockQ5_0 c{};
  c.d = kOne;
  c.qs[2] = 0x53;                          // weight 2 low 3, weight 18 low 5
  c.qh[0] = 0x04;                          // bit 2: weight 2 high bit
  c.qh[2] = 0x04;                          // bit 18: weight 18 high bit
  y = decode(GgmlType::Q5_0, c);
  EXPECT_EQ(y[2], 3.0f);    // 19 - 16
  EXPECT_EQ(y[18], 5.0f);   // 21 - 16
  EXPECT_EQ(y[0], -16.0f);  // 0 - 16

  BlockQ5_1 d{};
  d.d = kHalf;
  d.m = kTwo;
  d.qs[0] = 0x01;
  d.qh[0] = 0x01;
  d.qh[3] = 0x80;  // bit 31: weight 31
  y = decode(GgmlType::Q5_1, d);
  EXPECT_EQ(y[0], 10.5f);  // 17 * 0.5 + 2
  EXPECT_EQ(y[31], 10.0f); // 16 * 0.5 + 2

  BlockQ8_0 e{};
  e.d = kQuarter;
  e.qs[5] = -7;
  y = decode(GgmlType::Q8_0, e);
  EXPECT_EQ(y[5], -1.75f);
}

TEST(GgufBlocks, HandBuiltKQuantBlocksDecode) {
  BlockQ2K a{};
  a.d = kOne;
  a.dmin = kHalf;
  a.scales[0] = 0x23;   // sub-block 0: scale 3, min 2
  a.scales[2] = 0x11;   // sub-block 2 (weights 32..47): scale 1, min 1
  a.scales[9] = 0x05;   // sub-block 9 (weights 144..159): scale 5, min 0
  a.qs[0] = 0x06;       // weight 0: bits 0-1 = 2; weight 32: bits 2-3 = 1
  a.qs[48] = 0x03;      // second half, byte 16 -> weight 128 + 16 = 144: 3
  auto y = decode(GgmlType::Q2_K, a);
  EXPECT_EQ(y[0], 5.0f);     // 1 * 3 * 2 - 0.5 * 2
  EXPECT_EQ(y[32], 0.5f);    // 1 * 1 * 1 - 0.5 * 1
  EXPECT_EQ(y[144], 15.0f);  // 5 * 3
  EXPECT_EQ(y[1], -1.0f);    // 0 - 0.5 * 2

  BlockQ3K b{};
  b.d = kHalf;
  // Sub-block 0 scale 34 (-> +2): low nibble 2 in scales[0], high bits 2 in scales[8] bits 0-1.
  b.scales[0] = 0x02;
  b.scales[8] = 0x02;
  // Sub-block 13 scale 29 (-> -3): low nibble 13 in scales[5] high nibble, high bits 1 in scales[9] bits 6-7.
  b.scales[5] = 0xD0;
  b.scales[9] = 0x40;
  b.qs[0] = 0x03;     // weight 0: low bits 3
  b.hmask[0] = 0x01;  // weight 0: high bit set -> q = 3
  b.qs[1] = 0x03;     // weight 1: low bits 3, high bit clear -> q = -1
  b.qs[48] = 0x20;    // weight 208 (half 1, pair 2, byte 16): low bits 2, hmask[16] bit 6 clear -> q = -2
  auto z = decode(GgmlType::Q3_K, b);
  EXPECT_EQ(z[0], 3.0f);     // 0.5 * 2 * 3
  EXPECT_EQ(z[1], -1.0f);    // 0.5 * 2 * -1
  EXPECT_EQ(z[208], 3.0f);   // 0.5 * -3 * -2
  EXPECT_EQ(z[2], -4.0f);    // 0.5 * 2 * (0 - 4)

  // Q4_K / Q5_K: sub-block 0 scale 5 min 3; sub-block 5 scale 37 min 20 (6-bit packing by hand:
  // scales[9] = 0x45 low 4 bits of both, scales[1] bits 6-7 = 37 >> 4 = 2, scales[5] bits 6-7 = 20 >> 4 = 1).
  BlockQ4K c{};
  c.d = kOne;
  c.dmin = kOne;
  c.scales[0] = 5;
  c.scales[4] = 3;
  c.scales[9] = 0x45;
  c.scales[1] = 0x80;
  c.scales[5] = 0x40;
  c.qs[0] = 0x07;   // weight 0: 7
  c.qs[64] = 0x30;  // chunk 2, high nibble -> weight 160: 3
  auto w = decode(GgmlType::Q4_K, c);
  EXPECT_EQ(w[0], 32.0f);   // 5 * 7 - 3
  EXPECT_EQ(w[160], 91.0f); // 37 * 3 - 20
  EXPECT_EQ(w[1], -3.0f);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    get_scale_min_k4(j, c.scales, &sc, &m);
    EXPECT_EQ(sc, j == 0 ? 5 : j == 5 ? 37 : 0) << j;
    EXPECT_EQ(m, j == 0 ? 3 : j == 5 ? 20 : j == 1 ? 0 : 0) << j;
  }

  BlockQ5K d{};
  d.d = kOne;
  d.dmin = kOne;
  std::memcpy(d.scales, c.scales, 12);
  d.qs[64] = 0x30;
  d.qh[0] = 0x20;  // bit 2*2+1 = 5: fifth bit of weight 160
  auto v = decode(GgmlType::Q5_K, d);
  EXPECT_EQ(v[160], 683.0f);  // 37 * 19 - 20

  BlockQ6K e{};
  e.d = kHalf;
  e.scales[0] = -2;
  e.scales[12] = 3;
  e.ql[0] = 0x0F;
  e.qh[0] = 0x03;   // weight 0: 15 | 3 << 4 = 63 -> 31
  e.ql[72] = 0x10;  // weight 200 (half 1, quarter 2, l 8): low 1
  e.qh[40] = 0x20;  // bits 4-5 = 2 -> 1 | 32 = 33 -> 1
  auto u = decode(GgmlType::Q6_K, e);
  EXPECT_EQ(u[0], -31.0f);  // 0.5 * -2 * 31
  EXPECT_EQ(u[200], 1.5f);  // 0.5 * 3 * 1
  EXPECT_EQ(u[1], 32.0f);   // 0.5 * -2 * -32
}

TEST(GgufBlocks, SimpleQuantizersRoundAsTheReference) {
  // Q4_0: the largest |x| is -8, so d = -8 / -8 = 1; codes = trunc(x + 8.5) clipped to 15.
  std::vector<float> x(32, 0.f);
  x[0] = -8.f;
  x[1] = 0.5f;   // 9.0 -> 9 (ties go up)
  x[2] = -0.5f;  // 8.0 -> 8
  x[3] = 7.9f;   // 16.4 -> 16 -> 15
  x[16] = 1.4f;  // 9.9 -> 9
  BlockQ4_0 a;
  gguf_quantize_row(GgmlType::Q4_0, x.data(), 32, &a);
  EXPECT_EQ(a.d, kOne);
  EXPECT_EQ(a.qs[0], 0x0 | (9 << 4));
  EXPECT_EQ(a.qs[1], 9 | (8 << 4));
  EXPECT_EQ(a.qs[2], 8 | (8 << 4));
  EXPECT_EQ(a.qs[3], 15 | (8 << 4));

  // Q8_0: roundf, ties away from zero. amax 127 -> d = 1.
  std::vector<float> z(32, 0.f);
  z[0] = 127.f;
  z[1] = 2.5f;
  z[2] = -2.5f;
  z[3] = 3.5f;
  BlockQ8_0 b;
  gguf_quantize_row(GgmlType::Q8_0, z.data(), 32, &b);
  EXPECT_EQ(b.d, kOne);
  EXPECT_EQ(b.qs[1], 3);
  EXPECT_EQ(b.qs[2], -3);
  EXPECT_EQ(b.qs[3], 4);

  // Q4_1: min -1, max 14 -> d = 1, m = -1; codes trunc(x + 1 + 0.5).
  std::vector<float> u(32, 0.f);
  u[0] = -1.f;
  u[1] = 14.f;
  u[2] = 0.5f;  // 2.0 -> 2
  BlockQ4_1 c;
  gguf_quantize_row(GgmlType::Q4_1, u.data(), 32, &c);
  EXPECT_EQ(c.d, kOne);
  EXPECT_EQ(c.m, kMinusOne);
  EXPECT_EQ(c.qs[0] & 0xF, 0);
  EXPECT_EQ(c.qs[1] & 0xF, 15);
  EXPECT_EQ(c.qs[2] & 0xF, 2);
  EXPECT_EQ(c.qs[3] & 0xF, 1);  // 0 -> 1.5 -> 1
}

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 0.02f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// Relative RMS error bounds on Gaussian weights, 1.4-2x what each format achieves (uniform
// b-bit rounding of a Gaussian block gives roughly 2^-b of its range).
double rel_rms_bound(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1e-3;
    case GgmlType::BF16: return 5e-3;
    case GgmlType::Q8_0: return 0.01;
    case GgmlType::Q6_K: return 0.03;
    case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q5_K: return 0.06;
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q4_K: return 0.12;
    case GgmlType::Q3_K: return 0.25;
    case GgmlType::Q2_K: return 0.50;
  }
  return 0;
}

TEST(GgufBlocks, RoundTripErrorBounds) {
  const int64_t rows = 8, n = 512;
  const auto x = gaussian(size_t(rows * n), 7);
  double xs = 0;
  for (float v : x) xs += double(v) * v;
  for (GgmlType t : kAll) {
    std::vector<uint8_t> q(size_t(rows) * ggml_row_bytes(t, n));
    std::vector<float> y(x.size());
    gguf_quantize_tensor(t, x.data(), rows, n, q.data());
    gguf_dequantize_tensor(t, q.data(), rows, n, y.data());
    double es = 0, emax = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      es += double(y[i] - x[i]) * (y[i] - x[i]);
      emax = std::max(emax, double(std::fabs(y[i] - x[i])));
    }
    const double rel = std::sqrt(es / xs);
    EXPECT_LE(rel, rel_rms_bound(t)) << ggml_info(t).name;
    if (t != GgmlType::F32) {
      EXPECT_GT(rel, 0) << ggml_info(t).name << " lost nothing: suspicious";
    }
    std::printf("[ gguf ] %-5s rel rms err %.5f  max |err| %.6f\n", std::string(ggml_info(t).name).c_str(), rel, emax);
  }
}

TEST(GgufBlocks, SymmetricFormatsAreIdempotent) {
  // Requantizing a dequantized Q4_0 / Q5_0 / Q8_0 row gives the same bytes: the extreme level
  // maps back to the same d exactly, every other value to its own level.
  const auto x = gaussian(1024, 11);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0}) {
    const size_t bytes = ggml_row_bytes(t, 1024);
    std::vector<uint8_t> q1(bytes), q2(bytes);
    std::vector<float> y(1024);
    gguf_quantize_row(t, x.data(), 1024, q1.data());
    gguf_dequantize_row(t, q1.data(), 1024, y.data());
    gguf_quantize_row(t, y.data(), 1024, q2.data());
    EXPECT_EQ(q1, q2) << ggml_info(t).name;
  }
}

TEST(GgufBlocks, ZeroAndConstantRows) {
  const int64_t n = 512;
  const std::vector<float> zeros(size_t(n), 0.f), ones(size_t(n), 0.75f);
  for (GgmlType t : kAll) {
    std::vector<uint8_t> q(ggml_row_bytes(t, n));
    std::vector<float> y(size_t(n), 1.f);
    gguf_quantize_row(t, zeros.data(), n, q.data());
    gguf_dequantize_row(t, q.data(), n, y.data());
    for (float v : y) ASSERT_EQ(v, 0.f) << ggml_info(t).name;
    // A constant row (0.75 is exact in fp16) comes back within 2 % everywhere and never NaN.
    gguf_quantize_row(t, ones.data(), n, q.data());
    gguf_dequantize_row(t, q.data(), n, y.data());
    for (float v : y) ASSERT_NEAR(v, 0.75f, 0.015f) << ggml_info(t).name;
  }
}

TEST(GgufBlocks, ImportanceWeightsLowerWeightedError) {
  // Half of the columns matter 100x more: the weighted path must beat the reference path on the
  // weighted squared error (summed over 16 rows).
  const int64_t rows = 16, n = 512;
  const auto x = gaussian(size_t(rows * n), 3);
  std::vector<float> imp(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) imp[size_t(j)] = (j / 8) % 2 ? 100.f : 1.f;
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K,
                     GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    double err[2] = {0, 0};
    for (int with = 0; with < 2; ++with) {
      std::vector<uint8_t> q(size_t(rows) * ggml_row_bytes(t, n));
      std::vector<float> y(x.size());
      gguf_quantize_tensor(t, x.data(), rows, n, q.data(), with ? imp.data() : nullptr);
      gguf_dequantize_tensor(t, q.data(), rows, n, y.data());
      for (size_t i = 0; i < x.size(); ++i) err[with] += imp[i % size_t(n)] * double(y[i] - x[i]) * (y[i] - x[i]);
    }
    EXPECT_LT(err[1], err[0]) << ggml_info(t).name;
    std::printf("[ gguf ] %-5s weighted err with/without importance %.3f\n", std::string(ggml_info(t).name).c_str(),
                err[1] / err[0]);
  }
}

TEST(GgufBlocks, TensorIsRowsConcatenated) {
  const int64_t rows = 5, n = 256;
  const auto x = gaussian(size_t(rows * n), 5);
  for (GgmlType t : kAll) {
    const size_t rb = ggml_row_bytes(t, n);
    std::vector<uint8_t> whole(size_t(rows) * rb), by_row(whole.size());
    gguf_quantize_tensor(t, x.data(), rows, n, whole.data());
    for (int64_t r = 0; r < rows; ++r) gguf_quantize_row(t, x.data() + r * n, n, by_row.data() + size_t(r) * rb);
    EXPECT_EQ(whole, by_row) << ggml_info(t).name;
  }
}

TEST(GgufBlocks, RowLengthMustDivideTheBlock) {
  std::vector<float> x(300, 0.1f);
  std::vector<uint8_t> q(4096);
  EXPECT_THROW(gguf_quantize_row(GgmlType::Q4_K, x.data(), 300, q.data()), InternalError);
  EXPECT_THROW(gguf_quantize_row(GgmlType::Q8_0, x.data(), 300, q.data()), InternalError);
  EXPECT_THROW(gguf_dequantize_row(GgmlType::Q6_K, q.data(), 300, x.data()), InternalError);
  EXPECT_THROW(gguf_quantize_tensor(GgmlType::Q2_K, x.data(), 1, 100, q.data()), InternalError);
  EXPECT_NO_THROW(gguf_quantize_row(GgmlType::Q8_0, x.data(), 288, q.data()));
  EXPECT_NO_THROW(gguf_quantize_row(GgmlType::F16, x.data(), 299, q.data()));
}

TEST(GgufBlocks, GroupedAffineSearchEqualsSingleGroupSearch) {
  // The lockstep search must give the single-group search's result bit for bit: random groups of
  // 16 and 32 (odd group counts leave padded lanes), plus all-equal, all-positive and all-zero groups.
  std::mt19937 rng(17);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int n : {16, 32}) {
    const int groups = 301;
    std::vector<float> x(size_t(groups * n)), w(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = nd(rng);
      w[i] = std::fabs(nd(rng)) + 0.1f;
    }
    for (int i = 0; i < n; ++i) {
      x[size_t(2 * n + i)] = 0.5f;                         // all equal: no search
      x[size_t(3 * n + i)] = 1.f + std::fabs(x[size_t(3 * n + i)]);  // all positive: min clamped to 0
      x[size_t(4 * n + i)] = 0.f;
    }
    for (int v3 = 0; v3 < 2; ++v3)
      for (int weighted = 0; weighted < 2; ++weighted) {
        if (!v3 && !weighted) continue;  // the v2 search always takes weights
        const float* wp = weighted ? w.data() : nullptr;
        std::vector<uint8_t> L(x.size()), L1(x.size());
        std::vector<float> sc(static_cast<size_t>(groups)), mn(static_cast<size_t>(groups));
        gguf::fit_affine_levels_groups(groups, n, 15, x.data(), wp, L.data(), sc.data(), mn.data(), -1.f, 0.1f, 20,
                                       n == 16, v3 != 0);
        for (int g = 0; g < groups; ++g) {
          const size_t o = size_t(g * n);
          float m1 = 0;
          const float s1 = v3 ? gguf::fit_affine_levels_v3(n, 15, x.data() + o, wp ? wp + o : nullptr, L1.data() + o,
                                                           &m1, -1.f, 0.1f, 20, n == 16)
                              : gguf::fit_affine_levels(n, 15, x.data() + o, wp + o, L1.data() + o, &m1, -1.f, 0.1f,
                                                        20, n == 16);
          EXPECT_EQ(std::memcmp(&s1, &sc[size_t(g)], 4), 0) << "n " << n << " v3 " << v3 << " group " << g;
          EXPECT_EQ(std::memcmp(&m1, &mn[size_t(g)], 4), 0) << "n " << n << " v3 " << v3 << " group " << g;
        }
        EXPECT_EQ(L, L1) << "n " << n << " v3 " << v3;
      }
  }
}

TEST(GgufBlocks, GroupedSymSearchEqualsSingleGroupSearch) {
  std::mt19937 rng(23);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int n : {16, 32})
    for (int nmax : {4, 8, 16, 32}) {
      const int groups = 301;  // enough that rarely chosen candidates (~0.5 % of groups) show up
      std::vector<float> x(size_t(groups * n)), w(x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        x[i] = nd(rng);
        w[i] = std::fabs(nd(rng));
      }
      for (int i = 0; i < n; ++i) {
        x[size_t(1 * n + i)] = 0.f;            // all zero
        x[size_t(5 * n + i)] = i == 3 ? -2.f : 2.f;  // ties in |x|: the first one sets the sign
      }
      for (int weighted = 0; weighted < 2; ++weighted) {
        const float* wp = weighted ? w.data() : nullptr;
        std::vector<int8_t> L(x.size()), L1(x.size());
        std::vector<float> sc(static_cast<size_t>(groups));
        gguf::fit_sym_levels_groups(groups, n, nmax, x.data(), wp, L.data(), sc.data());
        for (int g = 0; g < groups; ++g) {
          const size_t o = size_t(g * n);
          const float s1 = gguf::fit_sym_levels(n, nmax, x.data() + o, wp ? wp + o : nullptr, L1.data() + o);
          EXPECT_EQ(std::memcmp(&s1, &sc[size_t(g)], 4), 0) << "n " << n << " nmax " << nmax << " group " << g;
        }
        EXPECT_EQ(L, L1) << "n " << n << " nmax " << nmax << " weighted " << weighted;
      }
    }
}

}  // namespace
}  // namespace ar
