// One block's quantization step: SignRound tuning or (optimized) RTN, producing the block's
// BlockResult and, along the way, the next block's full-precision inputs (X). The quantized
// path (Xq) is propagated after the step, from the weights it leaves.
#pragma once
#include <functional>
#include <string>

#include "model/weights.h"
#include "pipeline/calib_stream.h"
#include "pipeline/quantize.h"
#include "pipeline/run_setup.h"
#include "quant/block_result.h"

namespace ar {

struct StepContext {
  const ModelConfig& cfg;
  const RunSetup& setup;
  const Schemes& schemes;
  int64_t T = 0;
  bool stream_targets = false;  // the memory plan recomputes targets per batch instead of caching
  bool last = false;            // the last block: its outputs feed no further block
  bool disable_opt_rtn = false;
  Precision precision = Precision::F32;  // calibration passes
  std::function<void(const std::string&)> mem_log;
};

// SignRound on the calibration stream: targets (cached or streamed), tuning, the next X. The
// block's weights come back dequantized from the tuned results (result.tuned). The losses go to
// `report` (loss_before, loss_after, best_iter).
BlockResult signround_step(BlockWeights& w, CalibStream& cs, const StepContext& ctx, BlockReport& report);

// RTN / optimized RTN; with calibration (cs non-null) the importance pass also yields the next X.
BlockResult rtn_step(const BlockWeights& w, CalibStream* cs, const StepContext& ctx);

// A resumed block's weights as its step left them: tuned results dequantized in place.
void apply_result(BlockWeights& w, const BlockResult& r);

}  // namespace ar
