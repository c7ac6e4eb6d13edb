// Mixture-of-experts MLP forward/backward (see moe.h). Routing is a per-row loop (E is small);
// the experts' work is gathered GEMMs through linear_forward / linear_backward / gemm.
#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "model/block_specs.h"

namespace ar {

namespace {

// Floats of each view, rounded up to 16 (64-byte aligned starts, as block_grad.cpp does).
size_t pad(size_t n) { return (n + 15) / 16 * 16; }

int gate_index(int64_t e) { return kDenseLinears + 3 * int(e); }

// x (n, C) = the rows of xn (R, C) that `slots` (n of them, slot = row * k + j) name.
void gather_routed(float* x, const float* xn, const int64_t* slots, int64_t n, int64_t k, int64_t C) {
  for (int64_t i = 0; i < n; ++i) std::memcpy(x + i * C, xn + (slots[i] / k) * C, size_t(C) * sizeof(float));
}

// out[row of slot i] += weight[slot i] · y[i] for the n rows of one expert's output y (n, C).
void add_routed(float* out, const float* y, const int64_t* slots, const float* weight, int64_t n, int64_t k,
                int64_t C) {
  for (int64_t i = 0; i < n; ++i) {
    const float wt = weight[slots[i]];
    float* o = out + (slots[i] / k) * C;
    const float* yr = y + i * C;
    for (int64_t j = 0; j < C; ++j) o[j] += wt * yr[j];
  }
}

}  // namespace

void moe_route(MoeRouting& r, const float* xn, const float* router, int64_t rows, const ModelConfig& c, float* logits) {
  const int64_t E = c.num_experts, k = c.num_experts_per_tok, C = c.hidden_size;
  AR_CHECK(E > 0 && k > 0 && k <= E, "moe_route: E=", E, " k=", k);
  r.rows = rows;
  r.E = E;
  r.k = k;
  r.prob.resize(size_t(rows * E));
  r.expert.resize(size_t(rows * k));
  r.weight.resize(size_t(rows * k));
  // The router is kept at its stored precision: f32 products, whatever the blocks' precision.
  linear_forward(logits, xn, router, nullptr, rows, C, E, Precision::F32);
#pragma omp parallel if (rows * E >= 4096)
  {
    std::vector<int32_t> order(static_cast<size_t>(E));  // one per thread, not per row
#pragma omp for schedule(static)
    for (int64_t t = 0; t < rows; ++t) {
      const float* l = logits + t * E;
      float* p = r.prob.data() + t * E;
      const float m = *std::max_element(l, l + E);
      float s = 0;
      for (int64_t e = 0; e < E; ++e) s += (p[e] = std::exp(l[e] - m));
      for (int64_t e = 0; e < E; ++e) p[e] /= s;
      // Top k by probability; equal probabilities go to the lower index.
      int32_t* ex = r.expert.data() + t * k;
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [p](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
      float sum = 0;
      for (int64_t j = 0; j < k; ++j) sum += p[order[size_t(j)]];
      for (int64_t j = 0; j < k; ++j) {
        ex[j] = order[size_t(j)];
        r.weight[size_t(t * k + j)] = c.norm_topk_prob ? p[ex[j]] / sum : p[ex[j]];
      }
    }
  }
  // Group the (row, j) slots by expert, rows ascending (a counting sort).
  r.offset.assign(size_t(E + 1), 0);
  for (int64_t i = 0; i < rows * k; ++i) ++r.offset[size_t(r.expert[size_t(i)] + 1)];
  for (int64_t e = 0; e < E; ++e) r.offset[size_t(e + 1)] += r.offset[size_t(e)];
  r.slot.resize(size_t(rows * k));
  std::vector<int64_t> fill(r.offset.begin(), r.offset.end() - 1);
  for (int64_t i = 0; i < rows * k; ++i) r.slot[size_t(fill[size_t(r.expert[size_t(i)])]++)] = i;
}

// ---------------------------------------------------------------- inference

size_t MoeScratch::size_bytes(const ModelConfig& c, int64_t rows) {
  const size_t R = size_t(rows), E = size_t(c.num_experts), C = size_t(c.hidden_size),
               F = size_t(c.moe_intermediate_size);
  return (pad(R * E) + 2 * pad(R * C) + 2 * pad(R * F)) * sizeof(float);
}

MoeScratch::MoeScratch(const ModelConfig& c, int64_t rows) : rows_(rows), buf_(size_bytes(c, rows), "moe scratch") {
  const size_t R = size_t(rows), E = size_t(c.num_experts), C = size_t(c.hidden_size),
               F = size_t(c.moe_intermediate_size);
  float* p = buf_.as<float>();
  auto take = [&p](size_t n) {
    float* v = p;
    p += pad(n);
    return v;
  };
  logits = take(R * E);
  x = take(R * C);
  y = take(R * C);
  gate = take(R * F);
  up = take(R * F);
}

void moe_forward(float* out, const float* xn, const BlockWeights& w, const ModelConfig& c, int64_t rows,
                 MoeScratch& s, Precision p, const LinearInputObserver& observe) {
  const int64_t C = c.hidden_size, F = c.moe_intermediate_size, k = c.num_experts_per_tok;
  AR_CHECK(rows <= s.rows(), "moe_forward: ", rows, " rows, scratch for ", s.rows());
  AR_CHECK(w.experts.size() == size_t(3 * c.num_experts) && w.router.w.size_bytes() != 0,
           "moe_forward: block ", w.layer, " has no experts");
  MoeRouting& r = s.routing;
  moe_route(r, xn, w.router.w.as<float>(), rows, c, s.logits);
  std::fill(out, out + rows * C, 0.f);
  for (int64_t e = 0; e < c.num_experts; ++e) {
    const int64_t n = r.count(e);
    if (n == 0) continue;
    const int64_t* slots = r.slot.data() + r.offset[size_t(e)];
    gather_routed(s.x, xn, slots, n, k, C);
    const int gi = gate_index(e);
    const LinearWeights &g = w.experts[size_t(3 * e)], &u = w.experts[size_t(3 * e + 1)],
                        &d = w.experts[size_t(3 * e + 2)];
    if (observe) {
      observe(gi, s.x, n, C);
      observe(gi + 1, s.x, n, C);
    }
    linear_forward(s.gate, s.x, g.w.as<float>(), nullptr, n, C, F, p);
    linear_forward(s.up, s.x, u.w.as<float>(), nullptr, n, C, F, p);
    mlp_act_forward(s.gate, s.gate, s.up, n * F, c);
    if (observe) observe(gi + 2, s.gate, n, F);
    linear_forward(s.y, s.gate, d.w.as<float>(), nullptr, n, F, C, p);
    add_routed(out, s.y, slots, r.weight.data(), n, k, C);
  }
}

// ---------------------------------------------------------------- training

size_t MoeTrainScratch::size_bytes(const ModelConfig& c, int64_t rows) {
  const size_t R = size_t(rows), K = size_t(c.num_experts_per_tok), E = size_t(c.num_experts),
               C = size_t(c.hidden_size), F = size_t(c.moe_intermediate_size);
  const size_t views = pad(R * E) + 3 * pad(R * K * F) + pad(R * K * C) + 2 * pad(R * C);
  // The routing vectors: prob (R, E), expert/weight/dweight (R, k), offset, slot.
  const size_t routing = R * E * 4 + R * K * (4 + 4 + 4 + 8) + (E + 1) * 8;
  return views * sizeof(float) + routing;
}

MoeTrainScratch::MoeTrainScratch(const ModelConfig& c, int64_t rows) {
  const size_t R = size_t(rows), K = size_t(c.num_experts_per_tok), E = size_t(c.num_experts),
               C = size_t(c.hidden_size), F = size_t(c.moe_intermediate_size);
  buf_ = Buffer((pad(R * E) + 3 * pad(R * K * F) + pad(R * K * C) + 2 * pad(R * C)) * sizeof(float),
                "moe train scratch");
  float* p = buf_.as<float>();
  auto take = [&p](size_t n) {
    float* v = p;
    p += pad(n);
    return v;
  };
  logits = take(R * E);
  gate = take(R * K * F);
  up = take(R * K * F);
  act = take(R * K * F);
  y = take(R * K * C);
  x = take(R * C);
  dx = take(R * C);
  routing.prob.reserve(R * E);
  routing.expert.reserve(R * K);
  routing.weight.reserve(R * K);
  routing.slot.reserve(R * K);
  dweight.reserve(R * K);
}

void moe_forward_train(float* out, MoeTrainScratch& s, const float* xn, const BlockWeights& b,
                       const MoeWeightSource& w, const ModelConfig& c, int64_t rows, Precision p) {
  const int64_t C = c.hidden_size, F = c.moe_intermediate_size, k = c.num_experts_per_tok;
  MoeRouting& r = s.routing;
  moe_route(r, xn, b.router.w.as<float>(), rows, c, s.logits);
  std::fill(out, out + rows * C, 0.f);
  s.routed.resize(size_t(c.num_experts), 0);
  for (int64_t e = 0; e < c.num_experts; ++e) {
    const int64_t n = r.count(e), o = r.offset[size_t(e)];
    s.routed[size_t(e)] += n;
    if (n == 0) continue;
    const int64_t* slots = r.slot.data() + o;
    gather_routed(s.x, xn, slots, n, k, C);
    const int gi = gate_index(e);
    float *g = s.gate + o * F, *u = s.up + o * F, *a = s.act + o * F, *y = s.y + o * C;
    const float* wg = w(gi);
    linear_forward(g, s.x, wg, nullptr, n, C, F, p);
    const float* wu = w(gi + 1);
    linear_forward(u, s.x, wu, nullptr, n, C, F, p);
    mlp_act_forward(a, g, u, n * F, c);
    const float* wd = w(gi + 2);
    linear_forward(y, a, wd, nullptr, n, F, C, p);
    add_routed(out, y, slots, r.weight.data(), n, k, C);
  }
}

void moe_backward(float* dxn, const std::vector<float*>& dw, MoeTrainScratch& s, const float* dout, const float* xn,
                  const BlockWeights& b, const MoeWeightSource& w, const ModelConfig& c, int64_t rows, Precision p) {
  const int64_t C = c.hidden_size, F = c.moe_intermediate_size, k = c.num_experts_per_tok, E = c.num_experts;
  MoeRouting& r = s.routing;
  AR_CHECK(r.rows == rows, "moe_backward: routing of ", r.rows, " rows, called with ", rows);
  s.dweight.assign(size_t(rows * k), 0.f);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t n = r.count(e), o = r.offset[size_t(e)];
    if (n == 0) continue;
    const int64_t* slots = r.slot.data() + o;
    float *g = s.gate + o * F, *u = s.up + o * F, *a = s.act + o * F, *y = s.y + o * C;
    // d y_i = w_i · dout[row]: built in s.dx (free until the input gradient below); dL/dw_i = dout[row] · y_i.
    for (int64_t i = 0; i < n; ++i) {
      const float* d = dout + (slots[i] / k) * C;
      const float* yr = y + i * C;
      const float wt = r.weight[size_t(slots[i])];
      float* dy = s.dx + i * C;
      double dot = 0;
      for (int64_t j = 0; j < C; ++j) {
        dy[j] = wt * d[j];
        dot += double(d[j]) * yr[j];
      }
      s.dweight[size_t(slots[i])] = float(dot);
    }
    const int gi = gate_index(e);
    // down: dW += dyᵀ·act; d act = dy·W (over act, which is read first).
    linear_backward(nullptr, dw[size_t(gi + 2)], nullptr, s.dx, a, nullptr, n, F, C, p);
    const float* wd = w(gi + 2);
    linear_backward(a, nullptr, nullptr, s.dx, nullptr, wd, n, F, C, p);
    mlp_act_backward(g, u, a, g, u, n * F, c);  // d gate, d up over gate, up
    gather_routed(s.x, xn, slots, n, k, C);
    const float* wg = w(gi);
    linear_backward(s.dx, dw[size_t(gi)], nullptr, g, s.x, wg, n, C, F, p);  // dx = d gate · Wg
    linear_backward(nullptr, dw[size_t(gi + 1)], nullptr, u, s.x, nullptr, n, C, F, p);
    const float* wu = w(gi + 1);
    gemm(s.dx, u, wu, n, C, F, false, false, /*accumulate=*/true, p);  // + d up · Wu
    for (int64_t i = 0; i < n; ++i) {
      float* d = dxn + (slots[i] / k) * C;
      const float* src = s.dx + i * C;
      for (int64_t j = 0; j < C; ++j) d[j] += src[j];
    }
  }
  // Through the weights to the router's softmax: w_j = p_j / S (S = Σ_j p_j over the chosen) when
  // renormalised, else p_j; the choice itself has no gradient. d logits = p ⊙ (dp − Σ p·dp).
  float* dlogits = s.logits;
#pragma omp parallel for schedule(static) if (rows * E >= 4096)
  for (int64_t t = 0; t < rows; ++t) {
    const float* pr = r.prob.data() + t * E;
    const int32_t* ex = r.expert.data() + t * k;
    const float* dwt = s.dweight.data() + t * k;
    const float* wt = r.weight.data() + t * k;
    float* dl = dlogits + t * E;
    std::fill(dl, dl + E, 0.f);
    double sum_p = 0, dot_w = 0;
    for (int64_t j = 0; j < k; ++j) {
      sum_p += pr[ex[j]];
      dot_w += double(dwt[j]) * wt[j];
    }
    for (int64_t j = 0; j < k; ++j) dl[ex[j]] = c.norm_topk_prob ? float((dwt[j] - dot_w) / sum_p) : dwt[j];  // dp
    double pdp = 0;
    for (int64_t j = 0; j < k; ++j) pdp += double(pr[ex[j]]) * dl[ex[j]];
    for (int64_t e = 0; e < E; ++e) dl[e] = float(pr[e] * (dl[e] - pdp));
  }
  gemm(dxn, dlogits, b.router.w.as<float>(), rows, C, E, false, false, /*accumulate=*/true, Precision::F32);
}

}  // namespace ar
