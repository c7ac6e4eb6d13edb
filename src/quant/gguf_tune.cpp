// Forward and straight-through backward of the GGUF tuning quantizer (see gguf_tune.h). Both go
// through one "plan" per block: the clipped group scales/mins, quantized as the format stores them
// (written into the block's scale fields), and per group the values the codes are rounded with and
// dequantized by. The forward packs the codes with the RTN's packers (gguf_pack.h) and dequantizes
// with the format's own dequantizer, so w' equals the file's values by construction; the backward
// recomputes the plan (cheap next to the GEMMs) instead of saving it.
#include "quant/gguf_strict_fp.h"  // first: no FMA contraction, as the RTN it must reproduce

#include "quant/gguf_tune.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/gguf_blocks.h"
#include "quant/gguf_kscales.h"
#include "quant/gguf_pack.h"
#include "quant/gguf_scale_search.h"

namespace ar {

namespace {

using gguf::round_nearest;

// One group's quantization as the forward applies it:
//   code = clamp(R((x + m_r) / d_r + v)), w' = d_eff * (code - zero) - m_eff,
// plus the chain factors of the clipped s' = s'(a, b), m' = m'(a, b) for the backward.
struct GroupPlan {
  float d_eff = 0, m_eff = 0;  // dequantized scale and min
  float d_r = 0, m_r = 0;      // what the codes are rounded with
  float inv_r = 0;             // 1 / d_r as the reference simple formats compute it (0 if d_r = 0)
  float ds_da = 0, ds_db = 0;  // ds'/da, ds'/db
  float dm_da = 0;             // dm'/da (affine)
  bool live = false;           // s' passes a gradient (not clamped at 0, d_eff != 0)
};

// How a format turns (x + m_r) / d_r + v into an integer: the reference simple quantizers truncate
// after adding zero + 0.5 (half up), Q8_0 rounds half away from zero, everything else (k-quants and
// the importance paths, which re-round with the stored scale) rounds half to even.
enum class Rounding { kHalfUp, kAway, kNearest };

// Inputs of one block's plan: per group of the block, the init constants and the clip factors.
struct BlockIn {
  const float* s;
  const float* m;
  const float* a;   // null = 1
  const float* b;   // null = 1
  const float* sw;  // weighted k-quants
  bool weighted;
};

inline float factor(const float* f, int j) { return f ? f[j] : 1.f; }

// Affine clip: range [lo, hi] = [-m, s*N - m] -> s' = (b*hi - a*lo) / N, m' = a*m. Written as
// s + (hi*(b-1) - lo*(a-1)) / N and skipped at a = b = 1, so the RTN point keeps s bit for bit.
void clip_affine(float s, float m, float a, float b, float N, float* s_out, float* m_out, GroupPlan& p) {
  p = GroupPlan{};
  const float hi = s * N - m, lo = -m;
  float sc = s;
  if (a != 1.f || b != 1.f) sc = s + (hi * (b - 1.f) - lo * (a - 1.f)) / N;
  p.live = true;
  if (!(sc >= 0)) {
    sc = 0;
    p.live = false;
  }
  *s_out = sc;
  *m_out = m * a;
  p.ds_da = -lo / N;
  p.ds_db = hi / N;
  p.dm_da = m;
}

// Symmetric clip of a signed scale: s < 0 maps the group's max (factor b), s > 0 its min (a).
float clip_signed(float s, float a, float b, GroupPlan& p) {
  p = GroupPlan{};
  p.live = true;
  if (s < 0) {
    p.ds_db = s;
    return s * b;
  }
  p.ds_da = s;
  return s * a;
}

// Rounding values of a simple format: the f32 scale for the reference path, the stored ones for
// the importance path (which re-rounds, see gguf_tune.h).
void set_simple_rounding(GroupPlan& p, float s, float m, bool weighted) {
  if (weighted) {
    p.d_r = p.d_eff;
    p.m_r = p.m_eff;
  } else {
    p.d_r = s;
    p.m_r = m;
  }
  p.inv_r = p.d_r != 0 ? 1.0f / p.d_r : 0.0f;
  if (p.d_eff == 0) p.live = false;
}

void finish_k_group(GroupPlan& p) {
  p.d_r = p.d_eff;
  p.m_r = p.m_eff;
  p.inv_r = p.d_r != 0 ? 1.0f / p.d_r : 0.0f;
  if (p.d_eff == 0) p.live = false;
}

// ---- per-format plans (scale fields of the block + GroupPlan per group) ------------------------

// A format's constants: block type, weights per group G, groups per block, the code of level 0
// and the code range [lo, hi], affine (x ~ d*q - m) or symmetric, and the reference path's rounding.
template <typename B, int G, int Groups, int Zero, int Lo, int Hi, bool Affine, Rounding Ref>
struct Fmt {
  using Block = B;
  static constexpr int kG = G, kGroups = Groups, kZero = Zero, kLo = Lo, kHi = Hi;
  static constexpr bool kAffine = Affine;
  static constexpr Rounding kRef = Ref;
};

// Q4_0 / Q5_0 / Q8_0: the signed RTN scale or the opposite side's candidate, whichever is larger
// after clipping; Q8_0 takes the magnitude (its levels are symmetric). Stores d as fp16.
void plan_sym_simple(const BlockIn& in, bool magnitude, bool weighted, uint16_t* d16, GroupPlan& p) {
  GroupPlan p2;
  const float c1 = clip_signed(in.s[0], factor(in.a, 0), factor(in.b, 0), p);
  const float c2 = clip_signed(in.m[0], factor(in.a, 0), factor(in.b, 0), p2);
  float d = c1;
  if (std::fabs(c2) > std::fabs(c1)) {
    d = c2;
    p = p2;
  }
  if (magnitude) {
    if (d < 0) {
      p.ds_da = -p.ds_da;
      p.ds_db = -p.ds_db;
    }
    d = std::fabs(d);
  }
  *d16 = f32_to_f16(d);
  p.d_eff = f16_to_f32(*d16);
  set_simple_rounding(p, d, 0.f, weighted);
}

struct FmtQ4_0 : Fmt<BlockQ4_0, 32, 1, 8, 0, 15, false, Rounding::kHalfUp> {
  static void plan(const BlockIn& in, Block& y, GroupPlan* p) { plan_sym_simple(in, false, in.weighted, &y.d, p[0]); }
};

struct FmtQ5_0 : Fmt<BlockQ5_0, 32, 1, 16, 0, 31, false, Rounding::kHalfUp> {
  static void plan(const BlockIn& in, Block& y, GroupPlan* p) { plan_sym_simple(in, false, in.weighted, &y.d, p[0]); }
};

// Q8_0 has no importance path.
struct FmtQ8_0 : Fmt<BlockQ8_0, 32, 1, 0, -127, 127, false, Rounding::kAway> {
  static void plan(const BlockIn& in, Block& y, GroupPlan* p) { plan_sym_simple(in, true, false, &y.d, p[0]); }
};

template <int N>
void plan_affine_simple(const BlockIn& in, uint16_t* d16, uint16_t* m16, GroupPlan& p) {
  float s, m;
  clip_affine(in.s[0], in.m[0], factor(in.a, 0), factor(in.b, 0), float(N), &s, &m, p);
  *d16 = f32_to_f16(s);
  *m16 = f32_to_f16(-m);  // the block stores the min: x = d*q + min
  p.d_eff = f16_to_f32(*d16);
  p.m_eff = -f16_to_f32(*m16);
  set_simple_rounding(p, s, m, in.weighted);
}

struct FmtQ4_1 : Fmt<BlockQ4_1, 32, 1, 0, 0, 15, true, Rounding::kHalfUp> {
  static void plan(const BlockIn& in, Block& y, GroupPlan* p) { plan_affine_simple<15>(in, &y.d, &y.m, p[0]); }
};

struct FmtQ5_1 : Fmt<BlockQ5_1, 32, 1, 0, 0, 31, true, Rounding::kHalfUp> {
  static void plan(const BlockIn& in, Block& y, GroupPlan* p) { plan_affine_simple<31>(in, &y.d, &y.m, p[0]); }
};

// Clipped scales/mins of the affine k-quants' sub-blocks.
template <int kGroups, int N>
void clip_affine_block(const BlockIn& in, float* s, float* m, GroupPlan* p) {
  for (int j = 0; j < kGroups; ++j)
    clip_affine(in.s[j], in.m[j], factor(in.a, j), factor(in.b, j), float(N), s + j, m + j, p[j]);
}

// Clipped signed scales of the symmetric k-quants' sub-blocks.
template <int kGroups>
void clip_signed_block(const BlockIn& in, float* s, GroupPlan* p) {
  for (int j = 0; j < kGroups; ++j) s[j] = clip_signed(in.s[j], factor(in.a, j), factor(in.b, j), p[j]);
}

// Q4_K / Q5_K: 8 sub-blocks of 32, 6-bit scales and mins against fp16 d / dmin; by max as the
// reference, or by the weighted search (fit_positive_levels) on the importance path.
template <int N>
void plan_k4(const BlockIn& in, uint16_t* d16, uint16_t* dmin16, uint8_t* packed, GroupPlan* p) {
  float s[8], m[8];
  clip_affine_block<8, N>(in, s, m, p);
  store_k4_scales(s, m, in.weighted ? in.sw : nullptr, packed, d16, dmin16);
  const float d = f16_to_f32(*d16), dmin = f16_to_f32(*dmin16);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, mm;
    get_scale_min_k4(j, packed, &sc, &mm);
    p[j].d_eff = d * sc;
    p[j].m_eff = dmin * mm;
    finish_k_group(p[j]);
  }
}

struct FmtQ4K : Fmt<BlockQ4K, 32, 8, 0, 0, 15, true, Rounding::kNearest> {
  static void plan(const BlockIn& in, Block& y, GroupPlan* p) { plan_k4<15>(in, &y.d, &y.dmin, y.scales, p); }
};

struct FmtQ5K : Fmt<BlockQ5K, 32, 8, 0, 0, 31, true, Rounding::kNearest> {
  static void plan(const BlockIn& in, Block& y, GroupPlan* p) { plan_k4<31>(in, &y.d, &y.dmin, y.scales, p); }
};

// Q2_K: 16 sub-blocks of 16, 4-bit scales and mins against fp16 d / dmin.
struct FmtQ2K : Fmt<BlockQ2K, 16, 16, 0, 0, 3, true, Rounding::kNearest> {
  static void plan(const BlockIn& in, Block& y, GroupPlan* p) {
    float s[16], m[16];
    clip_affine_block<16, 3>(in, s, m, p);
    store_q2k_scales(s, m, in.weighted ? in.sw : nullptr, y);
    const float d = f16_to_f32(y.d), dmin = f16_to_f32(y.dmin);
    for (int j = 0; j < 16; ++j) {
      p[j].d_eff = d * float(y.scales[j] & 0xF);
      p[j].m_eff = dmin * float(y.scales[j] >> 4);
      finish_k_group(p[j]);
    }
  }
};

// Q3_K: 16 sub-blocks of 16, signed 6-bit scales (stored +32) against one fp16 d.
struct FmtQ3K : Fmt<BlockQ3K, 16, 16, 4, 0, 7, false, Rounding::kNearest> {
  static void plan(const BlockIn& in, Block& y, GroupPlan* p) {
    float s[16];
    clip_signed_block<16>(in, s, p);
    store_q3k_scales(s, in.weighted ? in.sw : nullptr, y);
    const float d = f16_to_f32(y.d);
    for (int j = 0; j < 16; ++j) {
      p[j].d_eff = d * float(get_scale_q3k(j, y.scales) - 32);
      finish_k_group(p[j]);
    }
  }
};

// Q6_K: 16 sub-blocks of 16, int8 scales against one fp16 d; an all-zero block is stored as zeros.
struct FmtQ6K : Fmt<BlockQ6K, 16, 16, 32, 0, 63, false, Rounding::kNearest> {
  static void plan(const BlockIn& in, Block& y, GroupPlan* p) {
    float s[16];
    clip_signed_block<16>(in, s, p);
    store_q6k_scales(s, y);
    const float d = f16_to_f32(y.d);
    for (int j = 0; j < 16; ++j) {
      p[j].d_eff = d * y.scales[j];
      finish_k_group(p[j]);
    }
  }
};

// ---- the shared row loops ----------------------------------------------------------------------

// The integer before clamping, in code units (level + zero), exactly as the forward rounds it.
// |y| is bounded first so that clipping factors near 0 cannot overflow the integer conversions;
// real codes are far inside the bound.
template <typename F, Rounding R>
inline int raw_code(float x, float v, const GroupPlan& p) {
  constexpr float kBound = 1 << 20;
  if constexpr (R == Rounding::kHalfUp) {
    float y = (x + p.m_r) * p.inv_r + (float(F::kZero) + 0.5f);
    y = std::clamp(y + v, -kBound, kBound);
    return int(std::floor(y));
  } else if constexpr (R == Rounding::kAway) {
    const float y = std::clamp(x * p.inv_r + v, -kBound, kBound);
    return int(std::round(y)) + F::kZero;
  } else {
    const float y = std::clamp((x + p.m_r) / p.d_r + v, -kBound, kBound);
    return round_nearest(y) + F::kZero;
  }
}

// Calls fn.template operator()<R>() with the rounding of the init's path, fixed at compile time
// so the per-weight loops carry no switch.
template <typename F, typename Fn>
void with_rounding(const GgufTuneInit& init, Fn&& fn) {
  if (init.weighted)
    fn.template operator()<Rounding::kNearest>();
  else
    fn.template operator()<F::kRef>();
}

// The RTN's kept codes of group key (row*groups + g), or null.
const uint8_t* kept_codes(const GgufTuneInit& init, int64_t key, int G) {
  const auto it = std::lower_bound(init.kept_groups.begin(), init.kept_groups.end(), key);
  if (it == init.kept_groups.end() || *it != key) return nullptr;
  return init.kept_codes.data() + (it - init.kept_groups.begin()) * G;
}

template <typename F>
BlockIn block_in(const GgufTuneInit& init, int64_t row, int64_t blk, const float* min_scale, const float* max_scale) {
  const int64_t g0 = row * init.groups + blk * F::kGroups;
  BlockIn in;
  in.s = init.scale.data() + g0;
  in.m = init.offset.data() + g0;
  in.a = min_scale ? min_scale + g0 : nullptr;
  in.b = max_scale ? max_scale + g0 : nullptr;
  in.sw = init.weight_sum.empty() ? nullptr : init.weight_sum.data() + g0;
  in.weighted = init.weighted;
  return in;
}

// One row: block bytes `out` (ggml_row_bytes) from the row's weights x and rounding offsets v.
template <typename F, Rounding R>
void forward_row(typename F::Block* out, const float* x, const float* v, int64_t row, const GgufTuneInit& init,
                 const float* min_scale, const float* max_scale) {
  constexpr int kBlock = F::kG * F::kGroups;
  const int64_t nb = init.cols / kBlock;
  using Code = std::conditional_t<(F::kLo < 0), int8_t, uint8_t>;  // Q8_0's codes are signed
  GroupPlan p[F::kGroups];
  Code L[kBlock];
  for (int64_t b = 0; b < nb; ++b) {
    typename F::Block& y = out[b];
    F::plan(block_in<F>(init, row, b, min_scale, max_scale), y, p);
    for (int j = 0; j < F::kGroups; ++j) {
      const int64_t i0 = b * kBlock + j * F::kG;
      Code* Lj = L + j * F::kG;
      if (p[j].d_r == 0) {
        // Any code dequantizes to the same value; the RTN's, where it kept the search's levels.
        const uint8_t* kept = kept_codes(init, row * init.groups + b * F::kGroups + j, F::kG);
        for (int i = 0; i < F::kG; ++i) Lj[i] = Code(kept ? kept[i] : (F::kAffine ? 0 : F::kZero));
        continue;
      }
      for (int i = 0; i < F::kG; ++i)
        Lj[i] = Code(std::clamp(raw_code<F, R>(x[i0 + i], v ? v[i0 + i] : 0.f, p[j]), F::kLo, F::kHi));
    }
    pack_codes(L, y);
  }
}

// One row's gradients: dv (cols) and da, db (groups) accumulated, from dw (cols).
template <typename F, Rounding R>
void backward_row(float* dv, float* da, float* db, const float* dw, const float* x, const float* v, int64_t row,
                  const GgufTuneInit& init, const float* min_scale, const float* max_scale, bool strict) {
  constexpr int kBlock = F::kG * F::kGroups;
  const int64_t nb = init.cols / kBlock;
  GroupPlan p[F::kGroups];
  typename F::Block scratch;
  for (int64_t b = 0; b < nb; ++b) {
    F::plan(block_in<F>(init, row, b, min_scale, max_scale), scratch, p);
    for (int j = 0; j < F::kGroups; ++j) {
      const GroupPlan& q = p[j];
      const int64_t i0 = b * kBlock + j * F::kG, gi = b * F::kGroups + j;
      float gs = 0, gm = 0;  // dL/ds', dL/dm'
      if (q.d_eff == 0 || q.d_r == 0) {
        // w' = -m_eff whatever the codes: only the min path.
        if (F::kAffine)
          for (int i = 0; i < F::kG; ++i) gm -= dw[i0 + i];
      } else {
        const float inv_d2 = 1.f / (q.d_r * q.d_r), dm_in = q.d_eff / q.d_r - 1.f;
        for (int i = 0; i < F::kG; ++i) {
          const float gw = dw[i0 + i], xi = x[i0 + i];
          const int t = raw_code<F, R>(xi, v ? v[i0 + i] : 0.f, q);
          // Strict: an integer on a bound is clamped too (torch 2.15's clamp, ClampGrad::Strict).
          const bool inside = strict ? t > F::kLo && t < F::kHi : t >= F::kLo && t <= F::kHi;
          const float level = float(std::clamp(t, F::kLo, F::kHi) - F::kZero);
          if (inside) {
            // w' = d_eff * (y + const) - m_eff, y = (x + m_r) / d_r + v.
            if (dv) dv[i0 + i] += gw * q.d_eff;
            gs += gw * (level - q.d_eff * (xi + q.m_r) * inv_d2);
            if (F::kAffine) gm += gw * dm_in;
          } else {
            gs += gw * level;
            if (F::kAffine) gm -= gw;
          }
        }
      }
      float ga = 0, gb = 0;
      if (q.live) {
        ga += gs * q.ds_da;
        gb += gs * q.ds_db;
      }
      if (F::kAffine) ga += gm * q.dm_da;
      if (da) da[gi] += ga;
      if (db) db[gi] += gb;
    }
  }
}

template <typename F>
void scales_row(float* d_eff, float* m_eff, int64_t row, const GgufTuneInit& init, const float* min_scale,
                const float* max_scale) {
  constexpr int kBlock = F::kG * F::kGroups;
  GroupPlan p[F::kGroups];
  typename F::Block scratch;
  for (int64_t b = 0; b < init.cols / kBlock; ++b) {
    F::plan(block_in<F>(init, row, b, min_scale, max_scale), scratch, p);
    for (int j = 0; j < F::kGroups; ++j) {
      d_eff[b * F::kGroups + j] = p[j].d_eff;
      if (m_eff) m_eff[b * F::kGroups + j] = p[j].m_eff;
    }
  }
}

// The original weight a row at a time as f32 (in place, or bf16 widened into a thread's buffer).
struct F32Rows {
  const float* w;
  int64_t cols;
  const float* row(int64_t r, std::vector<float>&) const { return w + r * cols; }
};
struct Bf16Rows {
  const uint16_t* w;
  int64_t cols;
  const float* row(int64_t r, std::vector<float>& buf) const {
    buf.resize(size_t(cols));
    for (int64_t i = 0; i < cols; ++i) buf[size_t(i)] = bf16_to_f32(w[r * cols + i]);
    return buf.data();
  }
};

void check_init(const GgufTuneInit& init, int64_t rows, int64_t cols) {
  AR_CHECK(gguf_tunable(init.type), "GGUF tuning: type ", ggml_info(init.type).name, " is not tunable");
  AR_CHECK(init.rows == rows && init.cols == cols, "GGUF tuning: init is for (", init.rows, ", ", init.cols,
           "), called with (", rows, ", ", cols, ")");
}

template <typename F, typename Rows>
void forward_t(float* w_dq, void* bytes, const Rows& w, const GgufTuneInit& init, const float* v,
               const float* min_scale, const float* max_scale) {
  const int64_t rows = init.rows, cols = init.cols;
  const size_t row_bytes = ggml_row_bytes(init.type, cols);
#pragma omp parallel if (rows * cols >= (int64_t(1) << 16))
  {
    std::vector<float> buf;
    std::vector<uint8_t> scratch(bytes ? 0 : row_bytes);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* dst = bytes ? static_cast<uint8_t*>(bytes) + size_t(r) * row_bytes : scratch.data();
      const float* x = w.row(r, buf);
      const float* vr = v ? v + r * cols : nullptr;
      with_rounding<F>(init, [&]<Rounding R>() {
        forward_row<F, R>(reinterpret_cast<typename F::Block*>(dst), x, vr, r, init, min_scale, max_scale);
      });
      if (w_dq) gguf_dequantize_row(init.type, dst, cols, w_dq + r * cols);
    }
  }
}

template <typename F, typename Rows>
void backward_t(float* dv, float* dmin, float* dmax, const float* dw, const Rows& w, const GgufTuneInit& init,
                const float* v, const float* min_scale, const float* max_scale, bool strict) {
  const int64_t rows = init.rows, cols = init.cols, G = init.groups;
#pragma omp parallel if (rows * cols >= (int64_t(1) << 16))
  {
    std::vector<float> buf;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = w.row(r, buf);
      with_rounding<F>(init, [&]<Rounding R>() {
        backward_row<F, R>(dv ? dv + r * cols : nullptr, dmin ? dmin + r * G : nullptr, dmax ? dmax + r * G : nullptr,
                           dw + r * cols, x, v ? v + r * cols : nullptr, r, init, min_scale, max_scale, strict);
      });
    }
  }
}

// Calls fn.template operator()<Fmt>() for the format of t.
template <typename Fn>
void dispatch(GgmlType t, Fn&& fn) {
  switch (t) {
    case GgmlType::Q4_0: fn.template operator()<FmtQ4_0>(); return;
    case GgmlType::Q4_1: fn.template operator()<FmtQ4_1>(); return;
    case GgmlType::Q5_0: fn.template operator()<FmtQ5_0>(); return;
    case GgmlType::Q5_1: fn.template operator()<FmtQ5_1>(); return;
    case GgmlType::Q8_0: fn.template operator()<FmtQ8_0>(); return;
    case GgmlType::Q2_K: fn.template operator()<FmtQ2K>(); return;
    case GgmlType::Q3_K: fn.template operator()<FmtQ3K>(); return;
    case GgmlType::Q4_K: fn.template operator()<FmtQ4K>(); return;
    case GgmlType::Q5_K: fn.template operator()<FmtQ5K>(); return;
    case GgmlType::Q6_K: fn.template operator()<FmtQ6K>(); return;
    default: break;
  }
  AR_CHECK(false, "GGUF tuning: type ", ggml_info(t).name, " is not tunable");
}

template <typename Rows>
void forward_any(float* w_dq, void* bytes, const Rows& w, const GgufTuneInit& init, const float* v,
                 const float* min_scale, const float* max_scale) {
  dispatch(init.type, [&]<typename F>() { forward_t<F>(w_dq, bytes, w, init, v, min_scale, max_scale); });
}

template <typename Rows>
void backward_any(float* dv, float* dmin, float* dmax, const float* dw, const Rows& w, const GgufTuneInit& init,
                  const float* v, const float* min_scale, const float* max_scale, ClampGrad cg) {
  const bool strict = cg == ClampGrad::Strict;
  dispatch(init.type,
           [&]<typename F>() { backward_t<F>(dv, dmin, dmax, dw, w, init, v, min_scale, max_scale, strict); });
}

}  // namespace

bool gguf_tunable(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return true;
    default: return false;
  }
}

int64_t gguf_tune_group_size(GgmlType t) {
  AR_CHECK(gguf_tunable(t), "GGUF tuning: type ", ggml_info(t).name, " is not tunable");
  return (t == GgmlType::Q2_K || t == GgmlType::Q3_K || t == GgmlType::Q6_K) ? 16 : 32;
}

int64_t gguf_tune_groups(GgmlType t, int64_t cols) { return cols / gguf_tune_group_size(t); }

void gguf_fake_quant_forward(float* w_dq, void* bytes, const float* w, int64_t rows, int64_t cols,
                             const GgufTuneInit& init, const float* v, const float* min_scale, const float* max_scale) {
  check_init(init, rows, cols);
  forward_any(w_dq, bytes, F32Rows{w, cols}, init, v, min_scale, max_scale);
}

void gguf_fake_quant_forward(float* w_dq, void* bytes, const uint16_t* w_bf16, int64_t rows, int64_t cols,
                             const GgufTuneInit& init, const float* v, const float* min_scale, const float* max_scale) {
  check_init(init, rows, cols);
  forward_any(w_dq, bytes, Bf16Rows{w_bf16, cols}, init, v, min_scale, max_scale);
}

void gguf_fake_quant_backward(float* dv, float* dmin_scale, float* dmax_scale, const float* dw_dq, const float* w,
                              int64_t rows, int64_t cols, const GgufTuneInit& init, const float* v,
                              const float* min_scale, const float* max_scale, ClampGrad cg) {
  check_init(init, rows, cols);
  backward_any(dv, dmin_scale, dmax_scale, dw_dq, F32Rows{w, cols}, init, v, min_scale, max_scale, cg);
}

void gguf_fake_quant_backward(float* dv, float* dmin_scale, float* dmax_scale, const float* dw_dq,
                              const uint16_t* w_bf16, int64_t rows, int64_t cols, const GgufTuneInit& init,
                              const float* v, const float* min_scale, const float* max_scale, ClampGrad cg) {
  check_init(init, rows, cols);
  backward_any(dv, dmin_scale, dmax_scale, dw_dq, Bf16Rows{w_bf16, cols}, init, v, min_scale, max_scale, cg);
}

void gguf_tune_group_scales(float* d_eff, float* m_eff, const GgufTuneInit& init, const float* min_scale,
                            const float* max_scale) {
  check_init(init, init.rows, init.cols);
  const int64_t G = init.groups;
  dispatch(init.type, [&]<typename F>() {
#pragma omp parallel for schedule(static) if (init.rows * init.cols >= (int64_t(1) << 16))
    for (int64_t r = 0; r < init.rows; ++r)
      scales_row<F>(d_eff + r * G, m_eff ? m_eff + r * G : nullptr, r, init, min_scale, max_scale);
  });
}

}  // namespace ar
