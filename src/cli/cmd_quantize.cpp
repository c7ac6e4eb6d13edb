// `autoround quantize` (also the default when the first argument is a flag): flags follow the
// Python AutoRound CLI so its users feel at home.
#include <cctype>
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"
#include "kernels/gemm.h"
#include "pipeline/quantize.h"

namespace ar::cli {

namespace {
struct QuantArgs {
  std::string model, output_dir = "./tmp_autoround", format = "auto_round", layer_config, dataset;
  int bits = 4;
  int64_t group_size = 128;
  bool asym = false;
  bool disable_opt_rtn = false, disable_minmax_tuning = false, disable_quanted_input = false, disable_amp = false,
       amp = false;
  int64_t iters = 200, nsamples = 128, seqlen = 2048, eval_seqlen = 2048, batch_size = 8;
  int gradient_accumulate_steps = 1;
  double lr = 0, minmax_lr = 0;
  uint64_t seed = 42;
  std::string max_shard_size = "5GB", recipe, precision = "f32", eval;
  bool overwrite = false;
  std::string work_dir, cache = "auto", max_ram, max_disk;
  bool stream_loss = false, low_cpu_mem_usage = true, log_memory = false, resume = false, disable_checkpoint = false;
  int64_t debug_kill_after_block = -1;
  bool gguf_minmax_tuning = false;
};

std::vector<std::string> split_formats(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Recipes as the Python tool defines them; explicit flags given with a recipe still win.
void apply_recipe(QuantArgs& a, const CLI::App& sub) {
  if (a.recipe.empty()) return;
  auto unset = [&](const char* flag) { return sub.count(flag) == 0; };
  if (a.recipe == "rtn") {
    if (unset("--iters")) a.iters = 0;
  } else if (a.recipe == "default") {
  } else if (a.recipe == "best") {
    if (unset("--iters")) a.iters = 1000;
    if (unset("--nsamples")) a.nsamples = 512;
  } else if (a.recipe == "light") {
    if (unset("--iters")) a.iters = 50;
    if (unset("--lr")) a.lr = 5e-3;
  } else {
    AR_THROW("--recipe: '", a.recipe, "' is not one of default, best, light, rtn");
  }
}

void run(QuantArgs a, const CLI::App& sub) {
  apply_recipe(a, sub);
  if (a.bits != 2 && a.bits != 3 && a.bits != 4 && a.bits != 8)
    AR_THROW("--bits ", a.bits, ": supported are 2, 3, 4, 8");
  if (a.group_size != -1 && a.group_size <= 0) AR_THROW("--group_size ", a.group_size, ": use -1 or a positive size");
  QuantizeOptions o;
  o.model_dir = a.model;
  o.output_dir = a.output_dir;
  o.formats = split_formats(a.format);
  o.scheme = QuantScheme{a.bits, a.group_size, !a.asym};
  o.layer_config = a.layer_config;
  o.disable_opt_rtn = a.disable_opt_rtn;
  o.tune.iters = int(a.iters);
  o.tune.batch_size = a.batch_size;
  o.tune.gradient_accumulate_steps = a.gradient_accumulate_steps;
  o.tune.lr = a.lr;
  o.tune.minmax_lr = a.minmax_lr;
  o.tune.enable_minmax_tuning = !a.disable_minmax_tuning;
  o.tune.seed = a.seed;
  // bf16 matmuls (the Python tool's CPU amp) where the CPU runs them natively; emulating them on
  // fp32 kernels costs time and gains nothing, so such CPUs tune in fp32.
  if (a.amp && a.disable_amp) AR_THROW("--amp and --disable_amp contradict each other");
  o.tune.precision = a.amp || (!a.disable_amp && gemm_has_native_bf16()) ? Precision::BF16 : Precision::F32;
  o.enable_quanted_input = !a.disable_quanted_input;
  o.dataset = a.dataset;
  o.nsamples = a.nsamples;
  o.seqlen = a.seqlen;
  o.max_shard_bytes = parse_bytes(a.max_shard_size, "--max_shard_size");
  o.overwrite = a.overwrite;
  if (a.precision == "bf16") o.precision = Precision::BF16;
  else if (a.precision != "f32") AR_THROW("--precision: '", a.precision, "' is not one of f32, bf16");
  o.eval_dataset = a.eval;
  o.eval_seqlen = a.eval_seqlen;
  o.log = [](const std::string& s) { log_info(s); };
  o.work_dir = a.work_dir;
  o.cache = a.cache;
  o.stream_loss = a.stream_loss;
  if (!a.max_ram.empty()) o.max_ram = parse_bytes(a.max_ram, "--max_ram");
  if (!a.max_disk.empty()) o.max_disk = parse_bytes(a.max_disk, "--max_disk");
  o.low_cpu_mem_usage = a.low_cpu_mem_usage;
  o.log_memory = a.log_memory;
  o.resume = a.resume;
  o.checkpoint = !a.disable_checkpoint;
  o.debug_kill_after_block = a.debug_kill_after_block;
  o.gguf_minmax_tuning = a.gguf_minmax_tuning;
  // A GGUF-only run takes its weights' layout from the mix, not from --bits / --group_size.
  std::string fmt_low = a.format;
  for (char& c : fmt_low) c = char(std::tolower(static_cast<unsigned char>(c)));
  const bool gguf_only = fmt_low.starts_with("gguf:") && fmt_low.find(',') == std::string::npos;
  const std::string scheme = gguf_only ? std::string() : cat("W", a.bits, "G", a.group_size, a.asym ? " asym  " : " sym  ");
  const std::string method = a.iters > 0 ? cat("SignRound ", a.iters, " iters")
                             : a.disable_opt_rtn ? std::string("RTN")
                                                 : std::string("optimized RTN");
  print_run_header();
  log_info("quantize: ", a.model, " -> ", a.output_dir, "  ", scheme, method, "  format ", a.format);
  QuantizeReport r = run_quantize(o);
  std::printf("quantized %lld linear layers in %.1f s\n", (long long)r.quantized_layers, r.seconds);
  for (size_t i = 0; i < r.outputs.size(); ++i)
    std::printf("output: %s (%s)\n", r.outputs[i].c_str(), format_bytes(r.output_bytes[i]).c_str());
  if (r.resumed_blocks) std::printf("resumed: %lld blocks came from the checkpoint\n", (long long)r.resumed_blocks);
  if (r.work_dir_peak_bytes) std::printf("work dir peak: %s\n", format_bytes(r.work_dir_peak_bytes).c_str());
  if (r.quantized_layers > 0)
    std::printf("bits per weight (quantized linears, incl. scales and zeros): %.3f\n", r.bits_per_weight);
  else
    std::printf("bits per weight: n/a (no linear layer was quantized)\n");
  if (!a.eval.empty())
    std::printf("perplexity: original %.4f  quantized %.4f  (%+.2f %%)\n", r.ppl_original, r.ppl_quantized,
                100.0 * (r.ppl_quantized / r.ppl_original - 1.0));
  std::fflush(stdout);
  std::fprintf(stderr, "current RSS (VmRSS): %s\n", format_bytes(read_mem_stats().rss_bytes).c_str());
  print_peak_memory();
}
}  // namespace

void add_quantize_command(CLI::App& app) {
  auto a = std::make_shared<QuantArgs>();
  auto* s = app.add_subcommand("quantize", "Quantize a HuggingFace model (RTN / optimized RTN), streaming block by block");
  s->add_option("--model,--model_name", a->model, "HuggingFace model folder")->required();
  s->add_option("--output_dir", a->output_dir, "output folder (several formats: one subfolder each)")->capture_default_str();
  s->add_option("--format", a->format, "auto_round, auto_gptq, fake, or gguf:<mix> (a llama.cpp GGUF file; mixes q4_0, q4_1, q5_0, q5_1, "
                "q8_0, q2_k, q2_k_s, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, f16, bf16, f32); "
                "comma-separated for several")->capture_default_str();
  s->add_option("--bits", a->bits, "2, 3, 4 or 8")->capture_default_str();
  s->add_option("--group_size", a->group_size, "weights per scale along in_features; -1 = whole row")->capture_default_str();
  s->add_flag("--asym", a->asym, "asymmetric quantization (default: symmetric)");
  s->add_option("--layer_config", a->layer_config, "JSON (file or text): layer names/regexes -> bits, group_size, sym (in GGUF: bits pick the layer's type)");
  s->add_flag("--disable_opt_rtn", a->disable_opt_rtn, "plain RTN instead of the optimized scale search");
  s->add_option("--iters", a->iters, "SignRound steps per block (0 = RTN / optimized RTN)")->capture_default_str();
  s->add_option("--recipe", a->recipe, "default (200 iters), best (1000 iters, 512 samples), light (50 iters, lr 5e-3), rtn");
  s->add_option("--batch_size", a->batch_size, "samples per SignRound step")->capture_default_str();
  s->add_option("--gradient_accumulate_steps", a->gradient_accumulate_steps, "batches per step")->capture_default_str();
  s->add_option("--lr", a->lr, "learning rate of v (default 1/iters)");
  s->add_option("--minmax_lr", a->minmax_lr, "learning rate of min/max scales (default: --lr)");
  s->add_flag("--disable_minmax_tuning", a->disable_minmax_tuning, "tune only the rounding, not the clipping");
  s->add_flag("--gguf_minmax_tuning", a->gguf_minmax_tuning, "gguf:<mix> with --iters: tune the sub-block clipping too (default: the rounding only)");
  s->add_flag("--disable_quanted_input", a->disable_quanted_input, "tune each block on full-precision inputs");
  s->add_flag("--amp", a->amp, "SignRound matmuls with bf16 inputs even where bf16 is emulated (slower here)");
  s->add_flag("--disable_amp", a->disable_amp, "SignRound matmuls in fp32 even where the CPU has native bf16 (default: bf16 there, fp32 elsewhere)");
  s->add_option("--dataset", a->dataset, "calibration data: SignRound samples, or importance for optimized RTN (or 'builtin')");
  s->add_option("--nsamples", a->nsamples, "calibration samples")->capture_default_str();
  s->add_option("--seqlen", a->seqlen, "calibration sample length")->capture_default_str();
  s->add_option("--seed", a->seed, "seed of the calibration shuffle and the SignRound sampler")->capture_default_str();
  s->add_option("--max_shard_size", a->max_shard_size, "output shard limit")->capture_default_str();
  s->add_flag("--overwrite", a->overwrite, "replace an existing output folder");
  s->add_option("--precision", a->precision, "matmul precision for calibration / eval: f32 or bf16")->capture_default_str();
  s->add_option("--eval", a->eval, "evaluate original and quantized perplexity on this file (or 'builtin') at the end");
  s->add_option("--eval_seqlen", a->eval_seqlen, "window length for --eval")->capture_default_str();
  s->add_option("--work_dir", a->work_dir, "folder for spilled activation caches and checkpoints (default: <output_dir>.autoround_work)");
  s->add_option("--cache", a->cache, "where calibration activations live: auto (by the memory plan), ram, disk")->capture_default_str();
  s->add_flag("--stream_loss", a->stream_loss, "recompute each batch's targets with the original block instead of caching them");
  s->add_option("--max_ram", a->max_ram, "RAM budget, e.g. 2G (default: 80 % of available memory); the plan is printed");
  s->add_flag("--low_cpu_mem_usage,!--disable_low_cpu_mem_usage", a->low_cpu_mem_usage, "allow spilling activation caches to the work dir (default on)");
  s->add_option("--max_disk", a->max_disk, "cap on the work dir's disk use (default: its free space)");
  s->add_flag("--log_memory", a->log_memory, "print RSS after every phase of every block");
  s->add_flag("--resume", a->resume, "continue an interrupted run from its checkpoint in the work dir");
  s->add_flag("--disable_checkpoint", a->disable_checkpoint, "keep no resumable checkpoint");
  s->add_option("--debug_kill_after_block", a->debug_kill_after_block, "")->group("");  // tests: kill -9 ourselves
  s->callback([a, s] { run(*a, *s); });
}

}  // namespace ar::cli
