#include "io/work_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace ar {

namespace {
std::string errno_text(int e) { return std::strerror(e); }
}  // namespace

WorkFile WorkFile::create(const std::filesystem::path& path, uint64_t size) {
  WorkFile f;
  f.path_ = path;
  f.size_ = size;
  f.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f.fd_ < 0) AR_THROW(path.string(), ": cannot create work file: ", errno_text(errno));
  if (size > 0) {
    int e = ::posix_fallocate(f.fd_, 0, off_t(size));
    if (e == EOPNOTSUPP || e == EINVAL) e = ::ftruncate(f.fd_, off_t(size)) == 0 ? 0 : errno;  // no reservation here
    if (e != 0) {
      ::close(std::exchange(f.fd_, -1));
      std::error_code ec;
      std::filesystem::remove(path, ec);
      AR_THROW(path.string(), ": cannot reserve ", size, " bytes for the work file: ", errno_text(e));
    }
  }
  return f;
}

WorkFile WorkFile::open(const std::filesystem::path& path, uint64_t size) {
  WorkFile f;
  f.path_ = path;
  f.size_ = size;
  f.fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (f.fd_ < 0) AR_THROW(path.string(), ": cannot open work file: ", errno_text(errno));
  struct stat st {};
  if (::fstat(f.fd_, &st) != 0 || !S_ISREG(st.st_mode) || uint64_t(st.st_size) != size)
    AR_THROW(path.string(), ": work file has ", uint64_t(st.st_size), " bytes, expected ", size);
  return f;
}

WorkFile::~WorkFile() {
  if (fd_ >= 0) ::close(fd_);
}

WorkFile::WorkFile(WorkFile&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), size_(o.size_), path_(std::move(o.path_)) {}

WorkFile& WorkFile::operator=(WorkFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    size_ = o.size_;
    path_ = std::move(o.path_);
  }
  return *this;
}

void WorkFile::read_at(uint64_t offset, void* dst, size_t size) const {
  AR_CHECK(fd_ >= 0 && offset <= size_ && size <= size_ - offset, "work file read out of range");
  char* p = static_cast<char*>(dst);
  while (size > 0) {
    ssize_t n = ::pread(fd_, p, size, off_t(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) AR_THROW(path_.string(), ": read failed at offset ", offset, ": ", errno_text(errno));
    if (n == 0) AR_THROW(path_.string(), ": unexpected end of file at offset ", offset);
    p += n;
    offset += uint64_t(n);
    size -= size_t(n);
  }
}

void WorkFile::write_at(uint64_t offset, const void* src, size_t size) {
  AR_CHECK(fd_ >= 0 && offset <= size_ && size <= size_ - offset, "work file write out of range");
  const char* p = static_cast<const char*>(src);
  while (size > 0) {
    ssize_t n = ::pwrite(fd_, p, size, off_t(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) AR_THROW(path_.string(), ": write failed at offset ", offset, ": ", errno_text(n < 0 ? errno : ENOSPC));
    p += n;
    offset += uint64_t(n);
    size -= size_t(n);
  }
}

void WorkFile::sync() {
  if (fd_ >= 0 && ::fsync(fd_) != 0) AR_THROW(path_.string(), ": fsync failed: ", errno_text(errno));
}

void WorkFile::drop_cache(uint64_t offset, uint64_t size) const {
  if (fd_ >= 0) (void)::posix_fadvise(fd_, off_t(offset), off_t(size), POSIX_FADV_DONTNEED);
}

uint64_t free_disk_bytes(const std::filesystem::path& dir) {
  std::filesystem::path p = std::filesystem::absolute(dir);
  std::error_code ec;
  while (!p.empty() && !std::filesystem::exists(p, ec) && p != p.root_path()) p = p.parent_path();
  struct statvfs s {};
  if (::statvfs(p.c_str(), &s) != 0) AR_THROW(dir.string(), ": cannot query free disk space: ", errno_text(errno));
  return uint64_t(s.f_bavail) * uint64_t(s.f_frsize);
}

}  // namespace ar
