// A fixed-size read/write work file (activation caches spilled to disk): its space is reserved
// when it is created, so a full disk shows up before any work rather than half-way through, and
// it is read and written in place with pread/pwrite (no mapping: the data never counts as our RSS).
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <utility>

#include "io/unique_fd.h"

namespace ar {

class WorkFile {
 public:
  // Creates (truncating) `path` with `size` bytes reserved. Throws ar::Error naming the file when
  // it cannot be created or the space cannot be reserved (disk full, file size limit).
  static WorkFile create(const std::filesystem::path& path, uint64_t size);
  // Opens an existing file read/write; its size must be `size`.
  static WorkFile open(const std::filesystem::path& path, uint64_t size);

  WorkFile() = default;  // move-only (through UniqueFd)

  void read_at(uint64_t offset, void* dst, size_t size) const;
  void write_at(uint64_t offset, const void* src, size_t size);
  void sync() { fd_.sync(); }  // what was written survives a crash
  // Drops the range from the page cache after use (advisory), so spilled caches do not crowd
  // out the model file's pages.
  void drop_cache(uint64_t offset, uint64_t size) const { fd_.drop_cache(offset, size); }
  uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return fd_.path(); }

 private:
  WorkFile(UniqueFd fd, uint64_t size) : fd_(std::move(fd)), size_(size) {}
  UniqueFd fd_;
  uint64_t size_ = 0;
};

// Bytes available to an unprivileged writer on the file system holding `dir` (or its nearest
// existing parent).
uint64_t free_disk_bytes(const std::filesystem::path& dir);

}  // namespace ar
