#include "core/interrupt.h"

#include <atomic>

namespace ar {

namespace {
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the flag is set from a signal handler");

void on_signal(int sig) { g_signal.store(sig, std::memory_order_relaxed); }

const char* signal_name(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}
}  // namespace

int interrupt_signal() { return g_signal.load(std::memory_order_relaxed); }

void request_interrupt(int signal) { g_signal.store(signal, std::memory_order_relaxed); }

void throw_if_interrupted(const char* where) {
  const int sig = interrupt_signal();
  if (sig) throw Interrupted(cat("interrupted by ", signal_name(sig), " ", where), sig);
}

InterruptScope::InterruptScope() {
  g_signal.store(0, std::memory_order_relaxed);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;  // the second Ctrl-C takes the default action
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
}

InterruptScope::~InterruptScope() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
  g_signal.store(0, std::memory_order_relaxed);
}

}  // namespace ar
