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
AR_VECTOR_CLONES void f32_to_bf16(uint16_t* out, const float* in, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) out[i] = f32_to_bf16(in[i]);
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
