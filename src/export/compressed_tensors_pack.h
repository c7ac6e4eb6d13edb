// The llm_compressor output format (issue 19): a QuantizedWeight in the compressed-tensors layout of
// its scheme, as compressed-tensors 0.20 and the Python AutoRound 0.16.1 (--format llm_compressor)
// store it. Tensor layouts and the bit order: model/compressed_tensors_linear.h, whose reader shares
// the bit streams. Which layout each scheme takes:
//   integer (2..8 bits, sym / asym, group or per channel)  pack-quantized
//   NVFP4                                                   nvfp4-pack-quantized
//   MXFP4                                                   mxfp4-pack-quantized
//   MXFP8                                                   mxfp8-quantized
//   FP8 (per channel, weights only)                         naive-quantized (compressed-tensors' name
//                                                           for float-quantized tensors without
//                                                           activation quantization; the same tensors)
//   FP8_BLOCK (128 x 128)                                   float-quantized
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "io/safetensors_writer.h"
#include "quant/quantized.h"

namespace ar {

// The compressed-tensors format name that stores scheme s (s quantized, not a GGUF target).
const char* ct_format_name(const QuantScheme& s);

// Why the llm_compressor format cannot hold scheme s at all (empty = it can): checked before any work.
std::string ct_scheme_problem(const QuantScheme& s);
// Why a layer (out, in) cannot be stored in scheme s (empty = it can): compressed-tensors needs the
// groups to divide the row (group strategies refuse a padded last group), so such a layer stays 16-bit.
std::string ct_shape_problem(const QuantScheme& s, int64_t in, int64_t out);

// Output tensor specs of linear `linear` (HF name without ".weight"), in ct_pack's order.
std::vector<TensorSpec> ct_tensor_specs(const std::string& linear, const QuantScheme& s, int64_t in, int64_t out);

// The tensors' bytes, one Buffer per spec of ct_tensor_specs(…, q.scheme, q.in, q.out).
// AR_CHECK that the shape is storable and that a symmetric integer q has zeros 2^(bits-1).
std::vector<Buffer> ct_pack(const QuantizedWeight& q);

}  // namespace ar
