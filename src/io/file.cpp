// POSIX implementations of ReadFile / WriteFile. pread/write loops retry on EINTR and short
// transfers; errors carry strerror(errno) and the file name.
#include "io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace ar {

namespace {
std::string errno_text() { return std::strerror(errno); }
}  // namespace

ReadFile::ReadFile(const std::filesystem::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) AR_THROW(path.string(), ": cannot open for reading: ", errno_text());
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    AR_THROW(path.string(), ": not a regular file");
  }
  size_ = uint64_t(st.st_size);
}

ReadFile::~ReadFile() {
  if (fd_ >= 0) ::close(fd_);
}

ReadFile::ReadFile(ReadFile&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), size_(o.size_), path_(std::move(o.path_)) {}

ReadFile& ReadFile::operator=(ReadFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    size_ = o.size_;
    path_ = std::move(o.path_);
  }
  return *this;
}

void ReadFile::read_at(uint64_t offset, void* dst, size_t size) const {
  AR_CHECK(fd_ >= 0, "read from a closed file");
  if (offset > size_ || size > size_ - offset)
    AR_THROW(path_.string(), ": read of ", size, " bytes at offset ", offset, " runs past end of file (",
             size_, " bytes)");
  char* p = static_cast<char*>(dst);
  while (size > 0) {
    ssize_t n = ::pread(fd_, p, size, off_t(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      AR_THROW(path_.string(), ": read failed at offset ", offset, ": ", errno_text());
    }
    if (n == 0) AR_THROW(path_.string(), ": unexpected end of file at offset ", offset);
    p += n;
    offset += uint64_t(n);
    size -= size_t(n);
  }
}

void ReadFile::drop_cache(uint64_t offset, uint64_t size) const {
  if (fd_ >= 0) (void)::posix_fadvise(fd_, off_t(offset), off_t(size), POSIX_FADV_DONTNEED);
}

WriteFile::WriteFile(const std::filesystem::path& path, size_t buffer_bytes)
    : path_(path), buf_(buffer_bytes) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) AR_THROW(path.string(), ": cannot create: ", errno_text());
}

WriteFile::~WriteFile() {
  if (fd_ >= 0) ::close(fd_);
}

WriteFile::WriteFile(WriteFile&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      written_(o.written_),
      path_(std::move(o.path_)),
      buf_(std::move(o.buf_)),
      used_(std::exchange(o.used_, 0)) {}

WriteFile& WriteFile::operator=(WriteFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    written_ = o.written_;
    path_ = std::move(o.path_);
    buf_ = std::move(o.buf_);
    used_ = std::exchange(o.used_, 0);
  }
  return *this;
}

void WriteFile::write_raw(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      AR_THROW(path_.string(), ": write failed: ", errno_text());
    }
    p += n;
    size -= size_t(n);
  }
}

void WriteFile::write(const void* data, size_t size) {
  AR_CHECK(fd_ >= 0, "write to a closed file");
  written_ += size;
  if (used_ + size <= buf_.size()) {
    std::memcpy(buf_.data() + used_, data, size);
    used_ += size;
    return;
  }
  flush();
  if (size >= buf_.size()) {  // big pieces skip the copy
    write_raw(data, size);
  } else {
    std::memcpy(buf_.data(), data, size);
    used_ = size;
  }
}

void WriteFile::flush() {
  if (used_ > 0) write_raw(buf_.data(), used_);
  used_ = 0;
}

void WriteFile::close() {
  if (fd_ < 0) return;
  flush();
  if (::fsync(fd_) != 0) AR_THROW(path_.string(), ": fsync failed: ", errno_text());
  int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) AR_THROW(path_.string(), ": close failed: ", errno_text());
}

std::string read_text_file(const std::filesystem::path& path, uint64_t max_bytes) {
  ReadFile f(path);
  if (f.size_bytes() > max_bytes)
    AR_THROW(path.string(), ": file is ", f.size_bytes(), " bytes, more than the ", max_bytes,
             " expected for this kind of file");
  std::string s(size_t(f.size_bytes()), '\0');
  f.read_at(0, s.data(), s.size());
  return s;
}

}  // namespace ar
