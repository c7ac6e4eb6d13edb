// The affine and symmetric scale searches of gguf_scale_search.cpp run on 8 groups in lockstep
// (the quantizers' hot path; the single-group versions stay as the plain reference). Each group keeps
// its own sequence of float operations (sums in index order, same grouping of products), so the
// results are bit-identical to the single-group search; only the interleaving differs, which lets
// the 8 independent add chains overlap instead of waiting on each other's latency (and lets the
// compiler use vector lanes). Groups that need no search (all equal, all zero) are masked out.
// Identical for finite inputs; NaN weights give different (equally meaningless) levels.
#include "quant/gguf_strict_fp.h"  // first: no FMA contraction (see there)

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/gguf_scale_search.h"

namespace ar::gguf {

namespace {

constexpr int kLanes = 8;

// Lane-major copies: v[i][s] is element i of group s.
struct Lanes {
  alignas(32) float x[32][kLanes];
  alignas(32) float w[32][kLanes];
};

// round(clamp(v, 0, nmax)) in float, ties to even: equal to the single search's
// clamp(round_nearest(v), 0, nmax) (and to v3's rule) for every non-NaN v, and free of branches
// so the lane loops vectorise.
inline float level_of(float v, float fnmax) {
  v = std::min(std::max(v, 0.f), fnmax);
  return (v + 12582912.f) - 12582912.f;
}

template <bool kMad>
inline float err_of(float d) {
  return kMad ? std::fabs(d) : d * d;
}

template <bool kMad>
void search_lanes(int n, int nmax, const Lanes& in, int lanes_used, float L[32][kLanes], float* scale_out,
                  float* min_out, float rmin, float rdelta, int nstep) {
  const float fnmax = float(nmax);
  alignas(32) float min[kLanes], max[kLanes], sum_w[kLanes], sum_x[kLanes];
  for (int s = 0; s < kLanes; ++s) {
    min[s] = max[s] = in.x[0][s];
    sum_w[s] = in.w[0][s];
    sum_x[s] = sum_w[s] * in.x[0][s];
  }
  for (int i = 1; i < n; ++i)
    for (int s = 0; s < kLanes; ++s) {
      const float xi = in.x[i][s];
      min[s] = xi < min[s] ? xi : min[s];
      max[s] = xi > max[s] ? xi : max[s];
      sum_w[s] += in.w[i][s];
      sum_x[s] += in.w[i][s] * xi;
    }
  bool active[kLanes];
  alignas(32) float scale[kLanes], best_error[kLanes], iscale[kLanes];
  for (int s = 0; s < kLanes; ++s) {
    if (min[s] > 0) min[s] = 0;
    // v2 skips max == min, v3 max <= min; they only differ for NaN input.
    active[s] = s < lanes_used && max[s] > min[s];
    // Inactive lanes run on harmless values and are never accepted.
    iscale[s] = active[s] ? fnmax / (max[s] - min[s]) : 0.f;
    scale[s] = active[s] ? 1 / iscale[s] : 0.f;
    best_error[s] = 0;
  }
  for (int i = 0; i < n; ++i)
    for (int s = 0; s < kLanes; ++s) {
      const float l = level_of(iscale[s] * (in.x[i][s] - min[s]), fnmax);
      L[i][s] = l;
      best_error[s] += in.w[i][s] * err_of<kMad>(scale[s] * l + min[s] - in.x[i][s]);
    }
  if (nstep >= 1) {
    alignas(32) float Laux[32][kLanes];
    for (int is = 0; is <= nstep; ++is) {
      alignas(32) float sum_l[kLanes] = {}, sum_l2[kLanes] = {}, sum_xl[kLanes] = {};
      for (int s = 0; s < kLanes; ++s)
        iscale[s] = active[s] ? (rmin + rdelta * float(is) + fnmax) / (max[s] - min[s]) : 0.f;
      for (int i = 0; i < n; ++i)
        for (int s = 0; s < kLanes; ++s) {
          const float l = level_of(iscale[s] * (in.x[i][s] - min[s]), fnmax);
          Laux[i][s] = l;
          const float wl = in.w[i][s] * l;
          sum_l[s] += wl;
          sum_l2[s] += wl * l;
          sum_xl[s] += wl * in.x[i][s];
        }
      alignas(32) float this_scale[kLanes], this_min[kLanes], cur_error[kLanes];
      bool ok[kLanes];
      for (int s = 0; s < kLanes; ++s) {
        const float D = sum_w[s] * sum_l2[s] - sum_l[s] * sum_l[s];
        ok[s] = active[s] && D > 0;
        this_scale[s] = ok[s] ? (sum_w[s] * sum_xl[s] - sum_x[s] * sum_l[s]) / D : 0.f;
        this_min[s] = ok[s] ? (sum_l2[s] * sum_x[s] - sum_l[s] * sum_xl[s]) / D : 0.f;
        if (this_min[s] > 0) {
          this_min[s] = 0;
          this_scale[s] = sum_xl[s] / sum_l2[s];
        }
        cur_error[s] = 0;
      }
      for (int i = 0; i < n; ++i)
        for (int s = 0; s < kLanes; ++s)
          cur_error[s] += in.w[i][s] * err_of<kMad>(this_scale[s] * Laux[i][s] + this_min[s] - in.x[i][s]);
      bool any = false;
      for (int s = 0; s < kLanes; ++s) {
        ok[s] = ok[s] && cur_error[s] < best_error[s];
        if (!ok[s]) continue;
        any = true;
        best_error[s] = cur_error[s];
        scale[s] = this_scale[s];
        min[s] = this_min[s];
      }
      if (any)
        for (int s = 0; s < kLanes; ++s)
          if (ok[s])
            for (int i = 0; i < n; ++i) L[i][s] = Laux[i][s];
    }
  }
  for (int s = 0; s < lanes_used; ++s) {
    scale_out[s] = active[s] ? scale[s] : 0.f;
    min_out[s] = -min[s];
    if (!active[s])
      for (int i = 0; i < n; ++i) L[i][s] = 0;
  }
}

// fit_sym_levels on kLanes groups in lockstep (same operations per lane).
void sym_lanes(int n, int nmax, const Lanes& in, int lanes_used, float L[32][kLanes], float* scale_out) {
  alignas(32) float amax[kLanes] = {}, max[kLanes] = {};
  for (int i = 0; i < n; ++i)
    for (int s = 0; s < kLanes; ++s) {
      const float a = std::fabs(in.x[i][s]);
      const bool bigger = a > amax[s];
      amax[s] = bigger ? a : amax[s];
      max[s] = bigger ? in.x[i][s] : max[s];
    }
  bool active[kLanes];
  for (int s = 0; s < kLanes; ++s) {
    active[s] = s < lanes_used && !(amax[s] < 1e-15f);
    if (!active[s]) max[s] = 1.f;  // harmless; the lane is reset at the end
  }
  const float lo = -float(nmax), hi = float(nmax - 1);
  alignas(32) float best_scale[kLanes] = {}, best[kLanes] = {};
  alignas(32) float Lk[32][kLanes];
  for (int k = 0; k <= 18; ++k) {
    const int step = k == 0 ? 0 : (k <= 9 ? k - 10 : k - 9);  // 0, -9..-1, 1..9 as the single search
    alignas(32) float iscale[kLanes], sumlx[kLanes] = {}, suml2[kLanes] = {};
    for (int s = 0; s < kLanes; ++s) iscale[s] = -(float(nmax) + 0.1f * float(step)) / max[s];
    for (int i = 0; i < n; ++i)
      for (int s = 0; s < kLanes; ++s) {
        const float xi = in.x[i][s];
        float v = std::min(std::max(iscale[s] * xi, lo), hi);
        const float l = (v + 12582912.f) - 12582912.f;
        Lk[i][s] = l;
        const float wi = in.w[i][s];
        sumlx[s] += wi * xi * l;
        suml2[s] += wi * l * l;
      }
    bool take[kLanes], any = false;
    for (int s = 0; s < kLanes; ++s) {
      take[s] = k == 0 || (suml2[s] > 0 && sumlx[s] * sumlx[s] > best[s] * suml2[s]);
      if (!take[s]) continue;
      any = true;
      best_scale[s] = k == 0 ? (suml2[s] != 0 ? sumlx[s] / suml2[s] : 0.0f) : sumlx[s] / suml2[s];
      best[s] = best_scale[s] * sumlx[s];
    }
    if (any)
      for (int s = 0; s < kLanes; ++s)
        if (take[s])
          for (int i = 0; i < n; ++i) L[i][s] = Lk[i][s] + float(nmax);
  }
  for (int s = 0; s < lanes_used; ++s) {
    scale_out[s] = active[s] ? best_scale[s] : 0.f;
    if (!active[s])
      for (int i = 0; i < n; ++i) L[i][s] = 0;
  }
}

// Copies groups g0 .. g0+kLanes-1 (the last one repeated past `groups`) lane-major; null w -> x^2.
int load_lanes(int groups, int g0, int n, const float* x, const float* w, Lanes& in) {
  const int used = std::min(kLanes, groups - g0);
  for (int s = 0; s < kLanes; ++s) {
    const int g = g0 + std::min(s, used - 1);
    for (int i = 0; i < n; ++i) {
      const float xi = x[size_t(g) * n + i];
      in.x[i][s] = xi;
      in.w[i][s] = w ? w[size_t(g) * n + i] : xi * xi;
    }
  }
  return used;
}

}  // namespace

void fit_affine_levels_groups(int groups, int n, int nmax, const float* x, const float* w, uint8_t* L,
                              float* scale_out, float* min_out, float rmin, float rdelta, int nstep, bool use_mad,
                              bool v3) {
  AR_CHECK(n >= 1 && n <= 32, "fit_affine_levels_groups: group of ", n);
  AR_CHECK(v3 || w != nullptr, "fit_affine_levels_groups: the v2 search needs weights");
  Lanes in;
  alignas(32) float Lt[32][kLanes];
  for (int g0 = 0; g0 < groups; g0 += kLanes) {
    const int used = load_lanes(groups, g0, n, x, w, in);
    // v2 and v3 differ only in how they treat NaN, which the lane search does not reproduce.
    (void)v3;
    if (use_mad)
      search_lanes<true>(n, nmax, in, used, Lt, scale_out + g0, min_out + g0, rmin, rdelta, nstep);
    else
      search_lanes<false>(n, nmax, in, used, Lt, scale_out + g0, min_out + g0, rmin, rdelta, nstep);
    for (int s = 0; s < used; ++s)
      for (int i = 0; i < n; ++i) L[size_t(g0 + s) * n + i] = uint8_t(Lt[i][s]);
  }
}

void fit_sym_levels_groups(int groups, int n, int nmax, const float* x, const float* w, int8_t* L, float* scale_out) {
  AR_CHECK(n >= 1 && n <= 32, "fit_sym_levels_groups: group of ", n);
  Lanes in;
  alignas(32) float Lt[32][kLanes];
  for (int g0 = 0; g0 < groups; g0 += kLanes) {
    const int used = load_lanes(groups, g0, n, x, w, in);
    sym_lanes(n, nmax, in, used, Lt, scale_out + g0);
    for (int s = 0; s < used; ++s)
      for (int i = 0; i < n; ++i) L[size_t(g0 + s) * n + i] = int8_t(Lt[i][s]);
  }
}

}  // namespace ar::gguf
