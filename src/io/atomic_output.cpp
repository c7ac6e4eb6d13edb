// AtomicFile: tmp file + rename(2), which is atomic within one filesystem.
#include "io/atomic_output.h"

#include <cstdio>
#include <cerrno>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace ar {

AtomicFile::AtomicFile(std::filesystem::path final_path)
    : final_(std::move(final_path)), tmp_(final_.string() + ".tmp"), file_(tmp_) {}

AtomicFile::~AtomicFile() { discard(); }

AtomicFile::AtomicFile(AtomicFile&& o) noexcept
    : final_(std::move(o.final_)),
      tmp_(std::move(o.tmp_)),
      file_(std::move(o.file_)),
      committed_(std::exchange(o.committed_, true)) {}

AtomicFile& AtomicFile::operator=(AtomicFile&& o) noexcept {
  if (this != &o) {
    discard();
    final_ = std::move(o.final_);
    tmp_ = std::move(o.tmp_);
    file_ = std::move(o.file_);
    committed_ = std::exchange(o.committed_, true);
  }
  return *this;
}

void AtomicFile::discard() noexcept {
  if (committed_ || tmp_.empty()) return;
  file_ = WriteFile();  // closes the descriptor
  std::error_code ec;
  std::filesystem::remove(tmp_, ec);
  committed_ = true;
}

void AtomicFile::commit() {
  AR_CHECK(!committed_, "commit() called twice for ", final_.string());
  file_.close();
  if (std::rename(tmp_.c_str(), final_.c_str()) != 0)
    AR_THROW(final_.string(), ": cannot rename ", tmp_.string(), " into place: ", std::strerror(errno));
  committed_ = true;
}

void write_file_atomic(const std::filesystem::path& path, std::string_view contents) {
  AtomicFile f(path);
  f.write(contents.data(), contents.size());
  f.commit();
}

}  // namespace ar
