// GgufWriter: plan first (offsets from the declared tensors), then header + metadata + tensor
// infos, then tensor data streamed in declared order, each padded to the alignment, as ggml's
// gguf writer lays files out. Output goes through AtomicFile (tmp + rename).
#include <algorithm>
#include <limits>
#include <set>
#include <utility>

#include "core/error.h"
#include "io/gguf.h"

namespace ar {

namespace {

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Serialisation helpers on the output's buffered file.
void put_bytes(WriteFile& f, const void* p, size_t n) {
  if (n > 0) f.write(p, n);  // an empty vector's data() may be null
}
template <typename T>
void put(WriteFile& f, T v) {
  f.write(&v, sizeof v);
}
void put_string(WriteFile& f, const std::string& s) {
  put<uint64_t>(f, s.size());
  f.write(s.data(), s.size());
}

void put_value(WriteFile& f, const GgufValue& v) {
  put<uint32_t>(f, uint32_t(v.type));
  if (v.type == GgufType::String) {
    put_string(f, v.strings.at(0));
  } else if (v.type == GgufType::Array) {
    put<uint32_t>(f, uint32_t(v.elem_type));
    put<uint64_t>(f, v.size());
    if (v.elem_type == GgufType::String)
      for (const std::string& s : v.strings) put_string(f, s);
    else
      put_bytes(f, v.bytes.data(), v.bytes.size());
  } else {
    put_bytes(f, v.bytes.data(), v.bytes.size());
  }
}

// The value must be internally consistent (built by GgufValue's builders or read from a file).
void check_value(const GgufValue& v, const std::string& fname, const std::string& key) {
  const bool type_ok = uint32_t(v.type) <= uint32_t(GgufType::F64);
  AR_CHECK(type_ok, fname, ": KV '", key, "' has invalid type ", uint32_t(v.type));
  if (v.type == GgufType::String) {
    AR_CHECK(v.strings.size() == 1, fname, ": KV '", key, "' string value is malformed");
  } else if (v.type == GgufType::Array) {
    AR_CHECK(v.elem_type != GgufType::Array && uint32_t(v.elem_type) <= uint32_t(GgufType::F64), fname, ": KV '",
             key, "' has invalid array element type ", uint32_t(v.elem_type));
    if (v.elem_type != GgufType::String)
      AR_CHECK(v.bytes.size() % gguf_scalar_bytes(v.elem_type) == 0, fname, ": KV '", key,
               "' array payload is not a whole number of elements");
  } else {
    AR_CHECK(v.bytes.size() == gguf_scalar_bytes(v.type), fname, ": KV '", key, "' scalar payload has ",
             v.bytes.size(), " bytes");
  }
}

}  // namespace

GgufPlan gguf_plan(const std::vector<GgufKV>& kvs, const std::vector<GgufTensorDecl>& decls,
                   const std::string& fname) {
  GgufPlan plan;
  std::set<std::string, std::less<>> keys;
  for (const GgufKV& kv : kvs) {
    if (kv.key.empty()) AR_THROW(fname, ": metadata key is empty");
    if (!keys.insert(kv.key).second) AR_THROW(fname, ": duplicate metadata key '", kv.key, "'");
    check_value(kv.value, fname, kv.key);
    if (kv.key == "general.alignment") {
      if (kv.value.type != GgufType::U32)
        AR_THROW(fname, ": general.alignment must be u32, not ", kv.value.type_str());
      const uint32_t a = kv.value.as<uint32_t>();
      if (a == 0 || (a & (a - 1)) != 0) AR_THROW(fname, ": general.alignment ", a, " is not a power of two");
      plan.alignment = a;
    }
  }

  // Header bytes: magic, version, counts, then each KV and tensor info as serialised below.
  uint64_t header = 4 + 4 + 8 + 8;
  for (const GgufKV& kv : kvs) {
    header += 8 + kv.key.size() + 4;
    const GgufValue& v = kv.value;
    if (v.type == GgufType::String) header += 8 + v.strings[0].size();
    else if (v.type == GgufType::Array) {
      header += 4 + 8;
      if (v.elem_type == GgufType::String)
        for (const std::string& s : v.strings) header += 8 + s.size();
      else
        header += v.bytes.size();
    } else {
      header += v.bytes.size();
    }
  }
  std::set<std::string, std::less<>> names;
  uint64_t rel = 0;  // offset within the data section
  for (const GgufTensorDecl& d : decls) {
    const std::string where = cat(fname, ": tensor '", d.name, "'");
    if (d.name.empty()) AR_THROW(fname, ": tensor with an empty name");
    if (d.name.size() > kGgufMaxNameBytes)
      AR_THROW(where, ": name is ", d.name.size(), " bytes; llama.cpp accepts at most ", kGgufMaxNameBytes);
    if (!names.insert(d.name).second) AR_THROW(fname, ": duplicate tensor name '", d.name, "'");
    if (d.dims.empty() || d.dims.size() > size_t(kGgufMaxDims))
      AR_THROW(where, ": has ", d.dims.size(), " dims (expected 1 to ", kGgufMaxDims, ")");
    int64_t numel = 1;
    for (int64_t x : d.dims) {
      if (x <= 0) AR_THROW(where, ": dimension ", x, " is not positive");
      if (numel > std::numeric_limits<int64_t>::max() / x) AR_THROW(where, ": element count overflows");
      numel *= x;
    }
    const GgmlTypeInfo& ti = ggml_info(d.type);
    if (d.dims[0] % ti.block_elems != 0)
      AR_THROW(where, ": row length ", d.dims[0], " is not a multiple of the ", ti.name, " block size ",
               ti.block_elems);
    GgufTensorInfo t;
    t.name = d.name;
    t.type = d.type;
    t.dims = d.dims;
    t.size_bytes = uint64_t(numel / ti.block_elems) * ti.block_bytes;
    t.offset_bytes = rel;
    rel = align_up(rel + t.size_bytes, plan.alignment);
    header += 8 + d.name.size() + 4 + 8 * d.dims.size() + 4 + 8;
    plan.tensors.push_back(std::move(t));
  }
  plan.data_offset_bytes = align_up(header, plan.alignment);
  for (GgufTensorInfo& t : plan.tensors) t.offset_bytes += plan.data_offset_bytes;
  plan.total_bytes = plan.data_offset_bytes + rel;
  return plan;
}

GgufWriter::GgufWriter(const std::filesystem::path& path, const std::vector<GgufKV>& kvs,
                       const std::vector<GgufTensorDecl>& decls)
    : plan_(gguf_plan(kvs, decls, path.string())), out_(path) {
  WriteFile& f = out_.file();
  put_bytes(f, "GGUF", 4);
  put<uint32_t>(f, kGgufVersion);
  put<uint64_t>(f, plan_.tensors.size());
  put<uint64_t>(f, kvs.size());
  for (const GgufKV& kv : kvs) {
    put_string(f, kv.key);
    put_value(f, kv.value);
  }
  for (const GgufTensorInfo& t : plan_.tensors) {
    put_string(f, t.name);
    put<uint32_t>(f, uint32_t(t.dims.size()));
    for (int64_t x : t.dims) put<uint64_t>(f, uint64_t(x));
    put<uint32_t>(f, uint32_t(t.type));
    put<uint64_t>(f, t.offset_bytes - plan_.data_offset_bytes);  // on disk: relative to the data section
  }
  AR_CHECK(align_up(f.bytes_written(), plan_.alignment) == plan_.data_offset_bytes, "GGUF header is ",
           f.bytes_written(), " bytes; the plan put the data at ", plan_.data_offset_bytes);
  pad_to(plan_.data_offset_bytes);
}

void GgufWriter::pad_to(uint64_t offset) {
  static const char zeros[256] = {};
  WriteFile& f = out_.file();
  AR_CHECK(f.bytes_written() <= offset, "GGUF writer is past offset ", offset);
  while (f.bytes_written() < offset) f.write(zeros, size_t(std::min<uint64_t>(sizeof zeros, offset - f.bytes_written())));
}

void GgufWriter::write_tensor_chunk(std::string_view name, const void* data, size_t size_bytes) {
  AR_CHECK(!finished_, out_.final_path().string(), ": write after finish()");
  AR_CHECK(next_ < plan_.tensors.size(), out_.final_path().string(), ": tensor '", name,
           "' written but all declared tensors are complete");
  const GgufTensorInfo& t = plan_.tensors[next_];
  AR_CHECK(name == t.name, out_.final_path().string(), ": tensor '", name, "' written where '", t.name,
           "' is declared next");
  AR_CHECK(size_bytes <= t.size_bytes - next_done_, out_.final_path().string(), ": tensor '", t.name, "': ",
           next_done_ + size_bytes, " bytes written, declared size is ", t.size_bytes);
  if (next_done_ == 0) pad_to(t.offset_bytes);
  out_.file().write(data, size_bytes);
  next_done_ += size_bytes;
  if (next_done_ == t.size_bytes) {
    ++next_;
    next_done_ = 0;
  }
}

void GgufWriter::write_tensor(std::string_view name, const void* data, size_t size_bytes) {
  AR_CHECK(next_done_ == 0, out_.final_path().string(), ": tensor '", name, "' written whole while '",
           next_ < plan_.tensors.size() ? plan_.tensors[next_].name : std::string("?"), "' is half written");
  AR_CHECK(next_ >= plan_.tensors.size() || size_bytes == plan_.tensors[next_].size_bytes, out_.final_path().string(),
           ": tensor '", name, "' written with ", size_bytes, " bytes, declared size is ",
           plan_.tensors[next_].size_bytes);
  write_tensor_chunk(name, data, size_bytes);
}

void GgufWriter::finish() {
  AR_CHECK(!finished_, out_.final_path().string(), ": finish() called twice");
  AR_CHECK(next_ == plan_.tensors.size(), out_.final_path().string(), ": finish() with tensor '",
           next_ < plan_.tensors.size() ? plan_.tensors[next_].name : std::string(), "' (", next_, " of ", plan_.tensors.size(),
           ") not completely written");
  pad_to(plan_.total_bytes);
  out_.commit();
  finished_ = true;
}

}  // namespace ar
