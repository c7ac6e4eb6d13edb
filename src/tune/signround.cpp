// The SignRound loop for one block: fake-quantize, forward/backward sample by sample, signed step
// with a linearly decayed learning rate, best-loss bookkeeping. Follows AutoRound's quant_block
// (SignSGD, LinearLR from lr to 0, min/max_scale clamped to [0, 1] in place before each use).
#include "tune/signround.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <cstdio>
#include <cmath>
#include <optional>

#include <omp.h>

#include "core/interrupt.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/log.h"
#include "core/profile.h"
#include "kernels/gemm.h"
#include "kernels/mse_loss.h"
#include "model/block_grad.h"
#include "quant/fake_quant_grad.h"
#include "quant/fp_fake_quant_grad.h"
#include "quant/gguf_blocks.h"
#include "quant/gguf_tune.h"
#include "quant/importance.h"
#include "quant/nvfp4_global.h"
#include "quant/opt_rtn.h"
#include "quant/rtn.h"

namespace ar {

CyclicSampler::CyclicSampler(int64_t n, uint64_t seed) : order_(size_t(n)), rng_(seed) {
  AR_CHECK(n > 0, "sampler over ", n, " samples");
  reshuffle();
}

void CyclicSampler::reshuffle() {
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = int64_t(i);
  for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng_() % i]);
  pos_ = 0;
}

int64_t CyclicSampler::next() {
  if (pos_ == order_.size()) reshuffle();
  return order_[pos_++];
}

namespace {

// Tunables and gradients of one quantized linear.
struct LinearState {
  const LinearWeights* l = nullptr;
  QuantScheme scheme;
  bool quantized = false;  // false: kept in full precision (bits 16), never tuned
  int group = 0;           // its expert group (linear_expert_group)
  bool tuned = false;      // in the group being tuned: its parameters below are allocated
  // Its group is done: its result, which stands in for the weight while later groups tune.
  const QuantizedWeight* held_q = nullptr;
  const std::vector<uint8_t>* held_gguf = nullptr;
  std::vector<float> v, min_scale, max_scale, dmin, dmax, dw;
  // The original weight as bf16 bits when an owning tuner compacted it (then l->w is empty).
  std::vector<uint16_t> w_bf16;
  // GGUF target: the format's per-tensor constants (its RTN scales), made from the f32 weights.
  bool gguf = false;
  GgufTuneInit gg;
  float global_amax = -1.f;  // NVFP4: the amax of its global scale (block_nvfp4_global_amax)
  uint64_t n_weights() const { return uint64_t(l->out) * uint64_t(l->in); }
};

// How many min/max_scale pairs a quantized linear tunes: per GGUF tuning group, per FP scale
// (fp_scale_count: FP8Block's tiles span 128 rows), or per integer group.
int64_t tunable_scales(const QuantScheme& q, bool gguf, const LinearWeights& l) {
  if (gguf) return l.out * gguf_tune_groups(q.gguf, l.in);
  if (q.is_fp()) return fp_scale_count(q, l.out, l.in);
  return l.out * num_groups(q, l.in);
}

// True when every value survives the trip through bf16: its low 16 bits are zero.
bool bf16_exact(const LinearWeights& l) {
  const uint32_t* u = l.w.as<uint32_t>();
  const size_t n = size_t(l.out * l.in);
  for (size_t i = 0; i < n; ++i)
    if (u[i] & 0xffffu) return false;
  return true;
}

// p -= lr * sign(g); sign(0) = 0 leaves p unchanged, as torch.sign does.
// Elementwise, so threads and vector lanes give the same bits as one loop; two selects instead of a
// nested one so that it vectorizes (100 M weights of a 4B block: 310 ms a step before, 160-200 ms
// now on the 2-core AMX machine, where it is bound by memory bandwidth).
void signed_step(float* p, const float* g, size_t n, float lr) {
  constexpr size_t kChunk = size_t(1) << 16;
#pragma omp parallel for schedule(static) if (n > kChunk)
  for (size_t c = 0; c < n; c += kChunk) {
    const size_t end = std::min(n, c + kChunk);
#pragma omp simd
    for (size_t i = c; i < end; ++i) p[i] = signed_step_value(p[i], g[i], lr);
  }
}
void signed_step(std::vector<float>& p, const std::vector<float>& g, float lr) {
  signed_step(p.data(), g.data(), p.size(), lr);
}

// A step's gradients start from zero: 400 MB for a 4B block, written by both threads.
void zero_fill(std::vector<float>& p) {
  constexpr size_t kChunk = size_t(1) << 18;
  const size_t n = p.size();
  float* d = p.data();
#pragma omp parallel for schedule(static) if (n > kChunk)
  for (size_t c = 0; c < n; c += kChunk) std::fill(d + c, d + std::min(n, c + kChunk), 0.f);
}

void clamp01(std::vector<float>& p) {
  for (float& x : p) x = clamp01_value(x);
}

// Floats of the one weight-sized work buffer: the largest quantized linear.
uint64_t work_floats(const BlockWeights& b, const LinearSchemes& schemes) {
  uint64_t n = 0;
  for (int i = 0; i < int(schemes.size()); ++i)
    if (schemes[size_t(i)].quantized())
      n = std::max(n, uint64_t(block_linears(b, i)->out) * uint64_t(block_linears(b, i)->in));
  return n;
}

// How a tuning step goes through its samples (see BlockGradScratch).
//  - Chunks: up to `cap` samples per forward/backward, as many as make about kChunkRows rows while
//    their scratch stays small, no more than a partition's share of a step. Large blocks get 1
//    (their GEMMs are big enough, and memory is what counts).
//  - Units (lanes == 2): a small block's share of a step is cut into `units` chunks of up to `cap`
//    samples, each with its own gradient buffer. Two threads, each with its own scratch and
//    single-threaded kernels inside, take the next unit as they come free: one join per step
//    instead of a fork/join per kernel call, and a thread that another process slows down takes
//    fewer units instead of holding the other one up (issue 18). The units' gradients are added
//    in unit order afterwards, so the bits do not depend on which thread ran which unit, nor on
//    the thread count.
constexpr int64_t kChunkRows = 2048;
constexpr uint64_t kChunkBytes = 64ull << 20;
constexpr int64_t kUnitsPerStep = 8;  // enough for a thread at half speed to cost about 1.5x

struct StepPlan {
  int lanes = 1;
  int64_t cap = 1;    // samples per forward/backward
  int64_t share = 1;  // lanes == 2: the most picks a partition takes per step (all fetched up front)
  int64_t units = 1;  // lanes == 2: units of the largest share
};

uint64_t chunk_scratch_bytes(const ModelConfig& c, int64_t T, int64_t m) {
  // The block scratch plus the chunk's x, target, y and dy (T, C) per sample.
  return BlockGradScratch::size_bytes(c, T, m) + 4ull * uint64_t(m * T * c.hidden_size) * sizeof(float);
}

// Result bytes of a quantized linear: codes, or GGUF blocks, plus per group scales / zero points.
uint64_t result_bytes(const QuantScheme& q, const LinearWeights& l) {
  if (q.gguf_target()) return uint64_t(l.out) * ggml_row_bytes(q.gguf, l.in);
  return uint64_t(l.out) * uint64_t(l.in) + 3 * uint64_t(tunable_scales(q, false, l));
}

// Floats of every quantized linear's weight: the step's W' cache, and each unit's gradients.
uint64_t tuned_weight_floats(const BlockWeights& b, const LinearSchemes& schemes) {
  uint64_t n = 0;
  for (int i = 0; i < int(schemes.size()); ++i)
    if (schemes[size_t(i)].quantized()) n += uint64_t(block_linears(b, i)->out) * uint64_t(block_linears(b, i)->in);
  return n;
}

uint64_t plan_bytes(const ModelConfig& c, int64_t T, const StepPlan& p, uint64_t weight_floats) {
  if (p.lanes == 1) return chunk_scratch_bytes(c, T, p.cap);
  // Per thread: a scratch and a chunk's y and dy; the share's inputs and targets; the step's W'
  // and the gradients of units 1.. (unit 0 adds into the step's own).
  const uint64_t tc = uint64_t(T * c.hidden_size) * sizeof(float);
  return 2 * (BlockGradScratch::size_bytes(c, T, p.cap) + 2 * uint64_t(p.cap) * tc) + 2 * uint64_t(p.share) * tc +
         uint64_t(p.units) * weight_floats * sizeof(float);
}

StepPlan plan_step(const BlockWeights& b, const LinearSchemes& schemes,
                   const ModelConfig& c, int64_t T, const SignRoundOptions& o) {
  StepPlan p;
  if (o.iters == 0) return p;
  const int64_t picks = o.batch_size * o.gradient_accumulate_steps;
  const int64_t share = (picks + o.partitions - 1) / o.partitions;
  const int64_t rows_cap = std::max<int64_t>(1, kChunkRows / T);
  const uint64_t wf = tuned_weight_floats(b, schemes);
  StepPlan u;
  u.lanes = 2;
  u.share = share;
  for (u.cap = std::min((share + kUnitsPerStep - 1) / kUnitsPerStep, rows_cap);; ++u.cap) {
    u.units = (share + u.cap - 1) / u.cap;
    if (u.units < 2) break;
    if (plan_bytes(c, T, u, wf) <= kChunkBytes) return u;
  }
  p.cap = std::min(rows_cap, share);
  while (p.cap > 1 && plan_bytes(c, T, p, wf) > kChunkBytes) --p.cap;
  return p;
}

// Whether a tuner with this plan holds its dense W' for the step (hold_step_weights), and the
// bytes that takes: bf16 W' only (native bf16 products), dense integer linears only (the ones
// bf16 W' is made for), and only in chunks (units make every W' once per step anyway). One pass
// per step gains too: the backward would make o's, gate's and up's W' again (the one work buffer
// holds the last linear the forward used), 60 % of the block's weights.
bool dense_wprime_bf16(const QuantScheme& q, int i) {
  return i < kDenseLinears && q.quantized() && !q.gguf_target() && !q.is_fp();
}
bool holds_step_wprime(const StepPlan& p, const SignRoundOptions& o) {
  return o.iters > 0 && o.hold_step_weights && p.lanes == 1 && o.precision == Precision::BF16 &&
         gemm_has_native_bf16();
}
// Whether a tuning with this plan keeps its dense dL/dW' as bf16 (SignRoundOptions::bf16_weight_grads):
// one backward writes a step's dense gradients (one partition, no units, a share of `share` picks
// in one chunk) and only integer schemes' fused pass reads them. `integer_dense`: every quantized
// dense linear has an integer scheme (no GGUF target, no floating-point format).
bool bf16_weight_grads_apply(const StepPlan& p, const SignRoundOptions& o, int64_t share, bool integer_dense) {
  return o.iters > 0 && o.bf16_weight_grads && o.overwrite_dense_grads && native_bf16_products(o.precision) &&
         o.partitions == 1 && p.lanes == 1 && share <= p.cap && integer_dense;
}
bool integer_dense_schemes(const LinearSchemes& schemes) {
  for (int i = 0; i < kDenseLinears && i < int(schemes.size()); ++i)
    if (schemes[size_t(i)].quantized() && !dense_wprime_bf16(schemes[size_t(i)], i)) return false;
  return true;
}

uint64_t held_wprime_bytes(const BlockWeights& b, const LinearSchemes& schemes) {
  uint64_t n = 0;
  for (int i = 0; i < int(schemes.size()); ++i)
    if (dense_wprime_bf16(schemes[size_t(i)], i))
      n += uint64_t(block_linears(b, i)->out) * uint64_t(block_linears(b, i)->in) * sizeof(uint16_t);
  return n;
}

}  // namespace

struct BlockTuner::State {
  BlockWeights owned;  // the owning constructor's weights (empty when borrowing)
  const BlockWeights& b;
  const bool owns;
  const int nl;  // linears of the block (block_linear_count)
  const ModelConfig& c;
  const int64_t T;
  const SignRoundOptions o;
  const StepPlan plan;  // lanes and samples per forward/backward while tuning
  const int groups;     // expert groups, tuned one after another (expert_group_count)
  // Read from the f32 weights before an owning tuner compacts them.
  const std::vector<float> global_amax;
  std::vector<LinearState> st;
  RopeTables rope;
  BlockGradScratch scratch;
  // (n·T, C) each: inputs and targets of plan.cap samples, or with units of the whole share; the
  // y and dy of one chunk (thread 0's with units).
  std::vector<float> x, second, y, dy;
  // Units (plan.lanes == 2): thread 1's scratch and chunk; the gradients of units 1.. ([unit - 1]
  // [linear], tuned linears only); the step's W' of every linear, made once per step for both.
  struct Lane {
    BlockGradScratch scratch;
    std::vector<float> y, dy;
    Lane(const ModelConfig& c, int64_t T, int64_t cap) : scratch(c, T, cap) {}
  };
  std::unique_ptr<Lane> lane1;
  std::vector<std::vector<std::vector<float>>> unit_dw;
  std::vector<std::vector<float>> w_step;
  // One weight-sized buffer for all linears: W' of the linear the forward/backward asks for (made
  // on demand from v and min/max_scale), or a compacted linear's original W widened to f32
  // (`work_holds` says which: i, or kOriginal + i), or dL/dv of one linear during the signed step.
  std::vector<float> work;
  int work_holds = -1;
  // hold_step_weights: the dense linears' bf16 W' of this step (held_at[i]: linear i's offset),
  // made on first use in the step (held_ok), while group 0 (the dense linears') tunes.
  const bool hold;
  std::vector<uint16_t> held;
  std::vector<int64_t> held_at;
  std::vector<char> held_ok;
  // Held W' the last update already wrote for the next step (the fused step's NextStepWprime).
  std::vector<char> held_next;
  // GGUF targets start from the format's importance-weighted RTN (as llama.cpp's imatrix path):
  // per input column of each linear, the sum of squared fp inputs seen by fp_forward before tuning.
  bool want_importance = false, importance_frozen = false;
  // This tuning's dense dL/dW' are bf16 (SignRoundOptions::bf16_weight_grads), over the first half
  // of dw's floats (DenseGrads::OverwriteBf16), which holds only that many.
  bool grads16 = false;
  std::optional<ImportanceSums> imp;
  int64_t imp_rows = 0;
  static constexpr int kOriginal = 1 << 24;  // work_holds: the original of linear i is kOriginal + i

  State(const BlockWeights& b_, const ModelConfig& c_, const LinearSchemes& schemes,
        int64_t T_, const SignRoundOptions& o_)
      : b(b_), owns(false), nl(block_linear_count(b_)), c(c_), T(T_), o(o_), plan(plan_step(b_, schemes, c_, T_, o_)),
        groups(expert_group_count(b_, o_.expert_groups)),
        global_amax(block_nvfp4_global_amax(b_, schemes, o_.nvfp4_fused_global_scale)), st(static_cast<size_t>(nl)),
        rope(make_rope_tables(c_, T_)), scratch(c_, T_, plan.cap), w_step(static_cast<size_t>(nl)),
        hold(holds_step_wprime(plan, o_)) {
    init(schemes);
  }
  // Compacts before anything else is allocated, so the f32 weights are gone before the peak.
  State(BlockWeights&& b_, const ModelConfig& c_, const LinearSchemes& schemes,
        int64_t T_, const SignRoundOptions& o_)
      : owned(std::move(b_)), b(owned), owns(true), nl(block_linear_count(owned)), c(c_), T(T_), o(o_),
        plan(plan_step(owned, schemes, c_, T_, o_)), groups(expert_group_count(owned, o_.expert_groups)),
        global_amax(block_nvfp4_global_amax(owned, schemes, o_.nvfp4_fused_global_scale)), st(static_cast<size_t>(nl)),
        rope((compact(schemes), make_rope_tables(c_, T_))), scratch(c_, T_, plan.cap), w_step(static_cast<size_t>(nl)),
        hold(holds_step_wprime(plan, o_)) {
    init(schemes);
  }

  void compact(const LinearSchemes& schemes) {
    for (int i = 0; i < nl; ++i) {
      LinearWeights& l = *block_linears(owned, i);
      if (!schemes[size_t(i)].quantized() || !bf16_exact(l)) continue;
      if (schemes[size_t(i)].gguf_target()) make_gguf_init(st[size_t(i)], schemes[size_t(i)], l);
      std::vector<uint16_t>& h = st[size_t(i)].w_bf16;
      h.resize(size_t(l.out * l.in));
      f32_to_bf16(h.data(), l.w.as<float>(), h.size());
      l.w = Buffer();
    }
  }

  static void make_gguf_init(LinearState& s, const QuantScheme& q, const LinearWeights& l) {
    if (!gguf_tunable(q.gguf))
      AR_THROW(l.name, ": GGUF type ", ggml_info(q.gguf).name, " cannot be tuned");
    s.gguf = true;
    s.gg = gguf_tune_init(q.gguf, l.w.as<float>(), l.out, l.in);
  }

  void init(const LinearSchemes& schemes) {
    AR_CHECK(T > 0, "BlockTuner with T=", T);
    AR_CHECK(o.iters >= 0 && o.batch_size > 0 && o.gradient_accumulate_steps > 0, "bad SignRound options");
    const size_t tc = size_t(plan.cap * T * c.hidden_size);
    for (auto* v : {&y, &dy}) v->resize(tc);
    for (auto* v : {&x, &second}) v->resize(plan.lanes > 1 ? size_t(plan.share * T * c.hidden_size) : tc);
    if (plan.lanes > 1) {
      lane1 = std::make_unique<Lane>(c, T, plan.cap);
      for (auto* v : {&lane1->y, &lane1->dy}) v->resize(tc);
      unit_dw.assign(size_t(plan.units - 1), std::vector<std::vector<float>>(size_t(nl)));
    }
    AR_CHECK(o.expert_groups >= 1, "expert_groups ", o.expert_groups);
    held_at.assign(size_t(nl), -1);  // nothing held until a group begins
    held_ok.assign(size_t(nl), 0);
    held_next.assign(size_t(nl), 0);
    bool compacted = false;
    for (int i = 0; i < nl; ++i) {
      LinearState& s = st[size_t(i)];
      s.l = block_linears(b, i);
      s.scheme = schemes[size_t(i)];
      s.quantized = s.scheme.quantized();
      s.group = linear_expert_group(b, i, groups);
      s.global_amax = global_amax[size_t(i)];
      compacted |= !s.w_bf16.empty();
      if (!s.quantized) continue;
      if (s.scheme.gguf_target() && !s.gguf) make_gguf_init(s, s.scheme, *s.l);
      if (!s.gguf) check_quantizable(s.scheme);
      if (lane1) w_step[size_t(i)].resize(size_t(s.n_weights()));
    }
    if (o.iters > 0 || compacted) work.resize(size_t(work_floats(b, schemes)));
    std::vector<int64_t> widths(size_t(nl), 0);
    for (int i = 0; i < kDenseLinears; ++i)
      if (st[size_t(i)].gguf && o.iters > 0) {
        want_importance = true;
        widths[size_t(i)] = st[size_t(i)].l->in;
      }
    // Several partitions: per-sample sums are held until importance_init chains them over the ranks.
    if (want_importance) imp.emplace(std::move(widths), o.partitions > 1);
  }

  // Allocates the parameters (v = 0, min/max_scale = 1) and gradients of group g's linears; with
  // units, the step's W' of every other quantized linear is its held value for the group.
  void begin_group(int g) {
    PhaseScope scope(Phase::Setup);
    for (int i = 0; i < nl; ++i) {
      LinearState& s = st[size_t(i)];
      if (!s.quantized || s.group != g) continue;
      s.tuned = true;
      const size_t nw = size_t(s.n_weights());
      const size_t ng = size_t(tunable_scales(s.scheme, s.gguf, *s.l));
      s.v.assign(nw, 0.f);
      s.min_scale.assign(ng, 1.f);
      s.max_scale.assign(ng, 1.f);
      if (o.enable_minmax_tuning && o.iters > 0) {
        s.dmin.assign(ng, 0.f);
        s.dmax.assign(ng, 0.f);
      }
      if (o.iters > 0) s.dw.resize(grads16 && i < kDenseLinears ? (nw + 1) / 2 : nw);
      for (auto& u : unit_dw) u[size_t(i)].resize(nw);
    }
    work_holds = -1;
    held_at.assign(size_t(nl), -1);
    held_ok.assign(size_t(nl), 0);
    held_next.assign(size_t(nl), 0);
    int64_t at = 0;
    for (int i = 0; i < nl && hold; ++i)
      if (st[size_t(i)].tuned && bf16_wprime(i)) {
        held_at[size_t(i)] = at;
        at += st[size_t(i)].n_weights();
      }
    held.resize(size_t(at));
    held.shrink_to_fit();
    if (lane1)
      for (int i = 0; i < nl; ++i) {
        const LinearState& s = st[size_t(i)];
        if (s.quantized && !s.tuned) std::copy_n(held_f32(i), s.n_weights(), w_step[size_t(i)].data());
      }
  }

  // Group g is done: its results in r stand in for its weights from now on, its state goes.
  void end_group(int g, const BlockTuneResult& r) {
    PhaseScope scope(Phase::Setup);
    for (int i = 0; i < nl; ++i) {
      LinearState& s = st[size_t(i)];
      if (!s.quantized || s.group != g) continue;
      s.tuned = false;
      if (s.gguf) s.held_gguf = &r.gguf[size_t(i)];
      else s.held_q = &r.q[size_t(i)];
      for (auto* v : {&s.v, &s.min_scale, &s.max_scale, &s.dmin, &s.dmax, &s.dw}) std::vector<float>().swap(*v);
      for (auto& u : unit_dw) std::vector<float>().swap(u[size_t(i)]);
    }
    work_holds = -1;
    std::vector<uint16_t>().swap(held);
    held_at.assign(size_t(nl), -1);
  }

  // After a forward: the inputs of every linear are in the scratch (xn1: q/k/v, attn: o, xn2:
  // gate/up, act: down).
  void accumulate_importance() {
    const int64_t C = c.hidden_size, HD = c.num_attention_heads * c.head_dim, F = c.intermediate_size;
    // Experts see only their routed rows: they get no importance (widths 0, see init).
    const float* in[kDenseLinears] = {scratch.xn1, scratch.xn1, scratch.xn1, scratch.attn,
                                      scratch.xn2, scratch.xn2, scratch.act};
    const int64_t K[kDenseLinears] = {C, C, C, HD, C, C, F};
    for (int i = 0; i < kDenseLinears; ++i) imp->add_sample(i, in[i], T, K[i]);
    imp_rows += T;
  }

  // The GGUF linears' tuning constants again, now from the importance-weighted search.
  void importance_init(Comm& comm, int64_t rows_total) {
    importance_frozen = true;
    if (!want_importance) return;
    imp->finish(comm);
    if (rows_total != 0)
      for (int i = 0; i < nl; ++i) {
        LinearState& s = st[size_t(i)];
        if (!s.gguf) continue;
        const std::vector<float> m = imp->mean(i, double(rows_total));
        s.gg = gguf_tune_init(s.scheme.gguf, original(i), s.l->out, s.l->in, m.data());
      }
    imp.reset();
    work_holds = -1;
  }

  // W' of linear i, valid until the next call: made from its parameters while its group tunes;
  // its result dequantized once its group is done; its original weight otherwise (bits 16, or its
  // group still to come).
  WeightView fake_quantized(int i) {
    LinearState& s = st[size_t(i)];
    if (!s.tuned) return s.held_q || s.held_gguf ? WeightView(held_f32(i)) : original_view(i);
    if (held_at[size_t(i)] >= 0) {  // held for the step
      uint16_t* d = held.data() + held_at[size_t(i)];
      if (!held_ok[size_t(i)]) make_fake_quantized_bf16(i, d);
      held_ok[size_t(i)] = 1;
      return WeightView(d);
    }
    const bool b16 = bf16_wprime(i);
    if (work_holds != i) {
      if (b16) make_fake_quantized_bf16(i, reinterpret_cast<uint16_t*>(work.data()));
      else make_fake_quantized(i, work.data());
      work_holds = i;
    }
    if (b16) return WeightView(reinterpret_cast<const uint16_t*>(work.data()));
    return work.data();
  }

  // Expert linear i's weight into an MoE held-group slot (moe.h's MoeWeightMaker): a tuned
  // integer scheme's W' made there directly, bf16 when the products are; anything else is left to
  // the weight source (fake_quantized), whose f32 the held group copies or converts.
  bool make_expert_weight(int i, float* slot, bool b16) {
    LinearState& s = st[size_t(i)];
    if (!s.tuned || s.gguf || s.scheme.is_fp()) return false;
    if (b16) make_fake_quantized_bf16(i, reinterpret_cast<uint16_t*>(slot));
    else make_fake_quantized(i, slot);
    return true;
  }

  // The products run in bf16 on native bf16 hardware, so a dense linear can hand them bf16 bits,
  // which they would round an f32 weight to anyway: made so once, not converted by every product.
  // Experts stay f32 (moe.h), and so do GGUF and floating-point targets (their W' makers are f32).
  bool bf16_products() const { return native_bf16_products(o.precision); }
  bool bf16_wprime(int i) const { return bf16_products() && dense_wprime_bf16(st[size_t(i)].scheme, i); }

  // W' of tuned linear i as bf16 (bf16_wprime(i)).
  void make_fake_quantized_bf16(int i, uint16_t* dst) {
    PhaseScope scope(Phase::FakeQuant);
    LinearState& s = st[size_t(i)];
    if (s.w_bf16.empty())
      fake_quant_forward_bf16(dst, s.l->w.as<float>(), s.l->out, s.l->in, s.scheme, s.v.data(), s.min_scale.data(),
                              s.max_scale.data());
    else
      fake_quant_forward_bf16(dst, s.w_bf16.data(), s.l->out, s.l->in, s.scheme, s.v.data(), s.min_scale.data(),
                              s.max_scale.data());
  }

  // The original weight of linear i for the products: a compacted dense one as its bf16 bits when
  // the products take them (no widening), else original(i).
  WeightView original_view(int i) {
    const LinearState& s = st[size_t(i)];
    if (!s.w_bf16.empty() && bf16_products() && i < kDenseLinears) return WeightView(s.w_bf16.data());
    return original(i);
  }

  // An untuned linear's weight as f32 (its held result dequantized, or its original).
  const float* held_f32(int i) {
    LinearState& s = st[size_t(i)];
    AR_CHECK(!s.tuned, "held_f32 of tuned linear ", i);
    if (!s.held_q && !s.held_gguf) return original(i);
    if (work_holds != i) {
      if (s.held_q) s.held_q->dequantize(work.data());
      else gguf_dequantize_tensor(s.scheme.gguf, s.held_gguf->data(), s.l->out, s.l->in, work.data());
      work_holds = i;
    }
    return work.data();
  }

  // W' of tuned linear i into dst (out, in).
  void make_fake_quantized(int i, float* dst) {
    PhaseScope scope(Phase::FakeQuant);
    LinearState& s = st[size_t(i)];
    if (s.gguf && s.w_bf16.empty())
      gguf_fake_quant_forward(dst, nullptr, s.l->w.as<float>(), s.l->out, s.l->in, s.gg, s.v.data(),
                              s.min_scale.data(), s.max_scale.data());
    else if (s.gguf)
      gguf_fake_quant_forward(dst, nullptr, s.w_bf16.data(), s.l->out, s.l->in, s.gg, s.v.data(),
                              s.min_scale.data(), s.max_scale.data());
    else if (s.w_bf16.empty())
      fake_quant_forward(dst, s.l->w.as<float>(), s.l->out, s.l->in, s.scheme, s.v.data(), s.min_scale.data(),
                         s.max_scale.data(), s.global_amax);
    else
      fake_quant_forward(dst, s.w_bf16.data(), s.l->out, s.l->in, s.scheme, s.v.data(), s.min_scale.data(),
                         s.max_scale.data(), s.global_amax);
  }

  // The original f32 weight of linear i, valid until the next call (widened into the work buffer
  // when compacted).
  const float* original(int i) {
    LinearState& s = st[size_t(i)];
    if (s.w_bf16.empty()) return s.l->w.as<float>();
    if (work_holds != kOriginal + i) {
      bf16_to_f32(work.data(), s.w_bf16.data(), s.w_bf16.size());
      work_holds = kOriginal + i;
    }
    return work.data();
  }
};

BlockTuner::BlockTuner(const BlockWeights& b, const ModelConfig& c,
                       const LinearSchemes& schemes, int64_t T, const SignRoundOptions& o)
    : s_(std::make_unique<State>(b, c, schemes, T, o)) {}

BlockTuner::BlockTuner(BlockWeights&& b, const ModelConfig& c, const LinearSchemes& schemes,
                       int64_t T, const SignRoundOptions& o)
    : s_(std::make_unique<State>(std::move(b), c, schemes, T, o)) {}

BlockWeights BlockTuner::release_weights() {
  AR_CHECK(s_ && s_->owns, "release_weights on a tuner that borrows its weights (or was released)");
  BlockWeights b = std::move(s_->owned);
  const int nl = block_linear_count(b);
  std::vector<std::vector<uint16_t>> compacted(static_cast<size_t>(nl));
  for (int i = 0; i < nl; ++i) compacted[size_t(i)] = std::move(s_->st[size_t(i)].w_bf16);
  s_.reset();  // the tuning state goes before the weights widen
  for (int i = 0; i < nl; ++i) {
    std::vector<uint16_t>& h = compacted[size_t(i)];
    if (h.empty()) continue;
    LinearWeights& l = *block_linears(b, i);
    l.w = Buffer(h.size() * sizeof(float), l.name + ".weight");
    bf16_to_f32(l.w.as<float>(), h.data(), h.size());
    std::vector<uint16_t>().swap(h);
  }
  return b;
}

BlockTuner::~BlockTuner() = default;

uint64_t BlockTuner::state_bytes(const BlockWeights& b, const ModelConfig& c,
                                 const LinearSchemes& schemes, int64_t T,
                                 const SignRoundOptions& o) {
  // The step's scratches and chunks (plus, with units, the step's W' and the units' gradients),
  // the rope tables, the shared W'/dv buffer.
  uint64_t n = plan_bytes(c, T, plan_step(b, schemes, c, T, o), tuned_weight_floats(b, schemes)) +
               2ull * uint64_t(T) * uint64_t(c.head_dim / 2) * sizeof(float) +
               work_floats(b, schemes) * sizeof(float);
  const int groups = expert_group_count(b, o.expert_groups);
  std::vector<uint64_t> group_state(size_t(groups), 0);
  uint64_t results = 0, biggest_result = 0;
  const int nl = block_linear_count(b);
  const bool training = o.iters > 0, minmax = training && o.enable_minmax_tuning;
  // The most picks one step takes (fewer samples than the batch only lower it).
  const int64_t share = (o.batch_size * o.gradient_accumulate_steps + o.partitions - 1) / o.partitions;
  const bool grads16 =
      bf16_weight_grads_apply(plan_step(b, schemes, c, T, o), o, share, integer_dense_schemes(schemes));
  for (int i = 0; i < nl; ++i) {
    const LinearWeights& l = *block_linears(b, i);
    const QuantScheme& q = schemes[size_t(i)];
    if (!q.quantized()) continue;
    const uint64_t nw = uint64_t(l.out) * uint64_t(l.in);
    // v (f32) and dW (f32, or bf16 for the dense ones with grads16) while its group tunes; per
    // tuned scale min/max_scale (+ gradients).
    const uint64_t dw_bytes = !training ? 0 : grads16 && i < kDenseLinears ? sizeof(uint16_t) : sizeof(float);
    const uint64_t ng = uint64_t(tunable_scales(q, q.gguf_target(), l));
    group_state[size_t(linear_expert_group(b, i, groups))] +=
        nw * (sizeof(float) + dw_bytes) + ng * (minmax ? 4 : 2) * sizeof(float);
    // Held throughout: every linear's result (done groups stand in with theirs), and for GGUF
    // targets the format's init constants (scale, offset, weight sum).
    const uint64_t rb = result_bytes(q, l);
    results += rb + (q.gguf_target() ? ng * 3 * sizeof(float) : 0);
    biggest_result = std::max(biggest_result, rb);
  }
  // A new best result is built before the previous one of that linear is freed. The dense
  // linears' held W' (hold_step_weights) belongs to group 0's state.
  group_state[0] += held_step_bytes(b, c, schemes, T, o);
  return n + *std::max_element(group_state.begin(), group_state.end()) + results + biggest_result;
}

uint64_t BlockTuner::held_step_bytes(const BlockWeights& b, const ModelConfig& c, const LinearSchemes& schemes,
                                     int64_t T, const SignRoundOptions& o) {
  return holds_step_wprime(plan_step(b, schemes, c, T, o), o) ? held_wprime_bytes(b, schemes) : 0;
}

uint64_t BlockTuner::owned_weight_bytes(const BlockWeights& b, const LinearSchemes& schemes) {
  uint64_t n = b.size_bytes();
  for (int i = 0; i < block_linear_count(b); ++i) {
    const LinearWeights& l = *block_linears(b, i);
    if (schemes[size_t(i)].quantized() && bf16_exact(l)) n -= uint64_t(l.out) * uint64_t(l.in) * 2;
  }
  return n;
}

void BlockTuner::fp_forward(float* y, const float* x) {
  AR_CHECK(s_, "fp_forward after release_weights");
  State& S = *s_;
  AR_CHECK(y != x, "fp_forward: y aliases x");
  const bool importance = S.want_importance && !S.importance_frozen;
  S.scratch.allow_bf16_activations = !importance;  // the importance matrix reads the inputs as f32
  block_forward_train(y, S.scratch, x, S.b, [&S](int i) { return S.original_view(i); }, S.c, S.rope, S.o.precision);
  if (importance) S.accumulate_importance();
}

BlockTuneResult BlockTuner::tune(const TuneSamples& samples) {
  AR_CHECK(s_, "tune after release_weights");
  State& S = *s_;
  const SignRoundOptions& o = S.o;
  auto& st = S.st;
  const int nl = S.nl;
  BlockTuneResult r;
  r.q.resize(static_cast<size_t>(nl));
  r.gguf.resize(static_cast<size_t>(nl));
  // The step's fused pass (integer schemes) can write the codes of a new best itself, once the
  // result has been allocated for the linear's scheme and shape (by a first quantize_current).
  auto codes_in_update = [&](int i) {
    const LinearState& s = st[size_t(i)];
    const QuantizedWeight& q = r.q[size_t(i)];
    return o.fuse_step_outputs && !s.gguf && !s.scheme.is_fp() && q.scheme == s.scheme && q.out == s.l->out &&
           q.in == s.l->in && q.sizes_match();
  };
  // The codes of the current parameters of every tuned linear but those `skip` marks (the update's
  // pass writes theirs).
  std::vector<char> codes_later(static_cast<size_t>(nl), 0);
  auto quantize_current = [&](const std::vector<char>* skip = nullptr) {
    PhaseScope scope(Phase::QuantizeBest);
    for (int i = 0; i < nl; ++i) {
      LinearState& s = st[size_t(i)];
      if (!s.tuned || (skip && (*skip)[size_t(i)])) continue;
      if (s.gguf) {
        std::vector<uint8_t>& bytes = r.gguf[size_t(i)];
        bytes.resize(size_t(s.l->out) * ggml_row_bytes(s.scheme.gguf, s.l->in));
        if (s.w_bf16.empty())
          gguf_fake_quant_forward(nullptr, bytes.data(), s.l->w.as<float>(), s.l->out, s.l->in, s.gg, s.v.data(),
                                  s.min_scale.data(), s.max_scale.data());
        else
          gguf_fake_quant_forward(nullptr, bytes.data(), s.w_bf16.data(), s.l->out, s.l->in, s.gg, s.v.data(),
                                  s.min_scale.data(), s.max_scale.data());
        continue;
      }
      if (s.scheme.is_fp())
        r.q[size_t(i)] = quantize_rtn(S.original(i), s.l->out, s.l->in, s.scheme, s.v.data(), s.min_scale.data(),
                                      s.max_scale.data(), s.l->name + ".weight", s.global_amax);
      else if (s.w_bf16.empty())
        quantize_rtn_into(r.q[size_t(i)], s.l->w.as<float>(), s.l->out, s.l->in, s.scheme, s.v.data(),
                          s.min_scale.data(), s.max_scale.data());
      else  // the compacted weight read as it is, not widened first
        quantize_rtn_into(r.q[size_t(i)], s.w_bf16.data(), s.l->out, s.l->in, s.scheme, s.v.data(),
                          s.min_scale.data(), s.max_scale.data());
    }
  };
  if (o.iters == 0) {  // RTN
    for (int g = 0; g < S.groups; ++g) S.begin_group(g);
    quantize_current();
    return r;
  }
  const int64_t n = samples.n;
  AR_CHECK(n > 0 && samples.fetch, "tune with n=", n);
  if (S.want_importance && !S.importance_frozen) {
    // Streamed targets: no fp pass ran yet, so one runs now over every sample (the same inputs
    // and function as the cached targets' pass, so both modes start from the same constants).
    if (samples.fp_inputs && S.imp_rows == 0)
      for (int64_t idx = 0; idx < n; ++idx) {
        samples.fetch(idx, S.x.data(), S.second.data());
        fp_forward(S.y.data(), S.second.data());
      }
    Comm& c = samples.comm ? *samples.comm : single_process_comm();
    S.importance_init(c, S.imp_rows == 0 ? 0 : samples.n_total ? samples.n_total * S.T : S.imp_rows);
  }

  const int64_t TC = S.T * S.c.hidden_size;
  Comm& comm = samples.comm ? *samples.comm : single_process_comm();
  const int G = o.partitions, procs = comm.size();
  const int local = procs == 1 ? G : 1;  // partitions this process runs
  AR_CHECK(G >= 1 && (procs == 1 || G == procs), "partitions ", G, " over ", procs, " processes");
  const int64_t n_all = samples.n_total ? samples.n_total : n;
  const int first = procs == 1 ? 0 : samples.first_partition;
  const int64_t bs = std::min<int64_t>(o.batch_size, n_all);
  const int64_t picks = bs * o.gradient_accumulate_steps;
  AR_CHECK(picks >= G && n_all >= G, picks, " samples per step, ", n_all, " samples, ", G, " partitions");
  auto part_begin = [&](int64_t total, int p) { return total * p / G; };
  // This process's partitions: their samplers, the offset of their samples in `samples`, and
  // their share of each step's picks.
  std::vector<CyclicSampler> samplers;
  std::vector<int64_t> offset, share;
  const int64_t base = part_begin(n_all, first);
  for (int q = 0; q < local; ++q) {
    const int p = first + q;
    samplers.emplace_back(part_begin(n_all, p + 1) - part_begin(n_all, p), o.seed + uint64_t(p));
    offset.push_back(part_begin(n_all, p) - base);
    share.push_back(part_begin(picks, p + 1) - part_begin(picks, p));
  }
  AR_CHECK(part_begin(n_all, first + local) - base == n, n, " samples given for partitions [", first, ", ",
           first + local, ") of ", n_all);
  const double lr0 = o.lr > 0 ? o.lr : 1.0 / o.iters;
  const double mm_lr0 = o.minmax_lr > 0 ? o.minmax_lr : lr0;
  const LinearWeightSource w = [&S](int i) { return S.fake_quantized(i); };
  const MoeWeightMaker make_expert = [&S](int i, float* slot, bool b16) { return S.make_expert_weight(i, slot, b16); };
  // The first partition accumulates into dw, each further one into `part`, added after it; both
  // point at the tuned group's linears (set_grads).
  BlockLinearGrads dw(static_cast<size_t>(nl)), part(static_cast<size_t>(nl));
  std::vector<std::vector<float>> part_bufs(static_cast<size_t>(nl));
  auto set_grads = [&]() {
    for (int i = 0; i < nl; ++i) {
      LinearState& s = st[size_t(i)];
      dw[i] = s.tuned ? s.dw.data() : nullptr;
      part_bufs[size_t(i)].assign(s.tuned && local > 1 ? s.dw.size() : 0, 0.f);
      part_bufs[size_t(i)].shrink_to_fit();
      part[i] = s.tuned && local > 1 ? part_bufs[size_t(i)].data() : nullptr;
    }
  };
  // Fetches sample `idx` into x / t (T, C): its input and its target, made now when streamed.
  auto fetch = [&](int64_t idx, float* x, float* t) {
    samples.fetch(idx, x, t);
    if (samples.fp_inputs) {  // streamed targets: T = block_fp(X) now (it uses the tuner's scratch)
      fp_forward(S.y.data(), t);
      std::copy_n(S.y.data(), TC, t);
    }
  };
  // One chunk of m samples in x/t through forward, loss and backward into g; returns its share of
  // the step's loss (the mean over its elements, weighted by m / picks).
  auto chunk_step = [&](BlockGradScratch& scr, const float* x, const float* t, float* y, float* dy, int64_t m,
                        const BlockLinearGrads& g, const LinearWeightSource& src, DenseGrads dense,
                        const MoeWeightMaker* experts) {
    block_forward_train(y, scr, x, S.b, src, S.c, S.rope, o.precision, m, experts);
    double l;
    {
      PhaseScope scope(Phase::Loss);
      l = mse_loss_forward_backward(dy, y, t, m * TC, float(m) / float(picks)) * double(m) / double(picks);
    }
    block_backward(nullptr, g, scr, dy, x, S.b, src, S.c, S.rope, o.precision, dense, experts);
    return l;
  };
  // The dense linears' gradients are not cleared before a step: the first backward into a buffer
  // writes them (DenseGrads::Overwrite), which saves writing 400 MB of zeros per step for a 4B
  // block. The experts' are cleared (an expert no token reached gets no write), and so are the
  // dense ones of a buffer no backward reaches (a partition without picks).
  // clears(i, dense): whether a clearing of the dense gradients (dense) or of the experts' (not)
  // clears linear i's. Without o.overwrite_dense_grads every one is cleared and added to.
  // bf16 dL/dW' (see bf16_weight_grads): one backward per step writes every dense gradient, and
  // only the integer schemes' fused pass reads them.
  LinearSchemes schemes;
  for (const LinearState& s : st) schemes.push_back(s.scheme);
  S.grads16 = local == 1 && procs == 1 && bf16_weight_grads_apply(S.plan, o, share[0], integer_dense_schemes(schemes));
  r.bf16_weight_grads = S.grads16;
  const DenseGrads first_write = S.grads16              ? DenseGrads::OverwriteBf16
                                 : o.overwrite_dense_grads ? DenseGrads::Overwrite
                                                           : DenseGrads::Add;
  auto clears = [&](int i, bool dense) { return (i >= kDenseLinears) != dense || !o.overwrite_dense_grads; };
  auto clear_grads = [&](const BlockLinearGrads& g, bool dense) {
    for (int i = 0; i < nl; ++i)
      if (g[i] && clears(i, dense)) std::fill_n(g[i], st[size_t(i)].dw.size(), 0.f);
  };
  // One lane: partition q's share in chunks, W' made on demand.
  auto run_chunks = [&](int q, const BlockLinearGrads& g) {
    double l = 0;
    if (share[size_t(q)] == 0) clear_grads(g, /*dense=*/true);
    for (int64_t k = 0; k < share[size_t(q)]; k += S.plan.cap) {
      const int64_t m = std::min(S.plan.cap, share[size_t(q)] - k);
      const float *x = S.x.data(), *t = S.second.data();
      for (int64_t j = 0; j < m; ++j) {
        const int64_t idx = offset[size_t(q)] + samplers[size_t(q)].next();
        // One sample whose cached target is resident: read in place, not copied.
        if (m == 1 && !samples.fp_inputs && samples.view && samples.view(idx, &x, &t)) continue;
        x = S.x.data();
        t = S.second.data();
        fetch(idx, S.x.data() + j * TC, S.second.data() + j * TC);
      }
      l += chunk_step(S.scratch, x, t, S.y.data(), S.dy.data(), m, g, w, k == 0 ? first_write : DenseGrads::Add,
                      &make_expert);
    }
    return l;
  };
  // into[i] += from[i] for every linear that has both (each the size of that linear's dW).
  auto add_grads = [&](const BlockLinearGrads& into, const BlockLinearGrads& from) {
    for (int i = 0; i < nl; ++i) {
      if (!into[i] || !from[i]) continue;
      float* d = into[i];
      const float* e = from[i];
      for (size_t j = 0, nw = st[size_t(i)].dw.size(); j < nw; ++j) d[j] += e[j];
    }
  };
  // Units (small blocks): partition q's picks are fetched here (streamed targets use the tuner's
  // scratch), cut into units of up to `cap` samples, and run by two threads on the step's W', each
  // taking the next unit when it comes free. Unit 0 adds into g, unit u > 0 into its own buffer,
  // added to g in unit order afterwards: the same sum whoever ran which unit.
  auto run_units = [&](int q, const BlockLinearGrads& g) {
    State::Lane& L1 = *S.lane1;
    BlockLinearWeights wl(static_cast<size_t>(nl));
    for (int i = 0; i < nl; ++i)
      wl[i] = st[size_t(i)].quantized ? S.w_step[size_t(i)].data() : st[size_t(i)].l->w.as<float>();
    const LinearWeightSource src = [&wl](int i) { return wl[size_t(i)]; };
    const int64_t n = share[size_t(q)], cap = S.plan.cap, units = (n + cap - 1) / cap;
    if (n == 0) clear_grads(g, /*dense=*/true);
    AR_CHECK(n <= S.plan.share && units <= S.plan.units, n, " picks in ", units, " units, planned ", S.plan.share,
             " in ", S.plan.units);
    for (int64_t k = 0; k < n; ++k)
      fetch(offset[size_t(q)] + samplers[size_t(q)].next(), S.x.data() + k * TC, S.second.data() + k * TC);
    std::vector<BlockLinearGrads> ug(size_t(units), g);
    for (int64_t u = 1; u < units; ++u)
      for (int i = 0; i < nl; ++i)
        if (g[i]) ug[size_t(u)][i] = S.unit_dw[size_t(u - 1)][size_t(i)].data();
    std::vector<double> unit_loss(size_t(units), 0.0);
    std::atomic<int64_t> next{0};
    std::exception_ptr err[2];
    auto worker = [&](int t) {
      BlockGradScratch& scr = t == 0 ? S.scratch : L1.scratch;
      float* y = t == 0 ? S.y.data() : L1.y.data();
      float* dy = t == 0 ? S.dy.data() : L1.dy.data();
      try {
        for (int64_t u; (u = next.fetch_add(1)) < units;) {
          const BlockLinearGrads& gu = ug[size_t(u)];
          if (u > 0) clear_grads(gu, /*dense=*/false);  // unit 0's g: cleared by the step
          const int64_t first = u * cap, m = std::min(cap, n - first);
          unit_loss[size_t(u)] = chunk_step(scr, S.x.data() + first * TC, S.second.data() + first * TC, y, dy, m, gu,
                                            src, first_write, nullptr);  // one backward per unit
        }
      } catch (...) {
        err[t] = std::current_exception();
        next.store(units);  // the other thread stops after its unit
      }
    };
    if (omp_get_max_threads() > 1) {
#pragma omp parallel num_threads(2)
      worker(omp_get_thread_num());
    } else {
      worker(0);
    }
    for (auto& e : err)
      if (e) std::rethrow_exception(e);
    double l = 0;
    for (int64_t u = 0; u < units; ++u) {
      if (u > 0) add_grads(g, ug[size_t(u)]);
      l += unit_loss[size_t(u)];
    }
    return l;
  };

  // Experts the calibration data never routed a token to got no gradient, so tuning left them at
  // plain RTN: they get optimized RTN instead (integer schemes; GGUF targets start from their
  // format's own scale search, floating-point schemes have plain RTN anyway), before later groups
  // tune against them, and are named once at the end.
  std::string unrouted;
  auto unrouted_experts_to_opt_rtn = [&](int group) {
    if (S.b.experts.empty()) return;
    const int64_t E = int64_t(S.b.experts.size() / 3);
    std::vector<double> routed(size_t(E), 0.0);
    for (BlockGradScratch* sc : {&S.scratch, S.lane1 ? &S.lane1->scratch : nullptr})
      if (sc && sc->moe)
        for (size_t e = 0; e < sc->moe->routed.size(); ++e) routed[e] += double(sc->moe->routed[e]);
    if (comm.size() > 1) comm.sum_ordered(routed.data(), routed.size());
    for (int64_t e = 0; e < E; ++e) {
      if (routed[size_t(e)] > 0 || linear_expert_group(S.b, kDenseLinears + 3 * int(e), S.groups) != group) continue;
      unrouted += (unrouted.empty() ? "" : ", ") + std::to_string(e);
      for (int j = 0; j < 3; ++j) {
        const int i = kDenseLinears + 3 * int(e) + j;
        LinearState& s = S.st[size_t(i)];
        if (!s.tuned || s.gguf || s.scheme.is_fp()) continue;
        r.q[size_t(i)] = quantize_opt_rtn(S.original(i), s.l->out, s.l->in, s.scheme);
      }
    }
  };
  for (BlockGradScratch* sc : {&S.scratch, S.lane1 ? &S.lane1->scratch : nullptr})
    if (sc && sc->moe) sc->moe->routed.clear();  // count what tuning routes, not the target pass
  const auto t0 = std::chrono::steady_clock::now();
  for (int group = 0; group < S.groups; ++group) {
    S.begin_group(group);
    set_grads();
    BlockTuneResult::Group gr;
    gr.best_loss = INFINITY;
    for (int it = 0; it < o.iters; ++it) {
      throw_if_interrupted("during SignRound tuning");
      // This step's parameters: W' is made from them on demand from here on.
      S.work_holds = -1;
      S.held_ok.swap(S.held_next);  // what the last update made for this step is ready
      std::fill(S.held_next.begin(), S.held_next.end(), 0);
      for (LinearState& s : st) {
        if (!s.tuned) continue;
        clamp01(s.min_scale);  // a projection before use, not part of the gradient
        clamp01(s.max_scale);
        if (clears(int(&s - st.data()), /*dense=*/false)) zero_fill(s.dw);  // the dense ones: see clear_grads
      }
      if (S.plan.lanes > 1)  // both threads read every W' at once: made up front, once per step
        for (int i = 0; i < nl; ++i)
          if (st[size_t(i)].tuned) S.make_fake_quantized(i, S.w_step[size_t(i)].data());
      // loss = mean over every element of the picked samples; each sample's share is 1/picks.
      double loss = 0;
      for (int q = 0; q < local; ++q) {
        BlockLinearGrads& g = q == 0 ? dw : part;
        if (q > 0) clear_grads(part, /*dense=*/false);
        const double part_loss = S.plan.lanes > 1 ? run_units(q, g) : run_chunks(q, g);
        if (q == 0) {
          loss = part_loss;
          continue;
        }
        loss += part_loss;
        add_grads(dw, part);
      }
      if (procs > 1) {  // the other ranks' partitions, added in rank order
        comm.sum_ordered(&loss, 1);
        for (LinearState& s : st)
          if (s.tuned) comm.sum_ordered(s.dw.data(), s.dw.size());
      }
      if (it == 0) gr.loss_iter0 = loss;
      const bool new_best = loss < gr.best_loss;  // the parameters this loss was measured with
      if (new_best) {
        gr.best_loss = loss;
        gr.best_iter = it;
      }
      if (it + 1 == o.iters) {  // a last update would never be evaluated
        if (new_best) quantize_current();
        break;
      }
      std::fill(codes_later.begin(), codes_later.end(), 0);
      if (new_best) {  // the update's pass writes the codes it can, the others are made now
        for (int i = 0; i < nl; ++i) codes_later[size_t(i)] = st[size_t(i)].tuned && codes_in_update(i);
        quantize_current(&codes_later);
      }
      // LinearLR(start 1, end 0, total iters): step `it` uses lr * (1 - it / iters).
      const float decay = float(1.0 - double(it) / o.iters);
      const float lr = float(lr0) * decay, mm_lr = float(mm_lr0) * decay;
      S.work_holds = -1;  // the work buffer now holds dL/dv, one linear at a time
      for (LinearState& s : st) {
        if (!s.tuned) continue;
        std::fill(s.dmin.begin(), s.dmin.end(), 0.f);
        std::fill(s.dmax.begin(), s.dmax.end(), 0.f);
        float* dmin = o.enable_minmax_tuning ? s.dmin.data() : nullptr;
        float* dmax = o.enable_minmax_tuning ? s.dmax.data() : nullptr;
        std::optional<PhaseScope> scope(std::in_place, Phase::FakeQuantGrad);
        // Integer schemes: v's signed step in the same pass (no dL/dv buffer); a held W' is made
        // for the next step there too, with the scales' steps (the pass has v and w at hand).
        const bool fused = !s.gguf && !s.scheme.is_fp();
        const size_t i = size_t(&s - st.data());
        const NextStepWprime next{mm_lr, dmin ? s.min_scale.data() : nullptr, dmax ? s.max_scale.data() : nullptr,
                                  o.fuse_step_outputs && S.held_at[i] >= 0 ? S.held.data() + S.held_at[i] : nullptr,
                                  codes_later[i] ? &r.q[i] : nullptr};
        const NextStepWprime* nx = fused && (next.w_dq16 || next.codes) ? &next : nullptr;
        const MatrixView dw = S.grads16 && int(i) < kDenseLinears
                                  ? MatrixView(reinterpret_cast<const uint16_t*>(s.dw.data()))
                                  : MatrixView(s.dw.data());
        if (fused && s.w_bf16.empty())
          fake_quant_backward_step(s.v.data(), lr, dmin, dmax, dw, s.l->w.as<float>(), s.l->out, s.l->in, s.scheme,
                                   s.min_scale.data(), s.max_scale.data(), o.clamp_grad, nx);
        else if (fused)
          fake_quant_backward_step(s.v.data(), lr, dmin, dmax, dw, s.w_bf16.data(), s.l->out, s.l->in, s.scheme,
                                   s.min_scale.data(), s.max_scale.data(), o.clamp_grad, nx);
        if (nx && next.w_dq16) {  // the scales' steps were taken in the pass
          S.held_next[i] = 1;
          continue;
        }
        if (fused) {
          scope.emplace(Phase::Update);
          if (o.enable_minmax_tuning) {
            signed_step(s.min_scale, s.dmin, mm_lr);
            signed_step(s.max_scale, s.dmax, mm_lr);
          }
          continue;
        }
        float* dv = S.work.data();
        const size_t nw = size_t(s.n_weights());
        std::fill_n(dv, nw, 0.f);
        if (s.gguf && s.w_bf16.empty())
          gguf_fake_quant_backward(dv, dmin, dmax, s.dw.data(), s.l->w.as<float>(), s.l->out, s.l->in, s.gg,
                                   s.v.data(), s.min_scale.data(), s.max_scale.data(), o.clamp_grad);
        else if (s.gguf)
          gguf_fake_quant_backward(dv, dmin, dmax, s.dw.data(), s.w_bf16.data(), s.l->out, s.l->in, s.gg, s.v.data(),
                                   s.min_scale.data(), s.max_scale.data(), o.clamp_grad);
        else if (s.w_bf16.empty())
          fake_quant_backward(dv, dmin, dmax, s.dw.data(), s.l->w.as<float>(), s.l->out, s.l->in, s.scheme, s.v.data(),
                              s.min_scale.data(), s.max_scale.data(), o.clamp_grad, s.global_amax);
        else
          fake_quant_backward(dv, dmin, dmax, s.dw.data(), s.w_bf16.data(), s.l->out, s.l->in, s.scheme, s.v.data(),
                              s.min_scale.data(), s.max_scale.data(), o.clamp_grad, s.global_amax);
        scope.emplace(Phase::Update);
        signed_step(s.v.data(), dv, nw, lr);
        if (o.enable_minmax_tuning) {
          signed_step(s.min_scale, s.dmin, mm_lr);
          signed_step(s.max_scale, s.dmax, mm_lr);
        }
      }
    }
    unrouted_experts_to_opt_rtn(group);
    S.end_group(group, r);
    r.groups.push_back(gr);
    if (S.groups > 1)
      log_info("block ", S.b.layer, " expert group ", group + 1, "/", S.groups, ": loss iter 0 ", gr.loss_iter0,
               " -> best ", gr.best_loss, " (iter ", gr.best_iter, ")");
  }
  set_grads();  // no group is tuned any more: frees the partitions' buffers
  r.loss_iter0 = r.groups.front().loss_iter0;
  r.best_loss = r.groups.back().best_loss;
  r.best_iter = r.groups.back().best_iter;
  if (!unrouted.empty())
    log_info("block ", S.b.layer, ": experts no calibration token reached (optimized RTN): ", unrouted);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char per_step[32];
  std::snprintf(per_step, sizeof per_step, "%.3f", secs / (double(o.iters) * S.groups));
  if (S.groups == 1)
    log_info("block ", S.b.layer, ": loss iter 0 ", r.loss_iter0, " -> best ", r.best_loss, " (iter ", r.best_iter,
             "); ", o.iters, " steps, ", per_step, " s/step");
  else  // the first group starts next to full-precision experts: its first loss is not the RTN block's
    log_info("block ", S.b.layer, ": loss iter 0 ", r.loss_iter0, " (first group) -> best ", r.best_loss,
             " (last group, iter ", r.best_iter, "); ", int64_t(o.iters) * S.groups, " steps in ", S.groups,
             " expert groups, ", per_step, " s/step");
  return r;
}

std::vector<float> block_nvfp4_global_amax(const BlockWeights& b,
                                                         const LinearSchemes& schemes,
                                                         bool fused) {
  const int nl = block_linear_count(b);
  AR_CHECK(schemes.size() == size_t(nl), schemes.size(), " schemes for ", nl, " linears");
  std::vector<float> r(static_cast<size_t>(nl), -1.f);
  std::vector<std::string> names(static_cast<size_t>(nl));
  std::vector<float> amax(static_cast<size_t>(nl), 0.f);
  std::vector<bool> nv(static_cast<size_t>(nl), false);
  bool any = false;
  for (int i = 0; i < nl; ++i) {
    const QuantScheme& q = schemes[size_t(i)];
    nv[size_t(i)] = q.quantized() && !q.gguf_target() && q.data_type == DataType::NVFP4;
    if (!nv[size_t(i)]) continue;
    any = true;
    const LinearWeights& l = *block_linears(b, i);
    names[size_t(i)] = l.name;
    const float* w = l.w.as<float>();
    float m = 0.f;
    for (int64_t k = 0; k < l.out * l.in; ++k) m = std::max(m, std::fabs(w[k]));
    amax[size_t(i)] = m;
  }
  if (!any) return r;
  const std::vector<float> g = nvfp4_global_amax(names, amax, nv, fused);
  for (int i = 0; i < nl; ++i)
    if (nv[size_t(i)]) r[size_t(i)] = g[size_t(i)];
  return r;
}

int expert_group_count(const BlockWeights& b, int requested) {
  const int experts = int(b.experts.size() / 3);
  return experts == 0 ? 1 : std::clamp(requested, 1, experts);
}

int linear_expert_group(const BlockWeights& b, int i, int groups) {
  if (i < kDenseLinears) return 0;
  const int64_t experts = int64_t(b.experts.size() / 3);
  return int(int64_t((i - kDenseLinears) / 3) * groups / experts);
}

BlockTuneResult tune_block(const BlockWeights& b, const ModelConfig& c,
                           const LinearSchemes& schemes, const float* xq,
                           const float* target, int64_t n, int64_t T, const SignRoundOptions& o) {
  AR_CHECK(n > 0 && T > 0, "tune_block with n=", n, " T=", T);
  BlockTuner tuner(b, c, schemes, T, o);
  const int64_t TC = T * c.hidden_size;
  TuneSamples s;
  s.n = n;
  s.fetch = [&](int64_t idx, float* x, float* t) {
    std::copy_n(xq + idx * TC, TC, x);
    std::copy_n(target + idx * TC, TC, t);
  };
  s.view = [&](int64_t idx, const float** x, const float** t) {
    *x = xq + idx * TC;
    *t = target + idx * TC;
    return true;
  };
  return tuner.tune(s);
}

}  // namespace ar
