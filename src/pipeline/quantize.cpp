// The streaming quantize loop. Around it: run_setup (checks, schemes, outputs, calibration set),
// plan_memory, CalibStream (the activation caches), the block steps (SignRound or RTN -> one
// BlockResult), OutputSet (every format's ModelWriter) and the checkpoint. Per block:
//   load -> step (targets, tuning or RTN, next X) -> propagate Xq -> outputs.add_block ->
//   checkpoint -> release.
#include "pipeline/quantize.h"

#include <csignal>
#include <unistd.h>

#include "calib/dataset.h"
#include "calib/tokenizer.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/timer.h"
#include "io/safetensors.h"
#include "pipeline/block_step.h"
#include "pipeline/calib_stream.h"
#include "pipeline/checkpoint.h"
#include "pipeline/eval.h"
#include "pipeline/run_lock.h"
#include "pipeline/run_setup.h"
#include "pipeline/work_dir.h"

namespace ar {

namespace {

uint64_t folder_bytes(const std::filesystem::path& dir) {
  if (std::filesystem::is_regular_file(dir)) return std::filesystem::file_size(dir);
  uint64_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

std::string fmt_seconds(double s) {
  char buf[32];
  if (s < 120) std::snprintf(buf, sizeof buf, "%.1f s", s);
  else std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  return buf;
}

// --eval: perplexity of the original model and of the first output read back.
void evaluate_outputs(const QuantizeOptions& opt, const Decoder& d, const std::filesystem::path& eval_model,
                      const std::function<void(const std::string&)>& log, QuantizeReport& rep) {
  Tokenizer tok = Tokenizer::load(opt.model_dir);
  auto windows = cut_windows(load_eval_tokens(opt.eval_dataset, &tok), opt.eval_seqlen);
  if (windows.empty()) AR_THROW(opt.eval_dataset, ": shorter than one --eval_seqlen window");
  EvalOptions eo;
  eo.precision = opt.precision;
  log(cat("eval: original model, ", windows.size(), " windows of ", opt.eval_seqlen));
  rep.ppl_original = evaluate_perplexity(d, windows, eo).perplexity;
  log(cat("eval: quantized model read back from ", eval_model.string()));
  rep.ppl_quantized = evaluate_perplexity(Decoder(eval_model), windows, eo).perplexity;
}

// --resume: the manifest must be this run's; finished blocks and the caches come back from it.
// Several processes resume from the block all of them have checkpointed (see kPrevManifestName).
int64_t resume_checkpoint(const std::filesystem::path& work_dir, int64_t L, CalibStream* cs,
                          CheckpointManifest& man, Comm& comm, const std::function<void(const std::string&)>& log) {
  std::optional<CheckpointManifest> m = read_manifest(work_dir);
  std::optional<CheckpointManifest> prev;
  if (comm.size() > 1) prev = read_manifest(work_dir, kPrevManifestName);
  const int64_t mine = m ? m->next_block : prev ? prev->next_block : -1;
  const int64_t common = comm.min(mine);
  if (!m && !prev) AR_THROW("--resume: no checkpoint in ", work_dir.string(), " (", kManifestName, " is missing)");
  if (common < 0) AR_THROW("--resume: another process of this run has no checkpoint (see its message)");
  if (m->next_block != common) m = prev;
  if (!m || m->next_block != common)
    AR_THROW("--resume: ", work_dir.string(), " holds no checkpoint of block ", common, ", the last one every process has");
  const nlohmann::json& saved = m->identity;
  if (saved.contains("processes") && saved.at("processes") != man.identity.at("processes"))
    AR_THROW("--resume: the checkpoint in ", work_dir.string(), " was made by ", saved.at("processes").dump(),
             " processes; resume with the same number (mpirun -np ", saved.at("processes").dump(), ")");
  check_identity(work_dir, m->identity, man.identity);
  man = *m;
  const int64_t start_block = man.next_block;
  if (start_block > L) AR_THROW(work_dir.string(), ": checkpoint says ", start_block, " of ", L, " blocks are done");
  if (cs && start_block < L) cs->resume(man);
  log(cat("resume: ", start_block, " of ", L, " blocks finished in ", work_dir.string()));
  return start_block;
}

// A new run: a stale checkpoint must not be resumed into this run's files, so it goes first.
int64_t start_fresh(const std::filesystem::path& work_dir, const Decoder& d, const RunSetup& s, CalibStream* cs) {
  std::error_code ec;
  std::filesystem::remove(work_dir / kManifestName, ec);
  std::filesystem::remove(work_dir / kPrevManifestName, ec);
  if (cs) cs->start(d, s.samples.samples);
  return 0;
}

// A block finished before the resume: its result file goes to the outputs as if just computed.
void replay_block(int64_t l, const std::filesystem::path& work_dir, const CheckpointManifest& man,
                  const SafetensorsReader& src, const ModelConfig& cfg, OutputSet& outputs) {
  const BlockResult r = load_block_result(work_dir / man.block_files[size_t(l)], man.block_sums[size_t(l)]);
  if (r.layer != l) AR_THROW(work_dir.string(), ": ", man.block_files[size_t(l)], " holds block ", r.layer);
  std::optional<BlockWeights> w;
  if (outputs.needs_block_weights()) {
    w = load_block(src, cfg, l);
    apply_result(*w, r);
  }
  outputs.add_block(l, r, w ? &*w : nullptr);
  release_block_pages(src, l);
}

// The block's log line; the time and memory go to `b` as well.
void log_progress(int64_t l, int64_t L, int64_t start_block, const Timer& block, const Timer& blocks,
                  const std::function<void(const std::string&)>& log, BlockReport& b) {
  const double el = blocks.seconds();
  const double eta = el / double(l + 1 - start_block) * double(L - l - 1);
  MemStats m = read_mem_stats();
  b.seconds = block.seconds();
  b.rss_bytes = m.rss_bytes;
  b.peak_rss_bytes = m.peak_bytes;
  log(cat("[", l + 1, "/", L, "] block ", l, ": ", fmt_seconds(b.seconds), "  elapsed ", fmt_seconds(el),
          "  ETA ", fmt_seconds(eta), "  RSS ", format_bytes(m.rss_bytes), " (peak ", format_bytes(m.peak_bytes), ")"));
}

}  // namespace

// Rank r > 0 of a data-parallel run keeps its caches and checkpoint in <work_dir>/rank-<r>.
std::filesystem::path rank_work_dir(const std::filesystem::path& work_dir, const Comm& comm) {
  return comm.rank() == 0 ? work_dir : work_dir / cat("rank-", comm.rank());
}

QuantizeReport run_quantize(const QuantizeOptions& given) {
  limit_heap_retention();
  const QuantizeOptions opt = checked_options(given);
  Comm& comm = opt.comm ? *opt.comm : single_process_comm();
  const bool lead = comm.rank() == 0;  // logs, writes the outputs
  Timer total;
  auto log = [&](const std::string& s) {
    if (opt.log && lead) opt.log(s);
  };
  auto mem_log = [&](const std::string& phase) {
    if (!opt.log_memory) return;
    MemStats m = read_mem_stats();
    log(cat("memory: ", phase, ": RSS ", format_bytes(m.rss_bytes), ", peak ", format_bytes(m.peak_bytes)));
  };
  // Locked before anything is planned: planning an output clears a leftover temporary folder,
  // which may be another live run's.
  const std::filesystem::path run_work_dir = opt.work_dir.empty() ? default_work_dir(opt.output_dir) : opt.work_dir;
  const std::filesystem::path work_dir = rank_work_dir(run_work_dir, comm);
  std::optional<RunLock> out_lock, work_lock;
  if (lead) out_lock.emplace(opt.output_dir, "output folder", log);
  if (!out_lock || lock_path_for(work_dir) != out_lock->path()) work_lock.emplace(work_dir, "work dir", log);
  Decoder d(opt.model_dir);
  const ModelConfig& cfg = d.config();
  const SafetensorsReader& src = d.reader();
  RunSetup s = run_setup(opt, d, log);
  OutputSet* outputs = s.outputs.get();  // rank 0 only
  QuantizeReport rep;
  rep.processes = comm.size();
  if (outputs) {
    rep.outputs = outputs->paths();
    rep.kept_16bit = outputs->kept_16bit();
  }
  const int64_t L = cfg.num_hidden_layers, T = opt.seqlen;

  // The work directory and the memory plan.
  std::error_code ec;
  std::filesystem::create_directories(work_dir, ec);
  if (ec) AR_THROW(work_dir.string(), ": cannot create the work directory: ", ec.message());
  WorkDirGuard work_guard(work_dir, log);
  const MemoryPlan plan = plan_memory(opt, s, d, work_dir);
  rep.plan = plan.text;
  log(plan.text);
  // Every process tunes the same groups (their gradients are summed group by group).
  s.tune_opts.expert_groups = int(comm.max(int64_t(plan.expert_groups)));
  s.tune_opts.hold_step_weights = plan.hold_step_weights;  // the same bits either way: no agreement needed
  if (opt.resume && !plan.checkpoint && s.calib)
    AR_THROW("--resume: this run's plan keeps no checkpoint (not enough disk in ", work_dir.string(), ")");

  // Resume: finished blocks come back from their files, the caches from the checkpoint.
  std::optional<CalibStream> cs;
  if (s.calib)
    cs.emplace(cfg, int64_t(s.samples.samples.size()), T, s.with_xq, plan.mode == CacheMode::Disk, work_dir);
  CheckpointManifest man;
  man.identity = run_identity(opt, cfg, src, s.samples.samples);
  man.caches_only = !lead;
  const int64_t start_block = opt.resume ? resume_checkpoint(work_dir, L, cs ? &*cs : nullptr, man, comm, log)
                                         : start_fresh(work_dir, d, s, cs ? &*cs : nullptr);
  rep.resumed_blocks = start_block;
  s.samples.samples.clear();
  s.samples.samples.shrink_to_fit();
  mem_log("calibration caches ready");
  auto block_done = [&](BlockReport b) {
    rep.blocks.push_back(b);
    if (opt.on_block && lead) opt.on_block(b, L);
  };
  for (int64_t l = 0; l < start_block; ++l) {
    if (outputs) replay_block(l, work_dir, man, src, cfg, *outputs);
    block_done({.layer = l, .resumed = true});
  }

  Timer blocks_timer;
  for (int64_t l = start_block; l < L; ++l) {
    Timer bt;
    BlockReport br{.layer = l};
    const bool last = l + 1 == L;
    {
      BlockWeights w = load_block(src, cfg, l);
      mem_log(cat("block ", l, " loaded"));
      const Schemes schemes = s.schemes(w);
      StepContext ctx{cfg, s, schemes, T, plan.stream_targets, last, opt.disable_opt_rtn, opt.precision, mem_log};
      Timer step_timer;
      const BlockResult r = s.tune ? signround_step(w, *cs, ctx, br) : rtn_step(w, cs ? &*cs : nullptr, ctx);
      if (s.tune) rep.tuning_seconds += step_timer.seconds();
      if (s.with_xq && !last) {  // Xq <- block_q(Xq)
        cs->propagate_quantized(w, l, s.tune_opts.precision);
        mem_log(cat("block ", l, " quantized path propagated"));
      }
      if (outputs) {
        outputs->add_block(l, r, &w);
        mem_log(cat("block ", l, " written"));
      }
      if (s.tune) rep.tuning_steps += int64_t(s.tune_opts.iters) * br.expert_groups;
      // Checkpoint: the block's result, then the next block's caches, then the manifest (last,
      // atomically); only then is the previous checkpoint's data removed (in a data-parallel run
      // once every process has written its manifest).
      if (plan.checkpoint) {
        if (lead) {
          man.block_files.push_back(block_file(l));
          man.block_sums.push_back(save_block_result(work_dir / block_file(l), r));
        }
        man.next_block = l + 1;
        if (cs) cs->checkpoint(man, l, last);
        write_manifest(work_dir, man, comm.size() > 1);
        rep.work_dir_peak_bytes = std::max(rep.work_dir_peak_bytes, dir_bytes(work_dir));
        mem_log(cat("block ", l, " checkpointed"));
      }
    }  // block weights and results freed here
    comm.barrier();  // every process has checkpointed this block (each plan decides for itself whether to)
    if (cs) cs->advance(l);
    release_block_pages(src, l);
    log_progress(l, L, start_block, bt, blocks_timer, log, br);
    block_done(br);
    if (!last) throw_if_interrupted("between blocks");
    if (opt.debug_kill_after_block == l) {
      log(cat("debug: killing the process after block ", l, " (--debug_kill_after_block)"));
      ::kill(::getpid(), SIGKILL);
    }
  }
  if (cs) cs->clear();
  QuantStats qs;
  std::filesystem::path eval_model;
  if (outputs) {
    outputs->finish();
    qs = outputs->stats();
    eval_model = outputs->eval_path();
    s.outputs.reset();
  }
  // The outputs are complete: the checkpoint has served its purpose. Rank 0's work dir holds the
  // others', so it goes last.
  comm.barrier();
  if (!lead) {
    remove_work_files(work_dir);
    work_guard.release();
    work_lock.reset();
  }
  comm.barrier();
  if (lead) {
    remove_work_files(work_dir);
    work_guard.release();
  }
  for (const auto& o : rep.outputs) rep.output_bytes.push_back(folder_bytes(o));
  rep.quantized_layers = qs.layers;
  rep.bits_per_weight = qs.weights > 0 ? qs.bits / qs.weights : 0;
  if (!opt.eval_dataset.empty() && lead) evaluate_outputs(opt, d, eval_model, log, rep);
  rep.comm = comm.stats();
  rep.seconds = total.seconds();
  rep.peak_rss_bytes = read_mem_stats().peak_bytes;
  rep.peak_rss_largest_rank = uint64_t(comm.max(int64_t(rep.peak_rss_bytes)));
  return rep;
}

}  // namespace ar
