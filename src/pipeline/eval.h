// Perplexity (SPEC §5): exp(mean NLL) over every token that has a predecessor in its window.
// Windows are processed in groups sized to an activation budget; each group streams the blocks once.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/precision.h"

namespace ar {

class Decoder;
struct BlockWeights;

struct EvalOptions {
  Precision precision = Precision::F32;
  uint64_t activation_budget_bytes = 256ull << 20;  // hidden states of one group of windows
  std::function<void(const std::string&)> progress;  // optional progress lines
  std::function<void(BlockWeights&)> transform_block;  // e.g. fake quantization, applied per block
  // Optional: called once per window, in order, with its logits (seqlen x vocab, row t = the
  // prediction after token t). Costs one extra lm_head pass per window.
  std::function<void(int64_t window, const float* logits, int64_t T, int64_t V)> on_logits;
};

struct EvalResult {
  double perplexity = 0;
  double nll_sum = 0;
  int64_t tokens_scored = 0;
  int64_t windows = 0;
  int64_t tokens_total = 0;  // tokens pushed through the model
  double seconds = 0;
  double flops = 0;          // matmul FLOPs of the forward passes (for GFLOP/s)
};

EvalResult evaluate_perplexity(const Decoder& d, const std::vector<std::vector<int32_t>>& windows,
                               const EvalOptions& opt);

// 2·params·tokens for the linears plus attention scores/values (causal, so about half of T²).
double forward_flops(const Decoder& d, int64_t n_seq, int64_t T);

}  // namespace ar
