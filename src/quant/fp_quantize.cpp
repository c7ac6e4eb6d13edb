#include "quant/fp_quantize.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/fp_formats.h"

namespace ar {

namespace {

constexpr int64_t kParallelMin = int64_t(1) << 16;  // weights below which threads cost more than they save

float tensor_amax(const float* w, int64_t n) {
  float m = 0.f;
#pragma omp parallel for reduction(max : m) schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(w[i]));
  return m;  // max is exact and order-free: the same for every thread count
}

// MXFP4 / MXFP8 / NVFP4: one scale code per (row, block of `group`).
void quantize_row_blocks(QuantizedWeight& q, const float* w, const float* v, const float* max_scale) {
  const DataType t = q.scheme.data_type;
  const int64_t G = q.group, ng = q.n_groups, in = q.in;
#pragma omp parallel for schedule(static) if (q.out * in >= kParallelMin)
  for (int64_t o = 0; o < q.out; ++o)
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t i0 = g * G, n = std::min(G, in - i0), at = o * in + i0, gi = o * ng + g;
      const float ms = max_scale ? max_scale[gi] : 1.f;
      const float* vg = v ? v + at : nullptr;
      q.scale_codes[size_t(gi)] =
          t == DataType::NVFP4
              ? nvfp4_quantize_block(q.codes.data() + at, w + at, vg, n, q.global_scale, ms)
              : mx_quantize_block(q.codes.data() + at, w + at, vg, n, t == DataType::MXFP4 ? MxElem::FP4 : MxElem::FP8,
                                  ms);
    }
}

void quantize_fp8_channels(QuantizedWeight& q, const float* w, const float* v, const float* max_scale) {
  const int64_t in = q.in;
#pragma omp parallel for schedule(static) if (q.out * in >= kParallelMin)
  for (int64_t o = 0; o < q.out; ++o) {
    float amax = 0.f;
    for (int64_t i = 0; i < in; ++i) amax = std::max(amax, std::fabs(w[o * in + i]));
    const float scale = fp8_scale(amax, max_scale ? max_scale[o] : 1.f);
    q.scales_f32[size_t(o)] = scale;
    fp8_quantize(q.codes.data() + o * in, w + o * in, v ? v + o * in : nullptr, in, scale);
  }
}

void quantize_fp8_blocks(QuantizedWeight& q, const float* w, const float* v, const float* max_scale) {
  const int64_t B = kFp8BlockSize, in = q.in, ng = q.n_groups, block_rows = q.scale_rows();
#pragma omp parallel for schedule(static) if (q.out * in >= kParallelMin)
  for (int64_t br = 0; br < block_rows; ++br) {
    const int64_t o0 = br * B, o1 = std::min(q.out, o0 + B);
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t i0 = g * B, n = std::min(B, in - i0), si = br * ng + g;
      float amax = 0.f;
      for (int64_t o = o0; o < o1; ++o)
        for (int64_t i = i0; i < i0 + n; ++i) amax = std::max(amax, std::fabs(w[o * in + i]));
      const float scale = fp8_scale(amax, max_scale ? max_scale[si] : 1.f);
      q.scales_f32[size_t(si)] = scale;
      for (int64_t o = o0; o < o1; ++o)
        fp8_quantize(q.codes.data() + o * in + i0, w + o * in + i0, v ? v + o * in + i0 : nullptr, n, scale);
    }
  }
}

}  // namespace

QuantizedWeight quantize_fp(const float* w, int64_t out, int64_t in, const QuantScheme& s, const std::string& name,
                            const float* v, const float* max_scale, float global_amax) {
  AR_CHECK(s.is_fp() && s == fp_scheme(s.data_type), "quantize_fp: scheme ", scheme_label(s), " (bits ", s.bits,
           ", group_size ", s.group_size, ") is not a floating-point format's own");
  check_finite(w, out * in, name);
  QuantizedWeight q = QuantizedWeight::allocate(s, out, in);
  switch (s.data_type) {
    case DataType::NVFP4:
      q.global_scale = nvfp4_global_scale(global_amax >= 0.f ? global_amax : tensor_amax(w, out * in));
      [[fallthrough]];
    case DataType::MXFP4:
    case DataType::MXFP8: quantize_row_blocks(q, w, v, max_scale); break;
    case DataType::FP8: quantize_fp8_channels(q, w, v, max_scale); break;
    case DataType::FP8Block: quantize_fp8_blocks(q, w, v, max_scale); break;
    case DataType::Int: break;
  }
  return q;
}

}  // namespace ar
