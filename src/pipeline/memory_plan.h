// The RAM budget (--max_ram): before any work, what each strategy for the calibration activations
// needs (block weights, tuning state, per-sample working set, caches) is estimated, and the
// cheapest strategy that fits the RAM budget and the work directory's free disk is chosen. Nothing
// fitting is an ar::Error that says what would.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace ar {

enum class CacheMode { None, Ram, Disk };

struct PlanInputs {
  uint64_t base_bytes = 0;     // resident before the first block (process, tokenizer, calibration ids)
  uint64_t block_bytes = 0;    // the largest block's weights in f32
  uint64_t work_bytes = 0;     // max(tuner state + scratch, calibration-pass scratch) incl. sample buffers
  uint64_t cache_bytes = 0;    // one activation cache: nsamples * seqlen * hidden * 4
  int caches = 0;              // caches held at once with cached targets (0: no calibration data)
  int caches_streamed = 0;     // ... with streamed targets (0: streaming not applicable)
  uint64_t result_bytes = 0;   // checkpointed quantized blocks (on disk)
  uint64_t max_ram = 0;        // the budget
  uint64_t free_disk = 0;      // in the work directory (after --max_disk)
  bool allow_ram = true;       // --cache disk forbids RAM caches
  bool allow_disk = true;      // --low_cpu_mem_usage (and not --cache ram)
  bool force_stream = false;   // --stream_loss
  bool checkpoint = true;      // keep a resumable checkpoint after each block
  std::string note;            // further lines for the plan's head (e.g. the expert groups chosen)
};

struct MemoryPlan {
  CacheMode mode = CacheMode::None;
  bool stream_targets = false;
  bool checkpoint = false;     // false when the disk cannot hold it (RAM caches only)
  uint64_t peak_ram = 0;       // predicted
  uint64_t disk_bytes = 0;     // predicted peak use of the work directory
  std::string text;            // the plan, several lines, for the log
  int expert_groups = 1;       // MoE blocks: experts tuned in this many groups (SignRoundOptions)
  bool hold_step_weights = true;  // SignRoundOptions::hold_step_weights: dropped when it does not fit
};

MemoryPlan choose_plan(const PlanInputs& in);
// The same without throwing: nothing when no strategy fits.
std::optional<MemoryPlan> try_choose_plan(const PlanInputs& in);

}  // namespace ar
