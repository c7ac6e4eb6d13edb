// RTN / optimized-RTN throughput on the seven linears of a Qwen3-4B decoder block (C=2560,
// F=9728, 32 query / 8 kv heads of 128: ~101M weights): prints seconds per block and Mweights/s
// for several schemes; asserts nothing. Usage: quant_bench [scale=1.0] (fraction of the rows).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <vector>

#include "core/timer.h"
#include "quant/opt_rtn.h"
#include "quant/qdq.h"
#include "quant/rtn.h"

namespace {

struct Shape {
  const char* name;
  int64_t out, in;
};

}  // namespace

int main(int argc, char** argv) {
  const double scale = argc > 1 ? std::atof(argv[1]) : 1.0;
  const Shape shapes[] = {{"q_proj", 4096, 2560}, {"k_proj", 1024, 2560}, {"v_proj", 1024, 2560},
                          {"o_proj", 2560, 4096}, {"gate_proj", 9728, 2560}, {"up_proj", 9728, 2560},
                          {"down_proj", 2560, 9728}};
  // One weight buffer as large as the largest linear, filled with normal weights (sd 0.02)
  // plus rare outliers, reused for every layer so the bench needs ~0.2 GB rather than 0.4.
  int64_t max_n = 0, total = 0;
  for (const Shape& s : shapes) {
    const int64_t rows = std::max<int64_t>(1, int64_t(double(s.out) * scale));
    max_n = std::max(max_n, rows * s.in);
    total += rows * s.in;
  }
  std::vector<float> w(static_cast<size_t>(max_n));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 0.02f);
  for (size_t i = 0; i < w.size(); ++i) w[i] = (i % 997 == 0) ? 10.f * nd(rng) : nd(rng);
  std::vector<float> imp(9728);
  for (auto& x : imp) x = std::fabs(nd(rng)) * 50.f;

  std::printf("quant_bench: %.1fM weights per block, %d threads, AVX2 %s\n", double(total) / 1e6,
              omp_get_max_threads(), ar::qdq_simd_available() ? "yes" : "no");
  struct Run {
    const char* label;
    int bits;
    int64_t group;
    bool sym, optimized, with_imp;
  };
  const Run runs[] = {{"RTN W4 g128 sym", 4, 128, true, false, false},
                      {"RTN W4 g128 asym", 4, 128, false, false, false},
                      {"RTN W4 g32 sym", 4, 32, true, false, false},
                      {"opt-RTN W4 g128 sym", 4, 128, true, true, false},
                      {"opt-RTN W4 g128 sym imp", 4, 128, true, true, true},
                      {"opt-RTN W4 g128 asym", 4, 128, false, true, false},
                      {"opt-RTN W2 g32 asym", 2, 32, false, true, false}};
  for (const Run& r : runs) {
    ar::QuantScheme s;
    s.bits = r.bits;
    s.group_size = r.group;
    s.sym = r.sym;
    ar::Timer t;
    const std::clock_t c0 = std::clock();  // process CPU time: meaningful on a shared machine too
    for (const Shape& sh : shapes) {
      const int64_t rows = std::max<int64_t>(1, int64_t(double(sh.out) * scale));
      const ar::QuantizedWeight q =
          r.optimized ? ar::quantize_opt_rtn(w.data(), rows, sh.in, s, r.with_imp ? imp.data() : nullptr)
                      : ar::quantize_rtn(w.data(), rows, sh.in, s);
      if (q.codes.empty()) std::printf("?");
    }
    const double sec = t.seconds(), cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
    std::printf("  %-26s %8.3f s/block wall  %8.3f s CPU  %8.1f Mweights/s wall\n", r.label, sec, cpu,
                double(total) / sec / 1e6);
    std::fflush(stdout);
  }
  return 0;
}
