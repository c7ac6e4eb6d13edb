// The 32-weight GGUF formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: quantizers and dequantizers.
// Without importance weights these are llama.cpp's reference quantizers (quantize_row_*_ref):
// scale from the block's absmax or min/max, codes by truncating x/d + offset + 0.5 (Q8_0: roundf,
// ties away from zero), d and m rounded to fp16 only when stored, so the bytes match its files.
// With importance weights they follow its weighted paths (the fit_*_levels_groups searches).
#include "quant/gguf_strict_fp.h"  // first: no FMA contraction (see there)

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/gguf_block_search.h"
#include "quant/gguf_blocks.h"
#include "quant/gguf_pack.h"

namespace ar {

namespace {

// The block's element of largest |x| with its sign (first one on ties), as the symmetric formats use.
float block_signed_absmax(const float* x) {
  float amax = 0, max = 0;
  for (int j = 0; j < kQK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void block_min_max(const float* x, float* min_out, float* max_out) {
  float min = FLT_MAX, max = -FLT_MAX;
  for (int j = 0; j < kQK; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  *min_out = min;
  *max_out = max;
}

void check_blocks(int64_t n, const char* what) {
  AR_CHECK(n % kQK == 0, what, ": row of ", n, " weights is not a multiple of ", kQK);
}

// Q4_0 / Q5_0: x = d * (q - nmax), q in 0..2*nmax-1. The reference maps the block's signed absmax
// to -nmax; x * id lies in [-nmax, nmax], +nmax+0.5 then truncation rounds half up, and the clip
// catches the top end (+nmax).
template <typename Block>
void quantize_row_sym(const float* x, Block* y, int64_t n, const float* imp, int nmax, const char* what) {
  check_blocks(n, what);
  if (imp) {
    std::vector<int8_t> L(static_cast<size_t>(n));
    std::vector<float> d(static_cast<size_t>(n / kQK));
    search_sym_row_weighted(x, n, imp, nmax, L.data(), d.data());
    for (int64_t b = 0; b < n / kQK; ++b) {
      y[b].d = f32_to_f16(d[size_t(b)]);
      pack_codes(reinterpret_cast<const uint8_t*>(L.data() + b * kQK), y[b]);
    }
    return;
  }
  const float offset = float(nmax) + 0.5f;
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const float d = block_signed_absmax(x) / -float(nmax);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    uint8_t L[kQK];
    for (int j = 0; j < kQK; ++j) L[j] = uint8_t(std::min(2 * nmax - 1, int(x[j] * id + offset)));
    pack_codes(L, y[b]);
  }
}

// Q4_1 / Q5_1: x = d * q + m, q in 0..nmax, the reference from the block's min/max. Codes are
// clipped at clip_hi: Q4_1's reference clips, Q5_1's does not ((x - min) * id <= nmax up to
// rounding, so neither clip bites on finite weights).
template <typename Block>
void quantize_row_affine(const float* x, Block* y, int64_t n, const float* imp, int nmax, int clip_hi,
                         const char* what) {
  check_blocks(n, what);
  if (imp) {
    std::vector<uint8_t> L(static_cast<size_t>(n));
    std::vector<float> d(static_cast<size_t>(n / kQK)), min(static_cast<size_t>(n / kQK));
    search_affine_row_weighted(x, n, imp, nmax, L.data(), d.data(), min.data());
    for (int64_t b = 0; b < n / kQK; ++b) {
      y[b].d = f32_to_f16(d[size_t(b)]);
      y[b].m = f32_to_f16(-min[size_t(b)]);
      pack_codes(L.data() + b * kQK, y[b]);
    }
    return;
  }
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float min, max;
    block_min_max(x, &min, &max);
    const float d = (max - min) / float(nmax);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(min);
    uint8_t L[kQK];
    for (int j = 0; j < kQK; ++j) L[j] = uint8_t(std::min(clip_hi, int((x[j] - min) * id + 0.5f)));
    pack_codes(L, y[b]);
  }
}

}  // namespace

void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n, const float* imp) {
  quantize_row_sym(x, y, n, imp, 8, "quantize_row_q4_0");
}
void quantize_row_q5_0(const float* x, BlockQ5_0* y, int64_t n, const float* imp) {
  quantize_row_sym(x, y, n, imp, 16, "quantize_row_q5_0");
}
void quantize_row_q4_1(const float* x, BlockQ4_1* y, int64_t n, const float* imp) {
  quantize_row_affine(x, y, n, imp, 15, 15, "quantize_row_q4_1");
}
void quantize_row_q5_1(const float* x, BlockQ5_1* y, int64_t n, const float* imp) {
  quantize_row_affine(x, y, n, imp, 31, INT_MAX, "quantize_row_q5_1");
}

void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n) {
  check_blocks(n, "quantize_row_q8_0");
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    int8_t L[kQK];
    for (int j = 0; j < kQK; ++j) L[j] = int8_t(std::round(x[j] * id));
    pack_codes(L, y[b]);
  }
}

void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n) {
  check_blocks(n, "dequantize_row_q4_0");
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float((x[b].qs[j] & 0x0F) - 8) * d;
      y[j + 16] = float((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t n) {
  check_blocks(n, "dequantize_row_q4_1");
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float(x[b].qs[j] & 0x0F) * d + m;
      y[j + 16] = float(x[b].qs[j] >> 4) * d + m;
    }
  }
}

namespace {
// Level (0..31) of weight j of a Q5 block.
inline int q5_level(const uint8_t* qs, const uint8_t* qh_bytes, int j) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  const int lo = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
  return lo | int(((qh >> j) & 1) << 4);
}
}  // namespace

void dequantize_row_q5_0(const BlockQ5_0* x, float* y, int64_t n) {
  check_blocks(n, "dequantize_row_q5_0");
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK; ++j) y[j] = float(q5_level(x[b].qs, x[b].qh, j) - 16) * d;
  }
}

void dequantize_row_q5_1(const BlockQ5_1* x, float* y, int64_t n) {
  check_blocks(n, "dequantize_row_q5_1");
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    for (int j = 0; j < kQK; ++j) y[j] = float(q5_level(x[b].qs, x[b].qh, j)) * d + m;
  }
}

void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n) {
  check_blocks(n, "dequantize_row_q8_0");
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK; ++j) y[j] = float(x[b].qs[j]) * d;
  }
}

}  // namespace ar
