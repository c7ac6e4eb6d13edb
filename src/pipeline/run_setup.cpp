#include "pipeline/run_setup.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "calib/tokenizer.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/log.h"
#include "io/safetensors.h"
#include "io/work_file.h"
#include "kernels/gemm.h"
#include "export/output_format.h"
#include "model/block_specs.h"
#include "pipeline/calib_stream.h"
#include "pipeline/quantize.h"
#include "quant/gguf_tune.h"

namespace ar {

void check_fp_scheme_supported(const QuantizeOptions& opt, const QuantScheme& s, const std::string& what) {
  if (!s.quantized()) return;
  const std::string where = what.empty() ? "" : " (" + what + ")";
  // Every format must be able to store the scheme: refused here, before any work.
  for (const std::string& f : opt.formats) {
    if (parse_gguf_format(f)) continue;
    const std::string why = format_scheme_problem(parse_output_format(f), s);
    if (!why.empty()) AR_THROW("--format ", f, " cannot store ", scheme_label(s), " weights", where, ": ", why);
  }
  if (!s.is_fp()) return;
  const char* name = data_type_name(s.data_type);
  for (const std::string& f : opt.formats)
    if (parse_gguf_format(f))
      AR_THROW("--format ", f, " cannot store ", name, " weights", where,
               ": a GGUF file holds ggml block types; use --format auto_round or fake for ", name);
}

void check_quantize_options(const QuantizeOptions& opt) {
  const SignRoundOptions& so = opt.tune;
  const bool tune = so.iters > 0;
  const QuantScheme& q = opt.scheme;
  if (q.is_fp()) {
    // The library's callers (Python) may set data_type next to other values: the format fixes them.
    const QuantScheme want = fp_scheme(q.data_type);
    if (q.bits != want.bits || q.group_size != want.group_size || !q.sym)
      AR_THROW("scheme ", data_type_name(q.data_type), " stores ", want.bits, "-bit weights in groups of ",
               want.group_size, ", symmetric; got bits ", q.bits, ", group_size ", q.group_size, q.sym ? "" : ", asym");
  } else if (q.bits != 2 && q.bits != 3 && q.bits != 4 && q.bits != 8) {
    AR_THROW("--bits ", q.bits, ": supported are 2, 3, 4, 8");
  }
  if (q.group_size != -1 && q.group_size <= 0)
    AR_THROW("--group_size ", q.group_size, ": use -1 or a positive size");
  if (opt.nsamples <= 0) AR_THROW("--nsamples ", opt.nsamples, " must be positive");
  if (opt.seqlen <= 0) AR_THROW("--seqlen ", opt.seqlen, " must be positive");
  if (opt.eval_seqlen <= 0) AR_THROW("--eval_seqlen ", opt.eval_seqlen, " must be positive");
  if (opt.max_shard_bytes == 0) AR_THROW("--max_shard_size must be positive");
  if (so.lr < 0 || so.minmax_lr < 0) AR_THROW("--lr and --minmax_lr must not be negative");
  if (so.iters < 0) AR_THROW("--iters ", so.iters, " must be >= 0");
  if (int(!opt.dataset.empty()) + int(!opt.dataset_texts.empty()) + int(!opt.dataset_ids.empty()) > 1)
    AR_THROW("calibration data: give one of a dataset file, texts or token ids, not several");
  if (tune && !opt.has_dataset())
    AR_THROW("SignRound tuning (--iters ", so.iters, ") needs calibration data: pass --dataset FILE (text, "
             ".jsonl or token ids; 'builtin' for the built-in demo text), or --iters 0 for RTN");
  if (tune && (so.batch_size <= 0 || so.gradient_accumulate_steps <= 0))
    AR_THROW("--batch_size and --gradient_accumulate_steps must be positive");
  if (opt.formats.empty()) AR_THROW("--format: no output format given");
  if (opt.cache != "auto" && opt.cache != "ram" && opt.cache != "disk")
    AR_THROW("--cache: '", opt.cache, "' is not one of auto, ram, disk");
  if (opt.partitions < 0) AR_THROW("--partitions ", opt.partitions, " must be >= 1 (0: one per process)");
  if (tune && opt.partitions > 1 && opt.partitions > so.batch_size * so.gradient_accumulate_steps)
    AR_THROW("--partitions ", opt.partitions, ": each partition needs a share of every step's batch (--batch_size ",
             so.batch_size, ")");
  if (opt.stream_loss && !tune) AR_THROW("--stream_loss applies to SignRound tuning only (--iters > 0)");
  check_fp_scheme_supported(opt, q, "");
}

QuantizeOptions checked_options(const QuantizeOptions& given) {
  check_quantize_options(given);
  QuantizeOptions opt = given;
  const int procs = opt.comm ? opt.comm->size() : 1;
  opt.tune.partitions = opt.partitions ? opt.partitions : procs;
  if (procs > 1 && opt.tune.partitions != procs)
    AR_THROW("--partitions ", opt.partitions, ": a run of ", procs, " processes has one sample partition per process (",
             "leave --partitions out)");
  opt.tune.precision = opt.amp == Amp::On || (opt.amp == Amp::Auto && gemm_has_native_bf16())
                           ? Precision::BF16
                           : Precision::F32;
  return opt;
}

bool layer_config_is_file(const QuantizeOptions& opt) {
  std::error_code ec;
  return !opt.layer_config.empty() && opt.layer_config.find('{') == std::string::npos &&
         std::filesystem::exists(opt.layer_config, ec);
}

namespace {

LayerConfig make_layer_config(const QuantizeOptions& opt) {
  if (opt.layer_config.empty()) return LayerConfig(opt.scheme);
  if (layer_config_is_file(opt)) return LayerConfig::load(opt.layer_config, opt.scheme);
  return LayerConfig::parse(opt.layer_config, opt.scheme, "--layer_config");
}

// Rank r of N keeps samples [n*r/N, n*(r+1)/N): the partition the tuner gives it (SignRoundOptions::partitions).
void shard_samples(RunSetup& s, Comm& comm, const std::function<void(const std::string&)>& log) {
  const int64_t N = comm.size(), r = comm.rank(), n = s.samples_total;
  if (N == 1) return;
  if (n < N) AR_THROW(n, " calibration samples cannot be shared by ", N, " processes: give at least ", N);
  auto& v = s.samples.samples;
  const int64_t b = n * r / N, e = n * (r + 1) / N;
  v.erase(v.begin() + e, v.end());
  v.erase(v.begin(), v.begin() + b);
  log(cat("data-parallel: ", N, " processes share the ", n, " calibration samples (", n / N, (n % N ? "-" : ""),
          (n % N ? std::to_string(n / N + 1) : ""), " each)"));
}

}  // namespace

Schemes RunSetup::schemes(const BlockWeights& w) const {
  Schemes sch(static_cast<size_t>(block_linear_count(w)));
  for (int i = 0; i < block_linear_count(w); ++i) {
    if (!block_linears(w, i)->present()) {  // a slot a fused linear leaves empty: nothing to quantize
      sch[size_t(i)].bits = 16;
      continue;
    }
    const std::string& name = block_linears(w, i)->name;
    sch[size_t(i)] = layers.scheme_for(name);
    if (!tune_gguf) continue;
    const auto planned = gguf_types.find(name);
    AR_CHECK(planned != gguf_types.end(), name, " has no planned GGUF type");
    const GgmlType t = planned->second;
    if (gguf_tunable(t)) sch[size_t(i)].gguf = t;  // bits/group_size/sym no longer apply
    else sch[size_t(i)].bits = 16;                  // F16/F32 (and row-length fallbacks to them) stay as they are
  }
  return sch;
}

RunSetup run_setup(const QuantizeOptions& opt, const Decoder& d, const std::function<void(const std::string&)>& log) {
  const ModelConfig& cfg = d.config();
  const SafetensorsReader& src = d.reader();
  if (!cfg.quantization_config.empty())
    AR_THROW(opt.model_dir.string(), ": the model is already quantized (config.json has quantization_config)");
  RunSetup s;
  s.layers = make_layer_config(opt);
  std::vector<std::string> linear_names;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
    for (const BlockTensorSpec& t : block_tensor_specs(cfg, l))
      if (t.quantizable()) linear_names.push_back(t.module);
  for (const auto& key : s.layers.unmatched_rules(linear_names))
    log("warning: --layer_config rule '" + key + "' matches no layer");
  // Every layer's scheme resolves (layer config contradictions name the layer) and can be made and
  // stored by this run, before any work.
  bool any_int = false, any_fp = false;
  for (const std::string& n : linear_names) {
    const QuantScheme sc = s.layers.scheme_for(n);
    check_fp_scheme_supported(opt, sc, cat("layer '", n, "'"));
    (sc.is_fp() ? any_fp : any_int) |= sc.quantized();
  }

  // Calibration samples: importance for optimized RTN, or the inputs/targets of SignRound.
  s.tune = opt.tune.iters > 0;
  // The floating-point formats get plain RTN, which needs no importance.
  s.use_imp = !s.tune && opt.has_dataset() && !opt.disable_opt_rtn && (any_int || !any_fp);
  s.calib = s.use_imp || s.tune;
  s.with_xq = s.tune && opt.enable_quanted_input;
  Comm& comm = opt.comm ? *opt.comm : single_process_comm();
  s.comm = &comm;
  if (comm.rank() == 0)
    s.outputs = std::make_unique<OutputSet>(opt, src, cfg, s.layers, linear_names, s.calib, s.use_imp, log);
  bool any_gguf = false;
  for (const std::string& f : opt.formats) (parse_gguf_format(f) ? any_gguf : s.integer_formats) = true;

  // SignRound for a single GGUF output tunes every linear under its planned GGUF block format, so
  // the tuned rounding is exactly what the file stores; next to other formats it tunes the
  // --bits/--group_size scheme and the GGUF writer re-quantizes the tuned weights.
  s.tune_gguf = s.tune && opt.formats.size() == 1 && any_gguf;
  // Under a GGUF format the clipping factors stay at 1 unless asked for: the format's own scale
  // search already placed each sub-block's range, and tuning it as well made qwen3-student worse
  // (q2_k_s, 100 steps: TinyStories ppl 6.105 with it, 5.976 rounding only; RTN+importance 6.071).
  s.tune_opts = opt.tune;
  if (s.tune_gguf && !opt.gguf_minmax_tuning) s.tune_opts.enable_minmax_tuning = false;
  if (s.tune_gguf) {
    // Rank 0 planned the GGUF file; every process tunes under the same types.
    std::string planned;
    if (s.outputs) {
      nlohmann::json j;
      for (const std::string& n : linear_names) j[n] = int(s.outputs->sole_gguf()->planned_type(n + ".weight"));
      planned = j.dump();
    }
    comm.broadcast(planned);
    const nlohmann::json j = nlohmann::json::parse(planned);
    for (auto it = j.begin(); it != j.end(); ++it) s.gguf_types[it.key()] = GgmlType(it.value().get<int>());
  }
  if (s.tune && any_gguf && !s.tune_gguf)
    log("note: gguf: with other formats in the same run SignRound tunes the --bits/--group_size scheme; the "
        "tuned weights are then quantized to the GGUF mix's types (run the GGUF format alone to tune under it)");
  if (!s.tune && opt.has_dataset() && opt.disable_opt_rtn)
    log("note: --dataset is not used by plain RTN (--disable_opt_rtn)");
  else if (!s.tune && opt.has_dataset() && !s.use_imp)
    log("note: --dataset is not used: the floating-point schemes are quantized by plain RTN");
  if (s.calib) {
    const CalibOptions co{opt.nsamples, opt.seqlen, opt.tune.seed};
    if (!opt.dataset_ids.empty()) {
      s.samples = build_calib_set(opt.dataset_ids, co);  // ids outside the vocabulary: Decoder::embed names them
    } else {
      Tokenizer tok = Tokenizer::load(opt.model_dir);
      s.samples = opt.dataset_texts.empty() ? build_calib_set(opt.dataset, &tok, co)
                                            : build_calib_set_from_texts(opt.dataset_texts, tok, co);
    }
    log("calibration: " + s.samples.note);
    s.samples_total = int64_t(s.samples.samples.size());
    const int64_t picks = std::min<int64_t>(opt.tune.batch_size, s.samples_total) * opt.tune.gradient_accumulate_steps;
    if (s.tune && (s.samples_total < opt.tune.partitions || picks < opt.tune.partitions))
      AR_THROW(opt.tune.partitions, " sample partitions (processes) need at least ", opt.tune.partitions,
               " calibration samples and a batch of at least as many; this run has ", s.samples_total,
               " samples and batches of ", picks);
    shard_samples(s, comm, log);
  }
  return s;
}

MemoryPlan plan_memory(const QuantizeOptions& opt, const RunSetup& s, const Decoder& d,
                       const std::filesystem::path& work_dir) {
  const ModelConfig& cfg = d.config();
  const SafetensorsReader& src = d.reader();
  const int64_t T = opt.seqlen, n_calib = int64_t(s.samples.samples.size());
  const size_t sample_floats = size_t(T * cfg.hidden_size);
  const BlockWeights shapes0 = block_shapes(cfg, largest_block_layer(cfg));  // MoE models: blocks differ
  const Schemes schemes0 = s.schemes(shapes0);
  uint64_t max_result = 0, bf16_saving = 0;
  for (int i = 0; i < block_linear_count(shapes0); ++i) {
    const LinearWeights& l = *block_linears(shapes0, i);
    max_result += uint64_t(l.in * l.out) + 64;
    // An owning tuner keeps a bf16 checkpoint's quantized linears as bf16 (BlockTuner).
    const TensorInfo* ti = src.find(l.name + ".weight");
    if (schemes0[size_t(i)].quantized() && ti && ti->dtype == DType::BF16) bf16_saving += uint64_t(l.in * l.out) * 2;
  }
  PlanInputs pin;
  // + allocator, thread-stack and library slack: a 4B-shaped run with RAM caches predicted at 2.00 GiB
  // peaked 5 MiB above the prediction with 32 MiB of slack. The GEMM's per-thread tile staging
  // grew with fatter tiles (8 per product, session 15): a 4B-shaped run at --max_ram 1800M peaked
  // 10 MiB above its 1.76 GiB prediction with 64 MiB, so 96.
  pin.base_bytes = read_mem_stats().rss_bytes + (96ull << 20);
  // Caches held at once: X (which becomes the targets in place) and Xq; without quantized inputs
  // the fp inputs and the targets are both needed, unless targets are streamed.
  pin.cache_bytes = uint64_t(n_calib) * sample_floats * sizeof(float);
  pin.caches = !s.calib ? 0 : s.use_imp ? 1 : 2;
  pin.caches_streamed = s.tune ? (s.with_xq ? 2 : 1) : 0;
  pin.result_bytes = max_result * uint64_t(cfg.num_hidden_layers);
  const uint64_t avail = available_memory_bytes();
  pin.max_ram = opt.max_ram ? opt.max_ram : (avail ? avail / 10 * 8 : UINT64_MAX);
  pin.free_disk = free_disk_bytes(work_dir);
  if (opt.max_disk) pin.free_disk = std::min(pin.free_disk, opt.max_disk);
  pin.allow_disk = opt.low_cpu_mem_usage && opt.cache != "ram";
  pin.force_stream = opt.stream_loss;
  pin.checkpoint = opt.checkpoint;
  pin.allow_ram = opt.cache != "disk";

  // The block's weights and the working set of the larger phase: tuning (weights compacted to
  // bf16 where exact) or a calibration pass (f32 weights, inference scratch; after tuning also
  // the block's results and, on the quantized path, its dense weights in bf16).
  const uint64_t block_f32 = block_f32_bytes(cfg);
  const uint64_t writer_bytes = s.outputs ? s.outputs->block_buffer_bytes(largest_block_layer(cfg)) : 0;
  // With the quantized path, its pass after tuning also holds the dense weights in bf16: the most
  // any block has (a mixed model's dense blocks can have wider MLPs than its largest block).
  uint64_t propagate_bytes = 0;
  for (int64_t l = 0; s.with_xq && l < cfg.num_hidden_layers; ++l)
    propagate_bytes = std::max(propagate_bytes, CalibStream::propagate_bytes(block_shapes(cfg, l), s.tune_opts.precision));
  const uint64_t pass_bytes = (s.calib ? BlockScratch::size_bytes(cfg, T) + 2 * sample_floats * sizeof(float) : 0) +
                              (s.tune ? max_result : 0) + writer_bytes +
                              propagate_bytes;
  // The tuner's options as it will see them; a batch above the sample count draws each sample once.
  auto tune_options = [&](int groups) {
    SignRoundOptions o = s.tune_opts;
    o.expert_groups = groups;
    if (s.samples_total > 0) o.batch_size = int(std::min<int64_t>(o.batch_size, s.samples_total));
    return o;
  };
  auto with_groups = [&](int groups, bool hold = false) {
    SignRoundOptions o = tune_options(groups);
    o.hold_step_weights = hold;
    const uint64_t tune_bytes = s.tune ? BlockTuner::state_bytes(shapes0, cfg, schemes0, T, o) : 0;
    PlanInputs p = pin;
    const uint64_t held = s.tune ? BlockTuner::held_step_bytes(shapes0, cfg, schemes0, T, o) : 0;
    if (held > 0) p.note += cat("  each step's dense W' made once and held, in bf16 (", format_bytes(held), ")\n");
    if (s.tune && block_f32 - bf16_saving + tune_bytes > block_f32 + pass_bytes) {
      p.block_bytes = block_f32 - bf16_saving;
      p.work_bytes = tune_bytes;
    } else {
      p.block_bytes = block_f32;
      p.work_bytes = pass_bytes;
    }
    return p;
  };
  // Holding the step's W' (SignRoundOptions::hold_step_weights) is a speed-up, never worth a
  // worse strategy: kept when the plan with it is the plan without it, else dropped.
  auto maybe_hold = [&](int groups, const std::string& groups_note, MemoryPlan without) {
    const bool wanted = s.tune && s.tune_opts.hold_step_weights &&
                        BlockTuner::held_step_bytes(shapes0, cfg, schemes0, T, tune_options(groups)) > 0;
    if (wanted) {
      PlanInputs in = with_groups(groups, true);
      in.note = groups_note + in.note;
      std::optional<MemoryPlan> with = try_choose_plan(in);
      if (with && with->mode == without.mode && with->stream_targets == without.stream_targets &&
          with->checkpoint == without.checkpoint) {
        with->expert_groups = without.expert_groups;
        return *with;
      }
    }
    without.hold_step_weights = false;
    return without;
  };
  // MoE tuning: the experts go in as few groups as fit the budget (SignRoundOptions::expert_groups).
  const int experts = int(shapes0.experts.size() / 3);
  if (!s.tune || experts == 0) return maybe_hold(1, "", choose_plan(with_groups(1)));
  int groups = opt.expert_groups > 0 ? expert_group_count(shapes0, opt.expert_groups) : 1;
  std::optional<MemoryPlan> plan;
  if (opt.expert_groups == 0)
    for (; groups < experts && !(plan = try_choose_plan(with_groups(groups))); ++groups) {
    }
  PlanInputs in = with_groups(groups);
  const uint64_t one_group = with_groups(1).work_bytes;
  const char* why = opt.expert_groups > 0           ? "--expert_groups"
                    : plan || try_choose_plan(in)   ? "the fewest that fit the budget"
                                                    : "one expert per group, the most there can be, and still over the budget";
  const std::string groups_note = groups == 1 ? cat("  experts tuned all at once (", experts, " per MoE block)\n")
                        : cat("  experts tuned in ", groups, " groups of ~", (experts + groups - 1) / groups, " (", why,
                              "; all at once the working set is ", format_bytes(one_group), "); each group runs ",
                              s.tune_opts.iters, s.tune_opts.iters == 1 ? " step\n" : " steps\n");
  in.note = groups_note + in.note;
  MemoryPlan p = choose_plan(in);
  p.expert_groups = groups;
  return maybe_hold(groups, groups_note, p);
}

}  // namespace ar
