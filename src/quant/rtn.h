// Round-to-nearest quantization of one linear layer per SPEC §2 (AutoRound's quant_tensor_sym /
// quant_tensor_asym), with SignRound's tunable v / min_scale / max_scale applied when given.
#pragma once
#include <cstdint>
#include <string>

#include "quant/qdq.h"
#include "quant/quantized.h"

namespace ar {

// w (out, in) f32. Optional tunables: v (out, in); min_scale, max_scale (out, n_groups), already
// clamped to [0, 1] by the caller; null means v = 0, min_scale = max_scale = 1.
// Per (row, group): symmetric "full range" s = (hi >= lo ? -hi : lo) / 2^(b-1) with
// lo = -min(0, min w) * min_scale, hi = max(0, max w) * max_scale; asymmetric
// s = (max(0, max w) * max_scale - min(0, min w) * min_scale) / (2^b - 1), zp = round(-wmin*min_scale / s).
// s is rounded to fp16 and |s| floored at 1e-5 BEFORE the codes are computed (the formats store fp16);
// q = clamp(round(w / s + v) [+ zp], ...), round half to even. A last group shorter than the group
// size uses its real weights only, which is what zero padding gives (min(0, .) / max(0, .)).
// Rows run in parallel (OpenMP); the result does not depend on the thread count.
// A floating-point scheme (s.is_fp()) goes to quantize_fp (quant/fp_quantize.h): min_scale does not
// apply there (the formats are symmetric), max_scale has that function's shape, a NaN or
// infinite weight is an ar::Error naming `name`, and `global_amax` is NVFP4's (see there).
QuantizedWeight quantize_rtn(const float* w, int64_t out, int64_t in, const QuantScheme& s,
                             const float* v = nullptr, const float* min_scale = nullptr,
                             const float* max_scale = nullptr, const std::string& name = "weight",
                             float global_amax = -1.f);

// quantize_rtn of an integer scheme into q, keeping q's storage when it already holds a layer of
// this scheme and shape (a tuner quantizing at every new best loss allocates once); the weight as
// f32, or as bf16 bits (the same result as their f32 values).
void quantize_rtn_into(QuantizedWeight& q, const float* w, int64_t out, int64_t in, const QuantScheme& s,
                       const float* v = nullptr, const float* min_scale = nullptr, const float* max_scale = nullptr);
void quantize_rtn_into(QuantizedWeight& q, const uint16_t* w_bf16, int64_t out, int64_t in, const QuantScheme& s,
                       const float* v = nullptr, const float* min_scale = nullptr, const float* max_scale = nullptr);

// AR_CHECK that a scheme can be quantized here: bits 2..8 (16 = keep the layer, never passed in)
// and group_size -1 or > 0, or a floating-point format with its own fixed values. User input is
// validated earlier (LayerConfig, the CLI).
void check_quantizable(const QuantScheme& s);

// One group's RTN codes, fp16 scale and zero point into q (an integer scheme's, allocated):
// codes from `at` on, scale and zero point at `index` (RowGroup's fields). What quantize_rtn
// writes per group, for passes that compute the group's parameters anyway.
void write_group_rtn(QuantizedWeight& q, int64_t at, int64_t index, const float* w, const float* v, int64_t n,
                     const GroupQuant& p, int bits);
// The group's fp16 scale and zero point alone, for a pass that writes its codes itself.
void write_group_params(QuantizedWeight& q, int64_t index, const GroupQuant& p);

}  // namespace ar
