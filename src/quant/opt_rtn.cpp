// Optimized-RTN scale search (see opt_rtn.h for the candidate grids) and fake quantization.
// The error of each candidate comes from group_errors (quant/qdq.h), which quantizes exactly as
// the final codes are computed, so the error minimised is the error of the stored weights.
#include "quant/opt_rtn.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/qdq.h"

namespace ar {
namespace {

float grid_factor(int i) { return float(1.0 - kOptRtnGridStep * i); }

GroupQuant search_sym(const float* w, const float* imp, int64_t n, int bits) {
  const int nq = 1 << (bits - 1), qmax = (1 << bits) - 1;
  float g = 0, ga = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(w[i]);
    if (a > ga || (a == ga && w[i] > g)) {
      ga = a;
      g = w[i];
    }
  }
  GroupQuant best;
  best.zero = nq;
  best.scale_f16 = round_scale_f16(-g / float(nq));  // i = 0: plain RTN's scale
  best.scale = f16_to_f32(best.scale_f16);
  float best_err;
  group_errors(&best_err, w, imp, n, best.scale, &best.zero, 1, qmax);
  const uint16_t h0 = best.scale_f16;
  uint16_t prev = h0;
  for (int i = -kOptRtnGridHalf; i <= kOptRtnGridHalf; ++i) {
    if (i == 0) continue;
    const uint16_t h = round_scale_f16(-g / (float(nq) * grid_factor(i)));
    // The grid is monotone, so equal fp16 values are neighbours (or i = 0's, already evaluated).
    if (h == prev || h == h0) continue;
    prev = h;
    const float sc = f16_to_f32(h);
    float err;
    group_errors(&err, w, imp, n, sc, &best.zero, 1, qmax);
    if (err < best_err) {
      best_err = err;
      best.scale_f16 = h;
      best.scale = sc;
    }
  }
  return best;
}

GroupQuant search_asym(const float* w, const float* imp, int64_t n, int bits) {
  const int qmax = (1 << bits) - 1;
  float mn = 0, mx = 0;
  for (int64_t i = 0; i < n; ++i) {
    mn = w[i] < mn ? w[i] : mn;
    mx = w[i] > mx ? w[i] : mx;
  }
  GroupQuant best = asym_group_params(w, n, bits);
  float best_err;
  group_errors(&best_err, w, imp, n, best.scale, &best.zero, 1, qmax);
  uint16_t prev = 0xffff;  // a NaN pattern: matches no candidate
  for (int i = -kOptRtnGridHalf; i <= kOptRtnGridHalf; ++i) {
    const uint16_t h = round_scale_f16((mx - mn) / (float(qmax) * grid_factor(i)));
    if (h == prev) continue;
    prev = h;
    const float sc = f16_to_f32(h);
    // Centre of [mn, mx] on the middle of the codes; bounded before the int conversion.
    const float c = std::nearbyint(std::clamp(0.5f * float(qmax) - (mn + mx) / (2.f * sc), -2.f, qmax + 2.f));
    int zeros[3];
    for (int k = 0; k < 3; ++k) zeros[k] = std::clamp(int(c) - 1 + k, 0, qmax);
    float err[3];
    group_errors(err, w, imp, n, sc, zeros, 3, qmax);
    for (int k = 0; k < 3; ++k)
      if (err[k] < best_err) {
        best_err = err[k];
        best.scale_f16 = h;
        best.scale = sc;
        best.zero = zeros[k];
      }
  }
  return best;
}

}  // namespace

QuantizedWeight quantize_opt_rtn(const float* w, int64_t out, int64_t in, const QuantScheme& s, const float* imp) {
  check_quantizable(s);
  AR_CHECK(out >= 0 && in > 0, "shape (", out, ", ", in, ")");
  QuantizedWeight q;
  q.scheme = s;
  q.out = out;
  q.in = in;
  q.group = effective_group_size(s, in);
  q.n_groups = num_groups(s, in);
  q.codes.resize(size_t(out * in));
  q.scales.resize(size_t(out * q.n_groups));
  q.zeros.resize(size_t(out * q.n_groups));
  const int64_t G = q.group, ng = q.n_groups;
#pragma omp parallel for schedule(dynamic, 16) if (out * in >= (int64_t(1) << 12))
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t i0 = g * G, n = std::min(G, in - i0), at = o * in + i0, gi = o * ng + g;
      const float* gimp = imp ? imp + i0 : nullptr;
      const GroupQuant p = s.sym ? search_sym(w + at, gimp, n, s.bits) : search_asym(w + at, gimp, n, s.bits);
      quantize_group_codes(q.codes.data() + at, w + at, nullptr, n, p.scale, p.zero, s.bits);
      q.scales[size_t(gi)] = p.scale_f16;
      q.zeros[size_t(gi)] = uint8_t(p.zero);
    }
  }
  return q;
}

void fake_quantize(float* w, int64_t out, int64_t in, const QuantScheme& s, bool optimized, const float* imp) {
  if (!s.quantized()) return;
  const QuantizedWeight q = optimized ? quantize_opt_rtn(w, out, in, s, imp) : quantize_rtn(w, out, in, s);
  const int64_t G = q.group, ng = q.n_groups;
#pragma omp parallel for schedule(static) if (out * in >= (int64_t(1) << 16))
  for (int64_t o = 0; o < out; ++o)
    for (int64_t g = 0; g < ng; ++g) {
      const size_t gi = size_t(o * ng + g);
      const float sc = f16_to_f32(q.scales[gi]);
      const int z = q.zeros[gi];
      for (int64_t i = g * G; i < std::min(in, (g + 1) * G); ++i)
        w[o * in + i] = sc * float(int(q.codes[size_t(o * in + i)]) - z);  // as QuantizedWeight::dequantize
    }
}

}  // namespace ar
