// QuantizedWeight: one linear layer quantized per SPEC §2, in the neutral layout every exporter
// reads (GPTQ packing, fake/dequantized, later GGUF): unsigned integer codes per weight and, per
// (output row, group), an fp16 scale and an unsigned zero point, so that
//   W[o, i] = f16_to_f32(scale[o, g]) * (code[o, i] - zero[o, g]),  g = i / group_size.
// Symmetric "full range": code = q + 2^(bits-1), zero = 2^(bits-1). Asymmetric: code = q, zero = zp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/ggml_type.h"

namespace ar {

struct QuantScheme {
  int bits = 4;              // 2, 3, 4, 8; 16 means "keep this layer unquantized"
  int64_t group_size = 128;  // -1 = the whole input row is one group
  bool sym = true;
  // A GGUF block format (Q4_K, ...) to tune and quantize under instead of the integer scheme above
  // (bits/group_size/sym are then unused); F32 = none.
  GgmlType gguf = GgmlType::F32;
  bool operator==(const QuantScheme&) const = default;
  bool quantized() const { return gguf_target() || bits < 16; }
  bool gguf_target() const { return ggml_is_quantized(gguf); }
};

struct QuantizedWeight {
  QuantScheme scheme;
  int64_t out = 0, in = 0;
  int64_t group = 0;     // effective group size: scheme.group_size, or `in` when -1
  int64_t n_groups = 0;  // ceil(in / group): the last group is padded when `in % group != 0`
  std::vector<uint8_t> codes;     // (out, in), each in [0, 2^bits - 1]
  std::vector<uint16_t> scales;   // (out, n_groups), IEEE fp16 bits
  std::vector<uint8_t> zeros;     // (out, n_groups), each in [0, 2^bits - 1]

  // Shape fields set and codes/scales/zeros sized (contents unset) for a layer (out, in).
  static QuantizedWeight allocate(const QuantScheme& s, int64_t out, int64_t in);
  // w (out, in) f32 = the dequantized weight.
  void dequantize(float* w) const;
};

// Effective group size and group count for a row of `in` weights.
int64_t effective_group_size(const QuantScheme& s, int64_t in);
int64_t num_groups(const QuantScheme& s, int64_t in);

}  // namespace ar
