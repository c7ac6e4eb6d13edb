// MSE loss forward/backward (mean reduction, as torch.nn.functional.mse_loss).
// Chunked double partial sums keep the loss bit-identical across thread counts.
#include "kernels/mse_loss.h"

#include <algorithm>
#include <vector>

namespace ar {
namespace {
constexpr int64_t kChunk = 1 << 14;  // elements per partial sum
}  // namespace

double mse_loss_forward(const float* y, const float* target, int64_t n) {
  if (n <= 0) return 0.0;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk, i1 = std::min(n, i0 + kChunk);
    double s = 0.0;
    for (int64_t i = i0; i < i1; ++i) {
      const double d = double(y[i]) - double(target[i]);
      s += d * d;
    }
    partial[size_t(c)] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return total / double(n);
}

void mse_loss_backward(float* dy, const float* y, const float* target, int64_t n,
                       float grad_scale) {
  if (n <= 0) return;
  const float k = float(2.0 * double(grad_scale) / double(n));
#pragma omp parallel for simd if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) dy[i] = k * (y[i] - target[i]);
}

}  // namespace ar
