// Row and tensor entry points of the GGUF block formats: dispatch on GgmlType, the unquantized
// types (F32 copy, F16 / BF16 round to nearest even, as ggml converts), and the OpenMP row loop.
#include "quant/gguf_strict_fp.h"  // first: no FMA contraction (see there)

#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/gguf_blocks.h"

namespace ar {

namespace {

void check_row(GgmlType t, int64_t n) {
  const GgmlTypeInfo& info = ggml_info(t);
  AR_CHECK(n > 0 && n % info.block_elems == 0, "GGUF ", info.name, ": row of ", n,
           " weights is not a multiple of the block size ", info.block_elems);
}

}  // namespace

void gguf_quantize_row(GgmlType t, const float* x, int64_t n, void* dst, const float* imp) {
  check_row(t, n);
  switch (t) {
    case GgmlType::F32: std::memcpy(dst, x, size_t(n) * 4); return;
    case GgmlType::F16: f32_to_f16(static_cast<uint16_t*>(dst), x, size_t(n)); return;
    case GgmlType::BF16: f32_to_bf16(static_cast<uint16_t*>(dst), x, size_t(n)); return;
    case GgmlType::Q4_0: quantize_row_q4_0(x, static_cast<BlockQ4_0*>(dst), n, imp); return;
    case GgmlType::Q4_1: quantize_row_q4_1(x, static_cast<BlockQ4_1*>(dst), n, imp); return;
    case GgmlType::Q5_0: quantize_row_q5_0(x, static_cast<BlockQ5_0*>(dst), n, imp); return;
    case GgmlType::Q5_1: quantize_row_q5_1(x, static_cast<BlockQ5_1*>(dst), n, imp); return;
    case GgmlType::Q8_0: quantize_row_q8_0(x, static_cast<BlockQ8_0*>(dst), n); return;
    case GgmlType::Q2_K: quantize_row_q2_k(x, static_cast<BlockQ2K*>(dst), n, imp); return;
    case GgmlType::Q3_K: quantize_row_q3_k(x, static_cast<BlockQ3K*>(dst), n, imp); return;
    case GgmlType::Q4_K: quantize_row_q4_k(x, static_cast<BlockQ4K*>(dst), n, imp); return;
    case GgmlType::Q5_K: quantize_row_q5_k(x, static_cast<BlockQ5K*>(dst), n, imp); return;
    case GgmlType::Q6_K: quantize_row_q6_k(x, static_cast<BlockQ6K*>(dst), n, imp); return;
  }
  AR_CHECK(false, "gguf_quantize_row: unhandled type ", uint32_t(t));
}

void gguf_dequantize_row(GgmlType t, const void* src, int64_t n, float* y) {
  check_row(t, n);
  switch (t) {
    case GgmlType::F32: std::memcpy(y, src, size_t(n) * 4); return;
    case GgmlType::F16: f16_to_f32(y, static_cast<const uint16_t*>(src), size_t(n)); return;
    case GgmlType::BF16: bf16_to_f32(y, static_cast<const uint16_t*>(src), size_t(n)); return;
    case GgmlType::Q4_0: dequantize_row_q4_0(static_cast<const BlockQ4_0*>(src), y, n); return;
    case GgmlType::Q4_1: dequantize_row_q4_1(static_cast<const BlockQ4_1*>(src), y, n); return;
    case GgmlType::Q5_0: dequantize_row_q5_0(static_cast<const BlockQ5_0*>(src), y, n); return;
    case GgmlType::Q5_1: dequantize_row_q5_1(static_cast<const BlockQ5_1*>(src), y, n); return;
    case GgmlType::Q8_0: dequantize_row_q8_0(static_cast<const BlockQ8_0*>(src), y, n); return;
    case GgmlType::Q2_K: dequantize_row_q2_k(static_cast<const BlockQ2K*>(src), y, n); return;
    case GgmlType::Q3_K: dequantize_row_q3_k(static_cast<const BlockQ3K*>(src), y, n); return;
    case GgmlType::Q4_K: dequantize_row_q4_k(static_cast<const BlockQ4K*>(src), y, n); return;
    case GgmlType::Q5_K: dequantize_row_q5_k(static_cast<const BlockQ5K*>(src), y, n); return;
    case GgmlType::Q6_K: dequantize_row_q6_k(static_cast<const BlockQ6K*>(src), y, n); return;
  }
  AR_CHECK(false, "gguf_dequantize_row: unhandled type ", uint32_t(t));
}

void gguf_quantize_tensor(GgmlType t, const float* x, int64_t rows, int64_t n, void* dst, const float* imp) {
  check_row(t, n);
  const size_t row_bytes = ggml_row_bytes(t, n);
  auto* out = static_cast<uint8_t*>(dst);
  // Rows are independent, so the bytes do not depend on the schedule; k-quant rows cost about the
  // same, so a static split balances.
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) gguf_quantize_row(t, x + r * n, n, out + size_t(r) * row_bytes, imp);
}

void gguf_dequantize_tensor(GgmlType t, const void* src, int64_t rows, int64_t n, float* y) {
  check_row(t, n);
  const size_t row_bytes = ggml_row_bytes(t, n);
  const auto* in = static_cast<const uint8_t*>(src);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) gguf_dequantize_row(t, in + size_t(r) * row_bytes, n, y + r * n);
}

}  // namespace ar
