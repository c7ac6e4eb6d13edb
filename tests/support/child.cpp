#include "support/child.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <thread>

extern char** environ;

namespace ar::test {

bool Child::spawn(const std::string& command) {
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  return posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) == 0;
}

bool Child::wait_for(std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done && std::chrono::steady_clock::now() < end) {
    if (::waitpid(pid, &status, WNOHANG) == pid) done = true;
    else std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done;
}

bool Child::wait_for_file(const std::filesystem::path& p) {
  for (int i = 0; i < 60000; ++i) {  // up to 5 min on a loaded machine
    std::error_code ec;
    if (std::filesystem::exists(p, ec)) return true;
    if (wait_for(std::chrono::milliseconds(5))) return false;
  }
  return false;
}

Child::~Child() {
  if (!done && pid > 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
}

}  // namespace ar::test
