// GPTQ-packed linear layers (the auto_round / auto_gptq checkpoint layout, SPEC §4): the bit layout
// of qweight / qzeros, the checkpoint's quantization_config, and loading such a layer back as an f32
// weight. Follows AutoGPTQ's v1 packing (values in the lowest bits first, zeros stored as zero - 1).
//
// Bit layout: a run of n b-bit values v[0..n) is one little-endian bit stream, v[k] at stream bit
// b*k, cut into int32 words. For b = 2, 4, 8 that is "32/b values per word, the first in the lowest
// bits"; for b = 3 it is GPTQ's interleaved layout (32 values in 3 words: word 0 holds v0..v9 and the
// low 2 bits of v10, word 1 the top bit of v10, v11..v20 and the low bit of v21, word 2 the top 2 bits
// of v21 and v22..v31), which is the same stream.
//   L.qweight int32 [in*b/32, out]: column o is the stream of codes[o, 0..in)
//   L.qzeros  int32 [n_groups, out*b/32]: row g is the stream of (zero[0..out, g] - 1) & (2^b - 1)
//   L.scales  fp16  [n_groups, out];  L.g_idx int32 [in] (optional; default i / group_size)
//   W[o, i] = scales[g, o] * (code[i, o] - zero[g, o]), g = g_idx[i]
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ar {

class SafetensorsReader;

// Number of int32 words holding n values of `bits` bits (n * bits / 32; n must fill whole words).
int64_t gptq_packed_words(int bits, int64_t n);
// Packs values v[0..n) (each < 2^bits) into gptq_packed_words(bits, n) words; out is overwritten.
void gptq_pack_values(uint32_t* words, const uint8_t* v, int64_t n, int bits);
// The inverse: v[0..n) from the words.
void gptq_unpack_values(uint8_t* v, const uint32_t* words, int64_t n, int bits);

// One layer's scheme as a checkpoint declares it (bits 16 or more: stored unquantized).
struct PackedScheme {
  int bits = 4;
  int64_t group_size = 128;  // -1 = one group per row
  bool sym = true;
};

// The parts of config.json's quantization_config that decide how to read the tensors.
struct PackedQuantConfig {
  std::string quant_method;    // "auto-round", "intel/auto-round", "gptq"
  std::string packing_format;  // "auto_round:auto_gptq", ... (may be empty for gptq)
  PackedScheme scheme;         // the default for every layer
  bool zeros_minus_one = true; // GPTQ v1 stores zero - 1; checkpoint_format "gptq_v2" stores zero
  // packing_format "auto_round:auto_awq" (what AutoRound writes for 4-bit asymmetric auto_round):
  // AutoAWQ's GEMM layout, qweight (in, out/8) packed along the outputs, zeros stored as they are.
  bool awq = false;
  // extra_config: per-layer overrides keyed by layer name (or a regex, as the Python tool allows).
  std::vector<std::pair<std::string, PackedScheme>> overrides;
  // Layers named in modules_to_not_convert / a gptqmodel "dynamic" "-:" rule stay unquantized.
  std::vector<std::string> not_converted;  // regexes
  PackedScheme scheme_for(const std::string& linear_name) const;
};

// Parses quantization_config JSON text (ModelConfig::quantization_config). `source` names the file
// in errors. Throws ar::Error for a method or packing this reader does not support.
PackedQuantConfig parse_packed_quant_config(const std::string& json_text, const std::string& source);

// True when `name`.qweight exists in the checkpoint.
bool has_packed_linear(const SafetensorsReader& st, const std::string& name);

// Reads <name>.qweight/.qzeros/.scales(/.g_idx) and writes the dequantized weight w (out, in) f32.
// Malformed tensors (dtype, shape, g_idx out of range) -> ar::Error naming tensor and shapes.
void load_packed_linear_weight(float* w, const SafetensorsReader& st, const PackedQuantConfig& qc,
                               const std::string& name, int64_t in, int64_t out);

// The same, with the quantization_config taken from the config.json beside the checkpoint's files
// (for callers that hold only the reader, e.g. load_linear).
void load_packed_linear_weight(float* w, const SafetensorsReader& st, const std::string& name, int64_t in,
                               int64_t out);

}  // namespace ar
