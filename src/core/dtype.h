// Element types found in model files and the conversions between them.
// bf16 = upper half of an IEEE f32 (round-to-nearest-even on the way down);
// f16 = IEEE binary16 with subnormals, converted in software so no CPU feature is assumed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <cstring>
#include <string>
#include <string_view>

namespace ar {

// F8_E4M3: FP8 E4M3 ("e4m3fn") bytes, as safetensors names torch.float8_e4m3fn (compressed-tensors'
// and AutoRound's FP8 weights and NVFP4 scales); decoded by quant/fp_formats (decode_e4m3), never
// by to_f32.
enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, F8_E4M3 };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);  // safetensors spelling: "F32", "BF16", ...
// Returns false for a name we do not know (the caller names the file in its error).
bool parse_dtype(std::string_view name, DType* out);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Branch-free (a select, not a jump) so that loops over it vectorize.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  // round to nearest, ties to even
  const uint32_t quiet_nan = (u >> 16) | 0x40u;
  return uint16_t((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even, overflow -> inf, a NaN -> sign | 0x7e00
// The portable versions the two above give the bits of (they use F16C where the CPU has it).
float f16_to_f32_ref(uint16_t h);
uint16_t f32_to_f16_ref(float f);

// Bulk conversions of n elements.
void bf16_to_f32(float* out, const uint16_t* in, size_t n);
void f32_to_bf16(uint16_t* out, const float* in, size_t n);  // the bits of the scalar one, each value
// The array conversion's implementations, which f32_to_bf16 picks from once (the fastest the CPU
// has): the portable loop compiled per vector width, AVX-512F integer rounding, AVX512-BF16's
// conversion instruction. For tests, which run each the CPU has: false when it has not this one.
enum class Bf16Path { Auto, Portable, Avx512, Avx512Bf16 };
bool f32_to_bf16_path(Bf16Path p, uint16_t* out, const float* in, size_t n);
// Packing n f32 values into n 16-bit values in the same storage (element i to 16-bit index i, on
// float i/2), in parallel: calls step(i0, len) over consecutive ranges of at most kPackingRange
// elements. The first range runs alone and its step must read all of it before writing any;
// then ranges [m, 2m) run in parallel: they write [m/2, m), read by an earlier range, so no
// thread overwrites what another still reads.
constexpr size_t kPackingRange = size_t(1) << 14;
void for_each_packing_range(size_t n, const std::function<void(size_t i0, size_t len)>& step);
// x's n floats become n bf16 values packed at its start (element i at bf16 index i of
// reinterpret_cast<uint16_t*>(x)), in parallel and without a second buffer: for a buffer whose f32
// values are dead once they only feed bf16 products.
void f32_to_bf16_in_place(float* x, size_t n);
// out[i] = in[i] rounded to the nearest bf16 value, kept as f32 (out may equal in).
void round_to_bf16_values(float* out, const float* in, size_t n);
void f16_to_f32(float* out, const uint16_t* in, size_t n);
void f32_to_f16(uint16_t* out, const float* in, size_t n);
// Convert n elements of type `t` at `in` to f32 (F32, F16, BF16 only; others are a bug).
void to_f32(float* out, const void* in, DType t, size_t n);

}  // namespace ar
