// `autoround quantize` (also the default when the first argument is a flag): flags follow the
// Python AutoRound CLI so its users feel at home. Every option is bound to its QuantizeOptions
// field, so the defaults shown by --help are the library's own; the checks live in the pipeline
// (check_quantize_options), the presets in recipes.h, the GGUF mixes in gguf_mix.h.
#include <cctype>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/memory.h"
#include "export/gguf_mix.h"
#include "pipeline/quantize.h"
#include "pipeline/recipes.h"

namespace ar::cli {

namespace {

// What the CLI reads that is not one QuantizeOptions field.
struct CliExtras {
  std::string format = "auto_round", recipe, scheme;
  bool asym = false, sym = false, amp = false, disable_amp = false;
};

std::vector<std::string> split_formats(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string format_help() {
  std::string mixes;
  for (const GgufMixInfo& m : gguf_mixes()) mixes += cat(mixes.empty() ? "" : ", ", m.name);
  return "auto_round, auto_gptq, auto_awq, fake, llm_compressor (compressed-tensors), or gguf:<mix> (a llama.cpp GGUF "
         "file; mixes " + mixes +
         "); comma-separated for several";
}

void log_start(const QuantizeOptions& o, const CliExtras& x) {
  // A GGUF-only run takes its weights' layout from the mix, not from --bits / --group_size.
  std::string first = o.formats.empty() ? std::string() : o.formats[0];
  for (char& c : first) c = char(std::tolower(static_cast<unsigned char>(c)));
  const bool gguf_only = o.formats.size() == 1 && first.starts_with("gguf:");
  const QuantScheme& q = o.scheme;
  const std::string scheme = gguf_only ? std::string() : scheme_label(q) + "  ";
  const std::string method = o.tune.iters > 0     ? cat("SignRound ", o.tune.iters, " iters")
                             : o.disable_opt_rtn ? std::string("RTN")
                             : q.is_fp()         ? std::string("RTN (the optimized-RTN search is for integer schemes)")
                                                 : std::string("optimized RTN");
  start_run();
  log_info("quantize: ", o.model_dir.string(), " -> ", o.output_dir.string(), "  ", scheme, method, "  format ",
           x.format);
}

void print_report(const QuantizeOptions& o, const QuantizeReport& r) {
  if (process_comm().rank() != 0) return;  // rank 0 reports for the run
  std::printf("quantized %lld linear layers in %.1f s\n", (long long)r.quantized_layers, r.seconds);
  for (size_t i = 0; i < r.outputs.size(); ++i)
    std::printf("output: %s (%s)\n", r.outputs[i].c_str(), format_bytes(r.output_bytes[i]).c_str());
  if (r.resumed_blocks) std::printf("resumed: %lld blocks came from the checkpoint\n", (long long)r.resumed_blocks);
  if (r.work_dir_peak_bytes) std::printf("work dir peak: %s\n", format_bytes(r.work_dir_peak_bytes).c_str());
  if (r.quantized_layers > 0)
    std::printf("bits per weight (quantized linears, incl. scales and zeros): %.3f\n", r.bits_per_weight);
  else
    std::printf("bits per weight: n/a (no linear layer was quantized)\n");
  if (!o.eval_dataset.empty())
    std::printf("perplexity: original %.4f  quantized %.4f  (%+.2f %%)\n", r.ppl_original, r.ppl_quantized,
                100.0 * (r.ppl_quantized / r.ppl_original - 1.0));
  if (r.tuning_steps > 0)
    std::printf("SignRound: %lld steps, %.3f s per step (block steps incl. their target passes)\n",
                (long long)r.tuning_steps, r.tuning_seconds / double(r.tuning_steps));
  if (r.processes > 1) {
    const double steps = double(std::max<int64_t>(r.tuning_steps, 1));
    std::printf("data-parallel: %d processes; rank 0 sent+received %s in %llu collective operations, %.1f s in them "
                "(%s and %.3f s per SignRound step); largest peak RSS of a rank %s\n",
                r.processes, format_bytes(r.comm.bytes).c_str(), (unsigned long long)r.comm.operations, r.comm.seconds,
                format_bytes(uint64_t(double(r.comm.bytes) / steps)).c_str(), r.comm.seconds / steps,
                format_bytes(r.peak_rss_largest_rank).c_str());
  }
  std::fflush(stdout);
  std::fprintf(stderr, "current RSS (VmRSS): %s\n", format_bytes(read_mem_stats().rss_bytes).c_str());
  print_peak_memory();
}

void run(QuantizeOptions o, const CliExtras& x, const CLI::App& sub) {
  if (!x.recipe.empty())
    apply_recipe(o, x.recipe, [&](std::string_view flag) { return sub.count(std::string(flag)) > 0; });
  if (x.asym && x.sym) AR_THROW("--sym and --asym contradict each other");
  if (x.sym && x.scheme.empty())
    log_info("note: --sym is accepted for older AutoRound scripts; symmetric is already the default");
  if (!x.scheme.empty()) {
    // --bits / --group_size / --asym given next to an integer preset override it (AutoRound's rule);
    // next to a floating-point format they must agree with it (resolve_scheme).
    SchemeOverrides given;
    if (sub.count("--bits")) given.bits = o.scheme.bits;
    if (sub.count("--group_size")) given.group_size = o.scheme.group_size;
    if (x.asym || x.sym) given.sym = !x.asym;
    o.scheme = resolve_scheme(x.scheme, given);
  } else {
    o.scheme.sym = !x.asym;
  }
  if (x.amp && x.disable_amp) AR_THROW("--amp and --disable_amp contradict each other");
  o.amp = x.amp ? Amp::On : x.disable_amp ? Amp::Off : Amp::Auto;
  o.formats = split_formats(x.format);
  o.log = [](const std::string& s) { log_info(s); };
  o.comm = &process_comm();
  if (o.comm->rank() == 0) log_start(o, x);
  const InterruptScope stop_on_signal;  // Ctrl-C / SIGTERM: stop at the next safe point, keep the checkpoint
  print_report(o, run_quantize(o));
}

// "5GB" / "512M" -> bytes, into `dst`.
CLI::Option* add_bytes(CLI::App* s, const std::string& name, uint64_t& dst, const std::string& help) {
  return s->add_option_function<std::string>(name, [&dst, name](const std::string& v) { dst = parse_bytes(v, name); },
                                              help);
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  auto x = std::make_shared<CliExtras>();
  o->output_dir = "./tmp_autoround";  // AutoRound's CLI default
  auto* s = app.add_subcommand("quantize", "Quantize a HuggingFace model (SignRound / optimized RTN / RTN), streaming block by block");
  auto def = [](CLI::Option* opt) { return opt->capture_default_str(); };
  s->add_option("--model,--model_name", o->model_dir, "HuggingFace model folder")->required();
  def(s->add_option("--output_dir", o->output_dir, "output folder (several formats: one subfolder each)"));
  s->add_option("--format", x->format, format_help())->default_str(x->format);
  // The scheme.
  s->add_option("--scheme", x->scheme,
                "weight scheme by AutoRound's name: " + scheme_names_help() +
                    " (case-insensitive); --bits/--group_size/--asym given too override an integer scheme and must "
                    "agree with a floating-point one, whose bits and blocks are fixed");
  def(s->add_option("--bits", o->scheme.bits, "2, 3, 4 or 8"));
  def(s->add_option("--group_size", o->scheme.group_size, "weights per scale along in_features; -1 = whole row"));
  s->add_flag("--asym", x->asym, "asymmetric quantization (default: symmetric)");
  s->add_flag("--sym", x->sym, "symmetric quantization: the default, accepted for older AutoRound scripts");
  s->add_option("--layer_config", o->layer_config, "JSON (file or text): layer names/regexes -> bits, group_size, sym (in GGUF: bits pick the layer's type)");
  s->add_flag("--disable_opt_rtn", o->disable_opt_rtn, "plain RTN instead of the optimized scale search");
  // Tuning.
  def(s->add_option("--iters", o->tune.iters, "SignRound steps per block (0 = RTN / optimized RTN)"));
  s->add_option("--recipe", x->recipe, recipes_help() + "; options given explicitly win");
  def(s->add_option("--batch_size", o->tune.batch_size, "samples per SignRound step"));
  def(s->add_option("--gradient_accumulate_steps", o->tune.gradient_accumulate_steps, "batches per step"));
  def(s->add_option("--partitions", o->partitions,
                    "sample partitions SignRound draws each batch from, gradients added in partition order (0: one per "
                    "MPI process); a single process with --partitions N writes what mpirun -np N writes"));
  s->add_option("--lr", o->tune.lr, "learning rate of the rounding (default 1/iters)");
  s->add_option("--minmax_lr", o->tune.minmax_lr, "learning rate of min/max scales (default: --lr)");
  s->add_flag("!--disable_minmax_tuning", o->tune.enable_minmax_tuning, "tune only the rounding, not the clipping");
  s->add_option("--clamp_grad", o->tune.clamp_grad,
                "gradient at a quantizer clamp's bound: strict (0 there, as AutoRound on today's torch; default) or "
                "inclusive (passed, SPEC section 2)")
      ->transform(CLI::CheckedTransformer(std::map<std::string, ClampGrad>{{"strict", ClampGrad::Strict},
                                                                           {"inclusive", ClampGrad::Inclusive}},
                                         CLI::ignore_case));
  s->add_flag("!--nvfp4_per_layer_global_scale", o->tune.nvfp4_fused_global_scale,
             "NVFP4: each linear its own global scale (default: q/k/v and gate/up share one, as vLLM's fused layers "
             "need and AutoRound writes)");
  s->add_flag("--gguf_minmax_tuning", o->gguf_minmax_tuning, "gguf:<mix> with --iters: tune the sub-block clipping too (default: the rounding only)");
  s->add_flag("!--disable_quanted_input", o->enable_quanted_input, "tune each block on full-precision inputs");
  s->add_flag("--amp", x->amp, "SignRound matmuls with bf16 inputs even where bf16 is emulated (slower here)");
  s->add_flag("--disable_amp", x->disable_amp, "SignRound matmuls in fp32 even where the CPU has native bf16 (default: bf16 there, fp32 elsewhere)");
  // Calibration.
  s->add_option("--dataset", o->dataset, "calibration data: SignRound samples, or importance for optimized RTN (or 'builtin')");
  def(s->add_option("--nsamples", o->nsamples, "calibration samples"));
  def(s->add_option("--seqlen", o->seqlen, "calibration sample length"));
  def(s->add_option("--seed", o->tune.seed, "seed of the calibration shuffle and the SignRound sampler"));
  // Output and evaluation.
  add_bytes(s, "--max_shard_size", o->max_shard_bytes, "output shard limit")->default_str("5GB");
  s->add_flag("--overwrite", o->overwrite, "replace an existing output folder");
  s->add_option_function<std::string>("--precision", [o](const std::string& v) {
    if (v == "bf16") o->precision = Precision::BF16;
    else if (v == "f32") o->precision = Precision::F32;
    else AR_THROW("--precision: '", v, "' is not one of f32, bf16");
  }, "matmul precision for calibration / eval: f32 or bf16")->default_str("f32");
  s->add_option("--eval", o->eval_dataset, "evaluate original and quantized perplexity on this file (or 'builtin') at the end");
  def(s->add_option("--eval_seqlen", o->eval_seqlen, "window length for --eval"));
  // Memory, work dir, checkpoints.
  s->add_option("--work_dir", o->work_dir, "folder for spilled activation caches and checkpoints (default: <output_dir>.autoround_work)");
  def(s->add_option("--cache", o->cache, "where calibration activations live: auto (by the memory plan), ram, disk"));
  s->add_flag("--stream_loss", o->stream_loss, "recompute each batch's targets with the original block instead of caching them");
  add_bytes(s, "--max_ram", o->max_ram, "RAM budget, e.g. 2G (default: 80 % of available memory); the plan is printed");
  s->add_option("--expert_groups", o->expert_groups,
                "MoE: tune each block's experts in this many groups, one after another (0 = the fewest that fit --max_ram)")
      ->check(CLI::NonNegativeNumber);
  s->add_flag("--low_cpu_mem_usage,!--disable_low_cpu_mem_usage", o->low_cpu_mem_usage, "allow spilling activation caches to the work dir (default on)");
  add_bytes(s, "--max_disk", o->max_disk, "cap on the work dir's disk use (default: its free space)");
  s->add_flag("--log_memory", o->log_memory, "print RSS after every phase of every block");
  s->add_flag("--resume", o->resume, "continue an interrupted run from its checkpoint in the work dir");
  s->add_flag("!--disable_checkpoint", o->checkpoint, "keep no resumable checkpoint");
  s->add_option("--debug_kill_after_block", o->debug_kill_after_block, "")->group("");  // tests: kill -9 ourselves
  s->callback([o, x, s] { run(*o, *x, *s); });
}

}  // namespace ar::cli
