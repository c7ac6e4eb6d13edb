// SignRound over a mixture-of-experts block in expert groups (SignRoundOptions::expert_groups):
// each group's first loss is checked against an independent forward of the block with the
// weights that group must see (done groups at their results, its own at RTN, later groups at
// full precision), the results do not depend on the thread count, and the memory bound shrinks
// with the group count and still covers what the tuner allocates.
#include "tune/signround.h"

#include <gtest/gtest.h>
#include <malloc.h>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/memory.h"
#include "kernels/gemm.h"
#include "model/block_specs.h"
#include "quant/gguf_blocks.h"
#include "quant/rtn.h"

namespace ar {
namespace {

// Qwen3-MoE-like, one layer: 8 experts of 32, top 2, q/k norm, GQA.
ModelConfig moe_config(int64_t C = 64, int64_t E = 8, int64_t Fm = 32) {
  ModelConfig c;
  c.arch = Arch::Qwen3Moe;
  c.hidden_size = C;
  c.intermediate_size = 2 * Fm;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.qk_norm = true;
  c.num_experts = E;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = Fm;
  c.norm_topk_prob = true;
  c.layer_moe = {1};
  return c;
}

// Random weights rounded to bf16 (as a bf16 checkpoint's, so an owning tuner compacts them).
BlockWeights moe_block(const ModelConfig& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  BlockWeights b = block_shapes(c, 0);
  for (const BlockTensorSpec& s : block_tensor_specs(c, 0)) {
    Buffer& buf = block_tensor_buffer(b, s);
    buf = Buffer(size_t(s.numel()) * sizeof(float), s.name);
    const bool router = s.part == BlockPart::Router;
    std::normal_distribution<float> nd(s.is_linear() || router ? 0.f : 1.f,
                                       router ? 1.f : s.is_linear() ? 1.f / std::sqrt(float(s.shape[1])) : 0.1f);
    for (int64_t i = 0; i < s.numel(); ++i) buf.as<float>()[i] = bf16_to_f32(f32_to_bf16(nd(rng)));
  }
  return b;
}

// W4G32 for every linear the block has (a MoE block's dense MLP slots are empty: bits 16).
LinearSchemes w4g32(const BlockWeights& b) {
  LinearSchemes s(size_t(block_linear_count(b)));
  for (int i = 0; i < block_linear_count(b); ++i)
    s[size_t(i)] = block_linears(b, i)->present() ? QuantScheme{4, 32, true} : QuantScheme{16, 32, true};
  return s;
}

struct Samples {
  std::vector<float> x, target;
  int64_t n = 0, TC = 0;
  TuneSamples view() {
    TuneSamples s;
    s.n = n;
    s.fetch = [this](int64_t idx, float* xi, float* t) {
      std::copy_n(x.data() + idx * TC, TC, xi);
      std::copy_n(target.data() + idx * TC, TC, t);
    };
    return s;
  }
};

// Inputs near the block's scale and the fp block's outputs as targets.
Samples make_samples(const BlockWeights& b, const ModelConfig& c, int64_t n, int64_t T) {
  Samples s;
  s.n = n;
  s.TC = T * c.hidden_size;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  s.x.resize(size_t(n * s.TC));
  for (float& e : s.x) e = nd(rng);
  s.target = s.x;
  const RopeTables rope = make_rope_tables(c, T);
  BlockScratch scr(c, T);
  for (int64_t i = 0; i < n; ++i) block_forward(s.target.data() + i * s.TC, b, c, rope, scr, Precision::F32);
  return s;
}

// The mean squared error over all samples of the block with weights w.
double block_loss(const BlockWeights& w, const ModelConfig& c, const Samples& s, int64_t T,
                  Precision p = Precision::F32) {
  const RopeTables rope = make_rope_tables(c, T);
  BlockScratch scr(c, T);
  std::vector<float> y(size_t(s.TC));
  double sum = 0;
  for (int64_t i = 0; i < s.n; ++i) {
    std::copy_n(s.x.data() + i * s.TC, s.TC, y.data());
    block_forward(y.data(), w, c, rope, scr, p);
    for (int64_t k = 0; k < s.TC; ++k) {
      const double d = double(y[size_t(k)]) - double(s.target[size_t(i * s.TC + k)]);
      sum += d * d;
    }
  }
  return sum / double(s.n * s.TC);
}

// A copy of b in which group g's linears are at RTN, earlier groups at their results in r.
BlockWeights weights_seen_by_group(const BlockWeights& b, const ModelConfig& c, const LinearSchemes& sch,
                                   const BlockTuneResult& r, int g, int groups) {
  BlockWeights w = block_shapes(c, 0);
  w.layer = b.layer;
  for (const BlockTensorSpec& s : block_tensor_specs(c, 0)) {
    const Buffer& from = block_tensor_buffer(const_cast<BlockWeights&>(b), s);
    Buffer& to = block_tensor_buffer(w, s);
    to = Buffer(size_t(s.numel()) * sizeof(float), s.name);
    std::copy_n(from.as<float>(), size_t(s.numel()), to.as<float>());
  }
  for (int i = 0; i < block_linear_count(w); ++i) {
    LinearWeights& l = *block_linears(w, i);
    const int lg = linear_expert_group(b, i, groups);
    if (!sch[size_t(i)].quantized()) continue;
    if (lg < g) r.q[size_t(i)].dequantize(l.w.as<float>());
    if (lg == g)
      quantize_rtn(l.w.as<float>(), l.out, l.in, sch[size_t(i)], nullptr, nullptr, nullptr, l.name)
          .dequantize(l.w.as<float>());
  }
  return w;
}

TEST(ExpertGroups, GroupCountAndMembership) {
  const ModelConfig c = moe_config();
  const BlockWeights b = moe_block(c, 1);
  EXPECT_EQ(expert_group_count(b, 1), 1);
  EXPECT_EQ(expert_group_count(b, 3), 3);
  EXPECT_EQ(expert_group_count(b, 100), 8);  // at most one per expert
  EXPECT_EQ(expert_group_count(b, 0), 1);
  for (int i = 0; i < kDenseLinears; ++i) EXPECT_EQ(linear_expert_group(b, i, 4), 0);
  // 8 experts in 3 groups: e * 3 / 8 -> experts 0-2, 3-5, 6-7; an expert's three linears together.
  const int want[8] = {0, 0, 0, 1, 1, 1, 2, 2};
  for (int e = 0; e < 8; ++e)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(linear_expert_group(b, kDenseLinears + 3 * e + j, 3), want[e]) << e;
  BlockWeights dense;
  EXPECT_EQ(expert_group_count(dense, 4), 1);
}

// Batches of all samples, so a step's loss is the mean over every sample whatever the sampler
// drew: one sample (one lane) and four (two lanes, where W' of held linears is made up front).
class ExpertGroupsLoss : public ::testing::TestWithParam<int64_t> {};

TEST_P(ExpertGroupsLoss, EachGroupStartsFromTheWeightsItMustSee) {
  const ModelConfig c = moe_config();
  const BlockWeights b = moe_block(c, 2);
  const int64_t T = 24, n = GetParam();
  Samples s = make_samples(b, c, n, T);
  const LinearSchemes sch = w4g32(b);
  SignRoundOptions o;
  o.iters = 30;
  o.batch_size = n;
  o.expert_groups = 3;
  BlockTuner tuner(b, c, sch, T, o);
  const BlockTuneResult r = tuner.tune(s.view());
  ASSERT_EQ(r.groups.size(), 3u);
  for (int g = 0; g < 3; ++g) {
    const double want = block_loss(weights_seen_by_group(b, c, sch, r, g, 3), c, s, T);
    EXPECT_NEAR(r.groups[size_t(g)].loss_iter0, want, 1e-5 * want) << "group " << g;
    // Tuning helps every group (the fixed batch makes the loss a deterministic function).
    EXPECT_LT(r.groups[size_t(g)].best_loss, r.groups[size_t(g)].loss_iter0) << "group " << g;
  }
  EXPECT_EQ(r.loss_iter0, r.groups.front().loss_iter0);
  EXPECT_EQ(r.best_loss, r.groups.back().best_loss);
  // Every quantized linear has a result, and the last group's best loss is what they give.
  for (int i = 0; i < block_linear_count(b); ++i) EXPECT_EQ(r.q[size_t(i)].out, block_linears(b, i)->out) << i;
  const double all_done = block_loss(weights_seen_by_group(b, c, sch, r, 3, 3), c, s, T);
  EXPECT_LE(all_done, r.groups[0].loss_iter0 * 1.5);  // sanity: the tuned block is near the fp one
}

INSTANTIATE_TEST_SUITE_P(Lanes, ExpertGroupsLoss, ::testing::Values(int64_t(1), int64_t(4)));

// The same in bf16 products, where the tuner makes the experts' W' as bf16 straight into the
// products' held slots (one lane) or converts the step's f32 W' (two lanes): each group's first
// loss is the bf16 inference forward's with the weights it must see, up to the loss sum's order
// (1e-14 seen; zeros for the experts' bf16 W' move it by more than 100 %).
TEST(ExpertGroups, Bf16FirstLossesAreTheBf16ForwardsLosses) {
  if (!gemm_has_native_bf16()) GTEST_SKIP() << "no native bf16 products on this CPU: the f32 path is the one above";
  const ModelConfig c = moe_config();
  const BlockWeights b = moe_block(c, 2);
  const int64_t T = 24;
  for (int64_t n : {int64_t(1), int64_t(4)}) {
    Samples s = make_samples(b, c, n, T);
    const LinearSchemes sch = w4g32(b);
    SignRoundOptions o;
    o.iters = 4;
    o.batch_size = n;
    o.expert_groups = 3;
    o.precision = Precision::BF16;
    BlockTuner tuner(b, c, sch, T, o);
    const BlockTuneResult r = tuner.tune(s.view());
    ASSERT_EQ(r.groups.size(), 3u);
    for (int g = 0; g < 3; ++g) {
      const double want = block_loss(weights_seen_by_group(b, c, sch, r, g, 3), c, s, T, Precision::BF16);
      EXPECT_NEAR(r.groups[size_t(g)].loss_iter0, want, 1e-9 * want) << "n " << n << " group " << g;
    }
  }
}

TEST(ExpertGroups, SameBytesForOneAndTwoThreads) {
  const ModelConfig c = moe_config();
  const BlockWeights b = moe_block(c, 3);
  const int64_t T = 24;
  Samples s = make_samples(b, c, 4, T);
  SignRoundOptions o;
  o.iters = 3;
  o.batch_size = 2;
  o.expert_groups = 2;
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    BlockTuner tuner(b, c, w4g32(b), T, o);
    BlockTuneResult r = tuner.tune(s.view());
    omp_set_num_threads(saved);
    return r;
  };
  const BlockTuneResult a = run(1), z = run(2);
  EXPECT_EQ(a.best_loss, z.best_loss);
  for (int i = 0; i < block_linear_count(b); ++i) {
    EXPECT_EQ(a.q[size_t(i)].codes, z.q[size_t(i)].codes) << i;
    EXPECT_EQ(a.q[size_t(i)].scales, z.q[size_t(i)].scales) << i;
  }
}

// An MoE block's experts' gradients are still cleared and added to when the dense ones (attention)
// are overwritten (an expert no token reaches gets no write): the bits of clearing all of them.
TEST(ExpertGroups, OverwritingDenseGradientsGivesTheBitsOfClearingThem) {
  const ModelConfig c = moe_config();
  const BlockWeights b = moe_block(c, 5);
  const int64_t T = 24;
  Samples s = make_samples(b, c, 4, T);
  for (int groups : {1, 2}) {
    SignRoundOptions o;
    o.iters = 6;
    o.batch_size = 2;
    o.lr = 0.05;
    o.expert_groups = groups;
    SignRoundOptions off = o;
    off.overwrite_dense_grads = false;
    BlockTuner ta(b, c, w4g32(b), T, o), tb(b, c, w4g32(b), T, off);
    const BlockTuneResult a = ta.tune(s.view()), z = tb.tune(s.view());
    for (const auto& g : a.groups) EXPECT_GT(g.best_iter, 1) << groups;  // later steps' gradients count
    EXPECT_EQ(a.best_loss, z.best_loss) << groups;
    for (int i = 0; i < block_linear_count(b); ++i) {
      EXPECT_EQ(a.q[size_t(i)].codes, z.q[size_t(i)].codes) << groups << " " << i;
      EXPECT_EQ(a.q[size_t(i)].scales, z.q[size_t(i)].scales) << groups << " " << i;
    }
  }
}

// bf16 weight gradients in an MoE block (batch 1, native bf16): the dense linears' are bf16, the
// experts' stay f32 and are added to; without min/max tuning the bits of f32 gradients throughout,
// tuned at once and in two groups (the dense linears only in the first).
TEST(ExpertGroups, Bf16DenseWeightGradientsNextToF32ExpertOnes) {
  const ModelConfig c = moe_config();
  const BlockWeights b = moe_block(c, 6);
  const int64_t T = 24;
  Samples s = make_samples(b, c, 4, T);
  for (int groups : {1, 2}) {
    SignRoundOptions o;
    o.iters = 5;
    o.batch_size = 1;
    o.lr = 0.05;
    o.expert_groups = groups;
    o.enable_minmax_tuning = false;
    o.precision = Precision::BF16;
    SignRoundOptions off = o;
    off.bf16_weight_grads = false;
    BlockTuner ta(b, c, w4g32(b), T, o), tb(b, c, w4g32(b), T, off);
    const BlockTuneResult a = ta.tune(s.view()), z = tb.tune(s.view());
    EXPECT_EQ(a.bf16_weight_grads, native_bf16_products(Precision::BF16)) << groups;
    EXPECT_FALSE(z.bf16_weight_grads);
    int latest_best = 0;  // a best after the first step: the steps' gradients reached the results
    for (const auto& g : a.groups) latest_best = std::max(latest_best, g.best_iter);
    EXPECT_GT(latest_best, 0) << groups;
    EXPECT_EQ(a.best_loss, z.best_loss) << groups;
    for (int i = 0; i < block_linear_count(b); ++i) {
      EXPECT_EQ(a.q[size_t(i)].codes, z.q[size_t(i)].codes) << groups << " " << i;
      EXPECT_EQ(a.q[size_t(i)].scales, z.q[size_t(i)].scales) << groups << " " << i;
    }
  }
}

// The owning tuner (weights compacted to bf16) in groups: its results equal the borrowing one's.
TEST(ExpertGroups, OwningTunerGivesTheSameResults) {
  const ModelConfig c = moe_config();
  const int64_t T = 24;
  const BlockWeights b = moe_block(c, 4);
  Samples s = make_samples(b, c, 2, T);
  SignRoundOptions o;
  o.iters = 3;
  o.batch_size = 1;
  o.expert_groups = 4;
  BlockTuner borrow(b, c, w4g32(b), T, o);
  const BlockTuneResult a = borrow.tune(s.view());
  BlockTuner own(moe_block(c, 4), c, w4g32(b), T, o);
  const BlockTuneResult z = own.tune(s.view());
  EXPECT_EQ(a.best_loss, z.best_loss);
  for (int i = 0; i < block_linear_count(b); ++i) EXPECT_EQ(a.q[size_t(i)].codes, z.q[size_t(i)].codes) << i;
}

// Large enough experts that the tuning state dominates: the bound falls with the group count and
// still covers the measured peak.
TEST(ExpertGroups, StateBytesShrinkAndBoundThePeak) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  const ModelConfig c = moe_config(256, 16, 512);
  const BlockWeights b = moe_block(c, 5);
  const int64_t T = 64;
  Samples s = make_samples(b, c, 1, T);
  const LinearSchemes sch = w4g32(b);
  SignRoundOptions o;
  o.iters = 2;
  o.batch_size = 1;
  uint64_t prev = UINT64_MAX;
  for (int g : {1, 2, 4, 8}) {
    o.expert_groups = g;
    const uint64_t bound = BlockTuner::state_bytes(b, c, sch, T, o);
    EXPECT_LT(bound, prev) << g << " groups";
    prev = bound;
    malloc_trim(0);
    const uint64_t before = read_mem_stats().rss_bytes;
    const bool peak_ok = reset_peak_rss();
    {
      BlockTuner tuner(b, c, sch, T, o);
      const BlockTuneResult r = tuner.tune(s.view());
      EXPECT_EQ(int(r.groups.size()), g);
    }
    const double peak = double(read_mem_stats().peak_bytes) - double(before);
    std::printf("%d groups: state_bytes %.2f MiB, peak growth %.2f MiB\n", g, double(bound) / 1048576,
                peak / 1048576);
    if (peak_ok) {
      EXPECT_LE(peak, 1.05 * double(bound)) << g << " groups";
    }
  }
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  omp_set_num_threads(saved);
}

// GGUF targets (tuned under Q4_K's block format): a done group stands in with its GGUF bytes, so
// the last group's first loss is that of the block with every earlier linear dequantized from
// its bytes.
TEST(ExpertGroups, GgufTargetsHoldTheirBlocks) {
  const ModelConfig c = moe_config(256, 4, 256);
  const BlockWeights b = moe_block(c, 6);
  const int64_t T = 16;
  Samples s = make_samples(b, c, 1, T);
  LinearSchemes sch(size_t(block_linear_count(b)));
  for (int i = 0; i < block_linear_count(b); ++i) {
    sch[size_t(i)].bits = 16;
    if (block_linears(b, i)->present() && block_linears(b, i)->in % 256 == 0) sch[size_t(i)].gguf = GgmlType::Q4_K;
  }
  SignRoundOptions o;
  o.iters = 3;
  o.batch_size = 1;
  o.expert_groups = 2;
  BlockTuner tuner(b, c, sch, T, o);
  const BlockTuneResult r = tuner.tune(s.view());
  ASSERT_EQ(r.groups.size(), 2u);
  // The block as group 1 first saw it: group 0 from its bytes, group 1 at its own first W'
  // (v = 0), which for a group's first step is the same in both runs below.
  BlockWeights seen = moe_block(c, 6);
  SignRoundOptions one = o;
  one.iters = 1;
  one.expert_groups = 1;
  for (int i = 0; i < block_linear_count(b); ++i) {
    if (!sch[size_t(i)].quantized() || linear_expert_group(b, i, 2) != 0) continue;
    LinearWeights& l = *block_linears(seen, i);
    ASSERT_FALSE(r.gguf[size_t(i)].empty()) << i;
    gguf_dequantize_tensor(GgmlType::Q4_K, r.gguf[size_t(i)].data(), l.out, l.in, l.w.as<float>());
  }
  // Tuning `seen` with group 0 left at 16 bits and group 1 as before: its first loss is group 1's.
  LinearSchemes only1 = sch;
  for (int i = 0; i < block_linear_count(b); ++i)
    if (linear_expert_group(b, i, 2) == 0) only1[size_t(i)] = QuantScheme{16, 32, true};
  BlockTuner check(seen, c, only1, T, one);
  const BlockTuneResult rc = check.tune(s.view());
  EXPECT_NEAR(r.groups[1].loss_iter0, rc.loss_iter0, 1e-6 * rc.loss_iter0);
}

}  // namespace
}  // namespace ar
