// Output files that appear complete or not at all: data goes to `<final>.tmp`, which is renamed
// onto the final name only by commit(). Dropping an uncommitted AtomicFile removes the tmp file,
// so an error half-way never leaves something that looks like a finished output (STYLE.md §5).
#pragma once
#include <filesystem>
#include <string_view>

#include "io/file.h"

namespace ar {

class AtomicFile {
 public:
  AtomicFile() = default;
  explicit AtomicFile(std::filesystem::path final_path);
  ~AtomicFile();
  AtomicFile(AtomicFile&& o) noexcept;
  AtomicFile& operator=(AtomicFile&& o) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  WriteFile& file() { return file_; }
  void write(const void* data, size_t size) { file_.write(data, size); }
  // Flushes, fsyncs, closes and renames tmp -> final (replacing an existing file).
  void commit();
  bool committed() const { return committed_; }
  const std::filesystem::path& final_path() const { return final_; }
  const std::filesystem::path& tmp_path() const { return tmp_; }

 private:
  void discard() noexcept;
  std::filesystem::path final_, tmp_;
  WriteFile file_;
  bool committed_ = false;
};

// Writes a whole small file (JSON, text) atomically.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

}  // namespace ar
