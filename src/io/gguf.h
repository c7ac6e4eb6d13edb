// GGUF v3 files (llama.cpp / ggml): a strict reader and a streamed writer.
// Layout (all little-endian; ggml/docs/gguf.md):
//   "GGUF" magic, u32 version (3; 2 has the same layout and is read too), u64 n_tensors, u64 n_kv
//   n_kv x   { string key, u32 value type, value }
//   n_tensors x { string name, u32 n_dims (1..4), u64 dims[n_dims] (fastest first), u32 ggml type,
//                 u64 offset (relative to the data section, a multiple of the alignment) }
//   zero padding up to the alignment (general.alignment, u32 power of two, default 32)
//   data section: tensor bytes at their offsets, each padded to the alignment.
// string = u64 byte length + bytes (no NUL). array = u32 element type + u64 count + elements.
// Values are typed on disk and kept typed here, so a written file reads back identical.
#pragma once
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/ggml_type.h"
#include "io/atomic_output.h"
#include "io/file.h"

namespace ar {

// On-disk gguf_type ids.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};
std::string_view gguf_type_name(GgufType t);  // "u32", "array", ...
// Bytes of one scalar on disk; 0 for String and Array.
size_t gguf_scalar_bytes(GgufType t);

// C++ type <-> GGUF scalar type, for the typed getters and builders.
template <typename T> struct GgufScalar;
template <> struct GgufScalar<uint8_t> { static constexpr GgufType type = GgufType::U8; };
template <> struct GgufScalar<int8_t> { static constexpr GgufType type = GgufType::I8; };
template <> struct GgufScalar<uint16_t> { static constexpr GgufType type = GgufType::U16; };
template <> struct GgufScalar<int16_t> { static constexpr GgufType type = GgufType::I16; };
template <> struct GgufScalar<uint32_t> { static constexpr GgufType type = GgufType::U32; };
template <> struct GgufScalar<int32_t> { static constexpr GgufType type = GgufType::I32; };
template <> struct GgufScalar<float> { static constexpr GgufType type = GgufType::F32; };
template <> struct GgufScalar<bool> { static constexpr GgufType type = GgufType::Bool; };
template <> struct GgufScalar<uint64_t> { static constexpr GgufType type = GgufType::U64; };
template <> struct GgufScalar<int64_t> { static constexpr GgufType type = GgufType::I64; };
template <> struct GgufScalar<double> { static constexpr GgufType type = GgufType::F64; };

// One metadata value. Numeric/bool scalars and arrays keep their on-disk little-endian bytes in
// `bytes` (a bool is one byte, 0 or 1); strings (scalar or array elements) live in `strings`.
// Nested arrays are not supported (llama.cpp writes none).
struct GgufValue {
  GgufType type = GgufType::U32;
  GgufType elem_type = GgufType::U8;  // arrays only
  std::vector<uint8_t> bytes;
  std::vector<std::string> strings;

  bool is_array() const { return type == GgufType::Array; }
  // Number of array elements (arrays only; 1 for scalars).
  uint64_t size() const;
  bool operator==(const GgufValue&) const = default;

  // Builders.
  template <typename T> static GgufValue scalar(T v);
  static GgufValue string(std::string s);
  template <typename T> static GgufValue array(const std::vector<T>& v);
  static GgufValue string_array(std::vector<std::string> v);

  // Exact-type accessors; a type mismatch is an InternalError (readers check with GgufReader's
  // getters, which name the file and key).
  template <typename T> T as() const;
  const std::string& as_string() const;
  template <typename T> std::vector<T> as_array() const;
  const std::vector<std::string>& as_string_array() const;
  // "u32", "array[string]"; and a short printable rendering for messages and diffs.
  std::string type_str() const;
  std::string to_string(size_t max_elems = 8) const;
};

struct GgufKV {
  std::string key;
  GgufValue value;
};

// A tensor as the writer plans it: name, element type, dims in GGUF order (dims[0] is the row
// length, the fastest-varying dimension; a HF [out, in] weight is dims {in, out}).
struct GgufTensorDecl {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> dims;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> dims;  // GGUF order, fastest first
  uint64_t offset_bytes = 0;  // absolute offset of the data in the file
  uint64_t size_bytes = 0;
  int64_t numel() const;
  int64_t row_elems() const { return dims.empty() ? 1 : dims[0]; }
  int64_t n_rows() const;     // product of dims[1..]
  uint64_t row_bytes() const;
};

inline constexpr uint32_t kGgufVersion = 3;
inline constexpr uint32_t kGgufDefaultAlignment = 32;
inline constexpr int kGgufMaxDims = 4;
inline constexpr size_t kGgufMaxNameBytes = 63;  // llama.cpp's GGML_MAX_NAME (64) minus the NUL

class GgufReader {
 public:
  // Reads and validates header, metadata and tensor infos (not the tensor data). Every
  // inconsistency is an ar::Error that names the file and what is wrong.
  static GgufReader open(const std::filesystem::path& path);

  GgufReader(GgufReader&&) noexcept = default;
  GgufReader& operator=(GgufReader&&) noexcept = default;

  const std::filesystem::path& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset_bytes() const { return data_offset_; }  // start of the data section

  // Metadata in file order.
  const std::vector<GgufKV>& metadata() const { return kvs_; }
  const GgufValue* find_kv(std::string_view key) const;   // nullptr if absent
  const GgufValue& require_kv(std::string_view key) const;  // throws naming file and key
  // Typed getters: absent key or a different stored type is an ar::Error naming file, key,
  // expected and actual type.
  template <typename T> T get(std::string_view key) const;
  uint32_t get_u32(std::string_view key) const { return get<uint32_t>(key); }
  int32_t get_i32(std::string_view key) const { return get<int32_t>(key); }
  uint64_t get_u64(std::string_view key) const { return get<uint64_t>(key); }
  float get_f32(std::string_view key) const { return get<float>(key); }
  bool get_bool(std::string_view key) const { return get<bool>(key); }
  const std::string& get_string(std::string_view key) const;
  template <typename T> std::vector<T> get_array(std::string_view key) const;
  const std::vector<std::string>& get_string_array(std::string_view key) const;

  // Tensors in file (declaration) order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;  // nullptr if absent
  const GgufTensorInfo& require_tensor(std::string_view name) const;

  // Raw bytes of a tensor (t.size_bytes) or of rows [row0, row0 + nrows) (nrows * t.row_bytes()),
  // where a row is dims[0] elements; positioned reads, nothing mapped.
  void read(const GgufTensorInfo& t, void* dst) const;
  void read_rows(const GgufTensorInfo& t, int64_t row0, int64_t nrows, void* dst) const;
  // Drops the tensor's pages from the page cache (advisory).
  void release(const GgufTensorInfo& t) const;

 private:
  GgufReader() = default;
  const GgufValue& typed_kv(std::string_view key, GgufType type, GgufType elem_type) const;

  ReadFile file_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKV> kvs_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Where everything goes in a GGUF file with these KVs and tensors: the alignment (from a
// "general.alignment" u32 KV, else 32), the start of the data section, each tensor's absolute
// offset and size, and the size of the whole file. Computed without writing anything (for a
// dry run, or to budget disk space); GgufWriter writes exactly this layout. Throws ar::Error
// naming `fname` for a bad plan: duplicate or empty keys, a bad alignment, duplicate, empty or
// over-long tensor names, dims not 1..4 or not positive, a row length that is not a multiple of
// the type's block size, an element count that overflows.
struct GgufPlan {
  uint32_t alignment = kGgufDefaultAlignment;
  uint64_t data_offset_bytes = 0;
  uint64_t total_bytes = 0;
  std::vector<GgufTensorInfo> tensors;
};
GgufPlan gguf_plan(const std::vector<GgufKV>& kvs, const std::vector<GgufTensorDecl>& tensors,
                   const std::string& fname);

// Streamed writer. The caller declares every KV and every tensor up front; the constructor
// computes the offsets and writes header, metadata, tensor infos and padding to `<path>.tmp`.
// Tensor data then follows in declared order, whole (write_tensor) or in consecutive pieces
// (write_tensor_chunk); nothing is buffered beyond the file's write buffer. finish() pads,
// fsyncs and renames into place; a writer dropped before finish() leaves no file at `path`.
class GgufWriter {
 public:
  // Plans with gguf_plan (its errors name `path`; nothing is created then), then writes
  // everything before the tensor data.
  GgufWriter(const std::filesystem::path& path, const std::vector<GgufKV>& kvs,
             const std::vector<GgufTensorDecl>& tensors);

  // The whole data of the next declared tensor: `name` must be that tensor's and `size_bytes`
  // its exact size (caller bugs otherwise: InternalError).
  void write_tensor(std::string_view name, const void* data, size_t size_bytes);
  // A piece of the next (or current) tensor's data; pieces of one tensor must be consecutive
  // and add up to its size before the next tensor starts or finish() is called.
  void write_tensor_chunk(std::string_view name, const void* data, size_t size_bytes);
  // All tensors complete: pad, flush, fsync, rename.
  void finish();

  // The plan: absolute offsets and sizes, as the file will have them.
  const GgufPlan& plan() const { return plan_; }
  const std::vector<GgufTensorInfo>& tensors() const { return plan_.tensors; }
  uint32_t alignment() const { return plan_.alignment; }
  uint64_t data_offset_bytes() const { return plan_.data_offset_bytes; }
  uint64_t total_bytes() const { return plan_.total_bytes; }  // size of the finished file
  const std::filesystem::path& path() const { return out_.final_path(); }

 private:
  void pad_to(uint64_t offset);
  GgufPlan plan_;
  AtomicFile out_;
  size_t next_ = 0;             // index of the tensor being written
  uint64_t next_done_ = 0;      // bytes of it written so far
  bool finished_ = false;
};

// ---- template definitions ----

template <typename T>
GgufValue GgufValue::scalar(T v) {
  GgufValue r;
  r.type = GgufScalar<T>::type;
  r.bytes.resize(sizeof(T));
  if constexpr (std::is_same_v<T, bool>) r.bytes[0] = v ? 1 : 0;
  else std::memcpy(r.bytes.data(), &v, sizeof(T));
  return r;
}

template <typename T>
GgufValue GgufValue::array(const std::vector<T>& v) {
  GgufValue r;
  r.type = GgufType::Array;
  r.elem_type = GgufScalar<T>::type;
  r.bytes.resize(v.size() * sizeof(T));
  if constexpr (std::is_same_v<T, bool>) {
    for (size_t i = 0; i < v.size(); ++i) r.bytes[i] = v[i] ? 1 : 0;
  } else if (!v.empty()) {
    std::memcpy(r.bytes.data(), v.data(), r.bytes.size());
  }
  return r;
}

void gguf_check_type(const GgufValue& v, GgufType type, GgufType elem_type);  // InternalError

template <typename T>
T GgufValue::as() const {
  gguf_check_type(*this, GgufScalar<T>::type, GgufType::U8);
  if constexpr (std::is_same_v<T, bool>) {
    return bytes[0] != 0;
  } else {
    T v;
    std::memcpy(&v, bytes.data(), sizeof(T));
    return v;
  }
}

template <typename T>
std::vector<T> GgufValue::as_array() const {
  gguf_check_type(*this, GgufType::Array, GgufScalar<T>::type);
  std::vector<T> r(bytes.size() / sizeof(T));
  if constexpr (std::is_same_v<T, bool>) {
    for (size_t i = 0; i < r.size(); ++i) r[i] = bytes[i] != 0;
  } else if (!r.empty()) {
    std::memcpy(r.data(), bytes.data(), bytes.size());
  }
  return r;
}

template <typename T>
T GgufReader::get(std::string_view key) const {
  return typed_kv(key, GgufScalar<T>::type, GgufType::U8).template as<T>();
}

template <typename T>
std::vector<T> GgufReader::get_array(std::string_view key) const {
  return typed_kv(key, GgufType::Array, GgufScalar<T>::type).template as_array<T>();
}

}  // namespace ar
