// One OpenMP thread per CPU, pinned, when a run takes the whole machine (issue 18).
//
// With as many threads as CPUs and another process taking a core, Linux tends to wake our
// second thread onto the first one's CPU (both others are busy) and then sees nothing to
// balance: two runnable tasks here, one there. The run then gets one core instead of its fair
// share. Pinned threads cannot be stacked, and the tuner's units (tune/signround.cpp) let the
// thread that shares its CPU take fewer of them. A run with fewer threads than CPUs is left to the
// OS (pinning it would crowd other processes onto the same CPUs), and so is any run whose user
// chose a binding (OMP_PROC_BIND, OMP_PLACES, GOMP_CPU_AFFINITY, KMP_AFFINITY;
// OMP_PROC_BIND=false turns this off).
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace ar {

struct PinningChoice {
  bool pin = false;
  std::string note;  // for the run header: what was decided and why
};

// The decision alone: `env` reads an environment variable (nullptr when unset), `threads` is the
// OpenMP thread count, `cpus` the CPUs the process may run on.
PinningChoice choose_thread_pinning(const std::function<const char*(const char*)>& env, int threads,
                                    const std::vector<int>& cpus);

// The CPUs this process may run on (its affinity mask), in increasing order.
std::vector<int> allowed_cpus();

// Decides from this process's environment, thread count and affinity, and pins OpenMP thread i to
// the i-th allowed CPU if so. Returns the note for the run header.
std::string pin_threads_one_per_cpu();

}  // namespace ar
