// The GGUF tuning quantizer (quant/gguf_tune.h) per format on one (rows, cols) matrix of normal
// weights (sd 0.02): init, forward (w' only, as each SignRound step calls it), forward with bytes,
// and backward (dv, dmin_scale, dmax_scale), in ms with all OpenMP threads, at a random tuning
// point. Asserts nothing. Usage: gguf_tune_bench [rows=4096] [cols=4096].
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/timer.h"
#include "quant/gguf_tune.h"

int main(int argc, char** argv) {
  using namespace ar;
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 4096;
  const int64_t cols = argc > 2 ? std::atoll(argv[2]) : 4096;
  if (cols % 256 != 0 || rows <= 0) {
    std::fprintf(stderr, "cols must be a multiple of 256\n");
    return 1;
  }
  const size_t n = static_cast<size_t>(rows * cols);
  std::vector<float> w(n), v(n), w_dq(n), dw(n), dv(n);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 0.02f);
  std::uniform_real_distribution<float> ud(-0.5f, 0.5f);
  for (auto& x : w) x = nd(rng);
  for (auto& x : v) x = ud(rng);
  for (auto& x : dw) x = ud(rng);
  std::printf("gguf_tune_bench: %lld x %lld, %d threads\n", (long long)rows, (long long)cols, omp_get_max_threads());
  std::printf("%-6s %10s %10s %12s %10s\n", "type", "init ms", "fwd ms", "fwd+bytes ms", "bwd ms");
  const GgmlType types[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                            GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
  for (GgmlType t : types) {
    Timer ti;
    const GgufTuneInit init = gguf_tune_init(t, w.data(), rows, cols);
    const double ms_init = ti.seconds() * 1e3;
    const size_t ng = static_cast<size_t>(rows * init.groups);
    std::vector<float> a(ng, 0.9f), b(ng, 0.95f), da(ng, 0.f), db(ng, 0.f);
    std::vector<uint8_t> bytes(size_t(rows) * ggml_row_bytes(t, cols));
    Timer tf;
    gguf_fake_quant_forward(w_dq.data(), nullptr, w.data(), rows, cols, init, v.data(), a.data(), b.data());
    const double ms_fwd = tf.seconds() * 1e3;
    Timer tb;
    gguf_fake_quant_forward(w_dq.data(), bytes.data(), w.data(), rows, cols, init, v.data(), a.data(), b.data());
    const double ms_bytes = tb.seconds() * 1e3;
    Timer tg;
    gguf_fake_quant_backward(dv.data(), da.data(), db.data(), dw.data(), w.data(), rows, cols, init, v.data(), a.data(),
                             b.data());
    const double ms_bwd = tg.seconds() * 1e3;
    std::printf("%-6s %10.1f %10.1f %12.1f %10.1f\n", std::string(ggml_info(t).name).c_str(), ms_init, ms_fwd, ms_bytes,
                ms_bwd);
  }
  return 0;
}
