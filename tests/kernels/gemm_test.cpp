// Tests for kernels/gemm: the oneDNN path against gemm_ref (double accumulation) on odd sizes,
// transposes, strided views, accumulate and BF16 rounding; gemm_ref itself against hand values.
#include "kernels/gemm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"

#include <omp.h>

namespace ar {
namespace {

// fp32 accumulation of K terms errs by at most ~K·2^-24·Σ|a·b|; K ≤ 129 here gives 7.7e-6.
constexpr double kF32Rel = 1e-5;
// BF16 mode has identical (exact) products; only the fp32 summation differs from the oracle.
constexpr double kBF16Rel = 1e-5;

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

float bf16_round(float x) { return bf16_to_f32(f32_to_bf16(x)); }

struct Case {
  int64_t M, N, K;
  bool ta, tb, acc;
  int64_t pad_a, pad_b, pad_c;  // extra elements per stored row (0 = tight)
  Precision p;
};

// Runs gemm (gemm_serial when `serial`) and gemm_ref on the same random inputs and compares
// elementwise against a bound scaled by Σ|a·b| (+|C| when accumulating); also checks padding in C
// is never written.
void check_case(const Case& c, uint32_t seed, bool serial = false) {
  const int64_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
  const int64_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
  const int64_t lda = a_cols + c.pad_a, ldb = b_cols + c.pad_b, ldc = c.N + c.pad_c;
  auto A = random_vec(size_t(a_rows * lda), seed);
  auto B = random_vec(size_t(b_rows * ldb), seed + 1);
  auto C0 = random_vec(size_t(c.M * ldc), seed + 2);
  auto C = C0, R = C0;
  (serial ? gemm_serial : gemm)(C.data(), A.data(), B.data(), c.M, c.N, c.K, c.ta, c.tb, c.acc, c.p,
                                c.pad_a ? lda : 0, c.pad_b ? ldb : 0, c.pad_c ? ldc : 0);
  gemm_ref(R.data(), A.data(), B.data(), c.M, c.N, c.K, c.ta, c.tb, c.acc, c.p, lda, ldb, ldc);
  // Σ|a·b| per output via the reference on absolute values.
  std::vector<float> Aabs(A.size()), Babs(B.size()), S(size_t(c.M * ldc), 0.0f);
  for (size_t i = 0; i < A.size(); ++i) Aabs[i] = std::fabs(A[i]);
  for (size_t i = 0; i < B.size(); ++i) Babs[i] = std::fabs(B[i]);
  gemm_ref(S.data(), Aabs.data(), Babs.data(), c.M, c.N, c.K, c.ta, c.tb, false, c.p, lda, ldb,
           ldc);
  const double rel = c.p == Precision::F32 ? kF32Rel : kBF16Rel;
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const size_t at = size_t(i * ldc + j);
      if (j >= c.N) {
        ASSERT_EQ(C[at], C0[at]) << "padding written at row " << i << " col " << j;
        continue;
      }
      const double bound = rel * (S[at] + (c.acc ? std::fabs(C0[at]) : 0.0)) + 1e-30;
      ASSERT_NEAR(C[at], R[at], bound) << "M=" << c.M << " N=" << c.N << " K=" << c.K
                                       << " ta=" << c.ta << " tb=" << c.tb << " acc=" << c.acc
                                       << " at (" << i << "," << j << ")";
    }
  }
}

TEST(GemmRef, HandComputed) {
  // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]
  const float A[] = {1, 2, 3, 4}, B[] = {5, 6, 7, 8};
  float C[4];
  gemm_ref(C, A, B, 2, 2, 2, false, false, false, Precision::F32);
  EXPECT_EQ(C[0], 19);
  EXPECT_EQ(C[1], 22);
  EXPECT_EQ(C[2], 43);
  EXPECT_EQ(C[3], 50);
  // Aᵀ·Bᵀ = (B·A)ᵀ: B·A = [23 34; 31 46] -> transposed [23 31; 34 46]
  gemm_ref(C, A, B, 2, 2, 2, true, true, false, Precision::F32);
  EXPECT_EQ(C[0], 23);
  EXPECT_EQ(C[1], 31);
  EXPECT_EQ(C[2], 34);
  EXPECT_EQ(C[3], 46);
  // accumulate adds onto C
  gemm_ref(C, A, B, 2, 2, 2, false, false, true, Precision::F32);
  EXPECT_EQ(C[0], 23 + 19);
  EXPECT_EQ(C[3], 46 + 50);
}

TEST(GemmRef, Bf16RoundsInputs) {
  // 1 + 2^-10 is not a bf16 value (8 mantissa bits): it rounds to 1.
  const float A[] = {1.0f + 1.0f / 1024}, B[] = {3.0f};
  float C[1];
  gemm_ref(C, A, B, 1, 1, 1, false, false, false, Precision::BF16);
  EXPECT_EQ(C[0], 3.0f);
  gemm_ref(C, A, B, 1, 1, 1, false, false, false, Precision::F32);
  EXPECT_EQ(C[0], 3.0f * (1.0f + 1.0f / 1024));
}

TEST(Gemm, OddSizesF32) {
  const int64_t sizes[] = {1, 3, 17, 33, 129};
  uint32_t seed = 1;
  for (int64_t M : sizes)
    for (int64_t N : sizes)
      for (int64_t K : sizes) check_case({M, N, K, false, false, false, 0, 0, 0, Precision::F32}, seed++);
}

TEST(Gemm, TransposesAccumulateAndStrides) {
  const int64_t sizes[] = {1, 17, 33};
  uint32_t seed = 1000;
  for (int64_t M : sizes)
    for (int64_t N : {3, 129})
      for (int64_t K : sizes)
        for (int flags = 0; flags < 8; ++flags) {
          const bool ta = flags & 1, tb = flags & 2, acc = flags & 4;
          check_case({M, N, K, ta, tb, acc, 0, 0, 0, Precision::F32}, seed++);
          check_case({M, N, K, ta, tb, acc, 5, 2, 7, Precision::F32}, seed++);
        }
}

TEST(Gemm, OneHeadSliceOfPackedLayout) {
  // Q (T, H*D) · K (T, Hkv*D)ᵀ for head 2 / kv head 1, as attention calls it.
  const int64_t T = 17, H = 4, Hkv = 2, D = 8;
  auto q = random_vec(size_t(T * H * D), 7), k = random_vec(size_t(T * Hkv * D), 8);
  std::vector<float> S(size_t(T * T)), R(size_t(T * T));
  gemm(S.data(), q.data() + 2 * D, k.data() + 1 * D, T, T, D, false, true, false, Precision::F32,
       H * D, Hkv * D, T);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < T; ++j) {
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += double(q[i * H * D + 2 * D + d]) * k[j * Hkv * D + D + d];
      R[i * T + j] = float(s);
    }
  for (size_t i = 0; i < S.size(); ++i) ASSERT_NEAR(S[i], R[i], 1e-5) << i;
}

TEST(Gemm, Bf16MatchesRoundedReference) {
  uint32_t seed = 5000;
  for (int64_t M : {1, 3, 33})
    for (int64_t N : {17, 129})
      for (int64_t K : {3, 129})
        for (int flags = 0; flags < 8; ++flags)
          check_case({M, N, K, bool(flags & 1), bool(flags & 2), bool(flags & 4), flags & 1 ? 3 : 0,
                      flags & 2 ? 4 : 0, 0, Precision::BF16},
                     seed++);
}

TEST(Gemm, Bf16DiffersFromF32AndEqualsRoundedF32) {
  // Inputs rounded by hand then multiplied in F32 must equal the BF16 mode on raw inputs
  // (same exact products; same primitive shape and summation order).
  const int64_t M = 33, N = 17, K = 129;
  auto A = random_vec(size_t(M * K), 11), B = random_vec(size_t(N * K), 12);
  std::vector<float> Ar(A.size()), Br(B.size());
  for (size_t i = 0; i < A.size(); ++i) Ar[i] = bf16_round(A[i]);
  for (size_t i = 0; i < B.size(); ++i) Br[i] = bf16_round(B[i]);
  std::vector<float> C16(size_t(M * N)), Cr(size_t(M * N)), C32(size_t(M * N));
  gemm(C16.data(), A.data(), B.data(), M, N, K, false, true, false, Precision::BF16);
  gemm(Cr.data(), Ar.data(), Br.data(), M, N, K, false, true, false, Precision::F32);
  gemm(C32.data(), A.data(), B.data(), M, N, K, false, true, false, Precision::F32);
  double max_diff_rounded = 0, max_diff_f32 = 0;
  for (size_t i = 0; i < C16.size(); ++i) {
    max_diff_rounded = std::max(max_diff_rounded, double(std::fabs(C16[i] - Cr[i])));
    max_diff_f32 = std::max(max_diff_f32, double(std::fabs(C16[i] - C32[i])));
  }
  if (!gemm_has_native_bf16()) {
    EXPECT_EQ(max_diff_rounded, 0.0);
  }
  // bf16 rounding (rel. 2^-9 per input) over 129 terms must show up against plain f32.
  EXPECT_GT(max_diff_f32, 1e-4);
}

TEST(Gemm, Bf16ExactInputsUsedInPlace) {
  // Already-bf16 values (as weights from a bf16 checkpoint) take the no-copy path.
  const int64_t M = 17, N = 33, K = 65;
  auto A = random_vec(size_t(M * K), 21), B = random_vec(size_t(K * N), 22);
  for (float& x : A) x = bf16_round(x);
  for (float& x : B) x = bf16_round(x);
  check_case({M, N, K, false, false, false, 0, 0, 0, Precision::BF16}, 23);
  std::vector<float> C(size_t(M * N)), R(size_t(M * N));
  gemm(C.data(), A.data(), B.data(), M, N, K, false, false, false, Precision::BF16);
  gemm(R.data(), A.data(), B.data(), M, N, K, false, false, false, Precision::F32);
  if (!gemm_has_native_bf16()) {
    for (size_t i = 0; i < C.size(); ++i) ASSERT_EQ(C[i], R[i]) << i;
  }
}

TEST(Gemm, Bf16StagesLargeOperandsInPanels) {
  // Operands over 4M elements that need a bf16 copy are staged and multiplied in panels of rows
  // (A) or columns (B) of C: 33000 x 129 = 4.26M elements gives two panels. Long and thin, so
  // the oracle stays cheap.
  const int64_t big = 33000, small = 3, K = 129;
  uint32_t seed = 3000;
  for (int flags = 0; flags < 4; ++flags) {
    const bool t = flags & 1, acc = flags & 2;
    check_case({big, small, K, t, t, acc, 0, 0, 0, Precision::BF16}, seed++);  // A in panels
    check_case({small, big, K, t, t, acc, 0, 0, 0, Precision::BF16}, seed++);  // B in panels
  }
}

// gemm_b16 (B already bf16, as a tuner's W'): the bits of gemm in BF16 on B's widened values (a
// tight B; a strided one within rounding), with
// tiles along M or N, both transposes of B, accumulate, a strided B, and a B in more than one tile.
TEST(Gemm, Bf16OperandGivesTheBitsOfItsWidenedValues) {
  struct Shape {
    int64_t M, N, K;
  };
  uint32_t seed = 4000;
  for (const Shape& g : {Shape{300, 70, 33}, Shape{70, 300, 33}, Shape{2, 700, 129}, Shape{513, 17, 64}, Shape{64, 128, 384}, Shape{64, 384, 128}, Shape{96, 128, 128}})
    for (int flags = 0; flags < 8; ++flags) {
      const bool ta = flags & 1, tb = flags & 2, acc = flags & 4;
      const int64_t b_rows = tb ? g.N : g.K, b_cols = tb ? g.K : g.N, ldb = b_cols + (flags == 5 ? 3 : 0);
      const auto A = random_vec(size_t(g.M * g.K), seed++);
      const auto Bf = random_vec(size_t(b_rows * ldb), seed++);
      std::vector<uint16_t> B16(Bf.size());
      std::vector<float> Bw(Bf.size());
      for (size_t i = 0; i < Bf.size(); ++i) {
        B16[i] = f32_to_bf16(Bf[i]);
        Bw[i] = bf16_to_f32(B16[i]);
      }
      const auto C0 = random_vec(size_t(g.M * g.N), seed++);
      auto want = C0, got = C0;
      gemm(want.data(), A.data(), Bw.data(), g.M, g.N, g.K, ta, tb, acc, Precision::BF16, 0, ldb);
      gemm_b16(got.data(), A.data(), B16.data(), g.M, g.N, g.K, ta, tb, acc, 0, ldb);
      if (ldb == b_cols) {
        ASSERT_EQ(got, want) << "M=" << g.M << " N=" << g.N << " K=" << g.K << " ta=" << ta << " tb=" << tb
                             << " acc=" << acc;
      } else {  // a strided B is a different primitive from gemm's tight staged copy: same values, not bits
        for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5 * (1 + std::fabs(want[i])));
      }
    }
}

// gemm_view with A, or A and B, as bf16 bits (an activation its producer wrote as bf16): the values
// of gemm in BF16 on the widened operands, within f32 rounding (a bf16 A is sliced in place, with
// its own stride, where gemm converts tight per-tile copies: the kernels may sum in another order),
// and the same bits with 1 and 2 threads. Tiles along M and N, both transposes, accumulate, a
// strided A, and the K-panel shape of a (2048, 9728) activation times a 9728-row weight, scaled down.
TEST(GemmView, Bf16OperandsGiveTheValuesOfTheirWidenedCopies) {
  struct Shape {
    int64_t M, N, K;
  };
  auto to16 = [](const std::vector<float>& x, std::vector<uint16_t>& x16, std::vector<float>& wide) {
    x16.resize(x.size());
    wide.resize(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      x16[i] = f32_to_bf16(x[i]);
      wide[i] = bf16_to_f32(x16[i]);
    }
  };
  const int64_t big_k = (int64_t(16) << 20) / (8 * 2) + 40;
  uint32_t seed = 4500;
  const int before = omp_get_max_threads();
  for (const Shape& g : {Shape{300, 70, 33}, Shape{70, 300, 33}, Shape{513, 17, 64}, Shape{64, 384, 128},
                         Shape{8, 16, big_k}})
    for (int flags = 0; flags < 16; ++flags) {
      const bool ta = flags & 1, tb = flags & 2, acc = flags & 4, both = flags & 8;
      if (g.K == big_k && (ta || tb)) continue;  // the panel shape once per operand mix is enough
      const int64_t a_rows = ta ? g.K : g.M, a_cols = ta ? g.M : g.K, lda = a_cols + (flags == 5 ? 3 : 0);
      const int64_t b_rows = tb ? g.N : g.K, b_cols = tb ? g.K : g.N;
      std::vector<uint16_t> A16, B16;
      std::vector<float> Aw, Bw;
      to16(random_vec(size_t(a_rows * lda), seed++), A16, Aw);
      to16(random_vec(size_t(b_rows * b_cols), seed++), B16, Bw);
      const auto C0 = random_vec(size_t(g.M * g.N), seed++);
      auto want = C0, got1 = C0, got2 = C0;
      gemm(want.data(), Aw.data(), Bw.data(), g.M, g.N, g.K, ta, tb, acc, Precision::BF16, lda);
      const MatrixView b = both ? MatrixView(B16.data()) : MatrixView(Bw.data());
      omp_set_num_threads(1);
      gemm_view(got1.data(), MatrixView(A16.data()), b, g.M, g.N, g.K, ta, tb, acc, Precision::BF16, lda);
      omp_set_num_threads(std::max(2, before));
      gemm_view(got2.data(), MatrixView(A16.data()), b, g.M, g.N, g.K, ta, tb, acc, Precision::BF16, lda);
      omp_set_num_threads(before);
      const std::string where = "M=" + std::to_string(g.M) + " N=" + std::to_string(g.N) + " K=" +
                                std::to_string(g.K) + " flags=" + std::to_string(flags);
      ASSERT_EQ(got1, got2) << where;
      // Σ|a·b| bounds the f32 summation error; |C0| the accumulated part.
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_NEAR(got2[i], want[i], 2e-6 * double(g.K) + 1e-6 * std::fabs(C0[i])) << where << " at " << i;
      }
    }
}

// A bf16 C: each element its f32 sum rounded once, so the bits f32_to_bf16 gives the f32 C of
// the same product, for f32 and bf16 operands, transposes, a strided C (whose padding stays as
// it was) and products split in tiles; the same bits on 1 and 2 threads.
TEST(GemmView, Bf16OutputIsItsF32SumRoundedOnce) {
  if (!native_bf16_products(Precision::BF16)) {
    uint16_t c = 0;
    const float one = 1.f;
    EXPECT_THROW(gemm_view_bf16_out(&c, MatrixView(&one), MatrixView(&one), 1, 1, 1, false, false, Precision::BF16),
                 std::exception);
    GTEST_SKIP() << "no native bf16 here: a bf16 C is a native-bf16 path";
  }
  struct Shape {
    int64_t M, N, K;
  };
  uint32_t seed = 4700;
  const int before = omp_get_max_threads();
  for (const Shape& g : {Shape{300, 70, 33}, Shape{70, 300, 33}, Shape{1100, 96, 64}, Shape{64, 1500, 128}})
    for (int flags = 0; flags < 8; ++flags) {
      const bool ta = flags & 1, tb = flags & 2, a16 = flags & 4;
      const int64_t a_rows = ta ? g.K : g.M, a_cols = ta ? g.M : g.K;
      const int64_t b_rows = tb ? g.N : g.K, b_cols = tb ? g.K : g.N, ldc = g.N + 5;
      const auto A = random_vec(size_t(a_rows * a_cols), seed++);
      const auto B = random_vec(size_t(b_rows * b_cols), seed++);
      std::vector<uint16_t> A16(A.size());
      f32_to_bf16(A16.data(), A.data(), A.size());
      const MatrixView a = a16 ? MatrixView(A16.data()) : MatrixView(A.data());
      std::vector<float> f(size_t(g.M * ldc), 0.f);
      gemm_view(f.data(), a, MatrixView(B.data()), g.M, g.N, g.K, ta, tb, false, Precision::BF16, 0, 0, ldc);
      std::vector<uint16_t> want(f.size(), 0x7fc1), got1 = want, got2 = want;  // 0x7fc1: padding marker
      for (int64_t i = 0; i < g.M; ++i) f32_to_bf16(want.data() + i * ldc, f.data() + i * ldc, size_t(g.N));
      omp_set_num_threads(1);
      gemm_view_bf16_out(got1.data(), a, MatrixView(B.data()), g.M, g.N, g.K, ta, tb, Precision::BF16, 0, 0, ldc);
      omp_set_num_threads(std::max(2, before));
      gemm_view_bf16_out(got2.data(), a, MatrixView(B.data()), g.M, g.N, g.K, ta, tb, Precision::BF16, 0, 0, ldc);
      omp_set_num_threads(before);
      const std::string where = "M=" + std::to_string(g.M) + " N=" + std::to_string(g.N) + " K=" +
                                std::to_string(g.K) + " flags=" + std::to_string(flags);
      ASSERT_EQ(got1, want) << where;
      ASSERT_EQ(got2, want) << where;
    }
  // An empty sum writes bf16 zeros, and nothing past N.
  const float one = 1.f;
  std::vector<uint16_t> z(6, 0x3f80);
  gemm_view_bf16_out(z.data(), MatrixView(&one), MatrixView(&one), 2, 2, 0, false, false, Precision::BF16, 0, 0, 3);
  EXPECT_EQ(z, (std::vector<uint16_t>{0, 0, 0x3f80, 0, 0, 0x3f80}));
  // No accumulation, and not in f32 products.
  uint16_t c = 0;
  EXPECT_THROW(gemm_view_bf16_out(&c, MatrixView(&one), MatrixView(&one), 1, 1, 1, false, false, Precision::F32),
               std::exception);
}

// A bf16 C whose f32 product would run in panels of K (C wider than tall, an A over 16 MiB as
// bf16) is summed whole instead, then rounded once: against the reference, within the f32
// summation's error and one bf16 rounding.
TEST(GemmView, Bf16OutputOfALongReductionIsRoundedOnce) {
  if (!native_bf16_products(Precision::BF16)) GTEST_SKIP() << "no native bf16 here";
  const int64_t M = 8, N = 16, K = (int64_t(16) << 20) / (M * 2) + 40;
  const auto A = random_vec(size_t(M * K), 7500), B = random_vec(size_t(N * K), 7501);
  std::vector<uint16_t> A16(A.size()), C16(size_t(M * N));
  f32_to_bf16(A16.data(), A.data(), A.size());
  gemm_view_bf16_out(C16.data(), MatrixView(A16.data()), MatrixView(B.data()), M, N, K, false, true, Precision::BF16);
  std::vector<float> R(size_t(M * N)), S(R.size());
  gemm_ref(R.data(), A.data(), B.data(), M, N, K, false, true, false, Precision::BF16);
  std::vector<float> Aabs(A.size()), Babs(B.size());
  for (size_t i = 0; i < A.size(); ++i) Aabs[i] = std::fabs(A[i]);
  for (size_t i = 0; i < B.size(); ++i) Babs[i] = std::fabs(B[i]);
  gemm_ref(S.data(), Aabs.data(), Babs.data(), M, N, K, false, true, false, Precision::BF16);
  for (size_t i = 0; i < R.size(); ++i)
    ASSERT_NEAR(bf16_to_f32(C16[i]), R[i], 1e-5 * S[i] + std::fabs(R[i]) / 256) << "at " << i;
}

TEST(GemmView, RejectsBf16OperandsInF32Products) {
  const uint16_t a16[4] = {0x3f80, 0x3f80, 0x3f80, 0x3f80};
  const float b[4] = {1, 2, 3, 4};
  float c[4] = {};
  EXPECT_THROW(gemm_view(c, MatrixView(a16), MatrixView(b), 2, 2, 2, false, false, false, Precision::F32),
               std::exception);
  EXPECT_THROW(gemm_view(c, MatrixView(), MatrixView(b), 2, 2, 2, false, false, false, Precision::BF16),
               std::exception);
  gemm_view(c, MatrixView(a16), MatrixView(b), 2, 2, 2, false, false, false, Precision::BF16);
  EXPECT_EQ(c[0], 4.0f);  // (1, 1)·(1, 3)
  EXPECT_EQ(c[3], 6.0f);  // (1, 1)·(2, 4)
}

// Native bf16, C wider than tall and an A too big to stage whole (16 MiB of bf16): the product
// runs in panels along K, added into C. Against the reference, in the forward (A·Bᵀ) and the
// transposed, strided, accumulating layouts; then A·B: the same bits with 1 and 2 threads and with B as bf16.
TEST(Gemm, LongReductionRunsInPanelsOfK) {
  if (!gemm_has_native_bf16()) GTEST_SKIP() << "no native bf16 here: the K panels are a native-bf16 path";
  const int64_t M = 8, N = 16, K = (int64_t(16) << 20) / (M * 2) + 40;  // two panels, the last 40 long
  check_case({M, N, K, false, true, false, 0, 0, 0, Precision::BF16}, 7100);
  check_case({M, N, K, true, false, true, 0, 3, 0, Precision::BF16}, 7300);
  const auto A = random_vec(size_t(M * K), 7400);
  const auto Bf = random_vec(size_t(K * N), 7401);
  std::vector<uint16_t> B16(Bf.size());
  std::vector<float> Bw(Bf.size());
  for (size_t i = 0; i < Bf.size(); ++i) {
    B16[i] = f32_to_bf16(Bf[i]);
    Bw[i] = bf16_to_f32(B16[i]);
  }
  const int before = omp_get_max_threads();
  std::vector<float> c1(size_t(M * N)), c2(c1.size()), c16(c1.size());
  omp_set_num_threads(1);
  gemm(c1.data(), A.data(), Bw.data(), M, N, K, false, false, false, Precision::BF16);
  omp_set_num_threads(std::max(2, before));
  gemm(c2.data(), A.data(), Bw.data(), M, N, K, false, false, false, Precision::BF16);
  gemm_b16(c16.data(), A.data(), B16.data(), M, N, K, false, false, false);
  omp_set_num_threads(before);
  EXPECT_EQ(c1, c2);
  EXPECT_EQ(c16, c2);
}

TEST(Gemm, EmptyDimensions) {
  std::vector<float> C(6, 7.0f);
  const float A[1] = {1}, B[1] = {1};
  gemm(C.data(), A, B, 2, 3, 0, false, false, true, Precision::F32);
  for (float x : C) EXPECT_EQ(x, 7.0f);  // accumulate of an empty sum leaves C
  gemm(C.data(), A, B, 2, 3, 0, false, false, false, Precision::F32);
  for (float x : C) EXPECT_EQ(x, 0.0f);  // overwrite with an empty sum gives zeros
  gemm(C.data(), A, B, 0, 3, 5, false, false, false, Precision::F32);  // nothing to do
}

TEST(Gemm, ReleaseCacheThenReuse) {
  check_case({17, 33, 3, false, true, false, 0, 0, 0, Precision::BF16}, 31);
  gemm_release_cache();
  check_case({17, 33, 3, false, true, false, 0, 0, 0, Precision::BF16}, 32);
}

TEST(Gemm, ConcurrentCallsInsideParallelRegion) {
  // Calls from inside a parallel region run single-threaded and concurrently (own staging, own
  // memory objects); each must still match the oracle. Shapes repeat to share cached primitives.
  const int64_t M = 33, N = 17, K = 129, jobs = 8;
  for (Precision p : {Precision::F32, Precision::BF16}) {
    std::vector<std::vector<float>> A(jobs), B(jobs), C(jobs), R(jobs);
    for (int64_t j = 0; j < jobs; ++j) {
      A[j] = random_vec(size_t(M * K), 700 + uint32_t(j));
      B[j] = random_vec(size_t(N * K), 800 + uint32_t(j));
      C[j].assign(size_t(M * N), 0.0f);
      R[j].assign(size_t(M * N), 0.0f);
      gemm_ref(R[j].data(), A[j].data(), B[j].data(), M, N, K, false, true, false, p);
    }
#pragma omp parallel for num_threads(4)
    for (int64_t j = 0; j < jobs; ++j)
      gemm(C[j].data(), A[j].data(), B[j].data(), M, N, K, false, true, false, p);
    for (int64_t j = 0; j < jobs; ++j)
      for (size_t i = 0; i < C[j].size(); ++i)
        ASSERT_NEAR(C[j][i], R[j][i], kF32Rel * K) << "job " << j << " @" << i;  // Σ|a·b| <= K
  }
}

// The GEMMs a decoder block runs, as (M, N, K, trans_a, trans_b, accumulate, lda, ldb, ldc) with
// ld 0 = tight: linears forward (x·Wᵀ), their backward (dY·W and dYᵀ·X, the latter
// accumulating), one head's attention scores and weighted values as strided views of the packed
// (T, H·D) layout, and the lm_head. Shapes of stories260K (hidden 64, ffn 172, 8/4 heads of 8,
// vocab 512) and qwen3-student (hidden 256, ffn 768, 8/4 heads of 32) at the sequence lengths the
// tests use.
struct ModelGemm {
  int64_t M, N, K;
  bool ta, tb, acc;
  int64_t lda, ldb, ldc;
  // Stored rows of A and B, and the row strides with 0 (tight) resolved.
  int64_t a_rows() const { return ta ? K : M; }
  int64_t b_rows() const { return tb ? N : K; }
  int64_t a_ld() const { return lda ? lda : (ta ? M : K); }
  int64_t b_ld() const { return ldb ? ldb : (tb ? K : N); }
  int64_t c_ld() const { return ldc ? ldc : N; }
};

std::vector<ModelGemm> model_gemms() {
  std::vector<ModelGemm> v;
  struct Shape { int64_t T, C, F, H, Hkv, D, V; };
  for (const Shape s : {Shape{512, 64, 172, 8, 4, 8, 512}, Shape{256, 256, 768, 8, 4, 32, 512}}) {
    const int64_t q = s.H * s.D, kv = s.Hkv * s.D;
    for (int64_t out : {q, kv, s.C, s.F}) {
      const int64_t in = out == s.C ? q : out == s.F ? s.C : s.C;  // o_proj takes q, down takes F
      v.push_back({s.T, out, in, false, true, false, 0, 0, 0});    // y = x·Wᵀ
      v.push_back({s.T, in, out, false, false, false, 0, 0, 0});   // dx = dy·W
      v.push_back({out, in, s.T, true, false, true, 0, 0, 0});     // dW += dyᵀ·x
    }
    v.push_back({s.T, s.C, s.F, false, true, false, 0, 0, 0});      // down_proj
    v.push_back({s.T, s.T, s.D, false, true, false, q, kv, 0});     // scores = Q_h·K_hᵀ
    v.push_back({s.T, s.D, s.T, false, false, false, 0, kv, q});    // out_h = P·V_h
    v.push_back({s.T, s.V, s.C, false, true, false, 0, 0, 0});      // logits
  }
  return v;
}

TEST(Gemm, ModelShapesConcurrentlyFromAllThreads) {
  // Every thread runs every model GEMM at the same time as the others, through the same cached
  // primitives (the shapes repeat across threads and rounds), and each result must match the
  // oracle. On oneDNN's library-managed scratchpad this failed wherever the kernels book scratch
  // memory (AVX-512 / AMX brgemm): two executions of one primitive shared it (issue #13).
  const int threads = std::max(2, omp_get_max_threads());
  const auto shapes = model_gemms();
  std::printf("[ info     ] %s; %d threads\n", gemm_backend_summary().c_str(), threads);
  for (Precision p : {Precision::F32, Precision::BF16}) {
    size_t booked = 0;
    for (const ModelGemm& g : shapes)
      booked = std::max(booked, gemm_scratchpad_bytes(g.M, g.N, g.K, g.ta, g.tb, g.acc, p));
    std::printf("[ info     ] %s: largest scratchpad booked by these shapes: %zu bytes\n",
                p == Precision::F32 ? "f32" : "bf16", booked);
    struct Job { std::vector<float> A, B, C0, R, S; };
    std::vector<Job> jobs(shapes.size());
    for (size_t j = 0; j < shapes.size(); ++j) {
      const ModelGemm& g = shapes[j];
      const int64_t a_rows = g.a_rows(), b_rows = g.b_rows();
      const int64_t lda = g.a_ld(), ldb = g.b_ld(), ldc = g.c_ld();
      Job& job = jobs[j];
      job.A = random_vec(size_t(a_rows * lda), 900 + uint32_t(3 * j));
      job.B = random_vec(size_t(b_rows * ldb), 901 + uint32_t(3 * j));
      job.C0 = random_vec(size_t(g.M * ldc), 902 + uint32_t(3 * j));
      job.R = job.C0;
      gemm_ref(job.R.data(), job.A.data(), job.B.data(), g.M, g.N, g.K, g.ta, g.tb, g.acc, p,
               lda, ldb, ldc);
      std::vector<float> Aabs(job.A.size()), Babs(job.B.size());
      for (size_t i = 0; i < Aabs.size(); ++i) Aabs[i] = std::fabs(job.A[i]);
      for (size_t i = 0; i < Babs.size(); ++i) Babs[i] = std::fabs(job.B[i]);
      job.S.assign(job.R.size(), 0.0f);
      gemm_ref(job.S.data(), Aabs.data(), Babs.data(), g.M, g.N, g.K, g.ta, g.tb, false, p, lda,
               ldb, ldc);
    }
    constexpr int kRounds = 3;
    const size_t n = shapes.size();
    // results[t][j]: thread t's output of shape j in the last round.
    std::vector<std::vector<std::vector<float>>> results;
    results.assign(size_t(threads), std::vector<std::vector<float>>(n));
    int team = 0;
#pragma omp parallel num_threads(threads)
    {
#pragma omp single
      team = omp_get_num_threads();
      const int t = omp_get_thread_num();
      for (int round = 0; round < kRounds; ++round) {
        for (size_t j = 0; j < n; ++j) {
          const ModelGemm& g = shapes[j];
          std::vector<float>& C = results[size_t(t)][j];
          C = jobs[j].C0;
          gemm(C.data(), jobs[j].A.data(), jobs[j].B.data(), g.M, g.N, g.K, g.ta, g.tb, g.acc, p,
               g.lda, g.ldb, g.ldc);
        }
      }
    }
    ASSERT_GE(team, 2) << "the parallel region did not get two threads; nothing ran concurrently";
    const double rel = p == Precision::F32 ? kF32Rel : kBF16Rel;
    for (int t = 0; t < threads; ++t) {
      for (size_t j = 0; j < n; ++j) {
        const ModelGemm& g = shapes[j];
        const int64_t ldc = g.c_ld();
        const std::vector<float>& C = results[size_t(t)][j];
        for (int64_t r = 0; r < g.M; ++r) {
          for (int64_t c = 0; c < ldc; ++c) {
            const size_t at = size_t(r * ldc + c);
            if (c >= g.N) {
              ASSERT_EQ(C[at], jobs[j].C0[at]) << "padding written, shape " << j;
              continue;
            }
            // K up to 512 here: fp32 summation error ~K·2^-24·Σ|a·b| < 3.1e-5·Σ|a·b|.
            const double bound =
                rel * 4 * (jobs[j].S[at] + (g.acc ? std::fabs(jobs[j].C0[at]) : 0.0)) + 1e-30;
            ASSERT_NEAR(C[at], jobs[j].R[at], bound)
                << (p == Precision::F32 ? "f32" : "bf16") << " thread " << t << " shape " << j
                << " (M=" << g.M << " N=" << g.N << " K=" << g.K << " ta=" << g.ta
                << " tb=" << g.tb << " acc=" << g.acc << ") at (" << r << "," << c << ")";
          }
        }
      }
    }
  }
}

TEST(Gemm, BackendInfoNamesLibraryIsaAndThreads) {
  const GemmBackendInfo i = gemm_backend_info();
  EXPECT_EQ(i.library.rfind("oneDNN ", 0), 0u) << i.library;
  EXPECT_FALSE(i.isa.empty());
  EXPECT_EQ(i.isa.find("isa-0x"), std::string::npos) << "unnamed ISA: " << i.isa;
  EXPECT_EQ(i.threads, omp_get_max_threads());
  EXPECT_EQ(i.native_bf16, gemm_has_native_bf16());
  // Native bf16 exactly where oneDNN dispatches to AVX512-BF16 or AMX (below, oneDNN emulates
  // bf16 matmuls slower than f32: amp must not pick them).
  EXPECT_EQ(i.native_bf16, i.isa == "avx512_core_bf16" || i.isa == "avx512_core_amx") << i.isa;
}

TEST(Gemm, EnvSwitchRoutesToReference) {
  // The switch is read once per process, so the check runs in a child copy of this binary with
  // AR_GEMM_REF=1; there gemm must equal gemm_ref bit for bit (oneDNN's sums would differ).
  const int64_t M = 17, N = 33, K = 129;
  if (const char* v = std::getenv("AR_GEMM_REF"); v && std::string(v) == "1") {
    auto A = random_vec(size_t(M * K), 61), B = random_vec(size_t(K * N), 62);
    std::vector<float> C(size_t(M * N)), R(size_t(M * N));
    gemm(C.data(), A.data(), B.data(), M, N, K, false, false, false, Precision::F32);
    gemm_ref(R.data(), A.data(), B.data(), M, N, K, false, false, false, Precision::F32);
    for (size_t i = 0; i < C.size(); ++i) ASSERT_EQ(C[i], R[i]) << i;
    return;
  }
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string cmd = "AR_GEMM_REF=1 '" + self +
                          "' --gtest_filter=Gemm.EnvSwitchRoutesToReference > /dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST(Gemm, RoundToBf16) {
  const float in[] = {1.0f + 1.0f / 1024, 1.0f + 3.0f / 256, -2.5f};
  float out[3];
  round_to_bf16(out, in, 3);
  EXPECT_EQ(out[0], 1.0f);               // below half an ulp (2^-8): down
  EXPECT_EQ(out[1], 1.0f + 1.0f / 64);   // 1+3/256 = 1+1.5·2^-7: tie -> even (1+2·2^-7)
  EXPECT_EQ(out[2], -2.5f);              // exact
}

}  // namespace
}  // namespace ar

namespace ar {
namespace {
// Byte-identical results for 1 and 2 threads (issue #18): every product is cut into tiles by its
// shape alone and each tile runs single-threaded. oneDNN's own threading summed some of these
// shapes (stories260K's) in a thread-count-dependent order, so SignRound's outputs differed.
TEST(Gemm, ResultDoesNotDependOnThreadCount) {
  const auto shapes = model_gemms();
  const int before = std::max(2, omp_get_max_threads());
  for (Precision p : {Precision::F32, Precision::BF16}) {
    for (size_t j = 0; j < shapes.size(); ++j) {
      const ModelGemm& g = shapes[j];
      const int64_t a_rows = g.a_rows(), b_rows = g.b_rows();
      const int64_t lda = g.a_ld(), ldb = g.b_ld(), ldc = g.c_ld();
      const auto A = random_vec(size_t(a_rows * lda), 700 + uint32_t(3 * j));
      const auto B = random_vec(size_t(b_rows * ldb), 701 + uint32_t(3 * j));
      const auto C0 = random_vec(size_t(g.M * ldc), 702 + uint32_t(3 * j));
      std::vector<std::vector<float>> C(3, C0);
      for (int run = 0; run < 3; ++run) {  // 1 thread, all threads, and nested in a parallel region
        omp_set_num_threads(run == 0 ? 1 : before);
        float* c = C[size_t(run)].data();
        if (run < 2) {
          gemm(c, A.data(), B.data(), g.M, g.N, g.K, g.ta, g.tb, g.acc, p, lda, ldb, ldc);
        } else {
#pragma omp parallel num_threads(2)
          {
#pragma omp single
            gemm(c, A.data(), B.data(), g.M, g.N, g.K, g.ta, g.tb, g.acc, p, lda, ldb, ldc);
          }
        }
      }
      omp_set_num_threads(before);
      for (size_t i = 0; i < C0.size(); ++i) {
        ASSERT_EQ(C[0][i], C[1][i]) << "1 vs " << before << " threads, shape " << j << " @" << i;
        ASSERT_EQ(C[0][i], C[2][i]) << "top level vs nested, shape " << j << " @" << i;
      }
    }
  }
}
}  // namespace
}  // namespace ar

namespace ar {
namespace {
// gemm_serial (one primitive call on the calling thread; what MoE experts use, with row counts
// that vary per call) against the reference: M (the expert's rows) and K (its rows again, in the
// weight gradients) from 0 and 1 up, every transpose, accumulate and strided views, f32 and bf16.
TEST(GemmSerial, MatchesReference) {
  uint32_t seed = 900;
  for (Precision p : {Precision::F32, Precision::BF16})
    for (int64_t M : {0, 1, 5, 16, 33, 130})
      for (int64_t K : {0, 1, 17, 64})
        for (int flags = 0; flags < 8; ++flags) {
          const bool ta = flags & 1, tb = flags & 2, acc = flags & 4;
          check_case(Case{M, 48, K, ta, tb, acc, 0, 0, 0, p}, seed++, /*serial=*/true);
          check_case(Case{M, 7, K, ta, tb, acc, 3, 5, 2, p}, seed++, /*serial=*/true);
        }
}

// The same bits from 1 thread, from all threads, and from inside a parallel region where every
// thread multiplies its own products at once (as MoE experts run); an expert's shapes at small scale.
TEST(GemmSerial, SameBitsAtTopLevelAndNested) {
  const int before = std::max(2, omp_get_max_threads());
  struct Shape {
    int64_t M, N, K;
    bool ta, tb, acc;
  };
  const std::vector<Shape> shapes = {{48, 96, 64, false, true, false},  // gate/up forward
                                     {48, 64, 96, false, false, true},  // d x (+=)
                                     {96, 64, 48, true, false, true},   // weight gradient over the rows
                                     {1, 96, 64, false, true, false}};
  for (Precision p : {Precision::F32, Precision::BF16})
    for (size_t j = 0; j < shapes.size(); ++j) {
      const Shape& g = shapes[j];
      const auto A = random_vec(size_t(g.M * g.K), 950 + uint32_t(3 * j));
      const auto B = random_vec(size_t(g.N * g.K), 951 + uint32_t(3 * j));
      const auto C0 = random_vec(size_t(g.M * g.N), 952 + uint32_t(3 * j));
      std::vector<std::vector<float>> C(2 + 4, C0);
      for (int run = 0; run < 2; ++run) {
        omp_set_num_threads(run == 0 ? 1 : before);
        gemm_serial(C[size_t(run)].data(), A.data(), B.data(), g.M, g.N, g.K, g.ta, g.tb, g.acc, p);
      }
      omp_set_num_threads(before);
#pragma omp parallel for num_threads(2) schedule(dynamic, 1)
      for (int r = 0; r < 4; ++r)
        gemm_serial(C[size_t(2 + r)].data(), A.data(), B.data(), g.M, g.N, g.K, g.ta, g.tb, g.acc, p);
      for (size_t r = 1; r < C.size(); ++r)
        for (size_t i = 0; i < C0.size(); ++i) ASSERT_EQ(C[0][i], C[r][i]) << "shape " << j << " run " << r << " @" << i;
    }
}
}  // namespace
}  // namespace ar
