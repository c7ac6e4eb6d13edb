// Thin POSIX file wrappers: ReadFile (read-only, positioned reads with pread so reading never
// moves a shared cursor and never maps pages into our RSS) and WriteFile (buffered appends).
// Every failure throws ar::Error naming the file and the operation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ar {

class ReadFile {
 public:
  ReadFile() = default;
  // Opens read-only; throws ar::Error naming `path` when it cannot be opened or is not a file.
  explicit ReadFile(const std::filesystem::path& path);
  ~ReadFile();
  ReadFile(ReadFile&& o) noexcept;
  ReadFile& operator=(ReadFile&& o) noexcept;
  ReadFile(const ReadFile&) = delete;
  ReadFile& operator=(const ReadFile&) = delete;

  bool is_open() const { return fd_ >= 0; }
  uint64_t size_bytes() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  // Reads exactly `size` bytes at `offset`; a short file is an ar::Error.
  void read_at(uint64_t offset, void* dst, size_t size) const;
  // posix_fadvise(DONTNEED) over the range: drops clean pages from the page cache. Advisory.
  void drop_cache(uint64_t offset, uint64_t size) const;

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
  std::filesystem::path path_;
};

// Appends to a new (truncated) file through a small buffer, so many tiny writes cost one syscall.
class WriteFile {
 public:
  WriteFile() = default;
  explicit WriteFile(const std::filesystem::path& path, size_t buffer_bytes = 1 << 20);
  ~WriteFile();  // closes without syncing; errors are ignored here (call close() to see them)
  WriteFile(WriteFile&& o) noexcept;
  WriteFile& operator=(WriteFile&& o) noexcept;
  WriteFile(const WriteFile&) = delete;
  WriteFile& operator=(const WriteFile&) = delete;

  bool is_open() const { return fd_ >= 0; }
  void write(const void* data, size_t size);
  uint64_t bytes_written() const { return written_; }
  const std::filesystem::path& path() const { return path_; }
  void flush();
  // Flushes, fsyncs (so a rename afterwards never exposes a half-written file) and closes.
  void close();

 private:
  void write_raw(const void* data, size_t size);
  int fd_ = -1;
  uint64_t written_ = 0;
  std::filesystem::path path_;
  std::vector<char> buf_;
  size_t used_ = 0;
};

// Whole small files (configs, JSON indexes). read_text_file refuses files above `max_bytes`.
std::string read_text_file(const std::filesystem::path& path, uint64_t max_bytes = 256ull << 20);

}  // namespace ar
