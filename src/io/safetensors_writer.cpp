// SafetensorsWriter / ShardedSafetensorsWriter: streamed output following the safetensors spec and
// the sharding convention of huggingface_hub's split_torch_state_dict_into_shards.
#include "io/safetensors_writer.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <set>
#include <utility>

#include "core/error.h"

namespace ar {

namespace fs = std::filesystem;

uint64_t TensorSpec::size_bytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    AR_CHECK(d >= 0, "negative dimension in ", name);
    n *= uint64_t(d);
  }
  return n;
}

std::string safetensors_header_bytes(const std::vector<TensorSpec>& specs,
                                     const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = std::move(m);
  }
  std::set<std::string> seen;
  uint64_t off = 0;
  for (const TensorSpec& s : specs) {
    if (s.name.empty() || s.name == "__metadata__") AR_THROW("safetensors writer: invalid tensor name '", s.name, "'");
    if (!seen.insert(s.name).second) AR_THROW("safetensors writer: duplicate tensor name '", s.name, "'");
    const uint64_t n = s.size_bytes();
    h[s.name] = {{"dtype", std::string(dtype_name(s.dtype))}, {"shape", s.shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string json = h.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
  std::string out(8, '\0');
  uint64_t len = json.size();
  for (int i = 0; i < 8; ++i) out[i] = char((len >> (8 * i)) & 0xff);
  return out + json;
}

SafetensorsWriter::SafetensorsWriter(fs::path final_path, std::vector<TensorSpec> specs,
                                     std::map<std::string, std::string> metadata)
    : specs_(std::move(specs)) {
  std::string header = safetensors_header_bytes(specs_, metadata);  // validates before creating files
  out_ = AtomicFile(std::move(final_path));
  out_.write(header.data(), header.size());
  for (const auto& s : specs_) total_data_ += s.size_bytes();
  skip_empty();
}

SafetensorsWriter::~SafetensorsWriter() = default;  // AtomicFile removes an uncommitted tmp
SafetensorsWriter::SafetensorsWriter(SafetensorsWriter&&) noexcept = default;
SafetensorsWriter& SafetensorsWriter::operator=(SafetensorsWriter&&) noexcept = default;

void SafetensorsWriter::skip_empty() {
  while (cur_ < specs_.size() && cur_done_ == specs_[cur_].size_bytes()) {
    ++cur_;
    cur_done_ = 0;
  }
}

void SafetensorsWriter::write(std::string_view name, const void* data, size_t size_bytes) {
  AR_CHECK(!finished_, "write after finish: ", name);
  AR_CHECK(cur_ < specs_.size(), "write of '", name, "' after all tensors of ", final_path().string(),
           " are complete");
  const TensorSpec& s = specs_[cur_];
  AR_CHECK(name == s.name, "tensor '", name, "' written out of order; expected '", s.name, "' in ",
           final_path().string());
  AR_CHECK(cur_done_ + size_bytes <= s.size_bytes(), "tensor '", name, "': ", cur_done_ + size_bytes,
           " bytes written, more than its ", s.size_bytes());
  out_.write(data, size_bytes);
  cur_done_ += size_bytes;
  skip_empty();
}

void SafetensorsWriter::finish() {
  AR_CHECK(!finished_, "finish called twice for ", final_path().string());
  AR_CHECK(cur_ == specs_.size(), final_path().string(), ": finish with tensor '",
           cur_ < specs_.size() ? specs_[cur_].name : "", "' incomplete (", cur_done_, " bytes written)");
  out_.commit();
  finished_ = true;
}

std::vector<std::vector<size_t>> plan_shards(const std::vector<TensorSpec>& specs, uint64_t max_shard_bytes) {
  AR_CHECK(max_shard_bytes > 0, "max_shard_bytes must be positive");
  std::vector<std::vector<size_t>> shards;
  std::vector<size_t> cur;
  uint64_t cur_bytes = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const uint64_t n = specs[i].size_bytes();
    if (n > max_shard_bytes) {  // too big for any shard: alone, keeping the stream order
      if (!cur.empty()) shards.push_back(std::move(cur));
      shards.push_back({i});
      cur.clear();
      cur_bytes = 0;
      continue;
    }
    if (!cur.empty() && cur_bytes + n > max_shard_bytes) {
      shards.push_back(std::move(cur));
      cur.clear();
      cur_bytes = 0;
    }
    cur.push_back(i);
    cur_bytes += n;
  }
  if (!cur.empty() || shards.empty()) shards.push_back(std::move(cur));
  return shards;
}

std::string shard_file_name(size_t index1, size_t n_shards) {
  if (n_shards == 1) return "model.safetensors";
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", index1, n_shards);
  return buf;
}

void write_safetensors_index(const fs::path& path, const std::map<std::string, std::string>& weight_map,
                             uint64_t total_size) {
  nlohmann::ordered_json j;
  j["metadata"] = {{"total_size", total_size}};
  nlohmann::ordered_json wm = nlohmann::ordered_json::object();
  for (const auto& [k, v] : weight_map) wm[k] = v;  // std::map: sorted, as HF writes it
  j["weight_map"] = std::move(wm);
  write_file_atomic(path, j.dump(2) + "\n");
}

ShardedSafetensorsWriter::ShardedSafetensorsWriter(fs::path dir, std::vector<TensorSpec> specs,
                                                   uint64_t max_shard_bytes,
                                                   std::map<std::string, std::string> metadata)
    : dir_(std::move(dir)), specs_(std::move(specs)), metadata_(std::move(metadata)) {
  (void)safetensors_header_bytes(specs_, {});  // validates names across the whole checkpoint
  plan_ = plan_shards(specs_, max_shard_bytes);
  for (size_t k = 0; k < plan_.size(); ++k)
    for (size_t i : plan_[k]) shard_of_[specs_[i].name] = k;
}

ShardedSafetensorsWriter::~ShardedSafetensorsWriter() = default;

void ShardedSafetensorsWriter::open_next() {
  AR_CHECK(shard_ < plan_.size(), "no shard left to open in ", dir_.string());
  std::vector<TensorSpec> specs;
  for (size_t i : plan_[shard_]) specs.push_back(specs_[i]);
  cur_ = std::make_unique<SafetensorsWriter>(dir_ / shard_file_name(shard_ + 1, plan_.size()), std::move(specs),
                                             metadata_);
}

void ShardedSafetensorsWriter::close_current() {
  for (size_t i : plan_[shard_]) weight_map_[specs_[i].name] = shard_file_name(shard_ + 1, plan_.size());
  cur_->finish();
  cur_.reset();
  ++shard_;
}

void ShardedSafetensorsWriter::write(std::string_view name, const void* data, size_t size_bytes) {
  auto it = shard_of_.find(name);
  AR_CHECK(it != shard_of_.end(), "tensor '", name, "' is not part of the checkpoint being written to ",
           dir_.string());
  const size_t target = it->second;
  AR_CHECK(target >= shard_, "tensor '", name, "' written after its shard was finished");
  while (shard_ < target) {  // earlier shards must be complete before moving on
    if (!cur_) open_next();
    close_current();
  }
  if (!cur_) open_next();
  cur_->write(name, data, size_bytes);
}

void ShardedSafetensorsWriter::finish() {
  while (shard_ < plan_.size()) {
    if (!cur_) open_next();
    close_current();
  }
  if (plan_.size() > 1) {
    uint64_t total = 0;
    for (const auto& s : specs_) total += s.size_bytes();
    write_safetensors_index(dir_ / "model.safetensors.index.json", weight_map_, total);
  }
}

std::vector<std::string> ShardedSafetensorsWriter::file_names() const {
  std::vector<std::string> r;
  for (size_t i = 0; i < plan_.size(); ++i) r.push_back(shard_file_name(i + 1, plan_.size()));
  if (plan_.size() > 1) r.push_back("model.safetensors.index.json");
  return r;
}

}  // namespace ar
