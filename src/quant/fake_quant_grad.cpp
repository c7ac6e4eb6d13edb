// Fake quantization and its straight-through backward, one (row, group) at a time. The forward
// reuses the RTN group routines so that w' is exactly what quantize_rtn would emit; the backward
// recomputes each group's scale (cheap next to the GEMMs) instead of saving it.
#include "quant/fake_quant_grad.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/qdq.h"
#include "quant/fp_fake_quant_grad.h"
#include "quant/rtn.h"
#include "quant/weight_rows.h"

namespace ar {

namespace {

// What the backward of one group needs beyond the stored scale: the constants wmin/wmax, which
// side the symmetric scale took, whether the floor replaced the scale (then no gradient reaches
// the scale's inputs), and the zero point as the forward used it.
struct GroupGradInfo {
  float wmin = 0, wmax = 0;  // min(0, min w), max(0, max w)
  float scale = 0;           // f32 value of the stored fp16 scale
  float zero = 0;            // sym: 2^(b-1) (unused); asym: round(-wmin*min_scale / scale)
  bool hi_side = false;      // sym: s = -hi / 2^(b-1) (else s = lo / 2^(b-1))
  bool floored = false;
};

// An asymmetric scheme's group (a symmetric one's come from sym_range_params_n, which gives
// hi_side and floored too).
GroupGradInfo asym_group_info(const float* w, int64_t n, int bits, float lo_s, float hi_s) {
  GroupGradInfo g;
  group_range(w, n, &g.wmin, &g.wmax);
  // Same expression as asym_range_params, so the raw scale (before fp16 and the floor) is the one
  // it rounded; the floor changed it iff the stored bits differ.
  const float raw = (g.wmax * hi_s - g.wmin * lo_s) / float((1 << bits) - 1);
  const GroupQuant p = asym_range_params(g.wmin, g.wmax, bits, lo_s, hi_s);
  g.scale = p.scale;
  g.floored = p.scale_f16 != f32_to_f16(raw);
  g.zero = std::nearbyint(-(g.wmin * lo_s) / p.scale);  // unclamped, as autograd sees it
  return g;
}

// The n values of a group's dL/dW' and of its v (null: none) into the caches, one line at a time.
// A bf16 dL/dW' is left to the hardware prefetchers: fetched by hand as well, the pass took 145 ms
// instead of 107-113 (a 4B block's step, 2 threads, bench/fake_quant_step_bench), one prefetch per
// line or two.
template <typename G>
inline void prefetch_group(const G* dw, const float* v, int64_t n) {
  for (int64_t k = 0; k < n; k += 16) {
    if constexpr (std::is_same_v<G, float>) __builtin_prefetch(dw + k, 0, 2);
    if (v) __builtin_prefetch(v + k, 1, 2);
  }
}

// The n weights (f32 or bf16) from offset `at` into the caches.
template <typename Rows>
void prefetch_weights(const Rows& rows, int64_t at, int64_t n) {
  const char* w = reinterpret_cast<const char*>(rows.w + at);
  for (size_t b = 0; b < size_t(n) * sizeof(*rows.w); b += 64) __builtin_prefetch(w + b, 0, 2);
}

// W' into w_dq (f32), or into w_dq16 as bf16 bits (integer schemes; w_dq null then).
template <typename Rows>
void fake_quant_forward_rows(float* w_dq, uint16_t* w_dq16, const Rows& rows, int64_t out, int64_t in,
                             const QuantScheme& s, const float* v, const float* min_scale, const float* max_scale,
                             float global_amax) {
  // Floating-point formats are symmetric: no min_scale.
  if (s.is_fp()) {
    AR_CHECK(w_dq, "fake_quant_forward: no bf16 output for ", scheme_label(s));
    return fp_fake_quant_forward(w_dq, rows, out, s, v, max_scale, global_amax);
  }
  check_quantizable(s);
  const int64_t G = effective_group_size(s, in), ng = num_groups(s, in);
#pragma omp parallel if (out * in >= (int64_t(1) << 16))
  {
    std::vector<float> row_buf(Rows::kWidens ? size_t(in) : 0), row_out(w_dq16 ? size_t(in) : 0);
    // A symmetric scheme's row: every group's range, then their scales 8 groups at a time
    // (sym_range_params_n, the bits of sym_group_params), then W'.
    std::vector<float> mn(s.sym ? size_t(ng) : 0), mx(mn.size()), ones(min_scale && max_scale ? 0 : mn.size(), 1.f);
    std::vector<GroupQuant> params(mn.size());
#pragma omp for schedule(static)
    for (int64_t o = 0; o < out; ++o) {
      const float* wr = rows.row(o, row_buf.data());
      float* dst = w_dq16 ? row_out.data() : w_dq + o * in;
      if (s.sym) {
        for (int64_t g = 0; g < ng; ++g) group_range(wr + g * G, std::min(G, in - g * G), &mn[size_t(g)], &mx[size_t(g)]);
        sym_range_params_n(params.data(), ng, mn.data(), mx.data(), s.bits,
                           min_scale ? min_scale + o * ng : ones.data(), max_scale ? max_scale + o * ng : ones.data());
      }
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t i0 = g * G, n = std::min(G, in - i0), at = o * in + i0, gi = o * ng + g;
        const float lo_s = min_scale ? min_scale[gi] : 1.f, hi_s = max_scale ? max_scale[gi] : 1.f;
        const GroupQuant p = s.sym ? params[size_t(g)] : group_params(wr + i0, n, false, s.bits, lo_s, hi_s);
        group_fake_quant(dst + i0, wr + i0, v ? v + at : nullptr, n, p.scale, p.zero, s.bits);
      }
      if (w_dq16) f32_to_bf16(w_dq16 + o * in, dst, size_t(in));
    }
  }
}

// dL/d(wmin*min_scale), dL/d(wmax*max_scale) of one group from its ds and dzp (group_grad's sums).
struct RangeGrads {
  float dwmin = 0, dwmax = 0;
};
RangeGrads range_grads(const GroupGradInfo& info, const QuantScheme& s, float lo_s, float ds, float dzp, float qhi) {
  RangeGrads r;
  if (s.sym) {
    if (!info.floored) {
      const float dmax_v = ds / float(1 << (s.bits - 1));
      // max_v = -hi (hi = wmax*max_scale) or lo (lo = -wmin*min_scale).
      if (info.hi_side)
        r.dwmax = -dmax_v;
      else
        r.dwmin = -dmax_v;
    }
  } else {
    // zp = round(-wmin'/s) with wmin' = wmin*min_scale: STE gives dzp/dwmin' = -1/s and
    // dzp/ds = wmin'/s^2; s = (wmax' - wmin') / qmax.
    const float sc = info.scale, wmin_c = info.wmin * lo_s;
    r.dwmin += -dzp / sc;
    if (!info.floored) {
      const float ds_all = (ds + dzp * wmin_c / (sc * sc)) / qhi;
      r.dwmax += ds_all;
      r.dwmin -= ds_all;
    }
  }
  return r;
}

// dv given: dv += dL/dv. v_out given instead: the signed step on v in place (group_grad), and
// with `next` the group's scale steps into scales_out[0/1] (min/max) and its next W' (see
// fake_quant_backward_step).
//
// A row at a time, in phases over its groups: every group's range and scale, then every group's
// gradient, then every group's scale steps, then every next W'. Each group's work is one chain
// (range -> scale -> gradient sums -> steps -> next scale -> W'); phase by phase, the chains of a
// row's groups are independent and the CPU overlaps them. The groups do not interact, so the
// order gives the same bits as one group after another.
// dw_dq: f32, or (integer schemes) bf16 bits.
template <typename Rows, typename Grad>
void fake_quant_backward_rows(float* dv, float* v_out, float lr, float* dmin_scale, float* dmax_scale,
                              const Grad* dw_dq, const Rows& rows, int64_t out, int64_t in, const QuantScheme& s,
                              const float* v, const float* min_scale, const float* max_scale, ClampGrad cg,
                              float global_amax, const NextStepWprime* next = nullptr,
                              float* const* scales_out = nullptr) {
  if constexpr (std::is_same_v<Grad, float>) {
    if (s.is_fp()) return fp_fake_quant_backward(dv, dmax_scale, dw_dq, rows, out, s, v, max_scale, cg, global_amax);
  } else {
    AR_CHECK(!s.is_fp(), "fake_quant_backward: a bf16 dL/dW' for ", scheme_label(s), " (integer schemes only)");
  }
  check_quantizable(s);
  const int64_t G = effective_group_size(s, in), ng = num_groups(s, in);
  // Integer range of round(w/s + v) [+ zp] that clamp lets through.
  const float qlo = s.sym ? -float(1 << (s.bits - 1)) : 0.f;
  const float qhi = s.sym ? float((1 << (s.bits - 1)) - 1) : float((1 << s.bits) - 1);
  const bool next_w = next && next->w_dq16;
  struct Group {
    float lo_s, hi_s;  // min/max_scale as this step uses them
    GroupGradInfo info;
    GroupGradSums sums;
    GroupQuant next;  // the next step's parameters
  };
  // A symmetric scheme's scales come from sym_range_params_n, a row's groups at once (8 at a time
  // in vector registers, the bits of sym_range_params).
  struct SymParams {
    std::vector<float> wmin, wmax, lo, hi;
    std::vector<GroupQuant> p;
    std::vector<uint8_t> hi_side, floored;
    void resize(size_t n) {
      for (auto* v : {&wmin, &wmax, &lo, &hi}) v->resize(n);
      p.resize(n);
      hi_side.resize(n);
      floored.resize(n);
    }
  };
  for_each_row(rows, out, in, [&](int64_t o, const float* wr) {
    thread_local std::vector<Group> groups;
    thread_local SymParams sp;
    groups.resize(size_t(ng));
    if (s.sym) sp.resize(size_t(ng));
    auto span = [&](int64_t g, int64_t* n, int64_t* at) {
      *n = std::min(G, in - g * G);
      *at = o * in + g * G;
      return wr + g * G;
    };
    for (int64_t g = 0; g < ng; ++g) {
      Group& q = groups[size_t(g)];
      const int64_t gi = o * ng + g;
      int64_t n, at;
      const float* w = span(g, &n, &at);
      q.lo_s = min_scale ? min_scale[gi] : 1.f;
      q.hi_s = max_scale ? max_scale[gi] : 1.f;
      if (!s.sym) {
        q.info = asym_group_info(w, n, s.bits, q.lo_s, q.hi_s);
        continue;
      }
      group_range(w, n, &sp.wmin[size_t(g)], &sp.wmax[size_t(g)]);
      sp.lo[size_t(g)] = q.lo_s;
      sp.hi[size_t(g)] = q.hi_s;
    }
    if (s.sym) {
      sym_range_params_n(sp.p.data(), ng, sp.wmin.data(), sp.wmax.data(), s.bits, sp.lo.data(), sp.hi.data(),
                         sp.hi_side.data(), sp.floored.data());
      for (int64_t g = 0; g < ng; ++g) {
        const size_t k = size_t(g);
        GroupGradInfo& info = groups[k].info;  // as group_info gives it
        info.wmin = sp.wmin[k];
        info.wmax = sp.wmax[k];
        info.scale = sp.p[k].scale;
        info.zero = float(sp.p[k].zero);
        info.hi_side = sp.hi_side[k] != 0;
        info.floored = sp.floored[k] != 0;
      }
    }
    for (int64_t g = 0; g < ng; ++g) {
      Group& q = groups[size_t(g)];
      int64_t n, at;
      const float* w = span(g, &n, &at);
      // ds: dL/ds through w' = s*(q - zp) and through w/s; dzp: dL/dzp (asym).
      const float zp = s.sym ? 0.f : q.info.zero;
      // The codes of the parameters as they are, before v's step: the gradient's own q (it
      // rounds with p's scale) when the stored zero is the one it rounds with (always, for
      // min/max scales in [0, 1]; see asym_range_params), else quantized apart.
      uint8_t* codes = nullptr;
      if (next && next->codes) {
        const GroupQuant p =
            s.sym ? sp.p[size_t(g)] : asym_range_params(q.info.wmin, q.info.wmax, s.bits, q.lo_s, q.hi_s);
        if (float(p.zero) == zp - qlo) {
          codes = next->codes->codes.data() + at;
          write_group_params(*next->codes, o * ng + g, p);
        } else {
          write_group_rtn(*next->codes, at, o * ng + g, w, v + at, n, p, s.bits);
        }
      }
      q.sums = group_grad(dw_dq + at, w, v ? v + at : nullptr, n,
                          GroupGradConsts{q.info.scale, zp, qlo, qhi, cg == ClampGrad::Strict}, dv ? dv + at : nullptr,
                          v_out ? v_out + at : nullptr, lr, codes);
    }
    // The next row's weights, dL/dW' and v are fetched while this row's steps and W' are
    // computed: left to the hardware prefetchers, the next row's gradient phase waits on memory
    // (a 4B block's step: 140 -> 106 ms on 2 threads, bench/fake_quant_step_bench).
    const bool fetch_next = o + 1 < out;
    if (fetch_next) prefetch_weights(rows, (o + 1) * in, in);
    for (int64_t g = 0; g < ng; ++g) {
      Group& q = groups[size_t(g)];
      const int64_t gi = o * ng + g;
      if (dmin_scale || dmax_scale) {
        const float dzp = s.sym ? 0.f : q.sums.dzp;  // w' = s*(clamp(r + zp) - zp)
        const RangeGrads d = range_grads(q.info, s, q.lo_s, q.sums.ds, dzp, qhi);
        if (dmin_scale) dmin_scale[gi] += d.dwmin * q.info.wmin;
        if (dmax_scale) dmax_scale[gi] += d.dwmax * q.info.wmax;
      }
      if (!next_w) {
        int64_t n, at;
        span(g, &n, &at);
        if (fetch_next) prefetch_group(dw_dq + at + in, v ? v + at + in : nullptr, n);
        continue;
      }
      // This group's scales and v are final once its gradients are: the next step's parameters.
      float lo = q.lo_s, hi = q.hi_s;
      if (dmin_scale) scales_out[0][gi] = lo = clamp01_value(signed_step_value(q.lo_s, dmin_scale[gi], next->mm_lr));
      if (dmax_scale) scales_out[1][gi] = hi = clamp01_value(signed_step_value(q.hi_s, dmax_scale[gi], next->mm_lr));
      // The weights did not change, so neither did their range (group_params would find it again).
      if (s.sym) {
        sp.lo[size_t(g)] = lo;
        sp.hi[size_t(g)] = hi;
      } else {
        q.next = asym_range_params(q.info.wmin, q.info.wmax, s.bits, lo, hi);
      }
    }
    if (next_w && s.sym) {
      sym_range_params_n(sp.p.data(), ng, sp.wmin.data(), sp.wmax.data(), s.bits, sp.lo.data(), sp.hi.data());
      for (int64_t g = 0; g < ng; ++g) groups[size_t(g)].next = sp.p[size_t(g)];
    }
    if (next_w)
      for (int64_t g = 0; g < ng; ++g) {
        const Group& q = groups[size_t(g)];
        int64_t n, at;
        const float* w = span(g, &n, &at);
        if (fetch_next) prefetch_group(dw_dq + at + in, v ? v + at + in : nullptr, n);
        group_fake_quant_bf16(next->w_dq16 + at, w, v_out + at, n, q.next.scale, q.next.zero, s.bits);
      }
  });
}

}  // namespace

void fake_quant_forward(float* w_dq, const float* w, int64_t out, int64_t in, const QuantScheme& s,
                        const float* v, const float* min_scale, const float* max_scale, float global_amax) {
  fake_quant_forward_rows(w_dq, nullptr, F32Rows{w, in}, out, in, s, v, min_scale, max_scale, global_amax);
}

void fake_quant_forward(float* w_dq, const uint16_t* w_bf16, int64_t out, int64_t in, const QuantScheme& s,
                        const float* v, const float* min_scale, const float* max_scale, float global_amax) {
  fake_quant_forward_rows(w_dq, nullptr, Bf16Rows{w_bf16, in}, out, in, s, v, min_scale, max_scale, global_amax);
}

void fake_quant_forward_bf16(uint16_t* w_dq, const float* w, int64_t out, int64_t in, const QuantScheme& s,
                             const float* v, const float* min_scale, const float* max_scale) {
  fake_quant_forward_rows(nullptr, w_dq, F32Rows{w, in}, out, in, s, v, min_scale, max_scale, -1.f);
}

void fake_quant_forward_bf16(uint16_t* w_dq, const uint16_t* w_bf16, int64_t out, int64_t in, const QuantScheme& s,
                             const float* v, const float* min_scale, const float* max_scale) {
  fake_quant_forward_rows(nullptr, w_dq, Bf16Rows{w_bf16, in}, out, in, s, v, min_scale, max_scale, -1.f);
}

void fake_quant_backward(float* dv, float* dmin_scale, float* dmax_scale, const float* dw_dq,
                         const float* w, int64_t out, int64_t in, const QuantScheme& s,
                         const float* v, const float* min_scale, const float* max_scale, ClampGrad cg,
                         float global_amax) {
  fake_quant_backward_rows(dv, nullptr, 0.f, dmin_scale, dmax_scale, dw_dq, F32Rows{w, in}, out, in, s, v, min_scale,
                           max_scale, cg, global_amax);
}

namespace {
template <typename Rows>
void backward_step_rows(float* v, float lr, float* dmin_scale, float* dmax_scale, MatrixView dw_dq, const Rows& rows,
                        int64_t out, int64_t in, const QuantScheme& s, const float* min_scale, const float* max_scale,
                        ClampGrad cg, const NextStepWprime* next) {
  AR_CHECK(!s.is_fp() && v, "fake_quant_backward_step: integer schemes with a v only");
  AR_CHECK(!next || !next->w_dq16 ||
               ((!dmin_scale || (min_scale && next->min_scale == min_scale)) &&
                (!dmax_scale || (max_scale && next->max_scale == max_scale))),
           "fake_quant_backward_step: the next W' steps the scales it reads, in place");
  AR_CHECK(!next || !next->codes ||
               (next->codes->scheme == s && next->codes->out == out && next->codes->in == in &&
                next->codes->group == effective_group_size(s, in) && next->codes->sizes_match()),
           "fake_quant_backward_step: codes not allocated for this scheme and shape");
  AR_CHECK(dw_dq, "fake_quant_backward_step: no dL/dW'");
  float* const scales_out[2] = {next ? next->min_scale : nullptr, next ? next->max_scale : nullptr};
  if (dw_dq.bf16)
    fake_quant_backward_rows(nullptr, v, lr, dmin_scale, dmax_scale, dw_dq.bf16, rows, out, in, s, v, min_scale,
                             max_scale, cg, -1.f, next, scales_out);
  else
    fake_quant_backward_rows(nullptr, v, lr, dmin_scale, dmax_scale, dw_dq.f32, rows, out, in, s, v, min_scale,
                             max_scale, cg, -1.f, next, scales_out);
}
}  // namespace

void fake_quant_backward_step(float* v, float lr, float* dmin_scale, float* dmax_scale, MatrixView dw_dq,
                              const float* w, int64_t out, int64_t in, const QuantScheme& s, const float* min_scale,
                              const float* max_scale, ClampGrad cg, const NextStepWprime* next) {
  backward_step_rows(v, lr, dmin_scale, dmax_scale, dw_dq, F32Rows{w, in}, out, in, s, min_scale, max_scale, cg, next);
}

void fake_quant_backward_step(float* v, float lr, float* dmin_scale, float* dmax_scale, MatrixView dw_dq,
                              const uint16_t* w_bf16, int64_t out, int64_t in, const QuantScheme& s,
                              const float* min_scale, const float* max_scale, ClampGrad cg,
                              const NextStepWprime* next) {
  backward_step_rows(v, lr, dmin_scale, dmax_scale, dw_dq, Bf16Rows{w_bf16, in}, out, in, s, min_scale, max_scale, cg,
                     next);
}

void fake_quant_backward(float* dv, float* dmin_scale, float* dmax_scale, const float* dw_dq,
                         const uint16_t* w_bf16, int64_t out, int64_t in, const QuantScheme& s,
                         const float* v, const float* min_scale, const float* max_scale, ClampGrad cg,
                         float global_amax) {
  fake_quant_backward_rows(dv, nullptr, 0.f, dmin_scale, dmax_scale, dw_dq, Bf16Rows{w_bf16, in}, out, in, s, v,
                           min_scale, max_scale, cg, global_amax);
}

}  // namespace ar
