// MPI behind the Comm interface (issue 17). Only the CLI sees this header; the library works with
// Comm alone, so it builds and runs without MPI.
#pragma once
#include <memory>

#include "core/comm.h"

namespace ar {

// MPI_Init on construction, MPI_Finalize on destruction. Started without mpirun the program is
// a singleton MPI process (size 1).
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  Comm& comm() { return *comm_; }
  // Ends every rank of the job at once (a failed rank must not leave the others waiting in a
  // collective operation).
  [[noreturn]] void abort(int code);

 private:
  std::unique_ptr<Comm> comm_;
};

}  // namespace ar
