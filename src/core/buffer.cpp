#include "core/buffer.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "core/error.h"

namespace ar {

namespace {
constexpr size_t kAlign = 64;
void* alloc_aligned(size_t n, const std::string& name) {
  if (n == 0) return nullptr;
  size_t rounded = (n + kAlign - 1) / kAlign * kAlign;
  void* p = std::aligned_alloc(kAlign, rounded);
  if (!p) AR_THROW("out of memory allocating ", n, " bytes for ", name.empty() ? "buffer" : name);
  return p;
}
}  // namespace

Buffer::Buffer(size_t size_bytes, std::string name)
    : data_(alloc_aligned(size_bytes, name)), size_(size_bytes), name_(std::move(name)) {}

Buffer::~Buffer() { std::free(data_); }

Buffer::Buffer(Buffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), name_(std::move(o.name_)) {}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    std::free(data_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    name_ = std::move(o.name_);
  }
  return *this;
}

void Buffer::reserve(size_t size_bytes) {
  if (size_bytes <= size_) return;
  std::free(data_);
  data_ = nullptr;
  size_ = 0;
  data_ = alloc_aligned(size_bytes, name_);
  size_ = size_bytes;
}

void Buffer::zero() {
  if (data_) std::memset(data_, 0, size_);
}

}  // namespace ar
