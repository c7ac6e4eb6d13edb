// GGUF block quantizer / dequantizer throughput per format on one (rows, n) matrix of normal weights
// (sd 0.02): seconds and Mweights/s with all OpenMP threads, with and without importance weights
// for the formats that use them. Asserts nothing. Usage: gguf_quant_bench [rows=4096] [n=4096].
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/timer.h"
#include "quant/gguf_blocks.h"

int main(int argc, char** argv) {
  using namespace ar;
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 4096;
  const int64_t n = argc > 2 ? std::atoll(argv[2]) : 4096;
  if (n % 256 != 0 || rows <= 0) {
    std::fprintf(stderr, "n must be a multiple of 256\n");
    return 1;
  }
  std::vector<float> x(static_cast<size_t>(rows * n)), y(x.size()), imp(static_cast<size_t>(n));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 0.02f);
  for (auto& v : x) v = nd(rng);
  std::uniform_real_distribution<float> ud(0.1f, 10.f);
  for (auto& v : imp) v = ud(rng);
  std::printf("gguf_quant_bench: %lld x %lld, %d threads\n", (long long)rows, (long long)n, omp_get_max_threads());
  std::printf("%-6s %-4s %10s %10s %10s %10s\n", "type", "imp", "quant s", "Mw/s", "dequant s", "Mw/s");
  const GgmlType types[] = {GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                            GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                            GgmlType::Q5_K, GgmlType::Q6_K};
  const double mw = double(rows * n) / 1e6;
  for (GgmlType t : types) {
    std::vector<uint8_t> q(size_t(rows) * ggml_row_bytes(t, n));
    const bool has_imp_path = t != GgmlType::F16 && t != GgmlType::BF16 && t != GgmlType::Q8_0;
    for (int with = 0; with < (has_imp_path ? 2 : 1); ++with) {
      Timer tq;
      gguf_quantize_tensor(t, x.data(), rows, n, q.data(), with ? imp.data() : nullptr);
      const double sq = tq.seconds();
      Timer td;
      gguf_dequantize_tensor(t, q.data(), rows, n, y.data());
      const double sd = td.seconds();
      std::printf("%-6s %-4s %10.3f %10.1f %10.3f %10.1f\n", std::string(ggml_info(t).name).c_str(), with ? "yes" : "no",
                  sq, mw / sq, sd, mw / sd);
    }
  }
  return 0;
}
