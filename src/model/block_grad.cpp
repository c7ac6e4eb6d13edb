// Decoder-layer forward with saved activations, and its backward, over the kernels in src/kernels
// (each checked against finite differences there). The chain follows block.cpp's forward step by
// step in reverse; residual branches add their gradients where the comments say so.
#include "model/block_grad.h"

#include "core/profile.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "core/profile.h"
#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/residual.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "model/block_specs.h"

namespace ar {

namespace {

// Floats of every view (each padded to a multiple of 16) and of the shared region's two slots.
// The region holds gate | up | act in the MLP phases; in the attention-backward phase d_attn, dq,
// dk, dv, att_scratch, d_xn1 are packed from its start while act's slot (d_h) stays live. The
// forward's att_scratch sits where the backward's does, before gate/up exist.
struct GradLayout {
  size_t t, tc, tq, tkv, tf, raw_q, raw_kv, rq, rk, att;
  size_t sw_t, sw_tc;  // sandwich norms' saved rows / (T, C) views, 0 without them
  size_t front;  // floats of the gate|up slot: room for both, or the attention-backward views
  size_t back;   // floats of act's slot: act, d act (T, F) or d_c / d_h (T, C)
};

// Row-wise views hold seqs·T rows; the attention scratch serves one sample at a time.
GradLayout grad_layout(const ModelConfig& c, int64_t T, int64_t seqs) {
  GradLayout l;
  l.t = size_t(T * seqs);
  l.tc = l.t * size_t(c.hidden_size);
  l.tq = l.t * size_t(c.num_attention_heads * c.head_dim);
  l.tkv = l.t * size_t(c.num_key_value_heads * c.head_dim);
  l.tf = l.t * size_t(c.intermediate_size);
  l.raw_q = c.qk_norm ? l.tq : 0;
  l.raw_kv = c.qk_norm ? l.tkv : 0;
  l.rq = c.qk_norm ? l.t * size_t(c.num_attention_heads) : 0;
  l.rk = c.qk_norm ? l.t * size_t(c.num_key_value_heads) : 0;
  const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  l.att = std::max(attention_scratch_floats(T, H, Hkv, D), attention_backward_scratch_floats(T, H, Hkv, D));
  l.sw_t = c.sandwich_norms ? l.t : 0;
  l.sw_tc = c.sandwich_norms ? l.tc : 0;
  // Every view starts on a 64-byte boundary, whatever T: the SIMD reductions in the kernels then
  // see the same alignment, hence sum in the same order, whichever view they are given.
  for (size_t* n : {&l.t, &l.tc, &l.tq, &l.tkv, &l.tf, &l.raw_q, &l.raw_kv, &l.rq, &l.rk, &l.att, &l.sw_t, &l.sw_tc})
    *n = (*n + 15) / 16 * 16;
  l.front = std::max(2 * l.tf, 2 * l.tq + 2 * l.tkv + l.att + l.tc);
  l.back = std::max(l.tf, l.tc);
  return l;
}

size_t total_floats(const GradLayout& l) {
  // Saved: rstd1, rstd2; xn1, h, xn2; q, attn; k, v; the pre-norm q/k and their rstd; the
  // sandwich norms' inputs, rstd and branch gradient. Shared region.
  return 2 * l.t + 3 * l.tc + 2 * l.tq + 2 * l.tkv + l.raw_q + l.raw_kv + l.rq + l.rk + 2 * l.sw_t + 3 * l.sw_tc +
         l.front + l.back;
}

const float* bias_of(const LinearWeights& l) { return l.has_bias() ? l.b.as<float>() : nullptr; }

}  // namespace

size_t BlockGradScratch::size_bytes(const ModelConfig& c, int64_t T, int64_t seqs) {
  return total_floats(grad_layout(c, T, seqs)) * sizeof(float) +
         (c.num_experts > 0 ? MoeTrainScratch::size_bytes(c, T * seqs) : 0);
}

BlockGradScratch::~BlockGradScratch() = default;
BlockGradScratch::BlockGradScratch(BlockGradScratch&&) noexcept = default;

BlockGradScratch::BlockGradScratch(const ModelConfig& c, int64_t T, int64_t seqs)
    : T_(T), cap_(seqs), buf_(total_floats(grad_layout(c, T, seqs)) * sizeof(float), "block grad scratch") {
  AR_CHECK(T > 0 && seqs > 0, "BlockGradScratch T=", T, " seqs=", seqs);
  if (c.num_experts > 0) moe = std::make_unique<MoeTrainScratch>(c, T * seqs);
  const GradLayout l = grad_layout(c, T, seqs);
  float* p = buf_.as<float>();
  auto take = [&p](size_t n) {
    float* r = n ? p : nullptr;
    p += n;
    return r;
  };
  rstd1 = take(l.t);
  xn1 = take(l.tc);
  q_raw = take(l.raw_q);
  k_raw = take(l.raw_kv);
  rstd_q = take(l.rq);
  rstd_k = take(l.rk);
  q = take(l.tq);
  k = take(l.tkv);
  v = take(l.tkv);
  attn = take(l.tq);
  h = take(l.tc);
  rstd2 = take(l.t);
  xn2 = take(l.tc);
  o_out = take(l.sw_tc);
  rstd_pa = take(l.sw_t);
  m_out = take(l.sw_tc);
  rstd_pf = take(l.sw_t);
  d_branch = take(l.sw_tc);
  float* front = take(l.front);
  act = take(l.back);
  p = front;  // the gate|up slot, cut two ways
  gate = take(l.tf);
  up = take(l.tf);
  p = front;
  d_attn = take(l.tq);
  dq = take(l.tq);
  dk = take(l.tkv);
  dv = take(l.tkv);
  att_scratch = take(l.att);
  att_floats = l.att;
  d_xn1 = take(l.tc);
}

void BlockGradScratch::set_seqs(int64_t n) {
  AR_CHECK(n >= 1 && n <= cap_, "BlockGradScratch: ", n, " samples, room for ", cap_);
  seqs_ = n;
}

namespace {
void check_shapes(const BlockGradScratch& s, const BlockWeights& b, const ModelConfig& c,
                  const RopeTables& rope) {
  const int64_t T = s.T(), C = c.hidden_size, D = c.head_dim;
  AR_CHECK(rope.T >= T && rope.half_D == D / 2, "rope tables for T=", rope.T, " used with T=", T);
  const int64_t HD = c.num_attention_heads * D, KD = c.num_key_value_heads * D;
  const bool moe = layer_is_moe(c, b.layer);
  AR_CHECK(b.q.in == C && b.o.in == HD && (moe ? b.experts.size() == size_t(3 * c.num_experts) : b.down.in == c.intermediate_size) &&
               (c.fused_qkv ? b.q.out == HD + 2 * KD && !b.k.present() : b.q.out == HD && b.k.out == KD) &&
               (moe || (c.fused_gate_up ? b.gate.out == 2 * c.intermediate_size && !b.up.present()
                                        : b.gate.out == c.intermediate_size)),
           "block weights do not match config");
  AR_CHECK(c.num_attention_heads % c.num_key_value_heads == 0, "H=", c.num_attention_heads, " Hkv=",
           c.num_key_value_heads);
}
// The experts' weights (moe.h reads them as f32): a source handing out bf16 W' does so for the
// dense linears only.
MoeWeightSource f32_source(const LinearWeightSource& w) {
  return [&w](int i) {
    const WeightView v = w(i);
    AR_CHECK(v.f32, "linear ", i, " given as bf16 to the MoE products, which take f32");
    return v.f32;
  };
}

// A saved (T, ·) activation as the products read it: its f32 values, or the bf16 bits kept over
// its storage (BlockGradScratch::bf16_activations).
MatrixView as_input(const float* buf, bool bf16) {
  return bf16 ? MatrixView(reinterpret_cast<const uint16_t*>(buf)) : MatrixView(buf);
}
uint16_t* bf16_over(float* buf) { return reinterpret_cast<uint16_t*>(buf); }

// Runs f as one scope of phase ph (core/profile.h).
template <typename F>
void profiled(Phase ph, F&& f) {
  PhaseScope scope(ph);
  f();
}

}  // namespace

void block_forward_train(float* y, BlockGradScratch& s, const float* x, const BlockWeights& b,
                         const LinearWeightSource& w, const ModelConfig& c, const RopeTables& rope,
                         Precision p, int64_t n, const MoeWeightMaker* experts) {
  check_shapes(s, b, c, rope);
  AR_CHECK(y != x, "block_forward_train: y aliases x");
  s.set_seqs(n);
  // T: rows of all n samples (the row-wise steps); S: one sample's (RoPE, attention).
  const int64_t S = s.T(), T = S * n, C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
  const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const float eps = float(c.rms_norm_eps);

  const BlockNorms nw(b, c);
  const FusedOffsets fo = fused_offsets(c);
  const int64_t window = layer_window(c, b.layer);
  const float scale = attention_scale(c), softcap = float(c.attn_logit_softcapping);
  const float *cos = rope.cos_for(c, b.layer), *sin = rope.sin_for(c, b.layer);

  // Attention half: h = x + [norm](o(attention(rope(norm(q)), rope(norm(k)), v))). The weight
  // source (which may make W' now) is called outside the GEMM scopes: it is fake quantization's
  // time. A fused qkv (Phi3) is one W' whose row ranges give q, k, v.
  const bool b16 = s.bf16_activations = s.allow_bf16_activations && native_bf16_products(p);
  profiled(Phase::Elementwise, [&] {
    if (b16) rms_norm_forward_bf16(bf16_over(s.xn1), s.rstd1, x, nw.input, T, C, eps);
    else rms_norm_forward(s.xn1, s.rstd1, x, nw.input, T, C, eps);
  });
  const MatrixView xn1 = as_input(s.xn1, b16);
  float* q_lin = c.qk_norm ? s.q_raw : s.q;
  float* k_lin = c.qk_norm ? s.k_raw : s.k;
  const WeightView wq = w(0);
  profiled(Phase::GemmQkvFwd, [&] { linear_forward(q_lin, xn1, wq, bias_of(b.q), T, C, H * D, p); });
  const WeightView wk = c.fused_qkv ? wq.offset(fo.k) : w(1);
  profiled(Phase::GemmQkvFwd, [&] { linear_forward(k_lin, xn1, wk, bias_of(b.k), T, C, Hkv * D, p); });
  const WeightView wv = c.fused_qkv ? wq.offset(fo.v) : w(2);
  profiled(Phase::GemmQkvFwd, [&] { linear_forward(s.v, xn1, wv, bias_of(b.v), T, C, Hkv * D, p); });
  if (c.qk_norm) {  // Qwen3, Gemma3: per-head RMSNorm before RoPE; the pre-norm values are kept for backward
    PhaseScope ps(Phase::Elementwise);
    rms_norm_forward(s.q, s.rstd_q, s.q_raw, nw.q, T * H, D, eps);
    rms_norm_forward(s.k, s.rstd_k, s.k_raw, nw.k, T * Hkv, D, eps);
  }
  for (int64_t j = 0; j < n; ++j) {  // positions restart with every sample
    float *q = s.q + j * S * H * D, *k = s.k + j * S * Hkv * D;
    profiled(Phase::Elementwise, [&] {
      rope_forward(q, cos, sin, S, H, D);
      rope_forward(k, cos, sin, S, Hkv, D);
    });
    PhaseScope ps(Phase::AttentionFwd);
    attention_forward(s.attn + j * S * H * D, s.att_scratch, s.att_floats, q, k, s.v + j * S * Hkv * D, S, H, Hkv,
                      D, scale, p, window, softcap);
  }
  const WeightView wo = w(3);
  float* o_out = c.sandwich_norms ? s.o_out : s.h;
  if (b16) profiled(Phase::Elementwise, [&] { f32_to_bf16_in_place(s.attn, size_t(T * H * D)); });
  profiled(Phase::GemmOFwd, [&] { linear_forward(o_out, as_input(s.attn, b16), wo, bias_of(b.o), T, H * D, C, p); });
  profiled(Phase::Elementwise, [&] {
    if (c.sandwich_norms) rms_norm_forward(s.h, s.rstd_pa, s.o_out, nw.post, T, C, eps);
    residual_add(s.h, x, T * C);
  });

  // MLP half: y = h + [norm](down(act(gate(norm(h))) * up(norm(h)))). gate/up now overwrite
  // att_scratch.
  const bool moe = layer_is_moe(c, b.layer);  // the experts read xn2 as f32
  profiled(Phase::Elementwise, [&] {
    if (b16 && !moe) rms_norm_forward_bf16(bf16_over(s.xn2), s.rstd2, s.h, nw.mlp_in(), T, C, eps);
    else rms_norm_forward(s.xn2, s.rstd2, s.h, nw.mlp_in(), T, C, eps);
  });
  const MatrixView xn2 = as_input(s.xn2, b16 && !moe);
  if (moe) {
    moe_forward_train(y, *s.moe, s.xn2, b, f32_source(w), c, T, p, experts);
    profiled(Phase::Elementwise, [&] { residual_add(y, s.h, T * C); });
    return;
  }
  const WeightView wg = w(4);
  profiled(Phase::GemmGateUpFwd, [&] { linear_forward(s.gate, xn2, wg, bias_of(b.gate), T, C, F, p); });
  const WeightView wu = c.fused_gate_up ? wg.offset(fo.up) : w(5);
  profiled(Phase::GemmGateUpFwd, [&] { linear_forward(s.up, xn2, wu, bias_of(b.up), T, C, F, p); });
  profiled(Phase::Elementwise, [&] {
    if (b16) mlp_act_forward_bf16(bf16_over(s.act), s.gate, s.up, T * F, c);
    else mlp_act_forward(s.act, s.gate, s.up, T * F, c);
  });
  const MatrixView act = as_input(s.act, b16);
  const WeightView wd = w(6);
  float* m_out = c.sandwich_norms ? s.m_out : y;
  profiled(Phase::GemmDownFwd, [&] { linear_forward(m_out, act, wd, bias_of(b.down), T, F, C, p); });
  profiled(Phase::Elementwise, [&] {
    if (c.sandwich_norms) rms_norm_forward(y, s.rstd_pf, s.m_out, nw.post_ffn, T, C, eps);
    residual_add(y, s.h, T * C);
  });
}

void block_forward_train(float* y, BlockGradScratch& s, const float* x, const BlockWeights& b,
                         const BlockLinearWeights& w, const ModelConfig& c, const RopeTables& rope,
                         Precision p, int64_t n) {
  block_forward_train(y, s, x, b, [&w](int i) { return WeightView(w[size_t(i)]); }, c, rope, p, n);
}

// Each gradient is written only once everything that occupied its storage has been read: the
// order of the calls below is part of the aliasing contract in block_grad.h. linear_backward's
// dW and dX are separate GEMMs, so splitting one call in two gives the same bits.
void block_backward(float* dx, const BlockLinearGrads& dw, BlockGradScratch& s, const float* dy,
                    const float* x, const BlockWeights& b, const LinearWeightSource& w,
                    const ModelConfig& c, const RopeTables& rope, Precision p, DenseGrads dense,
                    const MoeWeightMaker* experts) {
  check_shapes(s, b, c, rope);
  const bool add = dense == DenseGrads::Add;
  const int64_t n = s.seqs(), S = s.T(), T = S * n, C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
  const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const bool b16 = s.bf16_activations;  // as the forward left them

  const BlockNorms nw(b, c);
  const FusedOffsets fo = fused_offsets(c);
  const int64_t window = layer_window(c, b.layer);
  const float scale = attention_scale(c), softcap = float(c.attn_logit_softcapping);
  const float *cos = rope.cos_for(c, b.layer), *sin = rope.sin_for(c, b.layer);
  const bool grads16 = dense == DenseGrads::OverwriteBf16;
  AR_CHECK(!grads16 || native_bf16_products(p), "block_backward: bf16 weight gradients need native bf16 products");
  // A fused linear's gradient (Phi3) is one (out, in) matrix; each part's rows are a range of it,
  // from element `at` on (f32 or, with grads16, bf16 elements).
  struct Grad {
    float* base = nullptr;
    int64_t at = 0;
  };
  const Grad dw_q{dw[0]}, dw_o{dw[3]}, dw_gate{dw[4]}, dw_down{dw[6]};
  const Grad dw_k = c.fused_qkv ? Grad{dw[0], fo.k} : Grad{dw[1]};
  const Grad dw_v = c.fused_qkv ? Grad{dw[0], fo.v} : Grad{dw[2]};
  const Grad dw_up = c.fused_gate_up ? Grad{dw[4], fo.up} : Grad{dw[5]};
  // linear_backward without a bias: dx (if any) = dy·w, then dW (if any) [+]= dyᵀ·x, in bf16 with grads16.
  auto backward = [&](float* dxo, const Grad& g, MatrixView dyv, MatrixView xv, WeightView wv, int64_t K, int64_t N) {
    if (!grads16) {
      linear_backward(dxo, g.base ? g.base + g.at : nullptr, nullptr, dyv, xv, wv, T, K, N, p, add);
      return;
    }
    if (dxo) linear_input_grad(dxo, dyv, wv, T, K, N, /*accumulate=*/false, p);
    if (g.base) linear_weight_grad_bf16_out(reinterpret_cast<uint16_t*>(g.base) + g.at, dyv, xv, T, K, N, p);
  };

  // MLP half. y = h + [norm](down(act)): dL/dh gets dy directly (residual) plus the norm branch
  // below. As in the forward, W' is fetched outside the GEMM scopes.
  const float* d_m = dy;  // dL/d down's output
  float* d_h = s.act;    // dL/dh (T, C), over act's slot once the MLP's backward has read it
  if (layer_is_moe(c, b.layer)) {  // (no sandwich norms on MoE models)
    std::fill(d_h, d_h + T * C, 0.f);
    moe_backward(d_h, dw, *s.moe, dy, s.xn2, b, f32_source(w), c, T, p, experts);  // d xn2
    profiled(Phase::Elementwise, [&] {
      rms_norm_backward(d_h, nullptr, d_h, s.h, nw.mlp_in(), s.rstd2, T, C);
      residual_add(d_h, dy, T * C);  // residual: both branches
    });
  } else {
    if (c.sandwich_norms) {
      profiled(Phase::Elementwise,
               [&] { rms_norm_backward(s.d_branch, nullptr, dy, s.m_out, nw.post_ffn, s.rstd_pf, T, C); });
      d_m = s.d_branch;
    }
    const MatrixView act = as_input(s.act, b16);
    profiled(Phase::GemmDownBwd, [&] { backward(nullptr, dw_down, d_m, act, WeightView(), F, C); });
    float* d_act = s.act;  // act read last above
    const WeightView wd = w(6);
    profiled(Phase::GemmDownBwd, [&] { linear_backward(d_act, nullptr, nullptr, d_m, nullptr, wd, T, F, C, p); });
    profiled(Phase::Elementwise, [&] {  // d gate, d up
      if (b16) mlp_act_backward_bf16_in_place(s.gate, s.up, d_act, T * F, c);
      else mlp_act_backward(s.gate, s.up, d_act, s.gate, s.up, T * F, c);
    });
    const MatrixView d_gate = as_input(s.gate, b16), d_up = as_input(s.up, b16), xn2 = as_input(s.xn2, b16);
    float* d_c = d_h;  // d act is dead: d xn2 (T, C), then dL/dh
    const WeightView wg = w(4);
    profiled(Phase::GemmGateUpBwd, [&] { backward(d_c, dw_gate, d_gate, xn2, wg, C, F); });  // d xn2 (gate)
    profiled(Phase::GemmGateUpBwd, [&] { backward(nullptr, dw_up, d_up, xn2, WeightView(), C, F); });
    const WeightView wu = c.fused_gate_up ? wg.offset(fo.up) : w(5);
    profiled(Phase::GemmGateUpBwd, [&] { linear_input_grad(d_c, d_up, wu, T, C, F, /*accumulate=*/true, p); });  // + d xn2 (up)
    profiled(Phase::Elementwise, [&] {
      rms_norm_backward(d_c, nullptr, d_c, s.h, nw.mlp_in(), s.rstd2, T, C);
      residual_add(d_h, dy, T * C);  // residual: both branches
    });
  }

  // Attention half (gate/up are dead: its temporaries live there). h = x + [norm](o(attn)): dL/dx
  // gets d_h directly plus the input-norm branch.
  const float* d_o = d_h;  // dL/d o_proj's output
  if (c.sandwich_norms) {  // d_branch (d_m) is dead
    profiled(Phase::Elementwise,
             [&] { rms_norm_backward(s.d_branch, nullptr, d_h, s.o_out, nw.post, s.rstd_pa, T, C); });
    d_o = s.d_branch;
  }
  const WeightView wo = w(3);
  profiled(Phase::GemmOBwd,
           [&] { backward(s.d_attn, dw_o, d_o, as_input(s.attn, b16), wo, H * D, C); });
  for (int64_t j = 0; j < n; ++j) {
    const int64_t oq = j * S * H * D, okv = j * S * Hkv * D;
    profiled(Phase::AttentionBwd, [&] {
      attention_backward(s.dq + oq, s.dk + okv, s.dv + okv, s.att_scratch, s.att_floats, s.d_attn + oq, s.q + oq,
                         s.k + okv, s.v + okv, S, H, Hkv, D, scale, p, window, softcap);
    });
    PhaseScope ps(Phase::Elementwise);
    rope_backward(s.dq + oq, cos, sin, S, H, D);
    rope_backward(s.dk + okv, cos, sin, S, Hkv, D);
  }
  if (c.qk_norm) {
    PhaseScope ps(Phase::Elementwise);
    rms_norm_backward(s.dq, nullptr, s.dq, s.q_raw, nw.q, s.rstd_q, T * H, D);
    rms_norm_backward(s.dk, nullptr, s.dk, s.k_raw, nw.k, s.rstd_k, T * Hkv, D);
  }
  // dq, dk, dv feed only bf16 products from here (two each when dx is wanted): converted once.
  const bool dqkv16 = b16 && dx;
  if (dqkv16) {
    PhaseScope ps(Phase::Elementwise);
    f32_to_bf16_in_place(s.dq, size_t(T * H * D));
    f32_to_bf16_in_place(s.dk, size_t(T * Hkv * D));
    f32_to_bf16_in_place(s.dv, size_t(T * Hkv * D));
  }
  const MatrixView dq = as_input(s.dq, dqkv16), dk = as_input(s.dk, dqkv16), dv = as_input(s.dv, dqkv16);
  const MatrixView xn1 = as_input(s.xn1, b16);
  // Weight gradients need only the projections' input; d xn1 only when dx is wanted.
  const WeightView wq = dx ? w(0) : WeightView();
  profiled(Phase::GemmQkvBwd, [&] {
    backward(dx ? s.d_xn1 : nullptr, dw_q, dq, xn1, wq, C, H * D);
    backward(nullptr, dw_k, dk, xn1, WeightView(), C, Hkv * D);
    backward(nullptr, dw_v, dv, xn1, WeightView(), C, Hkv * D);
  });
  if (!dx) return;
  const WeightView wk = c.fused_qkv ? wq.offset(fo.k) : w(1);
  linear_input_grad(s.d_xn1, dk, wk, T, C, Hkv * D, /*accumulate=*/true, p);
  const WeightView wv = c.fused_qkv ? wq.offset(fo.v) : w(2);
  linear_input_grad(s.d_xn1, dv, wv, T, C, Hkv * D, /*accumulate=*/true, p);
  rms_norm_backward(s.d_xn1, nullptr, s.d_xn1, x, nw.input, s.rstd1, T, C);
  residual_sum(dx, d_h, s.d_xn1, T * C);  // residual: both branches
}

void block_backward(float* dx, const BlockLinearGrads& dw, BlockGradScratch& s, const float* dy,
                    const float* x, const BlockWeights& b, const BlockLinearWeights& w,
                    const ModelConfig& c, const RopeTables& rope, Precision p, DenseGrads dense) {
  block_backward(dx, dw, s, dy, x, b, [&w](int i) { return WeightView(w[size_t(i)]); }, c, rope, p, dense);
}

}  // namespace ar
