// The output formats a quantized model can be written in (SPEC §4, issue 3 item 4): auto_round
// (GPTQ-packed, quant_method "auto-round"), auto_gptq (the same tensors, quant_method "gptq") and
// fake (dequantized weights in the model's own dtype, as the Python tool's "fake" format),
// llm_compressor (compressed-tensors layouts, quant_method "compressed-tensors"; issue 19); and
// GGUF files for llama.cpp, "gguf:<mix>" (issue 5; written by GgufModelWriter).
#pragma once
#include <optional>
#include <string>

#include "export/gguf_mix.h"

namespace ar {

enum class OutputFormat { AutoRound, AutoGptq, Fake, LlmCompressor };

// "auto_round", "auto_gptq", "fake", "llm_compressor" (also "auto-round", "autoround", "gptq",
// "llmcompressor", "llm-compressor"); anything else ->
// ar::Error listing the valid names (GGUF formats are parsed by parse_gguf_format).
OutputFormat parse_output_format(const std::string& name);
std::string output_format_name(OutputFormat f);
// True for the GPTQ-packed formats (auto_round, auto_gptq).
inline bool is_packed_format(OutputFormat f) { return f == OutputFormat::AutoRound || f == OutputFormat::AutoGptq; }

// "gguf:q4_k_m" (case-insensitive mix, see gguf_mixes()) -> the mix; nullopt when `name` does
// not start with "gguf"; ar::Error for "gguf" without a mix or an unknown mix, listing the valid ones.
std::optional<GgufMix> parse_gguf_format(const std::string& name);
// "gguf:q4_k_m", the spelling of a GGUF format in messages and folder names.
std::string gguf_format_name(GgufMix mix);

}  // namespace ar
