// UniqueFd: the one owner of a POSIX file descriptor. ReadFile, WriteFile and WorkFile differ in how
// they open and buffer, not in how a descriptor lives and dies, so that part is written once here.
// It keeps the path so every failure can say which file it was about.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace ar {

class UniqueFd {
 public:
  UniqueFd() = default;
  // Takes ownership of `fd` (-1 for none), which was opened for `path`.
  UniqueFd(int fd, std::filesystem::path path) noexcept;
  // open(2) with O_CLOEXEC added. On failure throws ar::Error "<path>: cannot <what>: <reason>",
  // e.g. what = "open for reading".
  static UniqueFd open(const std::filesystem::path& path, int flags, const char* what, mode_t mode = 0644);

  ~UniqueFd();  // closes, ignoring errors (call close() to see them)
  UniqueFd(UniqueFd&& o) noexcept;
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  const std::filesystem::path& path() const { return path_; }
  // Gives up ownership without closing; the caller closes the returned descriptor.
  int release() noexcept;
  // Closes now and throws ar::Error naming the file if close(2) reports an error (on NFS and
  // some full disks that is where a failed write first shows up).
  void close();

  // Size from fstat; throws ar::Error naming the file unless it is a regular file.
  uint64_t regular_file_size() const;
  // Exactly `size` bytes at `offset` (pread/pwrite, so no shared cursor moves). Retries EINTR and
  // short transfers; end of file or a failed call throws ar::Error naming the file and offset.
  void read_exact_at(uint64_t offset, void* dst, size_t size) const;
  void write_exact_at(uint64_t offset, const void* src, size_t size);
  // Appends all `size` bytes at the current position (write(2) loop).
  void write_all(const void* src, size_t size);
  void sync();  // fsync; throws ar::Error naming the file
  // posix_fadvise(DONTNEED) over the range: drops clean pages from the page cache. Advisory.
  void drop_cache(uint64_t offset, uint64_t size) const;

 private:
  int fd_ = -1;
  std::filesystem::path path_;
};

}  // namespace ar
