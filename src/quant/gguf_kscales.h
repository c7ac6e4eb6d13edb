// k-quant scale fields: the sub-block scales (and mins) a search chose, quantized the way each
// format stores them (4-bit Q2_K, 6-bit Q3_K/Q4_K/Q5_K, int8 Q6_K, against fp16 super-block
// scales) and written into the block. Shared by the RTN (gguf_kquants.cpp) and the tuning plans
// (gguf_tune.cpp), which both re-round the codes afterwards with the scales as stored.
// sw: per sub-block sums of the search weights -> llama.cpp's importance path (fit_positive_levels
// / fit_sym_levels over the scales); null -> its reference path (scales by their maximum).
#pragma once
#include <cstdint>

#include "quant/gguf_blocks.h"

namespace ar {

// s, m: 16 scales and mins (>= 0). Writes scales, d, dmin.
void store_q2k_scales(const float* s, const float* m, const float* sw, BlockQ2K& y);
// s: 16 signed scales. Writes scales, d.
void store_q3k_scales(const float* s, const float* sw, BlockQ3K& y);
// Q4_K / Q5_K: s, m: 8 scales and mins (>= 0). Writes the 12 packed bytes, d and dmin.
void store_k4_scales(const float* s, const float* m, const float* sw, uint8_t* packed, uint16_t* d16,
                     uint16_t* dmin16);
// s: 16 signed scales (no importance path: Q6_K's scales are always by max). Writes scales and d;
// when every |s| < 1e-15 zeroes the whole block instead (codes too) and returns false.
bool store_q6k_scales(const float* s, BlockQ6K& y);

}  // namespace ar
