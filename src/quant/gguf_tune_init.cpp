// gguf_tune_init: the per-group scales and mins SignRound starts from, computed by the same scale
// searches (same calls, same float arithmetic) as the RTN quantizers in gguf_simple.cpp /
// gguf_kquants.cpp, so that the tuning quantizer at v = 0, min/max_scale = 1 writes their bytes.
// The byte-equality test in tests/quant/gguf_tune_test.cpp guards the two against drifting apart.
#include "quant/gguf_strict_fp.h"  // first: no FMA contraction, as the RTN it must reproduce

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "quant/gguf_block_search.h"
#include "quant/gguf_blocks.h"
#include "quant/gguf_tune.h"

namespace ar {

namespace {

// One row's init: scale/offset (groups), weight_sum (groups, weighted k-quants) and, if L is not
// null, the search's codes (cols), which the RTN keeps where a group's stored scale is 0.
struct RowOut {
  float* scale;
  float* offset;
  float* sw;
  uint8_t* L;
};

// A block's signed extreme e (the first of the largest |x|, as the reference picks it) and the
// opposite side's extreme (0 if the block has none).
void block_extremes(const float* x, float* e_out, float* other_out) {
  float amax = 0, e = 0;
  for (int j = 0; j < kQK; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      e = x[j];
    }
  float other = 0;
  for (int j = 0; j < kQK; ++j)
    if ((e > 0 && x[j] < other) || (e < 0 && x[j] > other)) other = x[j];
  *e_out = e;
  *other_out = other;
}

// Q4_0 / Q5_0 / Q8_0 without importance: e mapped to level -nneg, and the opposite extreme under
// the same rule as the alternative candidate.
void init_sym_simple_row(const float* x, int64_t n, float nneg, RowOut o) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    float e, other;
    block_extremes(x + b * kQK, &e, &other);
    o.scale[b] = e / -nneg;
    o.offset[b] = other / -nneg;
  }
}

// Q4_0 / Q5_0 with importance: the weighted symmetric search's scale; the opposite candidate is
// the opposite extreme under the same scale-to-extreme ratio (never larger than the scale).
void init_sym_simple_row_weighted(const float* x, int64_t n, const float* imp, int nmax, RowOut o) {
  std::vector<int8_t> L(static_cast<size_t>(n));
  search_sym_row_weighted(x, n, imp, nmax, L.data(), o.scale);
  for (int64_t b = 0; b < n / kQK; ++b) {
    float e, other;
    block_extremes(x + b * kQK, &e, &other);
    const float d = o.scale[b];
    float c = e != 0 ? d * (other / e) : 0.f;
    if (std::fabs(c) > std::fabs(d)) c = -d;
    o.offset[b] = c;
  }
  if (o.L)
    for (int64_t j = 0; j < n; ++j) o.L[j] = uint8_t(L[size_t(j)]);
}

// Q4_1 / Q5_1: reference (max - min) / N and min; weighted: the affine v3 search.
void init_affine_simple_row(const float* x, int64_t n, const float* imp, int nmax, RowOut o) {
  if (imp) {
    std::vector<uint8_t> L(static_cast<size_t>(n));
    search_affine_row_weighted(x, n, imp, nmax, L.data(), o.scale, o.offset);
    if (o.L) std::copy(L.begin(), L.end(), o.L);
    return;
  }
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float min = x[0], max = x[0];
    for (int j = 1; j < kQK; ++j) {
      min = std::min(min, x[j]);
      max = std::max(max, x[j]);
    }
    o.scale[b] = (max - min) / float(nmax);
    o.offset[b] = -min;
  }
}

// The k-quant super-blocks: the RTN's searches (gguf_block_search.h); symmetric ones have no offset.
void init_q2k_block(const float* x, const float* imp, RowOut o) {
  uint8_t L[kQKK];
  search_q2k(x, imp, L, o.scale, o.offset, o.sw);
  if (o.L) std::memcpy(o.L, L, kQKK);
}

void init_q3k_block(const float* x, const float* imp, RowOut o) {
  int8_t L[kQKK];
  search_q3k(x, imp, L, o.scale, o.sw);
  std::fill(o.offset, o.offset + 16, 0.f);
  if (o.L)
    for (int i = 0; i < kQKK; ++i) o.L[i] = uint8_t(L[i]);
}

void init_k4_block(const float* x, const float* imp, int nmax, RowOut o) {
  uint8_t L[kQKK];
  search_k4(x, imp, nmax, L, o.scale, o.offset, o.sw);
  if (o.L) std::memcpy(o.L, L, kQKK);
}

void init_q6k_block(const float* x, const float* imp, RowOut o) {
  int8_t L[kQKK];
  search_q6k(x, imp, L, o.scale);
  std::fill(o.offset, o.offset + 16, 0.f);
  if (o.L)
    for (int i = 0; i < kQKK; ++i) o.L[i] = uint8_t(L[i]);
}

void init_row(GgmlType t, const float* x, int64_t n, const float* imp, RowOut o) {
  const int64_t G = gguf_tune_group_size(t);
  auto k_blocks = [&](auto&& block) {
    for (int64_t b = 0; b < n / kQKK; ++b) {
      const int64_t g0 = b * (kQKK / G);
      block(x + b * kQKK, imp ? imp + b * kQKK : nullptr,
            RowOut{o.scale + g0, o.offset + g0, o.sw ? o.sw + g0 : nullptr, o.L ? o.L + b * kQKK : nullptr});
    }
  };
  switch (t) {
    case GgmlType::Q4_0:
      imp ? init_sym_simple_row_weighted(x, n, imp, 8, o) : init_sym_simple_row(x, n, 8.f, o);
      return;
    case GgmlType::Q5_0:
      imp ? init_sym_simple_row_weighted(x, n, imp, 16, o) : init_sym_simple_row(x, n, 16.f, o);
      return;
    case GgmlType::Q8_0: init_sym_simple_row(x, n, 127.f, o); return;  // Q8_0 ignores importance
    case GgmlType::Q4_1: init_affine_simple_row(x, n, imp, 15, o); return;
    case GgmlType::Q5_1: init_affine_simple_row(x, n, imp, 31, o); return;
    case GgmlType::Q2_K:
      k_blocks([](const float* xb, const float* ib, RowOut ob) { init_q2k_block(xb, ib, ob); });
      return;
    case GgmlType::Q3_K:
      k_blocks([](const float* xb, const float* ib, RowOut ob) { init_q3k_block(xb, ib, ob); });
      return;
    case GgmlType::Q4_K:
      k_blocks([](const float* xb, const float* ib, RowOut ob) { init_k4_block(xb, ib, 15, ob); });
      return;
    case GgmlType::Q5_K:
      k_blocks([](const float* xb, const float* ib, RowOut ob) { init_k4_block(xb, ib, 31, ob); });
      return;
    case GgmlType::Q6_K:
      k_blocks([](const float* xb, const float* ib, RowOut ob) { init_q6k_block(xb, ib, ob); });
      return;
    default: break;
  }
  AR_CHECK(false, "GGUF tuning: type ", ggml_info(t).name, " is not tunable");
}

bool is_k_quant(GgmlType t) {
  return t == GgmlType::Q2_K || t == GgmlType::Q3_K || t == GgmlType::Q4_K || t == GgmlType::Q5_K ||
         t == GgmlType::Q6_K;
}

}  // namespace

GgufTuneInit gguf_tune_init(GgmlType t, const float* w, int64_t rows, int64_t cols, const float* imp) {
  AR_CHECK(gguf_tunable(t), "GGUF tuning: type ", ggml_info(t).name, " is not tunable");
  const int64_t block = ggml_info(t).block_elems;
  AR_CHECK(cols > 0 && cols % block == 0, "GGUF tuning ", ggml_info(t).name, ": row of ", cols,
           " weights is not a multiple of the block size ", block);
  GgufTuneInit init;
  init.type = t;
  init.rows = rows;
  init.cols = cols;
  init.groups = gguf_tune_groups(t, cols);
  // Only the formats whose quantization differs with importance record it (Q8_0 ignores it, Q6_K
  // only uses it in the search done here).
  init.weighted = imp && t != GgmlType::Q8_0 && t != GgmlType::Q6_K;
  const size_t ng = size_t(rows * init.groups);
  init.scale.assign(ng, 0.f);
  init.offset.assign(ng, 0.f);
  const bool sums = init.weighted && is_k_quant(t);
  if (sums) init.weight_sum.assign(ng, 0.f);
  auto out_of = [&](int64_t r, uint8_t* L) {
    const size_t g0 = size_t(r * init.groups);
    return RowOut{init.scale.data() + g0, init.offset.data() + g0, sums ? init.weight_sum.data() + g0 : nullptr, L};
  };
#pragma omp parallel for schedule(static) if (rows * cols >= (int64_t(1) << 16))
  for (int64_t r = 0; r < rows; ++r) init_row(t, w + r * cols, cols, imp, out_of(r, nullptr));

  // The RTN keeps a k-quant search's levels where the stored sub-block scale is 0; find those
  // groups at the RTN point and redo their rows' searches for the levels (rare, so not parallel).
  if (!is_k_quant(t)) return init;
  std::vector<float> d_eff(ng);
  gguf_tune_group_scales(d_eff.data(), nullptr, init, nullptr, nullptr);
  const int64_t G = gguf_tune_group_size(t);
  std::vector<uint8_t> L(static_cast<size_t>(cols));
  std::vector<float> s_tmp(size_t(init.groups)), o_tmp(size_t(init.groups)), sw_tmp(size_t(init.groups));
  for (int64_t r = 0; r < rows; ++r) {
    const float* dr = d_eff.data() + r * init.groups;
    if (std::find(dr, dr + init.groups, 0.f) == dr + init.groups) continue;
    init_row(t, w + r * cols, cols, imp, RowOut{s_tmp.data(), o_tmp.data(), sums ? sw_tmp.data() : nullptr, L.data()});
    for (int64_t g = 0; g < init.groups; ++g) {
      if (dr[g] != 0) continue;
      init.kept_groups.push_back(r * init.groups + g);
      init.kept_codes.insert(init.kept_codes.end(), L.begin() + g * G, L.begin() + (g + 1) * G);
    }
  }
  return init;
}

}  // namespace ar
