// QuantizedModelWriter: plan every output tensor, then stream them into shards in plan order.
// Output arriving ahead of its turn is held in memory until the tensors before it are written;
// the folder is built at "<parent>/.<name>.tmp" and renamed onto <out_dir> by finish().
#include "export/quantized_writer.h"

#include "model/block_specs.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "core/buffer.h"
#include "core/dtype.h"
#include "core/error.h"
#include "export/compressed_tensors_config.h"
#include "export/compressed_tensors_pack.h"
#include "export/awq_pack.h"
#include "export/format_configs.h"
#include "export/gptq_pack.h"
#include "export/quant_config_json.h"
#include "io/atomic_output.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "model/fp_packed_linear.h"

namespace fs = std::filesystem;

namespace ar {

namespace {

constexpr size_t kCopyChunkBytes = 16u << 20;  // f32 staging per chunk when copying a tensor

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Files of a model folder that are weights or weight indexes (never copied to the output).
bool is_weight_file(const fs::path& p) {
  const std::string name = p.filename().string();
  for (const char* ext : {".safetensors", ".bin", ".pt", ".pth", ".gguf", ".msgpack", ".h5", ".ckpt"})
    if (name.ends_with(ext)) return true;
  return name.ends_with(".index.json") || name == "config.json" || name == "quantization_config.json";
}

void from_f32(void* dst, const float* src, DType t, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); break;
    case DType::F16: f32_to_f16(static_cast<uint16_t*>(dst), src, n); break;
    case DType::BF16: f32_to_bf16(static_cast<uint16_t*>(dst), src, n); break;
    default: AR_CHECK(false, "conversion from f32 to ", dtype_name(t));
  }
}

std::string dtype_torch_name(DType t) {
  switch (t) {
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    default: return "float32";
  }
}

}  // namespace

int64_t tensor_block_index(const std::string& name) {
  static const std::string p = "model.layers.";
  if (name.compare(0, p.size(), p) != 0) return -1;
  size_t end = p.size();
  while (end < name.size() && name[end] >= '0' && name[end] <= '9') ++end;
  if (end == p.size() || end >= name.size() || name[end] != '.') return -1;
  return std::stoll(name.substr(p.size(), end - p.size()));
}

bool is_block_linear_weight(const std::string& name, const std::vector<int64_t>& shape) {
  return shape.size() == 2 && tensor_block_index(name) >= 0 && name.ends_with(".weight");
}

std::vector<std::string> output_tensor_order(const SafetensorsReader& src) {
  std::vector<std::pair<int64_t, std::string>> keyed;
  for (const TensorInfo& t : src.tensors()) {
    const int64_t b = tensor_block_index(t.name);
    keyed.emplace_back(b < 0 ? INT64_MAX : b, t.name);
  }
  std::sort(keyed.begin(), keyed.end());
  std::vector<std::string> order;
  for (auto& [b, n] : keyed) order.push_back(std::move(n));
  return order;
}

struct QuantizedModelWriter::Impl {
  enum class Kind { Copy, Packed, Fake, CompressedTensors };
  // How a Packed linear is stored: GPTQ (auto_round / auto_gptq integer), AWQ (auto_awq), or
  // AutoRound's floating-point tensors (auto_round with an FP scheme).
  enum class Layout { Gptq, Awq, Fp };
  struct Entry {
    std::string src_name;  // source tensor (for Packed: the linear's ".weight")
    Kind kind = Kind::Copy;
    Layout layout = Layout::Gptq;
    DType dtype = DType::F32;  // output dtype for Copy / Fake
    size_t first_spec = 0, n_specs = 1;
    QuantScheme scheme;
    int64_t in = 0, out = 0;
    bool done = false;
  };

  OutputFormat format;
  fs::path src_dir, out_dir, tmp_dir;
  const SafetensorsReader* src = nullptr;
  // Block tensors shaped like a linear that are never quantized: MoE routers (block_specs.h).
  std::set<std::string> not_quantizable;
  bool overwrite = false;
  std::vector<Entry> entries;
  std::map<std::string, size_t, std::less<>> entry_of;  // source tensor name -> entry
  std::vector<TensorSpec> specs;
  std::vector<std::pair<std::string, std::string>> unstorable;
  nlohmann::json qconfig;        // null for fake
  bool zeros_minus_one = true;   // packed qzeros convention (packed_zeros_minus_one)
  bool f32_to_f16 = false;       // some F32 tensor was narrowed (torch_dtype becomes float16)
  std::unique_ptr<ShardedSafetensorsWriter> shards;
  std::map<size_t, Buffer> pending;  // spec index -> bytes that arrived before their turn
  size_t next = 0;                   // next spec to write
  bool finished = false;
  std::function<void(const std::string&)> hook;
  QuantStats stats;

  void plan(const std::function<QuantScheme(const std::string&)>& scheme_for, const nlohmann::json& extra);
  Entry& entry(const std::string& name, const char* what);
  void write_spec(size_t idx, const void* data, size_t n);
  void emit(size_t idx, Buffer b);
  void flush_pending();
  Buffer read_converted(const TensorInfo& t, DType to) const;
  void stream_copy(const TensorInfo& t, DType to, size_t idx);
  void write_config() const;
  void copy_side_files() const;
};

void QuantizedModelWriter::Impl::plan(const std::function<QuantScheme(const std::string&)>& scheme_for,
                                      const nlohmann::json& extra) {
  const bool packed = is_packed_format(format);
  const bool ct = format == OutputFormat::LlmCompressor;  // compressed-tensors layouts
  const std::vector<std::string> order = output_tensor_order(*src);
  // Pass 1: decide each block linear's storage.
  std::map<std::string, Entry> linear_plan;  // linear name -> Packed/Fake entry
  std::vector<StoredLinear> stored;
  for (const std::string& name : order) {
    const TensorInfo& t = src->require(name);
    if (!is_block_linear_weight(name, t.shape)) continue;
    const std::string linear = name.substr(0, name.size() - 7);
    QuantScheme s = scheme_for(linear);
    // A router stays as stored, and the quantization config says so (runtimes would otherwise
    // expect it packed).
    if (not_quantizable.count(name)) s.bits = 16;
    const int64_t out = t.shape[0], in = t.shape[1];
    if (s.quantized()) {
      if (const std::string why = format_scheme_problem(format, s); !why.empty())
        AR_THROW("--format ", output_format_name(format), " cannot store ", scheme_label(s), " weights (layer '",
                 linear, "'): ", why);
      if (s.bits < 2 || s.bits > 8) AR_THROW("layer '", linear, "': ", s.bits, "-bit quantization is not supported");
      if (packed && !s.is_fp() && !(s.bits == 2 || s.bits == 3 || s.bits == 4 || s.bits == 8))
        AR_THROW("format ", output_format_name(format), " cannot store ", s.bits, "-bit weights (layer '", linear,
                 "'); it supports 2, 3, 4 and 8 bits");
      if (!is_float(t.dtype))
        AR_THROW(src->source_path().string(), ": linear '", name, "' has dtype ", dtype_name(t.dtype),
                 ", not a float type that can be quantized");
      const std::string problem = ct          ? ct_shape_problem(s, in, out)
                                  : !packed   ? std::string()
                                  : s.is_fp() ? autoround_fp_shape_problem(s, in, out)
                                              : packed_shape_problem(s, in, out);
      if (!problem.empty()) {
        unstorable.emplace_back(linear, problem);
        s.bits = 16;
      }
    }
    if (s.quantized()) {
      Entry e;
      e.src_name = name;
      e.kind = packed ? Kind::Packed : ct ? Kind::CompressedTensors : Kind::Fake;
      e.layout = s.is_fp() ? Layout::Fp : format == OutputFormat::AutoAwq ? Layout::Awq : Layout::Gptq;
      e.dtype = t.dtype;
      e.scheme = s;
      e.in = in;
      e.out = out;
      linear_plan[linear] = e;
    }
    stored.push_back({linear, s.quantized() ? s : QuantScheme{16, s.group_size, s.sym}});
  }
  if (linear_plan.empty())
    AR_THROW("no layer of ", src->source_path().string(), " would be quantized in format ",
             output_format_name(format), unstorable.empty() ? "" : " (every selected layer has a shape it cannot store)");
  const bool fp_layers = packed && dominant_scheme(stored).is_fp();
  if (format == OutputFormat::AutoAwq) {
    qconfig = make_awq_quantization_config(stored, extra);
  } else if (fp_layers) {
    qconfig = make_autoround_fp_quantization_config(stored, extra);
  } else if (packed) {
    for (const StoredLinear& l : stored)
      if (l.scheme.is_fp() && l.scheme.quantized())
        AR_THROW("--format ", output_format_name(format), " cannot mix integer and floating-point layers in one "
                 "file: layer '", l.name, "' is ", scheme_label(l.scheme), " (most layers are ",
                 scheme_label(dominant_scheme(stored)), ")");
    qconfig = make_quantization_config(format, stored, extra);
    zeros_minus_one = packed_zeros_minus_one(format, dominant_scheme(stored));
  }
  if (ct) qconfig = make_ct_quantization_config(stored, extra);

  // Pass 2: every output tensor in order.
  for (const std::string& name : order) {
    const TensorInfo& t = src->require(name);
    Entry e;
    e.src_name = name;
    e.first_spec = specs.size();
    auto it = name.ends_with(".weight") ? linear_plan.find(name.substr(0, name.size() - 7)) : linear_plan.end();
    if (it != linear_plan.end()) {
      const Entry& lp = it->second;
      e.kind = lp.kind;
      e.scheme = lp.scheme;
      e.in = lp.in;
      e.out = lp.out;
      e.dtype = lp.dtype;
      e.layout = lp.layout;
      if (lp.kind == Kind::Packed && lp.layout != Layout::Gptq) {
        std::vector<TensorSpec> ps = lp.layout == Layout::Awq ? awq_tensor_specs(it->first, lp.scheme, lp.in, lp.out)
                                                              : autoround_fp_tensor_specs(it->first, lp.scheme, lp.in, lp.out);
        e.n_specs = ps.size();
        for (TensorSpec& s : ps) specs.push_back(std::move(s));
      } else if (lp.kind == Kind::Packed) {
        const bool g_idx = format != OutputFormat::AutoRound;  // AutoRound's own auto_round files have none
        for (TensorSpec& s : packed_tensor_specs(it->first, lp.scheme, lp.in, lp.out, g_idx))
          specs.push_back(std::move(s));
        e.n_specs = g_idx ? 4 : 3;
      } else if (lp.kind == Kind::CompressedTensors) {
        std::vector<TensorSpec> cs = ct_tensor_specs(it->first, lp.scheme, lp.in, lp.out);
        e.n_specs = cs.size();
        for (TensorSpec& s : cs) specs.push_back(std::move(s));
      } else {
        specs.push_back({name, t.dtype, t.shape});
      }
    } else {
      DType to = t.dtype;
      if (packed && is_float(t.dtype)) {
        auto lp = name.ends_with(".bias") ? linear_plan.find(name.substr(0, name.size() - 5)) : linear_plan.end();
        const bool packed_bias = lp != linear_plan.end();
        if (fp_layers) {
          // AutoRound keeps the model's dtype next to FP layers; its MX / NV QuantLinear stores the
          // bias in fp16, its FP8 layers keep it as it is.
          const DataType dt = packed_bias ? lp->second.scheme.data_type : DataType::Int;
          if (packed_bias && dt != DataType::FP8 && dt != DataType::FP8Block) to = DType::F16;
        } else {
          if (packed_bias || t.dtype == DType::F32) to = DType::F16;  // SPEC §4: bias fp16; no f32 in GPTQ
          if (t.dtype == DType::F32 && !packed_bias) f32_to_f16 = true;
        }
      }
      e.dtype = to;
      specs.push_back({name, to, t.shape});
    }
    entry_of[name] = entries.size();
    entries.push_back(std::move(e));
  }
}

QuantizedModelWriter::Impl::Entry& QuantizedModelWriter::Impl::entry(const std::string& name, const char* what) {
  AR_CHECK(!finished, what, "('", name, "') after finish()");
  auto it = entry_of.find(name);
  AR_CHECK(it != entry_of.end(), what, ": '", name, "' is not a planned output tensor");
  Entry& e = entries[it->second];
  AR_CHECK(!e.done, what, ": '", name, "' was already written");
  return e;
}

void QuantizedModelWriter::Impl::write_spec(size_t idx, const void* data, size_t n) {
  if (hook) hook(specs[idx].name);
  shards->write(specs[idx].name, data, n);
}

void QuantizedModelWriter::Impl::flush_pending() {
  for (auto it = pending.find(next); it != pending.end(); it = pending.find(next)) {
    write_spec(next, it->second.data(), it->second.size_bytes());
    pending.erase(it);
    ++next;
  }
}

void QuantizedModelWriter::Impl::emit(size_t idx, Buffer b) {
  AR_CHECK(b.size_bytes() == specs[idx].size_bytes(), "tensor '", specs[idx].name, "': ", b.size_bytes(),
           " bytes, planned ", specs[idx].size_bytes());
  if (idx == next) {
    write_spec(idx, b.data(), b.size_bytes());
    ++next;
    flush_pending();
  } else {
    pending.emplace(idx, std::move(b));
  }
}

Buffer QuantizedModelWriter::Impl::read_converted(const TensorInfo& t, DType to) const {
  Buffer b(size_t(t.numel()) * dtype_size(to), t.name);
  if (t.dtype == to) {
    src->read(t, b.data());
  } else {
    AR_CHECK(is_float(t.dtype) && is_float(to), "conversion ", dtype_name(t.dtype), " -> ", dtype_name(to));
    Buffer f(size_t(t.numel()) * 4, t.name + " (f32)");
    src->read_f32(t, f.as<float>());
    from_f32(b.data(), f.as<float>(), to, size_t(t.numel()));
  }
  return b;
}

// Writes tensor t (its turn has come) in row chunks, so a large embedding never sits in memory.
void QuantizedModelWriter::Impl::stream_copy(const TensorInfo& t, DType to, size_t idx) {
  if (t.shape.empty() || t.shape[0] == 0 || t.numel() == 0) {
    Buffer b = read_converted(t, to);
    write_spec(idx, b.data(), b.size_bytes());
    return;
  }
  if (hook) hook(specs[idx].name);
  const int64_t rows = t.shape[0];
  const int64_t row_elems = t.numel() / rows;
  const int64_t chunk = std::max<int64_t>(1, int64_t(kCopyChunkBytes / (size_t(row_elems) * 4)));
  Buffer out(size_t(std::min(chunk, rows) * row_elems) * dtype_size(to), t.name);
  Buffer f32;
  if (t.dtype != to) {
    AR_CHECK(is_float(t.dtype) && is_float(to), "conversion ", dtype_name(t.dtype), " -> ", dtype_name(to));
    f32 = Buffer(size_t(std::min(chunk, rows) * row_elems) * 4, t.name + " (f32)");
  }
  for (int64_t r = 0; r < rows; r += chunk) {
    const int64_t n = std::min(chunk, rows - r);
    const size_t elems = size_t(n * row_elems);
    if (t.dtype == to) {
      src->read_rows(t, r, n, out.data());
    } else {
      src->read_rows_f32(t, r, n, f32.as<float>());
      from_f32(out.data(), f32.as<float>(), to, elems);
    }
    shards->write(specs[idx].name, out.data(), elems * dtype_size(to));
  }
}

void QuantizedModelWriter::Impl::write_config() const {
  const fs::path cfg_path = src_dir / "config.json";
  const std::string text = read_text_file(cfg_path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    AR_THROW(cfg_path.string(), ": not valid JSON: ", e.what());
  }
  j.erase("quantization_config");
  if (!qconfig.is_null()) j["quantization_config"] = qconfig;
  if (f32_to_f16 || format == OutputFormat::AutoAwq) {  // AutoRound forces float16 for AWQ (its CUDA kernels)
    j["torch_dtype"] = dtype_torch_name(DType::F16);
    if (j.contains("dtype")) j["dtype"] = dtype_torch_name(DType::F16);
  }
  write_file_atomic(tmp_dir / "config.json", j.dump(2) + "\n");
}

void QuantizedModelWriter::Impl::copy_side_files() const {
  for (const fs::directory_entry& d : fs::directory_iterator(src_dir)) {
    if (!d.is_regular_file() || is_weight_file(d.path())) continue;
    std::error_code ec;
    fs::copy_file(d.path(), tmp_dir / d.path().filename(), fs::copy_options::overwrite_existing, ec);
    if (ec) AR_THROW(d.path().string(), ": cannot copy into ", tmp_dir.string(), ": ", ec.message());
  }
}

QuantizedModelWriter::QuantizedModelWriter(OutputFormat f, const fs::path& src_model_dir, const fs::path& out_dir,
                                           const SafetensorsReader& src, const ModelConfig& cfg,
                                           std::function<QuantScheme(const std::string&)> scheme_for,
                                           uint64_t max_shard_bytes, bool overwrite, nlohmann::json quant_config_extra)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.format = f;
  m.src = &src;
  m.src_dir = src_model_dir;
  m.overwrite = overwrite;
  fs::path od = out_dir;
  if (!od.has_filename()) od = od.parent_path();  // "out/" -> "out"
  m.out_dir = od;
  if (od.empty()) AR_THROW("output folder name is empty");
  std::error_code ec;
  if (fs::exists(od) && fs::equivalent(od, src_model_dir, ec))
    AR_THROW(od.string(), ": the output folder is the input model folder");
  if (fs::exists(od) && !overwrite)
    AR_THROW(od.string(), " already exists; pass --overwrite to replace it");
  if (fs::exists(od) && !fs::is_directory(od)) AR_THROW(od.string(), " exists and is not a folder");

  // The tensor shapes come from the files and config.json is copied from src_model_dir; the config
  // names the routers, which stay as stored (AutoRound keeps MoE gates in 16 bits).
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
    if (layer_is_moe(cfg, l))
      for (const BlockTensorSpec& s : block_tensor_specs(cfg, l))
        if (s.part == BlockPart::Router) m.not_quantizable.insert(s.name);
  m.plan(scheme_for, quant_config_extra);

  m.tmp_dir = od.parent_path() / ("." + od.filename().string() + ".tmp");
  fs::remove_all(m.tmp_dir, ec);  // a leftover of an interrupted run with this target
  fs::create_directories(m.tmp_dir, ec);
  if (ec) AR_THROW(m.tmp_dir.string(), ": cannot create the temporary output folder: ", ec.message());
  m.shards = std::make_unique<ShardedSafetensorsWriter>(m.tmp_dir, m.specs, max_shard_bytes,
                                                        std::map<std::string, std::string>{{"format", "pt"}});
}

QuantizedModelWriter::~QuantizedModelWriter() {
  if (!impl_ || impl_->finished) return;
  impl_->shards.reset();  // drops its open shard's tmp file first
  std::error_code ec;
  if (!impl_->tmp_dir.empty()) fs::remove_all(impl_->tmp_dir, ec);
}

bool QuantizedModelWriter::stores_quantized(const std::string& linear_name) const {
  auto it = impl_->entry_of.find(linear_name + ".weight");
  return it != impl_->entry_of.end() && impl_->entries[it->second].kind != Impl::Kind::Copy;
}

const std::vector<std::pair<std::string, std::string>>& QuantizedModelWriter::unstorable_layers() const {
  return impl_->unstorable;
}

void QuantizedModelWriter::add_quantized(const std::string& linear_name, const QuantizedWeight& q) {
  Impl& m = *impl_;
  Impl::Entry& e = m.entry(linear_name + ".weight", "add_quantized");
  AR_CHECK(e.kind != Impl::Kind::Copy, "add_quantized: '", linear_name, "' is planned unquantized; use add_copy");
  AR_CHECK(q.in == e.in && q.out == e.out && q.scheme == e.scheme, "add_quantized: '", linear_name, "' is (",
           q.out, ", ", q.in, ") ", scheme_label(q.scheme), ", planned (", e.out, ", ", e.in, ") ",
           scheme_label(e.scheme));
  AR_CHECK(q.sizes_match(), "add_quantized: '", linear_name, "': QuantizedWeight sizes do not match its shape");
  e.done = true;
  if (e.kind == Impl::Kind::Packed && e.layout == Impl::Layout::Awq) {
    AwqPacked p = pack_awq(q);
    m.emit(e.first_spec + 0, std::move(p.qweight));
    m.emit(e.first_spec + 1, std::move(p.qzeros));
    m.emit(e.first_spec + 2, std::move(p.scales));
  } else if (e.kind == Impl::Kind::Packed && e.layout == Impl::Layout::Fp) {
    std::vector<Buffer> bufs = pack_autoround_fp(q);
    AR_CHECK(bufs.size() == e.n_specs, "add_quantized: '", linear_name, "': ", bufs.size(), " tensors, planned ", e.n_specs);
    for (size_t k = 0; k < bufs.size(); ++k) m.emit(e.first_spec + k, std::move(bufs[k]));
  } else if (e.kind == Impl::Kind::Packed) {
    PackedLinear p = pack_gptq(q, m.zeros_minus_one);
    m.emit(e.first_spec + 0, std::move(p.qweight));
    m.emit(e.first_spec + 1, std::move(p.qzeros));
    m.emit(e.first_spec + 2, std::move(p.scales));
    if (e.n_specs == 4) m.emit(e.first_spec + 3, std::move(p.g_idx));
  } else if (e.kind == Impl::Kind::CompressedTensors) {
    std::vector<Buffer> bufs = ct_pack(q);
    AR_CHECK(bufs.size() == e.n_specs, "add_quantized: '", linear_name, "': ", bufs.size(), " tensors, planned ", e.n_specs);
    for (size_t i = 0; i < bufs.size(); ++i) m.emit(e.first_spec + i, std::move(bufs[i]));
  } else {
    // Row by row, so no full f32 copy of the layer exists.
    Buffer b(size_t(q.out * q.in) * dtype_size(e.dtype), linear_name + ".weight");
    std::vector<float> row(static_cast<size_t>(q.in));
    for (int64_t o = 0; o < q.out; ++o) {
      q.dequantize_rows(row.data(), o, 1);
      from_f32(static_cast<char*>(b.data()) + size_t(o * q.in) * dtype_size(e.dtype), row.data(), e.dtype,
               size_t(q.in));
    }
    m.emit(e.first_spec, std::move(b));
  }
}

void QuantizedModelWriter::add_copy(const std::string& tensor_name) {
  Impl& m = *impl_;
  Impl::Entry& e = m.entry(tensor_name, "add_copy");
  AR_CHECK(e.kind == Impl::Kind::Copy, "add_copy: '", tensor_name, "' is quantized in this output; use add_quantized");
  e.done = true;
  const TensorInfo& t = m.src->require(tensor_name);
  if (e.first_spec == m.next) {
    m.stream_copy(t, e.dtype, e.first_spec);
    ++m.next;
    m.flush_pending();
  } else {
    m.emit(e.first_spec, m.read_converted(t, e.dtype));
  }
}

void QuantizedModelWriter::finish() {
  Impl& m = *impl_;
  AR_CHECK(!m.finished, "finish() called twice");
  AR_CHECK(m.next == m.specs.size(), "finish(): output tensor '", m.specs[std::min(m.next, m.specs.size() - 1)].name,
           "' was never given (", m.specs.size() - m.next, " of ", m.specs.size(), " missing)");
  m.shards->finish();
  m.write_config();
  m.copy_side_files();
  std::error_code ec;
  fs::path old;
  if (fs::exists(m.out_dir)) {
    AR_CHECK(m.overwrite, "output appeared during the run: ", m.out_dir.string());
    old = m.out_dir.parent_path() / ("." + m.out_dir.filename().string() + ".old");
    fs::remove_all(old, ec);
    fs::rename(m.out_dir, old, ec);
    if (ec) AR_THROW(m.out_dir.string(), ": cannot move the old output aside: ", ec.message());
  }
  fs::rename(m.tmp_dir, m.out_dir, ec);
  if (ec && !old.empty()) {
    std::error_code ec2;
    fs::rename(old, m.out_dir, ec2);  // put the previous output back
  }
  if (ec) AR_THROW(m.out_dir.string(), ": cannot rename ", m.tmp_dir.string(), " into place: ", ec.message());
  m.finished = true;
  if (!old.empty()) fs::remove_all(old, ec);
}

const std::vector<TensorSpec>& QuantizedModelWriter::specs() const { return impl_->specs; }

uint64_t QuantizedModelWriter::total_bytes() const {
  uint64_t n = 0;
  for (const TensorSpec& s : impl_->specs) n += s.size_bytes();
  return n;
}

const nlohmann::json& QuantizedModelWriter::quantization_config() const { return impl_->qconfig; }
const fs::path& QuantizedModelWriter::temp_dir() const { return impl_->tmp_dir; }

void QuantizedModelWriter::set_before_write_hook(std::function<void(const std::string&)> hook) {
  impl_->hook = std::move(hook);
}

void QuantizedModelWriter::add_block(const std::vector<std::string>& tensors, const BlockResult& r,
                                     const BlockWeights*) {
  for (const auto& [name, lr] : r.linears) {
    if (!lr.q) continue;
    const QuantizedWeight& q = *lr.q;
    ++impl_->stats.layers;
    impl_->stats.bits += q.storage_bits();
    impl_->stats.weights += double(q.out) * double(q.in);
  }
  for (const std::string& t : tensors) {
    const std::string base = t.size() > 7 && t.ends_with(".weight") ? t.substr(0, t.size() - 7) : "";
    const LinearResult* lr = base.empty() ? nullptr : r.find(base);
    if (lr && lr->q && stores_quantized(base)) add_quantized(base, *lr->q);
    else add_copy(t);
  }
}

QuantStats QuantizedModelWriter::stats() const { return impl_->stats; }

const std::filesystem::path& QuantizedModelWriter::output_path() const { return impl_->out_dir; }

}  // namespace ar
