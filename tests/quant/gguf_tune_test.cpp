// The GGUF tuning quantizer (quant/gguf_tune.h): its RTN point against gguf_quantize_tensor (bytes,
// random and fixture weights, with and without importance), the bytes/w' agreement, how v moves
// codes, the straight-through backward (dv exactly d_eff or 0; min/max_scale gradients against
// central differences of an independently written STE surrogate), and a few SignRound-like signed
// steps on a least-squares toy problem.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/ggml_type.h"
#include "quant/gguf_blocks.h"
#include "quant/gguf_tune.h"
#include "support/fixtures.h"

namespace ar {
namespace {

// What the test knows about each format, written from the block layouts (gguf_blocks.h), not from
// the code under test: levels l = code - zero in [lo, hi]; affine formats dequantize d*l - m.
enum class Family { kAffine, kSymSide, kSymMagnitude, kSymSigned };
struct Fmt {
  GgmlType t;
  Family family;
  int G, zero, lo, hi;  // lo/hi in code units
  bool ref_f32;         // the reference rounds with the f32 scale (simple formats, no importance)
  int half_up;          // 1: floor(y + 0.5) (reference simple formats), 2: half away (Q8_0), 0: half even
};
const Fmt kFmts[] = {
    {GgmlType::Q4_0, Family::kSymSide, 32, 8, 0, 15, true, 1},
    {GgmlType::Q4_1, Family::kAffine, 32, 0, 0, 15, true, 1},
    {GgmlType::Q5_0, Family::kSymSide, 32, 16, 0, 31, true, 1},
    {GgmlType::Q5_1, Family::kAffine, 32, 0, 0, 31, true, 1},
    {GgmlType::Q8_0, Family::kSymMagnitude, 32, 0, -127, 127, true, 2},
    {GgmlType::Q2_K, Family::kAffine, 16, 0, 0, 3, false, 0},
    {GgmlType::Q3_K, Family::kSymSigned, 16, 4, 0, 7, false, 0},
    {GgmlType::Q4_K, Family::kAffine, 32, 0, 0, 15, false, 0},
    {GgmlType::Q5_K, Family::kAffine, 32, 0, 0, 31, false, 0},
    {GgmlType::Q6_K, Family::kSymSigned, 16, 32, 0, 63, false, 0},
};
std::string name_of(GgmlType t) { return std::string(ggml_info(t).name); }

// Weights shaped like a trained layer's: Gaussian with a few larger outliers and per-row scales.
std::vector<float> make_weights(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n01(0.f, 1.f);
  std::uniform_real_distribution<float> u01(0.f, 1.f);
  std::vector<float> w(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float row_scale = 0.02f * (0.5f + u01(rng));
    for (int64_t c = 0; c < cols; ++c) {
      float x = n01(rng) * row_scale;
      if (u01(rng) < 0.01f) x *= 6.f;
      w[size_t(r * cols + c)] = x;
    }
  }
  return w;
}

std::vector<float> uniform(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

std::vector<uint8_t> rtn_bytes(GgmlType t, const std::vector<float>& w, int64_t rows, int64_t cols,
                               const float* imp = nullptr) {
  std::vector<uint8_t> b(size_t(rows) * ggml_row_bytes(t, cols));
  gguf_quantize_tensor(t, w.data(), rows, cols, b.data(), imp);
  return b;
}

struct Fwd {
  std::vector<float> w_dq;
  std::vector<uint8_t> bytes;
};
Fwd forward(const GgufTuneInit& init, const std::vector<float>& w, const float* v, const float* a, const float* b) {
  Fwd f;
  f.w_dq.resize(w.size());
  f.bytes.resize(size_t(init.rows) * ggml_row_bytes(init.type, init.cols));
  gguf_fake_quant_forward(f.w_dq.data(), f.bytes.data(), w.data(), init.rows, init.cols, init, v, a, b);
  return f;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// ---- the RTN point ---------------------------------------------------------------------------

TEST(GgufTune, RtnPointReproducesQuantizeTensorBytes) {
  const int64_t rows = 12, cols = 512;
  const std::vector<float> w = make_weights(rows, cols, 1);
  for (const Fmt& f : kFmts) {
    const GgufTuneInit init = gguf_tune_init(f.t, w.data(), rows, cols);
    ASSERT_EQ(init.groups, cols / f.G) << name_of(f.t);
    const Fwd out = forward(init, w, nullptr, nullptr, nullptr);
    EXPECT_EQ(out.bytes, rtn_bytes(f.t, w, rows, cols)) << name_of(f.t);
    // Explicit v = 0 and scales = 1 are the same point.
    const std::vector<float> zeros(w.size(), 0.f), ones(size_t(rows * init.groups), 1.f);
    EXPECT_EQ(forward(init, w, zeros.data(), ones.data(), ones.data()).bytes, out.bytes) << name_of(f.t);
    std::vector<float> deq(w.size());
    gguf_dequantize_tensor(f.t, out.bytes.data(), rows, cols, deq.data());
    EXPECT_TRUE(same_bits(deq, out.w_dq)) << name_of(f.t);
  }
}

// Edge blocks: all zero, constant, one non-zero weight, all positive; the RTN keeps search levels
// where a sub-block's stored scale is 0, which the init records.
TEST(GgufTune, RtnPointOnDegenerateBlocks) {
  const int64_t cols = 256;
  std::vector<float> w = make_weights(6, cols, 2);
  std::fill(w.begin(), w.begin() + cols, 0.f);                                      // row 0: zeros
  std::fill(w.begin() + cols, w.begin() + 2 * cols, 0.25f);                         // row 1: constant
  for (int64_t c = 0; c < cols; ++c) w[size_t(2 * cols + c)] = c == 7 ? 1.f : 0.f;  // row 2: one spike
  for (int64_t c = 0; c < cols; ++c) w[size_t(3 * cols + c)] = std::fabs(w[size_t(3 * cols + c)]) + 0.01f;
  for (int64_t c = 0; c < 64; ++c) w[size_t(4 * cols + c)] *= 1e-4f;  // row 4: tiny sub-blocks
  for (const Fmt& f : kFmts) {
    const GgufTuneInit init = gguf_tune_init(f.t, w.data(), 6, cols);
    EXPECT_EQ(forward(init, w, nullptr, nullptr, nullptr).bytes, rtn_bytes(f.t, w, 6, cols)) << name_of(f.t);
  }
}

std::vector<float> importance(int64_t cols, uint32_t seed) {
  std::vector<float> imp = uniform(size_t(cols), 0.05f, 1.f, seed);
  for (float& x : imp) x = x * x * 4.f;  // skewed, as squared activations are
  return imp;
}

// With importance the k-quants (and Q6_K, Q8_0) give the RTN's bytes; the simple formats re-round
// with the stored scale, so their importance-weighted error is at most the RTN's.
TEST(GgufTune, RtnPointWithImportance) {
  const int64_t rows = 10, cols = 512;
  const std::vector<float> w = make_weights(rows, cols, 3), imp = importance(cols, 4);
  for (const Fmt& f : kFmts) {
    const GgufTuneInit init = gguf_tune_init(f.t, w.data(), rows, cols, imp.data());
    const Fwd out = forward(init, w, nullptr, nullptr, nullptr);
    const std::vector<uint8_t> ref = rtn_bytes(f.t, w, rows, cols, imp.data());
    if (!f.ref_f32 || f.t == GgmlType::Q8_0) {
      EXPECT_EQ(out.bytes, ref) << name_of(f.t);
      continue;
    }
    std::vector<float> deq(w.size());
    gguf_dequantize_tensor(f.t, ref.data(), rows, cols, deq.data());
    double e_ref = 0, e_ours = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      const double wi = imp[i % size_t(cols)];
      e_ref += wi * double(deq[i] - w[i]) * double(deq[i] - w[i]);
      e_ours += wi * double(out.w_dq[i] - w[i]) * double(out.w_dq[i] - w[i]);
    }
    EXPECT_LE(e_ours, e_ref * (1 + 1e-6)) << name_of(f.t);
    std::printf("  %s importance error ours/RTN = %.4f\n", name_of(f.t).c_str(), e_ours / e_ref);
  }
}

// Rows of the fixture model (the F32 GGUF that llama.cpp's reference files were made from).
TEST(GgufTune, RtnPointOnFixtureTensors) {
  AR_REQUIRE_FIXTURE(index_path, "gguf/index.json");
  std::ifstream in(index_path);
  const nlohmann::json index = nlohmann::json::parse(in);
  const auto& tensors = index.at("model-F32").at("tensors");
  for (const char* name : {"blk.0.attn_q.weight", "blk.0.ffn_down.weight", "token_embd.weight"}) {
    const auto& t = tensors.at(name);
    const int64_t cols = t.at("shape_gguf").at(0).get<int64_t>();
    const int64_t rows = std::min<int64_t>(64, t.at("shape_gguf").at(1).get<int64_t>());
    std::vector<float> w(size_t(rows * cols));
    std::ifstream f(index_path.parent_path() / "model-F32.gguf", std::ios::binary);
    f.seekg(std::streamoff(t.at("offset_bytes").get<uint64_t>()));
    f.read(reinterpret_cast<char*>(w.data()), std::streamsize(w.size() * 4));
    ASSERT_TRUE(f.good()) << name;
    for (const Fmt& fm : kFmts) {
      if (cols % ggml_info(fm.t).block_elems) continue;
      const GgufTuneInit init = gguf_tune_init(fm.t, w.data(), rows, cols);
      EXPECT_EQ(forward(init, w, nullptr, nullptr, nullptr).bytes, rtn_bytes(fm.t, w, rows, cols))
          << name << " " << name_of(fm.t);
    }
  }
}

// ---- worked by hand ----------------------------------------------------------------------------

float f16_round(float x) { return f16_to_f32(f32_to_f16(x)); }

// Q4_1 block {-1, 2, 0.5 x 30}: RTN s = 3/15, m = 1; a = 0.5, b = 0.8 clip the range [-1, 2] to
// [-0.5, 1.6]: s' = 2.1/15 = 0.14, m' = 0.5. Codes: 0.5 -> round(1/0.14) = 7; 2 and -1 clamp.
TEST(GgufTune, HandWorkedAffineClip) {
  std::vector<float> w(32, 0.5f);
  w[0] = -1.f;
  w[1] = 2.f;
  const GgufTuneInit init = gguf_tune_init(GgmlType::Q4_1, w.data(), 1, 32);
  EXPECT_FLOAT_EQ(init.scale[0], 0.2f);
  EXPECT_FLOAT_EQ(init.offset[0], 1.f);
  const float a = 0.5f, b = 0.8f;
  float d, m;
  gguf_tune_group_scales(&d, &m, init, &a, &b);
  EXPECT_EQ(d, f16_round(0.14f));
  EXPECT_EQ(m, 0.5f);
  const Fwd out = forward(init, w, nullptr, &a, &b);
  EXPECT_EQ(out.w_dq[0], -0.5f);            // clamped at code 0
  EXPECT_EQ(out.w_dq[1], 15.f * d - 0.5f);  // clamped at code 15
  EXPECT_EQ(out.w_dq[2], 7.f * d - 0.5f);
  std::vector<float> dw(32, 1.f), dv(32, 0.f);
  float da = 0, db = 0;
  gguf_fake_quant_backward(dv.data(), &da, &db, dw.data(), w.data(), 1, 32, init, nullptr, &a, &b);
  EXPECT_EQ(dv[0], 0.f);
  EXPECT_EQ(dv[1], 0.f);
  EXPECT_EQ(dv[2], d);
  // Clamped weights: w' = d*q - m' moves with s' by q and with m' by -1; ds'/db = hi/15 = 2/15.
  // In range: dw'/ds' = level - (x + m)/s' (the rounding residual), dw'/dm' = d_eff/s' - 1 ~ 0.
  const double s = 0.14, resid = 7 - 1.0 / s;
  EXPECT_NEAR(db, (15 + 30 * resid) * 2.0 / 15, 0.02);
}

// Q4_0 block {1, -0.9, 0.1 x 30}: the RTN maps the max (1) to level -8 (s = -1/8, factor b); the
// min's candidate is 0.9/8. With b = 0.5 the max side shrinks below it, so the min side's scale
// 0.1125 is used: -0.9 -> level -8, 1 -> level 7 (clamped).
TEST(GgufTune, HandWorkedSymmetricSideSwitch) {
  std::vector<float> w(32, 0.1f);
  w[0] = 1.f;
  w[1] = -0.9f;
  const GgufTuneInit init = gguf_tune_init(GgmlType::Q4_0, w.data(), 1, 32);
  EXPECT_EQ(init.scale[0], -0.125f);
  EXPECT_FLOAT_EQ(init.offset[0], 0.1125f);
  const float a = 1.f, b = 0.5f;
  float d;
  gguf_tune_group_scales(&d, nullptr, init, &a, &b);
  EXPECT_EQ(d, f16_round(0.1125f));
  const Fwd out = forward(init, w, nullptr, &a, &b);
  EXPECT_EQ(out.w_dq[0], 7.f * d);
  EXPECT_EQ(out.w_dq[1], -8.f * d);
  EXPECT_EQ(out.w_dq[2], 1.f * d);
  std::vector<float> dw(32, 1.f);
  float da = 0, db = 0;
  gguf_fake_quant_backward(nullptr, &da, &db, dw.data(), w.data(), 1, 32, init, nullptr, &a, &b);
  EXPECT_EQ(db, 0.f);  // the max side's factor no longer sets the scale
  EXPECT_NE(da, 0.f);
  // At b = 1 the max side is back: then only db moves.
  const float b1 = 1.f;
  da = db = 0;
  gguf_fake_quant_backward(nullptr, &da, &db, dw.data(), w.data(), 1, 32, init, nullptr, &a, &b1);
  EXPECT_EQ(da, 0.f);
  EXPECT_NE(db, 0.f);
}

// ---- away from the RTN point -----------------------------------------------------------------

struct Point {
  std::vector<float> v, a, b;
};
Point random_point(const GgufTuneInit& init, uint32_t seed, float v_amp, float s_lo) {
  Point p;
  p.v = uniform(size_t(init.rows * init.cols), -v_amp, v_amp, seed);
  p.a = uniform(size_t(init.rows * init.groups), s_lo, 1.f, seed + 1);
  p.b = uniform(size_t(init.rows * init.groups), s_lo, 1.f, seed + 2);
  for (size_t i = 0; i < p.a.size(); i += 7) p.a[i] = 1.f;  // some exactly at the start value
  return p;
}

TEST(GgufTune, BytesDecodeToForwardOutput) {
  const int64_t rows = 8, cols = 512;
  const std::vector<float> w = make_weights(rows, cols, 5), imp = importance(cols, 6);
  std::vector<uint16_t> w_bf16(w.size());
  std::vector<float> w_rounded(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    w_bf16[i] = f32_to_bf16(w[i]);
    w_rounded[i] = bf16_to_f32(w_bf16[i]);
  }
  for (const Fmt& f : kFmts)
    for (const float* im : {static_cast<const float*>(nullptr), imp.data()}) {
      const GgufTuneInit init = gguf_tune_init(f.t, w_rounded.data(), rows, cols, im);
      const Point p = random_point(init, 7, 0.5f, 0.5f);
      const Fwd out = forward(init, w_rounded, p.v.data(), p.a.data(), p.b.data());
      std::vector<float> deq(w.size());
      gguf_dequantize_tensor(f.t, out.bytes.data(), rows, cols, deq.data());
      EXPECT_TRUE(same_bits(deq, out.w_dq)) << name_of(f.t);
      // Without a bytes buffer, and from bf16 weights: the same values.
      std::vector<float> w_dq2(w.size()), w_dq3(w.size());
      gguf_fake_quant_forward(w_dq2.data(), nullptr, w_rounded.data(), rows, cols, init, p.v.data(), p.a.data(),
                              p.b.data());
      gguf_fake_quant_forward(w_dq3.data(), nullptr, w_bf16.data(), rows, cols, init, p.v.data(), p.a.data(),
                              p.b.data());
      EXPECT_TRUE(same_bits(w_dq2, out.w_dq)) << name_of(f.t);
      EXPECT_TRUE(same_bits(w_dq3, out.w_dq)) << name_of(f.t);
      // The backward from bf16 weights too.
      const std::vector<float> dw = uniform(w.size(), -1.f, 1.f, 19);
      std::vector<float> dv1(w.size(), 0.f), dv2(w.size(), 0.f), da1(p.a.size(), 0.f), da2(p.a.size(), 0.f),
          db1(p.a.size(), 0.f), db2(p.a.size(), 0.f);
      gguf_fake_quant_backward(dv1.data(), da1.data(), db1.data(), dw.data(), w_rounded.data(), rows, cols, init,
                               p.v.data(), p.a.data(), p.b.data());
      gguf_fake_quant_backward(dv2.data(), da2.data(), db2.data(), dw.data(), w_bf16.data(), rows, cols, init,
                               p.v.data(), p.a.data(), p.b.data());
      EXPECT_TRUE(same_bits(dv1, dv2) && same_bits(da1, da2) && same_bits(db1, db2)) << name_of(f.t);
    }
}

// Levels of w' given the per-group scales; checks that w' = d_eff * level - m_eff holds.
std::vector<int> levels_of(const Fmt& f, const GgufTuneInit& init, const std::vector<float>& w_dq,
                           const std::vector<float>& d, const std::vector<float>& m) {
  std::vector<int> L(w_dq.size(), 0);
  for (size_t i = 0; i < w_dq.size(); ++i) {
    const size_t g = (i / size_t(init.cols)) * size_t(init.groups) + (i % size_t(init.cols)) / size_t(f.G);
    if (d[g] == 0) continue;
    const double l = (double(w_dq[i]) + m[g]) / d[g];
    L[i] = int(std::lround(l));
    EXPECT_NEAR(l, L[i], 1e-3) << name_of(f.t) << " weight " << i;
    EXPECT_GE(L[i], f.lo - f.zero);
    EXPECT_LE(L[i], f.hi - f.zero);
  }
  return L;
}

// v = +1 moves every level not clamped below by exactly one (up to the top); v = +-0.5 moves a
// level iff the weight's rounding residual points that way. The scales do not depend on v.
TEST(GgufTune, RoundingOffsetMovesCodes) {
  const int64_t rows = 8, cols = 512;
  const std::vector<float> w = make_weights(rows, cols, 8);
  for (const Fmt& f : kFmts) {
    const GgufTuneInit init = gguf_tune_init(f.t, w.data(), rows, cols);
    const Point p = random_point(init, 9, 0.f, 0.7f);
    std::vector<float> d(size_t(rows * init.groups)), m(d.size());
    gguf_tune_group_scales(d.data(), m.data(), init, p.a.data(), p.b.data());
    const std::vector<int> L0 = levels_of(f, init, forward(init, w, nullptr, p.a.data(), p.b.data()).w_dq, d, m);
    const int lo = f.lo - f.zero, hi = f.hi - f.zero;
    for (const float shift : {1.f, 0.5f, -0.5f}) {
      const std::vector<float> v(w.size(), shift);
      const std::vector<int> L1 = levels_of(f, init, forward(init, w, v.data(), p.a.data(), p.b.data()).w_dq, d, m);
      int checked = 0, bad = 0;
      for (size_t i = 0; i < w.size(); ++i) {
        const size_t g = (i / size_t(cols)) * size_t(init.groups) + (i % size_t(cols)) / size_t(f.G);
        if (d[g] == 0) continue;
        const double r = (double(w[i]) + m[g]) / d[g] - L0[i];  // rounding residual at v = 0
        int expect;
        if (shift == 1.f) {
          if (L0[i] == lo) continue;  // possibly clamped from below
          expect = std::min(L0[i] + 1, hi);
        } else {
          if (L0[i] == lo || L0[i] == hi || std::fabs(r) < 0.1 || std::fabs(r) > 0.45) continue;
          expect = (shift > 0) == (r > 0) ? L0[i] + (shift > 0 ? 1 : -1) : L0[i];
        }
        ++checked;
        bad += L1[i] != expect;
      }
      EXPECT_EQ(bad, 0) << name_of(f.t) << " shift " << shift;
      EXPECT_GT(checked, int(w.size() / 4)) << name_of(f.t) << " shift " << shift;
    }
  }
}

// dv = dw' * d_eff where the integer stayed in range, 0 where the clamp caught it (v = +-3 pushes
// some weights out), 0 in groups whose dequantized scale is 0.
TEST(GgufTune, DvIsEffectiveScaleOrZero) {
  const int64_t rows = 8, cols = 512;
  const std::vector<float> w = make_weights(rows, cols, 10);
  for (const Fmt& f : kFmts) {
    const GgufTuneInit init = gguf_tune_init(f.t, w.data(), rows, cols);
    Point p = random_point(init, 11, 0.5f, 0.7f);
    for (size_t i = 0; i < p.v.size(); i += 5) p.v[i] = (i / 5) % 2 ? 3.f : -3.f;
    const std::vector<float> dw = uniform(w.size(), -1.f, 1.f, 12);
    std::vector<float> dv(w.size(), 0.f);
    gguf_fake_quant_backward(dv.data(), nullptr, nullptr, dw.data(), w.data(), rows, cols, init, p.v.data(), p.a.data(),
                             p.b.data());
    std::vector<float> d(size_t(rows * init.groups)), m(d.size());
    gguf_tune_group_scales(d.data(), m.data(), init, p.a.data(), p.b.data());
    const double lo = f.lo - f.zero, hi = f.hi - f.zero;
    int n_in = 0, n_out = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      const size_t g = (i / size_t(cols)) * size_t(init.groups) + (i % size_t(cols)) / size_t(f.G);
      if (d[g] == 0) {
        EXPECT_EQ(dv[i], 0.f);
        continue;
      }
      const double y = (double(w[i]) + m[g]) / d[g] + p.v[i];  // before rounding, up to fp16 scale error
      if (y > lo - 0.5 + 0.15 && y < hi + 0.5 - 0.15) {
        EXPECT_EQ(dv[i], dw[i] * d[g]) << name_of(f.t) << " weight " << i;
        ++n_in;
      } else if (y < lo - 0.5 - 0.15 || y > hi + 0.5 + 0.15) {
        EXPECT_EQ(dv[i], 0.f) << name_of(f.t) << " weight " << i;
        ++n_out;
      }
    }
    EXPECT_GT(n_in, int(w.size() / 2)) << name_of(f.t);
    EXPECT_GT(n_out, 10) << name_of(f.t);
  }
}

// ClampGrad::Strict (torch 2.15's clamp, which AutoRound's GGUF quantizers use): a weight whose
// integer lands exactly on an end of the code range passes no gradient to v; every other weight
// gets what Inclusive gives it. At the RTN point many weights sit there (each group's extreme).
TEST(GgufTune, StrictClampBlocksGradientAtTheBound) {
  const int64_t rows = 8, cols = 512;
  const std::vector<float> w = make_weights(rows, cols, 20);
  const std::vector<float> dw = uniform(w.size(), -1.f, 1.f, 21);
  for (const Fmt& f : kFmts) {
    const GgufTuneInit init = gguf_tune_init(f.t, w.data(), rows, cols);
    std::vector<float> dv_in(w.size(), 0.f), dv_st(w.size(), 0.f);
    std::vector<float> db_in(size_t(rows * init.groups), 0.f), db_st(db_in.size(), 0.f);
    gguf_fake_quant_backward(dv_in.data(), nullptr, db_in.data(), dw.data(), w.data(), rows, cols, init, nullptr,
                             nullptr, nullptr, ClampGrad::Inclusive);
    gguf_fake_quant_backward(dv_st.data(), nullptr, db_st.data(), dw.data(), w.data(), rows, cols, init, nullptr,
                             nullptr, nullptr, ClampGrad::Strict);
    // The weights' integers, read back from the bytes of the same point.
    const Fwd fw = forward(init, w, nullptr, nullptr, nullptr);
    std::vector<float> d(size_t(rows * init.groups)), m(d.size());
    gguf_tune_group_scales(d.data(), m.data(), init, nullptr, nullptr);
    int blocked = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      const size_t g = (i / size_t(cols)) * size_t(init.groups) + (i % size_t(cols)) / size_t(f.G);
      if (d[g] == 0) continue;
      const double level = (double(fw.w_dq[i]) + m[g]) / d[g];  // the integer minus the zero
      const bool on_bound = std::fabs(level - (f.lo - f.zero)) < 1e-3 || std::fabs(level - (f.hi - f.zero)) < 1e-3;
      if (on_bound && dv_in[i] != 0.f) {
        EXPECT_EQ(dv_st[i], 0.f) << name_of(f.t) << " weight " << i;
        ++blocked;
      } else if (!on_bound) {
        EXPECT_EQ(dv_st[i], dv_in[i]) << name_of(f.t) << " weight " << i;
      }
    }
    EXPECT_GT(blocked, 8) << name_of(f.t) << ": no weight on a bound, the test shows nothing";
    EXPECT_NE(db_in, db_st) << name_of(f.t) << ": the scale gradient keeps the level path only";
  }
}

// ---- min/max_scale gradients against the STE surrogate ------------------------------------------

// The clipped scale / min of one group as gguf_tune.h defines them, in double. Returns false where
// the definition has a kink within the step (Q4_0/Q5_0/Q8_0 side switch, the clamp at 0).
struct Clipped {
  double s, m;
  int side;  // which candidate / factor
};
Clipped clip(const Fmt& f, double s, double o, double a, double b) {
  switch (f.family) {
    case Family::kAffine: {
      const double N = f.hi, hi = s * N - o, lo = -o;
      return {(b * hi - a * lo) / N, a * o, 0};
    }
    case Family::kSymSigned: return {s < 0 ? s * b : s * a, 0, 0};
    case Family::kSymSide:
    case Family::kSymMagnitude: {
      const double c1 = s < 0 ? s * b : s * a, c2 = o < 0 ? o * b : o * a;
      const bool second = std::fabs(c2) > std::fabs(c1);
      double c = second ? c2 : c1;
      if (f.family == Family::kSymMagnitude) c = std::fabs(c);
      return {c, 0, second ? 1 : 0};
    }
  }
  return {0, 0, 0};
}

// With and without importance (the importance paths round with the stored scales and quantize the
// sub-block scales by weighted searches; the surrogate is the same).
TEST(GgufTune, ScaleGradientsMatchSurrogateDifferences) {
  const int64_t rows = 6, cols = 512;
  const std::vector<float> w = make_weights(rows, cols, 13), imp = importance(cols, 18);
  for (const Fmt& f : kFmts)
    for (const float* im : {static_cast<const float*>(nullptr), imp.data()}) {
      const GgufTuneInit init = gguf_tune_init(f.t, w.data(), rows, cols, im);
      const bool ref_f32 = f.ref_f32 && !init.weighted;
      const int64_t ng = init.groups;
      const Point p = random_point(init, 14, 0.45f, 0.6f);
      const std::vector<float> dw = uniform(w.size(), -1.f, 1.f, 15);
      std::vector<float> da(size_t(rows * ng), 0.f), db(da.size(), 0.f);
      gguf_fake_quant_backward(nullptr, da.data(), db.data(), dw.data(), w.data(), rows, cols, init, p.v.data(),
                               p.a.data(), p.b.data());
      std::vector<float> d(da.size()), m(da.size());
      gguf_tune_group_scales(d.data(), m.data(), init, p.a.data(), p.b.data());
      const std::vector<float> w_dq = forward(init, w, p.v.data(), p.a.data(), p.b.data()).w_dq;
      const std::vector<int> L = levels_of(f, init, w_dq, d, m);
      const double lo = f.lo - f.zero, hi = f.hi - f.zero, h = 1e-4;
      int compared = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t g = 0; g < ng; ++g) {
          const size_t gi = size_t(r * ng + g);
          const double s = init.scale[gi], o = init.offset[gi], a0 = p.a[gi], b0 = p.b[gi];
          const Clipped c0 = clip(f, s, o, a0, b0);
          if (d[gi] == 0 || !(c0.s != 0) || (f.family == Family::kAffine && c0.s <= 0)) continue;
          bool kink = false;
          for (int k = 0; k < 4; ++k) {
            const Clipped ck = clip(f, s, o, a0 + (k == 0 ? h : k == 1 ? -h : 0), b0 + (k == 2 ? h : k == 3 ? -h : 0));
            kink |= ck.side != c0.side;
          }
          if (kink) continue;
          // The STE surrogate: the quantized scale/min move one-for-one with s', m'; each weight's
          // rounding residual is frozen, clamped levels stay at their bound.
          const double d0 = d[gi], m0 = m[gi];
          auto round_value = [&](double dd, double mm) {
            return ref_f32 ? std::pair<double, double>{dd - d0 + c0.s, mm - m0 + c0.m} : std::pair{dd, mm};
          };
          std::vector<double> y0(size_t(f.G)), cfix(size_t(f.G));
          std::vector<bool> inside(size_t(f.G));
          bool ambiguous = false;
          {
            const auto [dr, mr] = round_value(d0, m0);
            for (int i = 0; i < f.G; ++i) {
              const size_t k = size_t(r * cols + g * f.G + i);
              const double y = (w[k] + mr) / dr + p.v[k];
              const double frac = y - std::floor(y);
              ambiguous |= std::fabs(frac - 0.5) < 1e-3;
              const double t = std::floor(y + 0.5);  // any tie rule: ties were excluded
              inside[size_t(i)] = t >= lo && t <= hi;
              if (inside[size_t(i)] && t != L[k]) ambiguous = true;
              if (!inside[size_t(i)] && L[k] != (t < lo ? lo : hi)) ambiguous = true;
              y0[size_t(i)] = y;
              cfix[size_t(i)] = L[k] - y;
            }
          }
          if (ambiguous) continue;
          auto loss = [&](double a, double b) {
            const Clipped c = clip(f, s, o, a, b);
            const double dd = d0 + (c.s - c0.s), mm = m0 + (c.m - c0.m);
            const auto [dr, mr] = round_value(dd, mm);
            double sum = 0;
            for (int i = 0; i < f.G; ++i) {
              const size_t k = size_t(r * cols + g * f.G + i);
              const double q = inside[size_t(i)] ? (w[k] + mr) / dr + p.v[k] + cfix[size_t(i)] : double(L[k]);
              sum += dw[k] * (dd * q - mm);
            }
            return sum;
          };
          const double fd_a = (loss(a0 + h, b0) - loss(a0 - h, b0)) / (2 * h);
          const double fd_b = (loss(a0, b0 + h) - loss(a0, b0 - h)) / (2 * h);
          double mag = 1e-6;
          for (int i = 0; i < f.G; ++i)
            mag += std::fabs(dw[size_t(r * cols + g * f.G + i)]) * (std::fabs(y0[size_t(i)]) + 1);
          mag *= std::fabs(c0.s) + std::fabs(c0.m) + std::fabs(s) + std::fabs(o);
          EXPECT_NEAR(da[gi], fd_a, 1e-4 * mag) << name_of(f.t) << " row " << r << " group " << g;
          EXPECT_NEAR(db[gi], fd_b, 1e-4 * mag) << name_of(f.t) << " row " << r << " group " << g;
          ++compared;
        }
      EXPECT_GT(compared, int(rows * ng / 2)) << name_of(f.t);
    }
}

// ---- a SignRound-like loop on a least-squares toy problem -----------------------------------------

// loss(W') = mean over samples of ||x W'^T - x W^T||^2 = tr((W'-W) H (W'-W)^T), H = X^T X / n.
struct Toy {
  int64_t rows, cols;
  std::vector<double> H;  // (cols, cols)
  double loss(const std::vector<float>& w_dq, const std::vector<float>& w, std::vector<float>* grad) const {
    double total = 0;
    std::vector<double> e(static_cast<size_t>(cols)), he(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) e[size_t(c)] = double(w_dq[size_t(r * cols + c)]) - w[size_t(r * cols + c)];
      for (int64_t i = 0; i < cols; ++i) {
        double s = 0;
        for (int64_t j = 0; j < cols; ++j) s += H[size_t(i * cols + j)] * e[size_t(j)];
        he[size_t(i)] = s;
        total += e[size_t(i)] * s;
      }
      if (grad)
        for (int64_t c = 0; c < cols; ++c) (*grad)[size_t(r * cols + c)] = float(2 * he[size_t(c)]);
    }
    return total;
  }
};

Toy make_toy(int64_t rows, int64_t cols, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n01(0, 1);
  // Activations with a few loud channels and some correlation, as a real layer's inputs have.
  std::vector<double> X(static_cast<size_t>(n * cols)), chan(static_cast<size_t>(cols));
  for (auto& c : chan) c = std::exp(0.8 * n01(rng));
  for (int64_t s = 0; s < n; ++s) {
    const double common = n01(rng);
    for (int64_t c = 0; c < cols; ++c) X[size_t(s * cols + c)] = chan[size_t(c)] * (n01(rng) + 0.5 * common);
  }
  Toy t{rows, cols, std::vector<double>(size_t(cols * cols), 0.0)};
  for (int64_t s = 0; s < n; ++s)
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        t.H[size_t(i * cols + j)] += X[size_t(s * cols + i)] * X[size_t(s * cols + j)] / double(n);
  return t;
}

void signed_step(std::vector<float>& p, const std::vector<float>& g, float lr, float lo, float hi) {
  for (size_t i = 0; i < p.size(); ++i) p[i] = std::clamp(p[i] - lr * float((g[i] > 0) - (g[i] < 0)), lo, hi);
}

TEST(GgufTune, SignedStepsLowerToyLossBelowRtn) {
  const int64_t rows = 16, cols = 256;
  const std::vector<float> w = make_weights(rows, cols, 16);
  const Toy toy = make_toy(rows, cols, 128, 17);
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q3_K, GgmlType::Q2_K}) {
    const GgufTuneInit init = gguf_tune_init(t, w.data(), rows, cols);
    std::vector<float> v(w.size(), 0.f), a(size_t(rows * init.groups), 1.f), b(a.size(), 1.f);
    std::vector<float> w_dq(w.size()), grad(w.size()), dv(w.size()), da(a.size()), db(a.size());
    gguf_fake_quant_forward(w_dq.data(), nullptr, w.data(), rows, cols, init, nullptr, nullptr, nullptr);
    const double rtn = toy.loss(w_dq, w, nullptr);
    double best = rtn;
    const int iters = 100;
    for (int it = 0; it < iters; ++it) {
      gguf_fake_quant_forward(w_dq.data(), nullptr, w.data(), rows, cols, init, v.data(), a.data(), b.data());
      best = std::min(best, toy.loss(w_dq, w, &grad));
      std::fill(dv.begin(), dv.end(), 0.f);
      std::fill(da.begin(), da.end(), 0.f);
      std::fill(db.begin(), db.end(), 0.f);
      gguf_fake_quant_backward(dv.data(), da.data(), db.data(), grad.data(), w.data(), rows, cols, init, v.data(),
                               a.data(), b.data());
      const float lr = 0.01f * (1.f - float(it) / iters);  // linear decay to 0, as SignRound's
      signed_step(v, dv, lr, -0.5f, 0.5f);
      signed_step(a, da, lr, 0.f, 1.f);
      signed_step(b, db, lr, 0.f, 1.f);
    }
    std::printf("  %s toy loss: RTN %.6g, tuned best %.6g (%.1f%%)\n", name_of(t).c_str(), rtn, best,
                100.0 * best / rtn);
    EXPECT_LT(best, 0.95 * rtn) << name_of(t);
  }
}

}  // namespace
}  // namespace ar
