// The output formats a quantized model can be written in (SPEC §4, issue 3 item 4): auto_round
// (GPTQ-packed, quant_method "auto-round"), auto_gptq (the same tensors, quant_method "gptq") and
// fake (dequantized weights in the model's own dtype, as the Python tool's "fake" format), auto_awq
// (AutoAWQ's GEMM packing, quant_method "awq"; export/awq_pack.h), llm_compressor
// (compressed-tensors layouts, quant_method "compressed-tensors"; issue 19); and
// GGUF files for llama.cpp, "gguf:<mix>" (issue 5; written by GgufModelWriter).
#pragma once
#include <optional>
#include <string>

#include "export/gguf_mix.h"
#include "quant/scheme.h"

namespace ar {

enum class OutputFormat { AutoRound, AutoGptq, Fake, AutoAwq, LlmCompressor };

// "auto_round", "auto_gptq", "fake", "auto_awq", "llm_compressor" (also "auto-round", "autoround",
// "gptq", "awq", "llmcompressor", "llm-compressor"); anything else -> ar::Error listing the valid
// names (GGUF formats are parsed by parse_gguf_format).
OutputFormat parse_output_format(const std::string& name);
std::string output_format_name(OutputFormat f);
// True for the formats QuantizedModelWriter packs per linear itself (auto_round, auto_gptq,
// auto_awq); llm_compressor has its own layouts (export/compressed_tensors_pack.h).
inline bool is_packed_format(OutputFormat f) {
  return f == OutputFormat::AutoRound || f == OutputFormat::AutoGptq || f == OutputFormat::AutoAwq;
}

// "gguf:q4_k_m" (case-insensitive mix, see gguf_mixes()) -> the mix; nullopt when `name` does
// not start with "gguf"; ar::Error for "gguf" without a mix or an unknown mix, listing the valid ones.
std::optional<GgufMix> parse_gguf_format(const std::string& name);
// "gguf:q4_k_m", the spelling of a GGUF format in messages and folder names.
std::string gguf_format_name(GgufMix mix);

// Why format `f` cannot store a layer quantized with `s` at all (empty = it can): auto_gptq stores
// integer 2/3/4/8-bit schemes, auto_round those and the floating-point formats (MXFP4, MXFP8,
// NVFP4, FP8, FP8_BLOCK, as AutoRound writes them), auto_awq 4-bit integer schemes, fake anything.
// Shapes a format cannot store are a separate, per-layer matter (the layer stays 16-bit).
std::string format_scheme_problem(OutputFormat f, const QuantScheme& s);

}  // namespace ar
