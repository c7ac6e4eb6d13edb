// Decoder-layer forward over the kernels in src/kernels; shapes are checked here once so the
// kernels can trust their arguments.
#include "model/block.h"

#include <cmath>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/linear.h"
#include "kernels/residual.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace ar {

RopeTables make_rope_tables(const ModelConfig& c, int64_t T) {
  RopeTables r;
  r.T = T;
  r.half_D = c.head_dim / 2;
  r.cos.resize(size_t(T * r.half_D));
  r.sin.resize(size_t(T * r.half_D));
  std::vector<float> inv = rope_inv_freq(c);
  rope_tables(r.cos.data(), r.sin.data(), inv.data(), 0, T, r.half_D);
  return r;
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
  l.att = attention_scratch_floats(T);
  return l;
}
}  // namespace

size_t BlockScratch::size_bytes(const ModelConfig& c, int64_t T) { return layout(c, T).total() * sizeof(float); }

BlockScratch::BlockScratch(const ModelConfig& c, int64_t T) : T_(T), buf_(size_bytes(c, T), "block scratch") {
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

void block_forward(float* x, const BlockWeights& w, const ModelConfig& c, const RopeTables& rope,
                   BlockScratch& s, Precision p, const LinearInputObserver& observe) {
  const int64_t T = s.T(), C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
  const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const float eps = float(c.rms_norm_eps);
  AR_CHECK(rope.T >= T && rope.half_D == D / 2, "rope tables for T=", rope.T, " used with T=", T);
  AR_CHECK(w.q.in == C && w.q.out == H * D && w.down.in == F, "block weights do not match config");
  auto bias = [](const LinearWeights& l) { return l.has_bias() ? l.b.as<float>() : nullptr; };

  // Attention half.
  rms_norm_forward(s.xn, nullptr, x, w.input_norm.as<float>(), T, C, eps);
  if (observe)
    for (int i : {0, 1, 2}) observe(i, s.xn, T, C);
  linear_forward(s.q, s.xn, w.q.w.as<float>(), bias(w.q), T, C, H * D, p);
  linear_forward(s.k, s.xn, w.k.w.as<float>(), bias(w.k), T, C, Hkv * D, p);
  linear_forward(s.v, s.xn, w.v.w.as<float>(), bias(w.v), T, C, Hkv * D, p);
  if (c.qk_norm) {  // Qwen3: RMSNorm over each head's D values, before RoPE
    rms_norm_forward(s.q, nullptr, s.q, w.q_norm.as<float>(), T * H, D, eps);
    rms_norm_forward(s.k, nullptr, s.k, w.k_norm.as<float>(), T * Hkv, D, eps);
  }
  rope_forward(s.q, rope.cos.data(), rope.sin.data(), T, H, D);
  rope_forward(s.k, rope.cos.data(), rope.sin.data(), T, Hkv, D);
  attention_forward(s.attn, s.att_scratch, s.att_floats, s.q, s.k, s.v, T, H, Hkv, D, 1.0f / std::sqrt(float(D)), p);
  if (observe) observe(3, s.attn, T, H * D);
  linear_forward(s.proj, s.attn, w.o.w.as<float>(), bias(w.o), T, H * D, C, p);
  residual_add(x, s.proj, T * C);

  // MLP half.
  rms_norm_forward(s.xn, nullptr, x, w.post_norm.as<float>(), T, C, eps);
  if (observe)
    for (int i : {4, 5}) observe(i, s.xn, T, C);
  linear_forward(s.gate, s.xn, w.gate.w.as<float>(), bias(w.gate), T, C, F, p);
  linear_forward(s.up, s.xn, w.up.w.as<float>(), bias(w.up), T, C, F, p);
  swiglu_forward(s.gate, s.gate, s.up, T * F);
  if (observe) observe(6, s.gate, T, F);
  linear_forward(s.proj, s.gate, w.down.w.as<float>(), bias(w.down), T, F, C, p);
  residual_add(x, s.proj, T * C);
}

}  // namespace ar
