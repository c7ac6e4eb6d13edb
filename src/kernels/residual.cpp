// Residual add: one pass, parallel over large arrays.
// No reference sibling needed: it is a single f32 add per element.
#include "kernels/residual.h"

namespace ar {

void residual_add(float* out, const float* x, int64_t n) {
#pragma omp parallel for simd if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) out[i] += x[i];
}

void residual_sum(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace ar
