// BlockResult: what quantizing one decoder block produced, the one currency between the block
// step (RTN, optimized RTN or SignRound), the output writers and the checkpoint. Per linear
// (HF name without ".weight") it holds whichever of these the run made:
//   - q: the layer under the integer scheme (auto_round / auto_gptq / fake outputs);
//   - gguf: the layer's rows already in a GGUF block type (SignRound tuned under that type, so the
//     file must store exactly these bytes);
//   - importance: mean squared input activation per input column (optimized RTN with calibration
//     data), which GGUF encoders use as llama.cpp uses an imatrix.
// `tuned`: the block's weights after the step are the dequantized results (SignRound: the
// quantized path and re-quantizing writers continue from them); RTN leaves the weights as read.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/ggml_type.h"
#include "quant/quantized.h"

namespace ar {

struct LinearResult {
  std::optional<QuantizedWeight> q;
  GgmlType gguf_type = GgmlType::F32;  // meaningful when gguf is not empty
  std::vector<uint8_t> gguf;
  std::vector<float> importance;
};

struct BlockResult {
  int64_t layer = -1;
  bool tuned = false;
  std::map<std::string, LinearResult> linears;

  const LinearResult* find(const std::string& linear_name) const {
    auto it = linears.find(linear_name);
    return it == linears.end() ? nullptr : &it->second;
  }
};

}  // namespace ar
