#include "dist/mpi_comm.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "core/error.h"

namespace ar {

namespace {

template <typename T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }

class Timed {
 public:
  explicit Timed(CommStats& s) : s_(s), t0_(std::chrono::steady_clock::now()) { ++s_.operations; }
  ~Timed() { s_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

 private:
  CommStats& s_;
  std::chrono::steady_clock::time_point t0_;
};

class MpiComm final : public Comm {
 public:
  MpiComm() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void sum_ordered(float* v, size_t n) override { ordered_sum(v, n); }
  void sum_ordered(double* v, size_t n) override { ordered_sum(v, n); }

  void chain(std::vector<double>& acc, const std::function<void(std::vector<double>&)>& add) override {
    Timed t(stats_);
    const int n = int(acc.size());
    if (rank_ > 0) {
      MPI_Recv(acc.data(), n, MPI_DOUBLE, rank_ - 1, kChainTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      stats_.bytes += acc.size() * sizeof(double);
    }
    add(acc);
    if (rank_ + 1 < size_) {
      MPI_Send(acc.data(), n, MPI_DOUBLE, rank_ + 1, kChainTag, MPI_COMM_WORLD);
      stats_.bytes += acc.size() * sizeof(double);
    }
    MPI_Bcast(acc.data(), n, MPI_DOUBLE, size_ - 1, MPI_COMM_WORLD);
    stats_.bytes += acc.size() * sizeof(double);
  }

  int64_t min(int64_t v) override { return reduce(v, MPI_MIN); }
  int64_t max(int64_t v) override { return reduce(v, MPI_MAX); }

  void broadcast(std::string& s) override {
    Timed t(stats_);
    uint64_t len = s.size();
    MPI_Bcast(&len, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    s.resize(len);
    MPI_Bcast(s.data(), int(len), MPI_CHAR, 0, MPI_COMM_WORLD);
    stats_.bytes += len;
  }

  void barrier() override {
    Timed t(stats_);
    MPI_Barrier(MPI_COMM_WORLD);
  }

 private:
  static constexpr int kChainTag = 17;

  int64_t reduce(int64_t v, MPI_Op op) {
    Timed t(stats_);
    int64_t out = 0;
    MPI_Allreduce(&v, &out, 1, MPI_INT64_T, op, MPI_COMM_WORLD);
    return out;
  }

  // In segments (bounded extra memory): each segment is cut into one slice per rank; rank j
  // receives slice j from every rank (alltoallv), adds the N copies in rank order, and the
  // summed slices are gathered back to everyone (allgatherv). Each element is thus added in
  // rank order in exactly one place, whatever the library's own reduction algorithms would do.
  template <typename T>
  void ordered_sum(T* v, size_t n) {
    if (size_ == 1 || n == 0) return;
    Timed t(stats_);
    const size_t seg_max = (size_t(16) << 20) / sizeof(T);
    const size_t N = size_t(size_);
    std::vector<int> cnt(N), dsp(N), rcnt(N), rdsp(N);
    for (size_t at = 0; at < n; at += seg_max) {
      const size_t seg = std::min(seg_max, n - at);
      const size_t slice = (seg + N - 1) / N;
      for (size_t j = 0; j < N; ++j) {
        const size_t b = std::min(seg, j * slice), e = std::min(seg, (j + 1) * slice);
        cnt[j] = int(e - b);
        dsp[j] = int(b);
      }
      const int mine = cnt[size_t(rank_)];
      for (size_t j = 0; j < N; ++j) {
        rcnt[j] = mine;
        rdsp[j] = int(j) * mine;
      }
      buf<T>().resize(N * size_t(mine));
      T* in = buf<T>().data();
      MPI_Alltoallv(v + at, cnt.data(), dsp.data(), mpi_type<T>(), in, rcnt.data(), rdsp.data(), mpi_type<T>(),
                    MPI_COMM_WORLD);
      T* out = v + at + dsp[size_t(rank_)];
      for (int i = 0; i < mine; ++i) {
        T s = in[i];
        for (size_t j = 1; j < N; ++j) s += in[j * size_t(mine) + size_t(i)];
        out[i] = s;
      }
      MPI_Allgatherv(MPI_IN_PLACE, 0, mpi_type<T>(), v + at, cnt.data(), dsp.data(), mpi_type<T>(), MPI_COMM_WORLD);
      stats_.bytes += 2 * (seg - size_t(mine)) * sizeof(T) + 2 * (N - 1) * size_t(mine) * sizeof(T);
    }
  }

  template <typename T>
  std::vector<T>& buf() {
    if constexpr (std::is_same_v<T, float>) return fbuf_;
    else return dbuf_;
  }

  int rank_ = 0, size_ = 1;
  std::vector<float> fbuf_;
  std::vector<double> dbuf_;
};

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  // Only the main thread calls MPI (OpenMP threads never do).
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  comm_ = std::make_unique<MpiComm>();
}

MpiSession::~MpiSession() {
  comm_.reset();
  MPI_Finalize();
}

void MpiSession::abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace ar
