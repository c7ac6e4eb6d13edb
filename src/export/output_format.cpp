// Output format names, spelled as the Python tool's --format values.
#include "export/output_format.h"

#include <cctype>

#include "core/error.h"
#include "export/awq_pack.h"
#include "export/compressed_tensors_pack.h"

namespace ar {

namespace {
std::string gguf_mix_list() {
  std::string r;
  for (const GgufMixInfo& m : gguf_mixes()) r += (r.empty() ? "" : ", ") + std::string(m.name);
  return r;
}
}  // namespace

OutputFormat parse_output_format(const std::string& name) {
  if (name == "auto_round" || name == "auto-round" || name == "autoround" || name == "auto_round:auto_gptq")
    return OutputFormat::AutoRound;
  if (name == "auto_gptq" || name == "gptq") return OutputFormat::AutoGptq;
  if (name == "fake") return OutputFormat::Fake;
  if (name == "auto_awq" || name == "awq") return OutputFormat::AutoAwq;
  if (name == "llm_compressor" || name == "llmcompressor" || name == "llm-compressor") return OutputFormat::LlmCompressor;
  AR_THROW("unknown output format '", name, "'; valid formats: auto_round, auto_gptq, auto_awq, fake, llm_compressor, "
           "gguf:<mix> (",
           gguf_mix_list(), ")");
}

std::string output_format_name(OutputFormat f) {
  switch (f) {
    case OutputFormat::AutoRound: return "auto_round";
    case OutputFormat::AutoGptq: return "auto_gptq";
    case OutputFormat::Fake: return "fake";
    case OutputFormat::AutoAwq: return "auto_awq";
    case OutputFormat::LlmCompressor: return "llm_compressor";
  }
  return "?";
}

std::string format_scheme_problem(OutputFormat f, const QuantScheme& s) {
  if (!s.quantized() || f == OutputFormat::Fake) return {};
  switch (f) {
    case OutputFormat::AutoAwq: return awq_scheme_problem(s);
    case OutputFormat::LlmCompressor: return ct_scheme_problem(s);
    case OutputFormat::AutoGptq:
      if (s.is_fp())
        return cat("GPTQ stores integer weights; ", data_type_name(s.data_type),
                   " is written by --format auto_round or fake");
      break;
    case OutputFormat::AutoRound:
    case OutputFormat::Fake: break;
  }
  return {};
}

}  // namespace ar

namespace ar {

std::optional<GgufMix> parse_gguf_format(const std::string& name) {
  std::string low;
  for (char ch : name) low += char(std::tolower(static_cast<unsigned char>(ch)));
  if (!low.starts_with("gguf")) return std::nullopt;
  if (low.size() <= 5 || low[4] != ':')
    AR_THROW("output format '", name, "': give the GGUF mix as gguf:<mix>, one of ", gguf_mix_list());
  if (std::optional<GgufMix> m = parse_gguf_mix(low.substr(5))) return m;
  AR_THROW("output format '", name, "': unknown GGUF mix '", name.substr(5), "'; valid mixes: ", gguf_mix_list());
}

std::string gguf_format_name(GgufMix mix) { return "gguf:" + std::string(gguf_mix_info(mix).name); }

}  // namespace ar
