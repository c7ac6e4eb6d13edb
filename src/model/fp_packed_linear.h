// The auto_round format's floating-point linears (issue 19), as AutoRound 0.16.1 writes them
// (export_to_autoround: qlinear_fp.py for MX / NV, export_to_fp8.py for FP8), and reading them back.
// Per linear L (HF name without ".weight"), codes and scales exactly as a QuantizedWeight holds them:
//   MXFP4     L.weight_packed U8 [out, in/2]: two E2M1 codes per byte, element 2k in the low nibble
//             (code = sign bit 3 | magnitude index 0..7 into {0, .5, 1, 1.5, 2, 3, 4, 6});
//             L.weight_scale U8 [out, in/32]: E8M0 scale codes (2^(code - 127)).
//   MXFP8     L.weight F8_E4M3 [out, in]; L.weight_scale U8 [out, in/32] (E8M0).
//   NVFP4     L.weight_packed U8 [out, in/2] as MXFP4; L.weight_scale F8_E4M3 [out, in/16];
//             L.weight_global_scale F32 [1] (448·6 / amax(W));  w = e2m1 · (scale / global).
//   FP8       L.weight F8_E4M3 [out, in]; L.weight_scale [out] (one scale per output channel).
//   FP8_BLOCK L.weight F8_E4M3 [out, in]; L.weight_scale_inv [ceil(out/128), ceil(in/128)] (the
//             per-tile scale itself, despite the name: DeepSeek-V3 / vLLM's convention).
// FP8 scales are written F32 (exact); AutoRound writes them in the model's dtype, which the reader
// also accepts (F32 / BF16 / F16). L.bias stays next to them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "io/safetensors_writer.h"
#include "quant/quantized.h"

namespace ar {

class SafetensorsReader;

// Why auto_round cannot store a layer (in, out) in FP scheme s (empty = it can): AutoRound's MX / NV
// QuantLinear needs in_features to be a multiple of the block (32 / 16); FP8 takes any shape.
std::string autoround_fp_shape_problem(const QuantScheme& s, int64_t in, int64_t out);

// The tensors of one FP linear, in file order (see above). s.is_fp().
std::vector<TensorSpec> autoround_fp_tensor_specs(const std::string& linear, const QuantScheme& s, int64_t in,
                                                  int64_t out);
// Their bytes, in the same order. autoround_fp_shape_problem(q.scheme, q.in, q.out) must be empty.
std::vector<Buffer> pack_autoround_fp(const QuantizedWeight& q);

// True when the checkpoint holds `name` in one of the layouts above (L.weight_scale,
// L.weight_packed or L.weight_scale_inv present).
bool has_fp_packed_linear(const SafetensorsReader& st, const std::string& name);

// Reads linear `name` (in, out) back as the QuantizedWeight it was packed from. The data type comes
// from the tensors present (weight_scale_inv: FP8_BLOCK; weight_global_scale: NVFP4; weight_packed:
// MXFP4; F8 weight with a U8 weight_scale: MXFP8; with a float weight_scale: FP8) and must agree
// with `declared` (the quantization_config's data_type and bits for the layer, e.g. "mx_fp" / 4;
// empty: not checked). Missing tensors, wrong dtypes or shapes, a NaN code or scale -> ar::Error
// naming the file and the tensor.
QuantizedWeight read_fp_packed_linear(const SafetensorsReader& st, const std::string& name, int64_t in, int64_t out,
                                      const std::string& declared_data_type = {}, int declared_bits = 0);

// The same, dequantized into w (out, in) f32, with the layer's declared data type taken from the
// config.json beside the checkpoint (quant_method "auto-round": data_type / bits, extra_config).
void load_fp_packed_linear_weight(float* w, const SafetensorsReader& st, const std::string& name, int64_t in,
                                  int64_t out);

}  // namespace ar
