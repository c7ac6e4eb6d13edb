// One quantize run per output and per work dir: a second run on either would delete the first
// one's temporary output or caches. The lock is a file beside the folder (".<name>.lock", so the
// folder itself need not exist yet) holding the owner's pid, locked with flock(2): the kernel
// drops the lock when its owner dies, so a lock left by a killed run (kill -9) is simply taken
// over, with a note.
#pragma once
#include <filesystem>
#include <functional>
#include <string>

#include "io/unique_fd.h"

namespace ar {

class RunLock {
 public:
  // Locks `dir` for this process; ar::Error naming the other run's pid when it holds the lock.
  // `what` says what the folder is ("output", "work dir") in messages.
  RunLock(const std::filesystem::path& dir, const std::string& what,
          const std::function<void(const std::string&)>& log);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  UniqueFd fd_;
};

// ".<name>.lock" beside `dir`.
std::filesystem::path lock_path_for(const std::filesystem::path& dir);

}  // namespace ar
