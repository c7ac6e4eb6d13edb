// Thread pinning (core/thread_pinning.h): the decision, and the pinning itself on this machine.
#include "core/thread_pinning.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>
#include <omp.h>

namespace ar {
namespace {

std::function<const char*(const char*)> env_of(const std::map<std::string, std::string>& m) {
  return [&m](const char* v) -> const char* {
    auto it = m.find(v);
    return it == m.end() ? nullptr : it->second.c_str();
  };
}

TEST(ThreadPinning, PinsOnlyWhenTheThreadsAreOnePerCpuAndNoBindingWasChosen) {
  const std::map<std::string, std::string> none;
  const std::vector<int> two{0, 1}, four{0, 1, 2, 3};
  PinningChoice c = choose_thread_pinning(env_of(none), 2, two);
  EXPECT_TRUE(c.pin);
  EXPECT_EQ(c.note, "2 threads, one pinned to each CPU");
  c = choose_thread_pinning(env_of(none), 1, two);
  EXPECT_FALSE(c.pin);
  EXPECT_EQ(c.note, "1 thread, not pinned");
  c = choose_thread_pinning(env_of(none), 2, four);  // other processes may want the other CPUs
  EXPECT_FALSE(c.pin);
  EXPECT_EQ(c.note, "2 threads on 4 CPUs, not pinned");
  c = choose_thread_pinning(env_of(none), 8, four);  // oversubscribed: pinning would stack them
  EXPECT_FALSE(c.pin);
  for (const char* v : {"OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY", "KMP_AFFINITY"}) {
    const std::map<std::string, std::string> set{{v, "false"}};
    c = choose_thread_pinning(env_of(set), 4, four);
    EXPECT_FALSE(c.pin) << v;
    EXPECT_EQ(c.note, std::string("threads not pinned (") + v + "=false set)");
  }
  const std::map<std::string, std::string> empty{{"OMP_PROC_BIND", ""}};  // set but empty: not a choice
  EXPECT_TRUE(choose_thread_pinning(env_of(empty), 2, two).pin);
}

// One CPU per OpenMP thread afterwards, each a different one of the process's CPUs. Runs in its
// own process (CTest runs each test alone), so the pinning does not outlive it.
TEST(ThreadPinning, EachThreadEndsOnItsOwnCpu) {
  const std::vector<int> cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  if (cpus.size() < 2) GTEST_SKIP() << "one CPU: nothing to pin";
  const int n = int(cpus.size());
  const PinningChoice c = choose_thread_pinning([](const char* v) { return std::getenv(v); }, n, cpus);
  if (!c.pin) GTEST_SKIP() << "this environment chose no pinning: " << c.note;
  omp_set_num_threads(n);
  EXPECT_EQ(pin_threads_one_per_cpu(), std::to_string(n) + " threads, one pinned to each CPU");
  std::vector<int> on(size_t(n), -1);
#pragma omp parallel num_threads(n)
  {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) == 0 && CPU_COUNT(&set) == 1)
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) on[size_t(omp_get_thread_num())] = c;
  }
  EXPECT_EQ(on, cpus);
}

}  // namespace
}  // namespace ar
