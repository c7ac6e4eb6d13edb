// SafetensorsReader: header parsing with strict validation (bounds, dtypes, shapes vs byte spans,
// overlaps, duplicate keys) and pread-based tensor reads. Follows the safetensors format spec
// (github.com/huggingface/safetensors) and the HF sharded-checkpoint index layout.
#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "core/buffer.h"
#include "core/error.h"

namespace ar {

namespace fs = std::filesystem;
using nlohmann::json;

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

// Parses JSON text, rejecting duplicate keys at any depth (nlohmann would silently keep one).
// `what` names the file in errors.
json parse_json_strict(std::string_view text, const std::string& what) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::string duplicate;
  auto cb = [&](int /*depth*/, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (ev == json::parse_event_t::key && !keys.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), cb);
  } catch (const json::exception& e) {
    AR_THROW(what, ": invalid JSON: ", e.what());
  }
  if (!duplicate.empty()) AR_THROW(what, ": duplicate key '", duplicate, "' in JSON header");
  return j;
}

// shape entries: non-negative integers; element count checked against overflow.
std::vector<int64_t> parse_shape(const json& js, const std::string& where) {
  if (!js.is_array()) AR_THROW(where, ": 'shape' is not an array");
  std::vector<int64_t> shape;
  for (const json& d : js) {
    if (!d.is_number_integer()) AR_THROW(where, ": shape entry ", d.dump(), " is not an integer");
    if (!d.is_number_unsigned() && d.get<int64_t>() < 0)
      AR_THROW(where, ": negative dimension ", d.dump(), " in shape");
    uint64_t v = d.get<uint64_t>();
    if (v > (uint64_t(1) << 62)) AR_THROW(where, ": dimension ", v, " is too large");
    shape.push_back(int64_t(v));
  }
  return shape;
}

uint64_t parse_offset(const json& js, const std::string& where) {
  if (!js.is_number_unsigned())
    AR_THROW(where, ": data_offsets entry ", js.dump(), " is not a non-negative integer");
  return js.get<uint64_t>();
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

// Reads one file's header; appends its tensors (absolute offsets) to `out`.
void SafetensorsReader::add_file(const fs::path& path, std::vector<TensorInfo>* out) {
  ReadFile file(path);
  const std::string fname = path.string();
  const uint64_t fsize = file.size_bytes();
  if (fsize < 8)
    AR_THROW(fname, ": file is ", fsize, " bytes, too short for a safetensors header (needs at least 8)");
  unsigned char lenbuf[8];
  file.read_at(0, lenbuf, 8);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | lenbuf[i];  // little-endian
  if (hlen > kSafetensorsMaxHeaderBytes)
    AR_THROW(fname, ": header length ", hlen, " is absurdly large (limit ", kSafetensorsMaxHeaderBytes,
             " bytes); not a safetensors file?");
  if (hlen > fsize - 8)
    AR_THROW(fname, ": header length ", hlen, " runs past end of file (", fsize, " bytes)");
  std::string text(size_t(hlen), '\0');
  file.read_at(8, text.data(), text.size());
  json header = parse_json_strict(text, fname);
  if (!header.is_object()) AR_THROW(fname, ": header is not a JSON object");

  const uint64_t data_start = 8 + hlen;
  const uint64_t data_size = fsize - data_start;
  const int file_index = int(files_.size());
  const bool first = files_.empty();
  std::vector<TensorInfo> mine;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) AR_THROW(fname, ": '__metadata__' is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) AR_THROW(fname, ": __metadata__ '", m.key(), "' is not a string");
        if (first) metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = cat(fname, ": tensor '", it.key(), "'");
    const json& e = it.value();
    if (!e.is_object()) AR_THROW(where, ": entry is not an object");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!e.contains(field)) AR_THROW(where, ": missing '", field, "'");
    TensorInfo t;
    t.name = it.key();
    if (!e["dtype"].is_string()) AR_THROW(where, ": 'dtype' is not a string");
    const std::string dt = e["dtype"].get<std::string>();
    if (!parse_dtype(dt, &t.dtype)) AR_THROW(where, ": unsupported dtype '", dt, "'");
    t.shape = parse_shape(e["shape"], where);
    const json& offs = e["data_offsets"];
    if (!offs.is_array() || offs.size() != 2) AR_THROW(where, ": 'data_offsets' is not a [begin, end] pair");
    const uint64_t begin = parse_offset(offs[0], where), end = parse_offset(offs[1], where);
    if (begin > end) AR_THROW(where, ": data_offsets begin ", begin, " > end ", end);
    if (end > data_size)
      AR_THROW(where, ": data [", begin, ", ", end, ") runs past the end of the data section (", data_size,
               " bytes)");
    // Element count, then bytes, refused when they overflow: the non-zero dims' product must fit
    // int64 (so numel() and every row count derived from the shape are safe even when another dim
    // is 0), and numel * dtype size must fit too, before anything is sized from them.
    const uint64_t esize = dtype_size(t.dtype);
    uint64_t nonzero = 1;
    bool overflow = false;
    for (int64_t d : t.shape) {
      if (d == 0) continue;
      if (nonzero > uint64_t(INT64_MAX) / uint64_t(d)) overflow = true;
      nonzero = overflow ? 1 : nonzero * uint64_t(d);
    }
    const bool empty = std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end();
    if (!overflow && !empty && nonzero > uint64_t(INT64_MAX) / esize) overflow = true;
    if (overflow)
      AR_THROW(where, ": shape ", shape_str(t.shape), " of ", dt, " has an overflowing (beyond 64-bit) element or byte count");
    const uint64_t bytes = empty ? 0 : nonzero * esize;
    if (bytes != end - begin)
      AR_THROW(where, ": shape ", shape_str(t.shape), " of ", dt, " needs ", bytes, " bytes but data_offsets span ",
               end - begin);
    t.file_index = file_index;
    t.offset_bytes = data_start + begin;
    t.size_bytes = bytes;
    mine.push_back(std::move(t));
  }
  std::sort(mine.begin(), mine.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.offset_bytes != b.offset_bytes ? a.offset_bytes < b.offset_bytes : a.name < b.name;
  });
  const TensorInfo* prev = nullptr;  // last non-empty tensor
  for (const TensorInfo& t : mine) {
    if (t.size_bytes == 0) continue;
    if (prev && t.offset_bytes < prev->offset_bytes + prev->size_bytes)
      AR_THROW(fname, ": tensors '", prev->name, "' and '", t.name, "' have overlapping data ranges");
    prev = &t;
  }
  files_.push_back(std::move(file));
  for (auto& t : mine) out->push_back(std::move(t));
}

void SafetensorsReader::build_index() {
  by_name_.clear();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    auto [it, inserted] = by_name_.emplace(tensors_[i].name, i);
    if (!inserted)
      AR_THROW(source_.string(), ": tensor '", tensors_[i].name, "' appears twice: in ",
               files_[tensors_[it->second].file_index].path().string(), " and in ",
               files_[tensors_[i].file_index].path().string());
  }
}

SafetensorsReader SafetensorsReader::open(const fs::path& path) {
  SafetensorsReader r;
  r.source_ = path;
  std::error_code ec;
  fs::path target = path;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(path / "model.safetensors.index.json", ec))
      target = path / "model.safetensors.index.json";
    else if (fs::exists(path / "model.safetensors", ec))
      target = path / "model.safetensors";
    else
      AR_THROW(path.string(), ": folder has neither model.safetensors.index.json nor model.safetensors");
  } else if (!fs::exists(path, ec)) {
    AR_THROW(path.string(), ": no such file or folder");
  }

  if (target.extension() != ".json") {
    r.add_file(target, &r.tensors_);
    r.build_index();
    return r;
  }

  // Sharded checkpoint: {"metadata": {...}, "weight_map": {tensor: shard file}}.
  const std::string iname = target.string();
  json index = parse_json_strict(read_text_file(target), iname);
  if (!index.is_object()) AR_THROW(iname, ": index is not a JSON object");
  if (!index.contains("weight_map") || !index["weight_map"].is_object())
    AR_THROW(iname, ": missing or invalid \"weight_map\" object");
  const json& wm = index["weight_map"];
  std::map<std::string, std::string> weight_map;
  std::set<std::string> shards;
  for (auto it = wm.begin(); it != wm.end(); ++it) {
    if (!it.value().is_string()) AR_THROW(iname, ": weight_map entry '", it.key(), "' is not a file name");
    std::string shard = it.value().get<std::string>();
    if (shard.empty() || fs::path(shard).filename().string() != shard)
      AR_THROW(iname, ": weight_map entry '", it.key(), "' names '", shard, "', not a file in the same folder");
    weight_map[it.key()] = shard;
    shards.insert(shard);
  }
  if (weight_map.empty()) AR_THROW(iname, ": weight_map is empty");
  const fs::path dir = target.parent_path();
  for (const std::string& shard : shards) {
    if (!fs::exists(dir / shard, ec))
      AR_THROW(iname, ": index names shard '", shard, "', which does not exist in ", dir.string());
    std::vector<TensorInfo> got;
    r.add_file(dir / shard, &got);
    for (auto& t : got) {
      auto w = weight_map.find(t.name);
      if (w == weight_map.end())
        AR_THROW(iname, ": tensor '", t.name, "' is in shard ", shard, " but not listed in the index");
      if (w->second != shard) {
        // Either a duplicate across shards or a misplaced tensor; both mean the checkpoint is broken.
        AR_THROW(iname, ": tensor '", t.name, "' is in shard ", shard, " but the index places it in ",
                 w->second);
      }
      r.tensors_.push_back(std::move(t));
    }
  }
  r.build_index();
  for (const auto& [name, shard] : weight_map)
    if (!r.by_name_.count(name))
      AR_THROW(iname, ": tensor '", name, "' is listed in the index for shard ", shard, " but absent from it");
  return r;
}

const TensorInfo* SafetensorsReader::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsReader::require(std::string_view name) const {
  const TensorInfo* t = find(name);
  if (!t) AR_THROW(source_.string(), ": tensor '", name, "' not found in the model");
  return *t;
}

const fs::path& SafetensorsReader::file_path(int file_index) const {
  AR_CHECK(file_index >= 0 && size_t(file_index) < files_.size(), "bad file index ", file_index);
  return files_[file_index].path();
}

void SafetensorsReader::read(const TensorInfo& t, void* dst) const {
  files_.at(t.file_index).read_at(t.offset_bytes, dst, t.size_bytes);
}

void SafetensorsReader::read_rows(const TensorInfo& t, int64_t row0, int64_t nrows, void* dst) const {
  AR_CHECK(!t.shape.empty(), "read_rows on 0-d tensor ", t.name);
  AR_CHECK(row0 >= 0 && nrows >= 0 && row0 + nrows <= t.shape[0], "rows [", row0, ", ", row0 + nrows,
           ") out of range for ", t.name, " with ", t.shape[0], " rows");
  if (nrows == 0) return;
  const uint64_t row_bytes = t.size_bytes / uint64_t(t.shape[0]);
  files_.at(t.file_index).read_at(t.offset_bytes + uint64_t(row0) * row_bytes, dst, size_t(nrows * row_bytes));
}

void SafetensorsReader::read_range_f32(const TensorInfo& t, uint64_t elem0, uint64_t n, float* dst) const {
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    AR_THROW(file_path(t.file_index).string(), ": tensor '", t.name, "' has dtype ", dtype_name(t.dtype),
             "; only F32, F16 and BF16 can be read as floats");
  const ReadFile& f = files_.at(t.file_index);
  const uint64_t esize = dtype_size(t.dtype);
  const uint64_t base = t.offset_bytes + elem0 * esize;
  if (t.dtype == DType::F32) {
    f.read_at(base, dst, size_t(n * 4));
    return;
  }
  // 16-bit: stage through a bounded buffer so a huge tensor needs no second full-size copy.
  constexpr uint64_t kChunkElems = 1 << 18;
  Buffer stage(size_t(std::min(n, kChunkElems) * esize), "safetensors f32 staging");
  for (uint64_t done = 0; done < n;) {
    const uint64_t m = std::min(n - done, kChunkElems);
    f.read_at(base + done * esize, stage.data(), size_t(m * esize));
    to_f32(dst + done, stage.data(), t.dtype, size_t(m));
    done += m;
  }
}

void SafetensorsReader::read_f32(const TensorInfo& t, float* dst) const {
  read_range_f32(t, 0, uint64_t(t.numel()), dst);
}

void SafetensorsReader::read_rows_f32(const TensorInfo& t, int64_t row0, int64_t nrows, float* dst) const {
  AR_CHECK(!t.shape.empty(), "read_rows_f32 on 0-d tensor ", t.name);
  AR_CHECK(row0 >= 0 && nrows >= 0 && row0 + nrows <= t.shape[0], "rows [", row0, ", ", row0 + nrows,
           ") out of range for ", t.name, " with ", t.shape[0], " rows");
  if (nrows == 0) return;
  const uint64_t row_elems = uint64_t(t.numel() / t.shape[0]);
  read_range_f32(t, uint64_t(row0) * row_elems, uint64_t(nrows) * row_elems, dst);
}

void SafetensorsReader::release(const TensorInfo& t) const {
  files_.at(t.file_index).drop_cache(t.offset_bytes, t.size_bytes);
}

}  // namespace ar
