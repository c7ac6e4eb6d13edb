// Causal GQA attention forward/backward, one head at a time: S = scale·Q_h·K_gᵀ → optional
// soft-cap → causal (optionally sliding-window) softmax → O_h = P·V_g (HF eager attention).
// Heads are strided views into the (T, H*D) / (T, Hkv*D) layouts, so gemm reads them in place.
// Rows go in blocks that only compute the columns from the block's first visible key (0 without
// a window) up to its last row: the masked triangle, and with a window the keys that slid out,
// are mostly skipped, and scratch is one block, not (T, T).
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <omp.h>

#include "core/buffer.h"
#include "core/dtype.h"
#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/fast_exp.h"
#include "core/vector_clones.h"

namespace ar {

// The visible columns of one score row, in place: scores -> probabilities, as masked_softmax
// describes (cap > 0: the soft-cap, its derivative into sr when given; out16, if given, receives
// the probabilities as bf16). Compiled per vector width
// (core/vector_clones.h): the max and the sum reduce in the width's order.
AR_VECTOR_CLONES void attention_softmax_visible(float* vis, int64_t m, float s_scale, float cap, float cap_scale,
                                                float* sr, uint16_t* out16) {
  if (cap > 0.0f) {
    if (sr) {  // from tanh's argument, not as 1 − t²: that cancels where the cap saturates
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) sr[j] = fast_sech2(vis[j] * cap_scale);
    }
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) vis[j] = cap * fast_tanh(vis[j] * cap_scale);
  }
  float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < m; ++j) mx = std::max(mx, vis[j] * s_scale);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < m; ++j) {
    vis[j] = fast_exp(vis[j] * s_scale - mx);
    sum += vis[j];
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < m; ++j) vis[j] *= inv;
  // The bf16 copy while the row is in cache, by the array conversion (AVX-512 where the CPU has
  // it; this clone's own loop would pack 8 values at a time).
  if (out16) f32_to_bf16(out16, vis, size_t(m));
}

// The visible columns of one row of the softmax backward, in place: d = scale·p·(d − Σ d·p) [·sr];
// out16, if given, then receives d as bf16 while the row is in cache.
AR_VECTOR_CLONES void attention_softmax_backward_visible(float* d, const float* pr, int64_t m, float scale,
                                                         const float* sr, uint16_t* out16) {
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int64_t j = 0; j < m; ++j) dot += d[j] * pr[j];
  if (sr) {
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) d[j] = scale * pr[j] * (d[j] - dot) * sr[j];
  } else {
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) d[j] = scale * pr[j] * (d[j] - dot);
  }
  if (out16) f32_to_bf16(out16, d, size_t(m));
}

namespace {

// Row-block height for the causal split: large enough that each GEMM stays efficient, small
// enough that the skipped triangle is most of the masked half (T=2048 -> 8 blocks, ~44% saved).
constexpr int64_t kCausalBlockRows = 256;

// The two score modifiers: window > 0 keeps only the last `window` keys of each query (HF
// sliding_window_overlay: j > i − window), softcap > 0 maps s to softcap·tanh(s/softcap) (HF
// Gemma-2 eager attention, after the scaling, before the mask). Zero means off.
struct ScoreRule {
  int64_t window = 0;
  float softcap = 0.0f;
};

// First key query row i may see (the last is i itself).
int64_t first_key(int64_t i, int64_t window) {
  return window > 0 ? std::max<int64_t>(0, i - window + 1) : 0;
}

// Keys [c0, r1) of row block [r0, r1): every key some row of the block may see.
struct BlockCols {
  int64_t c0, w;  // first key, width r1 - c0 (the block's row stride)
};

BlockCols block_cols(int64_t r0, int64_t r1, int64_t window) {
  const int64_t c0 = first_key(r0, window);
  return {c0, r1 - c0};
}

// Rows [r0, r1) of one head's scores Pb (r1 - r0, w), row stride w, holding Q_h[i]·K[c0..r1)ᵀ,
// become the probabilities softmax(cap(scale · Q_h[i]·K[a..i]ᵀ)) for the visible keys
// a = first_key(i) .. i and zeros for the other columns of [c0, r1), so that a P·V over keys
// [c0, r1) sees the mask. round_bf16: store P rounded to bf16 (what the BF16 P·V would use anyway;
// already-bf16 values let gemm skip its staging copy of the largest operand). p16 (rows, w), if
// given, receives P as bf16. sech2 (rows, w), if given (soft-cap only), receives the cap's
// derivative sech²(s/softcap) at the visible columns for the backward.
void masked_softmax(float* Pb, int64_t r0, int64_t r1, BlockCols bc, float scale, ScoreRule rule,
                    bool round_bf16, uint16_t* p16, float* sech2 = nullptr) {
  const int64_t rows = r1 - r0, w = bc.w;
  const bool capped = rule.softcap > 0.0f;
  const float cap = rule.softcap, cap_scale = capped ? scale / rule.softcap : 0.0f;
  // With the cap applied in place the scores are already scaled.
  const float s_scale = capped ? 1.0f : scale;
#pragma omp parallel for if (rows * w > (1 << 14))
  for (int64_t li = 0; li < rows; ++li) {
    float* row = Pb + li * w;
    const int64_t a = first_key(r0 + li, rule.window) - bc.c0;  // visible columns [a, n)
    const int64_t n = r0 + li + 1 - bc.c0;
    float* vis = row + a;
    const int64_t m = n - a;
    uint16_t* p16_row = p16 ? p16 + li * w : nullptr;
    attention_softmax_visible(vis, m, s_scale, capped ? cap : 0.0f, cap_scale, sech2 ? sech2 + li * w + a : nullptr,
                              p16_row ? p16_row + a : nullptr);
    if (round_bf16) round_to_bf16(vis, vis, m);
    for (int64_t j = 0; j < a; ++j) row[j] = 0.0f;
    for (int64_t j = n; j < w; ++j) row[j] = 0.0f;
    if (p16_row) {  // bf16 zero is all-zero bits
      std::memset(p16_row, 0, size_t(a) * sizeof(uint16_t));
      std::memset(p16_row + n, 0, size_t(w - n) * sizeof(uint16_t));
    }
  }
}

// Scores Q_h[r0:r1]·K[c0:r1]ᵀ into Pb, then masked_softmax. qh, kh: head views with strides ldq, ldkv.
void block_probs(float* Pb, const float* qh, const float* kh, int64_t r0, int64_t r1, BlockCols bc,
                 int64_t D, int64_t ldq, int64_t ldkv, float scale, ScoreRule rule, Precision p,
                 bool round_bf16, float* sech2 = nullptr) {
  gemm(Pb, qh + r0 * ldq, kh + bc.c0 * ldkv, r1 - r0, bc.w, D, false, true, false, p, ldq, ldkv, bc.w);
  masked_softmax(Pb, r0, r1, bc, scale, rule, round_bf16, nullptr, sech2);
}

// In place over one block: dP (rows, w) -> dS = scale · P ⊙ (dP − rowsum(dP ⊙ P)) [⊙ sech²], the
// softmax backward with the score scale (and, given sech2 from masked_softmax, the soft-cap's
// derivative) folded in; masked columns become exact zeros. round_bf16 as in block_probs (dS only
// feeds BF16 GEMMs); ds16, if given, receives dS as bf16.
void block_softmax_backward(float* dP, const float* Pb, int64_t r0, int64_t r1, BlockCols bc, float scale,
                            int64_t window, bool round_bf16, uint16_t* ds16 = nullptr,
                            const float* sech2 = nullptr) {
  const int64_t rows = r1 - r0, w = bc.w;
#pragma omp parallel for if (rows * w > (1 << 14))
  for (int64_t li = 0; li < rows; ++li) {
    float* row = dP + li * w;
    const int64_t a = first_key(r0 + li, window) - bc.c0;  // visible columns [a, n)
    const int64_t n = r0 + li + 1 - bc.c0;
    float* d = row + a;
    const float* pr = Pb + li * w + a;
    const int64_t m = n - a;
    uint16_t* ds16_row = ds16 ? ds16 + li * w : nullptr;
    attention_softmax_backward_visible(d, pr, m, scale, sech2 ? sech2 + li * w + a : nullptr,
                                       ds16_row ? ds16_row + a : nullptr);
    if (round_bf16) round_to_bf16(d, d, m);
    for (int64_t j = 0; j < a; ++j) row[j] = 0.0f;
    for (int64_t j = n; j < w; ++j) row[j] = 0.0f;
    if (ds16_row) {  // bf16 zero is all-zero bits
      std::memset(ds16_row, 0, size_t(a) * sizeof(uint16_t));
      std::memset(ds16_row + n, 0, size_t(w - n) * sizeof(uint16_t));
    }
  }
}

// Floats of one row block of one head's probabilities.
size_t block_floats(int64_t T) { return size_t(std::min(T, kCausalBlockRows)) * size_t(T); }

// The soft-cap's derivative for one row block, kept from the softmax to its backward: a
// per-thread grow-only buffer of block_floats(T), only ever reserved when softcap > 0 (so the
// callers' scratch sizes did not change). Named for the memory ledger.
float* thread_sech2(int64_t T) {
  thread_local Buffer buf{0, "attention.softcap_sech2"};
  buf.reserve(block_floats(T) * sizeof(float));
  return buf.as<float>();
}

// O_h = softmax(rule(scale·Q_h·K_gᵀ))·V_g for one head; Pb: block_floats(T) scratch.
void head_forward(float* oh, float* Pb, const float* qh, const float* kh, const float* vh,
                  int64_t T, int64_t D, int64_t ldq, int64_t ldkv, float scale, ScoreRule rule, Precision p) {
  for (int64_t r0 = 0; r0 < T; r0 += kCausalBlockRows) {
    const int64_t r1 = std::min(T, r0 + kCausalBlockRows);
    const BlockCols bc = block_cols(r0, r1, rule.window);
    block_probs(Pb, qh, kh, r0, r1, bc, D, ldq, ldkv, scale, rule, p, p == Precision::BF16);
    // O_h[r0:r1] = P[r0:r1, c0:r1] · V[c0:r1]
    gemm(oh + r0 * ldq, Pb, vh + bc.c0 * ldkv, r1 - r0, D, bc.w, false, false, false, p, bc.w, ldkv, ldq);
  }
}

// One head's backward: dQ_h overwritten, dK_g / dV_g accumulated. Pb, dPb: block_floats(T) each.
void head_backward(float* dqh, float* dkh, float* dvh, float* Pb, float* dPb, const float* doh,
                   const float* qh, const float* kh, const float* vh, int64_t T, int64_t D,
                   int64_t ldq, int64_t ldkv, float scale, ScoreRule rule, Precision p) {
  float* sech2 = rule.softcap > 0.0f ? thread_sech2(T) : nullptr;
  for (int64_t r0 = 0; r0 < T; r0 += kCausalBlockRows) {
    const int64_t r1 = std::min(T, r0 + kCausalBlockRows);
    const int64_t rows = r1 - r0;
    const BlockCols bc = block_cols(r0, r1, rule.window);
    const float* kc = kh + bc.c0 * ldkv;
    const float* vc = vh + bc.c0 * ldkv;
    // P stays unrounded here: the softmax backward needs the f32 probabilities.
    block_probs(Pb, qh, kh, r0, r1, bc, D, ldq, ldkv, scale, rule, p, false, sech2);
    // dV[c0:r1] += Pᵀ · dO_h[r0:r1]
    gemm(dvh + bc.c0 * ldkv, Pb, doh + r0 * ldq, bc.w, D, rows, true, false, true, p, bc.w, ldq, ldkv);
    // dP = dO_h[r0:r1] · V[c0:r1]ᵀ, then dS in place
    gemm(dPb, doh + r0 * ldq, vc, rows, bc.w, D, false, true, false, p, ldq, ldkv, bc.w);
    block_softmax_backward(dPb, Pb, r0, r1, bc, scale, rule.window, p == Precision::BF16, nullptr, sech2);
    // dQ_h[r0:r1] = dS · K[c0:r1];  dK[c0:r1] += dSᵀ · Q_h[r0:r1]
    gemm(dqh + r0 * ldq, dPb, kc, rows, D, bc.w, false, false, false, p, bc.w, ldkv, ldq);
    gemm(dkh + bc.c0 * ldkv, dPb, qh + r0 * ldq, bc.w, D, rows, true, false, true, p, bc.w, ldq, ldkv);
  }
}

// Native bf16 (AVX512-BF16 / AMX; gemm_bf16): q, k, v (and dO) are converted to bf16 once per
// call, P and dS written as bf16 by the softmax passes, instead of gemm staging every operand of
// every row block again (on AMX that conversion took a third of the attention time). Same values
// as the staged path: the rounding points are the same. Per-thread bf16 blocks, grow-only.
struct HeadBf16 {
  Buffer p{0, "attention.p_bf16"}, ds{0, "attention.ds_bf16"};
};

HeadBf16& thread_head_bf16() {
  thread_local HeadBf16 h;
  return h;
}

// Floats that hold n bf16 values, rounded up to 64 bytes so that every copy starts aligned.
size_t bf16_floats(int64_t n) { return (size_t(n) + 31) / 32 * 16; }

// (T, H, D) f32 (row stride H·D) -> H tight (T, D) bf16 heads in one pass over the rows. Reading
// the rows in order streams; converting one head at a time read 512 bytes out of every 16 KiB
// (4B shapes) and took a fifth of the attention forward.
void heads_to_bf16(uint16_t* out, const float* x, int64_t T, int64_t H, int64_t D) {
#pragma omp parallel for schedule(static) if (T * H * D > (1 << 16))
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) f32_to_bf16(out + (h * T + t) * D, x + (t * H + h) * D, size_t(D));
}

// The front of the scratch: one sample's q, k, v (and, for the backward, dO) as bf16, each head
// tight (T, D) ([h][t][d]), for the native bf16 path; the per-thread row blocks follow.
struct SampleBf16 {
  uint16_t *q = nullptr, *k = nullptr, *v = nullptr, *dout = nullptr;
  size_t floats = 0;  // what they take of the scratch
};

size_t sample_bf16_floats(int64_t T, int64_t H, int64_t Hkv, int64_t D, bool with_dout) {
  return (with_dout ? 2 : 1) * bf16_floats(T * H * D) + 2 * bf16_floats(T * Hkv * D);
}

// Lays the copies out at the front of the scratch (dout null: the forward's, without dO) and, when
// the products are native bf16, fills them.
SampleBf16 sample_bf16(float* scratch, size_t scratch_floats, const float* q, const float* k, const float* v,
                       const float* dout, int64_t T, int64_t H, int64_t Hkv, int64_t D, bool native) {
  SampleBf16 s;
  s.floats = sample_bf16_floats(T, H, Hkv, D, dout != nullptr);
  AR_CHECK(scratch_floats >= s.floats, "attention: scratch of ", scratch_floats, " floats is below the ", s.floats,
           " of the bf16 copies");
  float* at = scratch;
  auto take = [&at](int64_t n) {
    uint16_t* p = reinterpret_cast<uint16_t*>(at);
    at += bf16_floats(n);
    return p;
  };
  s.q = take(T * H * D);
  s.k = take(T * Hkv * D);
  s.v = take(T * Hkv * D);
  if (dout) s.dout = take(T * H * D);
  if (!native) return s;
  heads_to_bf16(s.q, q, T, H, D);
  heads_to_bf16(s.k, k, T, Hkv, D);
  heads_to_bf16(s.v, v, T, Hkv, D);
  if (dout) heads_to_bf16(s.dout, dout, T, H, D);
  return s;
}

uint16_t* block_bf16(Buffer& buf, int64_t T) {
  buf.reserve(block_floats(T) * sizeof(uint16_t));
  return buf.as<uint16_t>();
}

void head_forward_native(float* oh, float* Pb, const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t T,
                         int64_t D, int64_t ldq, float scale, ScoreRule rule) {
  HeadBf16& hb = thread_head_bf16();
  uint16_t* p16 = block_bf16(hb.p, T);
  for (int64_t r0 = 0; r0 < T; r0 += kCausalBlockRows) {
    const int64_t r1 = std::min(T, r0 + kCausalBlockRows), rows = r1 - r0;
    const BlockCols bc = block_cols(r0, r1, rule.window);
    gemm_bf16(Pb, q + r0 * D, k + bc.c0 * D, rows, bc.w, D, false, true, false, D, D, bc.w);
    masked_softmax(Pb, r0, r1, bc, scale, rule, false, p16);
    gemm_bf16(oh + r0 * ldq, p16, v + bc.c0 * D, rows, D, bc.w, false, false, false, bc.w, D, ldq);
  }
}

// q, k, v: the head's bf16 copies, tight (T, D) (q per head, k/v per group, made by the caller).
void head_backward_native(float* dqh, float* dkh, float* dvh, float* Pb, float* dPb, const uint16_t* dout,
                          const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t T, int64_t D,
                          int64_t ldq, int64_t ldkv, float scale, ScoreRule rule) {
  HeadBf16& hb = thread_head_bf16();
  uint16_t* p16 = block_bf16(hb.p, T);
  uint16_t* ds16 = block_bf16(hb.ds, T);
  float* sech2 = rule.softcap > 0.0f ? thread_sech2(T) : nullptr;
  for (int64_t r0 = 0; r0 < T; r0 += kCausalBlockRows) {
    const int64_t r1 = std::min(T, r0 + kCausalBlockRows), rows = r1 - r0;
    const BlockCols bc = block_cols(r0, r1, rule.window);
    const uint16_t* kc = k + bc.c0 * D;
    // P stays unrounded in Pb for the softmax backward; its bf16 copy feeds dV.
    gemm_bf16(Pb, q + r0 * D, kc, rows, bc.w, D, false, true, false, D, D, bc.w);
    masked_softmax(Pb, r0, r1, bc, scale, rule, false, p16, sech2);
    gemm_bf16(dvh + bc.c0 * ldkv, p16, dout + r0 * D, bc.w, D, rows, true, false, true, bc.w, D, ldkv);
    gemm_bf16(dPb, dout + r0 * D, v + bc.c0 * D, rows, bc.w, D, false, true, false, D, D, bc.w);
    block_softmax_backward(dPb, Pb, r0, r1, bc, scale, rule.window, false, ds16, sech2);
    gemm_bf16(dqh + r0 * ldq, ds16, kc, rows, D, bc.w, false, false, false, bc.w, D, ldq);
    gemm_bf16(dkh + bc.c0 * ldkv, ds16, q + r0 * D, bc.w, D, rows, true, false, true, bc.w, D, ldkv);
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

size_t attention_scratch_floats(int64_t T, int64_t H, int64_t Hkv, int64_t D) {
  return sample_bf16_floats(T, H, Hkv, D, false) + size_t(std::max(1, omp_get_max_threads())) * block_floats(T);
}

size_t attention_backward_scratch_floats(int64_t T, int64_t H, int64_t Hkv, int64_t D) {
  return sample_bf16_floats(T, H, Hkv, D, true) + 2 * size_t(std::max(1, omp_get_max_threads())) * block_floats(T);
}

// Heads run in parallel, one per thread with single-threaded GEMMs inside: one fork/join per
// call instead of three per head and row block, which matters when cores are shared.
void attention_forward(float* out, float* scratch, size_t scratch_floats, const float* q,
                       const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv, int64_t D,
                       float scale, Precision p, int64_t window, float softcap) {
  AR_CHECK(Hkv > 0 && H % Hkv == 0, "attention: H=", H, " is not a multiple of Hkv=", Hkv);
  AR_CHECK(window >= 0 && softcap >= 0.0f, "attention: window=", window, " softcap=", softcap,
           " (0 = off, else positive)");
  const ScoreRule rule{window, softcap};
  const int64_t group = H / Hkv;
  const int64_t ldq = H * D, ldkv = Hkv * D;
  const bool native = native_bf16_products(p);
  const SampleBf16 sb = sample_bf16(scratch, scratch_floats, q, k, v, nullptr, T, H, Hkv, D, native);
  const size_t front = sb.floats;
  const int nthr = thread_slots(scratch_floats - front, block_floats(T), H);
#pragma omp parallel for num_threads(nthr) schedule(static) if (nthr > 1)
  for (int64_t h = 0; h < H; ++h) {
    float* Pb = scratch + front + size_t(omp_get_thread_num()) * block_floats(T);
    if (native)
      head_forward_native(out + h * D, Pb, sb.q + h * T * D, sb.k + (h / group) * T * D, sb.v + (h / group) * T * D,
                          T, D, ldq, scale, rule);
    else
      head_forward(out + h * D, Pb, q + h * D, k + (h / group) * D, v + (h / group) * D, T, D, ldq, ldkv, scale,
                   rule, p);
  }
}

// KV groups run in parallel: all q heads of a group on one thread, so each thread owns the dK,
// dV columns it accumulates into (no races, a fixed summation order).
void attention_backward(float* dq, float* dk, float* dv, float* scratch, size_t scratch_floats,
                        const float* dout, const float* q, const float* k, const float* v,
                        int64_t T, int64_t H, int64_t Hkv, int64_t D, float scale, Precision p,
                        int64_t window, float softcap) {
  AR_CHECK(Hkv > 0 && H % Hkv == 0, "attention: H=", H, " is not a multiple of Hkv=", Hkv);
  AR_CHECK(window >= 0 && softcap >= 0.0f, "attention: window=", window, " softcap=", softcap,
           " (0 = off, else positive)");
  const ScoreRule rule{window, softcap};
  const int64_t group = H / Hkv;
  const int64_t ldq = H * D, ldkv = Hkv * D;
  const bool native = native_bf16_products(p);
  const SampleBf16 sb = sample_bf16(scratch, scratch_floats, q, k, v, dout, T, H, Hkv, D, native);
  const size_t front = sb.floats;
  const int nthr = thread_slots(scratch_floats - front, 2 * block_floats(T), Hkv);
#pragma omp parallel for num_threads(nthr) schedule(static) if (nthr > 1)
  for (int64_t g = 0; g < Hkv; ++g) {
    float* Pb = scratch + front + size_t(omp_get_thread_num()) * 2 * block_floats(T);
    float* dPb = Pb + block_floats(T);
    float* dkg = dk + g * D;
    float* dvg = dv + g * D;
    for (int64_t t = 0; t < T; ++t) {  // input gradients overwrite: start the sums at zero
      std::memset(dkg + t * ldkv, 0, size_t(D) * sizeof(float));
      std::memset(dvg + t * ldkv, 0, size_t(D) * sizeof(float));
    }
    if (native) {
      for (int64_t h = g * group; h < (g + 1) * group; ++h)
        head_backward_native(dq + h * D, dkg, dvg, Pb, dPb, sb.dout + h * T * D, sb.q + h * T * D, sb.k + g * T * D,
                             sb.v + g * T * D, T, D, ldq, ldkv, scale, rule);
      continue;
    }
    for (int64_t h = g * group; h < (g + 1) * group; ++h)
      head_backward(dq + h * D, dkg, dvg, Pb, dPb, dout + h * D, q + h * D, k + g * D, v + g * D,
                    T, D, ldq, ldkv, scale, rule, p);
  }
}

void attention_ref(float* out, const float* q, const float* k, const float* v, int64_t T,
                   int64_t H, int64_t Hkv, int64_t D, float scale, Precision p, int64_t window,
                   float softcap) {
  AR_CHECK(Hkv > 0 && H % Hkv == 0, "attention_ref: H=", H, " is not a multiple of Hkv=", Hkv);
  AR_CHECK(window >= 0 && softcap >= 0.0f, "attention_ref: window=", window, " softcap=", softcap,
           " (0 = off, else positive)");
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
      // keys j0..i: causal, and i − j < window when there is a window
      const int64_t j0 = window > 0 ? std::max<int64_t>(0, i - window + 1) : 0;
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = j0; j <= i; ++j) {
        const float* kj = k + (j * Hkv + g) * D;
        double s = 0.0;
        for (int64_t d = 0; d < D; ++d) s += rd(qi[d]) * rd(kj[d]);
        // the fast path's scores pass through f32 before scaling
        prob[j] = double(float(s)) * double(scale);
        if (softcap > 0.0f) prob[j] = double(softcap) * std::tanh(prob[j] / double(softcap));
        mx = std::max(mx, prob[j]);
      }
      double sum = 0.0;
      for (int64_t j = j0; j <= i; ++j) sum += (prob[j] = std::exp(prob[j] - mx));
      for (int64_t j = j0; j <= i; ++j) prob[j] = rd(float(prob[j] / sum));
      float* oi = out + (i * H + h) * D;
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0.0;
        for (int64_t j = j0; j <= i; ++j) acc += prob[j] * rd(v[(j * Hkv + g) * D + d]);
        oi[d] = float(acc);
      }
    }
  }
}

}  // namespace ar
