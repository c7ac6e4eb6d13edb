// `autoround eval`: perplexity of a model (HF folder or GGUF file) on a text / JSONL / token-id
// file (SPEC §5).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "calib/dataset.h"
#include "calib/tokenizer.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"
#include "io/npy.h"
#include "model/decoder.h"
#include "pipeline/eval.h"

namespace ar::cli {

namespace {
struct EvalArgs {
  std::string model;
  std::string dataset;
  std::string tokenizer;
  int64_t seqlen = 2048;
  std::string precision = "f32";
  std::string budget = "256MiB";
  int64_t limit = 0;
  std::string dump_logits;
};

Precision parse_precision(const std::string& s) {
  if (s == "f32" || s == "fp32") return Precision::F32;
  if (s == "bf16") return Precision::BF16;
  AR_THROW("--precision: '", s, "' is not one of f32, bf16");
}

void run_eval(const EvalArgs& a) {
  Decoder d(a.model);
  std::unique_ptr<Tokenizer> tok;
  // A GGUF model's tokenizer is the tokenizer.json beside the file (our GGUF export copies it there).
  std::filesystem::path tok_dir = a.tokenizer.empty() ? d.dir() : std::filesystem::path(a.tokenizer);
  if (a.dataset == kBuiltinDataset || detect_dataset_kind(a.dataset) != DatasetKind::TokenIds)
    tok = std::make_unique<Tokenizer>(Tokenizer::load(tok_dir));
  auto docs = load_eval_tokens(a.dataset, tok.get());
  int64_t n_tokens = 0;
  for (const auto& doc : docs) n_tokens += int64_t(doc.size());
  auto windows = cut_windows(docs, a.seqlen);
  if (windows.empty())
    AR_THROW(a.dataset, ": ", n_tokens, " tokens do not fill one window of --seqlen ", a.seqlen);
  if (a.limit > 0 && int64_t(windows.size()) > a.limit) windows.resize(size_t(a.limit));
  start_run();
  log_info("eval: ", d.is_gguf() ? d.gguf_file().filename().string() + " (GGUF, " + d.config().architecture + ")"
                                 : d.config().architecture, ", ", d.config().num_hidden_layers, " blocks; ", a.dataset, ": ",
           n_tokens, " tokens -> ", windows.size(), " windows of ", a.seqlen);
  EvalOptions opt;
  opt.precision = parse_precision(a.precision);
  opt.activation_budget_bytes = parse_bytes(a.budget, "--activation_budget");
  opt.progress = [](const std::string& line) { log_info(line); };
  std::optional<NpyF32Writer> dump;
  if (!a.dump_logits.empty()) {
    dump.emplace(a.dump_logits, std::vector<int64_t>{int64_t(windows.size()), a.seqlen, d.config().vocab_size});
    opt.on_logits = [&dump](int64_t, const float* logits, int64_t T, int64_t V) { dump->append(logits, T * V); };
  }
  EvalResult r = evaluate_perplexity(d, windows, opt);
  if (dump) {
    dump->commit();
    log_info("eval: logits (", windows.size(), " x ", a.seqlen, " x ", d.config().vocab_size, " float32) written to ",
             a.dump_logits);
  }
  std::printf("perplexity: %.6f\n", r.perplexity);
  std::printf("windows: %lld x %lld tokens, %lld scored, mean NLL %.6f\n", (long long)r.windows,
              (long long)a.seqlen, (long long)r.tokens_scored, r.nll_sum / double(r.tokens_scored));
  std::printf("throughput: %.1f tokens/s, %.1f GFLOP/s (%s matmuls), %.2f s\n",
              double(r.tokens_total) / r.seconds, r.flops / r.seconds / 1e9, a.precision.c_str(), r.seconds);
  std::fflush(stdout);
  print_peak_memory();
}
}  // namespace

void add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* sub = app.add_subcommand("eval", "Perplexity of a model on a text, JSONL or token-id file");
  sub->add_option("--model", a->model, "HuggingFace model folder, a .gguf file, or a folder holding one .gguf")->required();
  sub->add_option("--dataset", a->dataset, "text file, .jsonl with \"text\", JSON token ids, or 'builtin' (the built-in demo text)")->required();
  sub->add_option("--seqlen", a->seqlen, "window length in tokens")->capture_default_str()
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  sub->add_option("--tokenizer", a->tokenizer, "folder with tokenizer.json (default: the model folder, or the .gguf file's folder)");
  sub->add_option("--precision", a->precision, "matmul precision: f32, or bf16 (bf16 inputs, f32 accumulation)")
      ->capture_default_str();
  sub->add_option("--activation_budget", a->budget, "memory for one group of windows' hidden states")
      ->capture_default_str();
  sub->add_option("--limit", a->limit, "evaluate only the first N windows (0 = all)");
  sub->add_option("--dump_logits", a->dump_logits,
                  "also write every window's logits to this .npy file (float32, windows x seqlen x vocab)");
  sub->callback([a] { run_eval(*a); });
}

}  // namespace ar::cli
