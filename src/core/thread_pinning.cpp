#include "core/thread_pinning.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <omp.h>

#include "core/error.h"

namespace ar {

PinningChoice choose_thread_pinning(const std::function<const char*(const char*)>& env, int threads,
                                    const std::vector<int>& cpus) {
  for (const char* v : {"OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY", "KMP_AFFINITY"})
    if (const char* s = env(v); s && *s) return {false, cat("threads not pinned (", v, "=", s, " set)")};
  if (threads < 2) return {false, "1 thread, not pinned"};
  if (size_t(threads) != cpus.size())
    return {false, cat(threads, " threads on ", cpus.size(), " CPUs, not pinned")};
  return {true, cat(threads, " threads, one pinned to each CPU")};
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

std::string pin_threads_one_per_cpu() {
  const std::vector<int> cpus = allowed_cpus();
  const int n = omp_get_max_threads();
  PinningChoice c = choose_thread_pinning([](const char* v) { return std::getenv(v); }, n, cpus);
  if (!c.pin) return c.note;
  std::atomic<int> failed{0}, ran{0};
  // The same team size the kernels ask for, so libgomp keeps these threads in its pool.
#pragma omp parallel num_threads(n)
  {
    const int t = omp_get_thread_num();
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[size_t(t)], &one);
    if (pthread_setaffinity_np(pthread_self(), sizeof one, &one) != 0) failed.fetch_add(1);
    ran.fetch_add(1);
  }
  if (failed.load() > 0 || ran.load() != n)
    return cat(n, " threads, not pinned (", failed.load(), " of ", ran.load(), " could not be)");
  return c.note;
}

}  // namespace ar
