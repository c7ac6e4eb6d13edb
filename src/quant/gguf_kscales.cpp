// k-quant scale fields (see gguf_kscales.h), with llama.cpp's float arithmetic: the reference
// paths of quantize_row_q{2,3,4,5,6}_K_ref and the importance paths of quantize_row_*_impl.
#include "quant/gguf_strict_fp.h"  // first: no FMA contraction (see there)

#include "quant/gguf_kscales.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "quant/gguf_scale_search.h"

namespace ar {

using gguf::round_nearest;

namespace {

// Largest of n values, 0 if none is positive.
float positive_max(const float* v, int n) {
  float max = 0;
  for (int j = 0; j < n; ++j)
    if (v[j] > max) max = v[j];
  return max;
}

// The signed value of largest magnitude (the first on ties), 0 if all are 0.
float signed_absmax(const float* v, int n) {
  float amax = 0, max = 0;
  for (int j = 0; j < n; ++j)
    if (std::fabs(v[j]) > amax) {
      amax = std::fabs(v[j]);
      max = v[j];
    }
  return max;
}

}  // namespace

void store_q2k_scales(const float* s, const float* m, const float* sw, BlockQ2K& y) {
  if (sw) {
    uint8_t Ls[16], Lm[16];
    const float d = gguf::fit_positive_levels(16, 15, s, Ls, sw);
    const float dmin = gguf::fit_positive_levels(16, 15, m, Lm, sw);
    y.d = f32_to_f16(d);
    y.dmin = f32_to_f16(dmin);
    for (int j = 0; j < 16; ++j) y.scales[j] = uint8_t(Ls[j] | (Lm[j] << 4));
    return;
  }
  const float max_s = positive_max(s, 16), max_m = positive_max(m, 16);
  std::memset(y.scales, 0, 16);
  y.d = f32_to_f16(0.f);
  y.dmin = f32_to_f16(0.f);
  // min(15, .): the largest one rounds to 15 anyway; the guard keeps a nibble from spilling.
  if (max_s > 0) {
    const float is = 15.f / max_s;
    for (int j = 0; j < 16; ++j) y.scales[j] = uint8_t(std::min(15, round_nearest(is * s[j])));
    y.d = f32_to_f16(max_s / 15.f);
  }
  if (max_m > 0) {
    const float is = 15.f / max_m;
    for (int j = 0; j < 16; ++j) y.scales[j] |= uint8_t(std::min(15, round_nearest(is * m[j])) << 4);
    y.dmin = f32_to_f16(max_m / 15.f);
  }
}

void store_q3k_scales(const float* s, const float* sw, BlockQ3K& y) {
  std::memset(y.scales, 0, 12);
  if (sw) {
    int8_t Ls[16];
    const float d = gguf::fit_sym_levels(16, 32, s, sw, Ls);
    for (int j = 0; j < 16; ++j) set_scale_q3k(j, Ls[j], y.scales);
    y.d = f32_to_f16(d);
    return;
  }
  const float max_s = signed_absmax(s, 16);
  y.d = f32_to_f16(0.f);
  if (max_s == 0) return;
  const float is = -32.f / max_s;
  // The reference stores the rounded value in an int8 before clamping; it is within +-32 here.
  for (int j = 0; j < 16; ++j) set_scale_q3k(j, std::clamp<int>(int8_t(round_nearest(is * s[j])), -32, 31) + 32, y.scales);
  y.d = f32_to_f16(1 / is);
}

void store_k4_scales(const float* s, const float* m, const float* sw, uint8_t* packed, uint16_t* d16,
                     uint16_t* dmin16) {
  std::memset(packed, 0, 12);
  if (sw) {
    uint8_t Ls[8], Lm[8];
    const float d = gguf::fit_positive_levels(8, 63, s, Ls, sw);
    const float dmin = gguf::fit_positive_levels(8, 63, m, Lm, sw);
    for (int j = 0; j < 8; ++j) set_scale_min_k4(j, Ls[j], Lm[j], packed);
    *d16 = f32_to_f16(d);
    *dmin16 = f32_to_f16(dmin);
    return;
  }
  const float max_s = positive_max(s, 8), max_m = positive_max(m, 8);
  const float inv_s = max_s > 0 ? 63.f / max_s : 0.f;
  const float inv_m = max_m > 0 ? 63.f / max_m : 0.f;
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, uint8_t(round_nearest(inv_s * s[j])));
    const uint8_t lm = std::min<uint8_t>(63, uint8_t(round_nearest(inv_m * m[j])));
    set_scale_min_k4(j, ls, lm, packed);
  }
  *d16 = f32_to_f16(max_s / 63.f);
  *dmin16 = f32_to_f16(max_m / 63.f);
}

bool store_q6k_scales(const float* s, BlockQ6K& y) {
  const float max_s = signed_absmax(s, 16);
  if (std::fabs(max_s) < 1e-15f) {
    std::memset(&y, 0, sizeof(y));
    return false;
  }
  const float is = -128.f / max_s;
  y.d = f32_to_f16(1 / is);
  for (int j = 0; j < 16; ++j) y.scales[j] = int8_t(std::min(127, round_nearest(is * s[j])));
  return true;
}

}  // namespace ar
