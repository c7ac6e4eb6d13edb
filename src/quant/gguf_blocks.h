// GGUF block formats (ggml's Q4_0 ... Q8_0 and the k-quants Q2_K ... Q6_K, plus F32/F16/BF16):
// the on-disk block structs, byte for byte as ggml-common.h lays them out, and row/tensor
// quantizers and dequantizers. The simple formats reproduce llama.cpp's reference quantizers
// bit for bit; the k-quants follow the same scale/min searches (see gguf_scale_search.h).
// All multi-byte fields are little-endian; d/dmin/m are IEEE fp16 bit patterns.
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>

#include "core/ggml_type.h"

namespace ar {

static_assert(std::endian::native == std::endian::little, "GGUF blocks are read and written in place");

constexpr int kQK = 32;    // weights per block of the simple formats
constexpr int kQKK = 256;  // weights per k-quant super-block

// x = d * (q - 8), q in 0..15; qs[j] holds weight j (low nibble) and weight j+16 (high nibble).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// x = d * q + m, q in 0..15; nibbles as Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
// x = d * (q - 16), q in 0..31; low nibbles as Q4_0, bit 4 of weight j is bit j of qh (u32 LE).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// x = d * q + m, q in 0..31; bits as Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// x = d * q, q int8.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};

// 16 sub-blocks of 16: x = d * sc - dmin * m, sc/m the low/high nibble of scales[i].
// qs: per 128 weights, 32 bytes; weight 32*s + l of that half is in bits 2s..2s+1 of byte l.
struct BlockQ2K {
  uint8_t scales[kQKK / 16];
  uint8_t qs[kQKK / 4];
  uint16_t d;
  uint16_t dmin;
};
// 16 sub-blocks of 16: x = d * (sc - 32) * (q - 4), q 3 bits: 2 low bits packed as Q2_K's qs,
// high bit of weight j in bit j/32 of hmask[j%32]; the 6-bit sc are 4 low bits (scales[0..7],
// low then high nibble) plus 2 high bits (scales[8..11], 2 bits per sub-block, j%4 picks the byte).
struct BlockQ3K {
  uint8_t hmask[kQKK / 8];
  uint8_t qs[kQKK / 4];
  uint8_t scales[12];
  uint16_t d;
};
// 8 sub-blocks of 32: x = d * sc - dmin * m, 6-bit sc/m packed in 12 bytes (see get_scale_min);
// qs: per 64 weights, 32 bytes, first 32 weights in the low nibbles, next 32 in the high ones.
struct BlockQ4K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
// As Q4_K with a fifth bit: weight 64*c + l (l < 32) -> bit 2c of qh[l], 64*c + 32 + l -> bit 2c+1.
struct BlockQ5K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
// 16 sub-blocks of 16: x = d * scales[i] * (q - 32), q 6 bits. Per 128 weights: ql 64 bytes
// (weights l and l+64 in byte l, l+32 and l+96 in byte l+32), qh 32 bytes (2 bits of each of
// weights l, l+32, l+64, l+96 in byte l).
struct BlockQ6K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ2K) == 84 && sizeof(BlockQ3K) == 110 && sizeof(BlockQ4K) == 144 &&
              sizeof(BlockQ5K) == 176 && sizeof(BlockQ6K) == 210);
static_assert(offsetof(BlockQ2K, d) == 80 && offsetof(BlockQ3K, d) == 108 && offsetof(BlockQ6K, d) == 208 &&
              offsetof(BlockQ5K, qs) == 48);

// Quantize one row. x: n floats, n % block_elems(t) == 0 (AR_CHECK); dst: ggml_row_bytes(t, n)
// bytes, overwritten. imp: optional n per-column importance weights (llama.cpp's imatrix path:
// weighted least squares instead of the reference search); null = the reference quantizer.
// imp is ignored by Q8_0 and F32/F16/BF16, as in llama.cpp.
void gguf_quantize_row(GgmlType t, const float* x, int64_t n, void* dst, const float* imp = nullptr);

// y: n floats, overwritten; src: ggml_row_bytes(t, n) bytes. Same arithmetic as ggml's
// dequantize_row_*, so results are bit-identical to llama.cpp's.
void gguf_dequantize_row(GgmlType t, const void* src, int64_t n, float* y);

// Whole tensor x (rows, n) -> dst (rows * ggml_row_bytes(t, n) bytes); imp is per column (n), the
// same for every row. Rows run in parallel (OpenMP); each row's bytes do not depend on threads.
void gguf_quantize_tensor(GgmlType t, const float* x, int64_t rows, int64_t n, void* dst,
                          const float* imp = nullptr);
// src (rows * ggml_row_bytes(t, n) bytes) -> y (rows, n), rows in parallel.
void gguf_dequantize_tensor(GgmlType t, const void* src, int64_t rows, int64_t n, float* y);

// Per-format entry points behind the two dispatchers (n weights, a multiple of the block size).
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n, const float* imp);
void quantize_row_q4_1(const float* x, BlockQ4_1* y, int64_t n, const float* imp);
void quantize_row_q5_0(const float* x, BlockQ5_0* y, int64_t n, const float* imp);
void quantize_row_q5_1(const float* x, BlockQ5_1* y, int64_t n, const float* imp);
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q2_k(const float* x, BlockQ2K* y, int64_t n, const float* imp);
void quantize_row_q3_k(const float* x, BlockQ3K* y, int64_t n, const float* imp);
void quantize_row_q4_k(const float* x, BlockQ4K* y, int64_t n, const float* imp);
void quantize_row_q5_k(const float* x, BlockQ5K* y, int64_t n, const float* imp);
void quantize_row_q6_k(const float* x, BlockQ6K* y, int64_t n, const float* imp);

void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n);
void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t n);
void dequantize_row_q5_0(const BlockQ5_0* x, float* y, int64_t n);
void dequantize_row_q5_1(const BlockQ5_1* x, float* y, int64_t n);
void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n);
void dequantize_row_q2_k(const BlockQ2K* x, float* y, int64_t n);
void dequantize_row_q3_k(const BlockQ3K* x, float* y, int64_t n);
void dequantize_row_q4_k(const BlockQ4K* x, float* y, int64_t n);
void dequantize_row_q5_k(const BlockQ5K* x, float* y, int64_t n);
void dequantize_row_q6_k(const BlockQ6K* x, float* y, int64_t n);

// Q4_K/Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}
// The inverse: store sub-block j's 6-bit scale and min (bytes must start zeroed).
inline void set_scale_min_k4(int j, uint8_t sc, uint8_t m, uint8_t* q) {
  if (j < 4) {
    q[j] |= sc;
    q[j + 4] |= m;
  } else {
    q[j + 4] = uint8_t((sc & 0xF) | ((m & 0xF) << 4));
    q[j - 4] |= uint8_t((sc >> 4) << 6);
    q[j] |= uint8_t((m >> 4) << 6);
  }
}
// Q3_K: the 6-bit (biased by 32) scale of sub-block j (0..15); set expects zeroed bytes.
inline int get_scale_q3k(int j, const uint8_t* s) {
  const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
  const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return lo | (hi << 4);
}
inline void set_scale_q3k(int j, int v, uint8_t* s) {
  if (j < 8)
    s[j] |= uint8_t(v & 0xF);
  else
    s[j - 8] |= uint8_t((v & 0xF) << 4);
  s[8 + j % 4] |= uint8_t(((v >> 4) & 3) << (2 * (j / 4)));
}

}  // namespace ar
