// Streaming safetensors output: the header (all names, dtypes, shapes, offsets) is known up front,
// so it is written first and tensor data is appended in order, piece by piece, without holding a
// tensor in memory. Also the HF sharding plan (model-0000i-of-0000N.safetensors + index json).
// Layout written: u64 LE header length, JSON header ("__metadata__" first, then tensors in spec
// order, contiguous offsets), padded with spaces so the data starts at an 8-byte boundary.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "io/atomic_output.h"

namespace ar {

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t size_bytes() const;
};

// The exact header bytes (length prefix + padded JSON) for these specs; exposed for tests/tools.
std::string safetensors_header_bytes(const std::vector<TensorSpec>& specs,
                                     const std::map<std::string, std::string>& metadata);

class SafetensorsWriter {
 public:
  // Creates `<final_path>.tmp` and writes the header. Throws ar::Error on duplicate/empty names.
  SafetensorsWriter(std::filesystem::path final_path, std::vector<TensorSpec> specs,
                    std::map<std::string, std::string> metadata = {});
  ~SafetensorsWriter();  // without finish(): the tmp file is removed
  SafetensorsWriter(SafetensorsWriter&&) noexcept;
  SafetensorsWriter& operator=(SafetensorsWriter&&) noexcept;

  // Appends bytes of tensor `name`. Tensors come in spec order; one tensor may arrive in several
  // pieces. Writing out of order or past a tensor's size is a bug (AR_CHECK).
  void write(std::string_view name, const void* data, size_t size_bytes);
  // Checks every tensor is complete, fsyncs and renames tmp -> final.
  void finish();

  bool complete() const { return cur_ == specs_.size(); }
  const std::vector<TensorSpec>& specs() const { return specs_; }
  uint64_t data_bytes() const { return total_data_; }
  const std::filesystem::path& final_path() const { return out_.final_path(); }

 private:
  void skip_empty();
  std::vector<TensorSpec> specs_;
  AtomicFile out_;
  size_t cur_ = 0;           // tensor being written
  uint64_t cur_done_ = 0;    // its bytes written so far
  uint64_t total_data_ = 0;
  bool finished_ = false;
};

// HF-style shard plan: specs (in order) grouped so each shard holds at most max_shard_bytes of
// tensor data; a tensor bigger than the limit gets a shard of its own. Returns spec indices.
std::vector<std::vector<size_t>> plan_shards(const std::vector<TensorSpec>& specs, uint64_t max_shard_bytes);
// "model.safetensors" when n_shards == 1, else "model-00002-of-00005.safetensors" (index 1-based).
std::string shard_file_name(size_t index1, size_t n_shards);
// model.safetensors.index.json: {"metadata": {"total_size": N}, "weight_map": {tensor: file}}.
void write_safetensors_index(const std::filesystem::path& path,
                             const std::map<std::string, std::string>& weight_map, uint64_t total_size);

// A whole checkpoint written as a stream: shards are opened in turn as their first tensor arrives;
// finish() completes the last shard and writes the index when there is more than one shard.
class ShardedSafetensorsWriter {
 public:
  ShardedSafetensorsWriter(std::filesystem::path dir, std::vector<TensorSpec> specs, uint64_t max_shard_bytes,
                           std::map<std::string, std::string> metadata = {});
  ~ShardedSafetensorsWriter();  // unfinished: the open shard's tmp file is removed
  void write(std::string_view name, const void* data, size_t size_bytes);
  void finish();
  size_t num_shards() const { return plan_.size(); }
  // Files this writer produces (shards, then the index if any), relative to dir.
  std::vector<std::string> file_names() const;

 private:
  void open_next();
  void close_current();
  std::filesystem::path dir_;
  std::vector<TensorSpec> specs_;
  std::map<std::string, size_t, std::less<>> shard_of_;
  std::map<std::string, std::string> weight_map_;
  std::map<std::string, std::string> metadata_;
  std::vector<std::vector<size_t>> plan_;
  size_t shard_ = 0;  // index of the open shard (or next to open)
  std::unique_ptr<SafetensorsWriter> cur_;
};

}  // namespace ar
