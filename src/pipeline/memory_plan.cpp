#include "pipeline/memory_plan.h"

#include <vector>

#include "core/error.h"
#include "core/memory.h"

namespace ar {

namespace {

struct Candidate {
  CacheMode mode;
  bool stream;
  int caches;
  uint64_t ram, disk;
  const char* what;
};

// The plan, or nothing with *why set to the error (ar::Error's text) when nothing fits.
std::optional<MemoryPlan> choose(const PlanInputs& in, std::string* why) {
  const uint64_t fixed = in.base_bytes + in.block_bytes + in.work_bytes;
  std::string head = cat("memory plan (budget ", format_bytes(in.max_ram), ", work dir free ",
                         format_bytes(in.free_disk), "):\n", "  resident before the blocks  ", format_bytes(in.base_bytes),
                         "\n", "  one block's weights         ", format_bytes(in.block_bytes), "\n",
                         "  tuning / pass working set   ", format_bytes(in.work_bytes), "\n", in.note);
  if (in.caches == 0) {
    MemoryPlan p;
    p.peak_ram = fixed;
    p.checkpoint = in.checkpoint && in.free_disk >= in.result_bytes;
    p.disk_bytes = p.checkpoint ? in.result_bytes : 0;
    p.text = head + cat("  no calibration activations; predicted peak ", format_bytes(p.peak_ram));
    if (p.peak_ram > in.max_ram) {
      *why = cat("--max_ram ", format_bytes(in.max_ram), " is too small: one block and its working set need ",
                 format_bytes(p.peak_ram), " (", format_bytes(in.block_bytes), " weights + ",
                 format_bytes(in.work_bytes), " working set + ", format_bytes(in.base_bytes),
                 " base); raise --max_ram");
      return std::nullopt;
    }
    return p;
  }
  head += cat("  one activation cache        ", format_bytes(in.cache_bytes), "\n");
  // Ping-pong generations on disk: a block's inputs stay intact until the next checkpoint is written.
  std::vector<Candidate> cands;
  auto add = [&](CacheMode m, bool stream, const char* what) {
    const int k = stream ? in.caches_streamed : in.caches;
    if (k == 0 || (in.force_stream && !stream)) return;
    if (m == CacheMode::Disk && !in.allow_disk) return;
    if (m == CacheMode::Ram && !in.allow_ram) return;
    Candidate c{m, stream, k, fixed, 0, what};
    if (m == CacheMode::Ram) c.ram += uint64_t(k) * in.cache_bytes;
    else c.disk = 2 * uint64_t(k) * in.cache_bytes + in.result_bytes;
    cands.push_back(c);
  };
  add(CacheMode::Ram, false, "caches in RAM");
  if (in.caches_streamed < in.caches || in.force_stream) add(CacheMode::Ram, true, "caches in RAM, streamed targets");
  add(CacheMode::Disk, false, "caches on disk");
  if (in.caches_streamed < in.caches || in.force_stream) add(CacheMode::Disk, true, "caches on disk, streamed targets");

  std::string lines;
  const Candidate* pick = nullptr;
  for (const Candidate& c : cands) {
    const bool ram_ok = c.ram <= in.max_ram, disk_ok = c.disk <= in.free_disk;
    lines += cat("  option: ", c.what, " (", c.caches, " cache", c.caches > 1 ? "s" : "", "): peak RAM ",
                 format_bytes(c.ram), c.disk ? cat(", disk ", format_bytes(c.disk)) : std::string(),
                 ram_ok && disk_ok ? "" : (!ram_ok ? "  -> over the RAM budget" : "  -> not enough free disk"), "\n");
    if (!pick && ram_ok && disk_ok) pick = &c;
  }
  if (!pick) {
    std::string msg = head + lines + "no strategy fits: ";
    uint64_t min_ram = UINT64_MAX, min_disk = UINT64_MAX;
    for (const Candidate& c : cands) {
      min_ram = std::min(min_ram, c.ram);
      if (c.mode == CacheMode::Disk) min_disk = std::min(min_disk, c.disk);
    }
    if (cands.empty()) msg += "--low_cpu_mem_usage is off and --stream_loss needs disk caches; ";
    else if (min_ram > in.max_ram) msg += cat("the smallest needs ", format_bytes(min_ram), " of RAM (raise --max_ram, or lower --seqlen)");
    else msg += cat("caches on disk need ", format_bytes(min_disk), " in the work directory, which has ",
                    format_bytes(in.free_disk), " free (free space, pass --work_dir on a larger disk, or lower --nsamples / --seqlen)");
    *why = msg;
    return std::nullopt;
  }
  MemoryPlan p;
  p.mode = pick->mode;
  p.stream_targets = pick->stream;
  p.peak_ram = pick->ram;
  p.disk_bytes = pick->disk;
  p.checkpoint = in.checkpoint;
  if (p.checkpoint && p.mode == CacheMode::Ram) {
    // A resumable checkpoint of RAM caches is a copy of them on disk after each block.
    const uint64_t need = 2 * uint64_t(pick->caches) * in.cache_bytes + in.result_bytes;
    if (need > in.free_disk) {
      p.checkpoint = false;
      lines += cat("  note: no checkpoint (it needs ", format_bytes(need), " of disk); --resume will not be possible\n");
    } else {
      p.disk_bytes = need;
    }
  }
  p.text = head + lines + cat("  chosen: ", pick->what, "; predicted peak RAM ", format_bytes(p.peak_ram),
                              p.disk_bytes ? cat(", work dir up to ", format_bytes(p.disk_bytes)) : std::string());
  return p;
}

}  // namespace

MemoryPlan choose_plan(const PlanInputs& in) {
  std::string why;
  std::optional<MemoryPlan> p = choose(in, &why);
  if (!p) AR_THROW(why);
  return *p;
}

std::optional<MemoryPlan> try_choose_plan(const PlanInputs& in) {
  std::string why;
  return choose(in, &why);
}

}  // namespace ar
