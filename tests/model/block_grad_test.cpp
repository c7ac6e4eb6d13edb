// Trainable block forward/backward on tiny random configs (GQA, Qwen3 q/k norm, q/k/v/o and mlp bias):
// forward against the inference block_forward, backward against central finite differences of
// L = sum(G * y) w.r.t. every linear weight (a sample of entries) and the whole input.
#include "model/block_grad.h"
#include "model/block_specs.h"

#include <gtest/gtest.h>

#include "core/dtype.h"
#include "kernels/gemm.h"
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace ar {
namespace {

enum class Family { Llama, Gemma3, Phi3, Moe, MoeUnnormalized };

struct Variant {
  const char* name;
  int64_t H, Hkv;
  bool qk_norm, bias;
  bool mlp_bias = false;
  Family family = Family::Llama;
  int64_t window = 0;  // < T so that it masks
  float softcap = 0;
};
void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

ModelConfig tiny_config(const Variant& v) {
  ModelConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 1;
  c.num_attention_heads = v.H;
  c.num_key_value_heads = v.Hkv;
  c.head_dim = 8;  // H*D != C for H = 4: o_proj is not square
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.qk_norm = v.qk_norm;
  c.attention_bias = v.bias;  // Llama: q, k, v and o
  c.mlp_bias = v.mlp_bias;
  c.sliding_window = v.window;
  c.attn_logit_softcapping = v.softcap;
  if (v.family == Family::Gemma3) {  // everything Gemma3 changes, on one sliding layer
    c.arch = Arch::Gemma3;
    c.hidden_act = Activation::GeluTanh;
    c.norm_weight_offset = c.sandwich_norms = true;
    c.query_pre_attn_scalar = 5;
    c.rope_local_theta = 100.0;
    c.layer_sliding = {1};
  }
  if (v.family == Family::Phi3) {
    c.arch = Arch::Phi3;
    c.fused_qkv = c.fused_gate_up = true;
  }
  if (v.family == Family::Moe || v.family == Family::MoeUnnormalized) {  // Qwen3Moe-like, 4 experts, top 2
    c.arch = Arch::Qwen3Moe;
    c.num_experts = 4;
    c.num_experts_per_tok = 2;
    c.moe_intermediate_size = 12;
    c.norm_topk_prob = v.family == Family::Moe;
    c.layer_moe = {1};
  }
  return c;
}

void fill(Buffer& b, size_t n, std::mt19937& rng, float mean, float sd) {
  b = Buffer(n * sizeof(float));
  std::normal_distribution<float> nd(mean, sd);
  for (size_t i = 0; i < n; ++i) b.as<float>()[i] = nd(rng);
}

// Every tensor the config's block has (model/block_specs.h), random.
BlockWeights random_block(const ModelConfig& c, std::mt19937& rng) {
  BlockWeights b = block_shapes(c, 0);
  for (const BlockTensorSpec& s : block_tensor_specs(c, 0)) {
    // Large enough that attention is far from uniform and the MLP far from linear.
    const float sd = !s.is_linear() ? 0.2f : s.role == TensorRole::Bias ? 0.3f : 1.2f / std::sqrt(float(s.shape[1]));
    // Norms multiply by about one: w near 1, or near 0 where the config stores offsets (Gemma).
    const float norm_mean = c.norm_weight_offset ? 0.f : 1.f;
    if (s.part == BlockPart::Router) {  // a decisive router: top-k choices far from ties
      fill(block_tensor_buffer(b, s), size_t(s.numel()), rng, 0.f, 1.f);
      continue;
    }
    fill(block_tensor_buffer(b, s), size_t(s.numel()), rng, s.is_linear() ? 0.f : norm_mean, sd);
  }
  return b;
}

// What several tests start from: a random block of config c, its RoPE tables, an input x of T
// tokens and an output gradient G, drawn in that order from one generator seeded with `seed`.
struct RandomCase {
  BlockWeights b;
  RopeTables rope;
  std::vector<float> x, G;
};

RandomCase random_case(const ModelConfig& c, int64_t T, uint32_t seed) {
  std::mt19937 rng(seed);
  RandomCase r{random_block(c, rng), make_rope_tables(c, T), {}, {}};
  r.x.resize(static_cast<size_t>(T * c.hidden_size));
  r.G.resize(r.x.size());
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& e : r.x) e = nd(rng);
  for (auto& e : r.G) e = nd(rng);
  return r;
}

// Central differences of a float computation: h = 1e-2 keeps f32 rounding noise in L (~1e-6) below
// 1e-4 in the quotient, while the truncation error (h^2 * L''' / 6) stays near 1e-5 for these sizes.
constexpr float kH = 1e-2f;
constexpr double kAbsTol = 2e-3, kRelTol = 1e-2;

// Tiny shapes: OpenMP fork/join per kernel would dominate (and crawl on a shared machine).
struct SingleThread {
  int saved = omp_get_max_threads();
  SingleThread() { omp_set_num_threads(1); }
  ~SingleThread() { omp_set_num_threads(saved); }
};

class BlockGradFd : public ::testing::TestWithParam<Variant> {};

TEST_P(BlockGradFd, MatchesFiniteDifferences) {
  SingleThread one;
  const ModelConfig c = tiny_config(GetParam());
  const int64_t T = 7, C = c.hidden_size;
  std::mt19937 rng(42);
  BlockWeights b = random_block(c, rng);
  const RopeTables rope = make_rope_tables(c, T);
  std::vector<float> x(static_cast<size_t>(T * C)), G(x.size()), y(x.size());
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& e : x) e = nd(rng);
  for (auto& e : G) e = nd(rng);

  const int nl = block_linear_count(b);
  BlockLinearWeights w(static_cast<size_t>(nl));
  for (int i = 0; i < nl; ++i) w[i] = block_linears(b, i)->w.as<float>();
  BlockGradScratch s(c, T);

  // Forward equals the inference block.
  block_forward_train(y.data(), s, x.data(), b, w, c, rope, Precision::F32);
  {
    std::vector<float> ref = x;
    BlockScratch bs(c, T);
    block_forward(ref.data(), b, c, rope, bs, Precision::F32);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], 1e-5f * (1.f + std::fabs(ref[i]))) << i;
  }

  std::vector<std::vector<float>> dw(static_cast<size_t>(nl));
  BlockLinearGrads dwp(static_cast<size_t>(nl));
  for (int i = 0; i < nl; ++i) {
    const LinearWeights* l = block_linears(b, i);
    dw[size_t(i)].assign(size_t(l->out * l->in), 0.f);
    dwp[i] = dw[size_t(i)].data();
  }
  std::vector<float> dx(x.size());
  block_backward(dx.data(), dwp, s, G.data(), x.data(), b, w, c, rope, Precision::F32);

  BlockGradScratch s2(c, T);
  std::vector<float> y2(x.size());
  auto loss = [&]() {
    block_forward_train(y2.data(), s2, x.data(), b, w, c, rope, Precision::F32);
    double l = 0;
    for (size_t i = 0; i < y2.size(); ++i) l += double(G[i]) * y2[i];
    return l;
  };
  auto fd_at = [&](float* p) {
    const float p0 = *p;
    *p = p0 + kH;
    const double lp = loss();
    *p = p0 - kH;
    const double lm = loss();
    *p = p0;
    return (lp - lm) / (2.0 * double(kH));
  };
  double err2 = 0, ref2 = 0;
  auto compare = [&](double fd, float got, const std::string& what) {
    err2 += (fd - got) * (fd - got);
    ref2 += fd * fd;
    EXPECT_NEAR(got, fd, kAbsTol + kRelTol * std::fabs(fd)) << what;
  };
  for (size_t i = 0; i < x.size(); ++i) compare(fd_at(&x[i]), dx[i], "dx[" + std::to_string(i) + "]");
  for (int li = 0; li < nl; ++li) {
    LinearWeights* l = block_linears(b, li);
    if (!l->present()) continue;  // slots a fused linear or a MoE layer leaves empty
    std::uniform_int_distribution<int64_t> pick(0, l->out * l->in - 1);
    for (int k = 0; k < 24; ++k) {
      const int64_t e = pick(rng);
      compare(fd_at(l->w.as<float>() + e), dw[size_t(li)][size_t(e)],
              "linear " + std::to_string(li) + " [" + std::to_string(e) + "]");
    }
  }
  const double rel = std::sqrt(err2 / ref2);
  std::printf("  [%s] gradient vs finite differences: relative norm %.2e\n", GetParam().name, rel);
  EXPECT_LT(rel, 5e-4) << "relative norm of the gradient error";  // measured ~5e-5
}

INSTANTIATE_TEST_SUITE_P(Tiny, BlockGradFd,
                         ::testing::Values(Variant{"gqa", 4, 2, false, false}, Variant{"mha", 2, 2, false, false},
                                           Variant{"qk_norm", 4, 2, true, false}, Variant{"qkv_bias", 4, 1, false, true},
                                           Variant{"qk_norm_bias", 4, 2, true, true},
                                           Variant{"all_bias", 4, 2, false, true, true},
                                           Variant{"window", 4, 2, false, false, false, Family::Llama, 3},
                                           Variant{"softcap", 4, 2, false, false, false, Family::Llama, 0, 2.f},
                                           Variant{"gemma3", 4, 2, true, false, false, Family::Gemma3, 3},
                                           Variant{"phi3", 4, 2, false, false, false, Family::Phi3, 4},
                                           Variant{"moe", 4, 2, true, false, false, Family::Moe},
                                           Variant{"moe_unnormalized", 4, 2, false, false, false, Family::MoeUnnormalized}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(BlockGrad, WeightGradientsAccumulateAndIgnoreDx) {
  const ModelConfig c = tiny_config(Variant{"gqa", 4, 2, true, false});
  const int64_t T = 5, C = c.hidden_size;
  std::mt19937 rng(7);
  BlockWeights b = random_block(c, rng);
  const RopeTables rope = make_rope_tables(c, T);
  std::vector<float> x(static_cast<size_t>(T * C)), G(x.size()), y(x.size()), dx(x.size());
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& e : x) e = nd(rng);
  for (auto& e : G) e = nd(rng);
  BlockLinearWeights w(kDenseLinears);
  for (int i = 0; i < kDenseLinears; ++i) w[i] = block_linears(b, i)->w.as<float>();
  BlockGradScratch s(c, T);
  const int64_t n_down = c.hidden_size * c.intermediate_size;
  std::vector<float> once(static_cast<size_t>(n_down), 0.f), twice(static_cast<size_t>(n_down), 0.f);
  BlockLinearGrads g1(kDenseLinears, nullptr), g2(kDenseLinears, nullptr);
  g1[6] = once.data();
  g2[6] = twice.data();
  // The backward consumes the saved activations (its gradients overwrite them): a forward each.
  block_forward_train(y.data(), s, x.data(), b, w, c, rope, Precision::F32);
  block_backward(dx.data(), g1, s, G.data(), x.data(), b, w, c, rope, Precision::F32);
  for (int k = 0; k < 2; ++k) {
    block_forward_train(y.data(), s, x.data(), b, w, c, rope, Precision::F32);
    block_backward(nullptr, g2, s, G.data(), x.data(), b, w, c, rope, Precision::F32);
  }
  for (int64_t i = 0; i < n_down; ++i) EXPECT_FLOAT_EQ(twice[size_t(i)], 2.f * once[size_t(i)]) << i;
}

// DenseGrads::Overwrite writes the dense linears' gradients over whatever their buffers held (NaN
// here): the bits of adding into zeros. Fused parts (Phi3) included; an MoE block's experts are
// still added to (their buffers start at 1 and end at 1 + the gradient), for f32 and bf16 products.
TEST(BlockGrad, OverwritingDenseGradientsGivesTheBitsOfAddingToZeros) {
  SingleThread one;
  for (const Variant& v : {Variant{"llama", 4, 2, false, false}, Variant{"phi3", 4, 4, false, false, false, Family::Phi3},
                           Variant{"moe", 4, 2, true, false, false, Family::Moe}})
    for (Precision p : {Precision::F32, Precision::BF16}) {
      const ModelConfig c = tiny_config(v);
      const int64_t T = 12;
      const RandomCase in = random_case(c, T, 29);
      const int nl = block_linear_count(in.b);
      BlockLinearWeights w(size_t(nl), nullptr);
      for (int i = 0; i < nl; ++i) w[size_t(i)] = block_linears(in.b, i)->w.as<float>();
      std::vector<std::vector<float>> add(static_cast<size_t>(nl)), over(static_cast<size_t>(nl));
      BlockLinearGrads ga(static_cast<size_t>(nl), nullptr), go(static_cast<size_t>(nl), nullptr);
      for (int i = 0; i < nl; ++i) {
        const LinearWeights* l = block_linears(in.b, i);
        if (!l->present()) continue;
        const bool expert = i >= kDenseLinears;
        add[size_t(i)].assign(size_t(l->out * l->in), expert ? 1.f : 0.f);
        over[size_t(i)].assign(size_t(l->out * l->in), expert ? 1.f : NAN);
        ga[i] = add[size_t(i)].data();
        go[i] = over[size_t(i)].data();
      }
      std::vector<float> y(in.x.size());
      BlockGradScratch s(c, T);
      block_forward_train(y.data(), s, in.x.data(), in.b, w, c, in.rope, p);
      block_backward(nullptr, ga, s, in.G.data(), in.x.data(), in.b, w, c, in.rope, p);
      block_forward_train(y.data(), s, in.x.data(), in.b, w, c, in.rope, p);
      block_backward(nullptr, go, s, in.G.data(), in.x.data(), in.b, w, c, in.rope, p, DenseGrads::Overwrite);
      for (int i = 0; i < nl; ++i) {
        if (!ga[i]) continue;
        const size_t n = add[size_t(i)].size();
        EXPECT_EQ(0, std::memcmp(add[size_t(i)].data(), over[size_t(i)].data(), n * sizeof(float)))
            << v.name << " linear " << i << " precision " << int(p);
        bool changed = false;
        for (float e : add[size_t(i)]) changed |= e != (i >= kDenseLinears ? 1.f : 0.f);
        EXPECT_TRUE(changed) << v.name << " linear " << i << ": no gradient reached it";
      }
    }
}

// DenseGrads::OverwriteBf16 writes each dense dL/dW' as bf16 bits over the first half of its buffer
// (the rest untouched): the f32 gradient of Overwrite rounded once, bit for bit, with the same dx.
// Fused parts (Phi3, at bf16 offsets), q/k norms with biases, Gemma3, and an MoE block (its experts
// added to in f32, as with Overwrite). Without native bf16 products it is refused.
TEST(BlockGrad, Bf16WeightGradientsAreTheF32OnesRounded) {
  for (const Variant& v : {Variant{"llama", 4, 2, false, false}, Variant{"phi3", 4, 4, false, false, false, Family::Phi3},
                           Variant{"qk_norm_bias", 4, 2, true, true},
                           Variant{"gemma3", 4, 2, true, false, false, Family::Gemma3, 4},
                           Variant{"moe", 4, 2, true, false, false, Family::Moe}}) {
    const ModelConfig c = tiny_config(v);
    const int64_t T = 24;
    const RandomCase in = random_case(c, T, 37);
    const int nl = block_linear_count(in.b);
    BlockLinearWeights w(static_cast<size_t>(nl), nullptr);
    for (int i = 0; i < nl; ++i) w[size_t(i)] = block_linears(in.b, i)->w.as<float>();
    std::vector<std::vector<float>> f32(static_cast<size_t>(nl)), b16(static_cast<size_t>(nl));
    BlockLinearGrads gf(static_cast<size_t>(nl), nullptr), gb(static_cast<size_t>(nl), nullptr);
    for (int i = 0; i < nl; ++i) {
      const LinearWeights* l = block_linears(in.b, i);
      if (!l->present()) continue;
      const bool expert = i >= kDenseLinears;
      f32[size_t(i)].assign(size_t(l->out * l->in), expert ? 1.f : NAN);
      b16[size_t(i)].assign(size_t(l->out * l->in), expert ? 1.f : -7.f);  // -7: marks the untouched half
      gf[i] = f32[size_t(i)].data();
      gb[i] = b16[size_t(i)].data();
    }
    std::vector<float> y(in.x.size()), dxf(in.x.size()), dxb(in.x.size());
    BlockGradScratch s(c, T);
    if (!native_bf16_products(Precision::BF16)) {
      block_forward_train(y.data(), s, in.x.data(), in.b, w, c, in.rope, Precision::BF16);
      EXPECT_THROW(block_backward(nullptr, gb, s, in.G.data(), in.x.data(), in.b, w, c, in.rope, Precision::BF16,
                                  DenseGrads::OverwriteBf16),
                   std::exception);
      GTEST_SKIP() << "no native bf16 products here: bf16 weight gradients are refused";
    }
    block_forward_train(y.data(), s, in.x.data(), in.b, w, c, in.rope, Precision::BF16);
    block_backward(dxf.data(), gf, s, in.G.data(), in.x.data(), in.b, w, c, in.rope, Precision::BF16,
                   DenseGrads::Overwrite);
    block_forward_train(y.data(), s, in.x.data(), in.b, w, c, in.rope, Precision::BF16);
    block_backward(dxb.data(), gb, s, in.G.data(), in.x.data(), in.b, w, c, in.rope, Precision::BF16,
                   DenseGrads::OverwriteBf16);
    EXPECT_EQ(dxf, dxb) << v.name;
    for (int i = 0; i < nl; ++i) {
      if (!gf[i]) continue;
      const size_t n = f32[size_t(i)].size();
      if (i >= kDenseLinears) {
        EXPECT_EQ(f32[size_t(i)], b16[size_t(i)]) << v.name << " expert linear " << i;
        continue;
      }
      const uint16_t* got = reinterpret_cast<const uint16_t*>(b16[size_t(i)].data());
      for (size_t j = 0; j < n; ++j)
        ASSERT_EQ(got[j], f32_to_bf16(f32[size_t(i)][j])) << v.name << " linear " << i << " at " << j;
      for (size_t j = (n + 1) / 2; j < n; ++j) ASSERT_EQ(b16[size_t(i)][j], -7.f) << v.name << " linear " << i;
    }
  }
}

// A weight source that hands out one linear at a time through a single buffer (as the tuner does)
// gives the same bits as the array of pointers, provided forward/backward never hold a pointer
// across the next request: the previous contents are poisoned with NaN on every switch. It also
// checks which linears each pass asks for (the header documents the order).
TEST(BlockGrad, OneAtATimeWeightSourceGivesSameBits) {
  SingleThread one;
  const ModelConfig c = tiny_config(Variant{"qk_norm_bias", 4, 2, true, true});
  const int64_t T = 6, C = c.hidden_size;
  std::mt19937 rng(11);
  BlockWeights b = random_block(c, rng);
  const RopeTables rope = make_rope_tables(c, T);
  std::vector<float> x(static_cast<size_t>(T * C)), G(x.size());
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& e : x) e = nd(rng);
  for (auto& e : G) e = nd(rng);
  BlockLinearWeights w(kDenseLinears);
  size_t biggest = 0;
  for (int i = 0; i < kDenseLinears; ++i) {
    w[i] = block_linears(b, i)->w.as<float>();
    biggest = std::max(biggest, block_linears(b, i)->w.size_bytes() / sizeof(float));
  }
  std::vector<float> one_buf(biggest);
  std::vector<int> asked;
  const LinearWeightSource source = [&](int i) {
    std::fill(one_buf.begin(), one_buf.end(), NAN);
    const LinearWeights* l = block_linears(b, i);
    std::copy_n(l->w.as<float>(), l->out * l->in, one_buf.data());
    asked.push_back(i);
    return static_cast<const float*>(one_buf.data());
  };
  for (bool want_dx : {true, false}) {
    std::vector<std::vector<float>> g_ref(kDenseLinears), g_src(kDenseLinears);
    BlockLinearGrads p_ref(kDenseLinears), p_src(kDenseLinears);
    for (int i = 0; i < kDenseLinears; ++i) {
      const size_t n = block_linears(b, i)->w.size_bytes() / sizeof(float);
      g_ref[size_t(i)].assign(n, 0.f);
      g_src[size_t(i)].assign(n, 0.f);
      p_ref[i] = g_ref[size_t(i)].data();
      p_src[i] = g_src[size_t(i)].data();
    }
    std::vector<float> y_ref(x.size()), y_src(x.size()), dx_ref(x.size()), dx_src(x.size());
    BlockGradScratch s(c, T);
    block_forward_train(y_ref.data(), s, x.data(), b, w, c, rope, Precision::F32);
    block_backward(want_dx ? dx_ref.data() : nullptr, p_ref, s, G.data(), x.data(), b, w, c, rope, Precision::F32);
    asked.clear();
    block_forward_train(y_src.data(), s, x.data(), b, source, c, rope, Precision::F32);
    EXPECT_EQ(asked, (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
    asked.clear();
    block_backward(want_dx ? dx_src.data() : nullptr, p_src, s, G.data(), x.data(), b, source, c, rope,
                   Precision::F32);
    const std::vector<int> backward_order =
        want_dx ? std::vector<int>{6, 4, 5, 3, 0, 1, 2} : std::vector<int>{6, 4, 5, 3};
    EXPECT_EQ(asked, backward_order);
    EXPECT_EQ(0, std::memcmp(y_ref.data(), y_src.data(), y_ref.size() * sizeof(float)));
    if (want_dx) {
      EXPECT_EQ(0, std::memcmp(dx_ref.data(), dx_src.data(), dx_ref.size() * sizeof(float)));
    }
    for (int i = 0; i < kDenseLinears; ++i)
      EXPECT_EQ(0, std::memcmp(g_ref[size_t(i)].data(), g_src[size_t(i)].data(), g_ref[size_t(i)].size() * sizeof(float)))
          << "linear " << i;
  }
}

// A source handing out bf16 W' (what a tuner does when the products run in bf16 on native bf16
// hardware) gives the bits of the same weights' values as f32 in BF16 products: the products round
// f32 to those bits anyway. Also for the fused linears (Phi3), whose parts are offsets into one W'.
TEST(BlockGrad, Bf16WeightViewsGiveTheBitsOfTheirF32Values) {
  for (const Variant& v : {Variant{"qk_norm_bias", 4, 2, true, true},
                           Variant{"phi3", 4, 2, false, false, false, Family::Phi3, 4}}) {
    const ModelConfig c = tiny_config(v);
    const int64_t T = 6;
    const RandomCase rc = random_case(c, T, 17);
    const BlockWeights& b = rc.b;
    const RopeTables& rope = rc.rope;
    const std::vector<float>&x = rc.x, &G = rc.G;
    std::vector<std::vector<float>> wf(kDenseLinears);
    std::vector<std::vector<uint16_t>> wb(kDenseLinears);
    for (int i = 0; i < kDenseLinears; ++i) {
      const LinearWeights* l = block_linears(b, i);
      if (!l->present()) continue;
      const float* src = l->w.as<float>();
      for (int64_t k = 0; k < l->out * l->in; ++k) {
        wb[size_t(i)].push_back(f32_to_bf16(src[k]));
        wf[size_t(i)].push_back(bf16_to_f32(wb[size_t(i)].back()));
      }
    }
    const LinearWeightSource as_f32 = [&](int i) { return WeightView(wf[size_t(i)].data()); };
    const LinearWeightSource as_bf16 = [&](int i) { return WeightView(wb[size_t(i)].data()); };
    std::vector<std::vector<float>> y(2, std::vector<float>(x.size())), dx(y);
    std::vector<std::vector<std::vector<float>>> g(2, std::vector<std::vector<float>>(kDenseLinears));
    for (int run = 0; run < 2; ++run) {
      BlockLinearGrads dw(kDenseLinears, nullptr);
      for (int i = 0; i < kDenseLinears; ++i) {
        g[size_t(run)][size_t(i)].assign(wf[size_t(i)].size(), 0.f);
        if (!wf[size_t(i)].empty()) dw[i] = g[size_t(run)][size_t(i)].data();
      }
      BlockGradScratch s(c, T);
      const LinearWeightSource& src = run == 0 ? as_f32 : as_bf16;
      block_forward_train(y[size_t(run)].data(), s, x.data(), b, src, c, rope, Precision::BF16);
      block_backward(dx[size_t(run)].data(), dw, s, G.data(), x.data(), b, src, c, rope, Precision::BF16);
    }
    EXPECT_EQ(y[0], y[1]) << v.name;
    EXPECT_EQ(dx[0], dx[1]) << v.name;
    for (int i = 0; i < kDenseLinears; ++i) EXPECT_EQ(g[0][size_t(i)], g[1][size_t(i)]) << v.name << " linear " << i;
  }
}

// The MLP activations with bf16 outputs are the f32 ones rounded, bit for bit, for SiLU and GELU:
// the forward into its own buffer, the backward over gate's and up's storage, at sizes below one
// chunk (16384), over a few chunks, and over several of the in-place ranges [m, 2m).
TEST(MlpActBf16, GivesTheRoundedF32ResultsAlsoInPlace) {
  for (Activation act : {Activation::SiLU, Activation::GeluTanh}) {
    ModelConfig c;
    c.hidden_act = act;
    for (int64_t n : {int64_t(5), int64_t(16384), int64_t(3 * 16384 + 7), int64_t((1 << 18) + 123)}) {
      std::mt19937 rng(static_cast<uint32_t>(n));
      std::normal_distribution<float> nd(0.f, 2.f);
      std::vector<float> gate(static_cast<size_t>(n)), up(gate.size()), dout(gate.size());
      for (auto* v : {&gate, &up, &dout})
        for (float& e : *v) e = nd(rng);
      std::vector<float> act32(gate.size()), dg(gate.size()), du(gate.size());
      mlp_act_forward(act32.data(), gate.data(), up.data(), n, c);
      mlp_act_backward(dg.data(), du.data(), dout.data(), gate.data(), up.data(), n, c);
      std::vector<uint16_t> act16(gate.size());
      mlp_act_forward_bf16(act16.data(), gate.data(), up.data(), n, c);
      auto g2 = gate, u2 = up;
      mlp_act_backward_bf16_in_place(g2.data(), u2.data(), dout.data(), n, c);
      const uint16_t* dg16 = reinterpret_cast<const uint16_t*>(g2.data());
      const uint16_t* du16 = reinterpret_cast<const uint16_t*>(u2.data());
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(act16[size_t(i)], f32_to_bf16(act32[size_t(i)])) << "n=" << n << " i=" << i;
        ASSERT_EQ(dg16[i], f32_to_bf16(dg[size_t(i)])) << "d gate, n=" << n << " i=" << i;
        ASSERT_EQ(du16[i], f32_to_bf16(du[size_t(i)])) << "d up, n=" << n << " i=" << i;
      }
    }
  }
}

// The block with the linears' inputs and the MLP's and q/k/v's gradients kept as bf16 (native bf16
// products) against the same block with them in f32: the products see the same bf16 values, so the
// results agree to f32 summation order (the bf16 operands are read in place, with their own
// strides). Turning it off (as the tuner does while it collects an importance matrix) leaves them
// in f32. Llama, biases, Gemma3 (GELU, sandwich norms, q/k norms), and MoE (xn2 stays f32 for the
// experts).
TEST(BlockGrad, Bf16ActivationsGiveTheValuesOfF32Ones) {
  if (!gemm_has_native_bf16()) GTEST_SKIP() << "no native bf16 products here: activations stay f32";
  for (const Variant& v : {Variant{"llama", 4, 2, false, false}, Variant{"mlp_bias", 4, 2, false, true, true},
                           Variant{"gemma3", 4, 2, true, false, false, Family::Gemma3, 4},
                           Variant{"moe", 4, 2, true, false, false, Family::Moe}}) {
    const ModelConfig c = tiny_config(v);
    const int64_t T = 40;
    const RandomCase in = random_case(c, T, 23);
    const int nl = block_linear_count(in.b);  // with an MoE block's experts
    BlockLinearWeights w(size_t(nl), nullptr);
    for (int i = 0; i < nl; ++i) w[size_t(i)] = block_linears(in.b, i)->w.as<float>();
    std::vector<std::vector<float>> y(2, std::vector<float>(in.x.size())), dx(y);
    std::vector<std::vector<std::vector<float>>> g(2, std::vector<std::vector<float>>(size_t(nl)));
    for (int run = 0; run < 2; ++run) {
      BlockLinearGrads dw(size_t(nl), nullptr);
      for (int i = 0; i < nl; ++i) {
        const LinearWeights* l = block_linears(in.b, i);
        if (!l->present()) continue;
        g[size_t(run)][size_t(i)].assign(size_t(l->out * l->in), 0.f);
        dw[i] = g[size_t(run)][size_t(i)].data();
      }
      BlockGradScratch s(c, T);
      s.allow_bf16_activations = run == 1;
      block_forward_train(y[size_t(run)].data(), s, in.x.data(), in.b, w, c, in.rope, Precision::BF16);
      EXPECT_EQ(s.bf16_activations, run == 1) << v.name;
      block_backward(dx[size_t(run)].data(), dw, s, in.G.data(), in.x.data(), in.b, w, c, in.rope, Precision::BF16);
    }
    auto expect_close = [&](const std::vector<float>& want, const std::vector<float>& got, const std::string& what) {
      double scale = 0.0;
      for (float e : want) scale = std::max(scale, double(std::fabs(e)));
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_NEAR(got[i], want[i], 1e-5 * (scale + 1.0)) << v.name << " " << what << " at " << i;
      }
    };
    expect_close(y[0], y[1], "y");
    expect_close(dx[0], dx[1], "dx");
    for (int i = 0; i < nl; ++i) expect_close(g[0][size_t(i)], g[1][size_t(i)], "dW " + std::to_string(i));
  }
}

// The inference block with its dense weights rounded to bf16 once (DenseBf16Weights, the quantized
// path's pass) gives the bits of rounding them in every product; fused (Phi3) slots and an MoE
// block's experts (left f32) included.
TEST(BlockGrad, InferenceForwardWithBf16CopiesGivesTheSameBits) {
  if (!gemm_has_native_bf16()) GTEST_SKIP() << "no native bf16 products here: no copies are made";
  for (const Variant& v : {Variant{"qk_norm_bias", 4, 2, true, true},
                           Variant{"phi3", 4, 2, false, false, false, Family::Phi3, 4},
                           Variant{"moe", 4, 2, true, false, false, Family::Moe}}) {
    const ModelConfig c = tiny_config(v);
    const int64_t T = 6, C = c.hidden_size;
    std::mt19937 rng(23);
    const BlockWeights b = random_block(c, rng);
    const RopeTables rope = make_rope_tables(c, T);
    std::vector<float> x(static_cast<size_t>(T * C));
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& e : x) e = nd(rng);
    const DenseBf16Weights w16 = DenseBf16Weights::make(b, Precision::BF16);
    for (int i = 0; i < kDenseLinears; ++i)
      EXPECT_EQ(w16.get(i) != nullptr, block_linears(b, i)->present()) << v.name << " linear " << i;
    EXPECT_EQ(DenseBf16Weights::make(b, Precision::F32).get(0), nullptr);
    std::vector<float> y0 = x, y1 = x;
    BlockScratch s(c, T);
    block_forward(y0.data(), b, c, rope, s, Precision::BF16);
    block_forward(y1.data(), b, c, rope, s, Precision::BF16, {}, &w16);
    EXPECT_EQ(y0, y1) << v.name;
  }
}

// Several samples in one forward/backward (the tuner's chunks for small models) give what the
// samples give one at a time: outputs and dx per sample, weight gradients summed. RoPE positions
// restart and attention stays within each sample (a leak across samples would change y).
TEST(BlockGrad, SeveralSamplesAtOnceEqualOneAtATime) {
  SingleThread one;
  const ModelConfig c = tiny_config(Variant{"qk_norm_bias", 4, 2, true, true});
  const int64_t T = 5, C = c.hidden_size, n = 3, TC = T * C;
  std::mt19937 rng(23);
  BlockWeights b = random_block(c, rng);
  const RopeTables rope = make_rope_tables(c, T);
  std::vector<float> x(size_t(n * TC)), G(x.size());
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& e : x) e = nd(rng);
  for (auto& e : G) e = nd(rng);
  BlockLinearWeights w(kDenseLinears);
  for (int i = 0; i < kDenseLinears; ++i) w[i] = block_linears(b, i)->w.as<float>();
  auto grads = [&](std::vector<std::vector<float>>& store) {
    BlockLinearGrads g(kDenseLinears);
    store.resize(kDenseLinears);
    for (int i = 0; i < kDenseLinears; ++i) {
      store[size_t(i)].assign(block_linears(b, i)->w.size_bytes() / sizeof(float), 0.f);
      g[i] = store[size_t(i)].data();
    }
    return g;
  };
  std::vector<std::vector<float>> g_one, g_all;
  const BlockLinearGrads p_one = grads(g_one), p_all = grads(g_all);
  std::vector<float> y_one(x.size()), dx_one(x.size()), y_all(x.size()), dx_all(x.size());
  BlockGradScratch s1(c, T);
  for (int64_t j = 0; j < n; ++j) {
    block_forward_train(y_one.data() + j * TC, s1, x.data() + j * TC, b, w, c, rope, Precision::F32);
    block_backward(dx_one.data() + j * TC, p_one, s1, G.data() + j * TC, x.data() + j * TC, b, w, c, rope,
                   Precision::F32);
  }
  BlockGradScratch sn(c, T, 4);  // room for one more than used
  EXPECT_THROW(block_forward_train(y_all.data(), sn, x.data(), b, w, c, rope, Precision::F32, 5), std::exception);
  block_forward_train(y_all.data(), sn, x.data(), b, w, c, rope, Precision::F32, n);
  EXPECT_EQ(sn.seqs(), n);
  block_backward(dx_all.data(), p_all, sn, G.data(), x.data(), b, w, c, rope, Precision::F32);
  auto near = [](const std::vector<float>& a, const std::vector<float>& e, const char* what) {
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_NEAR(a[i], e[i], 1e-5 * (1 + std::fabs(e[i]))) << what << " [" << i << "]";
  };
  near(y_all, y_one, "y");
  near(dx_all, dx_one, "dx");
  for (int i = 0; i < kDenseLinears; ++i) near(g_all[size_t(i)], g_one[size_t(i)], "dW");
  // Samples really are independent: changing the last sample leaves the first one's output.
  std::vector<float> x2 = x, y2(x.size());
  for (int64_t k = 2 * TC; k < 3 * TC; ++k) x2[size_t(k)] += 0.5f;
  block_forward_train(y2.data(), sn, x2.data(), b, w, c, rope, Precision::F32, n);
  EXPECT_EQ(0, std::memcmp(y2.data(), y_all.data(), size_t(2 * TC) * sizeof(float)));
  EXPECT_NE(0, std::memcmp(y2.data() + 2 * TC, y_all.data() + 2 * TC, size_t(TC) * sizeof(float)));
}

// The scratch shares storage between phases; the views of one phase must not overlap, at any T
// (the views are 64-byte aligned, so odd T pads them).
TEST(BlockGrad, ScratchViewsAreAlignedAndPhasesDoNotOverlap) {
  const ModelConfig c = tiny_config(Variant{"qk_norm", 4, 2, true, false});
  for (int64_t T : {1, 7, 64})
    for (int64_t seqs : {1, 3}) {
      BlockGradScratch s(c, T, seqs);
      const int64_t R = T * seqs;  // rows of the row-wise views
      for (const float* p : {s.xn1, s.q, s.k, s.v, s.attn, s.h, s.xn2, s.gate, s.up, s.act, s.d_attn, s.dq, s.dk,
                             s.dv, s.d_xn1, s.att_scratch})
        EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << "T=" << T << " seqs=" << seqs;
      // gate/up and the attention-backward views share one slot; act (later d_h) has its own.
      EXPECT_EQ(s.gate, s.d_attn);
      EXPECT_GE(s.act, s.up + R * c.intermediate_size);
      EXPECT_GE(s.act, s.d_xn1 + R * c.hidden_size);
      EXPECT_GE(s.d_xn1, s.att_scratch + s.att_floats);
    }
}

}  // namespace
}  // namespace ar
