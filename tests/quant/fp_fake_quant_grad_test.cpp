// SignRound's differentiable FP quantizer (quant/fp_fake_quant_grad.h) against AutoRound's own
// quantizers under torch autograd: tests/quant/data/fp_grad_reference.safetensors holds AutoRound
// 0.16.1's w' and the gradients of sum(w' * dw) w.r.t. v and max_scale for inputs both sides make
// from one integer hash (bench/ecosystem/fp_grad_reference.py writes it). Also: the forward is
// quantize_fp's dequantized weight bit for bit, and a bf16 source gives the f32 source's bits.
#include "quant/fp_fake_quant_grad.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/safetensors.h"
#include "quant/fake_quant_grad.h"
#include "quant/fp_formats.h"
#include "quant/fp_quantize.h"
#include "quant/scheme.h"
#include "support/tensors.h"

namespace ar {
namespace {

struct Case {
  const char* name;
  DataType type;
  int64_t out, in;
  // NVFP4's global scale from this multiple of the tensor's own amax (a fused sibling's larger one,
  // quant/nvfp4_global.h); 0: the tensor's own.
  float shared_amax_factor = 0.f;
  // quantize_fp's / the fake quantizer's global_amax argument for this case.
  float global_amax(const std::vector<float>& w) const {
    if (shared_amax_factor == 0.f) return -1.f;
    float m = 0.f;
    for (float x : w) m = std::max(m, std::fabs(x));
    return m * shared_amax_factor;
  }
};
// Shapes as in the generator: short last blocks along the row (80 = 32+32+16, 56 = 3*16+8) and
// FP8Block's short edge tiles (136 x 144).
const Case kCases[] = {{"mxfp4", DataType::MXFP4, 12, 80},
                       {"mxfp8", DataType::MXFP8, 12, 80},
                       {"nvfp4", DataType::NVFP4, 12, 56},
                       {"nvfp4_fused", DataType::NVFP4, 12, 56, 3.f},
                       {"fp8", DataType::FP8, 12, 80},
                       {"fp8_block", DataType::FP8Block, 136, 144}};
constexpr int kRowExp[] = {-2, -1, 0, 1, 2, -24};

// The generator's hash: h = (i * 2654435761 + salt * 97531) mod 2^32 for i = 1..n, then h mod m.
std::vector<int64_t> hashed(int64_t n, uint64_t salt, uint64_t m) {
  std::vector<int64_t> r(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t h = (uint64_t(i + 1) * 2654435761ull + salt * 97531ull) % (uint64_t(1) << 32);
    r[size_t(i)] = int64_t(h % m);
  }
  return r;
}

struct Inputs {
  std::vector<float> w, v, ms, dw;
};
// The same f32 operations in the same order as make_inputs in the generator.
Inputs make_inputs(int64_t out, int64_t in, int64_t n_scales) {
  const int64_t n = out * in;
  Inputs x;
  for (int64_t k : hashed(n, 1, 2001)) x.w.push_back(float(k - 1000) / 1000.f * 0.05f);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) x.w[size_t(o * in + i)] *= std::ldexp(1.f, kRowExp[o % 6]);
  for (int64_t i = 0; i < 32; ++i) x.w[size_t(in + i)] = 0.f;  // an all-zero block in row 1
  for (int64_t k : hashed(n, 2, 2001)) x.v.push_back(float(k - 1000) / 2000.f);
  for (int64_t k : hashed(n_scales, 3, 501)) x.ms.push_back(float(k) / 1000.f + 0.5f);
  for (int64_t k : hashed(n, 4, 2001)) x.dw.push_back(float(k - 1000) / 1000.f);
  return x;
}

std::filesystem::path reference_file() {
  return std::filesystem::path(AR_SOURCE_DIR) / "tests/quant/data/fp_grad_reference.safetensors";
}

double rel_err(const std::vector<float>& got, const std::vector<float>& ref) {
  double e = 0, n = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    e += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    n += double(ref[i]) * ref[i];
  }
  return std::sqrt(e / std::max(n, 1e-30));
}

TEST(FpFakeQuantGrad, MatchesAutoRoundAutograd) {
  const SafetensorsReader ref = SafetensorsReader::open(reference_file());
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const QuantScheme s = fp_scheme(c.type);
    const int64_t n = c.out * c.in, ns = fp_scale_count(s, c.out, c.in);
    const Inputs x = make_inputs(c.out, c.in, ns);
    std::vector<float> wq(static_cast<size_t>(n));
    const float ga = c.global_amax(x.w);
    fake_quant_forward(wq.data(), x.w.data(), c.out, c.in, s, x.v.data(), nullptr, x.ms.data(), ga);
    const std::vector<float> ref_wq = test::read_f32(ref, std::string(c.name) + ".wq");
    ASSERT_EQ(ref_wq.size(), wq.size());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(wq[size_t(i)], ref_wq[size_t(i)]) << "w' element " << i;

    std::vector<float> dv(static_cast<size_t>(n), 0.f), dms(static_cast<size_t>(ns), 0.f), dmin(static_cast<size_t>(ns), 7.f);
    fake_quant_backward(dv.data(), dmin.data(), dms.data(), x.dw.data(), x.w.data(), c.out, c.in, s, x.v.data(),
                        nullptr, x.ms.data(), ClampGrad::Strict, ga);
    for (float d : dmin) ASSERT_EQ(d, 7.f) << "an FP format has no min_scale: its gradient stays untouched";

    // dL/dv: element by element (the same decisions, different f32 operation chains).
    const std::vector<float> ref_dv = test::read_f32(ref, std::string(c.name) + ".dv");
    ASSERT_EQ(ref_dv.size(), dv.size());
    for (int64_t i = 0; i < n; ++i)
      ASSERT_NEAR(dv[size_t(i)], ref_dv[size_t(i)], 1e-5f * std::fabs(ref_dv[size_t(i)]) + 1e-30f) << "dv " << i;

    // dL/dmax_scale: block sums in another order. AutoRound's autograd gives NaN where a block's
    // scale is zero (an all-zero block, or NVFP4's block scale flushed to 0): 0/0 through
    // torch.where. Ours is 0 there, so such a block's max_scale stays where it is.
    std::vector<float> ref_dms = test::read_f32(ref, std::string(c.name) + ".dms");
    ASSERT_EQ(ref_dms.size(), dms.size());
    int nan_blocks = 0;
    for (size_t i = 0; i < ref_dms.size(); ++i)
      if (std::isnan(ref_dms[i])) {
        ++nan_blocks;
        EXPECT_EQ(dms[i], 0.f) << "dms " << i;
        ref_dms[i] = dms[i] = 0.f;
      } else {
        EXPECT_EQ(std::signbit(dms[i]), std::signbit(ref_dms[i])) << "dms " << i;
      }
    EXPECT_LT(rel_err(dms, ref_dms), 1e-5);
    if (c.type == DataType::MXFP4 || c.type == DataType::NVFP4) {
      EXPECT_GT(nan_blocks, 0) << "the zero block is in";
    }
  }
}

// The forward is what the exporters write: quantize_fp(...).dequantize(), bit for bit.
TEST(FpFakeQuantGrad, ForwardIsQuantizeFpDequantized) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const QuantScheme s = fp_scheme(c.type);
    const int64_t n = c.out * c.in;
    const Inputs x = make_inputs(c.out, c.in, fp_scale_count(s, c.out, c.in));
    std::vector<float> fake(static_cast<size_t>(n)), deq(static_cast<size_t>(n));
    const float ga = c.global_amax(x.w);
    fake_quant_forward(fake.data(), x.w.data(), c.out, c.in, s, x.v.data(), nullptr, x.ms.data(), ga);
    const QuantizedWeight q = quantize_fp(x.w.data(), c.out, c.in, s, "w", x.v.data(), x.ms.data(), ga);
    q.dequantize(deq.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(fake[size_t(i)], deq[size_t(i)]) << i;
    if (ga >= 0.f) {
      EXPECT_EQ(q.global_scale, nvfp4_global_scale(ga)) << "the stored global scale is the shared one";
    }
  }
}

// A tuner that keeps a bf16 checkpoint's weights as bf16 bits gets the f32 path's bits.
TEST(FpFakeQuantGrad, Bf16SourceGivesTheSameBits) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const QuantScheme s = fp_scheme(c.type);
    const int64_t n = c.out * c.in, ns = fp_scale_count(s, c.out, c.in);
    Inputs x = make_inputs(c.out, c.in, ns);
    std::vector<uint16_t> wb(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      wb[size_t(i)] = f32_to_bf16(x.w[size_t(i)]);
      x.w[size_t(i)] = bf16_to_f32(wb[size_t(i)]);
    }
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    const float ga = c.global_amax(x.w);
    fake_quant_forward(a.data(), x.w.data(), c.out, c.in, s, x.v.data(), nullptr, x.ms.data(), ga);
    fake_quant_forward(b.data(), wb.data(), c.out, c.in, s, x.v.data(), nullptr, x.ms.data(), ga);
    EXPECT_EQ(a, b);
    std::vector<float> dva(static_cast<size_t>(n), 0.f), dvb(static_cast<size_t>(n), 0.f), dma(static_cast<size_t>(ns), 0.f), dmb(static_cast<size_t>(ns), 0.f);
    fake_quant_backward(dva.data(), nullptr, dma.data(), x.dw.data(), x.w.data(), c.out, c.in, s, x.v.data(), nullptr,
                        x.ms.data(), ClampGrad::Inclusive, ga);
    fake_quant_backward(dvb.data(), nullptr, dmb.data(), x.dw.data(), wb.data(), c.out, c.in, s, x.v.data(), nullptr,
                        x.ms.data(), ClampGrad::Inclusive, ga);
    EXPECT_EQ(dva, dvb);
    EXPECT_EQ(dma, dmb);
  }
}

// No tunables at all is RTN: v = 0 and max_scale = 1.
TEST(FpFakeQuantGrad, NullTunablesAreRtn) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const QuantScheme s = fp_scheme(c.type);
    const int64_t n = c.out * c.in, ns = fp_scale_count(s, c.out, c.in);
    const Inputs x = make_inputs(c.out, c.in, ns);
    const std::vector<float> zeros(static_cast<size_t>(n), 0.f), ones(static_cast<size_t>(ns), 1.f);
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    fake_quant_forward(a.data(), x.w.data(), c.out, c.in, s, nullptr, nullptr, nullptr);
    fake_quant_forward(b.data(), x.w.data(), c.out, c.in, s, zeros.data(), nullptr, ones.data());
    EXPECT_EQ(a, b);
  }
}

}  // namespace
}  // namespace ar
