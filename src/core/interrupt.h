// Stopping a long run cleanly (SIGINT / SIGTERM, or a host such as the Python binding): the
// signal only sets a flag; the run checks it at points where stopping leaves consistent files
// (between SignRound steps, between calibration samples, between blocks) and throws
// ar::Interrupted from there, so destructors remove half-written outputs and the last checkpoint
// stays for --resume.
#pragma once
#include <csignal>
#include <string>

#include "core/error.h"

namespace ar {

// A run stopped on request. Not a bad-input error: the CLI exits 128 + signal.
class Interrupted : public Error {
 public:
  Interrupted(const std::string& what, int signal) : Error(what), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

// The signal that asked to stop (SIGINT, SIGTERM), or 0.
int interrupt_signal();
// Asks the current run to stop as if `signal` had arrived (hosts with their own signal handling).
void request_interrupt(int signal = SIGINT);
// Throws Interrupted naming `where` when a stop was requested.
void throw_if_interrupted(const char* where);

// While alive: SIGINT and SIGTERM set the flag instead of killing the process; a second signal of
// the same kind kills as usual (the handler resets itself), for a user who really wants out.
// Restores the previous handlers and clears the flag on destruction.
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  struct sigaction old_int_{}, old_term_{};
};

}  // namespace ar
