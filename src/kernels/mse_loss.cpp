// MSE loss forward/backward (mean reduction, as torch.nn.functional.mse_loss).
// Chunked double partial sums keep the loss bit-identical across thread counts.
#include "kernels/mse_loss.h"

#include <algorithm>
#include <vector>

#include "core/vector_clones.h"

namespace ar {
namespace {
constexpr int64_t kChunk = 1 << 14;  // elements per partial sum
constexpr int kLanes = 8;            // a chunk's sum in 8 interleaved parts (element i to part i % 8)

// Sum of (y - t)^2 in double over [0, n), and with dy given dy = k·(y − t). The 8 parts make
// the sum a vector loop (one running sum waits on each add); the order is the same for every
// vector width, so every build and CPU gives the same bits.
AR_VECTOR_CLONES double chunk_sum(float* dy, const float* y, const float* t, int64_t n, float k) {
  double part[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) {
      const double d = double(y[i + j]) - double(t[i + j]);
      if (dy) dy[i + j] = k * (y[i + j] - t[i + j]);
      part[j] += d * d;
    }
  }
  for (int j = 0; i < n; ++i, ++j) {
    const double d = double(y[i]) - double(t[i]);
    if (dy) dy[i] = k * (y[i] - t[i]);
    part[j] += d * d;
  }
  double s = 0.0;
  for (double p : part) s += p;
  return s;
}

double sum_chunks(float* dy, const float* y, const float* target, int64_t n, float k) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk;
    partial[size_t(c)] = chunk_sum(dy ? dy + i0 : nullptr, y + i0, target + i0, std::min(kChunk, n - i0), k);
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}
}  // namespace

double mse_loss_forward(const float* y, const float* target, int64_t n) {
  if (n <= 0) return 0.0;
  return sum_chunks(nullptr, y, target, n, 0.f) / double(n);
}

double mse_loss_forward_backward(float* dy, const float* y, const float* target, int64_t n, float grad_scale) {
  if (n <= 0) return 0.0;
  return sum_chunks(dy, y, target, n, float(2.0 * double(grad_scale) / double(n))) / double(n);
}

void mse_loss_backward(float* dy, const float* y, const float* target, int64_t n,
                       float grad_scale) {
  if (n <= 0) return;
  const float k = float(2.0 * double(grad_scale) / double(n));
#pragma omp parallel for simd if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) dy[i] = k * (y[i] - target[i]);
}

}  // namespace ar
