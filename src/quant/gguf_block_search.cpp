// Per-format scale searches shared by the RTN and the tuning init (see gguf_block_search.h). The
// weights follow llama.cpp's quantize_row_*_ref / *_impl: the importance paths use
// imp * sqrt(sigma2 + x^2) (sigma2 the mean square of the row, or twice that of the super-block
// for Q3_K..Q5_K), so large weights matter more even where the importance is flat.
#include "quant/gguf_strict_fp.h"  // first: no FMA contraction (see there)

#include "quant/gguf_block_search.h"

#include <cmath>
#include <vector>

#include "quant/gguf_blocks.h"
#include "quant/gguf_scale_search.h"

namespace ar {

namespace {

float sum_squares(const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

// w = imp * sqrt(sigma2 + x^2) for n weights.
void importance_weights(const float* x, const float* imp, int64_t n, float sigma2, float* w) {
  for (int64_t i = 0; i < n; ++i) w[i] = imp[i] * std::sqrt(sigma2 + x[i] * x[i]);
}

std::vector<float> row_importance_weights(const float* x, int64_t n, const float* imp) {
  std::vector<float> w(static_cast<size_t>(n));
  importance_weights(x, imp, n, sum_squares(x, n) / float(n), w.data());
  return w;
}

// Sum of each group's G weights, in order, as the k-quants' importance paths sum them.
void group_sums(const float* w, int groups, int G, float* sw) {
  for (int j = 0; j < groups; ++j) {
    float s = 0;
    for (int l = 0; l < G; ++l) s += w[G * j + l];
    sw[j] = s;
  }
}

}  // namespace

void search_sym_row_weighted(const float* x, int64_t n, const float* imp, int nmax, int8_t* L, float* scale) {
  const std::vector<float> w = row_importance_weights(x, n, imp);
  gguf::fit_sym_levels_groups(int(n / kQK), kQK, nmax, x, w.data(), L, scale);
}

void search_affine_row_weighted(const float* x, int64_t n, const float* imp, int nmax, uint8_t* L, float* scale,
                                float* min) {
  const std::vector<float> w = row_importance_weights(x, n, imp);
  gguf::fit_affine_levels_groups(int(n / kQK), kQK, nmax, x, w.data(), L, scale, min, -0.9f, 0.05f, 36, false, true);
}

void search_q2k(const float* x, const float* imp, uint8_t* L, float* scale, float* min, float* sw) {
  float w[kQKK];
  if (!imp) {
    // Weights |x| and absolute (not squared) error, as the reference: with only 4 levels, squared
    // error would let single outliers set the scale.
    for (int i = 0; i < kQKK; ++i) w[i] = std::fabs(x[i]);
    gguf::fit_affine_levels_groups(16, 16, 3, x, w, L, scale, min, -0.5f, 0.1f, 15, true, false);
    return;
  }
  importance_weights(x, imp, kQKK, sum_squares(x, kQKK) / kQKK, w);
  group_sums(w, 16, 16, sw);
  gguf::fit_affine_levels_groups(16, 16, 3, x, w, L, scale, min, -0.9f, 0.05f, 36, false, true);
}

void search_q3k(const float* x, const float* imp, int8_t* L, float* scale, float* sw) {
  if (!imp) {
    for (int j = 0; j < 16; ++j) scale[j] = gguf::fit_sym_levels_refined(16, 4, x + 16 * j, L + 16 * j);
    return;
  }
  float w[kQKK];
  importance_weights(x, imp, kQKK, 2 * sum_squares(x, kQKK) / kQKK, w);
  group_sums(w, 16, 16, sw);
  gguf::fit_sym_levels_groups(16, 16, 4, x, w, L, scale);
}

void search_k4(const float* x, const float* imp, int nmax, uint8_t* L, float* scale, float* min, float* sw) {
  float w[kQKK];
  if (!imp) {
    // Weights |x| + the sub-block's rms: large weights matter more, small ones are not ignored.
    for (int j = 0; j < 8; ++j) {
      const float* xs = x + 32 * j;
      const float av_x = std::sqrt(sum_squares(xs, 32) / 32);
      for (int l = 0; l < 32; ++l) w[32 * j + l] = av_x + std::fabs(xs[l]);
    }
    if (nmax == 15)
      gguf::fit_affine_levels_groups(8, 32, 15, x, w, L, scale, min, -1.f, 0.1f, 20, false, false);
    else
      gguf::fit_affine_levels_groups(8, 32, 31, x, w, L, scale, min, -0.5f, 0.1f, 15, false, false);
    return;
  }
  importance_weights(x, imp, kQKK, 2 * sum_squares(x, kQKK) / kQKK, w);
  group_sums(w, 8, 32, sw);
  gguf::fit_affine_levels_groups(8, 32, nmax, x, w, L, scale, min, -0.9f, 0.05f, 36, false, true);
}

void search_q6k(const float* x, const float* imp, int8_t* L, float* scale) {
  gguf::fit_sym_levels_groups(16, 16, 32, x, imp, L, scale);
}

}  // namespace ar
