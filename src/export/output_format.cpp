// Output format names, spelled as the Python tool's --format values.
#include "export/output_format.h"

#include "core/error.h"

namespace ar {

OutputFormat parse_output_format(const std::string& name) {
  if (name == "auto_round" || name == "auto-round" || name == "autoround" || name == "auto_round:auto_gptq")
    return OutputFormat::AutoRound;
  if (name == "auto_gptq" || name == "gptq") return OutputFormat::AutoGptq;
  if (name == "fake") return OutputFormat::Fake;
  AR_THROW("unknown output format '", name, "'; valid formats: auto_round, auto_gptq, fake");
}

std::string output_format_name(OutputFormat f) {
  switch (f) {
    case OutputFormat::AutoRound: return "auto_round";
    case OutputFormat::AutoGptq: return "auto_gptq";
    case OutputFormat::Fake: return "fake";
  }
  return "?";
}

}  // namespace ar
