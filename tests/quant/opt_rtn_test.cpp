// Optimized RTN: never worse than plain RTN in the weighted squared error, the symmetric choice
// equals a brute-force search written out here, and importance moves the choice.
#include "quant/opt_rtn.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "quant/rtn.h"

namespace ar {
namespace {

QuantScheme scheme(int bits, int64_t group, bool sym) {
  QuantScheme s;
  s.bits = bits;
  s.group_size = group;
  s.sym = sym;
  return s;
}

// Heavy-tailed weights (normal with a few outliers), as in real checkpoints.
std::vector<float> weights(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.02f);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<float> w(static_cast<size_t>(n));
  for (auto& x : w) x = u(rng) < 0.01f ? 8.f * nd(rng) : nd(rng) + 0.003f;
  return w;
}

// Per-group weighted squared error of a quantized weight, in double.
std::vector<double> group_errors_of(const QuantizedWeight& q, const std::vector<float>& w, const float* imp) {
  std::vector<float> deq(w.size());
  q.dequantize(deq.data());
  std::vector<double> e(size_t(q.out * q.n_groups), 0.0);
  for (int64_t o = 0; o < q.out; ++o)
    for (int64_t i = 0; i < q.in; ++i) {
      const double d = double(deq[size_t(o * q.in + i)]) - double(w[size_t(o * q.in + i)]);
      e[size_t(o * q.n_groups + i / q.group)] += (imp ? imp[i] : 1.0) * d * d;
    }
  return e;
}

class OptRtn : public ::testing::TestWithParam<std::tuple<int, bool, bool>> {};

TEST_P(OptRtn, NeverWorseThanRtnAndUsuallyBetter) {
  const auto [bits, sym, use_imp] = GetParam();
  const int64_t out = 64, in = 172;  // group 32: a padded last group of 12
  const auto w = weights(out * in, 11);
  std::vector<float> imp(static_cast<size_t>(in));
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.01f, 4.f);
  for (auto& x : imp) x = u(rng);
  const float* ip = use_imp ? imp.data() : nullptr;
  const QuantScheme s = scheme(bits, 32, sym);
  const auto e_rtn = group_errors_of(quantize_rtn(w.data(), out, in, s), w, ip);
  const QuantizedWeight q = quantize_opt_rtn(w.data(), out, in, s, ip);
  const auto e_opt = group_errors_of(q, w, ip);
  double sum_rtn = 0, sum_opt = 0;
  for (size_t g = 0; g < e_rtn.size(); ++g) {
    // The search compares f32 sums; allow for their rounding when re-measured in double.
    EXPECT_LE(e_opt[g], e_rtn[g] * (1 + 1e-5) + 1e-20) << "group " << g;
    sum_rtn += e_rtn[g];
    sum_opt += e_opt[g];
  }
  for (uint8_t z : q.zeros) EXPECT_LE(int(z), (1 << bits) - 1);
  if (sym) {
    for (uint8_t z : q.zeros) EXPECT_EQ(int(z), 1 << (bits - 1));
  }
  EXPECT_LT(sum_opt, 0.97 * sum_rtn) << "bits " << bits;  // the search should find something
}

INSTANTIATE_TEST_SUITE_P(Schemes, OptRtn,
                         ::testing::Combine(::testing::Values(2, 3, 4, 8), ::testing::Bool(), ::testing::Bool()));

// The symmetric grid written out plainly (double error, f32 scale): the chosen scale's error must
// equal the brute-force minimum.
TEST(OptRtn, SymMatchesBruteForce) {
  const int bits = 4, n = 1 << (bits - 1);
  const int64_t in = 64;
  const auto w = weights(8 * in, 21);
  const QuantizedWeight q = quantize_opt_rtn(w.data(), 8, in, scheme(bits, 32, true));
  const float floor16 = f16_to_f32(f32_to_f16(1e-5f));
  for (int64_t o = 0; o < 8; ++o)
    for (int64_t g = 0; g < 2; ++g) {
      const float* x = w.data() + o * in + g * 32;
      float gmax = 0;
      for (int i = 0; i < 32; ++i)
        if (std::fabs(x[i]) > std::fabs(gmax) || (std::fabs(x[i]) == std::fabs(gmax) && x[i] > gmax)) gmax = x[i];
      auto err = [&](float sc) {
        double e = 0;
        for (int i = 0; i < 32; ++i) {
          const float qv = std::clamp(std::nearbyint(x[i] / sc), float(-n), float(n - 1));
          const double d = double(sc * qv) - double(x[i]);
          e += d * d;
        }
        return e;
      };
      double best = 1e300;
      for (int i = -100; i <= 100; ++i) {
        float sc = f16_to_f32(f32_to_f16(-gmax / (float(n) * float(1.0 - 0.0075 * i))));
        if (std::fabs(sc) < 1e-5f) sc = sc < 0 ? -floor16 : floor16;
        best = std::min(best, err(sc));
      }
      const double chosen = err(f16_to_f32(q.scales[size_t(o * 2 + g)]));
      EXPECT_NEAR(chosen, best, 1e-5 * best) << "row " << o << " group " << g;
    }
}

TEST(OptRtn, ImportanceMovesTheChoice) {
  // Same weights, uniform importance vs one channel per group weighted 1000x: the weighted search
  // must do at least as well under its own weighting, and pick other scales somewhere.
  const int64_t out = 64, in = 128;
  const auto w = weights(out * in, 5);
  std::vector<float> imp(size_t(in), 1.f);
  for (int64_t i = 0; i < in; i += 32) imp[size_t(i + 7)] = 1000.f;
  const QuantScheme s = scheme(3, 32, true);
  const QuantizedWeight plain = quantize_opt_rtn(w.data(), out, in, s);
  const QuantizedWeight weighted = quantize_opt_rtn(w.data(), out, in, s, imp.data());
  EXPECT_NE(plain.scales, weighted.scales);
  const auto e_plain = group_errors_of(plain, w, imp.data()), e_w = group_errors_of(weighted, w, imp.data());
  for (size_t g = 0; g < e_w.size(); ++g) EXPECT_LE(e_w[g], e_plain[g] * (1 + 1e-5) + 1e-20);
  // The heavy channel itself is reproduced better on average.
  std::vector<float> dp(w.size()), dw(w.size());
  plain.dequantize(dp.data());
  weighted.dequantize(dw.data());
  double ep = 0, ew = 0;
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 7; i < in; i += 32) {
      const size_t k = size_t(o * in + i);
      ep += std::pow(double(dp[k]) - w[k], 2);
      ew += std::pow(double(dw[k]) - w[k], 2);
    }
  EXPECT_LT(ew, ep);
}

TEST(OptRtn, ZeroGroupsAndGroupMinusOne) {
  std::vector<float> w(2 * 40, 0.f);
  const QuantizedWeight q = quantize_opt_rtn(w.data(), 2, 40, scheme(4, -1, false));
  EXPECT_EQ(q.n_groups, 1);
  std::vector<float> deq(w.size(), 1.f);
  q.dequantize(deq.data());
  EXPECT_EQ(deq, w);
  const QuantizedWeight s = quantize_opt_rtn(w.data(), 2, 40, scheme(2, -1, true));
  s.dequantize(deq.data());
  EXPECT_EQ(deq, w);
}

TEST(OptRtn, FakeQuantizeOptimizedEqualsDequantized) {
  const auto w = weights(16 * 96, 9);
  const QuantScheme s = scheme(4, 32, false);
  std::vector<float> fq = w, deq(w.size());
  quantize_opt_rtn(w.data(), 16, 96, s).dequantize(deq.data());
  fake_quantize(fq.data(), 16, 96, s, true);
  EXPECT_EQ(fq, deq);
}

}  // namespace
}  // namespace ar
