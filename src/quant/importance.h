// Importance statistics of a block's linears (llama.cpp's imatrix; opt-RTN's weighting): per input
// column k of each linear, sum over calibration rows of x[row][k]^2, divided by the row count.
//
// Each sample's sums are made on their own and added in sample order, so the total has the same
// bits however the samples are spread over processes: with `hold`, the per-sample sums are kept
// until finish() passes a running sum from rank to rank (Comm::chain); without it they are added
// at once (one process, one sampler), which is the same sequence of additions.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ar {

class Comm;

class ImportanceSums {
 public:
  // widths[i]: input width of linear i, 0 for a linear nobody asked about.
  ImportanceSums(std::vector<int64_t> widths, bool hold);

  bool wanted(int linear) const { return widths_[size_t(linear)] > 0; }
  // One sample's inputs of `linear`: x is (rows, K), K its width. Rows of linears not wanted are ignored.
  void add_sample(int linear, const float* x, int64_t rows, int64_t K);
  // Completes the sums over every process's samples (rank order = sample order). Call once, on
  // every rank, after the last add_sample.
  void finish(Comm& comm);
  // The mean square per input column, sum / rows_total (rows over all processes). After finish().
  std::vector<float> mean(int linear, double rows_total) const;
  // The unscaled sums of one linear, after finish().
  std::vector<double> sums(int linear) const;

 private:
  std::vector<int64_t> widths_;
  std::vector<size_t> at_;     // offset of each linear in sum_
  std::vector<double> sum_;    // every linear's sums, one after another
  std::vector<std::vector<double>> held_;  // hold: per linear, each sample's sums in order
  std::vector<double> one_;
  bool hold_, finished_ = false;
};

}  // namespace ar
