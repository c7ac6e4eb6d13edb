// GgufValue helpers and GgufTensorInfo geometry, shared by the GGUF reader and writer.
#include <cstdio>

#include "core/error.h"
#include "io/gguf.h"

namespace ar {

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::U8: return "u8";
    case GgufType::I8: return "i8";
    case GgufType::U16: return "u16";
    case GgufType::I16: return "i16";
    case GgufType::U32: return "u32";
    case GgufType::I32: return "i32";
    case GgufType::F32: return "f32";
    case GgufType::Bool: return "bool";
    case GgufType::String: return "string";
    case GgufType::Array: return "array";
    case GgufType::U64: return "u64";
    case GgufType::I64: return "i64";
    case GgufType::F64: return "f64";
  }
  return "unknown";
}

size_t gguf_scalar_bytes(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    case GgufType::String: case GgufType::Array: return 0;
  }
  return 0;
}

uint64_t GgufValue::size() const {
  if (!is_array()) return 1;
  if (elem_type == GgufType::String) return strings.size();
  return bytes.size() / gguf_scalar_bytes(elem_type);
}

GgufValue GgufValue::string(std::string s) {
  GgufValue r;
  r.type = GgufType::String;
  r.strings.push_back(std::move(s));
  return r;
}

GgufValue GgufValue::string_array(std::vector<std::string> v) {
  GgufValue r;
  r.type = GgufType::Array;
  r.elem_type = GgufType::String;
  r.strings = std::move(v);
  return r;
}

std::string GgufValue::type_str() const {
  if (!is_array()) return std::string(gguf_type_name(type));
  return cat("array[", gguf_type_name(elem_type), "]");
}

void gguf_check_type(const GgufValue& v, GgufType type, GgufType elem_type) {
  const bool ok = v.type == type && (type != GgufType::Array || v.elem_type == elem_type);
  AR_CHECK(ok, "GGUF value is ", v.type_str(), ", not ",
           type == GgufType::Array ? cat("array[", gguf_type_name(elem_type), "]")
                                   : std::string(gguf_type_name(type)));
}

const std::string& GgufValue::as_string() const {
  gguf_check_type(*this, GgufType::String, GgufType::U8);
  return strings.at(0);
}

const std::vector<std::string>& GgufValue::as_string_array() const {
  gguf_check_type(*this, GgufType::Array, GgufType::String);
  return strings;
}

namespace {

// One scalar of type t stored at p, printed.
std::string scalar_str(GgufType t, const uint8_t* p) {
  auto get = [p](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  char buf[64];
  switch (t) {
    case GgufType::U8: return std::to_string(get(uint8_t{}));
    case GgufType::I8: return std::to_string(get(int8_t{}));
    case GgufType::U16: return std::to_string(get(uint16_t{}));
    case GgufType::I16: return std::to_string(get(int16_t{}));
    case GgufType::U32: return std::to_string(get(uint32_t{}));
    case GgufType::I32: return std::to_string(get(int32_t{}));
    case GgufType::U64: return std::to_string(get(uint64_t{}));
    case GgufType::I64: return std::to_string(get(int64_t{}));
    case GgufType::Bool: return p[0] ? "true" : "false";
    case GgufType::F32: std::snprintf(buf, sizeof buf, "%.9g", double(get(float{}))); return buf;
    case GgufType::F64: std::snprintf(buf, sizeof buf, "%.17g", get(double{})); return buf;
    default: return "?";
  }
}

}  // namespace

std::string GgufValue::to_string(size_t max_elems) const {
  if (type == GgufType::String) return cat('"', strings.at(0), '"');
  if (!is_array()) return scalar_str(type, bytes.data());
  std::string r = cat(type_str(), "(", size(), ") [");
  const uint64_t n = size();
  for (uint64_t i = 0; i < n && i < max_elems; ++i) {
    if (i) r += ", ";
    r += elem_type == GgufType::String ? cat('"', strings[i], '"')
                                       : scalar_str(elem_type, bytes.data() + i * gguf_scalar_bytes(elem_type));
  }
  return r + (n > max_elems ? ", ...]" : "]");
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

int64_t GgufTensorInfo::n_rows() const {
  int64_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i) n *= dims[i];
  return n;
}

uint64_t GgufTensorInfo::row_bytes() const { return ggml_row_bytes(type, row_elems()); }

}  // namespace ar
