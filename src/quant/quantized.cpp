#include "quant/quantized.h"

#include <algorithm>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/fp_formats.h"

namespace ar {

int64_t effective_group_size(const QuantScheme& s, int64_t in) {
  AR_CHECK(s.group_size == -1 || s.group_size > 0, "group_size ", s.group_size);
  return s.group_size == -1 ? in : s.group_size;
}

int64_t num_groups(const QuantScheme& s, int64_t in) {
  const int64_t g = effective_group_size(s, in);
  return in / g + (in % g != 0 ? 1 : 0);  // ceil without forming in + g - 1 (g may be huge)
}

QuantizedWeight QuantizedWeight::allocate(const QuantScheme& s, int64_t out, int64_t in) {
  AR_CHECK(out >= 0 && in > 0, "shape (", out, ", ", in, ")");
  QuantizedWeight q;
  q.scheme = s;
  q.out = out;
  q.in = in;
  q.group = effective_group_size(s, in);
  q.n_groups = num_groups(s, in);
  q.codes.resize(size_t(out * in));
  const size_t per_group = size_t(out * q.n_groups);
  switch (s.data_type) {
    case DataType::Int:
      q.scales.resize(per_group);
      q.zeros.resize(per_group);
      break;
    case DataType::MXFP4:
    case DataType::MXFP8:
    case DataType::NVFP4: q.scale_codes.resize(per_group); break;
    case DataType::FP8:
    case DataType::FP8Block: q.scales_f32.resize(size_t(q.scale_rows() * q.n_groups)); break;
  }
  return q;
}

int64_t QuantizedWeight::scale_rows() const {
  if (scheme.data_type == DataType::FP8) return out;
  if (scheme.data_type == DataType::FP8Block) return out / kFp8BlockSize + (out % kFp8BlockSize != 0 ? 1 : 0);
  return 0;
}

bool QuantizedWeight::sizes_match() const {
  if (out < 0 || in <= 0 || group != effective_group_size(scheme, in) || n_groups != num_groups(scheme, in))
    return false;
  const size_t per_group = size_t(out * n_groups);
  const DataType t = scheme.data_type;
  const bool is_int = t == DataType::Int;
  const bool block_codes = t == DataType::MXFP4 || t == DataType::MXFP8 || t == DataType::NVFP4;
  return codes.size() == size_t(out * in) && scales.size() == (is_int ? per_group : 0) &&
         zeros.size() == (is_int ? per_group : 0) && scale_codes.size() == (block_codes ? per_group : 0) &&
         scales_f32.size() == size_t(scale_rows() * n_groups);
}

void QuantizedWeight::dequantize(float* w) const { dequantize_rows(w, 0, out); }

void QuantizedWeight::dequantize_rows(float* w, int64_t row0, int64_t n_rows) const {
  AR_CHECK(sizes_match(), "QuantizedWeight sizes do not match its shape");
  AR_CHECK(row0 >= 0 && n_rows >= 0 && row0 + n_rows <= out, "rows [", row0, ", +", n_rows, ") of ", out);
  const DataType t = scheme.data_type;
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t o = row0 + r;
    float* dst = w + r * in;
    const uint8_t* c = codes.data() + o * in;
    for (int64_t g = 0; g < n_groups; ++g) {
      const int64_t i0 = g * group, n = std::min(group, in - i0), gi = o * n_groups + g;
      switch (t) {
        case DataType::Int: {
          const float s = f16_to_f32(scales[size_t(gi)]);
          const int z = zeros[size_t(gi)];
          for (int64_t i = i0; i < i0 + n; ++i) dst[i] = s * float(int(c[i]) - z);
          break;
        }
        case DataType::MXFP4:
        case DataType::MXFP8:
          mx_dequantize_block(dst + i0, c + i0, n, scale_codes[size_t(gi)],
                              t == DataType::MXFP4 ? MxElem::FP4 : MxElem::FP8);
          break;
        case DataType::NVFP4: nvfp4_dequantize_block(dst + i0, c + i0, n, scale_codes[size_t(gi)], global_scale); break;
        case DataType::FP8: fp8_dequantize(dst + i0, c + i0, n, scales_f32[size_t(o)]); break;
        case DataType::FP8Block:
          fp8_dequantize(dst + i0, c + i0, n, scales_f32[size_t((o / kFp8BlockSize) * n_groups + g)]);
          break;
      }
    }
  }
}

double QuantizedWeight::storage_bits() const {
  const double weights = double(out) * double(in), groups = double(out) * double(n_groups);
  switch (scheme.data_type) {
    case DataType::Int: return weights * scheme.bits + groups * (16 + scheme.bits);  // fp16 scale + zero point
    case DataType::MXFP4:
    case DataType::MXFP8: return weights * scheme.bits + groups * 8;       // E8M0 per block
    case DataType::NVFP4: return weights * 4 + groups * 8 + 32;            // E4M3 per block, f32 global
    case DataType::FP8:
    case DataType::FP8Block: return weights * 8 + double(scale_rows()) * double(n_groups) * 32;  // f32 scales
  }
  return 0;
}

}  // namespace ar
