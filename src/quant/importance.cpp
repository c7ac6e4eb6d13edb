#include "quant/importance.h"

#include "core/comm.h"
#include "core/error.h"

namespace ar {

ImportanceSums::ImportanceSums(std::vector<int64_t> widths, bool hold)
    : widths_(std::move(widths)), at_(widths_.size()), held_(widths_.size()), hold_(hold) {
  size_t total = 0;
  for (size_t i = 0; i < widths_.size(); ++i) {
    AR_CHECK(widths_[i] >= 0, "ImportanceSums: width ", widths_[i]);
    at_[i] = total;
    total += size_t(widths_[i]);
  }
  sum_.assign(total, 0.0);
}

void ImportanceSums::add_sample(int linear, const float* x, int64_t rows, int64_t K) {
  AR_CHECK(!finished_, "ImportanceSums::add_sample after finish");
  const size_t li = size_t(linear);
  AR_CHECK(li < widths_.size(), "ImportanceSums: linear ", linear);
  if (widths_[li] == 0) return;
  AR_CHECK(K == widths_[li], "ImportanceSums: linear ", linear, " has width ", widths_[li], ", got ", K);
  one_.assign(size_t(K), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < K; ++k) one_[size_t(k)] += double(x[r * K + k]) * x[r * K + k];
  if (hold_) {
    held_[li].insert(held_[li].end(), one_.begin(), one_.end());
  } else {
    double* a = sum_.data() + at_[li];
    for (int64_t k = 0; k < K; ++k) a[k] += one_[size_t(k)];
  }
}

void ImportanceSums::finish(Comm& comm) {
  AR_CHECK(!finished_, "ImportanceSums::finish twice");
  finished_ = true;
  if (!hold_) return;
  int64_t samples = -1;
  for (size_t i = 0; i < widths_.size(); ++i) {
    if (widths_[i] == 0) continue;
    const int64_t s = int64_t(held_[i].size() / size_t(widths_[i]));
    AR_CHECK(samples < 0 || s == samples, "ImportanceSums: linears saw different sample counts");
    samples = s;
  }
  comm.chain(sum_, [&](std::vector<double>& a) {
    for (int64_t smp = 0; smp < samples; ++smp)
      for (size_t i = 0; i < widths_.size(); ++i) {
        const size_t K = size_t(widths_[i]);
        if (K == 0) continue;
        const double* h = held_[i].data() + size_t(smp) * K;
        for (size_t k = 0; k < K; ++k) a[at_[i] + k] += h[k];
      }
  });
  for (auto& h : held_) std::vector<double>().swap(h);
}

std::vector<float> ImportanceSums::mean(int linear, double rows_total) const {
  AR_CHECK(finished_, "ImportanceSums::mean before finish");
  const size_t li = size_t(linear);
  std::vector<float> m(static_cast<size_t>(widths_[li]));  // not m(size_t(..)): clang reads that as a function
  for (size_t k = 0; k < m.size(); ++k) m[k] = float(sum_[at_[li] + k] / rows_total);
  return m;
}

std::vector<double> ImportanceSums::sums(int linear) const {
  AR_CHECK(finished_, "ImportanceSums::sums before finish");
  const size_t li = size_t(linear);
  return std::vector<double>(sum_.begin() + ptrdiff_t(at_[li]), sum_.begin() + ptrdiff_t(at_[li] + size_t(widths_[li])));
}

}  // namespace ar
