// Tests for kernels/attention: forward against attention_ref (double) for GQA ratios 1/2/4 and
// odd T (including T past the causal row-block size), T = 1 by hand, causality exactly, and
// backward against central differences of a double attention written here; the same for the
// sliding window and the logit soft-cap, plus their off settings being bit-identical.
#include "kernels/attention.h"

#include "core/dtype.h"
#include "kernels/gemm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
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
                    uint32_t seed, int64_t window = 0, float softcap = 0.0f) {
  auto in = make_inputs(T, H, Hkv, D, seed);
  const float scale = 1.0f / std::sqrt(float(D));
  std::vector<float> out(size_t(T * H * D)), ref(out.size()), scratch(attention_scratch_floats(T, H, Hkv, D));
  attention_forward(out.data(), scratch.data(), scratch.size(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv,
                    D, scale, p, window, softcap);
  attention_ref(ref.data(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv, D, scale, p, window, softcap);
  double max_err = 0;
  for (size_t i = 0; i < out.size(); ++i) max_err = std::max(max_err, double(std::fabs(out[i] - ref[i])));
  EXPECT_LE(max_err, tol) << "T=" << T << " H=" << H << " Hkv=" << Hkv << " D=" << D << " window=" << window
                          << " softcap=" << softcap;
}

TEST(Attention, ScratchIsTheBf16CopiesThenOneRowBlockPerThread) {
  const size_t threads = size_t(omp_get_max_threads());
  // 4B shapes: q (2048·32·128 bf16), k and v (2048·8·128 each), two bf16 per float; dO as q.
  const size_t q = 2048u * 32u * 128u / 2u, kv = 2048u * 8u * 128u / 2u;
  EXPECT_EQ(attention_scratch_floats(2048, 32, 8, 128), q + 2 * kv + threads * 256u * 2048u);
  EXPECT_EQ(attention_backward_scratch_floats(2048, 32, 8, 128), 2 * q + 2 * kv + 2 * threads * 256u * 2048u);
  // T below one block; each copy starts on 64 bytes: 33·4·3 = 396 bf16 -> 208 floats, 33·2·3 = 198 -> 112.
  EXPECT_EQ(attention_scratch_floats(33, 4, 2, 3), 208u + 2 * 112u + threads * 33u * 33u);
}

TEST(Attention, RepeatedCallsAreBitIdentical) {
  // Heads run on different threads; the result must not depend on scheduling.
  const int64_t T = 129, H = 8, Hkv = 2, D = 16;
  auto in = make_inputs(T, H, Hkv, D, 31);
  std::vector<float> a(size_t(T * H * D)), b(a.size()), scratch(attention_scratch_floats(T, H, Hkv, D));
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
  std::vector<float> fwd(attention_scratch_floats(T, H, Hkv, D)), bwd(attention_backward_scratch_floats(T, H, Hkv, D));
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
  std::vector<float> out(size_t(H * D)), scratch(attention_scratch_floats(1, H, Hkv, D));
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
    std::vector<float> a(size_t(T * H * D)), b(a.size()), scratch(attention_scratch_floats(T, H, Hkv, D));
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

// L = Σ R ⊙ attention(q, k, v) in double: causal (and keys i − j < window when window > 0),
// GQA, scores soft-capped to softcap·tanh(s/softcap) when softcap > 0, plain softmax.
double attention_loss(const std::vector<double>& q, const std::vector<double>& k,
                      const std::vector<double>& v, const std::vector<float>& R, int64_t T,
                      int64_t H, int64_t Hkv, int64_t D, double scale, int64_t window = 0,
                      double softcap = 0) {
  const int64_t group = H / Hkv;
  double L = 0;
  std::vector<double> s(static_cast<size_t>(T));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < T; ++i) {
      const int64_t g = h / group;
      const int64_t j0 = window > 0 ? std::max<int64_t>(0, i - window + 1) : 0;
      double mx = -1e300;
      for (int64_t j = j0; j <= i; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += q[(i * H + h) * D + d] * k[(j * Hkv + g) * D + d];
        s[j] = dot * scale;
        if (softcap > 0) s[j] = softcap * std::tanh(s[j] / softcap);
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int64_t j = j0; j <= i; ++j) sum += (s[j] = std::exp(s[j] - mx));
      for (int64_t d = 0; d < D; ++d) {
        double o = 0;
        for (int64_t j = j0; j <= i; ++j) o += s[j] / sum * v[(j * Hkv + g) * D + d];
        L += R[(i * H + h) * D + d] * o;
      }
    }
  return L;
}

// Compares attention_backward with central differences on `probes` coordinates of each of q, k, v
// (all of them when probes <= 0).
void check_backward(int64_t T, int64_t H, int64_t Hkv, int64_t D, int probes, uint32_t seed,
                    int64_t window = 0, float softcap = 0.0f) {
  // Double central differences (h = 1e-5) are exact to ~1e-9 here; the kernel's f32 GEMMs,
  // fast_exp and softmax leave ~1e-6 of the largest gradient.
  constexpr double kGradRel = 2e-5;
  auto in = make_inputs(T, H, Hkv, D, seed);
  std::mt19937 rng(seed + 99);
  auto R = random_vec(size_t(T * H * D), rng);
  const float scale = 1.0f / std::sqrt(float(D));
  std::vector<float> dq(in.q.size(), 7.0f), dk(in.k.size(), 7.0f), dv(in.v.size(), 7.0f);
  std::vector<float> scratch(attention_backward_scratch_floats(T, H, Hkv, D));
  attention_backward(dq.data(), dk.data(), dv.data(), scratch.data(), scratch.size(), R.data(), in.q.data(),
                     in.k.data(), in.v.data(), T, H, Hkv, D, scale, Precision::F32, window, softcap);

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
      const double lp = attention_loss(q, k, v, R, T, H, Hkv, D, scale, window, softcap);
      (*t.x)[i] = x0 - h;
      const double lm = attention_loss(q, k, v, R, T, H, Hkv, D, scale, window, softcap);
      (*t.x)[i] = x0;
      ASSERT_NEAR((*t.grad)[i], (lp - lm) / (2 * h), kGradRel * gmax)
          << t.name << " @" << i << " T=" << T << " H=" << H << " Hkv=" << Hkv << " D=" << D
          << " window=" << window << " softcap=" << softcap;
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
  std::vector<float> scratch(attention_backward_scratch_floats(T, H, Hkv, D));
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
// window and softcap as in attention_backward (dS gets the cap's derivative before its rounding).
void attention_backward_bf16_ref(std::vector<double>& dq, std::vector<double>& dk, std::vector<double>& dv,
                                 const std::vector<float>& dout, const std::vector<float>& q,
                                 const std::vector<float>& k, const std::vector<float>& v, int64_t T, int64_t H,
                                 int64_t Hkv, int64_t D, float scale, int64_t window = 0,
                                 float softcap = 0.0f) {
  auto rd = [](double x) { return double(bf16_to_f32(f32_to_bf16(float(x)))); };
  const int64_t group = H / Hkv;
  dq.assign(q.size(), 0.0), dk.assign(k.size(), 0.0), dv.assign(v.size(), 0.0);
  std::vector<double> P(static_cast<size_t>(T)), dP(static_cast<size_t>(T)), dcap(static_cast<size_t>(T), 1.0);
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / group;
    for (int64_t i = 0; i < T; ++i) {
      const float* qi = &q[size_t((i * H + h) * D)];
      const float* oi = &dout[size_t((i * H + h) * D)];
      const int64_t j0 = window > 0 ? std::max<int64_t>(0, i - window + 1) : 0;
      double mx = -1e300;
      for (int64_t j = j0; j <= i; ++j) {
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += rd(qi[d]) * rd(k[size_t((j * Hkv + g) * D + d)]);
        P[size_t(j)] = double(float(s)) * scale;
        if (softcap > 0.0f) {
          const double t = std::tanh(P[size_t(j)] / softcap);
          P[size_t(j)] = softcap * t;
          dcap[size_t(j)] = 1.0 - t * t;
        }
        mx = std::max(mx, P[size_t(j)]);
      }
      double sum = 0, dot = 0;
      for (int64_t j = j0; j <= i; ++j) sum += (P[size_t(j)] = std::exp(P[size_t(j)] - mx));
      for (int64_t j = j0; j <= i; ++j) {
        P[size_t(j)] /= sum;
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += rd(oi[d]) * rd(v[size_t((j * Hkv + g) * D + d)]);
        dP[size_t(j)] = s;
        dot += s * P[size_t(j)];
      }
      for (int64_t j = j0; j <= i; ++j) {
        const double ds = rd(scale * P[size_t(j)] * (dP[size_t(j)] - dot) * dcap[size_t(j)]);
        const double p = rd(P[size_t(j)]);
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

// Both BF16 paths (staged rounded copies, and native bf16 operands converted once per head)
// round at the same points as the reference; what is left is f32 summation and the odd P or dS
// landing on the neighbouring bf16 value (observed <= 5e-5 of the largest gradient, on AVX2 and
// AMX), against the ~1e-2 by which bf16 and f32 gradients differ (BackwardBf16CloseToF32).
void check_backward_bf16(int64_t T, int64_t H, int64_t Hkv, int64_t D, uint32_t seed, int64_t window = 0,
                         float softcap = 0.0f) {
  constexpr double kRel = 5e-4;
  auto in = make_inputs(T, H, Hkv, D, seed);
  std::mt19937 rng(seed + 1);
  auto R = random_vec(size_t(T * H * D), rng);
  const float scale = 0.25f;
  std::vector<float> dq(in.q.size()), dk(in.k.size()), dv(in.v.size()),
      scratch(attention_backward_scratch_floats(T, H, Hkv, D));
  attention_backward(dq.data(), dk.data(), dv.data(), scratch.data(), scratch.size(), R.data(), in.q.data(),
                     in.k.data(), in.v.data(), T, H, Hkv, D, scale, Precision::BF16, window, softcap);
  std::vector<double> rq, rk, rv;
  attention_backward_bf16_ref(rq, rk, rv, R, in.q, in.k, in.v, T, H, Hkv, D, scale, window, softcap);
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
    EXPECT_LE(diff, kRel * gmax) << g.name << " (native bf16: " << gemm_has_native_bf16() << ") T=" << T
                                 << " window=" << window << " softcap=" << softcap;
    std::printf("%s: max |diff| %.3g of max |g| %.3g (T=%lld window=%lld softcap=%g)\n", g.name, diff, gmax,
                (long long)T, (long long)window, double(softcap));
  }
}

TEST(Attention, BackwardBf16MatchesRoundedReference) {
  check_backward_bf16(300, 4, 2, 16, 81);  // past the 256-row block
}

}  // namespace
}  // namespace ar

// Sliding window and logit soft-cap.
namespace ar {
namespace {

// (T, window) pairs covering: window 1 (each row sees itself only), small windows, window = T and
// beyond (plain causal), and T past the 256-row block with windows that are not multiples of it,
// so later row blocks start at a key c0 > 0 that is not block-aligned (600/300: blocks start at
// keys 0, 0, 213; 600/100: 0, 157, 413; 513/255: 0, 2, 258).
struct WindowCase {
  int64_t T, window;
};
constexpr WindowCase kWindowCases[] = {{1, 1},   {17, 1},    {17, 5},    {33, 33},   {33, 100},
                                       {129, 16}, {300, 7},  {600, 300}, {600, 100}, {513, 255}};

// Soft-caps: strong (the tanh bends most scores, |s| reaches ~4 here) and mild (Gemma-2's 50).
constexpr float kSoftcaps[] = {0.0f, 2.0f, 50.0f};

TEST(AttentionWindow, MatchesReferenceF32) {
  uint32_t seed = 1000;
  for (const WindowCase& c : kWindowCases)
    for (float cap : kSoftcaps) compare_to_ref(c.T, 4, 2, 16, Precision::F32, kF32Abs, seed++, c.window, cap);
  compare_to_ref(129, 4, 4, 16, Precision::F32, kF32Abs, seed++, 10, 2.0f);  // no GQA
  compare_to_ref(129, 4, 1, 16, Precision::F32, kF32Abs, seed++, 10, 2.0f);  // one kv head
}

TEST(AttentionWindow, MatchesReferenceBf16) {
  uint32_t seed = 2000;
  for (const WindowCase& c : kWindowCases)
    for (float cap : kSoftcaps) compare_to_ref(c.T, 4, 2, 16, Precision::BF16, kBF16Abs, seed++, c.window, cap);
}

TEST(AttentionSoftcap, MatchesReferenceWithoutWindow) {
  uint32_t seed = 3000;
  for (int64_t T : {1, 17, 129, 300})
    for (float cap : {0.5f, 2.0f, 50.0f}) {
      compare_to_ref(T, 4, 2, 16, Precision::F32, kF32Abs, seed++, 0, cap);
      compare_to_ref(T, 4, 2, 16, Precision::BF16, kBF16Abs, seed++, 0, cap);
    }
}

// Forward and backward outputs of one call, for bitwise comparisons.
struct AllOutputs {
  std::vector<float> out, dq, dk, dv;
  bool operator==(const AllOutputs&) const = default;  // float ==: +0 and -0 compare equal
};

AllOutputs run_all(const Inputs& in, const std::vector<float>& R, int64_t T, int64_t H, int64_t Hkv, int64_t D,
                   Precision p, const int64_t* window, const float* softcap) {
  AllOutputs o{std::vector<float>(in.q.size()), std::vector<float>(in.q.size()), std::vector<float>(in.k.size()),
               std::vector<float>(in.v.size())};
  std::vector<float> fs(attention_scratch_floats(T, H, Hkv, D)), bs(attention_backward_scratch_floats(T, H, Hkv, D));
  const float scale = 0.3f;
  if (window) {  // the new arguments given explicitly
    attention_forward(o.out.data(), fs.data(), fs.size(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv, D,
                      scale, p, *window, *softcap);
    attention_backward(o.dq.data(), o.dk.data(), o.dv.data(), bs.data(), bs.size(), R.data(), in.q.data(),
                       in.k.data(), in.v.data(), T, H, Hkv, D, scale, p, *window, *softcap);
  } else {  // the call every existing caller makes
    attention_forward(o.out.data(), fs.data(), fs.size(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv, D,
                      scale, p);
    attention_backward(o.dq.data(), o.dk.data(), o.dv.data(), bs.data(), bs.size(), R.data(), in.q.data(),
                       in.k.data(), in.v.data(), T, H, Hkv, D, scale, p);
  }
  return o;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void expect_same_bits(const AllOutputs& a, const AllOutputs& b, const char* what) {
  EXPECT_TRUE(same_bits(a.out, b.out)) << what << ": out";
  EXPECT_TRUE(same_bits(a.dq, b.dq)) << what << ": dq";
  EXPECT_TRUE(same_bits(a.dk, b.dk)) << what << ": dk";
  EXPECT_TRUE(same_bits(a.dv, b.dv)) << what << ": dv";
}

TEST(AttentionWindow, ZeroOptionsAreBitIdenticalToTheOldCall) {
  // window = 0, softcap = 0 passed explicitly: the same bits as the call without them, forward
  // and backward, both precisions, one and several row blocks.
  for (Precision p : {Precision::F32, Precision::BF16})
    for (int64_t T : {17, 300}) {
      const int64_t H = 4, Hkv = 2, D = 16;
      auto in = make_inputs(T, H, Hkv, D, 42);
      std::mt19937 rng(43);
      auto R = random_vec(size_t(T * H * D), rng);
      const int64_t w0 = 0;
      const float c0 = 0.0f;
      expect_same_bits(run_all(in, R, T, H, Hkv, D, p, nullptr, nullptr), run_all(in, R, T, H, Hkv, D, p, &w0, &c0),
                       p == Precision::F32 ? "F32" : "BF16");
    }
}

TEST(AttentionWindow, WindowOfAtLeastTIsPlainCausalBitForBit) {
  // Every row's window then starts at key 0: the same blocks, GEMMs and softmax as window = 0.
  for (Precision p : {Precision::F32, Precision::BF16})
    for (int64_t T : {1, 33, 300, 600}) {
      const int64_t H = 4, Hkv = 2, D = 8;
      auto in = make_inputs(T, H, Hkv, D, 44);
      std::mt19937 rng(45);
      auto R = random_vec(size_t(T * H * D), rng);
      for (float cap : {0.0f, 2.0f}) {
        const int64_t w0 = 0;
        const AllOutputs causal = run_all(in, R, T, H, Hkv, D, p, &w0, &cap);
        for (int64_t window : {T, T + 1, 10 * T}) {
          expect_same_bits(causal, run_all(in, R, T, H, Hkv, D, p, &window, &cap), "window >= T");
        }
      }
    }
}

TEST(AttentionWindow, KeysOutsideTheWindowDoNotLeak) {
  // Changing k, v at positions < m must leave rows i >= m + window − 1 bit-identical (their
  // masked products are exact zeros or not computed at all), while rows inside do change.
  for (Precision p : {Precision::F32, Precision::BF16})
    for (WindowCase c : {WindowCase{40, 7}, WindowCase{600, 300}, WindowCase{600, 100}}) {
      const int64_t T = c.T, H = 4, Hkv = 2, D = 8, m = 5;
      auto in = make_inputs(T, H, Hkv, D, 9);
      auto k2 = in.k, v2 = in.v;
      for (int64_t i = 0; i < m * Hkv * D; ++i) {
        k2[i] += 0.75f;
        v2[i] = -v2[i] * 2.0f;
      }
      std::vector<float> a(size_t(T * H * D)), b(a.size()), scratch(attention_scratch_floats(T, H, Hkv, D));
      attention_forward(a.data(), scratch.data(), scratch.size(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv,
                        D, 0.35f, p, c.window);
      attention_forward(b.data(), scratch.data(), scratch.size(), in.q.data(), k2.data(), v2.data(), T, H, Hkv, D,
                        0.35f, p, c.window);
      const int64_t first_blind = m + c.window - 1;  // row m + window − 1 sees keys m .. m + window − 1
      bool inside_changed = false;
      for (int64_t i = 0; i < first_blind * H * D; ++i) inside_changed |= a[i] != b[i];
      EXPECT_TRUE(inside_changed) << "T=" << T << " window=" << c.window;
      for (int64_t i = first_blind * H * D; i < T * H * D; ++i)
        ASSERT_EQ(a[i], b[i]) << "T=" << T << " window=" << c.window << " row " << i / (H * D);
    }
}

TEST(AttentionWindow, WindowOneReturnsOwnValue) {
  // window = 1: each row attends only to itself, so out = v of the row's kv head (exactly: P = 1).
  const int64_t T = 300, H = 4, Hkv = 2, D = 5;
  auto in = make_inputs(T, H, Hkv, D, 3);
  std::vector<float> out(size_t(T * H * D)), scratch(attention_scratch_floats(T, H, Hkv, D));
  for (float cap : {0.0f, 2.0f}) {
    attention_forward(out.data(), scratch.data(), scratch.size(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv,
                      D, 0.5f, Precision::F32, 1, cap);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t d = 0; d < D; ++d)
          ASSERT_EQ(out[(t * H + h) * D + d], in.v[(t * Hkv + h / 2) * D + d]) << t << "," << h << "," << d;
  }
}

TEST(AttentionWindow, BackwardMatchesFiniteDifferences) {
  uint32_t seed = 500;
  for (int64_t T : {2, 5, 17})
    for (int64_t window : {1, 3})
      for (float cap : {0.0f, 1.5f}) check_backward(T, 4, 2, 3, 0, seed++, window, cap);
}

TEST(AttentionSoftcap, BackwardMatchesFiniteDifferences) {
  // Strong (1.5: most scores bent) and mild caps, every coordinate, GQA ratios 1 and 2.
  uint32_t seed = 600;
  for (int64_t T : {1, 5, 17})
    for (float cap : {0.7f, 1.5f, 50.0f}) {
      check_backward(T, 4, 2, 3, 0, seed++, 0, cap);
      check_backward(T, 2, 2, 3, 0, seed++, 0, cap);
    }
}

TEST(AttentionWindow, BackwardAcrossRowBlocks) {
  // Blocks starting at unaligned keys (600/300: 0, 0, 213; 600/100: 0, 157, 413), with a cap.
  check_backward(600, 2, 1, 4, 25, 778, 300, 1.5f);
  check_backward(600, 2, 1, 4, 25, 779, 100, 0.0f);
}

TEST(AttentionWindow, BackwardBf16MatchesRoundedReference) {
  // Same tolerance as BackwardBf16MatchesRoundedReference; covers the native-bf16 path on
  // AVX512-BF16 / AMX and the staged path elsewhere.
  check_backward_bf16(600, 4, 2, 16, 83, 300, 0.0f);
  check_backward_bf16(600, 4, 2, 16, 85, 100, 2.0f);
  check_backward_bf16(300, 4, 2, 16, 87, 0, 2.0f);
  check_backward_bf16(33, 4, 2, 16, 89, 5, 50.0f);
}

TEST(AttentionWindow, RejectsNegativeOptions) {
  const int64_t T = 4, H = 2, Hkv = 1, D = 2;
  auto in = make_inputs(T, H, Hkv, D, 1);
  std::vector<float> out(in.q.size()), scratch(attention_scratch_floats(T, H, Hkv, D));
  EXPECT_THROW(attention_forward(out.data(), scratch.data(), scratch.size(), in.q.data(), in.k.data(), in.v.data(),
                                 T, H, Hkv, D, 0.5f, Precision::F32, -1),
               std::exception);
  EXPECT_THROW(attention_ref(out.data(), in.q.data(), in.k.data(), in.v.data(), T, H, Hkv, D, 0.5f, Precision::F32,
                             0, -1.0f),
               std::exception);
}

}  // namespace
}  // namespace ar
