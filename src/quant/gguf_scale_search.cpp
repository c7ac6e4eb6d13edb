// Scale searches for the GGUF block quantizers (see gguf_scale_search.h). Sums are accumulated in
// float, in index order, with products grouped as the reference does ((w * x) * l, (w * l) * l):
// the chosen levels are compared by strict inequalities, so a different rounding of a sum could
// flip a choice and break byte equality with llama.cpp's files.
#include "quant/gguf_strict_fp.h"  // first: no FMA contraction (see there)

#include "quant/gguf_scale_search.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace ar::gguf {

namespace {

constexpr float kGroupEps = 1e-15f;  // groups whose largest |x| is below this are all-zero

// The signed element of largest magnitude (the first one on ties).
float signed_absmax(int n, const float* x, float* amax_out) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a > amax) {
      amax = a;
      max = x[i];
    }
  }
  *amax_out = amax;
  return max;
}

inline int clamp_int(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

inline float err_of(float d, bool use_mad) { return use_mad ? std::fabs(d) : d * d; }

}  // namespace

float fit_sym_levels(int n, int nmax, const float* x, const float* w, int8_t* L) {
  float amax;
  const float max = signed_absmax(n, x, &amax);
  if (amax < kGroupEps) {
    std::fill(L, L + n, int8_t(0));
    return 0.f;
  }
  auto weight = [&](int i) { return w ? w[i] : x[i] * x[i]; };
  // Candidate 0 is the plain absmax grid; the others are only kept if strictly better, so ties
  // favour the earlier (plainer) grid.
  float best_scale = 0, best = 0;
  for (int k = 0; k <= 18; ++k) {
    const int step = k == 0 ? 0 : (k <= 9 ? k - 10 : k - 9);  // 0, -9..-1, 1..9
    const float iscale = -(float(nmax) + 0.1f * float(step)) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(round_nearest(iscale * x[i]), -nmax, nmax - 1);
      const float wi = weight(i);
      sumlx += wi * x[i] * float(l);
      suml2 += wi * float(l) * float(l);
    }
    const bool take = k == 0 || (suml2 > 0 && sumlx * sumlx > best * suml2);
    if (!take) continue;
    best_scale = k == 0 ? (suml2 != 0 ? sumlx / suml2 : 0.0f) : sumlx / suml2;
    best = best_scale * sumlx;
    for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + clamp_int(round_nearest(iscale * x[i]), -nmax, nmax - 1));
  }
  return best_scale;
}

float fit_sym_levels_refined(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = signed_absmax(n, x, &amax);
  if (amax < kGroupEps) {
    std::fill(L, L + n, int8_t(0));
    return 0.f;
  }
  const float iscale = -float(nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(round_nearest(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  // Coordinate descent on the levels: with level i removed from the sums, the best level for x[i]
  // is x[i] * sum(w l^2) / sum(w x l); accept it when the fit (sumlx^2 / suml2) improves.
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (!(slx > 0)) continue;
      float sl2 = suml2 - w * float(L[i]) * float(L[i]);
      const int nl = clamp_int(round_nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (nl == L[i]) continue;
      slx += w * x[i] * float(nl);
      sl2 += w * float(nl) * float(nl);
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = int8_t(nl);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

namespace {

// Shared body of the two affine searches; `clamped` selects the v3 level rule and null weights.
float fit_affine(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out, float rmin,
                 float rdelta, int nstep, bool use_mad, bool clamped) {
  AR_CHECK(n <= 32, "fit_affine_levels: group of ", n, " > 32");
  auto weight = [&](int i) { return w ? w[i] : x[i] * x[i]; };
  float min = x[0], max = x[0];
  float sum_w = weight(0);
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float wi = weight(i);
    sum_w += wi;
    sum_x += wi * x[i];
  }
  if (min > 0) min = 0;
  if (clamped ? max <= min : max == min) {
    std::fill(L, L + n, uint8_t(0));
    *min_out = -min;
    return 0.f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = uint8_t(clamp_int(round_nearest(iscale * (x[i] - min)), 0, nmax));
    best_error += weight(i) * err_of(scale * float(L[i]) + min - x[i], use_mad);
  }
  if (nstep < 1) {
    *min_out = -min;
    return scale;
  }
  uint8_t Laux[32];
  for (int is = 0; is <= nstep; ++is) {
    // `min` is the best fit so far, so later grids start from it (as the reference does).
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l;
      if (clamped) {
        const float v = iscale * (x[i] - min);
        l = v > 0 ? round_nearest(std::min(v, float(nmax))) : 0;
      } else {
        l = clamp_int(round_nearest(iscale * (x[i] - min)), 0, nmax);
      }
      Laux[i] = uint8_t(l);
      const float wi = weight(i);
      sum_l += wi * float(l);
      sum_l2 += wi * float(l) * float(l);
      sum_xl += wi * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (!(D > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float cur_error = 0;
    for (int i = 0; i < n; ++i) cur_error += weight(i) * err_of(this_scale * float(Laux[i]) + this_min - x[i], use_mad);
    if (cur_error < best_error) {
      std::copy(Laux, Laux + n, L);
      best_error = cur_error;
      scale = this_scale;
      min = this_min;
    }
  }
  *min_out = -min;
  return scale;
}

}  // namespace

float fit_affine_levels(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out, float rmin,
                        float rdelta, int nstep, bool use_mad) {
  AR_CHECK(w != nullptr, "fit_affine_levels needs weights");
  return fit_affine(n, nmax, x, w, L, min_out, rmin, rdelta, nstep, use_mad, false);
}

float fit_affine_levels_v3(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out, float rmin,
                           float rdelta, int nstep, bool use_mad) {
  return fit_affine(n, nmax, x, w, L, min_out, rmin, rdelta, nstep, use_mad, true);
}

float fit_positive_levels(int n, int nmax, const float* x, uint8_t* L, const float* w) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
  if (max < kGroupEps) {
    std::fill(L, L + n, uint8_t(0));
    return 0.f;
  }
  // Grid search over 9 scales around nmax / max by weighted squared error.
  float iscale = float(nmax) / max;
  float best_mse = 0;
  {
    const float scale = 1 / iscale;
    for (int i = 0; i < n; ++i) {
      const float diff = x[i] - scale * float(round_nearest(iscale * x[i]));
      best_mse += w[i] * diff * diff;
    }
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * float(is) + float(nmax)) / max;
    const float scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::min(nmax, round_nearest(iscale_is * x[i]));
      const float diff = x[i] - scale_is * float(l);
      mse += w[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::min(nmax, round_nearest(iscale * x[i]));
    L[i] = uint8_t(l);
    sumlx += w[i] * x[i] * float(l);
    suml2 += w[i] * float(l) * float(l);
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      float slx = sumlx - w[i] * x[i] * float(L[i]);
      float sl2 = suml2 - w[i] * float(L[i]) * float(L[i]);
      if (!(slx > 0 && sl2 > 0)) continue;
      const int nl = std::min(nmax, round_nearest(x[i] * sl2 / slx));
      if (nl == L[i]) continue;
      slx += w[i] * x[i] * float(nl);
      sl2 += w[i] * float(nl) * float(nl);
      if (slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = uint8_t(nl);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (!changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

}  // namespace ar::gguf
