// config.json's quantization_config for the llm_compressor format (quant_method
// "compressed-tensors"), with the fields the Python AutoRound 0.16.1 writes for
// --format llm_compressor (export/export_to_llmcompressor/) and compressed-tensors reads:
//   config_groups {group_i: {targets, weights, input_activations, output_activations, format}},
//   format, ignore (kept linears by name, then "lm_head"), quant_method, quantization_status
//   "compressed", kv_cache_scheme / global_compression_ratio / moe_sparsity_config null.
// One scheme: one group targeting "Linear". Several: AutoRound's two layouts -- when the dominant
// scheme is MXFP / NVFP, groups for the other schemes first (targets: their layer names), the
// dominant one last (targets "Linear"), format "mixed-precision"; otherwise groups in the order the
// schemes first appear, each targeting its sorted layer names (top format: the common one, or
// "mixed-precision" when they differ, where AutoRound writes the first layer's).
// Activations: as AutoRound's presets, MXFP4 / MXFP8 / FP8_BLOCK declare dynamic activation
// quantization (the runtime computes those scales; nothing is stored). NVFP4 is written weight-only
// (compressed-tensors' NVFP4A16): AutoRound's NVFP4 declares activations with a static global scale
// per layer (input_global_scale, measured on calibration data), which we do not compute.
#pragma once
#include <vector>

#include <nlohmann/json.hpp>

#include "export/quant_config_json.h"

namespace ar {

// The "weights" QuantizationArgs of a quantized scheme, as AutoRound serialises them.
nlohmann::json ct_weight_args(const QuantScheme& s);
// Its "input_activations" (null for weight-only schemes).
nlohmann::json ct_input_args(const QuantScheme& s);

// The quantization_config object. `linears`: every block linear (bits 16 = kept unquantized).
// `tuning`: settings that differ from their defaults, added at top level (compressed-tensors ignores
// unknown top-level keys). ar::Error when no layer is quantized.
nlohmann::json make_ct_quantization_config(const std::vector<StoredLinear>& linears, const nlohmann::json& tuning);

}  // namespace ar
