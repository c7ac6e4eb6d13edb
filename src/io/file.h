// Thin POSIX file wrappers: ReadFile (read-only, positioned reads with pread so reading never
// moves a shared cursor and never maps pages into our RSS) and WriteFile (buffered appends).
// Every failure throws ar::Error naming the file and the operation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/unique_fd.h"

namespace ar {

class ReadFile {
 public:
  ReadFile() = default;
  // Opens read-only; throws ar::Error naming `path` when it cannot be opened or is not a file.
  explicit ReadFile(const std::filesystem::path& path);

  bool is_open() const { return fd_.is_open(); }
  uint64_t size_bytes() const { return size_; }
  const std::filesystem::path& path() const { return fd_.path(); }
  // Reads exactly `size` bytes at `offset`; a short file is an ar::Error.
  void read_at(uint64_t offset, void* dst, size_t size) const;
  // posix_fadvise(DONTNEED) over the range: drops clean pages from the page cache. Advisory.
  void drop_cache(uint64_t offset, uint64_t size) const { fd_.drop_cache(offset, size); }

 private:
  UniqueFd fd_;
  uint64_t size_ = 0;
};

// Appends to a new (truncated) file through a small buffer, so many tiny writes cost one syscall.
class WriteFile {
 public:
  WriteFile() = default;
  explicit WriteFile(const std::filesystem::path& path, size_t buffer_bytes = 1 << 20);
  // Move-only (through UniqueFd). Destruction closes without flushing or syncing: call close()
  // to keep the data.

  bool is_open() const { return fd_.is_open(); }
  void write(const void* data, size_t size);
  uint64_t bytes_written() const { return written_; }
  const std::filesystem::path& path() const { return fd_.path(); }
  void flush();
  // Flushes, fsyncs (so a rename afterwards never exposes a half-written file) and closes.
  void close();

 private:
  UniqueFd fd_;
  uint64_t written_ = 0;
  std::vector<char> buf_;
  size_t used_ = 0;
};

// The one whole-file reader (configs, JSON indexes, tokenizer files, datasets, checkpoint blocks);
// the bytes come back unchanged, so binary files are fine too. Throws ar::Error naming the file
// when it is missing, not a regular file, unreadable or larger than `max_bytes`: the default cap
// turns "a weights file passed as a config" into a clear error instead of a huge allocation.
inline constexpr uint64_t kNoSizeLimit = ~uint64_t(0);
std::string read_text_file(const std::filesystem::path& path, uint64_t max_bytes = 256ull << 20);

}  // namespace ar
