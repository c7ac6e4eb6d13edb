// RTN of whole matrices in the floating-point formats (quant/fp_quantize.h): the result equals
// quant/fp_formats' block functions applied by hand per row and block here (a short last block on
// rows that do not divide, NVFP4's one global scale from the whole tensor, FP8Block's 128 x 128
// tiles with short edge tiles), dequantize() equals the formats' dequantizers, and a NaN weight is
// refused by name. The block functions themselves are checked against hand-worked values in
// fp_formats_test.cpp.
#include "quant/fp_quantize.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "quant/fp_formats.h"
#include "quant/opt_rtn.h"
#include "quant/rtn.h"

namespace ar {
namespace {

// Weights with a wide dynamic range (so scales differ between blocks) and exact zeros.
std::vector<float> weights(int64_t out, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  std::uniform_int_distribution<int> e(-12, 4);
  std::vector<float> w(size_t(out * in));
  for (auto& x : w) x = n(rng) * std::ldexp(1.f, e(rng) / 4);
  for (size_t i = 0; i < w.size(); i += 37) w[i] = 0.f;
  return w;
}

std::vector<float> dequantized(const QuantizedWeight& q) {
  std::vector<float> d(size_t(q.out * q.in));
  q.dequantize(d.data());
  return d;
}

float amax(const float* x, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

// MXFP4 / MXFP8 / NVFP4: every (row, block) against the block function; the dequantized matrix
// against the block dequantizer. `gs`: NVFP4's global scale.
void expect_row_blocks(const QuantizedWeight& q, const std::vector<float>& w, int64_t block, float gs) {
  const DataType t = q.scheme.data_type;
  ASSERT_EQ(q.group, block);
  ASSERT_EQ(q.n_groups, (q.in + block - 1) / block);
  ASSERT_TRUE(q.sizes_match());
  const std::vector<float> d = dequantized(q);
  std::vector<uint8_t> codes(static_cast<size_t>(block));
  std::vector<float> want(static_cast<size_t>(block));
  for (int64_t o = 0; o < q.out; ++o)
    for (int64_t g = 0; g < q.n_groups; ++g) {
      const int64_t i0 = g * block, n = std::min(block, q.in - i0), at = o * q.in + i0;
      const uint8_t sc = t == DataType::NVFP4 ? nvfp4_quantize_block(codes.data(), &w[size_t(at)], nullptr, n, gs)
                         : mx_quantize_block(codes.data(), &w[size_t(at)], nullptr, n,
                                             t == DataType::MXFP4 ? MxElem::FP4 : MxElem::FP8);
      EXPECT_EQ(q.scale_codes[size_t(o * q.n_groups + g)], sc) << "row " << o << " block " << g;
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(q.codes[size_t(at + i)], codes[size_t(i)]) << o << "," << i0 + i;
      if (t == DataType::NVFP4) nvfp4_dequantize_block(want.data(), codes.data(), n, sc, gs);
      else mx_dequantize_block(want.data(), codes.data(), n, sc, t == DataType::MXFP4 ? MxElem::FP4 : MxElem::FP8);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(d[size_t(at + i)], want[size_t(i)]) << o << "," << i0 + i;
    }
}

TEST(FpQuantize, MxFp4IsTheBlockFunctionPerRowWithAShortLastBlock) {
  const int64_t out = 5, in = 70;  // 32 + 32 + 6
  const std::vector<float> w = weights(out, in, 1);
  const QuantizedWeight q = quantize_rtn(w.data(), out, in, fp_scheme(DataType::MXFP4));
  EXPECT_TRUE(q.scales.empty() && q.zeros.empty() && q.scales_f32.empty());
  expect_row_blocks(q, w, 32, 0);
}

TEST(FpQuantize, MxFp8IsTheBlockFunctionPerRow) {
  const std::vector<float> w = weights(3, 96, 2);
  expect_row_blocks(quantize_rtn(w.data(), 3, 96, fp_scheme(DataType::MXFP8)), w, 32, 0);
  // A row shorter than one block: one short block.
  const std::vector<float> s = weights(2, 20, 3);
  expect_row_blocks(quantize_rtn(s.data(), 2, 20, fp_scheme(DataType::MXFP8)), s, 32, 0);
}

TEST(FpQuantize, Nvfp4TakesOneGlobalScaleFromTheWholeTensor) {
  const int64_t out = 4, in = 40;  // 16 + 16 + 8
  std::vector<float> w = weights(out, in, 4);
  w[size_t(3 * in + 17)] = 50.f;  // the tensor's amax, in the last row only
  const QuantizedWeight q = quantize_rtn(w.data(), out, in, fp_scheme(DataType::NVFP4));
  const float gs = nvfp4_global_scale(50.f);
  EXPECT_EQ(q.global_scale, gs);
  EXPECT_NE(q.global_scale, nvfp4_global_scale(amax(w.data(), in)));  // not row 0's own amax
  expect_row_blocks(q, w, 16, gs);
}

TEST(FpQuantize, Fp8HasOneScalePerOutputChannel) {
  const int64_t out = 3, in = 50;
  const std::vector<float> w = weights(out, in, 5);
  const QuantizedWeight q = quantize_rtn(w.data(), out, in, fp_scheme(DataType::FP8));
  ASSERT_EQ(q.scales_f32.size(), size_t(out));
  ASSERT_EQ(q.n_groups, 1);
  const std::vector<float> d = dequantized(q);
  std::vector<uint8_t> codes(static_cast<size_t>(in));
  std::vector<float> want(static_cast<size_t>(in));
  for (int64_t o = 0; o < out; ++o) {
    const float scale = fp8_scale(amax(&w[size_t(o * in)], in));
    EXPECT_EQ(q.scales_f32[size_t(o)], scale);
    fp8_quantize(codes.data(), &w[size_t(o * in)], nullptr, in, scale);
    fp8_dequantize(want.data(), codes.data(), in, scale);
    for (int64_t i = 0; i < in; ++i) {
      EXPECT_EQ(q.codes[size_t(o * in + i)], codes[size_t(i)]);
      EXPECT_EQ(d[size_t(o * in + i)], want[size_t(i)]);
    }
  }
}

TEST(FpQuantize, Fp8BlockTilesTheMatrixWithShortEdgeTiles) {
  const int64_t out = 130, in = 200, B = 128;  // tiles: rows 128 + 2, columns 128 + 72
  std::vector<float> w = weights(out, in, 6);
  w[size_t(129 * in + 150)] = 9.f;  // only the bottom-right tile sees it
  const QuantizedWeight q = quantize_rtn(w.data(), out, in, fp_scheme(DataType::FP8Block));
  ASSERT_EQ(q.scale_rows(), 2);
  ASSERT_EQ(q.n_groups, 2);
  ASSERT_EQ(q.scales_f32.size(), 4u);
  const std::vector<float> d = dequantized(q);
  for (int64_t br = 0; br < 2; ++br)
    for (int64_t g = 0; g < 2; ++g) {
      const int64_t o0 = br * B, o1 = std::min(out, o0 + B), i0 = g * B, n = std::min(B, in - i0);
      float m = 0;
      for (int64_t o = o0; o < o1; ++o) m = std::max(m, amax(&w[size_t(o * in + i0)], n));
      const float scale = fp8_scale(m);
      EXPECT_EQ(q.scales_f32[size_t(br * 2 + g)], scale) << br << "," << g;
      std::vector<uint8_t> codes(static_cast<size_t>(n));
      std::vector<float> want(static_cast<size_t>(n));
      for (int64_t o = o0; o < o1; ++o) {
        fp8_quantize(codes.data(), &w[size_t(o * in + i0)], nullptr, n, scale);
        fp8_dequantize(want.data(), codes.data(), n, scale);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(q.codes[size_t(o * in + i0 + i)], codes[size_t(i)]) << o << "," << i0 + i;
          ASSERT_EQ(d[size_t(o * in + i0 + i)], want[size_t(i)]) << o << "," << i0 + i;
        }
      }
    }
  EXPECT_EQ(q.scales_f32[3], 9.f / 448.f);
}

// Hand-worked: row 0 is fp_formats_test's MXFP4 block plus 1.0 (amax 7.5: scale 2^0; -7.5
// saturates to -6), row 1 the same halved (amax 3.75: scale 2^-1, the same element codes).
// in = 7 < 32: one short block per row.
TEST(FpQuantize, MxFp4HandWorkedMatrix) {
  const std::vector<float> w = {0.3f,  -1.2f, 2.6f, 5.9f,  0.f, -7.5f,  1.f,  //
                                0.15f, -0.6f, 1.3f, 2.95f, 0.f, -3.75f, 0.5f};
  const QuantizedWeight q = quantize_rtn(w.data(), 2, 7, fp_scheme(DataType::MXFP4));
  EXPECT_EQ(q.scale_codes, (std::vector<uint8_t>{127, 126}));
  EXPECT_EQ(dequantized(q), (std::vector<float>{0.5f, -1.f, 3.f, 6.f, 0.f, -6.f, 1.f,  //
                                                0.25f, -0.5f, 1.5f, 3.f, 0.f, -3.f, 0.5f}));
}

TEST(FpQuantize, TunablesReachTheBlockFunctions) {
  const std::vector<float> w = weights(2, 64, 7);
  std::vector<float> v(w.size()), ms = {0.5f, 0.9f, 1.f, 0.7f};
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(int(i % 5) - 2) * 0.2f;
  const QuantizedWeight q = quantize_fp(w.data(), 2, 64, fp_scheme(DataType::MXFP4), "w", v.data(), ms.data());
  std::vector<uint8_t> codes(32);
  for (int64_t gi = 0; gi < 4; ++gi) {
    const uint8_t sc = mx_quantize_block(codes.data(), &w[size_t(gi * 32)], &v[size_t(gi * 32)], 32, MxElem::FP4,
                                         ms[size_t(gi)]);
    EXPECT_EQ(q.scale_codes[size_t(gi)], sc);
    EXPECT_TRUE(std::equal(codes.begin(), codes.end(), q.codes.begin() + gi * 32)) << gi;
  }
}

TEST(FpQuantize, NonFiniteWeightIsRefusedNamingTheTensor) {
  for (DataType t : {DataType::MXFP4, DataType::MXFP8, DataType::NVFP4, DataType::FP8, DataType::FP8Block}) {
    std::vector<float> w = weights(2, 32, 8);
    w[40] = t == DataType::FP8 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
    try {
      quantize_rtn(w.data(), 2, 32, fp_scheme(t), nullptr, nullptr, nullptr, "model.layers.2.mlp.down_proj.weight");
      ADD_FAILURE() << data_type_name(t) << " accepted a non-finite weight";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("model.layers.2.mlp.down_proj.weight"), std::string::npos) << m;
      EXPECT_NE(m.find("index 40"), std::string::npos) << m;
    }
  }
}

TEST(FpQuantize, OptimizedRtnAndFakeQuantizeUsePlainRtn) {
  const std::vector<float> w = weights(4, 48, 9);
  std::vector<float> imp(48, 1.f);
  for (DataType t : {DataType::MXFP4, DataType::NVFP4, DataType::FP8}) {
    const QuantScheme s = fp_scheme(t);
    const QuantizedWeight plain = quantize_rtn(w.data(), 4, 48, s);
    const QuantizedWeight opt = quantize_opt_rtn(w.data(), 4, 48, s, imp.data());
    EXPECT_EQ(opt.codes, plain.codes);
    EXPECT_EQ(opt.scale_codes, plain.scale_codes);
    EXPECT_EQ(opt.scales_f32, plain.scales_f32);
    std::vector<float> f = w;
    fake_quantize(f.data(), 4, 48, s, true, imp.data());
    EXPECT_EQ(f, dequantized(plain)) << data_type_name(t);
  }
}

TEST(FpQuantize, StorageBitsCountCodesAndScales) {
  const std::vector<float> w = weights(256, 256, 10);
  auto bpw = [&](DataType t) { return quantize_rtn(w.data(), 256, 256, fp_scheme(t)).storage_bits() / (256.0 * 256); };
  EXPECT_DOUBLE_EQ(bpw(DataType::MXFP4), 4 + 8.0 / 32);
  EXPECT_DOUBLE_EQ(bpw(DataType::MXFP8), 8 + 8.0 / 32);
  EXPECT_DOUBLE_EQ(bpw(DataType::NVFP4), 4 + 8.0 / 16 + 32.0 / (256 * 256));
  EXPECT_DOUBLE_EQ(bpw(DataType::FP8), 8 + 32.0 / 256);
  EXPECT_DOUBLE_EQ(bpw(DataType::FP8Block), 8 + 4 * 32.0 / (256 * 256));
}

TEST(FpQuantize, LargeMatricesTakeTheParallelPathWithTheSameResult) {
  // >= 2^16 weights: rows are split over OpenMP threads and the NVFP4 amax is a parallel reduction.
  const int64_t out = 300, in = 260;
  const std::vector<float> w = weights(out, in, 11);
  const QuantizedWeight q = quantize_rtn(w.data(), out, in, fp_scheme(DataType::NVFP4));
  EXPECT_EQ(q.global_scale, nvfp4_global_scale(amax(w.data(), out * in)));
  expect_row_blocks(q, w, 16, q.global_scale);
  expect_row_blocks(quantize_rtn(w.data(), out, in, fp_scheme(DataType::MXFP8)), w, 32, 0);
}

}  // namespace
}  // namespace ar
