// Residual stream addition (the "+ x" around attention and MLP in a decoder block).
#pragma once
#include <cstdint>

namespace ar {

// out (n) += x (n). Backward of a residual is the identity on both branches: the caller adds the
// same gradient into both, so no residual_backward exists.
void residual_add(float* out, const float* x, int64_t n);
// out (n) = a + b: the two branches' gradients of a residual joined into a fresh buffer.
void residual_sum(float* out, const float* a, const float* b, int64_t n);

}  // namespace ar
