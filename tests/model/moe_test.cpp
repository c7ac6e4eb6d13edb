// The MoE MLP (model/moe.h) on a small random block with more experts than threads: the padded row
// counts, the forward against a per-row reference in double, and the same bits from 1 and 2
// threads for the inference forward, the trainable forward and the backward (experts run in
// parallel, each on one thread; the rows are combined in expert order).
#include "model/moe.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/gemm.h"
#include "model/block_specs.h"

namespace ar {
namespace {

ModelConfig moe_config() {
  ModelConfig c;
  c.arch = Arch::Qwen3Moe;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.qk_norm = true;
  c.num_experts = 8;
  c.num_experts_per_tok = 3;
  c.moe_intermediate_size = 40;
  c.norm_topk_prob = true;
  c.layer_moe = {1};
  return c;
}

BlockWeights random_moe_block(const ModelConfig& c, std::mt19937& rng) {
  BlockWeights b = block_shapes(c, 0);
  for (const BlockTensorSpec& s : block_tensor_specs(c, 0)) {
    Buffer& buf = block_tensor_buffer(b, s);
    buf = Buffer(size_t(s.numel()) * sizeof(float));
    const float sd = s.part == BlockPart::Router ? 1.f : s.is_linear() ? 1.f / std::sqrt(float(s.shape[1])) : 0.1f;
    std::normal_distribution<float> nd(s.is_linear() || s.part == BlockPart::Router ? 0.f : 1.f, sd);
    for (int64_t i = 0; i < s.numel(); ++i) buf.as<float>()[i] = nd(rng);
  }
  return b;
}

std::vector<float> random_vec(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// As the tuner's source: W' in one shared buffer, valid only until the next call (so the MoE code
// must hold its own copies while experts run in parallel).
struct SharedWorkSource {
  const BlockWeights& b;
  std::vector<float> work;
  const float* operator()(int i) {
    const LinearWeights& l = *block_linears(b, i);
    work.assign(l.w.as<float>(), l.w.as<float>() + l.out * l.in);
    return work.data();
  }
};

TEST(Moe, ExpertRowsAreFewSizesWithLittlePadding) {
  int64_t sizes = 0, last = -1;
  EXPECT_EQ(expert_rows(0), 0);
  for (int64_t n = 1; n <= 4096; ++n) {
    const int64_t np = expert_rows(n);
    ASSERT_GE(np, n);
    ASSERT_EQ(np % 16, 0) << n;
    ASSERT_LT(np - n, std::max<int64_t>(16, (n + 7) / 8)) << n;
    ASSERT_GE(np, last) << "not monotone at " << n;
    if (np != last) ++sizes;
    last = np;
  }
  EXPECT_LE(sizes, 16 + 8 * 4) << "distinct row counts up to 4096";
  // The scratch bound holds for any split of the routed rows.
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t E = 1 + int64_t(rng() % 64), slots = int64_t(rng() % 5000);
    std::vector<int64_t> n(size_t(E), 0);
    for (int64_t s = 0; s < slots; ++s) ++n[size_t(trial % 2 ? rng() % E : rng() % std::min<int64_t>(E, 3))];
    int64_t total = 0;
    for (int64_t v : n) total += expert_rows(v);
    ASSERT_LE(total, moe_padded_slots(slots, E));
  }
}

// out[t] = Σ_j w_j · down(silu(gate x) ⊙ up x) in double over the routing moe_route chose.
std::vector<double> reference_forward(const float* xn, const BlockWeights& b, const ModelConfig& c, int64_t rows,
                                      const MoeRouting& r, Precision p) {
  const int64_t C = c.hidden_size, F = c.moe_intermediate_size, k = c.num_experts_per_tok;
  auto in = [p](float v) { return p == Precision::BF16 ? double(bf16_to_f32(f32_to_bf16(v))) : double(v); };
  std::vector<double> out(size_t(rows * C), 0.0);
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = r.expert[size_t(t * k + j)];
      const float *wg = b.experts[size_t(3 * e)].w.as<float>(), *wu = b.experts[size_t(3 * e + 1)].w.as<float>(),
                  *wd = b.experts[size_t(3 * e + 2)].w.as<float>();
      std::vector<float> act(static_cast<size_t>(F));
      for (int64_t f = 0; f < F; ++f) {
        double g = 0, u = 0;
        for (int64_t i = 0; i < C; ++i) {
          g += in(xn[t * C + i]) * in(wg[f * C + i]);
          u += in(xn[t * C + i]) * in(wu[f * C + i]);
        }
        act[size_t(f)] = float(g / (1.0 + std::exp(-g)) * u);
      }
      for (int64_t o = 0; o < C; ++o) {
        double y = 0;
        for (int64_t f = 0; f < F; ++f) y += in(act[size_t(f)]) * in(wd[o * F + f]);
        out[size_t(t * C + o)] += double(r.weight[size_t(t * k + j)]) * y;
      }
    }
  return out;
}

TEST(Moe, ForwardMatchesPerRowReference) {
  const ModelConfig c = moe_config();
  std::mt19937 rng(11);
  const BlockWeights b = random_moe_block(c, rng);
  for (int64_t rows : {1, 5, 37}) {
    const auto xn = random_vec(size_t(rows * c.hidden_size), rng);
    for (Precision p : {Precision::F32, Precision::BF16}) {
      MoeScratch s(c, rows);
      std::vector<float> out(xn.size());
      moe_forward(out.data(), xn.data(), b, c, rows, s, p);
      const std::vector<double> ref = reference_forward(xn.data(), b, c, rows, s.routing, p);
      double scale = 0;
      for (double v : ref) scale = std::max(scale, std::fabs(v));
      // bf16: the activation is rounded once more in the product than the reference's f32 copy
      // (same rounding), so both paths differ only by f32 summation: 1e-5 of the scale, 1e-2 for bf16
      // to cover the products' different rounding of intermediate activations.
      const double tol = (p == Precision::F32 ? 1e-5 : 1e-2) * scale;
      for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], tol) << rows << " rows @" << i;
    }
  }
}

struct Results {
  std::vector<float> fwd, train, dxn;
  std::vector<std::vector<float>> dw;
};

Results run_all(const ModelConfig& c, const BlockWeights& b, const std::vector<float>& xn,
            const std::vector<float>& dout, int64_t rows, Precision p, int threads) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  Results r;
  const int64_t C = c.hidden_size;
  r.fwd.resize(size_t(rows * C));
  r.train.resize(size_t(rows * C));
  r.dxn.assign(size_t(rows * C), 0.f);
  MoeScratch s(c, rows);
  moe_forward(r.fwd.data(), xn.data(), b, c, rows, s, p);
  MoeTrainScratch ts(c, rows);
  SharedWorkSource src{b, {}};
  const MoeWeightSource w = [&src](int i) { return src(i); };
  moe_forward_train(r.train.data(), ts, xn.data(), b, w, c, rows, p);
  const int nl = block_linear_count(b);
  r.dw.resize(size_t(nl));
  std::vector<float*> dwp(size_t(nl), nullptr);
  for (int i = kDenseLinears; i < nl; ++i) {
    if (i % 5 == 0) continue;  // some linears not tuned: no gradient asked
    r.dw[size_t(i)].assign(size_t(block_linears(b, i)->out * block_linears(b, i)->in), 0.5f);
    dwp[size_t(i)] = r.dw[size_t(i)].data();
  }
  moe_backward(r.dxn.data(), dwp, ts, dout.data(), xn.data(), b, w, c, rows, p);
  omp_set_num_threads(before);
  return r;
}

TEST(Moe, SameBitsWithOneAndTwoThreads) {
  const ModelConfig c = moe_config();
  std::mt19937 rng(5);
  const BlockWeights b = random_moe_block(c, rng);
  const int64_t rows = 53;
  const auto xn = random_vec(size_t(rows * c.hidden_size), rng);
  const auto dout = random_vec(xn.size(), rng);
  for (Precision p : {Precision::F32, Precision::BF16}) {
    const Results one = run_all(c, b, xn, dout, rows, p, 1);
    const Results two = run_all(c, b, xn, dout, rows, p, 2);
    auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
      // Empty for the block's absent dense slots: no memcmp on their null data (UBSan).
      return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    };
    EXPECT_TRUE(same(one.fwd, two.fwd)) << "inference forward";
    EXPECT_TRUE(same(one.train, two.train)) << "trainable forward";
    EXPECT_TRUE(same(one.dxn, two.dxn)) << "d xn";
    for (size_t i = 0; i < one.dw.size(); ++i) EXPECT_TRUE(same(one.dw[i], two.dw[i])) << "dW of linear " << i;
    // The trainable forward is the inference one.
    for (size_t i = 0; i < one.fwd.size(); ++i) ASSERT_NEAR(one.train[i], one.fwd[i], 1e-6f * (1 + std::fabs(one.fwd[i])));
  }
}

}  // namespace
}  // namespace ar
