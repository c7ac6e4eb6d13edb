// GGUF quantization mixes ("q4_k_m", "q3_k_s", ...): which GgmlType each tensor of a model gets,
// and the general.file_type id written for the mix. Follows llama.cpp's llama-quant.cpp
// (llama_tensor_get_type): output / tied token_embd promoted to Q6_K, attn_v / ffn_down / attn_output
// promoted by mix and layer position ("use_more_bits"), 1-D tensors and norms left as they are,
// and the row-length fallbacks (k-quants -> Q4_0 / Q5_0 / Q5_1 / Q8_0, then F16).
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/ggml_type.h"

namespace ar {

enum class GgufMix {
  F32, F16, BF16,
  Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
  Q2_K, Q2_K_S, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K,
};

struct GgufMixInfo {
  GgufMix mix;
  std::string_view name;     // "q4_k_m", as --format gguf:<name> spells it
  uint32_t file_type;        // general.file_type (llama.h LLAMA_FTYPE_*, e.g. q4_k_m = 15)
  GgmlType default_type;     // the type most 2-D weights get
  std::string_view description;
};

// All mixes, in a stable order (for --help).
std::span<const GgufMixInfo> gguf_mixes();
const GgufMixInfo& gguf_mix_info(GgufMix mix);
// Case-insensitive ("Q4_K_M" or "q4_k_m"); nullopt for an unknown name.
std::optional<GgufMix> parse_gguf_mix(std::string_view name);

// What llama.cpp reads from the model when choosing types.
struct GgufMixModel {
  std::string arch;       // general.architecture: "llama", "qwen2", "qwen3", ... ("falcon" has its own rules)
  int n_layer = 0;        // block_count
  int n_head = 0;         // attention.head_count
  int n_head_kv = 0;      // attention.head_count_kv (attn_v is promoted more when n_head / n_head_kv >= 4)
  int n_expert = 0;       // 0 or 1 for dense models
  bool has_imatrix = false;  // only changes q4_0 / q5_0 ffn_down in the first eighth of the layers
};

struct GgufMixTensor {
  std::string name;                      // GGUF name: "token_embd.weight", "blk.3.attn_v.weight", ...
  std::vector<int64_t> shape;            // GGUF order: shape[0] is the row length (ne[0]); an HF
                                         // Linear weight (out, in) is {in, out}
  GgmlType source_type = GgmlType::F32;  // kept when the tensor is not quantized (norms, 1-D)
  // A type asked for by name (--layer_config): replaces the mix's choice, with the same row-length
  // fallbacks; F16 / BF16 / F32 keep the tensor unquantized. Ignored for tensors never quantized.
  std::optional<GgmlType> requested = std::nullopt;
};

struct GgufTensorType {
  GgmlType type;
  bool fallback = false;  // the row length did not fit the chosen type and a fallback was taken
};

// The GGUF type a --layer_config "bits" value asks for: 2 -> Q2_K, 3 -> Q3_K, 4 -> Q4_K,
// 5 -> Q5_K, 6 -> Q6_K, 8 -> Q8_0, 16 -> F16 (kept unquantized). ar::Error for other values.
GgmlType gguf_type_for_bits(int bits);

// The type of every tensor, in the order given. `tensors` must be the whole model: whether
// output.weight exists decides if token_embd is treated as the (tied) output, and attn_v counts
// come from the list. Throws ar::Error naming the tensor when its row length fits neither the
// type nor any fallback (llama.cpp refuses such a model too). q2_k_s without calibration data
// (llama-quantize's rule: no importance matrix) is refused by the quantize pipeline, not here.
std::vector<GgufTensorType> gguf_mix_types(GgufMix mix, const GgufMixModel& model,
                                           const std::vector<GgufMixTensor>& tensors);

}  // namespace ar
