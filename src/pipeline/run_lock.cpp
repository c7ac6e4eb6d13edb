#include "pipeline/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace ar {

namespace {

// The pid a lock file names, or 0 (empty or garbled: a run that died before writing it).
long pid_in(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  return std::strtol(buf, nullptr, 10);
}

bool same_file(int fd, const std::filesystem::path& p) {
  struct stat a {}, b {};
  return ::fstat(fd, &a) == 0 && ::stat(p.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

std::filesystem::path lock_path_for(const std::filesystem::path& dir) {
  std::filesystem::path d = dir.lexically_normal();
  if (!d.has_filename()) d = d.parent_path();  // "out/" -> "out"
  return d.parent_path() / ("." + d.filename().string() + ".lock");
}

RunLock::RunLock(const std::filesystem::path& dir, const std::string& what,
                 const std::function<void(const std::string&)>& log)
    : path_(lock_path_for(dir)) {
  std::error_code ec;
  if (!path_.parent_path().empty()) std::filesystem::create_directories(path_.parent_path(), ec);
  // A previous owner unlinks the file on exit, possibly between our open and our flock; then we
  // hold a lock on a file no one else will open, so check and start over.
  for (int attempt = 0; attempt < 20; ++attempt) {
    UniqueFd fd = UniqueFd::open(path_, O_RDWR | O_CREAT, "open the lock file");
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) AR_THROW(path_.string(), ": cannot lock: ", std::strerror(errno));
      const long other = pid_in(fd.get());
      AR_THROW(dir.string(), ": another autoround run", other > 0 ? cat(" (pid ", other, ")") : std::string(),
               " is using this ", what, "; wait for it to finish or stop it (lock: ", path_.string(), ")");
    }
    if (!same_file(fd.get(), path_)) continue;
    const long before = pid_in(fd.get());
    if (before > 0 && before != long(::getpid()))
      log(cat("note: ", path_.string(), " was left by run pid ", before, ", which is gone; taking it over"));
    const std::string me = cat(::getpid(), "\n");
    if (::ftruncate(fd.get(), 0) != 0) AR_THROW(path_.string(), ": cannot write the lock file: ", std::strerror(errno));
    fd.write_exact_at(0, me.data(), me.size());
    fd_ = std::move(fd);
    return;
  }
  AR_THROW(path_.string(), ": the lock file keeps being replaced; is something else deleting it?");
}

RunLock::~RunLock() {
  // Unlinked while still locked: a run that opened it meanwhile sees the inode change and retries.
  if (fd_.is_open()) ::unlink(path_.c_str());
}

}  // namespace ar
