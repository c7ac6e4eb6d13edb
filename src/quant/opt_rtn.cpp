// Optimized-RTN scale search (see opt_rtn.h for the candidate grids) and fake quantization.
// The error of each candidate comes from group_errors (quant/qdq.h), which quantizes as the final
// codes are computed (up to multiplying by 1/s, see there), 8 candidates per pass over the group.
#include "quant/opt_rtn.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/qdq.h"

namespace ar {
namespace {

constexpr int kGrid = 2 * kOptRtnGridHalf + 1;

// den[j] = base * f_i, i = j - 100, in f32: the divisors of both grids (base n = 2^(b-1) for sym,
// 2^b - 1 for asym), one table per (bits, sym), built once.
const float* grid_divisors(int bits, bool sym) {
  static const auto tables = [] {
    std::vector<std::vector<float>> t(2 * 9);
    for (int b = 2; b <= 8; ++b)
      for (int sy = 0; sy < 2; ++sy) {
        const float base = sy ? float(1 << (b - 1)) : float((1 << b) - 1);
        auto& d = t[size_t(b * 2 + sy)];
        for (int j = 0; j < kGrid; ++j) d.push_back(base * float(1.0 - kOptRtnGridStep * (j - kOptRtnGridHalf)));
      }
    return t;
  }();
  return tables[size_t(bits * 2 + (sym ? 1 : 0))].data();
}

// Grid indices from f = 1 outwards (0, -1, +1, -2, ...), skipping a candidate equal to its inner
// neighbour (the grid is monotone, so equal fp16 values are neighbours). Appends (scale, zero(scale)).
template <typename Zero>
void add_grid(std::vector<float>& sc_out, std::vector<int>& z_out, const float* sc, Zero&& zero_of) {
  sc_out.push_back(sc[kOptRtnGridHalf]);
  z_out.push_back(zero_of(sc[kOptRtnGridHalf]));
  for (int step = 1; step <= kOptRtnGridHalf; ++step)
    for (int side : {-1, 1}) {
      const int j = kOptRtnGridHalf + side * step, inner = j - side;
      if (sc[j] == sc[inner]) continue;
      sc_out.push_back(sc[j]);
      z_out.push_back(zero_of(sc[j]));
    }
}

// Errors of all candidates in batches; returns the index of the first smallest (candidate 0 is plain
// RTN's choice, so only a strictly smaller error replaces it).
size_t argmin_error(const float* w, const float* imp, int64_t n, const std::vector<float>& sc,
                    const std::vector<int>& z, int qmax, float* best_err) {
  size_t best = 0;
  float err[kErrorBatch];
  for (size_t c0 = 0; c0 < sc.size(); c0 += kErrorBatch) {
    const int count = int(std::min<size_t>(kErrorBatch, sc.size() - c0));
    group_errors(err, w, imp, n, sc.data() + c0, z.data() + c0, count, qmax);
    for (int c = 0; c < count; ++c)
      if (c0 + size_t(c) == 0 || err[c] < *best_err) {
        *best_err = err[c];
        best = c0 + size_t(c);
      }
  }
  return best;
}

// Per-thread candidate lists, reused across groups.
thread_local std::vector<float> t_scales;
thread_local std::vector<int> t_zeros;

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
  float sc[kGrid];
  candidate_scales(sc, -g, grid_divisors(bits, true), kGrid);
  t_scales.clear();
  t_zeros.clear();
  // f = 1 comes first: it is plain RTN's scale.
  add_grid(t_scales, t_zeros, sc, [&](float) { return nq; });
  float best_err;
  const size_t b = argmin_error(w, imp, n, t_scales, t_zeros, qmax, &best_err);
  GroupQuant best;
  best.scale = t_scales[b];
  best.scale_f16 = f32_to_f16(best.scale);  // exact: the value came from an fp16
  best.zero = nq;
  return best;
}

GroupQuant search_asym(const float* w, const float* imp, int64_t n, int bits) {
  const int qmax = (1 << bits) - 1;
  float mn = 0, mx = 0;
  for (int64_t i = 0; i < n; ++i) {
    mn = w[i] < mn ? w[i] : mn;
    mx = w[i] > mx ? w[i] : mx;
  }
  const GroupQuant rtn = asym_group_params(w, n, bits);
  float sc[kGrid];
  candidate_scales(sc, mx - mn, grid_divisors(bits, false), kGrid);
  t_scales.assign(1, rtn.scale);  // plain RTN first
  t_zeros.assign(1, rtn.zero);
  // Stage 1: every grid scale with the zero point that centres [mn, mx] on the middle of the codes.
  add_grid(t_scales, t_zeros, sc, [&](float s) {
    const float c = std::clamp(0.5f * float(qmax) - (mn + mx) / (2.f * s), 0.f, float(qmax));
    return int((c + 0x1p23f) - 0x1p23f);  // round half to even for 0 <= c < 2^23, without a libm call
  });
  float best_err;
  const size_t b = argmin_error(w, imp, n, t_scales, t_zeros, qmax, &best_err);
  GroupQuant best;
  best.scale = t_scales[b];
  best.zero = t_zeros[b];
  // Stage 2: the winner's zero point +-1.
  float s2[2];
  int z2[2], nz = 0;
  for (int z : {best.zero - 1, best.zero + 1})
    if (z >= 0 && z <= qmax) {
      s2[nz] = best.scale;
      z2[nz++] = z;
    }
  float err[2];
  if (nz) group_errors(err, w, imp, n, s2, z2, nz, qmax);
  for (int k = 0; k < nz; ++k)
    if (err[k] < best_err) {
      best_err = err[k];
      best.zero = z2[k];
    }
  best.scale_f16 = f32_to_f16(best.scale);
  return best;
}

}  // namespace

QuantizedWeight quantize_opt_rtn(const float* w, int64_t out, int64_t in, const QuantScheme& s, const float* imp) {
  check_quantizable(s);
  if (s.is_fp()) return quantize_rtn(w, out, in, s);  // the search is for integer grids (header)
  QuantizedWeight q = QuantizedWeight::allocate(s, out, in);
  const int64_t G = q.group, ng = q.n_groups;
#pragma omp parallel for schedule(dynamic, 16) if (out * in >= (int64_t(1) << 12))
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t i0 = g * G, n = std::min(G, in - i0), at = o * in + i0, gi = o * ng + g;
      const float* gimp = imp ? imp + i0 : nullptr;
      const GroupQuant p = s.sym ? search_sym(w + at, gimp, n, s.bits) : search_asym(w + at, gimp, n, s.bits);
      write_group_rtn(q, at, gi, w + at, nullptr, n, p, s.bits);
    }
  }
  return q;
}

void fake_quantize(float* w, int64_t out, int64_t in, const QuantScheme& s, bool optimized, const float* imp) {
  if (!s.quantized()) return;
  const QuantizedWeight q = optimized ? quantize_opt_rtn(w, out, in, s, imp) : quantize_rtn(w, out, in, s);
  if (s.is_fp()) return q.dequantize(w);
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
