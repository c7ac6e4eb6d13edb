// Differentiable quantizer: forward equals RTN's dequantized weight; backward against central finite
// differences of a test-local double "straight-through surrogate", and the masks (clamp, floor,
// side choice) checked one by one on hand-made groups.
#include "quant/fake_quant_grad.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <tuple>
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

// The STE surrogate of one layer in double. Rounding r(x) is replaced by x + (round(x0) - x0) and
// the fp16 cast of the scale by s + (fp16(s0) - s0), the offsets frozen at the base point: the
// surrogate equals the real quantizer there and its exact derivative is what the straight-through
// rules define. Clamp masks, the floor and the side choice are frozen at the base point too (they
// are piecewise constant; torch's clamp passes the gradient on its boundaries, which a central
// difference of a live clamp would halve). Everything else is differentiated for real.
struct Surrogate {
  QuantScheme s;
  int64_t out, in, G, ng;
  std::vector<float> w;
  // Frozen at the base point.
  std::vector<double> c_round, c_scale, c_zero, stored;
  std::vector<char> inside, floored, hi_side;
  std::vector<double> clamp_val;

  double fp16_floor(double raw) const {  // fp16 rounding then the +-1e-5 floor (test-local)
    const float f = f16_to_f32(f32_to_f16(float(raw)));
    const float fl = f16_to_f32(f32_to_f16(1e-5f));
    if (f < 0) return f > -1e-5f ? -fl : f;
    return f < 1e-5f ? fl : f;
  }

  // Returns w' for (v, mn, mx); when `freeze`, records the frozen quantities first.
  std::vector<double> eval(const std::vector<double>& v, const std::vector<double>& mn,
                           const std::vector<double>& mx, bool freeze) {
    const int bits = s.bits;
    const double qlo = s.sym ? -std::ldexp(1.0, bits - 1) : 0, qhi = s.sym ? std::ldexp(1.0, bits - 1) - 1 : std::ldexp(1.0, bits) - 1;
    if (freeze) {
      c_round.assign(size_t(out * in), 0);
      inside.assign(size_t(out * in), 0);
      clamp_val.assign(size_t(out * in), 0);
      c_scale.assign(size_t(out * ng), 0);
      c_zero.assign(size_t(out * ng), 0);
      stored.assign(size_t(out * ng), 0);
      floored.assign(size_t(out * ng), 0);
      hi_side.assign(size_t(out * ng), 0);
    }
    std::vector<double> wd(size_t(out * in));
    for (int64_t o = 0; o < out; ++o)
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t i0 = g * G, n = std::min(G, in - i0), gi = o * ng + g;
        double wmin = 0, wmax = 0;
        for (int64_t j = 0; j < n; ++j) {
          wmin = std::min(wmin, double(w[size_t(o * in + i0 + j)]));
          wmax = std::max(wmax, double(w[size_t(o * in + i0 + j)]));
        }
        double raw;
        if (s.sym) {
          const double lo = -wmin * mn[size_t(gi)], hi = wmax * mx[size_t(gi)];
          if (freeze) hi_side[size_t(gi)] = hi >= lo;
          raw = (hi_side[size_t(gi)] ? -hi : lo) / std::ldexp(1.0, bits - 1);
        } else {
          raw = (wmax * mx[size_t(gi)] - wmin * mn[size_t(gi)]) / qhi;
        }
        // f32 arithmetic decides the stored scale at the base point, as the quantizer does.
        if (freeze) {
          float rawf;
          if (s.sym) {
            const float lo = -(float(wmin) * float(mn[size_t(gi)])), hi = float(wmax) * float(mx[size_t(gi)]);
            rawf = (hi >= lo ? -hi : lo) / float(1 << (bits - 1));
          } else {
            rawf = (float(wmax) * float(mx[size_t(gi)]) - float(wmin) * float(mn[size_t(gi)])) / float(qhi);
          }
          stored[size_t(gi)] = fp16_floor(rawf);
          floored[size_t(gi)] = std::fabs(f16_to_f32(f32_to_f16(rawf))) < 1e-5f;
          c_scale[size_t(gi)] = stored[size_t(gi)] - raw;
        }
        // A floored scale is a constant (the stored value); otherwise raw plus the frozen fp16 offset.
        const double scale = floored[size_t(gi)] ? stored[size_t(gi)] : raw + c_scale[size_t(gi)];
        double zp = 0;
        if (!s.sym) {
          const double zraw = -wmin * mn[size_t(gi)] / scale;
          if (freeze) c_zero[size_t(gi)] = std::nearbyint(float(-(float(wmin) * float(mn[size_t(gi)])) / float(scale))) - zraw;
          zp = zraw + c_zero[size_t(gi)];
        }
        for (int64_t j = 0; j < n; ++j) {
          const size_t k = size_t(o * in + i0 + j);
          const double x = double(w[k]) / scale + v[k];
          if (freeze) {
            const float xf = float(w[k]) / float(scale) + float(v[k]);
            c_round[k] = std::nearbyint(xf) - x;
            const double t = std::nearbyint(xf) + std::nearbyint(zp);
            inside[k] = t >= qlo && t <= qhi;
            clamp_val[k] = std::min(std::max(t, qlo), qhi);
          }
          const double t = x + c_round[k] + zp;
          const double q = inside[k] ? t : clamp_val[k];
          wd[k] = scale * (q - zp);
        }
      }
    return wd;
  }
};

struct Case {
  int bits;
  int64_t group;
  bool sym;
  int64_t out, in;
};
void PrintTo(const Case& c, std::ostream* os) {
  *os << "W" << c.bits << "G" << c.group << (c.sym ? " sym " : " asym ") << c.out << "x" << c.in;
}

class FakeQuantGradFd : public ::testing::TestWithParam<Case> {};

TEST_P(FakeQuantGradFd, MatchesStraightThroughSurrogate) {
  const Case c = GetParam();
  const QuantScheme qs = scheme(c.bits, c.group, c.sym);
  const int64_t ng = num_groups(qs, c.in), n = c.out * c.in;
  std::mt19937 rng(1234 + c.bits * 7 + int(c.in));
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::uniform_real_distribution<float> uv(-0.45f, 0.45f), us(0.72f, 0.98f);
  std::vector<float> w(static_cast<size_t>(n)), v(static_cast<size_t>(n)), mn(static_cast<size_t>(c.out * ng)), mx(static_cast<size_t>(c.out * ng)), gout(static_cast<size_t>(n));
  for (auto& x : w) x = nd(rng);
  for (auto& x : v) x = uv(rng);
  for (auto& x : mn) x = us(rng);
  for (auto& x : mx) x = us(rng);
  for (auto& x : gout) x = nd(rng) * 10.f;

  // Forward: the same weight RTN would emit.
  std::vector<float> wdq(static_cast<size_t>(n)), ref(static_cast<size_t>(n));
  fake_quant_forward(wdq.data(), w.data(), c.out, c.in, qs, v.data(), mn.data(), mx.data());
  quantize_rtn(w.data(), c.out, c.in, qs, v.data(), mn.data(), mx.data()).dequantize(ref.data());
  ASSERT_EQ(wdq, ref);

  std::vector<float> dv(size_t(n), 0.f), dmn(mn.size(), 0.f), dmx(mx.size(), 0.f);
  fake_quant_backward(dv.data(), dmn.data(), dmx.data(), gout.data(), w.data(), c.out, c.in, qs, v.data(),
                      mn.data(), mx.data());

  Surrogate sg{qs, c.out, c.in, effective_group_size(qs, c.in), ng, w, {}, {}, {}, {}, {}, {}, {}, {}};
  std::vector<double> vd(v.begin(), v.end()), mnd(mn.begin(), mn.end()), mxd(mx.begin(), mx.end());
  const std::vector<double> base = sg.eval(vd, mnd, mxd, /*freeze=*/true);
  for (size_t k = 0; k < base.size(); ++k) ASSERT_NEAR(base[k], wdq[k], 1e-6 * std::fabs(wdq[k]) + 1e-9) << k;
  auto loss = [&](const std::vector<double>& a, const std::vector<double>& b, const std::vector<double>& d) {
    const std::vector<double> y = sg.eval(a, b, d, false);
    double l = 0;
    for (size_t k = 0; k < y.size(); ++k) l += double(gout[k]) * y[k];
    return l;
  };
  // The surrogate is smooth (rational in the parameters), so a central difference in double with
  // h = 1e-4 is accurate to ~1e-8 relative; the tolerance covers our f32 sums over a group.
  const double h = 1e-4, rtol = 2e-3;
  auto check = [&](std::vector<double>& p, const std::vector<float>& g, const char* what) {
    double err2 = 0, ref2 = 0;
    for (size_t k = 0; k < p.size(); ++k) {
      const double p0 = p[k];
      p[k] = p0 + h;
      const double lp = loss(vd, mnd, mxd);
      p[k] = p0 - h;
      const double lm = loss(vd, mnd, mxd);
      p[k] = p0;
      const double fd = (lp - lm) / (2 * h);
      err2 += (fd - g[k]) * (fd - g[k]);
      ref2 += fd * fd;
      EXPECT_NEAR(g[k], fd, rtol * std::fabs(fd) + 1e-5) << what << "[" << k << "]";
    }
    EXPECT_GT(ref2, 0.0) << what << ": all-zero gradient";
    EXPECT_LT(std::sqrt(err2 / ref2), rtol) << what;
  };
  check(vd, dv, "v");
  check(mnd, dmn, "min_scale");
  check(mxd, dmx, "max_scale");
}

INSTANTIATE_TEST_SUITE_P(Schemes, FakeQuantGradFd,
                         ::testing::Values(Case{4, 16, true, 3, 40}, Case{4, 16, false, 3, 40},
                                           Case{2, 8, true, 4, 24}, Case{2, 8, false, 4, 21},
                                           Case{3, -1, true, 2, 33}, Case{3, -1, false, 2, 33},
                                           Case{8, 32, true, 2, 64}, Case{8, 32, false, 2, 64}));

TEST(FakeQuantGrad, ClampBlocksGradientOutsideRange) {
  // 4-bit sym, one group: s = -0.1 (0.8 on code -8). v = +3 pushes 0.4 (q = -4) to -1: inside;
  // v = -5 pushes 0.4 to -9: clamped, so no gradient reaches v there.
  const QuantScheme qs = scheme(4, 4, true);
  const std::vector<float> w = {0.8f, -0.2f, 0.4f, 0.4f}, g = {1.f, 1.f, 1.f, 1.f};
  const std::vector<float> v = {0.f, 0.f, 3.f, -5.f};
  std::vector<float> dv(4, 0.f);
  fake_quant_backward(dv.data(), nullptr, nullptr, g.data(), w.data(), 1, 4, qs, v.data(), nullptr, nullptr);
  const float s = f16_to_f32(f32_to_f16(-0.1f));
  EXPECT_EQ(dv[0], s);  // round(-8.0) = -8 = the lower clamp bound: inclusive, passes
  EXPECT_EQ(dv[1], s);
  EXPECT_EQ(dv[2], s);
  EXPECT_EQ(dv[3], 0.f);
}

// ClampGrad::Strict (torch 2.15's clamp, AutoRound as run today): the bound itself passes nothing,
// so a weight on an end code gets no gradient for v; in asym the zero point takes it instead.
TEST(FakeQuantGrad, StrictClampBlocksGradientAtTheBound) {
  const QuantScheme qs = scheme(4, 4, true);
  const std::vector<float> w = {0.8f, -0.2f, 0.4f, 0.4f}, g = {1.f, 1.f, 1.f, 1.f};
  const std::vector<float> v = {0.f, 0.f, 3.f, -5.f};
  std::vector<float> dv(4, 0.f), in_dv(4, 0.f);
  fake_quant_backward(dv.data(), nullptr, nullptr, g.data(), w.data(), 1, 4, qs, v.data(), nullptr, nullptr,
                      ClampGrad::Strict);
  fake_quant_backward(in_dv.data(), nullptr, nullptr, g.data(), w.data(), 1, 4, qs, v.data(), nullptr, nullptr,
                      ClampGrad::Inclusive);
  const float s = f16_to_f32(f32_to_f16(-0.1f));
  EXPECT_EQ(dv[0], 0.f);  // round(-8.0) = -8: on the lower bound
  EXPECT_EQ(dv[1], s);
  EXPECT_EQ(dv[2], s);
  EXPECT_EQ(dv[3], 0.f);
  EXPECT_EQ(in_dv[0], s);
  // Asym, 2 bits: w = {0, 0.3}: s = 0.1, zp = 0, codes {0, 3}: both on a bound.
  const QuantScheme qa = scheme(2, 2, false);
  const std::vector<float> wa = {0.f, 0.3f}, ga = {1.f, 1.f};
  std::vector<float> dva(2, 0.f), dvi(2, 0.f);
  fake_quant_backward(dva.data(), nullptr, nullptr, ga.data(), wa.data(), 1, 2, qa, nullptr, nullptr, nullptr,
                      ClampGrad::Strict);
  fake_quant_backward(dvi.data(), nullptr, nullptr, ga.data(), wa.data(), 1, 2, qa, nullptr, nullptr, nullptr,
                      ClampGrad::Inclusive);
  EXPECT_EQ(dva[0], 0.f);
  EXPECT_EQ(dva[1], 0.f);
  EXPECT_GT(dvi[0], 0.f);
  EXPECT_GT(dvi[1], 0.f);
}

TEST(FakeQuantGrad, FlooredScaleBlocksScaleGradient) {
  // |w| tiny: s = -4e-7 / 8 (positive side larger) is replaced by the floor -fp16(1e-5); v still
  // gets s * g.
  const QuantScheme qs = scheme(4, 4, true);
  const std::vector<float> w = {4e-7f, -1e-7f, 2e-7f, 0.f}, g = {1.f, -2.f, 3.f, 4.f};
  std::vector<float> dv(4, 0.f), dmn(1, 0.f), dmx(1, 0.f);
  fake_quant_backward(dv.data(), dmn.data(), dmx.data(), g.data(), w.data(), 1, 4, qs, nullptr, nullptr, nullptr);
  EXPECT_EQ(dmn[0], 0.f);
  EXPECT_EQ(dmx[0], 0.f);
  EXPECT_EQ(dv[1], 2.f * f16_to_f32(f32_to_f16(1e-5f)));
}

TEST(FakeQuantGrad, SymSideChoiceRoutesScaleGradient) {
  // Positive side larger: only max_scale gets a gradient; negative side larger: only min_scale.
  const QuantScheme qs = scheme(4, 4, true);
  const std::vector<float> g = {1.f, -0.5f, 0.25f, 2.f};
  const std::vector<float> wp = {0.8f, -0.2f, 0.33f, 0.05f}, wn = {-0.8f, 0.2f, 0.33f, 0.05f};
  std::vector<float> dmn(1, 0.f), dmx(1, 0.f);
  fake_quant_backward(nullptr, dmn.data(), dmx.data(), g.data(), wp.data(), 1, 4, qs, nullptr, nullptr, nullptr);
  EXPECT_EQ(dmn[0], 0.f);
  EXPECT_NE(dmx[0], 0.f);
  dmn[0] = dmx[0] = 0.f;
  fake_quant_backward(nullptr, dmn.data(), dmx.data(), g.data(), wn.data(), 1, 4, qs, nullptr, nullptr, nullptr);
  EXPECT_NE(dmn[0], 0.f);
  EXPECT_EQ(dmx[0], 0.f);
}

TEST(FakeQuantGrad, Accumulates) {
  const QuantScheme qs = scheme(4, 4, false);
  const std::vector<float> w = {0.8f, -0.2f, 0.4f, 0.1f}, g = {1.f, -1.f, 0.5f, 2.f};
  std::vector<float> dv1(4, 0.f), dv2(4, 1.f), m1(1, 0.f), m2(1, 1.f);
  fake_quant_backward(dv1.data(), m1.data(), nullptr, g.data(), w.data(), 1, 4, qs, nullptr, nullptr, nullptr);
  fake_quant_backward(dv2.data(), m2.data(), nullptr, g.data(), w.data(), 1, 4, qs, nullptr, nullptr, nullptr);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(dv2[i], dv1[i] + 1.f);
  EXPECT_FLOAT_EQ(m2[0], m1[0] + 1.f);
}

// A layer of bf16-valued weights (wb, and w = their f32 values), v, a gradient g and the scales
// min/max, all random; and the shapes the bf16 and fused tests run: sym/asym, a padded last group,
// a whole-row group, and a layer big enough to run on several threads.
struct RandomLayer {
  std::vector<uint16_t> wb;
  std::vector<float> w, v, g, mn, mx;
  RandomLayer(const QuantScheme& qs, int64_t out, int64_t in, std::mt19937& rng) {
    std::normal_distribution<float> nd(0.f, 0.05f);
    std::uniform_real_distribution<float> ud(-0.5f, 0.5f), sd(0.6f, 1.f);
    const size_t n = size_t(out * in), ng = size_t(out * num_groups(qs, in));
    for (size_t i = 0; i < n; ++i) {
      wb.push_back(f32_to_bf16(nd(rng)));
      w.push_back(bf16_to_f32(wb.back()));
      v.push_back(ud(rng));
      g.push_back(nd(rng));
    }
    for (size_t i = 0; i < ng; ++i) mn.push_back(sd(rng));
    for (size_t i = 0; i < ng; ++i) mx.push_back(sd(rng));
  }
};
const std::tuple<QuantScheme, int64_t, int64_t> kLayers[] = {
    {scheme(4, 32, true), 300, 270}, {scheme(3, 64, false), 7, 100}, {scheme(2, -1, false), 5, 33}};

// The bf16 overloads (a tuner keeping a bf16 checkpoint's weights at 2 bytes each) give the same
// bits as the f32 ones on the widened values, for sym/asym, a padded last group and a layer big
// enough to run on several threads.
TEST(FakeQuantGrad, Bf16WeightsGiveTheSameBitsAsTheirF32Values) {
  std::mt19937 rng(3);
  for (const auto& [qs, out, in] : kLayers) {
    const RandomLayer L(qs, out, in, rng);
    const auto& wb = L.wb;
    const auto &w = L.w, &v = L.v, &g = L.g, &mn = L.mn, &mx = L.mx;
    std::vector<float> a(wb.size()), b(wb.size());
    fake_quant_forward(a.data(), w.data(), out, in, qs, v.data(), mn.data(), mx.data());
    fake_quant_forward(b.data(), wb.data(), out, in, qs, v.data(), mn.data(), mx.data());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
    std::vector<float> dva(wb.size(), 0.f), dvb(dva), dmna(mn.size(), 0.f), dmnb(dmna), dmxa(dmna), dmxb(dmna);
    fake_quant_backward(dva.data(), dmna.data(), dmxa.data(), g.data(), w.data(), out, in, qs, v.data(), mn.data(),
                        mx.data());
    fake_quant_backward(dvb.data(), dmnb.data(), dmxb.data(), g.data(), wb.data(), out, in, qs, v.data(), mn.data(),
                        mx.data());
    EXPECT_EQ(0, std::memcmp(dva.data(), dvb.data(), dva.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(dmna.data(), dmnb.data(), dmna.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(dmxa.data(), dmxb.data(), dmxa.size() * sizeof(float)));
    // And the forward is still RTN's dequantized weight.
    std::vector<float> rtn(wb.size());
    quantize_rtn(w.data(), out, in, qs, v.data(), mn.data(), mx.data()).dequantize(rtn.data());
    EXPECT_EQ(0, std::memcmp(rtn.data(), b.data(), rtn.size() * sizeof(float)));
  }
}

// The tuner's fused pass (dL/dv never stored, v stepped in place) gives the bits of the backward
// into a zeroed dv followed by the signed step v -= lr*sign(dv), and the same scale gradients; for
// the f32 and the bf16 weights, sym and asym, both clamp conventions, a layer that runs threaded.
TEST(FakeQuantGrad, FusedStepEqualsBackwardThenSignedStep) {
  std::mt19937 rng(11);
  const float lr = 0.005f;
  for (const auto& [qs, out, in] : kLayers)
    for (ClampGrad cg : {ClampGrad::Inclusive, ClampGrad::Strict}) {
      const RandomLayer L(qs, out, in, rng);
      const auto& wb = L.wb;
    const auto &w = L.w, &v = L.v, &g = L.g, &mn = L.mn, &mx = L.mx;
      std::vector<float> dv(wb.size(), 0.f), dmn(mn.size(), 0.f), dmx(mn.size(), 0.f);
      fake_quant_backward(dv.data(), dmn.data(), dmx.data(), g.data(), w.data(), out, in, qs, v.data(), mn.data(),
                          mx.data(), cg);
      std::vector<float> want(v);
      int moved = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        want[i] -= (dv[i] > 0 ? lr : 0.f) - (dv[i] < 0 ? lr : 0.f);
        moved += dv[i] != 0;
      }
      EXPECT_GT(moved, 0);
      for (bool bf16 : {false, true}) {
        std::vector<float> got(v), gmn(mn.size(), 0.f), gmx(mn.size(), 0.f);
        if (bf16)
          fake_quant_backward_step(got.data(), lr, gmn.data(), gmx.data(), g.data(), wb.data(), out, in, qs,
                                   mn.data(), mx.data(), cg);
        else
          fake_quant_backward_step(got.data(), lr, gmn.data(), gmx.data(), g.data(), w.data(), out, in, qs, mn.data(),
                                   mx.data(), cg);
        EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float))) << "bf16 " << bf16;
        EXPECT_EQ(0, std::memcmp(dmn.data(), gmn.data(), dmn.size() * sizeof(float))) << "bf16 " << bf16;
        EXPECT_EQ(0, std::memcmp(dmx.data(), gmx.data(), dmx.size() * sizeof(float))) << "bf16 " << bf16;
      }
    }
}

// With a NextStepWprime, the fused pass also writes the codes of the parameters before the step
// (quantize_rtn_into's bits), steps each group's min/max_scale (clamped to [0, 1]) and writes the
// next step's W': the bits of the fused step, then signed_step_value and clamp01_value on the
// scales, then fake_quant_forward_bf16 of the new parameters. With and without min/max tuning, f32
// and bf16 weights, the codes alone; mm_lr big enough that some scales clamp at 1.
TEST(FakeQuantGrad, FusedStepWritesTheNextStepsWprime) {
  std::mt19937 rng(12);
  const float lr = 0.005f, mm_lr = 0.3f;
  for (const auto& [qs, out, in] : kLayers)
    for (bool minmax : {true, false})
      for (bool bf16 : {false, true}) {
        const RandomLayer L(qs, out, in, rng);
        const size_t ng = L.mn.size();
        std::vector<float> v1(L.v), dmn1(ng, 0.f), dmx1(ng, 0.f), mn1(L.mn), mx1(L.mx);
        float* dmn = minmax ? dmn1.data() : nullptr;
        float* dmx = minmax ? dmx1.data() : nullptr;
        if (bf16)
          fake_quant_backward_step(v1.data(), lr, dmn, dmx, L.g.data(), L.wb.data(), out, in, qs, L.mn.data(),
                                   L.mx.data());
        else
          fake_quant_backward_step(v1.data(), lr, dmn, dmx, L.g.data(), L.w.data(), out, in, qs, L.mn.data(),
                                   L.mx.data());
        int clamped = 0;
        for (size_t i = 0; minmax && i < ng; ++i) {
          mn1[i] = clamp01_value(signed_step_value(mn1[i], dmn1[i], mm_lr));
          mx1[i] = clamp01_value(signed_step_value(mx1[i], dmx1[i], mm_lr));
          clamped += mn1[i] == 1.f || mx1[i] == 1.f;
        }
        if (minmax) {
          EXPECT_GT(clamped, 0);
        }
        std::vector<uint16_t> want(L.w.size());
        fake_quant_forward_bf16(want.data(), L.w.data(), out, in, qs, v1.data(), mn1.data(), mx1.data());
        QuantizedWeight want_q;
        quantize_rtn_into(want_q, L.w.data(), out, in, qs, L.v.data(), L.mn.data(), L.mx.data());

        std::vector<float> v2(L.v), dmn2(ng, 0.f), dmx2(ng, 0.f), mn2(L.mn), mx2(L.mx);
        std::vector<uint16_t> got(L.w.size(), 0xffff);
        QuantizedWeight got_q = QuantizedWeight::allocate(qs, out, in);
        std::fill(got_q.codes.begin(), got_q.codes.end(), uint8_t(0xee));
        std::fill(got_q.scales.begin(), got_q.scales.end(), uint16_t(0xeeee));
        std::fill(got_q.zeros.begin(), got_q.zeros.end(), uint8_t(0xee));
        const NextStepWprime next{mm_lr, minmax ? mn2.data() : nullptr, minmax ? mx2.data() : nullptr, got.data(),
                                  &got_q};
        float* gmn = minmax ? dmn2.data() : nullptr;
        float* gmx = minmax ? dmx2.data() : nullptr;
        if (bf16)
          fake_quant_backward_step(v2.data(), lr, gmn, gmx, L.g.data(), L.wb.data(), out, in, qs, mn2.data(), mx2.data(),
                                   ClampGrad::Inclusive, &next);
        else
          fake_quant_backward_step(v2.data(), lr, gmn, gmx, L.g.data(), L.w.data(), out, in, qs, mn2.data(), mx2.data(),
                                   ClampGrad::Inclusive, &next);
        const std::string tag = "minmax " + std::to_string(minmax) + " bf16 " + std::to_string(bf16);
        EXPECT_EQ(0, std::memcmp(v1.data(), v2.data(), v1.size() * sizeof(float))) << tag;
        EXPECT_EQ(0, std::memcmp(dmn1.data(), dmn2.data(), ng * sizeof(float))) << tag;
        EXPECT_EQ(0, std::memcmp(mn1.data(), mn2.data(), ng * sizeof(float))) << tag;
        EXPECT_EQ(0, std::memcmp(mx1.data(), mx2.data(), ng * sizeof(float))) << tag;
        EXPECT_EQ(want, got) << tag;
        EXPECT_EQ(want_q.codes, got_q.codes) << tag;
        EXPECT_EQ(want_q.scales, got_q.scales) << tag;
        EXPECT_EQ(want_q.zeros, got_q.zeros) << tag;
        // The codes alone: v stepped as before, the scales and W' untouched.
        std::vector<float> v3(L.v), mn3(L.mn);
        QuantizedWeight q3 = QuantizedWeight::allocate(qs, out, in);
        const NextStepWprime codes_only{mm_lr, nullptr, nullptr, nullptr, &q3};
        fake_quant_backward_step(v3.data(), lr, nullptr, nullptr, L.g.data(), L.w.data(), out, in, qs, mn3.data(),
                                 L.mx.data(), ClampGrad::Inclusive, &codes_only);
        EXPECT_EQ(want_q.codes, q3.codes) << tag;
        EXPECT_EQ(mn3, L.mn) << tag;
        if (!minmax) {
          EXPECT_EQ(0, std::memcmp(v1.data(), v3.data(), v1.size() * sizeof(float))) << tag;
        }
      }
}

// The pass takes a new best's codes from the gradient's own rounding when the stored zero is the
// one that rounding used. A negative min_scale (which tuning never gives: it clamps to [0, 1])
// makes the stored zero the clamped one, and those groups are quantized apart: the codes are
// quantize_rtn_into's either way.
TEST(FakeQuantGrad, FusedStepCodesForAZeroOutsideTheCodes) {
  std::mt19937 rng(13);
  const QuantScheme qs = scheme(4, 32, false);
  RandomLayer L(qs, 6, 96, rng);
  for (size_t i = 0; i < L.mn.size(); i += 2) L.mn[i] = -0.5f;
  QuantizedWeight want;
  quantize_rtn_into(want, L.w.data(), 6, 96, qs, L.v.data(), L.mn.data(), L.mx.data());
  int clamped_zeros = 0;
  for (uint8_t z : want.zeros) clamped_zeros += z == 0;
  EXPECT_GT(clamped_zeros, 0);
  QuantizedWeight got = QuantizedWeight::allocate(qs, 6, 96);
  std::vector<float> v(L.v);
  const NextStepWprime codes_only{0.f, nullptr, nullptr, nullptr, &got};
  fake_quant_backward_step(v.data(), 0.01f, nullptr, nullptr, L.g.data(), L.w.data(), 6, 96, qs, L.mn.data(),
                           L.mx.data(), ClampGrad::Inclusive, &codes_only);
  EXPECT_EQ(want.codes, got.codes);
  EXPECT_EQ(want.scales, got.scales);
  EXPECT_EQ(want.zeros, got.zeros);
}

TEST(FakeQuantGrad, FusedStepRefusesFloatingPointSchemes) {
  QuantScheme fp;
  fp.data_type = DataType::MXFP4;
  fp.bits = 4;
  fp.group_size = 32;
  std::vector<float> w(32, 0.1f), v(32, 0.f), g(32, 1.f), mx(1, 1.f);
  EXPECT_THROW(fake_quant_backward_step(v.data(), 0.01f, nullptr, mx.data(), g.data(), w.data(), 1, 32, fp, nullptr,
                                        mx.data()),
               std::exception);
}

}  // namespace
}  // namespace ar
