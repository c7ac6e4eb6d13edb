#include "pipeline/checkpoint.h"

#include <cmath>
#include <cstring>

#include "core/checksum.h"
#include "core/error.h"
#include "io/atomic_output.h"
#include "io/file.h"

namespace ar {

namespace {

// Block files: version 3 adds each quantized layer's data type (a byte after `sym`) and the
// floating-point formats' scales (issue 19); version 2 files (integer layers only) still load, so a
// run interrupted before this change resumes. The manifest's format names the newest block version
// it may list: older binaries refuse a version 3 manifest by its format string.
constexpr char kBlockMagic[8] = {'A', 'R', 'B', 'L', 'K', '0', '0', '3'};
constexpr char kBlockMagicV2[8] = {'A', 'R', 'B', 'L', 'K', '0', '0', '2'};
constexpr const char* kManifestFormat = "autoround.cpp checkpoint 3";
constexpr const char* kManifestFormatV2 = "autoround.cpp checkpoint 2";
// Flags of one linear's record in a block file: which parts of its LinearResult follow.
constexpr uint8_t kHasQ = 1, kHasGguf = 2, kHasImportance = 4;

// A block file as it is made: written through the file's buffer, the checksum taken along the
// way. A Qwen3-30B-A3B block's codes are 0.6 GB; building the whole file in memory first held
// another copy of them (and more while the string grew) beyond the plan.
class BlockFileSink {
 public:
  explicit BlockFileSink(const std::filesystem::path& file) : file_(file) {}
  void put(const void* p, size_t n) {
    if (n == 0) return;  // p may be an empty vector's null data()
    sum_.add(p, n);
    file_.write(p, n);
  }
  // Makes the file durable under its name; returns its checksum64.
  uint64_t commit() {
    file_.commit();
    return sum_.value();
  }

 private:
  AtomicFile file_;
  Checksum64Stream sum_;
};

void put(BlockFileSink& out, const void* p, size_t n) { out.put(p, n); }
template <typename T>
void put_pod(BlockFileSink& out, T v) {
  put(out, &v, sizeof v);
}

// The whole block file, refused unless it matches the checksum the manifest recorded: a torn or
// edited file must not be parsed into weights.
std::string read_checked_block_file(const std::filesystem::path& file, uint64_t expected_sum) {
  std::string data = read_text_file(file, kNoSizeLimit);
  if (checksum64(data.data(), data.size()) != expected_sum)
    AR_THROW(file.string(), ": checkpoint block file is corrupted (checksum mismatch); delete the work directory ",
             "and start again without --resume");
  return data;
}

// Bounds-checked reader over a loaded file: every field read past the end is an ar::Error.
struct Cursor {
  const std::string& data;
  const std::filesystem::path& file;
  size_t at = 0;
  void get(void* dst, size_t n) {
    if (n == 0) return;  // dst may be an empty vector's null data(): memcpy must not see it
    if (n > data.size() - at) AR_THROW(file.string(), ": checkpoint block file is truncated at byte ", at);
    std::memcpy(dst, data.data() + at, n);
    at += n;
  }
  template <typename T>
  T pod() {
    T v;
    get(&v, sizeof v);
    return v;
  }
};

std::vector<uint64_t> sums_from_json(const nlohmann::json& j) {
  std::vector<uint64_t> v;
  for (const auto& s : j) v.push_back(std::stoull(s.get<std::string>(), nullptr, 16));
  return v;
}

nlohmann::json sums_to_json(const std::vector<uint64_t>& v) {
  nlohmann::json j = nlohmann::json::array();
  for (uint64_t s : v) j.push_back(checksum_hex(s));
  return j;
}

}  // namespace

void write_manifest(const std::filesystem::path& work_dir, const CheckpointManifest& m, bool keep_previous) {
  if (keep_previous) {
    std::error_code ec;
    std::filesystem::rename(work_dir / kManifestName, work_dir / kPrevManifestName, ec);
  }
  nlohmann::json j;
  j["format"] = kManifestFormat;
  j["identity"] = m.identity;
  j["next_block"] = m.next_block;
  j["x_file"] = m.x_file;
  j["xq_file"] = m.xq_file;
  j["x_sums"] = sums_to_json(m.x_sums);
  j["xq_sums"] = sums_to_json(m.xq_sums);
  j["block_files"] = m.block_files;
  j["block_sums"] = sums_to_json(m.block_sums);
  if (m.caches_only) j["caches_only"] = true;
  write_file_atomic(work_dir / kManifestName, j.dump(1));
}

std::optional<CheckpointManifest> read_manifest(const std::filesystem::path& work_dir, const char* name) {
  const std::filesystem::path file = work_dir / name;
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return std::nullopt;
  CheckpointManifest m;
  try {
    nlohmann::json j = nlohmann::json::parse(read_text_file(file));
    if (j.at("format") != kManifestFormat && j.at("format") != kManifestFormatV2)
      AR_THROW(file.string(), ": checkpoint format ", j.at("format").dump(), " is not this version's (\"",
               kManifestFormat, "\"); delete the work directory and start again without --resume");
    m.identity = j.at("identity");
    m.next_block = j.at("next_block").get<int64_t>();
    m.x_file = j.at("x_file").get<std::string>();
    m.xq_file = j.at("xq_file").get<std::string>();
    m.x_sums = sums_from_json(j.at("x_sums"));
    m.xq_sums = sums_from_json(j.at("xq_sums"));
    m.block_files = j.at("block_files").get<std::vector<std::string>>();
    m.block_sums = sums_from_json(j.at("block_sums"));
    m.caches_only = j.contains("caches_only") && j.at("caches_only").get<bool>();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    AR_THROW(file.string(), ": malformed checkpoint manifest: ", e.what());
  }
  const size_t files = m.caches_only ? 0 : size_t(m.next_block);
  if (m.next_block < 0 || m.block_files.size() != files || m.block_sums.size() != m.block_files.size())
    AR_THROW(file.string(), ": malformed checkpoint manifest: ", m.block_files.size(), " block files for ",
             m.next_block, " finished blocks");
  // Every name must stay inside the work directory.
  auto plain = [](const std::string& f) { return f.find('/') == std::string::npos && f != "." && f != ".."; };
  for (const auto& f : m.block_files)
    if (f.empty() || !plain(f)) AR_THROW(file.string(), ": block file name '", f, "' is not a plain name");
  for (const std::string* f : {&m.x_file, &m.xq_file})
    if (!plain(*f)) AR_THROW(file.string(), ": cache file name '", *f, "' is not a plain name");
  return m;
}

void check_identity(const std::filesystem::path& work_dir, const nlohmann::json& saved, const nlohmann::json& now) {
  for (const auto& [k, v] : now.items()) {
    if (!saved.contains(k) || saved.at(k) != v)
      AR_THROW("--resume: the checkpoint in ", work_dir.string(), " was made with ", k, "=",
               saved.contains(k) ? saved.at(k).dump() : std::string("(unset)"), ", this run has ", k, "=", v.dump(),
               "; rerun with the same settings, or start again without --resume");
  }
  for (const auto& [k, v] : saved.items())
    if (!now.contains(k)) AR_THROW("--resume: the checkpoint in ", work_dir.string(), " has a setting ", k, " this run lacks");
}

uint64_t save_block_result(const std::filesystem::path& file, const BlockResult& r) {
  BlockFileSink out(file);
  put(out, kBlockMagic, 8);
  put_pod<int64_t>(out, r.layer);
  put_pod<uint8_t>(out, r.tuned ? 1 : 0);
  put_pod<uint32_t>(out, uint32_t(r.linears.size()));
  for (const auto& [name, lr] : r.linears) {
    put_pod<uint32_t>(out, uint32_t(name.size()));
    put(out, name.data(), name.size());
    put_pod<uint8_t>(out, uint8_t((lr.q ? kHasQ : 0) | (lr.gguf.empty() ? 0 : kHasGguf) |
                                  (lr.importance.empty() ? 0 : kHasImportance)));
    if (lr.q) {
      const QuantizedWeight& w = *lr.q;
      put_pod<int32_t>(out, w.scheme.bits);
      put_pod<int64_t>(out, w.scheme.group_size);
      put_pod<uint8_t>(out, w.scheme.sym ? 1 : 0);
      put_pod<uint8_t>(out, uint8_t(w.scheme.data_type));
      put_pod<int64_t>(out, w.out);
      put_pod<int64_t>(out, w.in);
      put(out, w.codes.data(), w.codes.size());
      // Whichever scale vectors the data type uses (the others are empty): QuantizedWeight::allocate.
      put(out, w.scales.data(), w.scales.size() * 2);
      put(out, w.zeros.data(), w.zeros.size());
      put(out, w.scale_codes.data(), w.scale_codes.size());
      put(out, w.scales_f32.data(), w.scales_f32.size() * sizeof(float));
      if (w.scheme.data_type == DataType::NVFP4) put_pod<float>(out, w.global_scale);
    }
    if (!lr.gguf.empty()) {
      put_pod<uint32_t>(out, uint32_t(lr.gguf_type));
      put_pod<uint64_t>(out, uint64_t(lr.gguf.size()));
      put(out, lr.gguf.data(), lr.gguf.size());
    }
    if (!lr.importance.empty()) {
      put_pod<uint64_t>(out, uint64_t(lr.importance.size()));
      put(out, lr.importance.data(), lr.importance.size() * sizeof(float));
    }
  }
  return out.commit();
}

namespace {

// version: 2 or 3 (the block file's magic).
QuantizedWeight read_quantized(Cursor& c, const std::filesystem::path& file, const std::string& name, int version) {
  QuantScheme s;
  s.bits = c.pod<int32_t>();
  s.group_size = c.pod<int64_t>();
  s.sym = c.pod<uint8_t>() != 0;
  const uint8_t type = version >= 3 ? c.pod<uint8_t>() : 0;
  if (type > uint8_t(DataType::FP8Block)) AR_THROW(file.string(), ": layer ", name, " has unknown data type ", int(type));
  s.data_type = DataType(type);
  const int64_t out = c.pod<int64_t>(), in = c.pod<int64_t>();
  if (s.bits < 2 || s.bits > 8 || out <= 0 || in <= 0 || out > (1 << 24) || in > (1 << 24) ||
      (s.group_size <= 0 && s.group_size != -1) || (s.is_fp() && s != fp_scheme(s.data_type)))
    AR_THROW(file.string(), ": bad layer header for ", name, " (", data_type_name(s.data_type), ", bits ", s.bits,
             ", group_size ", s.group_size, ", shape ", out, " x ", in, ")");
  // Codes (out*in) and the scale vectors: at most 2^48 + 4 * 2^48 bytes with the bounds above, so no
  // overflow; refused unless the file holds them, before allocating.
  const uint64_t ng = uint64_t(num_groups(s, in)), rows = uint64_t(out);
  uint64_t need = rows * uint64_t(in);
  switch (s.data_type) {
    case DataType::Int: need += 3 * rows * ng; break;
    case DataType::MXFP4:
    case DataType::MXFP8: need += rows * ng; break;
    case DataType::NVFP4: need += rows * ng + 4; break;
    case DataType::FP8: need += 4 * rows; break;
    case DataType::FP8Block: need += 4 * ng * uint64_t(out / kFp8BlockSize + (out % kFp8BlockSize != 0)); break;
  }
  if (need > c.data.size() - c.at)
    AR_THROW(file.string(), ": layer ", name, " (", out, " x ", in, ", ", scheme_label(s), ") needs ", need,
             " bytes but the checkpoint block file has ", c.data.size() - c.at, " left");
  QuantizedWeight w = QuantizedWeight::allocate(s, out, in);
  c.get(w.codes.data(), w.codes.size());
  c.get(w.scales.data(), w.scales.size() * 2);
  c.get(w.zeros.data(), w.zeros.size());
  c.get(w.scale_codes.data(), w.scale_codes.size());
  c.get(w.scales_f32.data(), w.scales_f32.size() * sizeof(float));
  if (s.data_type == DataType::NVFP4) w.global_scale = c.pod<float>();
  for (float f : w.scales_f32)
    if (!(f > 0.f) || !std::isfinite(f)) AR_THROW(file.string(), ": layer ", name, " has an FP8 scale ", f);
  if (!(w.global_scale >= 0.f) || !std::isfinite(w.global_scale))
    AR_THROW(file.string(), ": layer ", name, " has an NVFP4 global scale ", w.global_scale);
  return w;
}

// A length field read from the file, checked against the bytes that are left before allocating.
size_t checked_count(Cursor& c, size_t elem_bytes, const std::filesystem::path& file, const std::string& name) {
  const uint64_t n = c.pod<uint64_t>();
  if (n > (c.data.size() - c.at) / elem_bytes)
    AR_THROW(file.string(), ": checkpoint block file is truncated in '", name, "'");
  return size_t(n);
}

}  // namespace

BlockResult load_block_result(const std::filesystem::path& file, uint64_t expected_sum) {
  const std::string data = read_checked_block_file(file, expected_sum);
  Cursor c{data, file};
  char magic[8];
  c.get(magic, 8);
  const int version = std::memcmp(magic, kBlockMagic, 8) == 0 ? 3 : std::memcmp(magic, kBlockMagicV2, 8) == 0 ? 2 : 0;
  if (version == 0) AR_THROW(file.string(), ": not a checkpoint block file");
  BlockResult r;
  r.layer = c.pod<int64_t>();
  r.tuned = c.pod<uint8_t>() != 0;
  const uint32_t count = c.pod<uint32_t>();
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t len = c.pod<uint32_t>();
    if (len > 4096) AR_THROW(file.string(), ": layer name of ", len, " bytes");
    std::string name(len, '\0');
    c.get(name.data(), len);
    const uint8_t flags = c.pod<uint8_t>();
    if (flags & ~(kHasQ | kHasGguf | kHasImportance))
      AR_THROW(file.string(), ": unknown record flags ", int(flags), " for ", name);
    LinearResult lr;
    if (flags & kHasQ) lr.q = read_quantized(c, file, name, version);
    if (flags & kHasGguf) {
      const uint32_t type = c.pod<uint32_t>();
      if (!ggml_type_info(type)) AR_THROW(file.string(), ": '", name, "' has unknown GGML type ", type);
      lr.gguf_type = GgmlType(type);
      lr.gguf.resize(checked_count(c, 1, file, name));
      c.get(lr.gguf.data(), lr.gguf.size());
    }
    if (flags & kHasImportance) {
      lr.importance.resize(checked_count(c, sizeof(float), file, name));
      c.get(lr.importance.data(), lr.importance.size() * sizeof(float));
    }
    if (!r.linears.emplace(std::move(name), std::move(lr)).second)
      AR_THROW(file.string(), ": layer ", i, " appears twice");
  }
  if (c.at != data.size()) AR_THROW(file.string(), ": ", data.size() - c.at, " trailing bytes in checkpoint block file");
  return r;
}

}  // namespace ar
