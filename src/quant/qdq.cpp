// Group quantization primitives (SPEC §2). The AVX2 versions are compiled with a target attribute
// and picked at run time, so the default build (no -march) still uses them on this CPU. No FMA:
// every product and sum is rounded separately, as in the _ref versions.
#include "quant/qdq.h"

#include <immintrin.h>

#include <cmath>

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

__attribute__((target("avx2"))) void quantize_group_codes_avx2(uint8_t* codes, const float* w, const float* v,
                                                                int64_t n, float scale, int zero, int bits) {
  const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(float(zero));
  const __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_set1_ps(float((1 << bits) - 1));
  alignas(32) int32_t tmp[8];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_div_ps(_mm256_loadu_ps(w + i), vs);
    if (v) x = _mm256_add_ps(x, _mm256_loadu_ps(v + i));
    __m256 r = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, vz), vlo), vhi);
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), _mm256_cvttps_epi32(r));
    for (int k = 0; k < 8; ++k) codes[i + k] = uint8_t(tmp[k]);
  }
  if (i < n) quantize_group_codes_ref(codes + i, w + i, v ? v + i : nullptr, n - i, scale, zero, bits);
}

__attribute__((target("avx2"))) void group_errors_avx2(float* err, const float* w, const float* imp, int64_t n,
                                                        float scale, const int* zeros, int n_zeros, int qmax) {
  const __m256 vs = _mm256_set1_ps(scale), vlo = _mm256_setzero_ps(), vhi = _mm256_set1_ps(float(qmax));
  __m256 vz[kMaxZeroCandidates], acc[kMaxZeroCandidates];
  for (int k = 0; k < n_zeros; ++k) {
    vz[k] = _mm256_set1_ps(float(zeros[k]));
    acc[k] = _mm256_setzero_ps();
  }
  const __m256 ones = _mm256_set1_ps(1.f);
  for (int64_t i = 0; i < n; i += 8) {
    __m256 wv, iv;
    if (i + 8 <= n) {
      wv = _mm256_loadu_ps(w + i);
      iv = imp ? _mm256_loadu_ps(imp + i) : ones;
    } else {
      // Masked lanes read as 0 and weigh 0, so they add +0 to their partial sums.
      const __m256i m = tail_mask(n - i);
      wv = _mm256_maskload_ps(w + i, m);
      iv = imp ? _mm256_maskload_ps(imp + i, m) : _mm256_and_ps(ones, _mm256_castsi256_ps(m));
    }
    const __m256 r = _mm256_round_ps(_mm256_div_ps(wv, vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    for (int k = 0; k < n_zeros; ++k) {
      __m256 q = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, vz[k]), vlo), vhi);
      __m256 d = _mm256_sub_ps(_mm256_mul_ps(vs, _mm256_sub_ps(q, vz[k])), wv);
      acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(_mm256_mul_ps(d, d), iv));
    }
  }
  for (int k = 0; k < n_zeros; ++k) err[k] = hsum_avx(acc[k]);
}

}  // namespace

bool qdq_simd_available() {
  static const bool ok = __builtin_cpu_supports("avx2");
  return ok;
}

uint16_t round_scale_f16(float s) {
  const uint16_t h = f32_to_f16(s);
  const float f = f16_to_f32(h);
  if (f < 0) return f > -kScaleFloor ? f32_to_f16(-kScaleFloor) : h;
  return f < kScaleFloor ? f32_to_f16(kScaleFloor) : h;
}

namespace {
// min(0, min w) and max(0, max w) over the group.
void group_range(const float* w, int64_t n, float* mn, float* mx) {
  float a = 0, b = 0;
  for (int64_t i = 0; i < n; ++i) {
    a = w[i] < a ? w[i] : a;
    b = w[i] > b ? w[i] : b;
  }
  *mn = a;
  *mx = b;
}
}  // namespace

GroupQuant sym_group_params(const float* w, int64_t n, int bits, float min_scale, float max_scale) {
  AR_DCHECK(bits >= 2 && bits <= 8, "bits ", bits);
  float mn, mx;
  group_range(w, n, &mn, &mx);
  const float lo = -(mn * min_scale), hi = mx * max_scale;
  // The larger side lands on code -2^(b-1): a negative scale when the positive side is larger.
  const float max_v = hi >= lo ? -hi : lo;
  GroupQuant g;
  g.scale_f16 = round_scale_f16(max_v / float(1 << (bits - 1)));
  g.scale = f16_to_f32(g.scale_f16);
  g.zero = 1 << (bits - 1);
  return g;
}

GroupQuant asym_group_params(const float* w, int64_t n, int bits, float min_scale, float max_scale) {
  AR_DCHECK(bits >= 2 && bits <= 8, "bits ", bits);
  float mn, mx;
  group_range(w, n, &mn, &mx);
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

void group_errors_ref(float* err, const float* w, const float* imp, int64_t n, float scale, const int* zeros,
                      int n_zeros, int qmax) {
  AR_CHECK(n_zeros >= 1 && n_zeros <= kMaxZeroCandidates, "n_zeros ", n_zeros);
  float acc[kMaxZeroCandidates][8] = {};
  const float hi = float(qmax);
  for (int64_t i = 0; i < n; ++i) {
    const float r = std::nearbyint(w[i] / scale);
    const float im = imp ? imp[i] : 1.f;
    for (int k = 0; k < n_zeros; ++k) {
      const float z = float(zeros[k]);
      const float q = min_like_simd(max_like_simd(r + z, 0.f), hi);
      const float d = scale * (q - z) - w[i];
      acc[k][i % 8] += d * d * im;
    }
  }
  for (int k = 0; k < n_zeros; ++k) err[k] = sum8(acc[k]);
}

void group_errors(float* err, const float* w, const float* imp, int64_t n, float scale, const int* zeros,
                  int n_zeros, int qmax) {
  AR_CHECK(n_zeros >= 1 && n_zeros <= kMaxZeroCandidates, "n_zeros ", n_zeros);
  if (qdq_simd_available())
    group_errors_avx2(err, w, imp, n, scale, zeros, n_zeros, qmax);
  else
    group_errors_ref(err, w, imp, n, scale, zeros, n_zeros, qmax);
}

}  // namespace ar
