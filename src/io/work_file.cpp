#include "io/work_file.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace ar {

WorkFile WorkFile::create(const std::filesystem::path& path, uint64_t size) {
  WorkFile f(UniqueFd::open(path, O_RDWR | O_CREAT | O_TRUNC, "create work file"), size);
  if (size > 0) {
    int e = ::posix_fallocate(f.fd_.get(), 0, off_t(size));
    if (e == EOPNOTSUPP || e == EINVAL) e = ::ftruncate(f.fd_.get(), off_t(size)) == 0 ? 0 : errno;  // no reservation here
    if (e != 0) {
      f = WorkFile();  // closes before the remove
      std::error_code ec;
      std::filesystem::remove(path, ec);
      AR_THROW(path.string(), ": cannot reserve ", size, " bytes for the work file: ", std::strerror(e));
    }
  }
  return f;
}

WorkFile WorkFile::open(const std::filesystem::path& path, uint64_t size) {
  WorkFile f(UniqueFd::open(path, O_RDWR, "open work file"), size);
  const uint64_t have = f.fd_.regular_file_size();
  if (have != size) AR_THROW(path.string(), ": work file has ", have, " bytes, expected ", size);
  return f;
}

void WorkFile::read_at(uint64_t offset, void* dst, size_t size) const {
  AR_CHECK(fd_.is_open() && offset <= size_ && size <= size_ - offset, "work file read out of range");
  fd_.read_exact_at(offset, dst, size);
}

void WorkFile::write_at(uint64_t offset, const void* src, size_t size) {
  AR_CHECK(fd_.is_open() && offset <= size_ && size <= size_ - offset, "work file write out of range");
  fd_.write_exact_at(offset, src, size);
}

uint64_t free_disk_bytes(const std::filesystem::path& dir) {
  std::filesystem::path p = std::filesystem::absolute(dir);
  std::error_code ec;
  while (!p.empty() && !std::filesystem::exists(p, ec) && p != p.root_path()) p = p.parent_path();
  struct statvfs s {};
  if (::statvfs(p.c_str(), &s) != 0) AR_THROW(dir.string(), ": cannot query free disk space: ", std::strerror(errno));
  return uint64_t(s.f_bavail) * uint64_t(s.f_frsize);
}

}  // namespace ar
