// Tests for kernels/attention: forward against attention_ref (double) for GQA ratios 1/2/4 and
// odd T (including T past the causal row-block size), T = 1 by hand, causality exactly, and
// backward against central differences of a double attention written here.
#include "kernels/attention.h"

#include "core/dtype.h"
#include "kernels/gemm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
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
  attention_forward(out.data(), scratch.data(), scratch.size(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv,
                    D, scale, p);
  attention_ref(ref.data(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv, D, scale, p);
  double max_err = 0;
  for (size_t i = 0; i < out.size(); ++i) max_err = std::max(max_err, double(std::fabs(out[i] - ref[i])));
  EXPECT_LE(max_err, tol) << "T=" << T << " H=" << H << " Hkv=" << Hkv << " D=" << D;
}

TEST(Attention, ScratchIsOneRowBlockPerThread) {
  const size_t threads = size_t(omp_get_max_threads());
  EXPECT_EQ(attention_scratch_floats(33), threads * 33u * 33u);    // T below one block
  EXPECT_EQ(attention_scratch_floats(2048), threads * 256u * 2048u);
  if (threads <= 8) {
    EXPECT_LE(attention_scratch_floats(2048), 2048u * 2048u);
  }
  EXPECT_EQ(attention_backward_scratch_floats(2048), 2 * attention_scratch_floats(2048));
}

TEST(Attention, RepeatedCallsAreBitIdentical) {
  // Heads run on different threads; the result must not depend on scheduling.
  const int64_t T = 129, H = 8, Hkv = 2, D = 16;
  auto in = make_inputs(T, H, Hkv, D, 31);
  std::vector<float> a(size_t(T * H * D)), b(a.size()), scratch(attention_scratch_floats(T));
  for (int rep = 0; rep < 3; ++rep) {
    attention_forward(rep == 0 ? a.data() : b.data(), scratch.data(), scratch.size(), in.q.data(), in.k.data(),
                      in.v.data(), T, H, Hkv, D, 0.25f, Precision::F32);
    if (rep > 0) {
      for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << i;
    }
  }
}

TEST(Attention, ScratchSizedForFewerThreadsThanTheCallHas) {
  // Scratch allocated while OpenMP offered 1 thread, call made with more: the kernels must stay
  // inside the slots they were given (ASan builds catch an overrun) and still match the reference.
  const int64_t T = 40, H = 4, Hkv = 2, D = 8;
  auto in = make_inputs(T, H, Hkv, D, 5);
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<float> fwd(attention_scratch_floats(T)), bwd(attention_backward_scratch_floats(T));
  omp_set_num_threads(std::max(2, before));
  std::vector<float> out(size_t(T * H * D)), ref(out.size());
  attention_forward(out.data(), fwd.data(), fwd.size(), in.q.data(), in.k.data(), in.v.data(), T, H,
                    Hkv, D, 0.3f, Precision::F32);
  attention_ref(ref.data(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv, D, 0.3f, Precision::F32);
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], kF32Abs) << i;
  std::vector<float> dq(out.size()), dk(in.k.size()), dv(in.v.size());
  attention_backward(dq.data(), dk.data(), dv.data(), bwd.data(), bwd.size(), out.data(), in.q.data(),
                     in.k.data(), in.v.data(), T, H, Hkv, D, 0.3f, Precision::F32);
  omp_set_num_threads(before);
  // Less than one slot is our own bug, reported, never an overrun.
  EXPECT_THROW(attention_forward(out.data(), fwd.data(), size_t(T * T) - 1, in.q.data(), in.k.data(),
                                 in.v.data(), T, H, Hkv, D, 0.3f, Precision::F32),
               std::exception);
}

TEST(Attention, SingleTokenReturnsItsValue) {
  // T = 1: softmax over one score is exactly 1, so each q head outputs its kv head's v.
  const int64_t H = 8, Hkv = 2, D = 5;
  auto in = make_inputs(1, H, Hkv, D, 1);
  std::vector<float> out(size_t(H * D)), scratch(attention_scratch_floats(1));
  attention_forward(out.data(), scratch.data(), scratch.size(), in.q.data(), in.k.data(), in.v.data(), 1, H, Hkv, D,
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
    attention_forward(a.data(), scratch.data(), scratch.size(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv, D,
                      0.35f, Precision::F32);
    attention_forward(b.data(), scratch.data(), scratch.size(), in.q.data(), k2.data(), v2.data(), T, H, Hkv, D,
                      0.35f, Precision::F32);
    for (int64_t i = 0; i < (t0 + 1) * H * D; ++i) ASSERT_EQ(a[i], b[i]) << "T=" << T << " @" << i;
    bool later_changed = false;
    for (int64_t i = (t0 + 1) * H * D; i < T * H * D; ++i) later_changed |= a[i] != b[i];
    EXPECT_TRUE(later_changed);
  }
}

// L = Σ R ⊙ attention(q, k, v) in double: causal, GQA, plain softmax.
double attention_loss(const std::vector<double>& q, const std::vector<double>& k,
                      const std::vector<double>& v, const std::vector<float>& R, int64_t T,
                      int64_t H, int64_t Hkv, int64_t D, double scale) {
  const int64_t group = H / Hkv;
  double L = 0;
  std::vector<double> s(static_cast<size_t>(T));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < T; ++i) {
      const int64_t g = h / group;
      double mx = -1e300;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += q[(i * H + h) * D + d] * k[(j * Hkv + g) * D + d];
        s[j] = dot * scale;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j <= i; ++j) sum += (s[j] = std::exp(s[j] - mx));
      for (int64_t d = 0; d < D; ++d) {
        double o = 0;
        for (int64_t j = 0; j <= i; ++j) o += s[j] / sum * v[(j * Hkv + g) * D + d];
        L += R[(i * H + h) * D + d] * o;
      }
    }
  return L;
}

// Compares attention_backward with central differences on `probes` coordinates of each of q, k, v
// (all of them when probes <= 0).
void check_backward(int64_t T, int64_t H, int64_t Hkv, int64_t D, int probes, uint32_t seed) {
  // Double central differences (h = 1e-5) are exact to ~1e-9 here; the kernel's f32 GEMMs,
  // fast_exp and softmax leave ~1e-6 of the largest gradient.
  constexpr double kGradRel = 2e-5;
  auto in = make_inputs(T, H, Hkv, D, seed);
  std::mt19937 rng(seed + 99);
  auto R = random_vec(size_t(T * H * D), rng);
  const float scale = 1.0f / std::sqrt(float(D));
  std::vector<float> dq(in.q.size(), 7.0f), dk(in.k.size(), 7.0f), dv(in.v.size(), 7.0f);
  std::vector<float> scratch(attention_backward_scratch_floats(T));
  attention_backward(dq.data(), dk.data(), dv.data(), scratch.data(), scratch.size(), R.data(), in.q.data(),
                     in.k.data(), in.v.data(), T, H, Hkv, D, scale, Precision::F32);

  std::vector<double> q(in.q.begin(), in.q.end()), k(in.k.begin(), in.k.end()), v(in.v.begin(), in.v.end());
  struct Target {
    const char* name;
    std::vector<double>* x;
    const std::vector<float>* grad;
  };
  for (Target t : {Target{"dq", &q, &dq}, Target{"dk", &k, &dk}, Target{"dv", &v, &dv}}) {
    std::vector<size_t> idx;
    if (probes <= 0) {
      for (size_t i = 0; i < t.x->size(); ++i) idx.push_back(i);
    } else {
      std::uniform_int_distribution<size_t> pick(0, t.x->size() - 1);
      for (int i = 0; i < probes; ++i) idx.push_back(pick(rng));
    }
    double gmax = 1e-3;
    for (float g : *t.grad) gmax = std::max(gmax, double(std::fabs(g)));
    const double h = 1e-5;
    for (size_t i : idx) {
      const double x0 = (*t.x)[i];
      (*t.x)[i] = x0 + h;
      const double lp = attention_loss(q, k, v, R, T, H, Hkv, D, scale);
      (*t.x)[i] = x0 - h;
      const double lm = attention_loss(q, k, v, R, T, H, Hkv, D, scale);
      (*t.x)[i] = x0;
      ASSERT_NEAR((*t.grad)[i], (lp - lm) / (2 * h), kGradRel * gmax)
          << t.name << " @" << i << " T=" << T << " H=" << H << " Hkv=" << Hkv << " D=" << D;
    }
  }
}

TEST(Attention, BackwardMatchesFiniteDifferences) {
  uint32_t seed = 400;
  for (int64_t T : {1, 2, 5, 17})
    for (int64_t ratio : {1, 2, 4}) check_backward(T, 4, 4 / ratio, 3, 0, seed++);
}

TEST(Attention, BackwardAcrossRowBlocks) {
  // T past the 256-row causal block; probe a sample of coordinates to keep the test fast.
  check_backward(300, 2, 1, 4, 25, 777);
}

TEST(Attention, BackwardBf16CloseToF32) {
  // BF16 rounds q, k, v, dO, P and dS to 8 mantissa bits: gradients move by ~2^-8 relative.
  constexpr double kBf16Rel = 2e-2;
  const int64_t T = 33, H = 4, Hkv = 2, D = 16;
  auto in = make_inputs(T, H, Hkv, D, 55);
  std::mt19937 rng(56);
  auto R = random_vec(size_t(T * H * D), rng);
  std::vector<float> scratch(attention_backward_scratch_floats(T));
  std::vector<float> dq[2], dk[2], dv[2];
  for (int i = 0; i < 2; ++i) {
    dq[i].resize(in.q.size()), dk[i].resize(in.k.size()), dv[i].resize(in.v.size());
    attention_backward(dq[i].data(), dk[i].data(), dv[i].data(), scratch.data(), scratch.size(), R.data(),
                       in.q.data(), in.k.data(), in.v.data(), T, H, Hkv, D, 0.25f,
                       i == 0 ? Precision::F32 : Precision::BF16);
  }
  for (auto* g : {dq, dk, dv}) {
    double gmax = 0, diff = 0;
    for (size_t i = 0; i < g[0].size(); ++i) {
      gmax = std::max(gmax, double(std::fabs(g[0][i])));
      diff = std::max(diff, double(std::fabs(g[0][i] - g[1][i])));
    }
    EXPECT_LE(diff, kBf16Rel * gmax);
    EXPECT_GT(diff, 0.0);  // the rounding is really applied
  }
}

}  // namespace
}  // namespace ar

namespace ar {
namespace {

// attention_backward in BF16, in double with bf16 rounding exactly where the kernels round: q, k,
// v and dO as GEMM inputs, P (the softmax in f32 from the rounded products) for dV, dS for dQ and
// dK; the softmax backward itself uses the unrounded P.
void attention_backward_bf16_ref(std::vector<double>& dq, std::vector<double>& dk, std::vector<double>& dv,
                                 const std::vector<float>& dout, const std::vector<float>& q,
                                 const std::vector<float>& k, const std::vector<float>& v, int64_t T, int64_t H,
                                 int64_t Hkv, int64_t D, float scale) {
  auto rd = [](double x) { return double(bf16_to_f32(f32_to_bf16(float(x)))); };
  const int64_t group = H / Hkv;
  dq.assign(q.size(), 0.0), dk.assign(k.size(), 0.0), dv.assign(v.size(), 0.0);
  std::vector<double> P(static_cast<size_t>(T)), dP(static_cast<size_t>(T));
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / group;
    for (int64_t i = 0; i < T; ++i) {
      const float* qi = &q[size_t((i * H + h) * D)];
      const float* oi = &dout[size_t((i * H + h) * D)];
      double mx = -1e300;
      for (int64_t j = 0; j <= i; ++j) {
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += rd(qi[d]) * rd(k[size_t((j * Hkv + g) * D + d)]);
        P[size_t(j)] = double(float(s)) * scale;
        mx = std::max(mx, P[size_t(j)]);
      }
      double sum = 0, dot = 0;
      for (int64_t j = 0; j <= i; ++j) sum += (P[size_t(j)] = std::exp(P[size_t(j)] - mx));
      for (int64_t j = 0; j <= i; ++j) {
        P[size_t(j)] /= sum;
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += rd(oi[d]) * rd(v[size_t((j * Hkv + g) * D + d)]);
        dP[size_t(j)] = s;
        dot += s * P[size_t(j)];
      }
      for (int64_t j = 0; j <= i; ++j) {
        const double ds = rd(scale * P[size_t(j)] * (dP[size_t(j)] - dot)), p = rd(P[size_t(j)]);
        for (int64_t d = 0; d < D; ++d) {
          const size_t kv = size_t((j * Hkv + g) * D + d), qd = size_t((i * H + h) * D + d);
          dv[kv] += p * rd(oi[d]);
          dq[qd] += ds * rd(k[kv]);
          dk[kv] += ds * rd(qi[d]);
        }
      }
    }
  }
}

TEST(Attention, BackwardBf16MatchesRoundedReference) {
  // Both BF16 paths (staged rounded copies, and native bf16 operands converted once per head)
  // round at the same points as the reference; what is left is f32 summation and the odd P or dS
  // landing on the neighbouring bf16 value (observed <= 5e-5 of the largest gradient, on AVX2 and
  // AMX), against the ~1e-2 by which bf16 and f32 gradients differ (BackwardBf16CloseToF32).
  constexpr double kRel = 5e-4;
  const int64_t T = 300, H = 4, Hkv = 2, D = 16;  // past the 256-row block
  auto in = make_inputs(T, H, Hkv, D, 81);
  std::mt19937 rng(82);
  auto R = random_vec(size_t(T * H * D), rng);
  const float scale = 0.25f;
  std::vector<float> dq(in.q.size()), dk(in.k.size()), dv(in.v.size()),
      scratch(attention_backward_scratch_floats(T));
  attention_backward(dq.data(), dk.data(), dv.data(), scratch.data(), scratch.size(), R.data(), in.q.data(),
                     in.k.data(), in.v.data(), T, H, Hkv, D, scale, Precision::BF16);
  std::vector<double> rq, rk, rv;
  attention_backward_bf16_ref(rq, rk, rv, R, in.q, in.k, in.v, T, H, Hkv, D, scale);
  struct G {
    const char* name;
    const std::vector<float>& got;
    const std::vector<double>& ref;
  };
  for (const G& g : {G{"dq", dq, rq}, G{"dk", dk, rk}, G{"dv", dv, rv}}) {
    double gmax = 0, diff = 0;
    for (size_t i = 0; i < g.got.size(); ++i) {
      gmax = std::max(gmax, std::fabs(g.ref[i]));
      diff = std::max(diff, std::fabs(double(g.got[i]) - g.ref[i]));
    }
    EXPECT_LE(diff, kRel * gmax) << g.name << " (native bf16: " << gemm_has_native_bf16() << ")";
    std::printf("%s: max |diff| %.3g of max |g| %.3g\n", g.name, diff, gmax);
  }
}

}  // namespace
}  // namespace ar
