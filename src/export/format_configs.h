// quantization_config objects of the auto_awq format and of the auto_round format's floating-point
// variants, with the fields AutoRound 0.16.1 writes (export_to_awq/export.py,
// export_to_autoround/export_to_nvfp_mx.py and export_to_fp8.py), checked against its files.
#pragma once
#include <vector>

#include <nlohmann/json.hpp>

#include "export/quant_config_json.h"

namespace ar {

// auto_awq: {"quant_method": "awq", "version": "gemm", "bits", "group_size", "sym", "zero_point":
// !sym, "data_type": "int", "to_quant_block_names", "modules_to_not_convert": ["lm_head", kept
// layers...], "quantizer"} + `tuning`. AWQ has no per-layer schemes: every quantized layer must use
// the dominant one (ar::Error naming the first that does not).
nlohmann::json make_awq_quantization_config(const std::vector<StoredLinear>& linears, const nlohmann::json& tuning);

// auto_round with floating-point layers: quant_method "auto-round", packing_format
// "auto_round:llm_compressor" (MXFP4 / MXFP8 / NVFP4), "auto_round:fp8" (FP8_BLOCK, with
// weight_block_size [128, 128]) or none (FP8), FP8's fmt "e4m3" and activation_scheme "dynamic",
// data_type "mx_fp" / "nv_fp" / "fp", bits, group_size (FP8_BLOCK: [128, 128]; FP8: -1), sym, the
// activation settings of AutoRound's preset that the runtime applies by itself (MXFP4 / MXFP8:
// dynamic mx_fp activations in blocks of 32; FP8_BLOCK: dynamic fp8 in groups of 128; NVFP4 and
// FP8 stay weight-only: NVFP4's activations need static scales from calibration that this tool does
// not compute), extra_config {"bits": 16, "data_type": "float"} for kept layers. Every quantized
// layer must use the dominant scheme, and it must be floating-point (ar::Error naming the first
// that does not).
nlohmann::json make_autoround_fp_quantization_config(const std::vector<StoredLinear>& linears,
                                                     const nlohmann::json& tuning);

}  // namespace ar
