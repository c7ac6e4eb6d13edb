// GgufReader: header, metadata and tensor-info parsing with strict validation, and pread-based
// tensor reads. Bytes come from an untrusted file: every count, length and offset is checked
// against the bytes that remain (and against overflow) before anything is allocated from it.
// Format facts follow ggml/docs/gguf.md; the checks mirror those of ggml's own gguf.cpp.
#include <algorithm>
#include <limits>
#include <utility>

#include "core/error.h"
#include "io/gguf.h"

namespace ar {

namespace {

// Sequential reads over a ReadFile through a window buffer, so thousands of tiny fields (token
// strings) cost a few large preads. Every read is bounds-checked with a message saying what was
// being read where.
class Cursor {
 public:
  explicit Cursor(const ReadFile& f) : f_(f), fname_(f.path().string()) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return f_.size_bytes() - pos_; }
  const std::string& fname() const { return fname_; }

  void read(void* dst, uint64_t n, const std::string& what) {
    if (n > remaining())
      AR_THROW(fname_, ": truncated file: ", what, " needs ", n, " bytes at offset ", pos_,
               " but the file ends at ", f_.size_bytes());
    auto* out = static_cast<uint8_t*>(dst);
    while (n > 0) {
      if (pos_ < win_start_ || pos_ >= win_start_ + win_.size()) refill();
      const uint64_t off = pos_ - win_start_;
      const uint64_t m = std::min<uint64_t>(n, win_.size() - off);
      std::memcpy(out, win_.data() + off, size_t(m));
      out += m;
      pos_ += m;
      n -= m;
    }
  }
  template <typename T>
  T get(const std::string& what) {
    T v;
    read(&v, sizeof(T), what);
    return v;
  }
  std::string get_string(const std::string& what) {
    const uint64_t len = get<uint64_t>(cat(what, " (length)"));
    if (len > remaining())
      AR_THROW(fname_, ": ", what, " has length ", len, " at offset ", pos_ - 8, ", past the end of the file (",
               remaining(), " bytes remain)");
    std::string s(size_t(len), '\0');
    read(s.data(), len, what);
    return s;
  }

 private:
  void refill() {
    constexpr uint64_t kWindow = 1 << 20;
    win_start_ = pos_;
    win_.resize(size_t(std::min(kWindow, remaining())));
    f_.read_at(win_start_, win_.data(), win_.size());
  }
  const ReadFile& f_;
  std::string fname_;
  uint64_t pos_ = 0;
  uint64_t win_start_ = 0;
  std::vector<uint8_t> win_;
};

bool valid_type_id(uint32_t id) { return id <= uint32_t(GgufType::F64); }

// Reads one value of type `type` (not Array) into v (scalar) or appends to it (array element).
void read_value_into(Cursor& c, GgufType type, GgufValue* v, const std::string& what) {
  if (type == GgufType::String) {
    v->strings.push_back(c.get_string(what));
    return;
  }
  const size_t n = gguf_scalar_bytes(type);
  const size_t at = v->bytes.size();
  v->bytes.resize(at + n);
  c.read(v->bytes.data() + at, n, what);
  if (type == GgufType::Bool && v->bytes[at] > 1)
    AR_THROW(c.fname(), ": ", what, ": bool value ", int(v->bytes[at]), " is neither 0 nor 1");
}

GgufValue read_value(Cursor& c, const std::string& where) {
  const uint32_t tid = c.get<uint32_t>(cat(where, " value type"));
  if (!valid_type_id(tid)) AR_THROW(c.fname(), ": ", where, ": unknown value type ", tid);
  GgufValue v;
  v.type = GgufType(tid);
  if (v.type != GgufType::Array) {
    read_value_into(c, v.type, &v, cat(where, " value"));
    return v;
  }
  const uint32_t eid = c.get<uint32_t>(cat(where, " array element type"));
  if (!valid_type_id(eid)) AR_THROW(c.fname(), ": ", where, ": unknown array element type ", eid);
  v.elem_type = GgufType(eid);
  if (v.elem_type == GgufType::Array) AR_THROW(c.fname(), ": ", where, ": nested arrays are not supported");
  const uint64_t count = c.get<uint64_t>(cat(where, " array length"));
  // A string element takes at least its 8-byte length; check before reserving anything.
  const uint64_t min_elem = v.elem_type == GgufType::String ? 8 : gguf_scalar_bytes(v.elem_type);
  if (count > c.remaining() / min_elem)
    AR_THROW(c.fname(), ": ", where, ": array of ", count, " ", gguf_type_name(v.elem_type),
             " elements runs past the end of the file (", c.remaining(), " bytes remain)");
  if (v.elem_type == GgufType::String) {
    v.strings.reserve(size_t(count));
    for (uint64_t i = 0; i < count; ++i) v.strings.push_back(c.get_string(cat(where, " element ", i)));
  } else {
    v.bytes.resize(size_t(count * min_elem));
    c.read(v.bytes.data(), v.bytes.size(), cat(where, " array data"));
    if (v.elem_type == GgufType::Bool)
      for (uint64_t i = 0; i < count; ++i)
        if (v.bytes[i] > 1)
          AR_THROW(c.fname(), ": ", where, " element ", i, ": bool value ", int(v.bytes[i]), " is neither 0 nor 1");
  }
  return v;
}

std::string dims_str(const std::vector<int64_t>& d) {
  std::string r = "[";
  for (size_t i = 0; i < d.size(); ++i) r += (i ? ", " : "") + std::to_string(d[i]);
  return r + "]";
}

}  // namespace

GgufReader GgufReader::open(const std::filesystem::path& path) {
  GgufReader r;
  r.file_ = ReadFile(path);
  Cursor c(r.file_);
  const std::string& fname = c.fname();

  char magic[4];
  c.read(magic, 4, "magic");
  if (std::memcmp(magic, "GGUF", 4) != 0)
    AR_THROW(fname, ": not a GGUF file (magic bytes are '", std::string(magic, 4), "', expected 'GGUF')");
  r.version_ = c.get<uint32_t>("version");
  if (r.version_ == 1)
    AR_THROW(fname, ": GGUF version 1 is not supported (32-bit counts); re-convert the model");
  if (r.version_ != 2 && r.version_ != 3)
    AR_THROW(fname, ": unsupported GGUF version ", r.version_, " (expected 3",
             (r.version_ & 0xFFFF) == 0 ? "; a big-endian file?" : "", ")");
  const uint64_t n_tensors = c.get<uint64_t>("tensor count");
  const uint64_t n_kv = c.get<uint64_t>("metadata KV count");
  // Smallest possible entries: a KV is key length + type + 1 byte; a tensor info is name length +
  // n_dims + type + offset. Counts beyond what the file can hold are refused before reserving.
  constexpr uint64_t kMinKvBytes = 8 + 4 + 1, kMinTensorInfoBytes = 8 + 4 + 4 + 8;
  if (n_kv > c.remaining() / kMinKvBytes)
    AR_THROW(fname, ": metadata KV count ", n_kv, " cannot fit in the ", c.remaining(), " bytes left in the file");
  if (n_tensors > c.remaining() / kMinTensorInfoBytes)
    AR_THROW(fname, ": tensor count ", n_tensors, " cannot fit in the ", c.remaining(),
             " bytes left in the file");

  r.kvs_.reserve(size_t(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    GgufKV kv;
    kv.key = c.get_string(cat("key of metadata KV #", i));
    if (kv.key.empty()) AR_THROW(fname, ": metadata KV #", i, " has an empty key");
    kv.value = read_value(c, cat("metadata KV '", kv.key, "'"));
    if (!r.kv_index_.emplace(kv.key, r.kvs_.size()).second)
      AR_THROW(fname, ": duplicate metadata key '", kv.key, "'");
    r.kvs_.push_back(std::move(kv));
  }

  if (const GgufValue* a = r.find_kv("general.alignment")) {
    if (a->type != GgufType::U32)
      AR_THROW(fname, ": general.alignment is ", a->type_str(), ", expected u32");
    const uint32_t al = a->as<uint32_t>();
    if (al == 0 || (al & (al - 1)) != 0)
      AR_THROW(fname, ": general.alignment ", al, " is not a power of two");
    r.alignment_ = al;
  }

  r.tensors_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.get_string(cat("name of tensor #", i));
    const std::string where = cat("tensor '", t.name, "'");
    if (t.name.empty()) AR_THROW(fname, ": tensor #", i, " has an empty name");
    const uint32_t n_dims = c.get<uint32_t>(cat(where, " n_dims"));
    if (n_dims < 1 || n_dims > uint32_t(kGgufMaxDims))
      AR_THROW(fname, ": ", where, " has ", n_dims, " dimensions (expected 1 to ", kGgufMaxDims, ")");
    // The product of the non-zero dims must fit int64, so numel(), n_rows() and row offsets are
    // safe whatever the order of the dims (a 0 dim does not excuse the others).
    uint64_t nonzero = 1;
    bool overflow = false, empty = false;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t v = c.get<uint64_t>(cat(where, " dim ", d));
      if (v > uint64_t(std::numeric_limits<int64_t>::max()))
        AR_THROW(fname, ": ", where, " dim ", d, " = ", v, " is out of range");
      if (v == 0) empty = true;
      else if (nonzero > uint64_t(std::numeric_limits<int64_t>::max()) / v) overflow = true;
      else nonzero *= v;
      t.dims.push_back(int64_t(v));
    }
    if (overflow) AR_THROW(fname, ": ", where, " dims ", dims_str(t.dims), " overflow the element count");
    const uint64_t numel = empty ? 0 : nonzero;
    const uint32_t type_id = c.get<uint32_t>(cat(where, " type"));
    const auto info = ggml_type_info(type_id);
    if (!info) AR_THROW(fname, ": ", where, " has unknown or unsupported ggml type id ", type_id);
    t.type = info->type;
    if (t.dims[0] % info->block_elems != 0)
      AR_THROW(fname, ": ", where, " of type ", info->name, " has row length ", t.dims[0],
               ", not a multiple of its block size ", info->block_elems);
    const uint64_t n_blocks = numel / uint64_t(info->block_elems);
    if (n_blocks != 0 && info->block_bytes > std::numeric_limits<uint64_t>::max() / n_blocks)
      AR_THROW(fname, ": ", where, " dims ", dims_str(t.dims), " overflow the byte size");
    t.size_bytes = n_blocks * info->block_bytes;
    t.offset_bytes = c.get<uint64_t>(cat(where, " offset"));  // relative for now
    if (t.offset_bytes % r.alignment_ != 0)
      AR_THROW(fname, ": ", where, " data offset ", t.offset_bytes, " is not a multiple of the alignment ",
               r.alignment_);
    if (!r.tensor_index_.emplace(t.name, r.tensors_.size()).second)
      AR_THROW(fname, ": duplicate tensor name '", t.name, "'");
    r.tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment; the padding itself may be
  // missing at the very end of a file without tensor data.
  const uint64_t size = r.file_.size_bytes();
  r.data_offset_ = (c.pos() + r.alignment_ - 1) / r.alignment_ * r.alignment_;
  const uint64_t data_size = r.data_offset_ <= size ? size - r.data_offset_ : 0;
  for (GgufTensorInfo& t : r.tensors_) {
    if (t.offset_bytes > data_size || t.size_bytes > data_size - t.offset_bytes)
      AR_THROW(fname, ": tensor '", t.name, "' data [", t.offset_bytes, ", +", t.size_bytes,
               ") runs past the end of the data section (", data_size, " bytes from offset ", r.data_offset_,
               "; file is ", size, " bytes)");
    t.offset_bytes += r.data_offset_;
  }
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : r.tensors_)
    if (t.size_bytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset_bytes < b->offset_bytes; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo *a = by_offset[i - 1], *b = by_offset[i];
    if (b->offset_bytes < a->offset_bytes + a->size_bytes)
      AR_THROW(fname, ": tensors '", a->name, "' and '", b->name, "' have overlapping data");
  }
  return r;
}

const GgufValue* GgufReader::find_kv(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const GgufValue& GgufReader::require_kv(std::string_view key) const {
  const GgufValue* v = find_kv(key);
  if (!v) AR_THROW(path().string(), ": metadata key '", key, "' not found");
  return *v;
}

const GgufValue& GgufReader::typed_kv(std::string_view key, GgufType type, GgufType elem_type) const {
  const GgufValue& v = require_kv(key);
  if (v.type != type || (type == GgufType::Array && v.elem_type != elem_type))
    AR_THROW(path().string(), ": metadata key '", key, "' is ", v.type_str(), ", expected ",
             type == GgufType::Array ? cat("array[", gguf_type_name(elem_type), "]")
                                     : std::string(gguf_type_name(type)));
  return v;
}

const std::string& GgufReader::get_string(std::string_view key) const {
  return typed_kv(key, GgufType::String, GgufType::U8).as_string();
}

const std::vector<std::string>& GgufReader::get_string_array(std::string_view key) const {
  return typed_kv(key, GgufType::Array, GgufType::String).as_string_array();
}

const GgufTensorInfo* GgufReader::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufReader::require_tensor(std::string_view name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (!t) AR_THROW(path().string(), ": tensor '", name, "' not found");
  return *t;
}

void GgufReader::read(const GgufTensorInfo& t, void* dst) const {
  file_.read_at(t.offset_bytes, dst, size_t(t.size_bytes));
}

void GgufReader::read_rows(const GgufTensorInfo& t, int64_t row0, int64_t nrows, void* dst) const {
  AR_CHECK(row0 >= 0 && nrows >= 0 && row0 + nrows <= t.n_rows(), "rows [", row0, ", ", row0 + nrows,
           ") out of range for ", t.name, " with ", t.n_rows(), " rows");
  if (nrows == 0) return;
  const uint64_t rb = t.row_bytes();
  file_.read_at(t.offset_bytes + uint64_t(row0) * rb, dst, size_t(uint64_t(nrows) * rb));
}

void GgufReader::release(const GgufTensorInfo& t) const { file_.drop_cache(t.offset_bytes, t.size_bytes); }

}  // namespace ar
