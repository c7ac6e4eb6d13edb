// GEMM and attention throughput on the shapes of a ~4B-parameter block (C=2560, F=9728, T=2048):
// prints GFLOP/s for F32 and BF16 precision (GEMM, attention forward and backward); asserts
// nothing. Usage: gemm_bench [repeats=3]
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/timer.h"
#include "kernels/attention.h"
#include "kernels/gemm.h"

namespace {

std::vector<float> random_vec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

const char* name(ar::Precision p) { return p == ar::Precision::F32 ? "F32 " : "BF16"; }

// Best of `repeats` timed runs after one warm-up (which also builds the cached primitive).
template <typename F>
double best_seconds(int repeats, F&& run) {
  run();
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    ar::Timer t;
    run();
    best = std::min(best, t.seconds());
  }
  return best;
}

// x (M,K) · W (N,K)ᵀ, the Linear layout; `bf16_weights` pre-rounds W as a bf16 checkpoint would.
void bench_linear(int64_t M, int64_t N, int64_t K, ar::Precision p, bool bf16_weights, int repeats) {
  auto A = random_vec(size_t(M * K), 1), B = random_vec(size_t(N * K), 2);
  if (bf16_weights) ar::round_to_bf16(B.data(), B.data(), int64_t(B.size()));
  std::vector<float> C(size_t(M * N));
  const double s = best_seconds(repeats, [&] {
    ar::gemm(C.data(), A.data(), B.data(), M, N, K, false, true, false, p);
  });
  std::printf("gemm  %s%s M=%5lld N=%5lld K=%5lld  %8.1f ms  %7.1f GFLOP/s\n", name(p),
              bf16_weights ? " (bf16 W)" : "         ", (long long)M, (long long)N, (long long)K,
              s * 1e3, 2.0 * M * N * K / s * 1e-9);
}

// The two backward products of a Linear with T tokens, in K, out N: the input gradient
// dX (T,K) = dY (T,N) · W (N,K) and the weight gradient dW (N,K) += dYᵀ · X (T,K).
void bench_linear_backward(int64_t T, int64_t N, int64_t K, ar::Precision p, int repeats) {
  auto dY = random_vec(size_t(T * N), 6), W = random_vec(size_t(N * K), 7), X = random_vec(size_t(T * K), 8);
  std::vector<float> dX(size_t(T * K)), dW(size_t(N * K));
  const double sx = best_seconds(repeats, [&] {
    ar::gemm(dX.data(), dY.data(), W.data(), T, K, N, false, false, false, p);
  });
  const double sw = best_seconds(repeats, [&] {
    ar::gemm(dW.data(), dY.data(), X.data(), N, K, T, true, false, true, p);
  });
  const double flops = 2.0 * double(T) * double(N) * double(K);
  std::printf("gemm  %s dX  T=%5lld N=%5lld K=%5lld  %8.1f ms  %7.1f GFLOP/s\n", name(p), (long long)T,
              (long long)N, (long long)K, sx * 1e3, flops / sx * 1e-9);
  std::printf("gemm  %s dW  T=%5lld N=%5lld K=%5lld  %8.1f ms  %7.1f GFLOP/s\n", name(p), (long long)T,
              (long long)N, (long long)K, sw * 1e3, flops / sw * 1e-9);
}

void bench_attention(int64_t T, int64_t H, int64_t Hkv, int64_t D, ar::Precision p, int repeats) {
  auto q = random_vec(size_t(T * H * D), 3), k = random_vec(size_t(T * Hkv * D), 4);
  auto v = random_vec(size_t(T * Hkv * D), 5);
  std::vector<float> out(q.size()), scratch(ar::attention_scratch_floats(T, H, Hkv, D));
  const float scale = 1.0f / std::sqrt(float(D));
  const double s = best_seconds(repeats, [&] {
    ar::attention_forward(out.data(), scratch.data(), scratch.size(), q.data(), k.data(), v.data(), T, H, Hkv, D,
                          scale, p);
  });
  // Useful work only: the causal half of Q·Kᵀ and of P·V.
  const double flops = 2.0 * 2.0 * double(T) * double(T) * double(D) * double(H) / 2.0;
  std::printf("attn  fwd %s T=%lld H=%lld Hkv=%lld D=%lld  %8.1f ms  %7.1f GFLOP/s (causal half)\n",
              name(p), (long long)T, (long long)H, (long long)Hkv, (long long)D, s * 1e3,
              flops / s * 1e-9);
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  std::vector<float> bscratch(ar::attention_backward_scratch_floats(T, H, Hkv, D));
  const double sb = best_seconds(repeats, [&] {
    ar::attention_backward(dq.data(), dk.data(), dv.data(), bscratch.data(), bscratch.size(), out.data(), q.data(),
                           k.data(), v.data(), T, H, Hkv, D, scale, p);
  });
  // Backward: recomputed Q·Kᵀ plus dV, dP, dQ, dK products, each the size of a forward one.
  std::printf("attn  bwd %s T=%lld H=%lld Hkv=%lld D=%lld  %8.1f ms  %7.1f GFLOP/s (causal half)\n",
              name(p), (long long)T, (long long)H, (long long)Hkv, (long long)D, sb * 1e3,
              2.5 * flops / sb * 1e-9);
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
  // A second argument "attn" runs the attention shapes only (for profiling them alone).
  const bool attention_only = argc > 2 && std::string(argv[2]) == "attn";
  std::printf("threads %d, native bf16 matmul: %s, best of %d\n", omp_get_max_threads(),
              ar::gemm_has_native_bf16() ? "yes" : "no (rounded f32 copies)", repeats);
  const int64_t shapes[][3] = {{2048, 2560, 2560}, {2048, 9728, 2560}, {2048, 2560, 9728}};
  if (attention_only) {
    bench_attention(2048, 32, 8, 128, ar::Precision::BF16, repeats);
    return 0;
  }
  for (auto p : {ar::Precision::F32, ar::Precision::BF16})
    for (auto& s : shapes) bench_linear(s[0], s[1], s[2], p, false, repeats);
  for (auto& s : shapes) bench_linear(s[0], s[1], s[2], ar::Precision::BF16, true, repeats);
  // Backward of the same linears (T, out, in): q/o, gate/up, down.
  for (auto p : {ar::Precision::F32, ar::Precision::BF16})
    for (auto& s : shapes) bench_linear_backward(s[0], s[1], s[2], p, repeats);
  for (auto p : {ar::Precision::F32, ar::Precision::BF16}) bench_attention(2048, 32, 8, 128, p, repeats);
  return 0;
}
