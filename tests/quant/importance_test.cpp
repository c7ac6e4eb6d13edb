// Importance sums: the mean square per input column, and the same bits whether the samples are
// added at once, held and added at finish, or split over two "processes" that chain the sum.
#include "quant/importance.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/comm.h"

namespace ar {
namespace {

// Two ranks run one after the other in one thread: rank 0's chain hands its running sum to
// rank 1's through `carry`. Nothing else is used by ImportanceSums.
class RelayComm final : public Comm {
 public:
  RelayComm(int rank, std::vector<double>& carry) : rank_(rank), carry_(carry) {}
  int rank() const override { return rank_; }
  int size() const override { return 2; }
  void sum_ordered(float*, size_t) override { ADD_FAILURE(); }
  void sum_ordered(double*, size_t) override { ADD_FAILURE(); }
  void chain(std::vector<double>& acc, const std::function<void(std::vector<double>&)>& add) override {
    if (rank_ == 1) acc = carry_;
    add(acc);
    carry_ = acc;
  }
  int64_t min(int64_t v) override { return v; }
  int64_t max(int64_t v) override { return v; }
  void broadcast(std::string&) override {}
  void barrier() override {}

 private:
  int rank_;
  std::vector<double>& carry_;
};

struct Samples {
  static constexpr int64_t kRows = 5;
  std::vector<int64_t> widths{7, 0, 3};  // linear 1 is not wanted
  std::vector<std::vector<std::vector<float>>> x;  // [sample][linear] (kRows, K)
  explicit Samples(int n) {
    std::mt19937 rng(11);
    std::lognormal_distribution<float> d(0.f, 2.f);  // wide magnitudes: the summation order shows
    x.resize(size_t(n));
    for (auto& s : x)
      for (int64_t K : {int64_t(7), int64_t(4), int64_t(3)}) {
        s.emplace_back(size_t(kRows * K));
        for (float& v : s.back()) v = d(rng) * (rng() % 2 ? 1.f : -1.f);
      }
  }
  void feed(ImportanceSums& s, int from, int to) const {
    for (int smp = from; smp < to; ++smp)
      for (int li = 0; li < 3; ++li) {
        const int64_t K = int64_t(x[size_t(smp)][size_t(li)].size()) / kRows;
        s.add_sample(li, x[size_t(smp)][size_t(li)].data(), kRows, K);
      }
  }
};

TEST(ImportanceSums, MeanSquarePerColumn) {
  ImportanceSums s({2, 3}, false);
  const float a[] = {1, 2, 3, -4};                  // linear 0: 2 rows of 2
  const float b[] = {1, 0, 2, 0, -3, 0.5f};         // linear 1: 2 rows of 3
  const float c[] = {-1, 1};                        // linear 0, a second sample of 1 row
  s.add_sample(0, a, 2, 2);
  s.add_sample(1, b, 2, 3);
  s.add_sample(0, c, 1, 2);
  s.finish(single_process_comm());
  EXPECT_EQ(s.mean(0, 4.0), (std::vector<float>{(1 + 9 + 1) / 4.f, (4 + 16 + 1) / 4.f}));
  EXPECT_EQ(s.mean(1, 2.0), (std::vector<float>{1.f / 2, 9.f / 2, (4 + 0.25f) / 2}));
}

TEST(ImportanceSums, UnwantedLinearsAreSkipped) {
  const Samples d(2);
  ImportanceSums s(d.widths, false);
  EXPECT_TRUE(s.wanted(0));
  EXPECT_FALSE(s.wanted(1));
  d.feed(s, 0, 2);  // linear 1's rows (width 4) are ignored, not checked against width 0
  s.finish(single_process_comm());
  EXPECT_TRUE(s.mean(1, 10.0).empty());
  EXPECT_EQ(s.mean(2, 10.0).size(), 3u);
}

TEST(ImportanceSums, HeldChainedAndDirectSumsHaveTheSameBits) {
  const int n = 9;
  const Samples d(n);
  ImportanceSums direct(d.widths, false), held(d.widths, true);
  d.feed(direct, 0, n);
  d.feed(held, 0, n);
  direct.finish(single_process_comm());
  held.finish(single_process_comm());

  std::vector<double> carry;
  ImportanceSums r0(d.widths, true), r1(d.widths, true);
  RelayComm c0(0, carry), c1(1, carry);
  d.feed(r0, 0, 4);
  d.feed(r1, 4, n);
  r0.finish(c0);
  r1.finish(c1);

  // A reference in sample order, written out here; the same numbers in the reverse order differ
  // somewhere, so the equalities below would see an order change.
  bool order_shows = false;
  for (int li : {0, 2}) {
    const size_t K = size_t(d.widths[size_t(li)]);
    std::vector<double> fwd(K, 0.0), rev(K, 0.0);
    for (int smp = 0; smp < n; ++smp)
      for (int sign : {1, -1}) {
        const int at = sign > 0 ? smp : n - 1 - smp;
        std::vector<double> one(K, 0.0);
        for (int64_t r = 0; r < Samples::kRows; ++r)
          for (size_t k = 0; k < K; ++k) {
            const double v = d.x[size_t(at)][size_t(li)][size_t(r) * K + k];
            one[k] += v * v;
          }
        for (size_t k = 0; k < K; ++k) (sign > 0 ? fwd : rev)[k] += one[k];
      }
    order_shows |= fwd != rev;
    EXPECT_EQ(direct.sums(li), fwd) << "linear " << li;
    EXPECT_EQ(held.sums(li), fwd) << "linear " << li;
    EXPECT_EQ(r1.sums(li), fwd) << "linear " << li;
  }
  EXPECT_TRUE(order_shows) << "test data too tame to show a summation-order change";
}

}  // namespace
}  // namespace ar
