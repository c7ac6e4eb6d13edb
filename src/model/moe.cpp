// Mixture-of-experts MLP forward/backward (see moe.h). Routing is a per-row loop (E is small);
// the experts' work is gathered GEMMs (gemm_serial / gemm_bf16), one expert per thread.
#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <numeric>

#include "core/dtype.h"
#include "core/error.h"
#include "core/profile.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "model/block_specs.h"

namespace ar {

namespace {

// Floats of each view, rounded up to 16 (64-byte aligned starts, as block_grad.cpp does).
size_t pad(size_t n) { return (n + 15) / 16 * 16; }

int gate_index(int64_t e) { return kDenseLinears + 3 * int(e); }

// Experts whose weights a training pass holds at once: made in turn by the (not thread-safe) weight
// source, which itself runs on all threads, then multiplied in parallel. A constant, so the
// scratch does not depend on the thread count; 4 evens out experts of unequal row counts.
constexpr int64_t kMoeGroup = 4;

// x (np, C) = the rows of xn (R, C) that `slots` (n of them, slot = row * k + j) name, then np - n
// zero rows.
void gather_routed(float* x, const float* xn, const int64_t* slots, int64_t n, int64_t np, int64_t k, int64_t C) {
  for (int64_t i = 0; i < n; ++i) std::memcpy(x + i * C, xn + (slots[i] / k) * C, size_t(C) * sizeof(float));
  std::fill(x + n * C, x + np * C, 0.f);
}

// out[t] (+)= Σ over row t's k slots in ascending expert order of weight[slot] (1 if null) ·
// src[at[slot]]: the experts' rows back into token order, each row added in the order the
// experts ran in before they ran in parallel, so the bits do not depend on the thread count.
void combine_routed(float* out, bool add, const float* src, const MoeRouting& r, const float* weight, int64_t C) {
  const int64_t rows = r.rows, k = r.k;
#pragma omp parallel if (rows * C >= (1 << 16))
  {
    std::vector<int64_t> order(static_cast<size_t>(k));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < rows; ++t) {
      for (int64_t j = 0; j < k; ++j) order[size_t(j)] = t * k + j;
      std::sort(order.begin(), order.end(),
                [&r](int64_t a, int64_t b) { return r.expert[size_t(a)] < r.expert[size_t(b)]; });
      float* o = out + t * C;
      if (!add) std::fill(o, o + C, 0.f);
      for (int64_t slot : order) {
        const float* yr = src + r.at[size_t(slot)] * C;
        if (weight) {
          const float wt = weight[size_t(slot)];
          for (int64_t j = 0; j < C; ++j) o[j] += wt * yr[j];
        } else {
          for (int64_t j = 0; j < C; ++j) o[j] += yr[j];
        }
      }
    }
  }
}

// An expert weight (out, in) as its products read it: f32, or converted to bf16 once for native
// bf16 products (then only bf16 is set).
struct ExpertWeight {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
};

// C (M, N) [+]= A (M, K) · Wᵀ (trans_w; W stored (N, K)) or A · W (W stored (K, N)), on this thread.
void mul_weight(float* C, const float* A, ExpertWeight w, int64_t M, int64_t N, int64_t K, bool trans_w,
                bool accumulate, Precision p) {
  if (!w.bf16) {
    gemm_serial(C, A, w.f32, M, N, K, false, trans_w, accumulate, p);
    return;
  }
  thread_local Buffer a16(0, "moe.stage_a.thread");  // grow-only, (M, K) bf16
  a16.reserve(size_t(M * K) * sizeof(uint16_t));
  f32_to_bf16(a16.as<uint16_t>(), A, size_t(M * K));
  gemm_bf16(C, a16.as<uint16_t>(), w.bf16, M, N, K, false, trans_w, accumulate);
}

// dw (N, K) += dyᵀ · x for dy (M, N), x (M, K): a weight gradient over an expert's padded rows
// (zero rows add nothing). Skipped when dw is null (the linear is not tuned).
void mul_grad(float* dw, const float* dy, const float* x, int64_t M, int64_t N, int64_t K, Precision p) {
  if (dw) gemm_serial(dw, dy, x, N, K, M, /*trans_a=*/true, false, /*accumulate=*/true, p);
}

// Runs task(i) for i in [0, n) on all threads (one expert per task, dynamically scheduled: which
// thread runs which does not change any result), or in order on this one when `serial`.
// Exceptions are rethrown here (the first one).
template <class F>
void for_each_expert(int64_t n, bool serial, F&& task) {
  std::exception_ptr err;
#pragma omp parallel for schedule(dynamic, 1) if (!serial && n > 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      task(i);
    } catch (...) {
#pragma omp critical(ar_moe_task_error)
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
}

// The experts with at least one routed row, ascending.
std::vector<int64_t> active_experts(const MoeRouting& r) {
  std::vector<int64_t> a;
  for (int64_t e = 0; e < r.E; ++e)
    if (r.count(e) > 0) a.push_back(e);
  return a;
}

// Weights of the group's experts held in `held` (kMoeGroup · 3 slots of F·C floats): W' of linear
// gate_index(e) + j from the source, made in turn, copied (converted to bf16 when native). The
// copy runs on this thread alone: an OpenMP loop over 1.5 M floats measured 6x slower (5.7 vs
// 0.9 ms per weight) with the CPU shared, as each fork waits for a descheduled thread.
struct HeldGroup {
  ExpertWeight w[kMoeGroup][3];
};

void hold_group(HeldGroup& h, float* held, const int64_t* experts, int64_t n, const MoeWeightSource& src,
                const MoeWeightMaker* make, int64_t FC, Precision p) {
  const bool native = native_bf16_products(p);
  for (int64_t g = 0; g < n; ++g)
    for (int j = 0; j < 3; ++j) {
      float* dst = held + (g * 3 + j) * FC;
      if (make && (*make)(gate_index(experts[g]) + j, dst, native)) {
        h.w[g][j] = native ? ExpertWeight{nullptr, reinterpret_cast<const uint16_t*>(dst)} : ExpertWeight{dst, nullptr};
        continue;
      }
      const float* wp = src(gate_index(experts[g]) + j);
      if (native) {
        uint16_t* d16 = reinterpret_cast<uint16_t*>(dst);
        f32_to_bf16(d16, wp, size_t(FC));
        h.w[g][j] = ExpertWeight{nullptr, d16};
      } else {
        std::memcpy(dst, wp, size_t(FC) * sizeof(float));
        h.w[g][j] = ExpertWeight{dst, nullptr};
      }
    }
}

}  // namespace

int64_t expert_rows(int64_t n) {
  if (n <= 0) return 0;
  int64_t step = 16;
  while (step * 16 < n) step *= 2;  // then step < n / 8 whenever step > 16
  return (n + step - 1) / step * step;
}

// Each expert adds fewer than max(16, n_e / 8) rows (expert_rows).
int64_t moe_padded_slots(int64_t slots, int64_t E) { return slots + slots / 8 + 16 * E; }

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
  r.padded.assign(size_t(E + 1), 0);
  r.at.resize(size_t(rows * k));
  for (int64_t e = 0; e < E; ++e) {
    r.padded[size_t(e + 1)] = r.padded[size_t(e)] + expert_rows(r.count(e));
    for (int64_t i = 0; i < r.count(e); ++i) r.at[size_t(r.slot[size_t(r.offset[size_t(e)] + i)])] = r.padded[size_t(e)] + i;
  }
}

// ---------------------------------------------------------------- inference

size_t MoeScratch::size_bytes(const ModelConfig& c, int64_t rows) {
  const size_t R = size_t(rows), E = size_t(c.num_experts), C = size_t(c.hidden_size),
               F = size_t(c.moe_intermediate_size);
  const size_t P = size_t(moe_padded_slots(rows * c.num_experts_per_tok, c.num_experts));
  return (pad(R * E) + 2 * pad(P * F) + pad(P * C)) * sizeof(float);
}

MoeScratch::MoeScratch(const ModelConfig& c, int64_t rows) : rows_(rows), buf_(size_bytes(c, rows), "moe scratch") {
  const size_t R = size_t(rows), E = size_t(c.num_experts), C = size_t(c.hidden_size),
               F = size_t(c.moe_intermediate_size);
  const size_t P = size_t(moe_padded_slots(rows * c.num_experts_per_tok, c.num_experts));
  float* p = buf_.as<float>();
  auto take = [&p](size_t n) {
    float* v = p;
    p += pad(n);
    return v;
  };
  logits = take(R * E);
  gate = take(P * F);
  up = take(P * F);
  y = take(P * C);
}

void moe_forward(float* out, const float* xn, const BlockWeights& w, const ModelConfig& c, int64_t rows,
                 MoeScratch& s, Precision p, const LinearInputObserver& observe) {
  const int64_t C = c.hidden_size, F = c.moe_intermediate_size, k = c.num_experts_per_tok;
  AR_CHECK(rows <= s.rows(), "moe_forward: ", rows, " rows, scratch for ", s.rows());
  AR_CHECK(w.experts.size() == size_t(3 * c.num_experts) && w.router.w.size_bytes() != 0,
           "moe_forward: block ", w.layer, " has no experts");
  MoeRouting& r = s.routing;
  moe_route(r, xn, w.router.w.as<float>(), rows, c, s.logits);
  const std::vector<int64_t> active = active_experts(r);
  // The weights are the block's own, valid throughout: each task reads them directly. The
  // observer may not be thread-safe (and sees experts in order): with one, experts run in turn.
  for_each_expert(int64_t(active.size()), bool(observe), [&](int64_t i) {
    const int64_t e = active[size_t(i)], n = r.count(e), np = expert_rows(n), o = r.padded[size_t(e)];
    const int64_t* slots = r.slot.data() + r.offset[size_t(e)];
    float *g = s.gate + o * F, *u = s.up + o * F, *y = s.y + o * C;
    const int gi = gate_index(e);
    const ExpertWeight wg{w.experts[size_t(3 * e)].w.as<float>()}, wu{w.experts[size_t(3 * e + 1)].w.as<float>()},
        wd{w.experts[size_t(3 * e + 2)].w.as<float>()};
    {
      PhaseScope ps(Phase::Elementwise);
      gather_routed(y, xn, slots, n, np, k, C);  // x, in y's rows until the down product
    }
    if (observe) {
      observe(gi, y, n, C);
      observe(gi + 1, y, n, C);
    }
    {
      PhaseScope ps(Phase::GemmGateUpFwd);
      mul_weight(g, y, wg, np, F, C, true, false, p);
      mul_weight(u, y, wu, np, F, C, true, false, p);
    }
    {
      PhaseScope ps(Phase::Elementwise);
      mlp_act_forward(g, g, u, n * F, c);
      std::fill(g + n * F, g + np * F, 0.f);
    }
    if (observe) observe(gi + 2, g, n, F);
    PhaseScope ps(Phase::GemmDownFwd);
    mul_weight(y, g, wd, np, C, F, true, false, p);
  });
  PhaseScope ps(Phase::Elementwise);
  combine_routed(out, /*add=*/false, s.y, r, r.weight.data(), C);
}

// ---------------------------------------------------------------- training

size_t MoeTrainScratch::size_bytes(const ModelConfig& c, int64_t rows) {
  const size_t R = size_t(rows), K = size_t(c.num_experts_per_tok), E = size_t(c.num_experts),
               C = size_t(c.hidden_size), F = size_t(c.moe_intermediate_size);
  const size_t P = size_t(moe_padded_slots(rows * c.num_experts_per_tok, c.num_experts));
  const size_t views = pad(R * E) + 3 * pad(P * F) + pad(P * C) + pad(size_t(kMoeGroup) * 3 * F * C);
  // The routing vectors: prob (R, E), expert/weight/dweight (R, k), slot, at, offset, padded.
  const size_t routing = R * E * 4 + R * K * (4 + 4 + 4 + 8 + 8) + 2 * (E + 1) * 8;
  return views * sizeof(float) + routing;
}

MoeTrainScratch::MoeTrainScratch(const ModelConfig& c, int64_t rows) {
  const size_t R = size_t(rows), K = size_t(c.num_experts_per_tok), E = size_t(c.num_experts),
               C = size_t(c.hidden_size), F = size_t(c.moe_intermediate_size);
  const size_t P = size_t(moe_padded_slots(rows * c.num_experts_per_tok, c.num_experts));
  buf_ = Buffer((pad(R * E) + 3 * pad(P * F) + pad(P * C) + pad(size_t(kMoeGroup) * 3 * F * C)) * sizeof(float),
                "moe train scratch");
  float* p = buf_.as<float>();
  auto take = [&p](size_t n) {
    float* v = p;
    p += pad(n);
    return v;
  };
  logits = take(R * E);
  gate = take(P * F);
  up = take(P * F);
  act = take(P * F);
  y = take(P * C);
  held = take(size_t(kMoeGroup) * 3 * F * C);
  routing.prob.reserve(R * E);
  routing.expert.reserve(R * K);
  routing.weight.reserve(R * K);
  routing.slot.reserve(R * K);
  routing.at.reserve(R * K);
  dweight.reserve(R * K);
}

// One routed expert as the trainable passes see it: its rows (n routed, np padded), their slots, its
// views of the scratch (gate, up, act: (np, F); y: (np, C)) and its three weights.
struct ExpertPass {
  int64_t e, n, np;
  const int64_t* slots;
  float *g, *u, *a, *y;
  const ExpertWeight* w;  // gate, up, down
};

// task(ExpertPass) for every expert the routing sent rows to, kMoeGroup at a time: the group's
// weights are held (hold_group), then its experts run in parallel (for_each_expert).
template <class Task>
void for_each_routed_expert(MoeTrainScratch& s, const MoeWeightSource& w, const MoeWeightMaker* make, int64_t C,
                            int64_t F, Precision p, Task&& task) {
  const MoeRouting& r = s.routing;
  const std::vector<int64_t> active = active_experts(r);
  for (size_t g0 = 0; g0 < active.size(); g0 += size_t(kMoeGroup)) {
    const int64_t ng = std::min<int64_t>(kMoeGroup, int64_t(active.size() - g0));
    HeldGroup h;
    hold_group(h, s.held, active.data() + g0, ng, w, make, F * C, p);
    for_each_expert(ng, false, [&](int64_t i) {
      const int64_t e = active[g0 + size_t(i)], o = r.padded[size_t(e)], n = r.count(e);
      task(ExpertPass{e, n, expert_rows(n), r.slot.data() + r.offset[size_t(e)], s.gate + o * F, s.up + o * F,
                      s.act + o * F, s.y + o * C, h.w[i]});
    });
  }
}

void moe_forward_train(float* out, MoeTrainScratch& s, const float* xn, const BlockWeights& b,
                       const MoeWeightSource& w, const ModelConfig& c, int64_t rows, Precision p,
                       const MoeWeightMaker* make) {
  const int64_t C = c.hidden_size, F = c.moe_intermediate_size, k = c.num_experts_per_tok;
  MoeRouting& r = s.routing;
  moe_route(r, xn, b.router.w.as<float>(), rows, c, s.logits);
  s.routed.resize(size_t(c.num_experts), 0);
  for (int64_t e = 0; e < c.num_experts; ++e) s.routed[size_t(e)] += r.count(e);
  for_each_routed_expert(s, w, make, C, F, p, [&](const ExpertPass& x) {
    const int64_t n = x.n, np = x.np;
    float *g = x.g, *u = x.u, *a = x.a, *y = x.y;
    {
      PhaseScope ps(Phase::Elementwise);
      gather_routed(y, xn, x.slots, n, np, k, C);  // x, in y's rows until the down product
    }
    {
      PhaseScope ps(Phase::GemmGateUpFwd);
      mul_weight(g, y, x.w[0], np, F, C, true, false, p);
      mul_weight(u, y, x.w[1], np, F, C, true, false, p);
    }
    {
      PhaseScope ps(Phase::Elementwise);
      mlp_act_forward(a, g, u, n * F, c);
      std::fill(a + n * F, a + np * F, 0.f);
    }
    PhaseScope ps(Phase::GemmDownFwd);
    mul_weight(y, a, x.w[2], np, C, F, true, false, p);
  });
  PhaseScope ps(Phase::Elementwise);
  combine_routed(out, /*add=*/false, s.y, r, r.weight.data(), C);
}

void moe_backward(float* dxn, const std::vector<float*>& dw, MoeTrainScratch& s, const float* dout, const float* xn,
                  const BlockWeights& b, const MoeWeightSource& w, const ModelConfig& c, int64_t rows, Precision p,
                  const MoeWeightMaker* make) {
  const int64_t C = c.hidden_size, F = c.moe_intermediate_size, k = c.num_experts_per_tok, E = c.num_experts;
  MoeRouting& r = s.routing;
  AR_CHECK(r.rows == rows, "moe_backward: routing of ", r.rows, " rows, called with ", rows);
  s.dweight.assign(size_t(rows * k), 0.f);
  for_each_routed_expert(s, w, make, C, F, p, [&](const ExpertPass& x) {
    const int64_t n = x.n, np = x.np;
    const int64_t* slots = x.slots;
    float *g = x.g, *u = x.u, *a = x.a, *y = x.y;
    const int gi = gate_index(x.e);
    {
      // d y_i = w_i · dout[row] over y_i (read first): dL/dw_i = dout[row] · y_i.
      PhaseScope ps(Phase::Elementwise);
      for (int64_t i2 = 0; i2 < n; ++i2) {
        const float* d = dout + (slots[i2] / k) * C;
        float* yr = y + i2 * C;
        const float wt = r.weight[size_t(slots[i2])];
        double dot = 0;
        for (int64_t j = 0; j < C; ++j) {
          dot += double(d[j]) * yr[j];
          yr[j] = wt * d[j];
        }
        s.dweight[size_t(slots[i2])] = float(dot);
      }
      std::fill(y + n * C, y + np * C, 0.f);
    }
    {
      // down: dW += dyᵀ·act; d act = dy·W (over act, which is read first).
      PhaseScope ps(Phase::GemmDownBwd);
      mul_grad(dw[size_t(gi + 2)], y, a, np, C, F, p);
      mul_weight(a, y, x.w[2], np, F, C, false, false, p);
    }
    {
      PhaseScope ps(Phase::Elementwise);
      mlp_act_backward(g, u, a, g, u, n * F, c);  // d gate, d up over gate, up
      std::fill(g + n * F, g + np * F, 0.f);
      std::fill(u + n * F, u + np * F, 0.f);
      gather_routed(y, xn, slots, n, np, k, C);  // x again, over d y (dead)
    }
    PhaseScope ps(Phase::GemmGateUpBwd);
    mul_grad(dw[size_t(gi)], g, y, np, F, C, p);
    mul_grad(dw[size_t(gi + 1)], u, y, np, F, C, p);
    mul_weight(y, g, x.w[0], np, C, F, false, false, p);  // d x = d gate · Wg, over x (dead)
    mul_weight(y, u, x.w[1], np, C, F, false, true, p);   //     + d up · Wu
  });
  {
    PhaseScope ps(Phase::Elementwise);
    combine_routed(dxn, /*add=*/true, s.y, r, nullptr, C);
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
