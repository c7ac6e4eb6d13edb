// Decoder-layer forward over the kernels in src/kernels; shapes are checked here once so the
// kernels can trust their arguments.
#include "model/block.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/residual.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "kernels/geglu.h"
#include "kernels/swiglu.h"
#include "model/block_specs.h"
#include "model/moe.h"

namespace ar {

RopeTables make_rope_tables(const ModelConfig& c, int64_t T) {
  RopeTables r;
  r.T = T;
  r.half_D = c.head_dim / 2;
  r.cos.resize(size_t(T * r.half_D));
  r.sin.resize(size_t(T * r.half_D));
  std::vector<float> inv = rope_inv_freq(c);
  rope_tables(r.cos.data(), r.sin.data(), inv.data(), 0, T, r.half_D);
  if (c.rope_local_theta > 0) {
    r.cos_local.resize(r.cos.size());
    r.sin_local.resize(r.sin.size());
    std::vector<float> inv_local = rope_inv_freq(c, /*local=*/true);
    rope_tables(r.cos_local.data(), r.sin_local.data(), inv_local.data(), 0, T, r.half_D);
  }
  return r;
}

const float* RopeTables::cos_for(const ModelConfig& c, int64_t layer) const {
  if (!layer_uses_local_rope(c, layer)) return cos.data();
  AR_CHECK(!cos_local.empty(), "rope tables made without the local tables this config needs");
  return cos_local.data();
}

const float* RopeTables::sin_for(const ModelConfig& c, int64_t layer) const {
  if (!layer_uses_local_rope(c, layer)) return sin.data();
  AR_CHECK(!sin_local.empty(), "rope tables made without the local tables this config needs");
  return sin_local.data();
}

BlockNorms::BlockNorms(const BlockWeights& b, const ModelConfig& c) {
  const Buffer* src[] = {&b.input_norm, &b.post_norm, &b.pre_ffn_norm, &b.post_ffn_norm, &b.q_norm, &b.k_norm};
  const float** dst[] = {&input, &post, &pre_ffn, &post_ffn, &q, &k};
  if (!c.norm_weight_offset) {
    for (size_t i = 0; i < std::size(src); ++i)
      *dst[i] = src[i]->size_bytes() ? src[i]->as<float>() : nullptr;
    return;
  }
  size_t n = 0;
  for (const Buffer* b_ : src) n += b_->size_bytes() / sizeof(float);
  store_.resize(n);
  float* p = store_.data();
  for (size_t i = 0; i < std::size(src); ++i) {
    const size_t m = src[i]->size_bytes() / sizeof(float);
    if (!m) continue;
    const float* w = src[i]->as<float>();
    for (size_t j = 0; j < m; ++j) p[j] = 1.0f + w[j];  // HF Gemma3RMSNorm: x_normed * (1 + w) in f32
    *dst[i] = p;
    p += m;
  }
}

FusedOffsets fused_offsets(const ModelConfig& c) {
  FusedOffsets f;
  const int64_t C = c.hidden_size;
  if (c.fused_qkv) {
    f.k = fused_rows(c, BlockPart::K).row0 * C;
    f.v = fused_rows(c, BlockPart::V).row0 * C;
  }
  if (c.fused_gate_up) f.up = fused_rows(c, BlockPart::Up).row0 * C;
  return f;
}

void mlp_act_forward(float* out, const float* gate, const float* up, int64_t n, const ModelConfig& c) {
  if (c.hidden_act == Activation::GeluTanh) geglu_tanh_forward(out, gate, up, n);
  else swiglu_forward(out, gate, up, n);
}

void mlp_act_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                      const ModelConfig& c) {
  if (c.hidden_act == Activation::GeluTanh) geglu_tanh_backward(dgate, dup, dout, gate, up, n);
  else swiglu_backward(dgate, dup, dout, gate, up, n);
}

namespace {
// Elements of one chunk of the bf16 MLP activations: computed in f32 into a per-thread buffer that
// stays in cache (64 KiB), then converted.
constexpr int64_t kActChunk = int64_t(kPackingRange);
}  // namespace

void mlp_act_forward_bf16(uint16_t* out16, const float* gate, const float* up, int64_t n, const ModelConfig& c) {
  const int64_t chunks = (n + kActChunk - 1) / kActChunk;
#pragma omp parallel for if (chunks > 1)
  for (int64_t ch = 0; ch < chunks; ++ch) {
    thread_local std::vector<float> tmp = std::vector<float>(size_t(kActChunk));
    const int64_t i0 = ch * kActChunk, len = std::min(kActChunk, n - i0);
    mlp_act_forward(tmp.data(), gate + i0, up + i0, len, c);
    f32_to_bf16(out16 + i0, tmp.data(), size_t(len));
  }
}

void mlp_act_backward_bf16_in_place(float* gate, float* up, const float* dout, int64_t n, const ModelConfig& c) {
  uint16_t* dgate16 = reinterpret_cast<uint16_t*>(gate);
  uint16_t* dup16 = reinterpret_cast<uint16_t*>(up);
  // Each range is read whole into the per-thread buffers, then written as bf16 over its own
  // buffers' storage, as for_each_packing_range asks.
  for_each_packing_range(size_t(n), [&](size_t i0, size_t len) {
    thread_local std::vector<float> dg = std::vector<float>(size_t(kActChunk)), du = dg;
    mlp_act_backward(dg.data(), du.data(), dout + i0, gate + i0, up + i0, int64_t(len), c);
    f32_to_bf16(dgate16 + i0, dg.data(), len);
    f32_to_bf16(dup16 + i0, du.data(), len);
  });
}

namespace {
struct ScratchLayout {
  size_t xn, q, kv, attn, proj, ffn, att;
  size_t total() const { return xn + q + 2 * kv + attn + proj + 2 * ffn + att; }
};
ScratchLayout layout(const ModelConfig& c, int64_t T) {
  const size_t t = size_t(T);
  ScratchLayout l;
  l.xn = t * c.hidden_size;
  l.q = t * c.num_attention_heads * c.head_dim;
  l.kv = t * c.num_key_value_heads * c.head_dim;
  l.attn = l.q;
  l.proj = t * c.hidden_size;
  l.ffn = t * c.intermediate_size;
  l.att = attention_scratch_floats(T, c.num_attention_heads, c.num_key_value_heads, c.head_dim);
  return l;
}
}  // namespace

size_t BlockScratch::size_bytes(const ModelConfig& c, int64_t T) {
  return layout(c, T).total() * sizeof(float) + (c.num_experts > 0 ? MoeScratch::size_bytes(c, T) : 0);
}

BlockScratch::~BlockScratch() = default;
BlockScratch::BlockScratch(BlockScratch&&) noexcept = default;
BlockScratch& BlockScratch::operator=(BlockScratch&&) noexcept = default;

BlockScratch::BlockScratch(const ModelConfig& c, int64_t T)
    : T_(T), buf_(layout(c, T).total() * sizeof(float), "block scratch") {
  if (c.num_experts > 0) moe = std::make_unique<MoeScratch>(c, T);
  ScratchLayout l = layout(c, T);
  float* p = buf_.as<float>();
  auto take = [&p](size_t n) {
    float* r = p;
    p += n;
    return r;
  };
  xn = take(l.xn);
  q = take(l.q);
  k = take(l.kv);
  v = take(l.kv);
  attn = take(l.attn);
  proj = take(l.proj);
  gate = take(l.ffn);
  up = take(l.ffn);
  att_scratch = take(l.att);
  att_floats = l.att;
}

DenseBf16Weights DenseBf16Weights::make(const BlockWeights& b, Precision p) {
  DenseBf16Weights d;
  if (!native_bf16_products(p)) return d;  // only those would round the weights
  for (int i = 0; i < kDenseLinears; ++i) {
    const LinearWeights& l = *block_linears(b, i);
    if (!l.present()) continue;
    d.w[size_t(i)].resize(size_t(l.out * l.in));
    f32_to_bf16(d.w[size_t(i)].data(), l.w.as<float>(), d.w[size_t(i)].size());
  }
  return d;
}

uint64_t DenseBf16Weights::bytes(const BlockWeights& b, Precision p) {
  uint64_t n = 0;
  if (!native_bf16_products(p)) return n;
  for (int i = 0; i < kDenseLinears; ++i) {
    const LinearWeights& l = *block_linears(b, i);
    if (l.present()) n += uint64_t(l.out) * uint64_t(l.in) * sizeof(uint16_t);
  }
  return n;
}

void block_forward(float* x, const BlockWeights& w, const ModelConfig& c, const RopeTables& rope,
                   BlockScratch& s, Precision p, const LinearInputObserver& observe, const DenseBf16Weights* w16) {
  const int64_t T = s.T(), C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
  const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const float eps = float(c.rms_norm_eps);
  AR_CHECK(rope.T >= T && rope.half_D == D / 2, "rope tables for T=", rope.T, " used with T=", T);
  const bool moe = layer_is_moe(c, w.layer);
  AR_CHECK(w.q.in == C && w.o.in == H * D && (moe ? !w.experts.empty() : w.down.in == F),
           "block weights do not match config");
  auto bias = [](const LinearWeights& l) { return l.has_bias() ? l.b.as<float>() : nullptr; };
  const BlockNorms nw(w, c);
  const FusedOffsets fo = fused_offsets(c);
  // Linear `slot`'s weight from element `off` on: its bf16 copy when the caller made one.
  auto weight = [&](int slot, int64_t off) -> WeightView {
    if (const uint16_t* h = w16 ? w16->get(slot) : nullptr) return WeightView(h + off);
    return block_linears(w, slot)->w.as<float>() + off;
  };
  // Fused (Phi3): k, v are row ranges of the Q slot's weight, up of the Gate slot's.
  const WeightView wk = c.fused_qkv ? weight(0, fo.k) : weight(1, 0);
  const WeightView wv = c.fused_qkv ? weight(0, fo.v) : weight(2, 0);
  const WeightView wu = c.fused_gate_up ? weight(4, fo.up) : w.up.present() ? weight(5, 0) : WeightView();

  // Attention half.
  rms_norm_forward(s.xn, nullptr, x, nw.input, T, C, eps);
  if (observe)
    for (int i : {0, 1, 2})
      if (block_linears(w, i)->present()) observe(i, s.xn, T, C);
  linear_forward(s.q, s.xn, weight(0, 0), bias(w.q), T, C, H * D, p);
  linear_forward(s.k, s.xn, wk, bias(w.k), T, C, Hkv * D, p);
  linear_forward(s.v, s.xn, wv, bias(w.v), T, C, Hkv * D, p);
  if (c.qk_norm) {  // Qwen3, Gemma3: RMSNorm over each head's D values, before RoPE
    rms_norm_forward(s.q, nullptr, s.q, nw.q, T * H, D, eps);
    rms_norm_forward(s.k, nullptr, s.k, nw.k, T * Hkv, D, eps);
  }
  const float *cos = rope.cos_for(c, w.layer), *sin = rope.sin_for(c, w.layer);
  rope_forward(s.q, cos, sin, T, H, D);
  rope_forward(s.k, cos, sin, T, Hkv, D);
  attention_forward(s.attn, s.att_scratch, s.att_floats, s.q, s.k, s.v, T, H, Hkv, D, attention_scale(c), p,
                    layer_window(c, w.layer), float(c.attn_logit_softcapping));
  if (observe) observe(3, s.attn, T, H * D);
  linear_forward(s.proj, s.attn, weight(3, 0), bias(w.o), T, H * D, C, p);
  if (c.sandwich_norms) rms_norm_forward(s.proj, nullptr, s.proj, nw.post, T, C, eps);
  residual_add(x, s.proj, T * C);

  // MLP half.
  rms_norm_forward(s.xn, nullptr, x, nw.mlp_in(), T, C, eps);
  if (moe) {
    moe_forward(s.proj, s.xn, w, c, T, *s.moe, p, observe);
    residual_add(x, s.proj, T * C);
    return;
  }
  if (observe)
    for (int i : {4, 5})
      if (block_linears(w, i)->present()) observe(i, s.xn, T, C);
  linear_forward(s.gate, s.xn, weight(4, 0), bias(w.gate), T, C, F, p);
  AR_CHECK(wu, "block ", w.layer, ": a dense MLP without an up projection");
  linear_forward(s.up, s.xn, wu, bias(w.up), T, C, F, p);
  mlp_act_forward(s.gate, s.gate, s.up, T * F, c);
  if (observe) observe(6, s.gate, T, F);
  linear_forward(s.proj, s.gate, weight(6, 0), bias(w.down), T, F, C, p);
  if (c.sandwich_norms) rms_norm_forward(s.proj, nullptr, s.proj, nw.post_ffn, T, C, eps);
  residual_add(x, s.proj, T * C);
}

}  // namespace ar
