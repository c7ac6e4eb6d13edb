// compressed-tensors checkpoints (quant_method "compressed-tensors": llm-compressor's and vLLM's
// format, what the Python AutoRound writes for --format llm_compressor): the per-layer tensor
// layouts, the quantization_config that says which layer uses which, and loading such a layer back
// as an f32 weight. Layouts as compressed-tensors 0.20 (compressors/*) reads them, for a linear L
// of shape (out, in), n_groups = in / group_size:
//   pack-quantized (int, 1..8 bits b; strategy group, channel or tensor):
//     L.weight_packed     I32 [out, ceil(in*b/32)]: row o is one little-endian bit stream of the
//                         unsigned codes u[o, 0..in) (value i at stream bit b*i, zero bits after the
//                         last), u = q + 2^(b-1) for compressed-tensors' signed code q
//     L.weight_scale      F16 (or BF16 / F32) [out, n_groups] (channel: [out, 1])
//     L.weight_zero_point I32 [ceil(out*b/32), n_groups], asymmetric only: column g is the bit
//                         stream of the unsigned zero points z[0..out, g] = zp + 2^(b-1)
//     L.weight_shape      I64 [2] = {out, in}
//     W[o, i] = scale[o, g] * (u[o, i] - z[o, g]), z = 2^(b-1) when symmetric, g = i / group_size
//   nvfp4-pack-quantized (FP4 E2M1, groups of 16, strategy tensor_group):
//     L.weight_packed U8 [out, in/2]: element 2k in the low nibble, 2k+1 in the high one; a nibble
//                     is sign << 3 | E2M1 magnitude (0, 0.5, 1, 1.5, 2, 3, 4, 6 = 0..7)
//     L.weight_scale F8_E4M3 [out, in/16];  L.weight_global_scale F32 [1] (448·6 / amax(W))
//     W = e2m1 · (scale / global_scale)
//   mxfp4-pack-quantized (groups of 32): L.weight_packed as NVFP4; L.weight_scale U8 [out, in/32],
//     E8M0 (2^(s - 127)); W = e2m1 · 2^(s - 127)
//   mxfp8-quantized (groups of 32): L.weight F8_E4M3 [out, in]; L.weight_scale U8 [out, in/32] E8M0
//   float-quantized / naive-quantized (FP8 E4M3): L.weight F8_E4M3 [out, in]; L.weight_scale F32
//     (or 16-bit) [out, 1] (channel), [1] (tensor), [ceil(out/bh), ceil(in/bw)] (block bh x bw)
// The values are computed with quant/fp_formats' dequantizers and QuantizedWeight's integer
// expression, so a layer we wrote reads back to exactly QuantizedWeight::dequantize.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ar {

class SafetensorsReader;

// ---- bit streams (pack-quantized) ----------------------------------------------------------------
// int32 words holding n values of `bits` bits: ceil(n * bits / 32).
int64_t ct_packed_words(int bits, int64_t n);
// words[0, ct_packed_words) = the bit stream of v[0..n) (each < 2^bits), zero-padded; overwritten.
void ct_pack_bits(uint32_t* words, const uint8_t* v, int64_t n, int bits);
// The inverse: v[0..n) from the words.
void ct_unpack_bits(uint8_t* v, const uint32_t* words, int64_t n, int bits);

// ---- quantization_config -------------------------------------------------------------------------
enum class CtLayout { PackQuantized, Nvfp4, Mxfp4, Mxfp8, Float };

// How one layer is stored (the "weights" QuantizationArgs of its config group and the format).
struct CtLayerScheme {
  bool quantized = false;
  CtLayout layout = CtLayout::PackQuantized;
  std::string format;         // the compressed-tensors format name, for messages
  int bits = 0;
  bool sym = true;
  std::string strategy;       // "group", "channel", "tensor", "tensor_group", "block"
  int64_t group_size = 0;     // group / tensor_group
  int64_t block_rows = 0, block_cols = 0;  // block
};

struct CtQuantConfig {
  struct Group {
    std::string name;
    std::vector<std::string> targets;  // layer names, "re:<regex>" (matched from the start), or "Linear"
    CtLayerScheme scheme;
  };
  std::vector<Group> groups;
  std::vector<std::string> ignore;  // the same kinds of entries
  // compressed-tensors' rule: an ignored layer is not quantized; otherwise the group of the first
  // matching target, exact names first, then regexes (in sorted order), then "Linear".
  CtLayerScheme scheme_for(const std::string& linear_name) const;
};

// True when the quantization_config JSON text says quant_method "compressed-tensors".
bool is_ct_quant_config(const std::string& json_text);
// Parses it; `source` names the file in errors. ar::Error for a layout this reader does not know
// (sparse formats, activation-only schemes, bits it cannot hold, ...).
CtQuantConfig parse_ct_quant_config(const std::string& json_text, const std::string& source);

// ---- loading -------------------------------------------------------------------------------------
// True when the checkpoint stores `name` compressed: <name>.weight_packed or <name>.weight_scale.
bool has_ct_linear(const SafetensorsReader& st, const std::string& name);
// w (out, in) f32 = the dequantized layer. Missing tensors, wrong dtypes or shapes -> ar::Error
// naming the file and tensor.
void load_ct_linear_weight(float* w, const SafetensorsReader& st, const CtQuantConfig& qc, const std::string& name,
                           int64_t in, int64_t out);
// The same with the config from the config.json beside the checkpoint's files.
void load_ct_linear_weight(float* w, const SafetensorsReader& st, const std::string& name, int64_t in, int64_t out);

}  // namespace ar
