// A whole model's logits / log-softmax over one window, through the streaming Decoder (f32), for
// tests that compare models or formats. Header-only: only test binaries that link the model layer
// include it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "model/decoder.h"

namespace ar::test {

// logits (T, V) of `ids` as one window.
inline std::vector<float> logits_of(const Decoder& d, const std::vector<int32_t>& ids) {
  const int64_t T = int64_t(ids.size()), C = d.config().hidden_size, V = d.config().vocab_size;
  std::vector<float> x(size_t(T * C)), lg(size_t(T * V));
  d.embed(x.data(), ids);
  d.forward_hidden(x.data(), 1, T, ForwardOptions{});
  d.logits(lg.data(), x.data(), T, Precision::F32);
  return lg;
}

// log-softmax (T, V) of the same, in double.
inline std::vector<double> log_softmax_of(const Decoder& d, const std::vector<int32_t>& ids) {
  const std::vector<float> lg = logits_of(d, ids);
  const int64_t V = d.config().vocab_size, T = int64_t(lg.size()) / V;
  std::vector<double> r(lg.size());
  for (int64_t t = 0; t < T; ++t) {
    const float* l = lg.data() + t * V;
    const double m = *std::max_element(l, l + V);
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(double(l[v]) - m);
    for (int64_t v = 0; v < V; ++v) r[size_t(t * V + v)] = double(l[v]) - m - std::log(s);
  }
  return r;
}

}  // namespace ar::test
