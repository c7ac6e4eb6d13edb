// SafetensorsReader: the tensors of one .safetensors file or of a sharded HF checkpoint
// (model.safetensors.index.json + model-0000i-of-0000N.safetensors). Format (huggingface/safetensors):
// u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e)}, ...,
// "__metadata__": {str: str}}, then the data section; offsets are relative to its start.
// Only headers are read at open; data is read on demand with pread (never mmap), so pages read for
// one block do not stay in our resident set.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "io/file.h"

namespace ar {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  int file_index = 0;         // index into SafetensorsReader::file_path()
  uint64_t offset_bytes = 0;  // absolute offset of the data in that file
  uint64_t size_bytes = 0;
  int64_t numel() const;
};

class SafetensorsReader {
 public:
  // `path`: a .safetensors file, a model.safetensors.index.json, or a model folder (prefers the
  // index if present, else model.safetensors). Reads and validates only the headers.
  static SafetensorsReader open(const std::filesystem::path& path);

  SafetensorsReader(SafetensorsReader&&) noexcept = default;
  SafetensorsReader& operator=(SafetensorsReader&&) noexcept = default;

  const TensorInfo* find(std::string_view name) const;     // nullptr if absent
  const TensorInfo& require(std::string_view name) const;  // throws ar::Error naming model + tensor
  // Sorted by (file, offset): the order the bytes sit on disk.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  size_t num_files() const { return files_.size(); }
  const std::filesystem::path& file_path(int file_index) const;
  // What open() was given (for messages).
  const std::filesystem::path& source_path() const { return source_; }

  void read(const TensorInfo& t, void* dst) const;  // raw bytes, t.size_bytes
  // Rows [row0, row0 + nrows) along dim 0, raw bytes.
  void read_rows(const TensorInfo& t, int64_t row0, int64_t nrows, void* dst) const;
  // F32/F16/BF16 converted to f32, in bounded chunks (no full-size temporary).
  void read_f32(const TensorInfo& t, float* dst) const;
  void read_rows_f32(const TensorInfo& t, int64_t row0, int64_t nrows, float* dst) const;
  // Tells the kernel the tensor's pages are not needed anymore (posix_fadvise DONTNEED); advisory.
  void release(const TensorInfo& t) const;
  // "__metadata__" of the (first) file.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsReader() = default;
  void add_file(const std::filesystem::path& path, std::vector<TensorInfo>* out);
  void build_index();
  void read_range_f32(const TensorInfo& t, uint64_t elem0, uint64_t n, float* dst) const;

  std::filesystem::path source_;
  std::vector<ReadFile> files_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> by_name_;
  std::map<std::string, std::string> metadata_;
};

// The largest header accepted, checked before allocating; safetensors itself refuses more than 100 MB.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

}  // namespace ar
