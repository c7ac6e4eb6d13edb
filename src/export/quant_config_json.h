// config.json's quantization_config for the packed formats (SPEC §4). auto_round follows what the
// Python AutoRound writes and transformers' AutoRoundConfig reads (quant_method "auto-round", bits,
// group_size, sym, packing_format, extra_config); auto_gptq follows transformers' GPTQConfig /
// optimum / gptqmodel (quant_method "gptq", desc_act, sym, true_sequential, damp_percent, ...).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "export/output_format.h"
#include "quant/quantized.h"

namespace ar {

inline constexpr const char* kQuantizerName = "autoround.cpp";

// One linear inside the decoder blocks (HF name without ".weight") and how the output stores it:
// scheme.bits 16 = kept unquantized (by choice or because the format cannot store its shape).
struct StoredLinear {
  std::string name;
  QuantScheme scheme;
};

// The scheme most quantized layers use (ties: the first seen); the config's top-level bits /
// group_size / sym. Throws ar::Error when no layer is quantized (nothing a loader could use).
QuantScheme dominant_scheme(const std::vector<StoredLinear>& linears);

// The quantization_config object. `tuning`: settings that differ from their defaults (iters, lr,
// nsamples, ...) and e.g. "quantizer_version", copied in at top level without replacing the
// format's own keys. Layers whose scheme differs from the dominant one are listed:
//   auto_round: extra_config {name: {bits, group_size, sym, data_type}} (only the differing keys;
//               kept layers as {"bits": 16, "data_type": "float"}), as the Python tool writes;
//   auto_gptq:  gptqmodel's "dynamic" {"-:^name$": {}} for kept layers, {"+:^name$": {...}} for
//               others, plus modules_in_block_to_quantize when every block keeps the same layers.
// How the packed qzeros of format `f` are stored, as the Python AutoRound does it: its auto_round
// format packs symmetric models "auto_round:auto_gptq" (zeros - 1, GPTQ v1) and asymmetric ones
// "auto_round" (zeros as they are; its loaders have no CPU kernel for asymmetric v1 packing);
// auto_gptq is always v1. Decided by the dominant scheme, for every layer of the file.
bool packed_zeros_minus_one(OutputFormat f, const QuantScheme& dominant);

nlohmann::json make_quantization_config(OutputFormat f, const std::vector<StoredLinear>& linears,
                                        const nlohmann::json& tuning);

}  // namespace ar
