// GPTQ packing of a QuantizedWeight into the auto_round / auto_gptq tensors (SPEC §4), and back.
// Bit layout and the zero - 1 convention follow AutoGPTQ's v1 QuantLinear.pack (see
// model/packed_linear.h for the exact layout, which the reader shares).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "io/safetensors_writer.h"
#include "quant/quantized.h"

namespace ar {

// The four tensors of one packed linear L (row-major, as stored):
//   qweight int32 [in*bits/32, out], qzeros int32 [n_groups, out*bits/32], scales fp16 [n_groups, out],
//   g_idx int32 [in] = i / group.
struct PackedLinear {
  Buffer qweight, qzeros, scales, g_idx;
  int64_t in = 0, out = 0, n_groups = 0;
  QuantScheme scheme;
};

// Why a layer of this shape cannot be stored GPTQ-packed (empty = it can). We follow the Python
// AutoRound rule for its GPTQ-style formats: in_features and out_features must be multiples of 32
// (which also makes every bit width pack whole int32 words, 3-bit included); and in_features must be
// a multiple of group_size, because GPTQ kernels (exllama, marlin, vLLM) size scales as
// in / group_size, so a padded last group would not load. Such layers stay in 16-bit.
std::string packed_shape_problem(const QuantScheme& s, int64_t in, int64_t out);

// Packs q. Zeros are stored as (zero - 1) & (2^bits - 1), the GPTQ v1 convention: a zero of 0 (only
// possible for asymmetric schemes) wraps to the all-ones slot. AutoGPTQ/auto-round compute the same
// subtraction in unmasked uint32 arithmetic, which also sets every higher slot of that word; we mask
// so only the one slot is affected. GPTQ v1 kernels read such a zero back as 2^bits (one step off);
// our reader wraps it back to 0. count_wrapped_zeros() tells the caller when this happens.
// With `zeros_minus_one` false the zeros are stored as they are (GPTQ v2 / gptqmodel, and AutoRound's
// plain "auto_round" packing, which it writes for asymmetric schemes).
// AR_CHECK that packed_shape_problem(q.scheme, q.in, q.out) is empty.
PackedLinear pack_gptq(const QuantizedWeight& q, bool zeros_minus_one = true);

// The inverse of pack_gptq. Arrays as stored (see PackedLinear); g_idx may be null (then i / group);
// when present it must equal i / group (act-order checkpoints do not fit a QuantizedWeight).
// `zeros_minus_one` = GPTQ v1 (true) or v2 (false). Throws ar::Error for out-of-range g_idx.
QuantizedWeight unpack_gptq(const uint32_t* qweight, const uint32_t* qzeros, const uint16_t* scales,
                            const int32_t* g_idx, const QuantScheme& s, int64_t in, int64_t out,
                            bool zeros_minus_one = true);

// Groups whose zero point is 0: stored wrapped by GPTQ v1 (see pack_gptq).
int64_t count_wrapped_zeros(const QuantizedWeight& q);

// Output tensor specs of a packed linear `linear` (HF name without ".weight"): qweight, qzeros,
// scales, g_idx, in that order; without g_idx when `with_g_idx` is false (the auto_round format: the
// Python AutoRound's auto_round QuantLinears have no g_idx, and transformers reports one as an
// unexpected key).
std::vector<TensorSpec> packed_tensor_specs(const std::string& linear, const QuantScheme& s, int64_t in,
                                            int64_t out, bool with_g_idx = true);

}  // namespace ar
