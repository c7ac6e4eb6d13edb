// The streaming quantization run (SPEC §3): one decoder block at a time is read, quantized
// (SignRound, optimized RTN or RTN), handed to every output format's writer, checkpointed and
// released. Calibration activations (block inputs on the original and the quantized path, and the
// targets) are the only per-sample state carried between blocks; the memory plan puts them in RAM
// or in the work dir.
//
// QuantizeOptions is the one table of options: its member initialisers are the defaults the CLI
// shows and the Python API uses, check_quantize_options (run_setup.h) holds every check that
// needs no model, recipes.h the named presets.
#pragma once
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/precision.h"
#include "tune/signround.h"
#include "quant/quantized.h"

namespace ar {

// SignRound's matmul precision (AutoRound's `amp`): Auto = bf16 where the CPU multiplies bf16
// natively, fp32 where bf16 would be emulated (slower and no better there).
enum class Amp { Auto, On, Off };

// One finished block, as the report lists it and QuantizeOptions::on_block announces it.
struct BlockReport {
  int64_t layer = 0;
  double loss_before = NAN;  // SignRound: the first step's batch loss (v = 0); NaN without tuning
  double loss_after = NAN;   // SignRound: the lowest batch loss, whose parameters were kept
  int best_iter = -1;
  int expert_groups = 1;     // SignRound on a MoE block: groups its experts were tuned in
  double seconds = 0;
  uint64_t rss_bytes = 0, peak_rss_bytes = 0;  // after the block
  bool resumed = false;      // taken from the checkpoint (--resume): no losses, no time
};

struct QuantizeOptions {
  std::filesystem::path model_dir;
  std::filesystem::path output_dir;        // one format: this folder; several: <output_dir>/<format>
  std::vector<std::string> formats = {"auto_round"};
  QuantScheme scheme;                      // default for every linear inside the blocks
  std::string layer_config;                // JSON text or a JSON file; empty = none
  bool disable_opt_rtn = false;            // plain RTN instead of the scale search
  SignRoundOptions tune;                   // tune.iters == 0: RTN / optimized RTN; tune.seed also seeds
                                           // sampling; tune.precision is set from `amp`
  Amp amp = Amp::Auto;
  // Data parallelism (issue 17): the processes of an MPI run (null: this process alone), and the
  // number of sample partitions SignRound draws its batches from (0: one per process). A single
  // process given --partitions N computes exactly what N processes compute together.
  Comm* comm = nullptr;
  int partitions = 0;
  bool enable_quanted_input = true;        // tune on the quantized path's inputs (Xq), as AutoRound
  bool gguf_minmax_tuning = false;         // GGUF targets: also tune min/max clipping (off: rounding only)
  std::string dataset;                     // calibration data ("builtin" = the built-in text); empty = none
  // Or calibration documents in memory (the Python API's list[str] / list[list[int]]): texts are
  // tokenized as a file's documents are, ids taken as they are. At most one of the three is set.
  std::vector<std::string> dataset_texts;
  std::vector<std::vector<int32_t>> dataset_ids;
  int64_t nsamples = 128;
  int64_t seqlen = 2048;
  uint64_t max_shard_bytes = 5'000'000'000ull;
  bool overwrite = false;
  Precision precision = Precision::F32;
  std::string eval_dataset;                // evaluate original and quantized model on this file
  int64_t eval_seqlen = 2048;
  std::function<void(const std::string&)> log;  // progress lines
  // Called after every block (and for each block a resume takes from the checkpoint) with the
  // number of blocks, for progress bars.
  std::function<void(const BlockReport&, int64_t n_blocks)> on_block;

  // Memory (SPEC §3): where the calibration activations live and how a run survives a crash.
  std::filesystem::path work_dir;          // empty: <output_dir>.autoround_work beside the output
  std::string cache = "auto";              // auto (the memory plan decides), ram, disk
  bool stream_loss = false;                // recompute targets per batch instead of caching them
  uint64_t max_ram = 0;                    // RAM budget; 0: 80 % of MemAvailable
  bool low_cpu_mem_usage = true;           // allow spilling activation caches to the work dir
  // MoE blocks: tune the experts in this many groups (SignRoundOptions::expert_groups); 0: the
  // fewest the RAM budget allows.
  int expert_groups = 0;
  uint64_t max_disk = 0;                   // cap on the work dir's disk use; 0: its free space
  bool log_memory = false;                 // RSS after every phase of every block
  bool checkpoint = true;                  // resumable checkpoint after each block
  bool resume = false;                     // continue from the work dir's checkpoint
  int64_t debug_kill_after_block = -1;     // tests: SIGKILL ourselves after this block's checkpoint

  bool has_dataset() const { return !dataset.empty() || !dataset_texts.empty() || !dataset_ids.empty(); }
};

struct QuantizeReport {
  double seconds = 0;
  uint64_t peak_rss_bytes = 0;
  std::vector<std::filesystem::path> outputs;
  std::vector<uint64_t> output_bytes;
  int64_t quantized_layers = 0;
  std::vector<std::string> kept_16bit;     // layers a packed format could not store
  double bits_per_weight = 0;              // quantized linears, codes + scales + zeros
  double ppl_original = 0, ppl_quantized = 0;  // when eval_dataset is set
  std::string plan;                        // the memory plan as printed
  uint64_t work_dir_peak_bytes = 0;        // largest size of the work directory seen
  int64_t resumed_blocks = 0;              // blocks taken from a checkpoint (--resume)
  int processes = 1;                       // data-parallel: MPI ranks
  CommStats comm;                          // this process's collective operations
  int64_t tuning_steps = 0;                // SignRound steps taken (all blocks)
  double tuning_seconds = 0;               // SignRound block steps, their target passes included
  uint64_t peak_rss_largest_rank = 0;      // data-parallel: the largest VmHWM of any process
  std::vector<BlockReport> blocks;         // one per decoder block, in order
};

QuantizeReport run_quantize(const QuantizeOptions& opt);

}  // namespace ar
