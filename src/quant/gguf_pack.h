// GGUF block packers: integer codes -> the code bytes of one block (qs, and qh / hmask where the
// format has them), in the layouts gguf_blocks.h describes. One packer per block type, used by
// the RTN quantizers (gguf_simple.cpp, gguf_kquants.cpp) and the tuning forward (gguf_tune.cpp).
// The scale fields are not written here: both paths set them first, because the codes are rounded
// with the scales as stored (see gguf_kscales.h for the k-quants').
#pragma once
#include <cstdint>

#include "quant/gguf_blocks.h"

namespace ar {

// L: the block's codes, in weight order, each already in the format's range: 0..15 (Q4_0, Q4_1,
// Q4_K), 0..31 (Q5_0, Q5_1, Q5_K), 0..3 (Q2_K), 0..7 (Q3_K), 0..63 (Q6_K), -127..127 (Q8_0).
// Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 take 32 codes, the k-quants 256. Overwrites every code byte.
void pack_codes(const uint8_t* L, BlockQ4_0& y);
void pack_codes(const uint8_t* L, BlockQ4_1& y);
void pack_codes(const uint8_t* L, BlockQ5_0& y);
void pack_codes(const uint8_t* L, BlockQ5_1& y);
void pack_codes(const int8_t* L, BlockQ8_0& y);
void pack_codes(const uint8_t* L, BlockQ2K& y);
void pack_codes(const uint8_t* L, BlockQ3K& y);
void pack_codes(const uint8_t* L, BlockQ4K& y);
void pack_codes(const uint8_t* L, BlockQ5K& y);
void pack_codes(const uint8_t* L, BlockQ6K& y);

}  // namespace ar
