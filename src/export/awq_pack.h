// AutoAWQ "GEMM" packing of a 4-bit integer QuantizedWeight (the auto_awq format, issue 19), as
// AutoAWQ's WQLinear_GEMM and AutoRound 0.16.1's export_to_awq store it:
//   L.qweight int32 [in, out/8]: word (i, c) holds the codes of outputs 8c..8c+7 at input i, output
//             8c+j in nibble kAwqSlot[j] = {0, 4, 1, 5, 2, 6, 3, 7}[j] (bits 4·slot..4·slot+3), i.e.
//             the nibbles from low to high hold outputs 8c+0, +2, +4, +6, +1, +3, +5, +7;
//   L.qzeros  int32 [n_groups, out/8]: the zero points, packed the same way (stored as they are; a
//             symmetric scheme stores 2^(bits-1) = 8 everywhere, as AutoRound does);
//   L.scales  fp16  [n_groups, out];  L.bias fp16 [out] when present.
//   W[o, i] = scales[g, o] * (code[i, o] - zero[g, o]),  g = i / group_size.
// Unlike GPTQ, the packing runs along the outputs, and there is no g_idx.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/buffer.h"
#include "io/safetensors_writer.h"
#include "quant/quantized.h"

namespace ar {

// The nibble each of 8 consecutive outputs goes to (AutoAWQ's pack order).
inline constexpr int kAwqSlot[8] = {0, 4, 1, 5, 2, 6, 3, 7};

// Why scheme `s` cannot be written AWQ-packed at all (empty = it can): AutoAWQ's GEMM layout and
// kernels are 4-bit integer only (AutoRound accepts W4A16 for auto_awq; its 5-7 bit bit-stream
// variant is an auto_round:auto_awq extension no AWQ kernel reads), so other widths and the
// floating-point formats are refused.
std::string awq_scheme_problem(const QuantScheme& s);

// The packed tensors of one linear (row-major, as stored).
struct AwqPacked {
  Buffer qweight, qzeros, scales;
};

// Packs q: awq_scheme_problem(q.scheme) and packed_shape_problem(q.scheme, q.in, q.out) must be empty
// (AR_CHECK). Codes and zeros are stored as they are.
AwqPacked pack_awq(const QuantizedWeight& q);

// The inverse, from the stored arrays (qweight [in, out/8], qzeros [n_groups, out/8], scales fp16
// [n_groups, out]). s: a 4-bit integer scheme.
QuantizedWeight unpack_awq(const uint32_t* qweight, const uint32_t* qzeros, const uint16_t* scales,
                           const QuantScheme& s, int64_t in, int64_t out);

// Output tensor specs of an AWQ-packed linear `linear` (HF name without ".weight"): qweight, qzeros,
// scales, in that order.
std::vector<TensorSpec> awq_tensor_specs(const std::string& linear, const QuantScheme& s, int64_t in, int64_t out);

}  // namespace ar
