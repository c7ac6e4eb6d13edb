// k-quant quantizers (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): 256-weight super-blocks of 16- or 32-weight
// sub-blocks. Each sub-block gets its own scale (and min) from a scale search; those are then
// quantized to 4/6/8 bits against one fp16 super-block scale, and the weights are re-rounded with
// the scales as stored, so the codes agree with what a reader dequantizes.
// Without importance weights this is llama.cpp's reference path (quantize_row_*_K_ref); with them,
// its weighted path (weights imp * sqrt(sigma2 + x^2), super-scales by fit_positive_levels).
#include "quant/gguf_strict_fp.h"  // first: no FMA contraction (see there)

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/gguf_blocks.h"
#include "quant/gguf_pack.h"
#include "quant/gguf_scale_search.h"

namespace ar {

namespace {

using gguf::round_nearest;

inline int clamp_int(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

float sum_squares(const float* x, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

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

// Sub-block scales and mins of a Q4_K/Q5_K super-block, stored as 6-bit values + fp16 d/dmin.
void fit_k4_scales(const float* x, const float* imp, int nmax, uint8_t* L, uint16_t* d16, uint16_t* dmin16,
                   uint8_t* packed) {
  float scales[8], mins[8], w[kQKK];
  std::memset(packed, 0, 12);
  if (!imp) {
    // Weights |x| + the sub-block's rms: large weights matter more, small ones are not ignored.
    for (int j = 0; j < 8; ++j) {
      const float* xs = x + 32 * j;
      const float av_x = std::sqrt(sum_squares(xs, 32) / 32);
      for (int l = 0; l < 32; ++l) w[32 * j + l] = av_x + std::fabs(xs[l]);
    }
    if (nmax == 15)
      gguf::fit_affine_levels_groups(8, 32, 15, x, w, L, scales, mins, -1.f, 0.1f, 20, false, false);
    else
      gguf::fit_affine_levels_groups(8, 32, 31, x, w, L, scales, mins, -0.5f, 0.1f, 15, false, false);
    gguf::pack_k4_scales_by_max(scales, mins, packed, d16, dmin16);
    return;
  }
  const float sigma2 = 2 * sum_squares(x, kQKK) / kQKK;
  float sw[8];
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sumw = 0;
    for (int l = 0; l < 32; ++l) {
      w[32 * j + l] = imp[32 * j + l] * std::sqrt(sigma2 + xs[l] * xs[l]);
      sumw += w[32 * j + l];
    }
    sw[j] = sumw;
  }
  gguf::fit_affine_levels_groups(8, 32, nmax, x, w, L, scales, mins, -0.9f, 0.05f, 36, false, true);
  uint8_t Ls[8], Lm[8];
  const float d_block = gguf::fit_positive_levels(8, 63, scales, Ls, sw);
  const float m_block = gguf::fit_positive_levels(8, 63, mins, Lm, sw);
  for (int j = 0; j < 8; ++j) set_scale_min_k4(j, Ls[j], Lm[j], packed);
  *d16 = f32_to_f16(d_block);
  *dmin16 = f32_to_f16(m_block);
}

void quantize_block_q2k(const float* x, BlockQ2K& y, const float* imp) {
  uint8_t L[kQKK];
  float scales[16], mins[16], w[kQKK];
  if (!imp) {
    // Weights |x| and absolute (not squared) error, as the reference: with only 4 levels, squared
    // error would let single outliers set the scale.
    for (int i = 0; i < kQKK; ++i) w[i] = std::fabs(x[i]);
    gguf::fit_affine_levels_groups(16, 16, 3, x, w, L, scales, mins, -0.5f, 0.1f, 15, true, false);
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float q4scale = 15.f;
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < 16; ++j) y.scales[j] = uint8_t(round_nearest(iscale * scales[j]));
      y.d = f32_to_f16(max_scale / q4scale);
    } else {
      std::memset(y.scales, 0, 16);
      y.d = f32_to_f16(0.f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < 16; ++j) y.scales[j] |= uint8_t(round_nearest(iscale * mins[j]) << 4);
      y.dmin = f32_to_f16(max_min / q4scale);
    } else {
      y.dmin = f32_to_f16(0.f);
    }
  } else {
    const float sigma2 = sum_squares(x, kQKK) / kQKK;
    float sw[16];
    for (int j = 0; j < 16; ++j) {
      float sumw = 0;
      for (int l = 0; l < 16; ++l) {
        w[16 * j + l] = imp[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
        sumw += w[16 * j + l];
      }
      sw[j] = sumw;
    }
    gguf::fit_affine_levels_groups(16, 16, 3, x, w, L, scales, mins, -0.9f, 0.05f, 36, false, true);
    uint8_t Ls[16], Lm[16];
    const float dm = gguf::fit_positive_levels(16, 15, scales, Ls, sw);
    const float mm = gguf::fit_positive_levels(16, 15, mins, Lm, sw);
    y.d = f32_to_f16(dm);
    y.dmin = f32_to_f16(mm);
    for (int j = 0; j < 16; ++j) y.scales[j] = uint8_t(Ls[j] | (Lm[j] << 4));
  }
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
  float scales[16];
  std::memset(y.scales, 0, 12);
  if (!imp) {
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = gguf::fit_sym_levels_refined(16, 4, x + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > amax) {
        amax = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    if (max_scale != 0) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        // The reference stores the rounded value in an int8 before clamping; it is within +-32 here.
        const int l = clamp_int(int8_t(round_nearest(iscale * scales[j])), -32, 31) + 32;
        set_scale_q3k(j, l, y.scales);
      }
      y.d = f32_to_f16(1 / iscale);
    } else {
      y.d = f32_to_f16(0.f);
    }
  } else {
    const float sigma2 = 2 * sum_squares(x, kQKK) / kQKK;
    float w[kQKK], sw[16];
    for (int j = 0; j < 16; ++j) {
      float sumw = 0;
      for (int l = 0; l < 16; ++l) w[16 * j + l] = imp[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
      for (int l = 0; l < 16; ++l) sumw += w[16 * j + l];
      sw[j] = sumw;
    }
    gguf::fit_sym_levels_groups(16, 16, 4, x, w, L, scales);
    int8_t Ls[16];
    const float d_block = gguf::fit_sym_levels(16, 32, scales, sw, Ls);
    for (int j = 0; j < 16; ++j) set_scale_q3k(j, Ls[j], y.scales);
    y.d = f32_to_f16(d_block);
  }
  const float d_all = f16_to_f32(y.d);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * float(get_scale_q3k(j, y.scales) - 32);
    if (d == 0) continue;
    for (int i = 0; i < 16; ++i) L[16 * j + i] = int8_t(clamp_int(round_nearest(x[16 * j + i] / d), -4, 3) + 4);
  }
  pack_codes(reinterpret_cast<const uint8_t*>(L), y);
}

void quantize_block_q4k(const float* x, BlockQ4K& y, const float* imp) {
  uint8_t L[kQKK];
  fit_k4_scales(x, imp, 15, L, &y.d, &y.dmin, y.scales);
  requantize_k4(x, y.d, y.dmin, y.scales, 15, L);
  pack_codes(L, y);
}

void quantize_block_q5k(const float* x, BlockQ5K& y, const float* imp) {
  uint8_t L[kQKK];
  fit_k4_scales(x, imp, 31, L, &y.d, &y.dmin, y.scales);
  requantize_k4(x, y.d, y.dmin, y.scales, 31, L);
  pack_codes(L, y);
}

void quantize_block_q6k(const float* x, BlockQ6K& y, const float* imp) {
  int8_t L[kQKK];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  // Reference: weights x^2; weighted path: the importance itself.
  gguf::fit_sym_levels_groups(16, 16, 32, x, imp, L, scales);
  for (int j = 0; j < 16; ++j) {
    if (std::fabs(scales[j]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  if (max_abs_scale < 1e-15f) {
    std::memset(&y, 0, sizeof(y));
    return;
  }
  const float iscale = -128.f / max_scale;
  y.d = f32_to_f16(1 / iscale);
  for (int j = 0; j < 16; ++j) y.scales[j] = int8_t(std::min(127, round_nearest(iscale * scales[j])));
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
  quantize_row_k<BlockQ4K, quantize_block_q4k>(x, y, n, imp, "quantize_row_q4_k");
}
void quantize_row_q5_k(const float* x, BlockQ5K* y, int64_t n, const float* imp) {
  quantize_row_k<BlockQ5K, quantize_block_q5k>(x, y, n, imp, "quantize_row_q5_k");
}
void quantize_row_q6_k(const float* x, BlockQ6K* y, int64_t n, const float* imp) {
  quantize_row_k<BlockQ6K, quantize_block_q6k>(x, y, n, imp, "quantize_row_q6_k");
}

}  // namespace ar
