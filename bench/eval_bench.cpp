// Eval throughput on a synthetic model with Qwen3-0.6B shapes (28 blocks, hidden 1024, vocab 151936),
// with fp32 and bf16 matmuls: tokens/s, achieved GFLOP/s, peak RSS. Prints numbers, asserts nothing.
// Usage: eval_bench [--layers N] [--windows N] [--seqlen N] [--model DIR] [--keep]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "core/timer.h"
#include "model/decoder.h"
#include "pipeline/eval.h"
#include "tools/synth_model.h"

int main(int argc, char** argv) {
  int64_t layers = 28, windows = 4, seqlen = 512;
  std::string model;
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--layers") layers = std::atoll(next().c_str());
    else if (a == "--windows") windows = std::atoll(next().c_str());
    else if (a == "--seqlen") seqlen = std::atoll(next().c_str());
    else if (a == "--model") model = next();
    else if (a == "--keep") keep = true;
    else { std::fprintf(stderr, "unknown argument %s\n", a.c_str()); return 2; }
  }
  try {
    std::filesystem::path dir = model;
    if (model.empty()) {
      dir = std::filesystem::temp_directory_path() / "ar-eval-bench-qwen3-0.6b";
      auto cfg = ar::synth_preset_config("qwen3-0.6b");
      ar::synth_set_num_layers(cfg, layers);
      ar::SynthOptions o;
      o.output_dir = dir;
      o.config = cfg;
      o.overwrite = true;
      ar::Timer t;
      ar::generate_synthetic_model(o);
      std::printf("generated %s (%lld blocks, bf16) in %.1f s\n", dir.c_str(), (long long)layers, t.seconds());
    }
    ar::Decoder d(dir);
    std::vector<std::vector<int32_t>> w(static_cast<size_t>(windows), std::vector<int32_t>(static_cast<size_t>(seqlen)));
    for (int64_t s = 0; s < windows; ++s)
      for (int64_t t = 0; t < seqlen; ++t) w[size_t(s)][size_t(t)] = int32_t((s * 7919 + t * 104729) % 150000);
    std::printf("model: %s, %lld blocks, hidden %lld, vocab %lld; %lld windows x %lld tokens\n",
                d.config().architecture.c_str(), (long long)d.config().num_hidden_layers,
                (long long)d.config().hidden_size, (long long)d.config().vocab_size, (long long)windows,
                (long long)seqlen);
    for (ar::Precision p : {ar::Precision::F32, ar::Precision::BF16}) {
      ar::EvalOptions opt;
      opt.precision = p;
      ar::EvalResult r = ar::evaluate_perplexity(d, w, opt);
      std::printf("%-4s matmuls: %8.1f tokens/s  %7.1f GFLOP/s  %6.2f s  (ppl %.2f)\n",
                  p == ar::Precision::F32 ? "f32" : "bf16", double(r.tokens_total) / r.seconds,
                  r.flops / r.seconds / 1e9, r.seconds, r.perplexity);
    }
    std::printf("peak RSS (VmHWM): %s\n", ar::format_bytes(ar::read_mem_stats().peak_bytes).c_str());
    if (model.empty() && !keep) std::filesystem::remove_all(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
