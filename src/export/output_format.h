// The output formats a quantized model can be written in (SPEC §4, issue 3 item 4): auto_round
// (GPTQ-packed, quant_method "auto-round"), auto_gptq (the same tensors, quant_method "gptq") and
// fake (dequantized weights in the model's own dtype, as the Python tool's "fake" format).
#pragma once
#include <string>

namespace ar {

enum class OutputFormat { AutoRound, AutoGptq, Fake };

// "auto_round", "auto_gptq", "fake" (also "auto-round", "autoround", "gptq"); anything else ->
// ar::Error listing the valid names.
OutputFormat parse_output_format(const std::string& name);
std::string output_format_name(OutputFormat f);
// True for the GPTQ-packed formats (auto_round, auto_gptq).
inline bool is_packed_format(OutputFormat f) { return f != OutputFormat::Fake; }

}  // namespace ar
