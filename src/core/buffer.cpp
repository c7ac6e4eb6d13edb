#include "core/buffer.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "core/error.h"

namespace ar {

namespace {
constexpr size_t kAlign = 64;
// Blocks from this size on are mapped from the kernel and unmapped on release. Through malloc,
// glibc raises its mmap threshold to the size of each large block freed, so the next block's
// weights land in the heap, which then fragments and keeps pages: a streamed eval's peak grew by
// ~9 MiB from 2 to 8 blocks of 16 MiB. Mapped, the peak follows the live blocks.
constexpr size_t kMapBytes = size_t(1) << 20;

void* alloc_block(size_t n, const std::string& name) {
  if (n == 0) return nullptr;
  void* p = nullptr;
  if (n >= kMapBytes) {
    p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // page-aligned
    if (p == MAP_FAILED) p = nullptr;
  } else {
    p = std::aligned_alloc(kAlign, (n + kAlign - 1) / kAlign * kAlign);
  }
  if (!p) AR_THROW("out of memory allocating ", n, " bytes for ", name.empty() ? "buffer" : name);
  return p;
}

void free_block(void* p, size_t n) {
  if (!p) return;
  if (n >= kMapBytes) ::munmap(p, n);
  else std::free(p);
}
}  // namespace

Buffer::Buffer(size_t size_bytes, std::string name)
    : data_(alloc_block(size_bytes, name)), size_(size_bytes), name_(std::move(name)) {}

Buffer::~Buffer() { free_block(data_, size_); }

Buffer::Buffer(Buffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), name_(std::move(o.name_)) {}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    free_block(data_, size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    name_ = std::move(o.name_);
  }
  return *this;
}

void Buffer::reserve(size_t size_bytes) {
  if (size_bytes <= size_) return;
  free_block(data_, size_);
  data_ = nullptr;
  size_ = 0;
  data_ = alloc_block(size_bytes, name_);
  size_ = size_bytes;
}

void Buffer::zero() {
  if (data_) std::memset(data_, 0, size_);
}

}  // namespace ar
