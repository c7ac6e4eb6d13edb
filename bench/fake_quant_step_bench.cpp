// The tuner's once-per-step work on the weights of a Qwen3-4B decoder block (~101M weights,
// W4G128 sym, bf16 weights): the fused fake-quant backward + signed steps + next W'
// (fake_quant_backward_step), against a plain pass that reads and writes the same bytes (its
// memory-bandwidth floor), and W' alone (fake_quant_forward_bf16, what a step runs when the memory
// plan holds no W'). Prints ms per step; asserts nothing.
// Usage: fake_quant_step_bench [reps=5]
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/timer.h"
#include "quant/fake_quant_grad.h"
#include "quant/quantized.h"

namespace {

struct Shape {
  const char* name;
  int64_t out, in;
};

// Reads dw (f32), v (f32), w (bf16); writes v (f32), W' (bf16): the fused pass's traffic with no
// arithmetic worth the name.
void bandwidth_floor(float* v, uint16_t* wq, const float* dw, const uint16_t* w, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float x = v[i] + (dw[i] > 0 ? 1e-3f : -1e-3f);
    v[i] = x;
    wq[i] = uint16_t(w[i] ^ (x > 0 ? 1 : 0));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  const Shape shapes[] = {{"q_proj", 4096, 2560}, {"k_proj", 1024, 2560}, {"v_proj", 1024, 2560},
                          {"o_proj", 2560, 4096}, {"gate_proj", 9728, 2560}, {"up_proj", 9728, 2560},
                          {"down_proj", 2560, 9728}};
  struct Layer {
    Shape sh;
    std::vector<uint16_t> w, wq, dw16;  // dw16: dL/dW' as bf16 (SignRoundOptions::bf16_weight_grads)
    std::vector<float> v, dw, min_s, max_s, dmin, dmax;
    ar::QuantizedWeight codes;  // a new best's codes, written by the pass
  };
  std::vector<Layer> layers;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 0.02f);
  std::uniform_real_distribution<float> ud(-0.5f, 0.5f);
  int64_t total = 0;
  for (const Shape& sh : shapes) {
    Layer L{sh, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}};
    const size_t n = size_t(sh.out * sh.in), ng = size_t(sh.out * (sh.in / 128));
    L.w.resize(n);
    L.wq.resize(n);
    L.v.resize(n);
    L.dw.resize(n);
    L.dw16.resize(n);
    for (size_t i = 0; i < n; ++i) {
      L.w[i] = ar::f32_to_bf16(nd(rng));
      L.v[i] = ud(rng) * 0.1f;
      L.dw[i] = nd(rng);
      L.dw16[i] = ar::f32_to_bf16(L.dw[i]);
    }
    L.min_s.assign(ng, 1.f);
    L.max_s.assign(ng, 1.f);
    L.dmin.assign(ng, 0.f);
    L.dmax.assign(ng, 0.f);
    total += int64_t(n);
    layers.push_back(std::move(L));
  }
  ar::QuantScheme s;
  s.bits = 4;
  s.group_size = 128;
  s.sym = true;
  std::printf("fake_quant_step_bench: %.1fM weights, %d threads, W4G128 sym, bf16 weights\n", double(total) / 1e6,
              omp_get_max_threads());
  for (Layer& L : layers) L.codes = ar::QuantizedWeight::allocate(s, L.sh.out, L.sh.in);
  // The fused step; with_codes: at a new best loss, when the pass also writes the codes; grad16:
  // from a bf16 dL/dW'.
  auto fused_step = [&](bool with_codes, bool grad16 = false) {
    ar::Timer t;
    for (Layer& L : layers) {
      std::fill(L.dmin.begin(), L.dmin.end(), 0.f);
      std::fill(L.dmax.begin(), L.dmax.end(), 0.f);
      const ar::NextStepWprime next{1e-3f, L.min_s.data(), L.max_s.data(), L.wq.data(),
                                    with_codes ? &L.codes : nullptr};
      const ar::MatrixView dw = grad16 ? ar::MatrixView(L.dw16.data()) : ar::MatrixView(L.dw.data());
      ar::fake_quant_backward_step(L.v.data(), 1e-3f, L.dmin.data(), L.dmax.data(), dw, L.w.data(),
                                   L.sh.out, L.sh.in, s, L.min_s.data(), L.max_s.data(), ar::ClampGrad::Strict,
                                   &next);
    }
    return t.seconds() * 1e3;
  };
  for (int r = 0; r < reps; ++r) {
    const double fused = fused_step(false), fused_codes = fused_step(true), fused16 = fused_step(false, true);
    ar::Timer tw;  // W' alone, as a step makes it when the memory plan holds none
    for (Layer& L : layers)
      ar::fake_quant_forward_bf16(L.wq.data(), L.w.data(), L.sh.out, L.sh.in, s, L.v.data(), L.min_s.data(),
                                  L.max_s.data());
    const double wprime = tw.seconds() * 1e3;
    ar::Timer t2;
    for (Layer& L : layers)
      bandwidth_floor(L.v.data(), L.wq.data(), L.dw.data(), L.w.data(), L.sh.out * L.sh.in);
    const double floor_ms = t2.seconds() * 1e3;
    const double gb = double(total) * (4 + 4 + 2 + 4 + 2) / 1e9;
    std::printf("  fused step %7.1f ms (%5.1f GB/s), with a new best's codes %7.1f ms, from a bf16 dL/dW' %7.1f ms   "
                "bandwidth floor %7.1f ms (%5.1f GB/s)   W' alone %6.1f ms\n",
                fused, gb / fused * 1e3, fused_codes, fused16, floor_ms, gb / floor_ms * 1e3, wprime);
    std::fflush(stdout);
  }
  return 0;
}
