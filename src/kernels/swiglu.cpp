// SwiGLU forward/backward, elementwise in f32 (HF computes act_fn(gate) * up in the model dtype;
// we keep f32 throughout and leave bf16 rounding to the GEMMs on either side).
#include "kernels/swiglu.h"

#include <cmath>

namespace ar {

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    // g / (1 + exp(-g)) is safe at both ends: exp(-g) -> inf gives -0, -> 0 gives g.
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

}  // namespace ar
