// UniqueFd. Transfer loops retry EINTR and short counts because pread/pwrite/write may move fewer
// bytes than asked (signals, pipes, file size limits) without that being an error.
#include "io/unique_fd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "core/error.h"

namespace ar {

namespace {
std::string errno_text(int e) { return std::strerror(e); }
}  // namespace

UniqueFd::UniqueFd(int fd, std::filesystem::path path) noexcept : fd_(fd), path_(std::move(path)) {}

UniqueFd UniqueFd::open(const std::filesystem::path& path, int flags, const char* what, mode_t mode) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) AR_THROW(path.string(), ": cannot ", what, ": ", errno_text(errno));
  return UniqueFd(fd, path);
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd::UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    path_ = std::move(o.path_);
  }
  return *this;
}

int UniqueFd::release() noexcept { return std::exchange(fd_, -1); }

void UniqueFd::close() {
  if (fd_ < 0) return;
  // The descriptor is gone after close(2) even when it reports an error: never close it twice.
  if (::close(std::exchange(fd_, -1)) != 0) AR_THROW(path_.string(), ": close failed: ", errno_text(errno));
}

uint64_t UniqueFd::regular_file_size() const {
  AR_CHECK(fd_ >= 0, "fstat of a closed file");
  struct stat st {};
  if (::fstat(fd_, &st) != 0) AR_THROW(path_.string(), ": cannot stat: ", errno_text(errno));
  if (!S_ISREG(st.st_mode)) AR_THROW(path_.string(), ": not a regular file");
  return uint64_t(st.st_size);
}

void UniqueFd::read_exact_at(uint64_t offset, void* dst, size_t size) const {
  AR_CHECK(fd_ >= 0, "read from a closed file");
  char* p = static_cast<char*>(dst);
  while (size > 0) {
    const ssize_t n = ::pread(fd_, p, size, off_t(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) AR_THROW(path_.string(), ": read failed at offset ", offset, ": ", errno_text(errno));
    if (n == 0) AR_THROW(path_.string(), ": unexpected end of file at offset ", offset);
    p += n;
    offset += uint64_t(n);
    size -= size_t(n);
  }
}

void UniqueFd::write_exact_at(uint64_t offset, const void* src, size_t size) {
  AR_CHECK(fd_ >= 0, "write to a closed file");
  const char* p = static_cast<const char*>(src);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd_, p, size, off_t(offset));
    if (n < 0 && errno == EINTR) continue;
    // pwrite returning 0 for a non-empty request means no room was left.
    if (n <= 0) AR_THROW(path_.string(), ": write failed at offset ", offset, ": ", errno_text(n < 0 ? errno : ENOSPC));
    p += n;
    offset += uint64_t(n);
    size -= size_t(n);
  }
}

void UniqueFd::write_all(const void* src, size_t size) {
  AR_CHECK(fd_ >= 0, "write to a closed file");
  const char* p = static_cast<const char*>(src);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) AR_THROW(path_.string(), ": write failed: ", errno_text(n < 0 ? errno : ENOSPC));
    p += n;
    size -= size_t(n);
  }
}

void UniqueFd::sync() {
  if (fd_ >= 0 && ::fsync(fd_) != 0) AR_THROW(path_.string(), ": fsync failed: ", errno_text(errno));
}

void UniqueFd::drop_cache(uint64_t offset, uint64_t size) const {
  if (fd_ >= 0) (void)::posix_fadvise(fd_, off_t(offset), off_t(size), POSIX_FADV_DONTNEED);
}

}  // namespace ar
