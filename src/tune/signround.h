// SignRound tuning of one decoder block (SPEC §2 steps 2-4, AutoRound's quant_block): signed
// gradient descent on every linear's rounding offsets v and clipping factors min/max_scale against
// the block's fp outputs, keeping the parameters of the lowest-loss step.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "core/comm.h"
#include "core/precision.h"
#include "model/block.h"
#include "model/config.h"
#include "model/weights.h"
#include "quant/fake_quant_grad.h"
#include "quant/quantized.h"

namespace ar {

struct SignRoundOptions {
  int iters = 200;
  int64_t batch_size = 8;
  int gradient_accumulate_steps = 1;
  double lr = 0;         // 0: 1 / iters (AutoRound's default)
  double minmax_lr = 0;  // 0: the same as lr
  bool enable_minmax_tuning = true;
  // The gradient at a clamp's bound (quant/fake_quant_grad.h): Strict, as AutoRound computes it on
  // the torch it installs today; Inclusive is SPEC §2's rule (--clamp_grad inclusive).
  ClampGrad clamp_grad = ClampGrad::Strict;
  // NVFP4: one global scale for the projections runtimes fuse (q/k/v, gate/up), as AutoRound does
  // by default (quant/nvfp4_global.h); false keeps each linear's own (--nvfp4_per_layer_global_scale).
  bool nvfp4_fused_global_scale = true;
  uint64_t seed = 42;
  // Matrix products: F32, or BF16 (bf16 inputs, fp32 accumulation: the Python tool's CPU "amp").
  // F32 by default: on CPUs without a native bf16 matmul (AVX2) BF16 is emulated with rounded
  // copies and was 6x slower on stories260K (W4G32 sym, seed 42, 200 iters: 10.2 min vs 1.8 min)
  // and worse (ppl 5.882 vs 5.774; fp32 5.558, RTN 6.233): bf16 rounding noise in the forward
  // raises the floor of the loss the signs can reach.
  Precision precision = Precision::F32;
  // Data parallelism (issue 17): the calibration samples are cut into `partitions` contiguous
  // ranges, each drawn by its own sampler (seed + p) for an equal share of every step's batch;
  // the partitions' gradients and losses are added in partition order. One process may hold all
  // of them, or each MPI rank one: the same partitions give the same bytes either way. 1 is the
  // plain single sampler.
  int partitions = 1;
  // Mixture-of-experts blocks: the experts are tuned in this many groups, one group after another,
  // each for `iters` steps against the same targets, with the block's other experts held: groups
  // already done at their quantized values, groups still to come at their original weights. The
  // dense linears (attention) go with the first group. 1 tunes everything at once; G holds about
  // 1/G of the experts' tuning state at a time (what the memory plan picks it for), at G times
  // the steps, and a group cannot adapt to the rounding of the groups after it.
  int expert_groups = 1;
  // A step makes each dense linear's W' once and keeps it for the step, instead of once per
  // forward/backward pass (a 4B block's batch of 8 at seqlen 2048 runs 8) and again for most
  // linears in each backward. Chunked steps only (units make W' once per step). Only where W' is
  // bf16 (bf16 products on a CPU with native bf16): 2 bytes per tuned dense weight of state, which
  // the memory plan drops again when it does not fit. The same bits either way.
  bool hold_step_weights = true;
  // The update's fused pass over v and w (integer schemes) also writes what the next step needs
  // from them: the held W' for the next step, and the codes of a new best loss. The same bits as
  // separate passes (false, kept to test that).
  bool fuse_step_outputs = true;
  // The first backward of a step into a gradient buffer writes the dense linears' gradients
  // instead of adding to cleared ones: no 400 MB of zeros per step for a 4B block. The same bits
  // as clearing every gradient and adding (false, kept to test that).
  bool overwrite_dense_grads = true;
  // With native bf16 products, a step whose dense gradients one backward writes (one chunk, one
  // partition, one process, no units) and whose tuned dense linears are integer schemes keeps
  // dL/dW' as bf16 (DenseGrads::OverwriteBf16), as PyTorch's autocast gives a bf16 product's weight
  // gradient: half the gradient memory (2 instead of 4 bytes per tuned dense weight), and half the
  // bytes for the GEMMs to write and the update's pass to read. v's steps read only its signs,
  // which bf16 keeps: the same v; the min/max scales' summed gradients may differ in the last bits.
  bool bf16_weight_grads = true;
};

// The expert groups a block is tuned in: `requested`, at most one per expert, 1 without experts.
int expert_group_count(const BlockWeights& b, int requested);
// The group block linear i belongs to (dense linears: 0; expert e of E: e * groups / E).
int linear_expert_group(const BlockWeights& b, int i, int groups);

// What tuning one block gives back.
struct BlockTuneResult {
  // One per linear in block_linears() order, quantized with the best parameters seen; a linear
  // whose scheme is not quantized (bits 16) has an empty QuantizedWeight (out == 0).
  std::vector<QuantizedWeight> q;
  // For a linear whose scheme has a GGUF target (QuantScheme::gguf): its rows in that block
  // format, rows * ggml_row_bytes(type, in) bytes (and q[i] stays empty).
  std::vector<std::vector<uint8_t>> gguf;
  double loss_iter0 = 0;  // loss of the first step's batch with v = 0, min/max_scale = 1
  double best_loss = 0;   // lowest batch loss seen (measured before that step's update)
  int best_iter = 0;
  bool bf16_weight_grads = false;  // the steps kept dL/dW' as bf16 (SignRoundOptions::bf16_weight_grads)
  // Expert groups (SignRoundOptions::expert_groups): each group's first and best loss. The fields
  // above are the first group's iter-0 loss (later groups' experts still at full precision) and
  // the last group's best (every linear quantized). One entry when tuned at once.
  struct Group {
    double loss_iter0 = 0, best_loss = 0;
    int best_iter = 0;
  };
  std::vector<Group> groups;
};

// Where the tuner reads its samples, one (T, C) activation pair at a time, so the caches can live
// in RAM or on disk. fetch(idx, x, second): x = sample idx's block input on the quantized path;
// second = its target T = block_fp(X) (cached targets), or, when `fp_inputs` is set (streamed
// targets, --stream_loss), its fp input X, from which the tuner computes the target itself with
// the block's original weights (BlockTuner::fp_forward, the same function that makes the cached
// ones, so both give identical results).
struct TuneSamples {
  int64_t n = 0;
  std::function<void(int64_t idx, float* x, float* second)> fetch;
  // Optional: sample idx's x and second where they already live in RAM (both non-null, as fetch
  // would copy them, unchanged while tune runs), or false. A forward/backward of one sample then
  // reads them in place: a 4B block's sample is two 20 MB copies less per step.
  std::function<bool(int64_t idx, const float** x, const float** second)> view;
  bool fp_inputs = false;
  // Data-parallel runs: these n samples are partition `first_partition` of n_total (samples
  // [n_total*p/P, n_total*(p+1)/P) for partition p of P = SignRoundOptions::partitions), one per
  // process of `comm`, which sums the other processes' gradients and losses in. Single process
  // (comm null or of size 1): the n samples are all n_total and the tuner runs every partition.
  int64_t n_total = 0;  // 0: n
  int first_partition = 0;
  Comm* comm = nullptr;
};

// Tunes one block. Scratch for one sample of T tokens is allocated once, so memory does not grow
// with the batch or the sample count. Per weight of a quantized linear it holds v and dL/dW' (f32
// each) and the best step's code (1 byte); W' is made on demand, one linear at a time, in one
// buffer sized for the largest linear, which also takes dL/dv during the signed step.
class BlockTuner {
 public:
  // Borrows the block's weights: they must outlive the tuner.
  BlockTuner(const BlockWeights& b, const ModelConfig& c, const LinearSchemes& schemes,
             int64_t T, const SignRoundOptions& o);
  // Takes them: each quantized linear whose values are all exactly bf16 (a bf16 checkpoint read as
  // f32) is kept as bf16 while tuning, half the bytes (0.2 GB less for a Qwen3-4B block), and
  // widened where used; every result is bit-identical to the borrowing tuner's. Get the weights
  // back with release_weights().
  BlockTuner(BlockWeights&& b, const ModelConfig& c, const LinearSchemes& schemes,
             int64_t T, const SignRoundOptions& o);
  ~BlockTuner();
  BlockTuner(const BlockTuner&) = delete;
  BlockTuner& operator=(const BlockTuner&) = delete;

  // y (T, C) = the block with its original weights applied to x (T, C): the targets. y != x.
  void fp_forward(float* y, const float* x);
  // Samples are drawn batch_size at a time (times gradient_accumulate_steps per step) from a
  // seeded shuffled cyclic sampler; each sample is run forward and backward on its own and its
  // gradient accumulated. iters == 0 gives plain RTN (no sample is read). Logs
  // "loss iter0 -> best (iter k)" at info level.
  BlockTuneResult tune(const TuneSamples& samples);
  // Owning tuner only: frees the tuning state, then returns the block's weights, all f32 again
  // (the same values). The tuner cannot be used afterwards.
  BlockWeights release_weights();

  // Bytes the tuner allocates besides the block's weights (for the memory plan): an upper bound,
  // for o.expert_groups groups (the largest group's state and every linear's result).
  static uint64_t state_bytes(const BlockWeights& b, const ModelConfig& c,
                              const LinearSchemes& schemes, int64_t T,
                              const SignRoundOptions& o);
  // The part of state_bytes that hold_step_weights adds with these options: the dense linears'
  // bf16 W' for the step, or 0 where it does not apply (no native bf16 products, small blocks' units).
  static uint64_t held_step_bytes(const BlockWeights& b, const ModelConfig& c, const LinearSchemes& schemes,
                                  int64_t T, const SignRoundOptions& o);
  // Bytes of the block's weights (as BlockWeights::size_bytes) while an owning tuner holds them:
  // 2 instead of 4 per weight of each quantized linear whose values are all bf16 (it reads the
  // values; for a plan made before loading: every quantized linear of a bf16 checkpoint).
  static uint64_t owned_weight_bytes(const BlockWeights& b, const LinearSchemes& schemes);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// For each block linear, the amax its NVFP4 global scale comes from (quantize_fp's global_amax):
// its own largest |w|, or its fusion group's when `fused` (quant/nvfp4_global.h); -1 for linears
// not quantized as NVFP4. The weights must be f32.
std::vector<float> block_nvfp4_global_amax(const BlockWeights& b,
                                                         const LinearSchemes& schemes,
                                                         bool fused);

// Convenience over in-memory activations: xq (n, T, C) the quantized-path inputs, target (n, T, C)
// the fp block's outputs for the fp inputs.
BlockTuneResult tune_block(const BlockWeights& b, const ModelConfig& c,
                           const LinearSchemes& schemes, const float* xq,
                           const float* target, int64_t n, int64_t T, const SignRoundOptions& o);

// The sampler: draws indices of [0, n) in seeded random order without replacement, reshuffling
// each time all n were drawn (a batch may span two passes). Deterministic across platforms
// (mt19937_64 and a plain Fisher-Yates, no std::shuffle).
class CyclicSampler {
 public:
  CyclicSampler(int64_t n, uint64_t seed);
  int64_t next();

 private:
  void reshuffle();
  std::vector<int64_t> order_;
  size_t pos_ = 0;
  std::mt19937_64 rng_;  // the standard fixes its output sequence
};

}  // namespace ar
