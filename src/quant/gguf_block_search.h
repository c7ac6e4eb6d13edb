// The scale searches each GGUF format starts from: the search weights (reference or importance
// path) and the gguf_scale_search.h call with its constants, per row (simple formats) or super-
// block (k-quants). The RTN quantizers and gguf_tune_init both call these, so the tuning starts
// from exactly the RTN's scales (same calls, same float arithmetic).
// imp: per-weight importance (llama.cpp's imatrix path) or null (its reference path).
#pragma once
#include <cstdint>

namespace ar {

// Q4_0 / Q5_0 importance path, a row of n weights (n % 32 == 0): levels L (n, offset by nmax) and
// the per-block signed scale (n / 32).
void search_sym_row_weighted(const float* x, int64_t n, const float* imp, int nmax, int8_t* L, float* scale);
// Q4_1 / Q5_1 importance path: levels L (n, 0..nmax), per-block scale and min (n / 32; x ~ s*q - m).
void search_affine_row_weighted(const float* x, int64_t n, const float* imp, int nmax, uint8_t* L, float* scale,
                                float* min);

// k-quant super-blocks of 256 weights. L (256) gets the search's levels; scale / min per sub-block;
// sw (per sub-block, the summed search weights the importance path quantizes the scales with) is
// written only when imp is given.
// Q2_K: 16 sub-blocks of 16, levels 0..3.
void search_q2k(const float* x, const float* imp, uint8_t* L, float* scale, float* min, float* sw);
// Q3_K: 16 sub-blocks of 16, signed scales, levels 0..7 (l + 4).
void search_q3k(const float* x, const float* imp, int8_t* L, float* scale, float* sw);
// Q4_K (nmax 15) / Q5_K (nmax 31): 8 sub-blocks of 32.
void search_k4(const float* x, const float* imp, int nmax, uint8_t* L, float* scale, float* min, float* sw);
// Q6_K: 16 sub-blocks of 16, signed scales, levels 0..63 (l + 32); the importance path only
// changes the search's weights (x^2 -> imp), so there is no sw.
void search_q6k(const float* x, const float* imp, int8_t* L, float* scale);

}  // namespace ar
