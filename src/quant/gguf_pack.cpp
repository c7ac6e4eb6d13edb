// Code packers of the GGUF block types (layouts in gguf_blocks.h, as ggml-common.h defines them).
// Each code is masked to its field, so a packer never spills into a neighbour's bits.
#include "quant/gguf_pack.h"

#include <cstring>

namespace ar {

namespace {

// 32 codes as nibbles: byte j holds code j (low) and code j + 16 (high); Q4_0, Q4_1, Q5's low bits.
void pack_nibbles_32(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK / 2; ++j) qs[j] = uint8_t((L[j] & 0xF) | ((L[j + 16] & 0xF) << 4));
}

// Q5_0 / Q5_1: low nibbles as Q4, bit 4 of code j in bit j of qh (u32 little-endian).
void pack_q5(const uint8_t* L, uint8_t* qs, uint8_t* qh_bytes) {
  pack_nibbles_32(L, qs);
  uint32_t qh = 0;
  for (int j = 0; j < kQK; ++j) qh |= uint32_t((L[j] >> 4) & 1) << j;
  std::memcpy(qh_bytes, &qh, 4);
}

// 2-bit codes of 256 weights: per 128, byte l holds codes l, l+32, l+64, l+96 (bits 0-1 ... 6-7).
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int h = 0; h < 2; ++h, L += 128, qs += 32)
    for (int l = 0; l < 32; ++l)
      qs[l] = uint8_t((L[l] & 3) | ((L[l + 32] & 3) << 2) | ((L[l + 64] & 3) << 4) | ((L[l + 96] & 3) << 6));
}

// 4-bit codes of 256 weights: per 64, byte l holds code l (low nibble) and l + 32 (high).
void pack_4bit(const uint8_t* L, uint8_t* qs) {
  for (int c = 0; c < 4; ++c, L += 64, qs += 32)
    for (int l = 0; l < 32; ++l) qs[l] = uint8_t((L[l] & 0xF) | ((L[l + 32] & 0xF) << 4));
}

}  // namespace

void pack_codes(const uint8_t* L, BlockQ4_0& y) { pack_nibbles_32(L, y.qs); }
void pack_codes(const uint8_t* L, BlockQ4_1& y) { pack_nibbles_32(L, y.qs); }
void pack_codes(const uint8_t* L, BlockQ5_0& y) { pack_q5(L, y.qs, y.qh); }
void pack_codes(const uint8_t* L, BlockQ5_1& y) { pack_q5(L, y.qs, y.qh); }
void pack_codes(const int8_t* L, BlockQ8_0& y) { std::memcpy(y.qs, L, kQK); }

void pack_codes(const uint8_t* L, BlockQ2K& y) { pack_2bit(L, y.qs); }

void pack_codes(const uint8_t* L, BlockQ3K& y) {
  uint8_t low[kQKK];
  std::memset(y.hmask, 0, sizeof(y.hmask));
  for (int j = 0; j < kQKK; ++j) {
    low[j] = uint8_t(L[j] & 3);
    if (L[j] & 4) y.hmask[j % 32] |= uint8_t(1 << (j / 32));
  }
  pack_2bit(low, y.qs);
}

void pack_codes(const uint8_t* L, BlockQ4K& y) { pack_4bit(L, y.qs); }

void pack_codes(const uint8_t* L, BlockQ5K& y) {
  std::memset(y.qh, 0, sizeof(y.qh));
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      y.qh[l] |= uint8_t(((L[64 * c + l] >> 4) & 1) << (2 * c));
      y.qh[l] |= uint8_t(((L[64 * c + 32 + l] >> 4) & 1) << (2 * c + 1));
    }
  pack_4bit(L, y.qs);  // the low nibbles
}

void pack_codes(const uint8_t* L, BlockQ6K& y) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* Lh = L + 128 * h;
    uint8_t* ql = y.ql + 64 * h;
    uint8_t* qh = y.qh + 32 * h;
    for (int l = 0; l < 32; ++l) {
      ql[l] = uint8_t((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
      ql[l + 32] = uint8_t((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
      qh[l] = uint8_t(((Lh[l] >> 4) & 3) | (((Lh[l + 32] >> 4) & 3) << 2) | (((Lh[l + 64] >> 4) & 3) << 4) |
                      (((Lh[l + 96] >> 4) & 3) << 6));
    }
  }
}

}  // namespace ar
