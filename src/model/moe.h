// Mixture-of-experts MLP (HF Qwen3MoeSparseMoeBlock / MixtralSparseMoeBlock), forward and
// backward over the kernels in src/kernels:
//   logits (R, E) = xn · routerᵀ (always f32: the router stays 16-bit and is never tuned)
//   p = softmax(logits) in f32; the top k experts of each row, weights p_j (renormalised to sum 1
//   when norm_topk_prob); out[r] = Σ_j w_j · expert_{e_j}(xn[r]), expert(x) = down(silu(gate x) ⊙ up x)
// Each expert multiplies only the rows routed to it, gathered into one matrix whose row count is
// rounded up (expert_rows: zero rows, so a few shapes, hence a few GEMM primitives, serve every
// routing). Experts run in parallel, each whole on one thread with single-threaded GEMMs
// (gemm_serial), into its own rows of the scratch; then each output row adds its experts' rows in
// ascending expert order (as HF's index_add_). Results do not depend on the thread count. An
// expert no row chose is never touched (its weight is not even asked for).
#pragma once
#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "core/precision.h"
#include "model/block.h"
#include "model/config.h"
#include "model/weights.h"

namespace ar {

// Which experts each of `rows` rows goes to, and with what weight.
struct MoeRouting {
  int64_t rows = 0, E = 0, k = 0;
  std::vector<float> prob;       // (rows, E) softmax of the router logits
  std::vector<int32_t> expert;   // (rows, k) chosen experts, by decreasing probability
  std::vector<float> weight;     // (rows, k) their weights
  // The (row, j) pairs grouped by expert: expert e's are slot[offset[e] .. offset[e+1]), rows
  // ascending; a slot is row * k + j.
  std::vector<int64_t> offset;   // (E + 1)
  std::vector<int64_t> slot;     // (rows * k)
  // Expert e's gathered rows are rows padded[e] .. padded[e + 1) of the scratch views: its count
  // rounded up by expert_rows, the real rows first (in slot order), then zero rows. at[slot] is
  // the slot's row there.
  std::vector<int64_t> padded;   // (E + 1)
  std::vector<int64_t> at;       // (rows * k)
  int64_t count(int64_t e) const { return offset[size_t(e + 1)] - offset[size_t(e)]; }
};

// Rows an expert with n routed rows multiplies: n rounded up to a multiple of 16, or above 256
// rows to a multiple of the power of two below n/8 (less than 1/8 more work, ~8 sizes per
// doubling of n). 0 for 0.
int64_t expert_rows(int64_t n);
// Scratch rows for all experts' padded rows when `slots` (rows · k) rows are routed over E experts.
int64_t moe_padded_slots(int64_t slots, int64_t E);

// Routes rows of xn (rows, C) through router weight (E, C); logits: scratch of rows * E floats.
void moe_route(MoeRouting& r, const float* xn, const float* router, int64_t rows, const ModelConfig& c, float* logits);

// Scratch of one inference pass over up to `rows` rows.
class MoeScratch {
 public:
  MoeScratch(const ModelConfig& c, int64_t rows);
  static size_t size_bytes(const ModelConfig& c, int64_t rows);
  int64_t rows() const { return rows_; }
  MoeRouting routing;
  float *logits;     // (rows, E)
  float *gate, *up;  // (P, F) each, P = moe_padded_slots(rows · k, E): gate then act, up
  float *y;          // (P, C): an expert's gathered input, then its output

 private:
  int64_t rows_;
  Buffer buf_;
};

// out (rows, C) overwritten = the MoE MLP of xn (rows, C), weights from w (router, experts). The
// observer sees each expert's gathered input (its gate/up linear indices) and down input.
void moe_forward(float* out, const float* xn, const BlockWeights& w, const ModelConfig& c, int64_t rows,
                 MoeScratch& s, Precision p, const LinearInputObserver& observe = {});

// What the trainable forward keeps for the backward, for up to `rows` rows: the routing and,
// per routed (row, expert) pair in expert-grouped order, the expert's gate/up pre-activations,
// its activation and its output.
class MoeTrainScratch {
 public:
  MoeTrainScratch(const ModelConfig& c, int64_t rows);
  static size_t size_bytes(const ModelConfig& c, int64_t rows);
  MoeRouting routing;
  float *logits;                 // (rows, E); the backward's d logits
  // Per padded routed row (P = moe_padded_slots(rows · k, E) rows): gate, up, act (P, F) and
  // y (P, C), which also holds an expert's gathered input before its output, and in the backward
  // d y, the input again and d input.
  float *gate, *up, *act, *y;
  // The weights of a group of experts (kMoeGroup, 3 linears each), copied from the weight source
  // (bf16 when the products are native bf16): the source's W' is valid only until its next call.
  float* held;
  std::vector<float> dweight;    // (rows, k) dL/d routing weight
  // Rows routed to each expert by every moe_forward_train since the last clear (a tuner's count
  // of which experts its calibration data reaches).
  std::vector<int64_t> routed;

 private:
  Buffer buf_;
};

// Weight of block linear i, as block_grad.h's LinearWeightSource (W' while tuning).
using MoeWeightSource = std::function<const float*(int i)>;
// Optional, for a source that makes its weights anyway (a tuner's W'): expert linear i's weight
// made straight into `slot` (room for its out·in floats) as the products read it, bf16 bits
// (element j at bf16 index j) when `bf16`, else f32; false when it does not make this one (the
// weight then comes from the MoeWeightSource, copied or converted into the slot). The experts'
// groups copy every weight into such slots; making it there saves an f32 W' and its conversion
// on one thread.
using MoeWeightMaker = std::function<bool(int i, float* slot, bool bf16)>;

// Trainable forward: out (rows, C) overwritten, s keeps what moe_backward needs. With `make`,
// the experts' weights come from it instead of w.
void moe_forward_train(float* out, MoeTrainScratch& s, const float* xn, const BlockWeights& b,
                       const MoeWeightSource& w, const ModelConfig& c, int64_t rows, Precision p,
                       const MoeWeightMaker* make = nullptr);

// Backward of the last moe_forward_train: dxn (rows, C) += dL/dxn (through the experts and the
// router's softmax and top-k weights); dw[i] (out, in) += dL/dW' for each expert linear i with a
// non-null entry. dout (rows, C) = dL/dout.
void moe_backward(float* dxn, const std::vector<float*>& dw, MoeTrainScratch& s, const float* dout, const float* xn,
                  const BlockWeights& b, const MoeWeightSource& w, const ModelConfig& c, int64_t rows, Precision p,
                  const MoeWeightMaker* make = nullptr);

}  // namespace ar
