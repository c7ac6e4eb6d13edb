// Causal GQA attention forward/backward, one head at a time: S = scale·Q_h·K_gᵀ → causal softmax
// → O_h = P·V_g (HF eager attention). Heads are strided views into the (T, H*D) / (T, Hkv*D)
// layouts, so gemm reads them in place. Rows go in blocks that only compute columns up to the
// block's last row: most of the masked triangle is skipped and scratch is one block, not (T, T).
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <omp.h>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/fast_exp.h"

namespace ar {
namespace {

// Row-block height for the causal split: large enough that each GEMM stays efficient, small
// enough that the skipped triangle is most of the masked half (T=2048 -> 8 blocks, ~44% saved).
constexpr int64_t kCausalBlockRows = 256;

// Rows [r0, r1) of one head: Pb (r1 - r0, r1), row stride r1, receives the probabilities
// softmax(scale · Q_h[i]·K[0..i]ᵀ) for columns 0..i and zeros for columns (i, r1), so that a
// P·V over columns [0, r1) sees the causal mask. qh, kh: head views with strides ldq, ldkv.
// round_bf16: store P rounded to bf16 — what the BF16 P·V would use anyway, and already-bf16
// values let gemm skip its staging copy of the largest operand.
void block_probs(float* Pb, const float* qh, const float* kh, int64_t r0, int64_t r1, int64_t D,
                 int64_t ldq, int64_t ldkv, float scale, Precision p, bool round_bf16) {
  const int64_t rows = r1 - r0;
  gemm(Pb, qh + r0 * ldq, kh, rows, r1, D, false, true, false, p, ldq, ldkv, r1);
#pragma omp parallel for if (rows * r1 > (1 << 14))
  for (int64_t li = 0; li < rows; ++li) {
    float* row = Pb + li * r1;
    const int64_t n = r0 + li + 1;  // columns 0..i are visible
    float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, row[j] * scale);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; ++j) {
      row[j] = fast_exp(row[j] * scale - mx);
      sum += row[j];
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) row[j] *= inv;
    if (round_bf16) round_to_bf16(row, row, n);
    for (int64_t j = n; j < r1; ++j) row[j] = 0.0f;
  }
}

// In place over one block: dP (rows, r1) -> dS = scale · P ⊙ (dP − rowsum(dP ⊙ P)), the softmax
// backward with the score scale folded in; masked columns become exact zeros. round_bf16 as in
// block_probs (dS only feeds BF16 GEMMs).
void block_softmax_backward(float* dP, const float* Pb, int64_t r0, int64_t r1, float scale,
                            bool round_bf16) {
  const int64_t rows = r1 - r0;
#pragma omp parallel for if (rows * r1 > (1 << 14))
  for (int64_t li = 0; li < rows; ++li) {
    float* d = dP + li * r1;
    const float* pr = Pb + li * r1;
    const int64_t n = r0 + li + 1;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < n; ++j) dot += d[j] * pr[j];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) d[j] = scale * pr[j] * (d[j] - dot);
    if (round_bf16) round_to_bf16(d, d, n);
    for (int64_t j = n; j < r1; ++j) d[j] = 0.0f;
  }
}

// Floats of one row block of one head's probabilities.
size_t block_floats(int64_t T) { return size_t(std::min(T, kCausalBlockRows)) * size_t(T); }

// O_h = softmax(scale·Q_h·K_gᵀ, causal)·V_g for one head; Pb: block_floats(T) scratch.
void head_forward(float* oh, float* Pb, const float* qh, const float* kh, const float* vh,
                  int64_t T, int64_t D, int64_t ldq, int64_t ldkv, float scale, Precision p) {
  for (int64_t r0 = 0; r0 < T; r0 += kCausalBlockRows) {
    const int64_t r1 = std::min(T, r0 + kCausalBlockRows);
    block_probs(Pb, qh, kh, r0, r1, D, ldq, ldkv, scale, p, p == Precision::BF16);
    // O_h[r0:r1] = P[r0:r1, 0:r1] · V[0:r1]
    gemm(oh + r0 * ldq, Pb, vh, r1 - r0, D, r1, false, false, false, p, r1, ldkv, ldq);
  }
}

// One head's backward: dQ_h overwritten, dK_g / dV_g accumulated. Pb, dPb: block_floats(T) each.
void head_backward(float* dqh, float* dkh, float* dvh, float* Pb, float* dPb, const float* doh,
                   const float* qh, const float* kh, const float* vh, int64_t T, int64_t D,
                   int64_t ldq, int64_t ldkv, float scale, Precision p) {
  for (int64_t r0 = 0; r0 < T; r0 += kCausalBlockRows) {
    const int64_t r1 = std::min(T, r0 + kCausalBlockRows);
    const int64_t rows = r1 - r0;
    // P stays unrounded here: the softmax backward needs the f32 probabilities.
    block_probs(Pb, qh, kh, r0, r1, D, ldq, ldkv, scale, p, false);
    // dV[0:r1] += Pᵀ · dO_h[r0:r1]
    gemm(dvh, Pb, doh + r0 * ldq, r1, D, rows, true, false, true, p, r1, ldq, ldkv);
    // dP = dO_h[r0:r1] · V[0:r1]ᵀ, then dS in place
    gemm(dPb, doh + r0 * ldq, vh, rows, r1, D, false, true, false, p, ldq, ldkv, r1);
    block_softmax_backward(dPb, Pb, r0, r1, scale, p == Precision::BF16);
    // dQ_h[r0:r1] = dS · K[0:r1];  dK[0:r1] += dSᵀ · Q_h[r0:r1]
    gemm(dqh + r0 * ldq, dPb, kh, rows, D, r1, false, false, false, p, r1, ldkv, ldq);
    gemm(dkh, dPb, qh + r0 * ldq, r1, D, rows, true, false, true, p, r1, ldq, ldkv);
  }
}

// Threads a call may use: no more than OpenMP offers, than there are parallel items, or than
// the caller's scratch has slots (thread i uses slot i).
int thread_slots(size_t scratch_floats, size_t slot_floats, int64_t items) {
  const size_t slots = scratch_floats / slot_floats;
  AR_CHECK(slots >= 1, "attention: scratch of ", scratch_floats, " floats is below one slot of ",
           slot_floats);
  return int(std::min<int64_t>({int64_t(omp_get_max_threads()), items, int64_t(slots)}));
}

}  // namespace

size_t attention_scratch_floats(int64_t T) {
  return size_t(std::max(1, omp_get_max_threads())) * block_floats(T);
}

size_t attention_backward_scratch_floats(int64_t T) { return 2 * attention_scratch_floats(T); }

// Heads run in parallel, one per thread with single-threaded GEMMs inside: one fork/join per
// call instead of three per head and row block, which matters when cores are shared.
void attention_forward(float* out, float* scratch, size_t scratch_floats, const float* q,
                       const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv, int64_t D,
                       float scale, Precision p) {
  AR_CHECK(Hkv > 0 && H % Hkv == 0, "attention: H=", H, " is not a multiple of Hkv=", Hkv);
  const int64_t group = H / Hkv;
  const int64_t ldq = H * D, ldkv = Hkv * D;
  const int nthr = thread_slots(scratch_floats, block_floats(T), H);
#pragma omp parallel for num_threads(nthr) schedule(static) if (nthr > 1)
  for (int64_t h = 0; h < H; ++h) {
    float* Pb = scratch + size_t(omp_get_thread_num()) * block_floats(T);
    head_forward(out + h * D, Pb, q + h * D, k + (h / group) * D, v + (h / group) * D, T, D, ldq,
                 ldkv, scale, p);
  }
}

// KV groups run in parallel: all q heads of a group on one thread, so each thread owns the dK,
// dV columns it accumulates into (no races, a fixed summation order).
void attention_backward(float* dq, float* dk, float* dv, float* scratch, size_t scratch_floats,
                        const float* dout, const float* q, const float* k, const float* v,
                        int64_t T, int64_t H, int64_t Hkv, int64_t D, float scale, Precision p) {
  AR_CHECK(Hkv > 0 && H % Hkv == 0, "attention: H=", H, " is not a multiple of Hkv=", Hkv);
  const int64_t group = H / Hkv;
  const int64_t ldq = H * D, ldkv = Hkv * D;
  const int nthr = thread_slots(scratch_floats, 2 * block_floats(T), Hkv);
#pragma omp parallel for num_threads(nthr) schedule(static) if (nthr > 1)
  for (int64_t g = 0; g < Hkv; ++g) {
    float* Pb = scratch + size_t(omp_get_thread_num()) * 2 * block_floats(T);
    float* dPb = Pb + block_floats(T);
    float* dkg = dk + g * D;
    float* dvg = dv + g * D;
    for (int64_t t = 0; t < T; ++t) {  // input gradients overwrite: start the sums at zero
      std::memset(dkg + t * ldkv, 0, size_t(D) * sizeof(float));
      std::memset(dvg + t * ldkv, 0, size_t(D) * sizeof(float));
    }
    for (int64_t h = g * group; h < (g + 1) * group; ++h)
      head_backward(dq + h * D, dkg, dvg, Pb, dPb, dout + h * D, q + h * D, k + g * D, v + g * D,
                    T, D, ldq, ldkv, scale, p);
  }
}

void attention_ref(float* out, const float* q, const float* k, const float* v, int64_t T,
                   int64_t H, int64_t Hkv, int64_t D, float scale, Precision p) {
  AR_CHECK(Hkv > 0 && H % Hkv == 0, "attention_ref: H=", H, " is not a multiple of Hkv=", Hkv);
  const bool round = p == Precision::BF16;
  auto rd = [round](double x) {
    return round ? double(bf16_to_f32(f32_to_bf16(float(x)))) : x;
  };
  const int64_t group = H / Hkv;
  std::vector<double> prob(static_cast<size_t>(T));
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / group;
    for (int64_t i = 0; i < T; ++i) {
      const float* qi = q + (i * H + h) * D;
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j <= i; ++j) {
        const float* kj = k + (j * Hkv + g) * D;
        double s = 0.0;
        for (int64_t d = 0; d < D; ++d) s += rd(qi[d]) * rd(kj[d]);
        // the fast path's scores pass through f32 before scaling
        prob[j] = double(float(s)) * double(scale);
        mx = std::max(mx, prob[j]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j <= i; ++j) sum += (prob[j] = std::exp(prob[j] - mx));
      for (int64_t j = 0; j <= i; ++j) prob[j] = rd(float(prob[j] / sum));
      float* oi = out + (i * H + h) * D;
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0.0;
        for (int64_t j = 0; j <= i; ++j) acc += prob[j] * rd(v[(j * Hkv + g) * D + d]);
        oi[d] = float(acc);
      }
    }
  }
}

}  // namespace ar
