// The processes of one data-parallel run (issue 17): `mpirun -np N autoround quantize ...` starts
// N of them; each holds a shard of the calibration samples, and they agree on every tuning step
// through the few collective operations below. A plain run is the single-process case, in which
// every operation is the identity.
//
// Determinism: every sum is taken in rank order, ((v0 + v1) + v2) + ..., in the element's own
// type, so N processes produce the same bits as one process that adds its N partitions' values
// in the same order (BlockTuner does exactly that), and every rank holds the same result.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ar {

struct CommStats {
  uint64_t bytes = 0;     // payload this process sent and received
  double seconds = 0;     // time inside collective operations (waiting included)
  uint64_t operations = 0;
};

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // v[i] <- sum over ranks in rank order of each rank's v[i]; identical on every rank.
  virtual void sum_ordered(float* v, size_t n) = 0;
  virtual void sum_ordered(double* v, size_t n) = 0;
  // A running sum through the ranks in order: rank r takes rank r-1's acc (rank 0 its own),
  // applies add(acc) (its items, in its order), and hands it on; every rank ends with the last
  // rank's acc. Gives a sequential sum over items held by different ranks.
  virtual void chain(std::vector<double>& acc, const std::function<void(std::vector<double>&)>& add) = 0;
  virtual int64_t min(int64_t v) = 0;
  virtual int64_t max(int64_t v) = 0;
  // Rank 0's string on every rank.
  virtual void broadcast(std::string& s) = 0;
  virtual void barrier() = 0;

  const CommStats& stats() const { return stats_; }

 protected:
  CommStats stats_;
};

// The single-process communicator (size 1).
Comm& single_process_comm();

}  // namespace ar
