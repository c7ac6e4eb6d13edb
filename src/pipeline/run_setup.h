// Everything a quantize run decides before its first block: the option checks, the per-layer
// config, what the run computes (tuning, importance, which activation caches), every output
// planned, each linear's scheme, and the calibration samples.
#pragma once
#include <array>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "calib/calib_set.h"
#include "model/decoder.h"
#include "model/weights.h"
#include "pipeline/memory_plan.h"
#include "pipeline/outputs.h"
#include "quant/layer_config.h"
#include "tune/signround.h"

namespace ar {

struct QuantizeOptions;
using Schemes = LinearSchemes;

struct RunSetup {
  LayerConfig layers;
  bool tune = false;       // SignRound (--iters > 0)
  bool use_imp = false;    // optimized RTN weighted by calibration importance
  bool calib = false;      // calibration samples are run through the blocks
  bool with_xq = false;    // tuning inputs come from the quantized path (Xq)
  bool tune_gguf = false;  // SignRound tunes under the single GGUF output's block types
  std::map<std::string, GgmlType> gguf_types;  // tune_gguf: each block linear's planned type
  SignRoundOptions tune_opts;  // as given, with GGUF's clipping rule applied
  bool integer_formats = false;  // an auto_round / auto_gptq / fake output
  std::unique_ptr<OutputSet> outputs;  // null on the ranks of a data-parallel run other than 0
  CalibSet samples;                    // this process's shard of them (data-parallel runs)
  int64_t samples_total = 0;           // calibration samples of the whole run
  Comm* comm = nullptr;                // the run's processes (never null after run_setup)

  // Each linear's scheme: the layer config's, or its planned GGUF block type when tuning for GGUF.
  Schemes schemes(const BlockWeights& w) const;
};

// Option checks that need no model: ar::Error naming the option.
void check_quantize_options(const QuantizeOptions& opt);
// A floating-point scheme `s` (issue 19, stage 2) is quantized by RTN and written by the fake
// format only: ar::Error, naming `what` (e.g. "layer 'model.layers.0.mlp.up_proj'") when given,
// for --iters > 0 and for every other format. Integer schemes pass.
void check_fp_scheme_supported(const QuantizeOptions& opt, const QuantScheme& s, const std::string& what);
// The checked options with what depends on the machine resolved (amp -> tune.precision).
QuantizeOptions checked_options(const QuantizeOptions& given);

// Given checked options: plans the outputs and builds the calibration set (in that order, so bad
// options and destinations fail before any long work). In a data-parallel run (opt.comm of size
// N) rank 0 alone plans the outputs, and each rank keeps its contiguous shard of the samples.
RunSetup run_setup(const QuantizeOptions& opt, const Decoder& d, const std::function<void(const std::string&)>& log);

// --layer_config names a file unless it is JSON text.
bool layer_config_is_file(const QuantizeOptions& opt);

// The memory plan of the run (SPEC §3): what fits --max_ram and the work dir's disk.
MemoryPlan plan_memory(const QuantizeOptions& opt, const RunSetup& s, const Decoder& d,
                       const std::filesystem::path& work_dir);

}  // namespace ar
