// One SignRound step (forward + backward of every sample of a batch, signed update) on a decoder
// block with a synthetic preset's shapes (default qwen3-4b: hidden 2560, ffn 9728, 32/8 heads,
// head_dim 128; a mixture-of-experts preset such as qwen3-30b-a3b times an MoE block) and random
// weights: ms/iter, achieved GFLOP/s, the f32/bf16 GEMM rate oneDNN reaches in the same process,
// and peak RSS. FLOPs of an MoE block count the routed experts only (top-k per token).
// Run it with --batch 1 and --batch 8 in separate processes to see that memory does not grow with
// the batch. The weights are rounded to bf16 (as a bf16 checkpoint's are); --own hands them to the
// tuner, which then keeps the quantized linears as bf16 while tuning (0.2 GB less).
// Usage: block_step_bench [--preset qwen3-4b] [--batch 8] [--seqlen 2048] [--iters 2] [--f32|--bf16] [--own]
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/buffer.h"
#include "core/dtype.h"
#include "core/memory.h"
#include "core/profile.h"
#include "core/timer.h"
#include "kernels/gemm.h"
#include "model/block.h"
#include "model/block_specs.h"
#include "model/config.h"
#include "model/weights.h"
#include "tune/signround.h"
#include "tools/synth_model.h"

namespace {

ar::Buffer random_buffer(size_t n, float stddev, float mean, std::mt19937_64& rng) {
  ar::Buffer b(n * sizeof(float));
  std::normal_distribution<float> nd(mean, stddev);
  float* p = b.as<float>();
  for (size_t i = 0; i < n; ++i) p[i] = ar::bf16_to_f32(ar::f32_to_bf16(nd(rng)));
  return b;
}

double gemm_rate(ar::Precision p) {
  const int64_t M = 2048, N = 9728, K = 2560;
  std::vector<float> a(size_t(M * K), 0.01f), b(size_t(N * K), 0.02f), c(size_t(M * N));
  ar::gemm(c.data(), a.data(), b.data(), M, N, K, false, true, false, p);  // warm-up, primitive creation
  ar::Timer t;
  const int reps = 3;
  for (int r = 0; r < reps; ++r) ar::gemm(c.data(), a.data(), b.data(), M, N, K, false, true, false, p);
  return 2.0 * M * N * K * reps / t.seconds() / 1e9;
}

// The step's time by phase (core/profile.h), per step, with the FLOP rate of the GEMM phases and
// attention (FLOPs executed: the backward GEMMs compute dW for every linear and dX for all but
// q/k/v; attention's backward recomputes the probabilities, so 5 products against the forward's
// 2, each over the causal half). An MoE block's gate/up/down phases are its experts': each token
// goes through k of them, so they count as one MLP k times as wide. Experts run concurrently, one
// per thread, and concurrent scopes both count (core/profile.h): those phases sum thread time, so
// their GFLOP/s is per thread and "untracked" can come out below its true share.
void print_profile(const std::array<double, ar::kPhases>& prof, double sec, int iters, double batch, double T,
                   const ar::ModelConfig& c, bool moe) {
  const double C = double(c.hidden_size), D = double(c.head_dim);
  const double F = moe ? double(c.num_experts_per_tok * c.moe_intermediate_size) : double(c.intermediate_size);
  const double HD = double(c.num_attention_heads) * D, KV = double(c.num_key_value_heads) * D;
  const double tok = batch * T;
  const double qkv = 2 * tok * C * (HD + 2 * KV), o = 2 * tok * HD * C, gu = 2 * tok * C * 2 * F,
               dn = 2 * tok * F * C;
  const double attn_product = 2.0 * HD * T * (T + 1) / 2.0 * batch;
  using P = ar::Phase;
  auto flops = [&](P p) -> double {
    switch (p) {
      case P::GemmQkvFwd: case P::GemmQkvBwd: return qkv;
      case P::GemmOFwd: return o;
      case P::GemmOBwd: return 2 * o;
      case P::GemmGateUpFwd: return gu;
      case P::GemmGateUpBwd: return 2 * gu;
      case P::GemmDownFwd: return dn;
      case P::GemmDownBwd: return 2 * dn;
      case P::AttentionFwd: return 2 * attn_product;
      case P::AttentionBwd: return 5 * attn_product;
      default: return 0;
    }
  };
  const double step = sec / iters;
  double tracked = 0, gemm = 0, attn = 0;
  std::printf("profile of one step (mean of %d):\n  %-22s %9s %7s %10s\n", iters, "phase", "ms", "share", "GFLOP/s");
  for (int i = 0; i < ar::kPhases; ++i) {
    const P p = P(i);
    if (p == P::Setup) continue;  // once per block: printed apart
    const double s = prof[size_t(i)] / iters;
    tracked += s;
    if (p >= P::GemmQkvFwd && p <= P::GemmDownBwd) gemm += s;
    if (p == P::AttentionFwd || p == P::AttentionBwd) attn += s;
    const double f = flops(p);
    if (f > 0 && s > 0)
      std::printf("  %-22s %9.1f %6.1f%% %10.1f\n", ar::phase_name(p), 1e3 * s, 100 * s / step, f / s / 1e9);
    else
      std::printf("  %-22s %9.1f %6.1f%%\n", ar::phase_name(p), 1e3 * s, 100 * s / step);
  }
  std::printf("  %-22s %9.1f %6.1f%%\n", "untracked", 1e3 * (step - tracked), 100 * (step - tracked) / step);
  std::printf("  linear GEMMs %.1f%%, attention %.1f%%, everything else %.1f%% of the step\n", 100 * gemm / step,
              100 * attn / step, 100 * (step - gemm - attn) / step);
  // "quantize at best" is the codes of the first best (which allocates the result) and of the last
  // step: once per block for integer schemes, as here (the bests between come out of the update's
  // pass, inside "fake quant backward"). A run spreads it over its iterations, not over this
  // bench's few: the step of a default run.
  const double once = prof[size_t(P::QuantizeBest)];
  const double step200 = step - once / iters + once / 200;
  std::printf("  over the default 200 iters (quantize at best once per block): %.1f ms/step, linear GEMMs %.1f%%, "
              "attention %.1f%%, everything else %.1f%%\n",
              1e3 * step200, 100 * gemm / step200, 100 * attn / step200, 100 * (step200 - gemm - attn) / step200);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t batch = 8, T = 2048;
  int iters = 2;
  bool own = false;
  std::string preset = "qwen3-4b";
  ar::Precision prec = ar::gemm_has_native_bf16() ? ar::Precision::BF16 : ar::Precision::F32;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--preset" && i + 1 < argc) preset = argv[++i];
    else if (a == "--batch" && i + 1 < argc) batch = std::atoll(argv[++i]);
    else if (a == "--seqlen" && i + 1 < argc) T = std::atoll(argv[++i]);
    else if (a == "--iters" && i + 1 < argc) iters = std::atoi(argv[++i]);
    else if (a == "--f32") prec = ar::Precision::F32;
    else if (a == "--bf16") prec = ar::Precision::BF16;
    else if (a == "--own") own = true;
    else { std::fprintf(stderr, "unknown argument %s\n", a.c_str()); return 2; }
  }
  ar::ModelConfig c = ar::parse_model_config(ar::synth_preset_config(preset), "preset " + preset);
  const int64_t C = c.hidden_size, D = c.head_dim;
  const int64_t H = c.num_attention_heads;
  const bool moe = ar::layer_is_moe(c, 0);
  std::mt19937_64 rng(1);
  // Every tensor of layer 0 (block_specs.h): norms near 1, linears (and the router) N(0, 0.02).
  ar::BlockWeights w = ar::block_shapes(c, 0);
  for (const ar::BlockTensorSpec& s : ar::block_tensor_specs(c, 0)) {
    const bool norm = !s.is_linear() && s.part != ar::BlockPart::Router;
    ar::block_tensor_buffer(w, s) = random_buffer(size_t(s.numel()), norm ? 0.01f : 0.02f, norm ? 1.f : 0.f, rng);
  }
  // Parameters one token multiplies with: every dense linear, k experts' and the router.
  double params = 0;
  for (int i = 0; i < ar::block_linear_count(w); ++i) {
    const ar::LinearWeights& l = *ar::block_linears(w, i);
    params += double(l.in * l.out) * (i < ar::kDenseLinears ? 1.0 : double(c.num_experts_per_tok) / double(c.num_experts));
  }
  params += double(w.router.in * w.router.out);
  // Inputs: random hidden states; targets: the fp block's outputs for them.
  ar::Buffer x = random_buffer(size_t(batch * T * C), 1.f, 0.f, rng);
  ar::Buffer target(x.size_bytes());
  std::copy_n(x.as<float>(), batch * T * C, target.as<float>());
  // The targets' pass is what a calibration pass does (the inference block over each sample):
  // timed, with its rate against the GEMM rate (#18: calibration passes >= 80 % of it). The first
  // sample builds the primitives, so the rate is over the others when there are any.
  // As the quantized path's pass does, the dense weights are rounded to bf16 once per block
  // (native bf16 products), timed apart.
  double calib_sec = 0, round_sec = 0;
  {
    ar::RopeTables rope = ar::make_rope_tables(c, T);
    ar::BlockScratch s(c, T);
    ar::Timer tr;
    const ar::DenseBf16Weights w16 = ar::DenseBf16Weights::make(w, prec);
    round_sec = tr.seconds();
    for (int64_t b = 0; b < batch; ++b) {
      ar::Timer tb;
      ar::block_forward(target.as<float>() + b * T * C, w, c, rope, s, prec, {}, &w16);
      if (b > 0 || batch == 1) calib_sec += tb.seconds();
    }
  }
  const int64_t calib_samples = batch > 1 ? batch - 1 : 1;
  ar::LinearSchemes schemes(size_t(ar::block_linear_count(w)), ar::QuantScheme{4, 128, true});
  for (int i = 0; i < ar::block_linear_count(w); ++i)
    if (!ar::block_linears(w, i)->present()) schemes[size_t(i)].bits = 16;  // an MoE block's empty gate/up/down
  ar::SignRoundOptions o;
  o.iters = iters;
  o.batch_size = batch;
  o.precision = prec;
  const uint64_t state = ar::BlockTuner::state_bytes(w, c, schemes, T, o);
  const uint64_t weights_held = own ? ar::BlockTuner::owned_weight_bytes(w, schemes) : w.size_bytes();
  ar::TuneSamples samples;
  samples.n = batch;
  samples.fetch = [&](int64_t idx, float* xi, float* ti) {
    std::copy_n(x.as<float>() + idx * T * C, T * C, xi);
    std::copy_n(target.as<float>() + idx * T * C, T * C, ti);
  };
  samples.view = [&](int64_t idx, const float** xi, const float** ti) {  // resident, as a run's RAM caches
    *xi = x.as<float>() + idx * T * C;
    *ti = target.as<float>() + idx * T * C;
    return true;
  };
  ar::profile_enable(true);
  ar::profile_reset();
  ar::Timer t;
  ar::BlockTuneResult r;
  double outside_tune = 0;  // the tuner's construction (compaction, allocation) and release
  if (own) {
    ar::Timer tc;
    ar::BlockTuner tuner(std::move(w), c, schemes, T, o);
    outside_tune += tc.seconds();
    r = tuner.tune(samples);
    ar::Timer tr;
    w = tuner.release_weights();
    outside_tune += tr.seconds();
  } else {
    ar::Timer tc;
    ar::BlockTuner tuner(w, c, schemes, T, o);
    outside_tune += tc.seconds();
    r = tuner.tune(samples);
  }
  const double sec = t.seconds();
  ar::profile_enable(false);
  std::array<double, ar::kPhases> prof = ar::profile_seconds();
  // Once per block, however many steps: the setup is reported apart, and the steps without it.
  const double setup = prof[size_t(ar::Phase::Setup)] + outside_tune;
  prof[size_t(ar::Phase::Setup)] = 0;
  const double steps_sec = sec - setup;
  // Per token: forward 2·params, backward about 2x that (dX and dW'); attention QK^T and PV
  // (causal half) forward, about twice that backward plus the recomputed probabilities.
  const double attn = 2.0 * 2.0 * double(H) * double(D) * double(T) * double(T + 1) / 2.0;
  const double flops_per_sample = 3.0 * 2.0 * params * double(T) + 4.0 * attn;
  const double flops = flops_per_sample * double(batch) * iters;
  std::printf("%s block%s, batch %lld x seqlen %lld, %d iters, %s matmuls (native bf16: %s)\n", preset.c_str(), moe ? " (MoE)" : "",
              (long long)batch, (long long)T, iters, prec == ar::Precision::F32 ? "f32" : "bf16", ar::gemm_has_native_bf16() ? "yes" : "no");
  std::printf("tuning: %.1f ms/iter, %.1f GFLOP/s (loss %.5g -> %.5g)\n", 1e3 * steps_sec / iters,
              flops / steps_sec / 1e9, r.loss_iter0, r.best_loss);
  std::printf("  the block's one-time tuner setup (construction, compaction, group allocation, release): %.1f ms; "
              "all in over %d iters %.1f ms/iter, over the default 200 iters %.1f ms/iter\n",
              1e3 * setup, iters, 1e3 * sec / iters, 1e3 * (steps_sec / iters + setup / 200));
  std::printf("gemm peak in this process (2048x9728x2560): f32 %.1f GFLOP/s, bf16 %.1f GFLOP/s\n",
              gemm_rate(ar::Precision::F32), gemm_rate(ar::Precision::BF16));
  {
    // Forward FLOPs of one sample: the linears plus attention's two products over the causal half.
    const double fwd = 2.0 * params * double(T) + 2.0 * 2.0 * double(H) * double(D) * double(T) * double(T + 1) / 2.0;
    std::printf("calibration pass (block forward, %lld sample(s) timed): %.1f ms/sample, %.1f GFLOP/s (dense "
                "weights rounded to bf16 once per block before it: %.1f ms)\n",
                (long long)calib_samples, 1e3 * calib_sec / double(calib_samples),
                fwd * double(calib_samples) / calib_sec / 1e9, 1e3 * round_sec);
  }
  print_profile(prof, steps_sec, iters, double(batch), double(T), c, moe);
  std::printf("peak RSS (VmHWM): %s (inputs + targets: %s; block weights %s as the tuner holds them%s; tuner "
              "state_bytes %s)\n",
              ar::format_bytes(ar::read_mem_stats().peak_bytes).c_str(), ar::format_bytes(2 * x.size_bytes()).c_str(),
              ar::format_bytes(weights_held).c_str(), own ? " (owned, bf16)" : " (borrowed, f32)",
              ar::format_bytes(state).c_str());
  return 0;
}
