// ReadFile / WriteFile over UniqueFd, which owns the descriptor and does the transfer loops.
#include "io/file.h"

#include <fcntl.h>

#include <cstring>

#include "core/error.h"

namespace ar {

ReadFile::ReadFile(const std::filesystem::path& path)
    : fd_(UniqueFd::open(path, O_RDONLY, "open for reading")), size_(fd_.regular_file_size()) {}

void ReadFile::read_at(uint64_t offset, void* dst, size_t size) const {
  AR_CHECK(is_open(), "read from a closed file");
  if (offset > size_ || size > size_ - offset)
    AR_THROW(path().string(), ": read of ", size, " bytes at offset ", offset, " runs past end of file (",
             size_, " bytes)");
  fd_.read_exact_at(offset, dst, size);
}

WriteFile::WriteFile(const std::filesystem::path& path, size_t buffer_bytes)
    : fd_(UniqueFd::open(path, O_WRONLY | O_CREAT | O_TRUNC, "create")), buf_(buffer_bytes) {}

void WriteFile::write(const void* data, size_t size) {
  AR_CHECK(is_open(), "write to a closed file");
  written_ += size;
  if (used_ + size <= buf_.size()) {
    std::memcpy(buf_.data() + used_, data, size);
    used_ += size;
    return;
  }
  flush();
  if (size >= buf_.size()) {  // big pieces skip the copy
    fd_.write_all(data, size);
  } else {
    std::memcpy(buf_.data(), data, size);
    used_ = size;
  }
}

void WriteFile::flush() {
  if (used_ > 0) fd_.write_all(buf_.data(), used_);
  used_ = 0;
}

void WriteFile::close() {
  if (!is_open()) return;
  flush();
  fd_.sync();
  fd_.close();
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
