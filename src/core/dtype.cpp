#include "core/dtype.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/vector_clones.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "core/error.h"

namespace ar {

namespace {
struct DTypeInfo {
  DType t;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kTypes[] = {
    {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::F64, "F64", 8}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1}, {DType::F8_E4M3, "F8_E4M3", 1},
};
}  // namespace

size_t dtype_size(DType t) {
  for (const auto& i : kTypes)
    if (i.t == t) return i.size;
  AR_CHECK(false, "unknown dtype ", int(t));
}

std::string_view dtype_name(DType t) {
  for (const auto& i : kTypes)
    if (i.t == t) return i.name;
  AR_CHECK(false, "unknown dtype ", int(t));
}

bool parse_dtype(std::string_view name, DType* out) {
  for (const auto& i : kTypes)
    if (name == i.name) {
      *out = i.t;
      return true;
    }
  return false;
}

float f16_to_f32_ref(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        man <<= 1;
        ++e;
      } while ((man & 0x400u) == 0);
      u = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | man << 13;
  } else {
    u = sign | (exp + 112) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16_ref(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;        // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;       // >= 65520 rounds to inf
  if (abs < 0x38800000u) {                             // below 2^-14: subnormal or zero
    if (abs < 0x33000000u) return sign;                // below half the smallest subnormal
    uint32_t e = abs >> 23;
    uint32_t man = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e;
    // value = man * 2^(e-150); subnormal unit = 2^-24 -> q = man * 2^(e-126) = man >> (126-e)
    uint32_t q = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return sign | uint16_t(q);
  }
  uint32_t r = abs - 0x38000000u;  // rebias exponent 127 -> 15
  uint32_t q = r >> 13;
  uint32_t rem = r & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;
  return sign | uint16_t(q);
}

#if defined(__x86_64__)
namespace {
// F16C (Ivy Bridge and later, every AVX2 CPU): one instruction for what the _ref versions do in
// twenty. Through cpuid (leaf 1, ecx), as clang's __builtin_cpu_supports does not know "f16c".
bool has_f16c() {
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
  }();
  return ok;
}
__attribute__((target("f16c"))) uint16_t f32_to_f16_f16c(float f) {
  return uint16_t(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
__attribute__((target("f16c"))) float f16_to_f32_f16c(uint16_t h) { return _cvtsh_ss(h); }
}  // namespace
#endif

// The same bits as the _ref versions: NaNs (whose payload the instructions keep, where the
// reference writes one quiet NaN) and, for the widening, infinities go the reference's way.
float f16_to_f32(uint16_t h) {
#if defined(__x86_64__)
  if ((h & 0x7c00u) != 0x7c00u && has_f16c()) return f16_to_f32_f16c(h);
#endif
  return f16_to_f32_ref(h);
}

uint16_t f32_to_f16(float f) {
#if defined(__x86_64__)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) <= 0x7f800000u && has_f16c()) return f32_to_f16_f16c(f);
#endif
  return f32_to_f16_ref(f);
}

// The bf16 conversions stage every BF16 GEMM operand (kernels/gemm.cpp), so they are compiled
// for each vector width and picked at run time (core/vector_clones.h).

AR_VECTOR_CLONES void bf16_to_f32(float* out, const uint16_t* in, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(in[i]);
}
namespace {
AR_VECTOR_CLONES void f32_to_bf16_portable(uint16_t* out, const float* in, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) out[i] = f32_to_bf16(in[i]);
}

#if defined(__x86_64__)
// GCC compiles the portable loop's AVX-512 clone with 256-bit vectors and a pack-and-permute per
// 16 values; written out with 512-bit integer ops and one narrowing store it takes half the time,
// and AVX512-BF16's conversion instruction a quarter (bench: 16 K values in L1, 0.18 -> 0.13 /
// 0.07 ns a value; 20 M streamed, 0.68 -> 0.43 / 0.31).
bool has_avx512f() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}
// AVX512-BF16: cpuid leaf 7, subleaf 1, eax bit 5 (not every compiler's __builtin_cpu_supports
// knows the name).
bool has_avx512_bf16() {
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return has_avx512f() && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5)) != 0;
  }();
  return ok;
}

// GCC 12's AVX-512 headers start shifts and narrowings from an "undefined" vector, which its
// -Wmaybe-uninitialized then reports (a false positive, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// f32_to_bf16 of 16 lanes, each result in the low half of its 32-bit lane: round to nearest even
// on the bits, a NaN kept quiet with its upper payload bits.
__attribute__((target("avx512f"))) inline __m512i bf16_bits_x16(__m512i u) {
  const __m512i hi = _mm512_srli_epi32(u, 16);
  const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __mmask16 nan =
      _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_or_epi32(rounded, nan, hi, _mm512_set1_epi32(0x40));
}

// Writes below what it reads are safe (f32_to_bf16_in_place): each 16 values are loaded before
// their 32 bytes are stored, and the tail's masked store touches only its own lanes.
__attribute__((target("avx512f"))) void f32_to_bf16_avx512(uint16_t* out, const float* in, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm512_cvtepi32_epi16(bf16_bits_x16(_mm512_loadu_si512(in + i))));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_cvtepi32_storeu_epi16(out + i, m, bf16_bits_x16(_mm512_maskz_loadu_epi32(m, in + i)));
  }
}

// vcvtneps2bf16 rounds as f32_to_bf16 does, NaNs included, but reads a subnormal input as zero:
// 16 values holding one go through the integer rounding instead.
__attribute__((target("avx512f,avx512bf16"))) void f32_to_bf16_avx512_bf16(uint16_t* out, const float* in,
                                                                           size_t n) {
  const __m512i exp_bits = _mm512_set1_epi32(0x7f800000), man_bits = _mm512_set1_epi32(0x007fffff);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i u = _mm512_loadu_si512(in + i);
    __m256i r;
    if (_mm512_testn_epi32_mask(u, exp_bits) & _mm512_test_epi32_mask(u, man_bits))
      r = _mm512_cvtepi32_epi16(bf16_bits_x16(u));
    else
      r = (__m256i)_mm512_cvtneps_pbh(_mm512_castsi512_ps(u));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), r);
  }
  if (i < n) f32_to_bf16_avx512(out + i, in + i, n - i);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

using Bf16Converter = void (*)(uint16_t*, const float*, size_t);
Bf16Converter best_bf16_converter() {
#if defined(__x86_64__)
  if (has_avx512_bf16()) return f32_to_bf16_avx512_bf16;
  if (has_avx512f()) return f32_to_bf16_avx512;
#endif
  return f32_to_bf16_portable;
}
}  // namespace

void f32_to_bf16(uint16_t* out, const float* in, size_t n) {
  static const Bf16Converter convert = best_bf16_converter();
  convert(out, in, n);
}

bool f32_to_bf16_path(Bf16Path p, uint16_t* out, const float* in, size_t n) {
  switch (p) {
    case Bf16Path::Auto: f32_to_bf16(out, in, n); return true;
    case Bf16Path::Portable: f32_to_bf16_portable(out, in, n); return true;
#if defined(__x86_64__)
    case Bf16Path::Avx512:
      if (!has_avx512f()) return false;
      f32_to_bf16_avx512(out, in, n);
      return true;
    case Bf16Path::Avx512Bf16:
      if (!has_avx512_bf16()) return false;
      f32_to_bf16_avx512_bf16(out, in, n);
      return true;
#else
    default: return false;
#endif
  }
  return false;
}
void for_each_packing_range(size_t n, const std::function<void(size_t i0, size_t len)>& step) {
  const size_t m0 = std::min(n, kPackingRange);
  if (m0 > 0) step(0, m0);
  for (size_t m = m0; m < n; m *= 2) {
    const size_t end = std::min(n, 2 * m);
    const int64_t ranges = int64_t((end - m + kPackingRange - 1) / kPackingRange);
#pragma omp parallel for if (ranges > 1)
    for (int64_t r = 0; r < ranges; ++r) {
      const size_t i0 = m + size_t(r) * kPackingRange;
      step(i0, std::min(kPackingRange, end - i0));
    }
  }
}

void f32_to_bf16_in_place(float* x, size_t n) {
  uint16_t* out = reinterpret_cast<uint16_t*>(x);
  for_each_packing_range(n, [x, out](size_t i0, size_t len) {
    if (i0 > 0) return f32_to_bf16(out + i0, x + i0, len);  // writes below what it reads
    thread_local std::vector<float> tmp;  // the first range's output overlaps its own input
    tmp.assign(x, x + len);
    f32_to_bf16(out, tmp.data(), len);
  });
}
AR_VECTOR_CLONES void round_to_bf16_values(float* out, const float* in, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(f32_to_bf16(in[i]));
}
void f16_to_f32(float* out, const uint16_t* in, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(in[i]);
}
void f32_to_f16(uint16_t* out, const float* in, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = f32_to_f16(in[i]);
}

void to_f32(float* out, const void* in, DType t, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(out, in, n * 4); return;
    case DType::BF16: bf16_to_f32(out, static_cast<const uint16_t*>(in), n); return;
    case DType::F16: f16_to_f32(out, static_cast<const uint16_t*>(in), n); return;
    default: AR_CHECK(false, "to_f32: unsupported dtype ", dtype_name(t));
  }
}

}  // namespace ar
