// QuantizedWeight: one linear layer quantized per SPEC §2 or in a floating-point format (issue 19),
// in the neutral layout every exporter reads (GPTQ packing, fake/dequantized, later GGUF and
// compressed-tensors). Integer schemes: unsigned integer codes per weight and, per (output row,
// group), an fp16 scale and an unsigned zero point, so that
//   W[o, i] = f16_to_f32(scale[o, g]) * (code[o, i] - zero[o, g]),  g = i / group_size.
// Symmetric "full range": code = q + 2^(bits-1), zero = 2^(bits-1). Asymmetric: code = q, zero = zp.
// Floating-point formats: element codes (E2M1 in the low 4 bits, or an E4M3 byte) and the format's
// scales (see the fields); dequantize() gives exactly what quant/fp_formats' dequantizers give.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "quant/scheme.h"

namespace ar {

struct QuantizedWeight {
  QuantScheme scheme;
  int64_t out = 0, in = 0;
  int64_t group = 0;     // effective group size: scheme.group_size, or `in` when -1
  int64_t n_groups = 0;  // ceil(in / group): the last group is padded when `in % group != 0`
  std::vector<uint8_t> codes;     // (out, in): integer codes in [0, 2^bits - 1], or FP element codes
  std::vector<uint16_t> scales;   // Int: (out, n_groups), IEEE fp16 bits
  std::vector<uint8_t> zeros;     // Int: (out, n_groups), each in [0, 2^bits - 1]
  std::vector<uint8_t> scale_codes;  // MXFP4 / MXFP8: E8M0, NVFP4: E4M3; (out, n_groups)
  std::vector<float> scales_f32;     // FP8: (out); FP8Block: (scale_rows(), n_groups)
  float global_scale = 0;            // NVFP4: the tensor's global scale 448·6 / amax(W)

  // Shape fields set and the vectors the scheme uses sized (contents unset; the others stay
  // empty) for a layer (out, in).
  static QuantizedWeight allocate(const QuantScheme& s, int64_t out, int64_t in);
  // Rows of scales_f32: ceil(out / 128) for FP8Block, out for FP8, 0 otherwise.
  int64_t scale_rows() const;
  // Whether every vector has the size allocate() gives (a writer's or reader's sanity check).
  bool sizes_match() const;
  // w (out, in) f32 = the dequantized weight.
  void dequantize(float* w) const;
  // w (n_rows, in) f32 = rows [row0, row0 + n_rows) of the dequantized weight.
  void dequantize_rows(float* w, int64_t row0, int64_t n_rows) const;
  // Bits the format spends on this layer: codes, scales, zero points, a global scale.
  double storage_bits() const;
};

// Effective group size and group count for a row of `in` weights.
int64_t effective_group_size(const QuantScheme& s, int64_t in);
int64_t num_groups(const QuantScheme& s, int64_t in);

}  // namespace ar
