// Group quantization primitives (SPEC §2). The AVX2 versions are compiled with a target attribute
// and picked at run time, so the default build (no -march) still uses them on this CPU. No FMA:
// every product and sum is rounded separately, as in the _ref versions.
#include "quant/qdq.h"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"

namespace ar {
namespace {

// max/min with the operand order of _mm256_max_ps / _mm256_min_ps (a NaN in `a` yields `b`), so
// the scalar code clamps exactly like the vector code.
inline float max_like_simd(float a, float b) { return a > b ? a : b; }
inline float min_like_simd(float a, float b) { return a < b ? a : b; }

// Pairwise reduction of 8 lanes in the order of the AVX2 horizontal sum below.
inline float sum8(const float* l) {
  float a4[4], a2[2];
  for (int j = 0; j < 4; ++j) a4[j] = l[j] + l[j + 4];
  for (int j = 0; j < 2; ++j) a2[j] = a4[j] + a4[j + 2];
  return a2[0] + a2[1];
}

__attribute__((target("avx2"))) float hsum_avx(__m256 a) {
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}

__attribute__((target("avx2"))) __m256i tail_mask(int64_t r) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(r)), idx);
}

// The codes of 8 weights, clamp(round(w/scale + v) + zero, 0, 2^bits - 1), as exact f32.
struct CodeConsts {
  __m256 scale, zero, lo, hi;
};
__attribute__((target("avx2"))) CodeConsts code_consts(float scale, int zero, int bits) {
  return {_mm256_set1_ps(scale), _mm256_set1_ps(float(zero)), _mm256_setzero_ps(),
          _mm256_set1_ps(float((1 << bits) - 1))};
}
__attribute__((target("avx2"))) inline __m256 codes8(const float* w, const float* v, const CodeConsts& k) {
  __m256 x = _mm256_div_ps(_mm256_loadu_ps(w), k.scale);
  if (v) x = _mm256_add_ps(x, _mm256_loadu_ps(v));
  const __m256 r = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, k.zero), k.lo), k.hi);
}

__attribute__((target("avx2"))) void quantize_group_codes_avx2(uint8_t* codes, const float* w, const float* v,
                                                                int64_t n, float scale, int zero, int bits) {
  const CodeConsts k = code_consts(scale, zero, bits);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    // 8 codes in [0, 255] as int32 -> 8 bytes, in order (the packs saturate nothing here).
    const __m256i q = _mm256_cvttps_epi32(codes8(w + i, v ? v + i : nullptr, k));
    const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(codes + i), _mm_packus_epi16(w16, w16));
  }
  if (i < n) quantize_group_codes_ref(codes + i, w + i, v ? v + i : nullptr, n - i, scale, zero, bits);
}

__attribute__((target("avx2"))) void group_fake_quant_avx2(float* out, const float* w, const float* v, int64_t n,
                                                            float scale, int zero, int bits) {
  const CodeConsts k = code_consts(scale, zero, bits);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_mul_ps(k.scale, _mm256_sub_ps(codes8(w + i, v ? v + i : nullptr, k), k.zero)));
  if (i < n) group_fake_quant_ref(out + i, w + i, v ? v + i : nullptr, n - i, scale, zero, bits);
}

// f32_to_bf16 on 8 lanes, packed to 8 uint16 in order: round to nearest even, a NaN quieted.
__attribute__((target("avx2"))) inline __m128i bf16x8(__m256 f) {
  const __m256i u = _mm256_castps_si256(f);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  const __m256i is_nan =
      _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  const __m256i h = _mm256_blendv_epi8(rounded, quiet, is_nan);  // each lane < 2^16: no saturation below
  return _mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

__attribute__((target("avx2"))) void group_fake_quant_bf16_avx2(uint16_t* out, const float* w, const float* v,
                                                                 int64_t n, float scale, int zero, int bits) {
  const CodeConsts k = code_consts(scale, zero, bits);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 q = _mm256_mul_ps(k.scale, _mm256_sub_ps(codes8(w + i, v ? v + i : nullptr, k), k.zero));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), bf16x8(q));
  }
  if (i < n) group_fake_quant_bf16_ref(out + i, w + i, v ? v + i : nullptr, n - i, scale, zero, bits);
}

template <bool IMP>
__attribute__((target("avx2"))) void group_errors_avx2(float* err, const float* w, const float* imp, int64_t n,
                                                        const float* scales, const int* zeros, int count, int qmax) {
  constexpr int K = kErrorBatch;
  // Unused slots repeat the last candidate (same work, result dropped) so K stays a constant.
  // q - zero = clamp(r + zero, 0, qmax) - zero = clamp(r, -zero, qmax - zero), exactly (small integers).
  __m256 vs[K], vinv[K], vlo[K], vhi[K], acc[K];
#pragma GCC unroll 8
  for (int c = 0; c < K; ++c) {
    const int cc = c < count ? c : count - 1;
    vs[c] = _mm256_set1_ps(scales[cc]);
    vinv[c] = _mm256_set1_ps(1.f / scales[cc]);
    vlo[c] = _mm256_set1_ps(float(-zeros[cc]));
    vhi[c] = _mm256_set1_ps(float(qmax - zeros[cc]));
    acc[c] = _mm256_setzero_ps();
  }
  const __m256 ones = _mm256_set1_ps(1.f);
  for (int64_t i = 0; i < n; i += 8) {
    __m256 wv, iv = ones;
    if (i + 8 <= n) {
      wv = _mm256_loadu_ps(w + i);
      if (IMP) iv = _mm256_loadu_ps(imp + i);
    } else {
      // Masked lanes read as 0: q - zero = 0 there, so they add +0.
      const __m256i m = tail_mask(n - i);
      wv = _mm256_maskload_ps(w + i, m);
      if (IMP) iv = _mm256_maskload_ps(imp + i, m);
    }
    // Fully unrolled so the accumulators live in registers.
#pragma GCC unroll 8
    for (int c = 0; c < K; ++c) {
      const __m256 r = _mm256_round_ps(_mm256_mul_ps(wv, vinv[c]), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m256 q = _mm256_min_ps(_mm256_max_ps(r, vlo[c]), vhi[c]);
      const __m256 d = _mm256_sub_ps(_mm256_mul_ps(vs[c], q), wv);
      __m256 e = _mm256_mul_ps(d, d);
      if (IMP) e = _mm256_mul_ps(e, iv);
      acc[c] = _mm256_add_ps(acc[c], e);
    }
  }
  for (int c = 0; c < count; ++c) err[c] = hsum_avx(acc[c]);
}

// The value of round_scale_f16 on 8 lanes: F16C round trip (round to nearest even, like
// f32_to_f16), then the +-fp16(1e-5) floor with -0 going to the + side. *small: the lanes the
// floor replaced.
__attribute__((target("avx2,f16c"))) inline __m256 round_scale_f16x8(__m256 s, __m256* small) {
  const float fl = f16_to_f32(f32_to_f16(kScaleFloor));
  const __m256 h = _mm256_cvtph_ps(_mm256_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const __m256 is_neg = _mm256_cmp_ps(h, _mm256_setzero_ps(), _CMP_LT_OQ);
  *small = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), h), _mm256_set1_ps(kScaleFloor), _CMP_LT_OQ);
  return _mm256_blendv_ps(h, _mm256_blendv_ps(_mm256_set1_ps(fl), _mm256_set1_ps(-fl), is_neg), *small);
}

// Same arithmetic as round_scale_f16 on 8 lanes: f32 division, then round_scale_f16x8.
__attribute__((target("avx2,f16c"))) void candidate_scales_avx2(float* out, float num, const float* den, int n) {
  const __m256 vn = _mm256_set1_ps(num);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 small;
    _mm256_storeu_ps(out + j, round_scale_f16x8(_mm256_div_ps(vn, _mm256_loadu_ps(den + j)), &small));
  }
  if (j < n) candidate_scales_ref(out + j, num, den + j, n - j);
}

// sym_range_params on 8 groups: the same f32 products, negation, comparison and division by a
// power of two, then round_scale_f16x8. A lane whose
// scale comes out NaN or infinite (an infinite weight, a NaN min/max_scale) leaves the 8 to the
// scalar version: F16C keeps a NaN's payload where f32_to_f16 writes one quiet NaN.
__attribute__((target("avx2,f16c"))) bool sym_range_params8(GroupQuant* out, const float* mn, const float* mx,
                                                             int bits, const float* min_scale,
                                                             const float* max_scale, uint8_t* hi_side,
                                                             uint8_t* floored) {
  const __m256 lo = _mm256_xor_ps(_mm256_mul_ps(_mm256_loadu_ps(mn), _mm256_loadu_ps(min_scale)),
                                  _mm256_set1_ps(-0.f));
  const __m256 hi = _mm256_mul_ps(_mm256_loadu_ps(mx), _mm256_loadu_ps(max_scale));
  const __m256 hi_wins = _mm256_cmp_ps(hi, lo, _CMP_GE_OQ);
  const __m256 max_v = _mm256_blendv_ps(lo, _mm256_xor_ps(hi, _mm256_set1_ps(-0.f)), hi_wins);
  const __m256 raw = _mm256_div_ps(max_v, _mm256_set1_ps(float(1 << (bits - 1))));
  const __m256 inf = _mm256_set1_ps(INFINITY), sign = _mm256_set1_ps(-0.f);
  if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, raw), inf, _CMP_NLT_UQ)) != 0) return false;
  __m256 small;
  const __m256 scale = round_scale_f16x8(raw, &small);
  alignas(32) float sc[8];
  alignas(16) uint16_t h16[8];
  _mm256_store_ps(sc, scale);
  _mm_store_si128(reinterpret_cast<__m128i*>(h16), _mm256_cvtps_ph(scale, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const int hw = _mm256_movemask_ps(hi_wins), sm = _mm256_movemask_ps(small);
  for (int i = 0; i < 8; ++i) {
    out[i].scale_f16 = h16[i];
    out[i].scale = sc[i];
    out[i].zero = 1 << (bits - 1);
    if (hi_side) hi_side[i] = uint8_t(hw >> i & 1);
    // Below 1e-5 the floor always replaces the scale: fp16(1e-5) itself is not below it.
    if (floored) floored[i] = uint8_t(sm >> i & 1);
  }
  return true;
}

// 8 gradients from g + i (the first `left` of them when left < 8, the others 0): f32 as they are,
// bf16 widened (exactly).
__attribute__((target("avx2"))) inline __m256 load_grad8(const float* g, bool full, __m256i m, int64_t) {
  return full ? _mm256_loadu_ps(g) : _mm256_maskload_ps(g, m);
}
__attribute__((target("avx2"), noinline)) __m128i load_bf16_tail(const uint16_t* g, int64_t left) {
  alignas(16) uint16_t b[8] = {};
  std::memcpy(b, g, size_t(left) * sizeof(uint16_t));
  return _mm_load_si128(reinterpret_cast<const __m128i*>(b));
}
__attribute__((target("avx2"))) inline __m256 load_grad8(const uint16_t* g, bool full, __m256i, int64_t left) {
  const __m128i h = full ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(g)) : load_bf16_tail(g, left);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

template <typename G>
__attribute__((target("avx2"))) GroupGradSums group_grad_avx2(const G* g, const float* w, const float* v,
                                                               int64_t n, const GroupGradConsts& k, float* dv,
                                                               float* v_out, float lr, uint8_t* codes) {
  const __m256 vs = _mm256_set1_ps(k.scale), vs2 = _mm256_set1_ps(k.scale * k.scale);
  const __m256 vz = _mm256_set1_ps(k.zero), vlo = _mm256_set1_ps(k.qlo), vhi = _mm256_set1_ps(k.qhi);
  const __m256 vlr = _mm256_set1_ps(lr), zero = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.f);
  __m256 ds = zero, dzp = zero;
  for (int64_t i = 0; i < n; i += 8) {
    // Lanes past n read as 0 and add +0 to the sums (the reference pads the same way).
    const bool full = i + 8 <= n;
    const __m256i m = full ? _mm256_set1_epi32(-1) : tail_mask(n - i);
    const __m256 gv = load_grad8(g + i, full, m, n - i);
    const __m256 wv = full ? _mm256_loadu_ps(w + i) : _mm256_maskload_ps(w + i, m);
    __m256 x = _mm256_div_ps(wv, vs);
    __m256 vv = zero;
    if (v) {
      vv = full ? _mm256_loadu_ps(v + i) : _mm256_maskload_ps(v + i, m);
      x = _mm256_add_ps(x, vv);
    }
    const __m256 t = _mm256_add_ps(_mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
    const __m256 inside = k.strict ? _mm256_and_ps(_mm256_cmp_ps(t, vlo, _CMP_GT_OQ), _mm256_cmp_ps(t, vhi, _CMP_LT_OQ))
                                   : _mm256_and_ps(_mm256_cmp_ps(t, vlo, _CMP_GE_OQ), _mm256_cmp_ps(t, vhi, _CMP_LE_OQ));
    const __m256 q = _mm256_min_ps(_mm256_max_ps(t, vlo), vhi);
    const __m256 gs = _mm256_mul_ps(gv, vs);
    const __m256 g_int = _mm256_and_ps(inside, gs);
    ds = _mm256_add_ps(ds, _mm256_sub_ps(_mm256_mul_ps(gv, _mm256_sub_ps(q, vz)),
                                         _mm256_div_ps(_mm256_mul_ps(g_int, wv), vs2)));
    dzp = _mm256_add_ps(dzp, _mm256_andnot_ps(inside, _mm256_xor_ps(gs, sign)));
    if (dv) {
      const __m256 d = _mm256_add_ps(full ? _mm256_loadu_ps(dv + i) : _mm256_maskload_ps(dv + i, m), g_int);
      if (full) _mm256_storeu_ps(dv + i, d);
      else _mm256_maskstore_ps(dv + i, m, d);
    }
    if (v_out) {
      const __m256 up = _mm256_and_ps(_mm256_cmp_ps(g_int, zero, _CMP_GT_OQ), vlr);
      const __m256 down = _mm256_and_ps(_mm256_cmp_ps(g_int, zero, _CMP_LT_OQ), vlr);
      const __m256 nv = _mm256_sub_ps(vv, _mm256_sub_ps(up, down));
      if (full) _mm256_storeu_ps(v_out + i, nv);
      else _mm256_maskstore_ps(v_out + i, m, nv);
    }
    if (codes) {  // q - qlo in [0, 255] as int32 -> 8 bytes, in order
      const __m256i c = _mm256_cvttps_epi32(_mm256_sub_ps(q, vlo));
      const __m128i c16 = _mm_packus_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
      const __m128i c8 = _mm_packus_epi16(c16, c16);
      if (full) {
        _mm_storel_epi64(reinterpret_cast<__m128i*>(codes + i), c8);
      } else {
        alignas(16) uint8_t b[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(b), c8);
        std::memcpy(codes + i, b, size_t(n - i));
      }
    }
  }
  alignas(32) float l[8];
  GroupGradSums r;
  _mm256_store_ps(l, ds);
  r.ds = sum8(l);
  _mm256_store_ps(l, dzp);
  r.dzp = sum8(l);
  return r;
}

}  // namespace

namespace {
inline float grad_value(float g) { return g; }
inline float grad_value(uint16_t g) { return bf16_to_f32(g); }

template <typename G>
GroupGradSums group_grad_ref_t(const G* g, const float* w, const float* v, int64_t n, const GroupGradConsts& k,
                               float* dv, float* v_out, float lr, uint8_t* codes) {
  float ds[8] = {}, dzp[8] = {};
  const float s2 = k.scale * k.scale;
  // Padded to a multiple of 8 with zeros, as the vector version's masked lanes.
  for (int64_t i = 0, end = (n + 7) / 8 * 8; i < end; ++i) {
    const bool real = i < n;
    const float gi = real ? grad_value(g[i]) : 0.f, wi = real ? w[i] : 0.f, vi = real && v ? v[i] : 0.f;
    float x = wi / k.scale;
    if (v) x += vi;
    const float t = std::nearbyint(x) + k.zero;
    const bool inside = k.strict ? t > k.qlo && t < k.qhi : t >= k.qlo && t <= k.qhi;
    const float q = min_like_simd(max_like_simd(t, k.qlo), k.qhi);
    const float gs = gi * k.scale;
    const float g_int = inside ? gs : 0.f;
    ds[i % 8] += gi * (q - k.zero) - g_int * wi / s2;
    dzp[i % 8] += inside ? 0.f : -gs;
    if (!real) continue;
    if (codes) codes[i] = uint8_t(int(q - k.qlo));
    if (dv) dv[i] += g_int;
    if (v_out) v_out[i] = vi - ((g_int > 0 ? lr : 0.f) - (g_int < 0 ? lr : 0.f));
  }
  return {sum8(ds), sum8(dzp)};
}
}  // namespace

GroupGradSums group_grad_ref(const float* g, const float* w, const float* v, int64_t n, const GroupGradConsts& k,
                             float* dv, float* v_out, float lr, uint8_t* codes) {
  return group_grad_ref_t(g, w, v, n, k, dv, v_out, lr, codes);
}

GroupGradSums group_grad_ref(const uint16_t* g, const float* w, const float* v, int64_t n, const GroupGradConsts& k,
                             float* dv, float* v_out, float lr, uint8_t* codes) {
  return group_grad_ref_t(g, w, v, n, k, dv, v_out, lr, codes);
}

GroupGradSums group_grad(const float* g, const float* w, const float* v, int64_t n, const GroupGradConsts& k,
                         float* dv, float* v_out, float lr, uint8_t* codes) {
  if (qdq_simd_available()) return group_grad_avx2(g, w, v, n, k, dv, v_out, lr, codes);
  return group_grad_ref(g, w, v, n, k, dv, v_out, lr, codes);
}

GroupGradSums group_grad(const uint16_t* g, const float* w, const float* v, int64_t n, const GroupGradConsts& k,
                         float* dv, float* v_out, float lr, uint8_t* codes) {
  if (qdq_simd_available()) return group_grad_avx2(g, w, v, n, k, dv, v_out, lr, codes);
  return group_grad_ref(g, w, v, n, k, dv, v_out, lr, codes);
}

bool qdq_simd_available() {
  // F16C through cpuid (leaf 1, ecx): clang's __builtin_cpu_supports does not know "f16c".
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __builtin_cpu_supports("avx2") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
  }();
  return ok;
}

uint16_t round_scale_f16(float s) {
  const uint16_t h = f32_to_f16(s);
  const float f = f16_to_f32(h);
  if (f < 0) return f > -kScaleFloor ? f32_to_f16(-kScaleFloor) : h;
  return f < kScaleFloor ? f32_to_f16(kScaleFloor) : h;
}

namespace {
// min(0, min w) and max(0, max w) over the group, 8 lanes at a time: exact, and the same value as
// the scalar loop in any order (a NaN is skipped by both; a zero stays +0, since a running minimum
// starting at +0 is never above -0).
__attribute__((target("avx2"))) void group_range_avx2(const float* w, int64_t n, float* mn, float* mx) {
  __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(w + i);
    a = _mm256_min_ps(x, a);  // x < a ? x : a
    b = _mm256_max_ps(x, b);  // x > b ? x : b
  }
  alignas(32) float la[8], lb[8];
  _mm256_store_ps(la, a);
  _mm256_store_ps(lb, b);
  float fa = 0, fb = 0;
  for (int k = 0; k < 8; ++k) {
    fa = la[k] < fa ? la[k] : fa;
    fb = lb[k] > fb ? lb[k] : fb;
  }
  for (; i < n; ++i) {
    fa = w[i] < fa ? w[i] : fa;
    fb = w[i] > fb ? w[i] : fb;
  }
  *mn = fa;
  *mx = fb;
}

}  // namespace

void group_range(const float* w, int64_t n, float* mn, float* mx) {
  if (n >= 16 && qdq_simd_available()) return group_range_avx2(w, n, mn, mx);
  float a = 0, b = 0;
  for (int64_t i = 0; i < n; ++i) {
    a = w[i] < a ? w[i] : a;
    b = w[i] > b ? w[i] : b;
  }
  *mn = a;
  *mx = b;
}

GroupQuant sym_group_params(const float* w, int64_t n, int bits, float min_scale, float max_scale) {
  float mn, mx;
  group_range(w, n, &mn, &mx);
  return sym_range_params(mn, mx, bits, min_scale, max_scale);
}

GroupQuant sym_range_params(float mn, float mx, int bits, float min_scale, float max_scale) {
  AR_DCHECK(bits >= 2 && bits <= 8, "bits ", bits);
  const float lo = -(mn * min_scale), hi = mx * max_scale;
  // The larger side lands on code -2^(b-1): a negative scale when the positive side is larger.
  const float max_v = hi >= lo ? -hi : lo;
  GroupQuant g;
  g.scale_f16 = round_scale_f16(max_v / float(1 << (bits - 1)));
  g.scale = f16_to_f32(g.scale_f16);
  g.zero = 1 << (bits - 1);
  return g;
}

void sym_range_params_n_ref(GroupQuant* out, int64_t n, const float* mn, const float* mx, int bits,
                            const float* min_scale, const float* max_scale, uint8_t* hi_side, uint8_t* floored) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = sym_range_params(mn[i], mx[i], bits, min_scale[i], max_scale[i]);
    const float lo = -(mn[i] * min_scale[i]), hi = mx[i] * max_scale[i];
    if (hi_side) hi_side[i] = uint8_t(hi >= lo);
    if (floored) floored[i] = uint8_t(out[i].scale_f16 != f32_to_f16((hi >= lo ? -hi : lo) / float(1 << (bits - 1))));
  }
}

void sym_range_params_n(GroupQuant* out, int64_t n, const float* mn, const float* mx, int bits, const float* min_scale,
                        const float* max_scale, uint8_t* hi_side, uint8_t* floored) {
  int64_t i = 0;
  if (qdq_simd_available())
    for (; i + 8 <= n; i += 8)
      if (!sym_range_params8(out + i, mn + i, mx + i, bits, min_scale + i, max_scale + i, hi_side ? hi_side + i : nullptr,
                             floored ? floored + i : nullptr))
        sym_range_params_n_ref(out + i, 8, mn + i, mx + i, bits, min_scale + i, max_scale + i,
                               hi_side ? hi_side + i : nullptr, floored ? floored + i : nullptr);
  sym_range_params_n_ref(out + i, n - i, mn + i, mx + i, bits, min_scale + i, max_scale + i,
                         hi_side ? hi_side + i : nullptr, floored ? floored + i : nullptr);
}

GroupQuant asym_group_params(const float* w, int64_t n, int bits, float min_scale, float max_scale) {
  float mn, mx;
  group_range(w, n, &mn, &mx);
  return asym_range_params(mn, mx, bits, min_scale, max_scale);
}

GroupQuant asym_range_params(float mn, float mx, int bits, float min_scale, float max_scale) {
  AR_DCHECK(bits >= 2 && bits <= 8, "bits ", bits);
  const int qmax = (1 << bits) - 1;
  const float wmin = mn * min_scale, wmax = mx * max_scale;
  GroupQuant g;
  g.scale_f16 = round_scale_f16((wmax - wmin) / float(qmax));
  g.scale = f16_to_f32(g.scale_f16);
  // Never outside [0, qmax] for min/max scales in [0, 1] (the fp16 rounding moves -wmin/s by at
  // most qmax * 2^-11 < 0.5); clamped anyway because the zero is stored in `bits` bits.
  const float zp = std::nearbyint(-wmin / g.scale);
  g.zero = int(min_like_simd(max_like_simd(zp, 0.f), float(qmax)));
  return g;
}

void quantize_group_codes_ref(uint8_t* codes, const float* w, const float* v, int64_t n, float scale, int zero,
                              int bits) {
  const float hi = float((1 << bits) - 1), z = float(zero);
  for (int64_t i = 0; i < n; ++i) {
    float x = w[i] / scale;
    if (v) x += v[i];
    const float r = std::nearbyint(x);  // the default rounding mode: half to even, as torch.round
    codes[i] = uint8_t(int(min_like_simd(max_like_simd(r + z, 0.f), hi)));
  }
}

void quantize_group_codes(uint8_t* codes, const float* w, const float* v, int64_t n, float scale, int zero,
                          int bits) {
  if (qdq_simd_available())
    quantize_group_codes_avx2(codes, w, v, n, scale, zero, bits);
  else
    quantize_group_codes_ref(codes, w, v, n, scale, zero, bits);
}

void group_fake_quant_ref(float* out, const float* w, const float* v, int64_t n, float scale, int zero, int bits) {
  const float hi = float((1 << bits) - 1), z = float(zero);
  for (int64_t i = 0; i < n; ++i) {
    float x = w[i] / scale;
    if (v) x += v[i];
    const float code = min_like_simd(max_like_simd(std::nearbyint(x) + z, 0.f), hi);
    out[i] = scale * (code - z);
  }
}

void group_fake_quant_bf16_ref(uint16_t* out, const float* w, const float* v, int64_t n, float scale, int zero,
                               int bits) {
  float q[8];
  for (int64_t i = 0; i < n; i += 8) {
    const int64_t m = std::min<int64_t>(8, n - i);
    group_fake_quant_ref(q, w + i, v ? v + i : nullptr, m, scale, zero, bits);
    for (int64_t j = 0; j < m; ++j) out[i + j] = f32_to_bf16(q[j]);
  }
}

void group_fake_quant_bf16(uint16_t* out, const float* w, const float* v, int64_t n, float scale, int zero, int bits) {
  if (qdq_simd_available())
    group_fake_quant_bf16_avx2(out, w, v, n, scale, zero, bits);
  else
    group_fake_quant_bf16_ref(out, w, v, n, scale, zero, bits);
}

void group_fake_quant(float* out, const float* w, const float* v, int64_t n, float scale, int zero, int bits) {
  if (qdq_simd_available())
    group_fake_quant_avx2(out, w, v, n, scale, zero, bits);
  else
    group_fake_quant_ref(out, w, v, n, scale, zero, bits);
}

void group_errors_ref(float* err, const float* w, const float* imp, int64_t n, const float* scales,
                      const int* zeros, int count, int qmax) {
  AR_CHECK(count >= 1 && count <= kErrorBatch, "count ", count);
  for (int c = 0; c < count; ++c) {
    float acc[8] = {};
    const float s = scales[c], inv = 1.f / s, lo = float(-zeros[c]), hi = float(qmax - zeros[c]);
    for (int64_t i = 0; i < n; ++i) {
      const float r = std::nearbyint(w[i] * inv);
      const float q = min_like_simd(max_like_simd(r, lo), hi);  // = clamp(r + zero, 0, qmax) - zero
      const float d = s * q - w[i];
      float e = d * d;
      if (imp) e *= imp[i];
      acc[i % 8] += e;
    }
    err[c] = sum8(acc);
  }
}

void group_errors(float* err, const float* w, const float* imp, int64_t n, const float* scales, const int* zeros,
                  int count, int qmax) {
  AR_CHECK(count >= 1 && count <= kErrorBatch, "count ", count);
  if (!qdq_simd_available()) return group_errors_ref(err, w, imp, n, scales, zeros, count, qmax);
  if (imp)
    group_errors_avx2<true>(err, w, imp, n, scales, zeros, count, qmax);
  else
    group_errors_avx2<false>(err, w, imp, n, scales, zeros, count, qmax);
}

void candidate_scales_ref(float* out, float num, const float* den, int n) {
  for (int j = 0; j < n; ++j) out[j] = f16_to_f32(round_scale_f16(num / den[j]));
}

void candidate_scales(float* out, float num, const float* den, int n) {
  if (qdq_simd_available())
    candidate_scales_avx2(out, num, den, n);
  else
    candidate_scales_ref(out, num, den, n);
}

}  // namespace ar
