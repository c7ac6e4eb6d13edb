// Fake quantization for the floating-point formats and its straight-through backward. The
// forward runs the block quantizers of quant/fp_formats on a small code buffer and decodes it, so
// w' is quantize_fp's by construction; the backward recomputes each block's scale (cheap next to
// the GEMMs) instead of saving it. The derivative conventions are listed in the header.
#include "quant/fp_fake_quant_grad.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "quant/fp_formats.h"

namespace ar {

namespace {

constexpr int64_t kParallelMin = int64_t(1) << 16;  // weights below which threads cost more than they save

float reciprocal(float x) { return x == 0.f ? 0.f : 1.f / x; }  // AutoRound's get_reciprocal

// An MX element format: its largest value (the clamp), the smallest private exponent AutoRound's
// quant_element lets through (2 - 2^(ebits-1): 0 for E2M1, -6 for E4M3) and the scale's emax.
struct MxElement {
  MxElem e;
  float lim;
  int min_exp;
  int emax;
  float round(float x) const { return e == MxElem::FP4 ? round_e2m1(x) : round_e4m3(x); }
};
MxElement mx_element(DataType t) {
  return t == DataType::MXFP4 ? MxElement{MxElem::FP4, kE2M1Max, 0, 2} : MxElement{MxElem::FP8, kE4M3Max, -6, 8};
}

float block_amax(const float* x, int64_t n) {
  float m = 0.f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

template <typename Rows>
float rows_amax(const Rows& rows, int64_t out) {
  const int64_t in = rows.in;
  float m = 0.f;
#pragma omp parallel reduction(max : m) if (out * in >= kParallelMin)
  {
    std::vector<float> buf(Rows::kWidens ? size_t(in) : 0);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < out; ++o) m = std::max(m, block_amax(rows.row(o, buf.data()), in));
  }
  return m;  // max is exact and order-free
}

// FP8Block's tiles: f(o0, o1, r, i0, n, si, amax, max_scale) for every 128 x 128 tile, rows
// [o0, o1) and columns [i0, i0 + n), scale index si; r[k] is row o0 + k (widened when the source is
// bf16), amax the tile's largest |w|. Tile rows run in parallel, each tile's work in one thread.
template <typename Rows, typename F>
void for_each_fp8_tile(const Rows& rows, int64_t out, int64_t ng, const float* ms, const F& f) {
  const int64_t B = kFp8BlockSize, in = rows.in, tiles = out / B + (out % B != 0 ? 1 : 0);
#pragma omp parallel if (out * in >= kParallelMin)
  {
    std::vector<float> buf(Rows::kWidens ? size_t(B * in) : 0);
    std::vector<const float*> r(static_cast<size_t>(B), nullptr);
#pragma omp for schedule(static)
    for (int64_t br = 0; br < tiles; ++br) {
      const int64_t o0 = br * B, o1 = std::min(out, o0 + B);
      for (int64_t o = o0; o < o1; ++o)
        r[size_t(o - o0)] = rows.row(o, Rows::kWidens ? buf.data() + (o - o0) * in : nullptr);
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t i0 = g * B, n = std::min(B, in - i0), si = br * ng + g;
        float amax = 0.f;
        for (int64_t o = o0; o < o1; ++o) amax = std::max(amax, block_amax(r[size_t(o - o0)] + i0, n));
        f(o0, o1, r.data(), i0, n, si, amax, ms ? ms[si] : 1.f);
      }
    }
  }
}

// ---- forward ----------------------------------------------------------------------------------

template <typename Rows>
void forward_rows(float* w_dq, const Rows& rows, int64_t out, const QuantScheme& s, const float* v,
                  const float* ms, float global_amax) {
  const int64_t in = rows.in, ng = num_groups(s, in);
  const DataType t = s.data_type;
  if (t == DataType::FP8Block) {
    for_each_fp8_tile(rows, out, ng, ms, [&](int64_t o0, int64_t o1, const float* const* r, int64_t i0, int64_t n,
                                             int64_t, float amax, float m) {
      const float scale = fp8_scale(amax, m);
      uint8_t codes[kFp8BlockSize];
      for (int64_t o = o0; o < o1; ++o) {
        fp8_quantize(codes, r[o - o0] + i0, v ? v + o * in + i0 : nullptr, n, scale);
        fp8_dequantize(w_dq + o * in + i0, codes, n, scale);
      }
    });
    return;
  }
  const int64_t G = s.group_size;
  const float gs =
      t == DataType::NVFP4 ? nvfp4_global_scale(global_amax >= 0.f ? global_amax : rows_amax(rows, out)) : 0.f;
#pragma omp parallel if (out * in >= kParallelMin)
  {
    std::vector<float> buf(Rows::kWidens ? size_t(in) : 0);
    uint8_t codes[256];
#pragma omp for schedule(static)
    for (int64_t o = 0; o < out; ++o) {
      const float* wr = rows.row(o, buf.data());
      const float* vr = v ? v + o * in : nullptr;
      if (t == DataType::FP8) {
        const float scale = fp8_scale(block_amax(wr, in), ms ? ms[o] : 1.f);
        for (int64_t c0 = 0; c0 < in; c0 += 256) {  // codes in chunks: a row needs no allocation
          const int64_t m = std::min<int64_t>(256, in - c0);
          fp8_quantize(codes, wr + c0, vr ? vr + c0 : nullptr, m, scale);
          fp8_dequantize(w_dq + o * in + c0, codes, m, scale);
        }
        continue;
      }
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t i0 = g * G, n = std::min(G, in - i0), gi = o * ng + g;
        const float m = ms ? ms[gi] : 1.f;
        const float* vg = vr ? vr + i0 : nullptr;
        float* dst = w_dq + o * in + i0;
        if (t == DataType::NVFP4) {
          nvfp4_dequantize_block(dst, codes, n, nvfp4_quantize_block(codes, wr + i0, vg, n, gs, m), gs);
        } else {
          const MxElem e = mx_element(t).e;
          mx_dequantize_block(dst, codes, n, mx_quantize_block(codes, wr + i0, vg, n, e, m), e);
        }
      }
    }
  }
}

// ---- backward, one block each ------------------------------------------------------------------
// Each returns dL/dmax_scale of its block (0 where no gradient reaches it) and adds dL/dv.

// w' = q(clamp(w/s + v)) · s, s = 2^clamp(floor(log2(amax · ms)) - emax, ±127).
float mx_block_backward(float* dv, const float* gw, const float* w, const float* v, int64_t n, const MxElement& f,
                        float ms, bool strict) {
  const float amax = block_amax(w, n), mv = amax * ms;
  const float scale = decode_e8m0(mx_scale_code(mv, f.e));
  float dscale = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    float t = w[j] / scale;
    if (v) t += v[j];
    const bool inside = strict ? t > -f.lim && t < f.lim : t >= -f.lim && t <= f.lim;
    const float tc = std::clamp(t, -f.lim, f.lim), q = f.round(tc);
    // d q / d tc: 0 at tc = 0, and (strict) where q reached ±lim (quant_element's closing clamp);
    // q / tc through the private exponent where it is not clipped; 1 where it is.
    const int pe = tc == 0.f ? 0 : std::ilogb(tc);
    const bool pe_passes = strict ? pe > f.min_exp : pe >= f.min_exp;
    const float de = tc == 0.f || (strict && std::fabs(q) == f.lim) ? 0.f : pe_passes ? q / tc : 1.f;
    const float gt = inside ? gw[j] * scale * de : 0.f;                             // dL/dt
    if (dv) dv[j] += gt;
    dscale += gw[j] * q - gt * w[j] / (scale * scale);
  }
  if (mv == 0.f) return 0.f;  // the exponent came from the constant branch (log2 of 1)
  const int e = std::ilogb(mv) - f.emax;
  if (strict ? e <= -127 || e >= 127 : e < -127 || e > 127) return 0.f;  // the exponent clamp
  // d s / d ms = s·ln2 · 1 / (mv·ln2) · amax.
  return dscale * scale / mv * amax;
}

// w' = e2m1(clamp(w·os + v, ±6)) / os, os = 1 / (s / gs), s = e4m3(clamp(gs · amax·ms / 6, ±448)).
float nvfp4_block_backward(float* dv, const float* gw, const float* w, const float* v, int64_t n, float gs,
                           float ms, bool strict) {
  const float amax = block_amax(w, n);
  const float raw = gs * ((amax * ms) * (1.f / 6.f));
  const float scale = round_e4m3(std::clamp(raw, -kE4M3Max, kE4M3Max));
  const float d = scale * reciprocal(gs), os = reciprocal(d), back = reciprocal(os);
  if (os == 0.f) return 0.f;  // a zero scale: w' = 0 through constant branches
  float dos = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    float t = w[j] * os;
    if (v) t += v[j];
    const bool inside = strict ? t > -kE2M1Max && t < kE2M1Max : t >= -kE2M1Max && t <= kE2M1Max;
    const float tc = std::clamp(t, -kE2M1Max, kE2M1Max), c = round_e2m1(tc);
    // cast_to_fp4: 0 at tc = 0 (torch.sign) and (strict) where c reached ±6 (its closing clamp).
    const bool passes = inside && tc != 0.f && !(strict && std::fabs(c) == kE2M1Max);
    const float gt = passes ? gw[j] * back : 0.f;  // dL/dt
    if (dv) dv[j] += gt;
    dos += gt * w[j] - gw[j] * c / (os * os);
  }
  if (strict ? raw >= kE4M3Max : raw > kE4M3Max) return 0.f;  // the scale clamp
  const float dscale = dos * (-1.f / (d * d)) * reciprocal(gs);
  return dscale * gs * (1.f / 6.f) * amax;
}

// w' = e4m3(clamp(w/s + v, ±448)) · s over the block's rows; s = max(amax·ms / 448, 1/(448·512)).
struct Fp8Grad {
  float scale = 0, amax = 0;
  bool floored = false;
  bool strict = true;
  float dscale = 0;
};
Fp8Grad fp8_setup(float amax, float ms, bool strict) {
  Fp8Grad g;
  g.amax = amax;
  g.scale = fp8_scale(amax, ms);
  const float raw = (amax * ms) / kE4M3Max, floor = float(1.0 / (448.0 * 512.0));
  g.floored = strict ? raw <= floor : raw < floor;
  g.strict = strict;
  return g;
}
void fp8_row_backward(Fp8Grad& g, float* dv, const float* gw, const float* w, const float* v, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    float t = w[j] / g.scale;
    if (v) t += v[j];
    const bool inside = g.strict ? t > -kE4M3Max && t < kE4M3Max : t >= -kE4M3Max && t <= kE4M3Max;
    const float q = round_e4m3(std::clamp(t, -kE4M3Max, kE4M3Max));
    const float gt = inside ? gw[j] * g.scale : 0.f;
    if (dv) dv[j] += gt;
    g.dscale += gw[j] * q - gt * w[j] / (g.scale * g.scale);
  }
}
float fp8_finish(const Fp8Grad& g) { return g.floored ? 0.f : g.dscale / kE4M3Max * g.amax; }

template <typename Rows>
void backward_rows(float* dv, float* dms, const float* dw, const Rows& rows, int64_t out, const QuantScheme& s,
                   const float* v, const float* ms, bool strict, float global_amax) {
  const int64_t in = rows.in, ng = num_groups(s, in);
  const DataType t = s.data_type;
  if (t == DataType::FP8Block) {
    for_each_fp8_tile(rows, out, ng, ms, [&](int64_t o0, int64_t o1, const float* const* r, int64_t i0, int64_t n,
                                             int64_t si, float amax, float m) {
      Fp8Grad fg = fp8_setup(amax, m, strict);
      for (int64_t o = o0; o < o1; ++o) {
        const int64_t at = o * in + i0;
        fp8_row_backward(fg, dv ? dv + at : nullptr, dw + at, r[o - o0] + i0, v ? v + at : nullptr, n);
      }
      if (dms) dms[si] += fp8_finish(fg);
    });
    return;
  }
  const int64_t G = s.group_size;
  const float gs =
      t == DataType::NVFP4 ? nvfp4_global_scale(global_amax >= 0.f ? global_amax : rows_amax(rows, out)) : 0.f;
#pragma omp parallel if (out * in >= kParallelMin)
  {
    std::vector<float> buf(Rows::kWidens ? size_t(in) : 0);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < out; ++o) {
      const float* wr = rows.row(o, buf.data());
      const int64_t at = o * in;
      float* dvr = dv ? dv + at : nullptr;
      const float* vr = v ? v + at : nullptr;
      if (t == DataType::FP8) {
        Fp8Grad fg = fp8_setup(block_amax(wr, in), ms ? ms[o] : 1.f, strict);
        fp8_row_backward(fg, dvr, dw + at, wr, vr, in);
        if (dms) dms[o] += fp8_finish(fg);
        continue;
      }
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t i0 = g * G, n = std::min(G, in - i0), gi = o * ng + g;
        const float m = ms ? ms[gi] : 1.f;
        const float d = t == DataType::NVFP4
                            ? nvfp4_block_backward(dvr ? dvr + i0 : nullptr, dw + at + i0, wr + i0,
                                                   vr ? vr + i0 : nullptr, n, gs, m, strict)
                            : mx_block_backward(dvr ? dvr + i0 : nullptr, dw + at + i0, wr + i0,
                                                vr ? vr + i0 : nullptr, n, mx_element(t), m, strict);
        if (dms) dms[gi] += d;
      }
    }
  }
}

void check_fp(const QuantScheme& s) {
  AR_CHECK(s.is_fp() && s == fp_scheme(s.data_type), "fp fake quant: scheme ", scheme_label(s), " (bits ", s.bits,
           ", group_size ", s.group_size, ") is not a floating-point format's own");
}

}  // namespace

int64_t fp_scale_count(const QuantScheme& s, int64_t out, int64_t in) {
  check_fp(s);
  const int64_t ng = num_groups(s, in);
  if (s.data_type == DataType::FP8) return out;
  if (s.data_type == DataType::FP8Block) return (out / kFp8BlockSize + (out % kFp8BlockSize != 0 ? 1 : 0)) * ng;
  return out * ng;
}

void fp_fake_quant_forward(float* w_dq, const F32Rows& w, int64_t out, const QuantScheme& s, const float* v,
                           const float* max_scale, float global_amax) {
  check_fp(s);
  forward_rows(w_dq, w, out, s, v, max_scale, global_amax);
}
void fp_fake_quant_forward(float* w_dq, const Bf16Rows& w, int64_t out, const QuantScheme& s, const float* v,
                           const float* max_scale, float global_amax) {
  check_fp(s);
  forward_rows(w_dq, w, out, s, v, max_scale, global_amax);
}
void fp_fake_quant_backward(float* dv, float* dmax_scale, const float* dw_dq, const F32Rows& w, int64_t out,
                            const QuantScheme& s, const float* v, const float* max_scale, ClampGrad cg,
                            float global_amax) {
  check_fp(s);
  backward_rows(dv, dmax_scale, dw_dq, w, out, s, v, max_scale, cg == ClampGrad::Strict, global_amax);
}
void fp_fake_quant_backward(float* dv, float* dmax_scale, const float* dw_dq, const Bf16Rows& w, int64_t out,
                            const QuantScheme& s, const float* v, const float* max_scale, ClampGrad cg,
                            float global_amax) {
  check_fp(s);
  backward_rows(dv, dmax_scale, dw_dq, w, out, s, v, max_scale, cg == ClampGrad::Strict, global_amax);
}

}  // namespace ar
