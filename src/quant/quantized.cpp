#include "quant/quantized.h"

#include "core/dtype.h"
#include "core/error.h"

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
  q.scales.resize(size_t(out * q.n_groups));
  q.zeros.resize(size_t(out * q.n_groups));
  return q;
}

void QuantizedWeight::dequantize(float* w) const {
  AR_CHECK(int64_t(codes.size()) == out * in && int64_t(scales.size()) == out * n_groups &&
               int64_t(zeros.size()) == out * n_groups,
           "QuantizedWeight sizes do not match its shape");
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      const int64_t g = o * n_groups + i / group;
      w[o * in + i] = f16_to_f32(scales[size_t(g)]) * float(int(codes[size_t(o * in + i)]) - int(zeros[size_t(g)]));
    }
}

}  // namespace ar
