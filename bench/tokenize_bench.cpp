// Tokenizer throughput: load time of tokenizer.json and encode time of a text file (default:
// the Qwen3 tokenizer on WikiText-2 test). Prints numbers only; usage: tokenize_bench [DIR [TEXT]].
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "calib/tokenizer.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/timer.h"

namespace {

// Process CPU seconds: the machine is shared, so wall time alone is noisy.
double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

std::filesystem::path default_fixtures() {
  if (const char* env = std::getenv("AR_FIXTURES")) return env;
  // This file is bench/tokenize_bench.cpp; the fixtures sit beside the checkout.
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "shared" / "fixtures";
}

}  // namespace

int main(int argc, char** argv) {
  const auto fx = default_fixtures();
  std::filesystem::path dir = argc > 1 ? argv[1] : fx / "tokenizers" / "qwen3";
  std::filesystem::path text_path = argc > 2 ? argv[2] : fx / "text" / "wikitext2-test.txt";
  if (!std::filesystem::exists(dir / "tokenizer.json") || !std::filesystem::exists(text_path)) {
    std::fprintf(stderr, "tokenize_bench: need %s/tokenizer.json and %s (usage: tokenize_bench [DIR [TEXT]])\n",
                 dir.c_str(), text_path.c_str());
    return 1;
  }
  try {
    std::ifstream f(text_path, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    const std::string text = ss.str();

    ar::Timer t;
    double c0 = cpu_seconds();
    ar::Tokenizer tok = ar::Tokenizer::load(dir);
    double load_s = t.seconds(), load_cpu = cpu_seconds() - c0;
    std::printf("tokenizer   %s (vocab %zu)\n", dir.c_str(), tok.vocab_size());
    std::printf("load        %.3f s wall  %.3f s cpu\n", load_s, load_cpu);

    // First run starts with an empty word cache; the second shows the warm-cache speed.
    for (int run = 0; run < 2; ++run) {
      t.reset();
      c0 = cpu_seconds();
      auto ids = tok.encode(text, true);
      double enc_s = t.seconds(), enc_cpu = cpu_seconds() - c0;
      std::printf("encode %-5s %.3f s wall  %.3f s cpu  %zu tokens  %.2f MB/s cpu  (%s, %.2f MB)\n",
                  run == 0 ? "cold" : "warm", enc_s, enc_cpu, ids.size(), text.size() / 1e6 / enc_cpu,
                  text_path.filename().c_str(), text.size() / 1e6);
    }
    auto ids = tok.encode(text, true);
    t.reset();
    std::string back = tok.decode(ids, true);
    std::printf("decode      %.3f s  (round trip %s)\n", t.seconds(), back == text ? "exact" : "differs");
    std::printf("peak RSS    %s\n", ar::format_bytes(ar::read_mem_stats().peak_bytes).c_str());
  } catch (const ar::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
