// GGML tensor element types as GGUF files number them, and their block geometry: a row of a
// quantized tensor is a sequence of blocks of `block_elems` weights stored in `block_bytes`
// bytes each. Shared by the GGUF reader/writer (io) and the block quantizers (quant).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ar {

// Values are the on-disk ggml_type ids (ggml.h); only the ones this project reads or writes.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  BF16 = 30,
};

struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;  // "Q4_K", as llama.cpp prints it
  int64_t block_elems;    // weights per block (1 for F32/F16/BF16)
  size_t block_bytes;     // bytes per block
};

// Traits of a known type; nullopt for an id we do not support (the caller names the file).
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t id);
const GgmlTypeInfo& ggml_info(GgmlType t);  // for a valid enum value
// "Q4_K", "q4_k" -> Q4_K; nullopt if unknown.
std::optional<GgmlType> parse_ggml_type(std::string_view name);
// False for the plain float types (F32, F16, BF16), true for the block formats.
inline bool ggml_is_quantized(GgmlType t) { return t != GgmlType::F32 && t != GgmlType::F16 && t != GgmlType::BF16; }
// Bytes of a row of n weights; n must be a multiple of block_elems (checked by the caller).
inline size_t ggml_row_bytes(GgmlType t, int64_t n) {
  const GgmlTypeInfo& i = ggml_info(t);
  return size_t(n / i.block_elems) * i.block_bytes;
}

}  // namespace ar
