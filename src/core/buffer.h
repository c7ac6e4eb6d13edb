// Buffer: the one owning, 64-byte-aligned block of memory. Everything else borrows views of it.
// Move-only, so who owns a block is visible in the type.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace ar {

class Buffer {
 public:
  Buffer() = default;
  // Uninitialised bytes; `name` is kept for error messages and memory reports.
  explicit Buffer(size_t size_bytes, std::string name = {});
  ~Buffer();
  Buffer(Buffer&& o) noexcept;
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  // Grow only: keeps the block when it is already large enough (contents are not preserved).
  void reserve(size_t size_bytes);
  void zero();

  size_t size_bytes() const { return size_; }
  const std::string& name() const { return name_; }
  void* data() { return data_; }
  const void* data() const { return data_; }
  template <typename T>
  T* as() { return static_cast<T*>(data_); }
  template <typename T>
  const T* as() const { return static_cast<const T*>(data_); }
  template <typename T>
  std::span<T> span() { return {as<T>(), size_ / sizeof(T)}; }
  template <typename T>
  std::span<const T> span() const { return {as<T>(), size_ / sizeof(T)}; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
};

}  // namespace ar
