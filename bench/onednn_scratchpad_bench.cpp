// Shows the oneDNN behaviour behind issue #13 on any CPU: one matmul primitive executed at the
// same time from two OpenMP threads, with oneDNN's library-managed scratchpad (the default) and
// with a user-managed scratchpad per thread (what kernels/gemm.cpp does).
//
// Our model GEMMs book scratch memory only on AVX-512/AMX (brgemm kernels), so to reproduce the
// race on an AVX2 machine this uses a configuration whose jit-sgemm kernel books an accumulator
// in the scratchpad: per-column output scales with a sum post-op (the product goes to the
// accumulator first, then is scaled and summed into dst). Prints the wrong executions per mode.
// This is a demonstration of the library's contract, not of our kernels: it includes oneDNN
// directly (the only file outside kernels/gemm.cpp that does).
#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using dnnl::memory;

struct Result {
  const char* impl;
  size_t scratch_bytes;
  int wrong, total;
};

Result run(bool user_scratchpad, int trials, int reps) {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  const int64_t M = 256, N = 256, K = 64;
  memory::desc a({M, K}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc b({K, N}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc c({M, N}, memory::data_type::f32, memory::format_tag::ab);
  // dnnl::primitive_attr copies share one underlying attribute, so each use builds its own.
  auto make_attr = [N](bool user) {
    dnnl::primitive_attr attr;
    dnnl::post_ops po;
    po.append_sum(0.0f);  // dst = 0·dst + scale·(A·B)
    attr.set_post_ops(po);
    attr.set_output_scales(1 << 1, std::vector<float>(size_t(N), 1.0f));
    if (user) attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return attr;
  };
  const size_t scratch_bytes = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c),
                                                            make_attr(true), eng)
                                   .scratchpad_desc()
                                   .get_size();
  const dnnl::primitive_attr attr = make_attr(user_scratchpad);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, eng);
  dnnl::matmul prim(pd);
  Result r{pd.impl_info_str(), scratch_bytes, 0, 0};
  for (int trial = 0; trial < trials; ++trial) {
    std::vector<float> A[2], B[2], C[2], R[2];
    for (int t = 0; t < 2; ++t) {
      std::mt19937 rng(uint32_t(trial * 2 + t));
      std::uniform_real_distribution<float> d(-1.0f, 1.0f);
      A[t].resize(size_t(M * K));
      B[t].resize(size_t(K * N));
      for (float& x : A[t]) x = d(rng);
      for (float& x : B[t]) x = d(rng);
      C[t].assign(size_t(M * N), 0.0f);
      R[t].assign(size_t(M * N), 0.0f);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) s += double(A[t][size_t(i * K + k)]) * B[t][size_t(k * N + j)];
          R[t][size_t(i * N + j)] = float(s);
        }
    }
    int wrong[2] = {0, 0};
#pragma omp parallel num_threads(2)
    {
      const int t = omp_get_thread_num();
      dnnl::stream s(eng);
      std::vector<char> scratch(user_scratchpad ? pd.scratchpad_desc().get_size() : 0);
      for (int rep = 0; rep < reps; ++rep) {
        memory am(a, eng, A[t].data()), bm(b, eng, B[t].data()), cm(c, eng, C[t].data());
        std::unordered_map<int, memory> args{
            {DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
        if (user_scratchpad)
          args[DNNL_ARG_SCRATCHPAD] = memory(pd.scratchpad_desc(), eng, scratch.data());
        prim.execute(s, args);
        s.wait();
        for (size_t i = 0; i < C[t].size(); ++i)
          if (std::fabs(C[t][i] - R[t][i]) > 1e-3f) {
            ++wrong[t];
            break;
          }
      }
    }
    r.wrong += wrong[0] + wrong[1];
    r.total += 2 * reps;
  }
  return r;
}

}  // namespace

int main() {
  for (bool user : {false, true}) {
    const Result r = run(user, 50, 20);
    std::printf("%-28s impl %-10s scratchpad %7zu B   wrong results: %4d of %d\n",
                user ? "user scratchpad per thread" : "library scratchpad (default)", r.impl,
                r.scratch_bytes, r.wrong, r.total);
  }
}
