// A background `/bin/sh -c` command a test signals or kills while it runs (interrupt, lock and
// kill -9 tests), reaped on destruction (killed first if still running).
#pragma once
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>

namespace ar::test {

struct Child {
  pid_t pid = -1;
  int status = 0;  // waitpid's, once done
  bool done = false;

  // Starts `command` (use "exec ..." so the pid is the program's own); false if spawning failed.
  bool spawn(const std::string& command);
  // Polls for up to `limit`; true when the child exited meanwhile.
  bool wait_for(std::chrono::milliseconds limit);
  // Waits until `p` exists (true) or the child ends (false), for up to five minutes.
  bool wait_for_file(const std::filesystem::path& p);
  ~Child();
};

}  // namespace ar::test
