// Decoders of a HF tokenizer.json ("decoder"): ByteLevel, Replace (string), ByteFallback, Fuse,
// Strip, Metaspace, or a Sequence; they turn the id -> token strings back into text.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

namespace ar::tok {

struct DecoderStep {
  enum class Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace };
  Kind kind{};
  std::string a, b;                 // Replace: pattern, content; Strip: content; Metaspace: replacement
  size_t start = 0, stop = 0;       // Strip
  bool prepend = true;              // Metaspace: drop the leading space of the first token
};

// Throws ar::Error naming `file` for unsupported decoder types.
std::vector<DecoderStep> parse_decoder(const nlohmann::json& j, const std::string& file);
// Runs the chain over the token strings and joins what is left (HF: tokens joined with "" once
// a decoder ran, with " " when there is no decoder at all).
std::string run_decoder(const std::vector<DecoderStep>& steps, std::vector<std::string> tokens);

}  // namespace ar::tok
