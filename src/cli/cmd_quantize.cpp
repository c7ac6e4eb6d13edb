// `autoround quantize` (also the default when the first argument is a flag): flags follow the
// Python AutoRound CLI so its users feel at home.
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"
#include "pipeline/quantize.h"

namespace ar::cli {

namespace {
struct QuantArgs {
  std::string model, output_dir = "./tmp_autoround", format = "auto_round", layer_config, dataset;
  int bits = 4;
  int64_t group_size = 128;
  bool asym = false;
  bool disable_opt_rtn = false;
  int64_t iters = 0, nsamples = 128, seqlen = 2048, eval_seqlen = 2048;
  uint64_t seed = 42;
  std::string max_shard_size = "5GB", recipe, precision = "f32", eval;
  bool overwrite = false;
};

std::vector<std::string> split_formats(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

void run(QuantArgs a) {
  if (!a.recipe.empty()) {
    if (a.recipe == "rtn") a.iters = 0;
    else if (a.recipe == "default" || a.recipe == "best" || a.recipe == "light")
      AR_THROW("--recipe ", a.recipe, " needs SignRound tuning, which is not available in this version yet; "
               "use --recipe rtn");
    else AR_THROW("--recipe: '", a.recipe, "' is not one of rtn, default, best, light");
  }
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
  o.iters = a.iters;
  o.dataset = a.dataset;
  o.nsamples = a.nsamples;
  o.seqlen = a.seqlen;
  o.seed = a.seed;
  o.max_shard_bytes = parse_bytes(a.max_shard_size, "--max_shard_size");
  o.overwrite = a.overwrite;
  if (a.precision == "bf16") o.precision = Precision::BF16;
  else if (a.precision != "f32") AR_THROW("--precision: '", a.precision, "' is not one of f32, bf16");
  o.eval_dataset = a.eval;
  o.eval_seqlen = a.eval_seqlen;
  o.log = [](const std::string& s) { log_info(s); };
  log_info("quantize: ", a.model, " -> ", a.output_dir, "  W", a.bits, "G", a.group_size, a.asym ? " asym" : " sym",
           "  ", a.disable_opt_rtn ? "RTN" : "optimized RTN", "  format ", a.format);
  QuantizeReport r = run_quantize(o);
  std::printf("quantized %lld linear layers in %.1f s\n", (long long)r.quantized_layers, r.seconds);
  for (size_t i = 0; i < r.outputs.size(); ++i)
    std::printf("output: %s (%s)\n", r.outputs[i].c_str(), format_bytes(r.output_bytes[i]).c_str());
  std::printf("bits per weight (quantized linears, incl. scales and zeros): %.3f\n", r.bits_per_weight);
  if (!a.eval.empty())
    std::printf("perplexity: original %.4f  quantized %.4f  (%+.2f %%)\n", r.ppl_original, r.ppl_quantized,
                100.0 * (r.ppl_quantized / r.ppl_original - 1.0));
  std::fflush(stdout);
  print_peak_memory();
}
}  // namespace

void add_quantize_command(CLI::App& app) {
  auto a = std::make_shared<QuantArgs>();
  auto* s = app.add_subcommand("quantize", "Quantize a HuggingFace model (RTN / optimized RTN), streaming block by block");
  s->add_option("--model,--model_name", a->model, "HuggingFace model folder")->required();
  s->add_option("--output_dir", a->output_dir, "output folder (several formats: one subfolder each)")->capture_default_str();
  s->add_option("--format", a->format, "auto_round, auto_gptq, fake; comma-separated for several")->capture_default_str();
  s->add_option("--bits", a->bits, "2, 3, 4 or 8")->capture_default_str();
  s->add_option("--group_size", a->group_size, "weights per scale along in_features; -1 = whole row")->capture_default_str();
  s->add_flag("--asym", a->asym, "asymmetric quantization (default: symmetric)");
  s->add_option("--layer_config", a->layer_config, "JSON (file or text): layer names/regexes -> bits, group_size, sym");
  s->add_flag("--disable_opt_rtn", a->disable_opt_rtn, "plain RTN instead of the optimized scale search");
  s->add_option("--iters", a->iters, "SignRound steps (0 = RTN; tuning is not available yet)")->capture_default_str();
  s->add_option("--recipe", a->recipe, "rtn (default, best, light need tuning)");
  s->add_option("--dataset", a->dataset, "calibration data for importance-weighted optimized RTN (or 'builtin')");
  s->add_option("--nsamples", a->nsamples, "calibration samples")->capture_default_str();
  s->add_option("--seqlen", a->seqlen, "calibration sample length")->capture_default_str();
  s->add_option("--seed", a->seed, "calibration shuffle seed")->capture_default_str();
  s->add_option("--max_shard_size", a->max_shard_size, "output shard limit")->capture_default_str();
  s->add_flag("--overwrite", a->overwrite, "replace an existing output folder");
  s->add_option("--precision", a->precision, "matmul precision for calibration / eval: f32 or bf16")->capture_default_str();
  s->add_option("--eval", a->eval, "evaluate original and quantized perplexity on this file (or 'builtin') at the end");
  s->add_option("--eval_seqlen", a->eval_seqlen, "window length for --eval")->capture_default_str();
  s->callback([a] { run(*a); });
}

}  // namespace ar::cli
