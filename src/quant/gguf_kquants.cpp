// k-quant quantizers (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): 256-weight super-blocks of 16- or 32-weight
// sub-blocks. Each sub-block gets its own scale (and min) from a scale search; those are then
// quantized to 4/6/8 bits against one fp16 super-block scale, and the weights are re-rounded with
// the scales as stored, so the codes agree with what a reader dequantizes.
// Without importance weights this is llama.cpp's reference path (quantize_row_*_K_ref); with them,
// its weighted path (weights imp * sqrt(sigma2 + x^2), super-scales by fit_positive_levels).
#include "quant/gguf_strict_fp.h"  // first: no FMA contraction (see there)

#include <algorithm>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/gguf_block_search.h"
#include "quant/gguf_blocks.h"
#include "quant/gguf_kscales.h"
#include "quant/gguf_pack.h"
#include "quant/gguf_scale_search.h"

namespace ar {

namespace {

using gguf::round_nearest;

inline int clamp_int(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

// Re-round the 8 sub-blocks of 32 of a Q4_K/Q5_K block with the stored (fp16 d, 6-bit sc) scales;
// sub-blocks whose scale is 0 keep the search's levels.
void requantize_k4(const float* x, uint16_t d16, uint16_t dmin16, const uint8_t* scales, int nmax, uint8_t* L) {
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    get_scale_min_k4(j, scales, &sc, &m);
    const float d = f16_to_f32(d16) * sc;
    if (d == 0) continue;
    const float dm = f16_to_f32(dmin16) * m;
    for (int i = 0; i < 32; ++i) L[32 * j + i] = uint8_t(clamp_int(round_nearest((x[32 * j + i] + dm) / d), 0, nmax));
  }
}

void quantize_block_q2k(const float* x, BlockQ2K& y, const float* imp) {
  uint8_t L[kQKK];
  float scales[16], mins[16], sw[16];
  search_q2k(x, imp, L, scales, mins, sw);
  store_q2k_scales(scales, mins, imp ? sw : nullptr, y);
  const float d_all = f16_to_f32(y.d), m_all = f16_to_f32(y.dmin);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * (y.scales[j] & 0xF);
    if (d == 0) continue;
    const float dm = m_all * (y.scales[j] >> 4);
    for (int i = 0; i < 16; ++i) L[16 * j + i] = uint8_t(clamp_int(round_nearest((x[16 * j + i] + dm) / d), 0, 3));
  }
  pack_codes(L, y);
}

void quantize_block_q3k(const float* x, BlockQ3K& y, const float* imp) {
  int8_t L[kQKK];
  float scales[16], sw[16];
  search_q3k(x, imp, L, scales, sw);
  store_q3k_scales(scales, imp ? sw : nullptr, y);
  const float d_all = f16_to_f32(y.d);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * float(get_scale_q3k(j, y.scales) - 32);
    if (d == 0) continue;
    for (int i = 0; i < 16; ++i) L[16 * j + i] = int8_t(clamp_int(round_nearest(x[16 * j + i] / d), -4, 3) + 4);
  }
  pack_codes(reinterpret_cast<const uint8_t*>(L), y);
}

// Q4_K (nmax 15) / Q5_K (nmax 31).
template <typename Block, int nmax>
void quantize_block_k4(const float* x, Block& y, const float* imp) {
  uint8_t L[kQKK];
  float scales[8], mins[8], sw[8];
  search_k4(x, imp, nmax, L, scales, mins, sw);
  store_k4_scales(scales, mins, imp ? sw : nullptr, y.scales, &y.d, &y.dmin);
  requantize_k4(x, y.d, y.dmin, y.scales, nmax, L);
  pack_codes(L, y);
}

void quantize_block_q6k(const float* x, BlockQ6K& y, const float* imp) {
  int8_t L[kQKK];
  float scales[16];
  search_q6k(x, imp, L, scales);
  if (!store_q6k_scales(scales, y)) return;
  const float d_all = f16_to_f32(y.d);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * y.scales[j];
    if (d == 0) continue;
    for (int i = 0; i < 16; ++i) L[16 * j + i] = int8_t(clamp_int(round_nearest(x[16 * j + i] / d), -32, 31) + 32);
  }
  pack_codes(reinterpret_cast<const uint8_t*>(L), y);
}

template <typename Block, void (*quantize_block)(const float*, Block&, const float*)>
void quantize_row_k(const float* x, Block* y, int64_t n, const float* imp, const char* what) {
  AR_CHECK(n % kQKK == 0, what, ": row of ", n, " weights is not a multiple of ", kQKK);
  for (int64_t b = 0; b < n / kQKK; ++b) quantize_block(x + b * kQKK, y[b], imp ? imp + b * kQKK : nullptr);
}

}  // namespace

void quantize_row_q2_k(const float* x, BlockQ2K* y, int64_t n, const float* imp) {
  quantize_row_k<BlockQ2K, quantize_block_q2k>(x, y, n, imp, "quantize_row_q2_k");
}
void quantize_row_q3_k(const float* x, BlockQ3K* y, int64_t n, const float* imp) {
  quantize_row_k<BlockQ3K, quantize_block_q3k>(x, y, n, imp, "quantize_row_q3_k");
}
void quantize_row_q4_k(const float* x, BlockQ4K* y, int64_t n, const float* imp) {
  quantize_row_k<BlockQ4K, quantize_block_k4<BlockQ4K, 15>>(x, y, n, imp, "quantize_row_q4_k");
}
void quantize_row_q5_k(const float* x, BlockQ5K* y, int64_t n, const float* imp) {
  quantize_row_k<BlockQ5K, quantize_block_k4<BlockQ5K, 31>>(x, y, n, imp, "quantize_row_q5_k");
}
void quantize_row_q6_k(const float* x, BlockQ6K* y, int64_t n, const float* imp) {
  quantize_row_k<BlockQ6K, quantize_block_q6k>(x, y, n, imp, "quantize_row_q6_k");
}

}  // namespace ar
