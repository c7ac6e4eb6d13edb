// Round-to-nearest quantization of one linear layer (out, in) in a floating-point format (issue 19):
// quant/fp_formats' block quantizers applied per row and block, with the layout QuantizedWeight
// stores. Blocks run along a row (input dimension); FP8Block's also span 128 rows.
// A row whose length is not a multiple of the block: its last block holds the real weights only,
// which is what AutoRound's zero padding gives (a zero changes no amax), so the block functions
// see n < block values. The same holds for FP8Block's last block rows.
#pragma once
#include <cstdint>
#include <string>

#include "quant/quantized.h"

namespace ar {

// w (out, in) f32, s.is_fp(). `name` names the tensor in the error for a NaN / infinite weight.
// Optional SignRound tunables (null: none): v (out, in), the offset added to each scaled weight
// before rounding; max_scale, the clipping factor on each scale's amax: (out, n_groups) for MXFP4 /
// MXFP8 / NVFP4, (out) for FP8, (ceil(out / 128), n_groups) for FP8Block. NVFP4's global scale
// is 448·6 / amax (not clipped), amax = `global_amax` when it is >= 0 (a value shared by the
// projections a runtime fuses, quant/nvfp4_global.h), else the largest |w| of this tensor. Rows
// (FP8Block: block rows) run in parallel; the result does not depend on the thread count.
QuantizedWeight quantize_fp(const float* w, int64_t out, int64_t in, const QuantScheme& s, const std::string& name,
                            const float* v = nullptr, const float* max_scale = nullptr, float global_amax = -1.f);

}  // namespace ar
