// k-quant dequantizers. The float arithmetic is grouped exactly as ggml's dequantize_row_*_K
// ((d * sc) * q - dmin * m), so the values equal llama.cpp's bit for bit; readers that compare
// against llama.cpp's own dequantization rely on that.
#include "quant/gguf_strict_fp.h"  // first: no FMA contraction (see there)

#include "core/dtype.h"
#include "core/error.h"
#include "quant/gguf_blocks.h"

namespace ar {

namespace {
void check_superblocks(int64_t n, const char* what) {
  AR_CHECK(n % kQKK == 0, what, ": row of ", n, " weights is not a multiple of ", kQKK);
}
}  // namespace

void dequantize_row_q2_k(const BlockQ2K* x, float* y, int64_t n) {
  check_superblocks(n, "dequantize_row_q2_k");
  for (int64_t b = 0; b < n / kQKK; ++b) {
    const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* q = x[b].qs + 32 * h;
      for (int s = 0; s < 4; ++s)      // bit pair s of each byte
        for (int half = 0; half < 2; ++half) {  // bytes 0..15, then 16..31
          const uint8_t sc = x[b].scales[8 * h + 2 * s + half];
          const float dl = d * float(sc & 0xF), ml = dmin * float(sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * float((q[16 * half + l] >> (2 * s)) & 3) - ml;
        }
    }
  }
}

void dequantize_row_q3_k(const BlockQ3K* x, float* y, int64_t n) {
  check_superblocks(n, "dequantize_row_q3_k");
  for (int64_t b = 0; b < n / kQKK; ++b) {
    const float d_all = f16_to_f32(x[b].d);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* q = x[b].qs + 32 * h;
      for (int s = 0; s < 4; ++s)
        for (int half = 0; half < 2; ++half) {
          const int j = 8 * h + 2 * s + half;  // sub-block index
          const float dl = d_all * float(get_scale_q3k(j, x[b].scales) - 32);
          const uint8_t hbit = uint8_t(1 << (4 * h + s));
          for (int l = 0; l < 16; ++l) {
            const int i = 16 * half + l;
            const int lo = (q[i] >> (2 * s)) & 3;
            *y++ = dl * float(lo - ((x[b].hmask[i] & hbit) ? 0 : 4));
          }
        }
    }
  }
}

namespace {
// One Q4_K / Q5_K super-block (256 floats to y): the same scales and low nibbles; Q5_K adds bit 4
// of each code from qh (kHigh), weight 64*c + l from bit 2c, 64*c + 32 + l from bit 2c+1.
template <bool kHigh>
void dequantize_block_k4(uint16_t d16, uint16_t dmin16, const uint8_t* scales, const uint8_t* qs,
                         const uint8_t* qh, float* y) {
  const float d = f16_to_f32(d16), dmin = f16_to_f32(dmin16);
  for (int c = 0; c < 4; ++c, qs += 32) {
    uint8_t sc, m;
    get_scale_min_k4(2 * c, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    get_scale_min_k4(2 * c + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    const uint8_t u1 = uint8_t(1 << (2 * c)), u2 = uint8_t(2 << (2 * c));
    for (int l = 0; l < 32; ++l) *y++ = d1 * float((qs[l] & 0xF) + (kHigh && (qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * float((qs[l] >> 4) + (kHigh && (qh[l] & u2) ? 16 : 0)) - m2;
  }
}
}  // namespace

void dequantize_row_q4_k(const BlockQ4K* x, float* y, int64_t n) {
  check_superblocks(n, "dequantize_row_q4_k");
  for (int64_t b = 0; b < n / kQKK; ++b, y += kQKK)
    dequantize_block_k4<false>(x[b].d, x[b].dmin, x[b].scales, x[b].qs, nullptr, y);
}

void dequantize_row_q5_k(const BlockQ5K* x, float* y, int64_t n) {
  check_superblocks(n, "dequantize_row_q5_k");
  for (int64_t b = 0; b < n / kQKK; ++b, y += kQKK)
    dequantize_block_k4<true>(x[b].d, x[b].dmin, x[b].scales, x[b].qs, x[b].qh, y);
}

void dequantize_row_q6_k(const BlockQ6K* x, float* y, int64_t n) {
  check_superblocks(n, "dequantize_row_q6_k");
  for (int64_t b = 0; b < n / kQKK; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int h = 0; h < 2; ++h, y += 128) {
      const uint8_t* ql = x[b].ql + 64 * h;
      const uint8_t* qh = x[b].qh + 32 * h;
      const int8_t* sc = x[b].scales + 8 * h;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * float(sc[is]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
    }
  }
}

}  // namespace ar
