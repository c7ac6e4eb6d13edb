// Streamed GGUF export: plan (names, shapes, mix types, metadata) -> GgufWriter header -> tensor
// data in file order as the pipeline hands it over -> side files -> rename.
#include "export/gguf_model_writer.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "export/gguf_meta.h"
#include "export/quantized_writer.h"
#include "io/atomic_output.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "model/block_specs.h"
#include "model/gguf_names.h"
#include "quant/gguf_blocks.h"

namespace ar {

namespace fs = std::filesystem;

namespace {

// Rows converted at once when a source tensor is copied: bounds the f32 temporary (64 MiB).
constexpr uint64_t kCopyChunkBytes = 64ull << 20;

// Small files a loader or `autoround eval` wants beside the .gguf (tokenizer, config).
constexpr const char* kSideFiles[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                      "special_tokens_map.json", "generation_config.json", "tokenizer.model"};

bool same_folder(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

}  // namespace

GgufModelWriter::GgufModelWriter(const fs::path& model_dir, const fs::path& output_dir, GgufMix mix,
                                 const SafetensorsReader& src, const ModelConfig& cfg, bool overwrite,
                                 bool has_importance, const std::map<std::string, GgmlType>& requested)
    : model_dir_(model_dir), out_dir_(output_dir), mix_(mix), src_(src), cfg_(cfg) {
  const GgufMixInfo& info = gguf_mix_info(mix);
  if (same_folder(model_dir, output_dir))
    AR_THROW(output_dir.string(), ": the output folder is the model folder; choose another --output_dir");

  GgufMetaOptions mo;
  mo.file_type = GgufFileType(info.file_type);
  kvs_ = gguf_metadata(model_dir, mo);
  std::string name;
  for (const GgufKV& kv : kvs_)
    if (kv.key == "general.name") name = kv.value.as_string();
  const fs::path file = output_dir / (name + "-" + std::string(gguf_file_type_name(mo.file_type)) + ".gguf");
  std::error_code ec;
  if (fs::exists(file, ec) && !overwrite)
    AR_THROW(file.string(), ": already exists; pass --overwrite to replace it");

  // llama3 scaling travels as a tensor; it has no source, so it goes first and is written now.
  const std::vector<float> rope_freqs = gguf_rope_freqs(cfg);
  if (!rope_freqs.empty()) decls_.push_back({"rope_freqs.weight", GgmlType::F32, {int64_t(rope_freqs.size())}});

  // Experts are stacked by llama.cpp: each per-expert HF matrix (F, C) is one slice of a 3-D
  // tensor whose GGUF dims are (C, F, n_expert); the block specs name the stacked tensor.
  std::map<std::string, BlockTensorSpec> expert_specs;
  for (int64_t l = 0; cfg.num_experts > 0 && l < cfg.num_hidden_layers; ++l)
    for (BlockTensorSpec& s : block_tensor_specs(cfg, l))
      if (s.expert >= 0) expert_specs.emplace(s.name, std::move(s));
  std::map<std::string, std::pair<size_t, size_t>> stacked;  // stacked GGUF name -> (decls_, mt) index

  std::vector<GgufMixTensor> mt;
  std::vector<size_t> mt_decl;  // mt index -> decls_ index
  auto requested_type = [&](const std::string& hf) -> std::optional<GgmlType> {
    auto it = requested.find(hf);
    return it == requested.end() ? std::nullopt : std::optional<GgmlType>(it->second);
  };
  for (const std::string& hf : output_tensor_order(src)) {
    const auto ex = expert_specs.find(hf);
    const std::string g = ex != expert_specs.end() ? ex->second.gguf_name : gguf_tensor_name(hf, cfg);
    if (g.empty()) {
      if (hf.ends_with("rotary_emb.inv_freq")) continue;  // recomputed by every loader
      AR_THROW(src.source_path().string(), ": tensor '", hf, "' has no GGUF name (not a ", cfg.architecture,
               " tensor llama.cpp knows); cannot export to GGUF");
    }
    const TensorInfo& t = src.require(hf);
    if (t.shape.empty() || t.shape.size() > 2)
      AR_THROW(src.source_path().string(), ": tensor '", hf, "' has ", t.shape.size(), " dimensions, expected 1 or 2");
    Entry e;
    e.hf_name = hf;
    e.rows = t.shape.size() == 2 ? t.shape[0] : 1;
    e.cols = t.shape.back();
    if (ex != expert_specs.end()) {
      if (t.shape != ex->second.shape)
        AR_THROW(src.source_path().string(), ": expert tensor '", hf, "' has shape [", t.shape[0], ", ",
                 t.shape.back(), "], expected [", ex->second.shape[0], ", ", ex->second.shape[1], "]");
      e.expert = ex->second.expert;
      e.n_experts = cfg.num_experts;
      auto [it, fresh] = stacked.emplace(g, std::pair{decls_.size(), mt.size()});
      e.decl = it->second.first;
      const size_t k = it->second.second;
      if (fresh) {
        const std::vector<int64_t> dims = {e.cols, e.rows, cfg.num_experts};
        mt.push_back({g, dims, GgmlType::F32});
        mt_decl.push_back(e.decl);
        decls_.push_back({g, GgmlType::F32, dims});
      }
      // --layer_config asks per expert; the experts of one stacked tensor share its type.
      if (const auto r = requested_type(hf)) {
        if (mt[k].requested && *mt[k].requested != *r)
          AR_THROW("GGUF export: the experts of '", g, "' are asked for different types (", ggml_info(*mt[k].requested).name,
                   " and ", ggml_info(*r).name, " for '", hf, "'); llama.cpp stores them as one tensor of one type");
        mt[k].requested = r;
      }
      by_hf_[hf] = entries_.size();
      entries_.push_back(e);
      continue;
    }
    e.decl = decls_.size();
    if (gguf_permutes_qk(cfg.arch)) {
      if (g.ends_with(".attn_q.weight") || g.ends_with(".attn_q.bias")) e.qk_heads = cfg.num_attention_heads;
      if (g.ends_with(".attn_k.weight") || g.ends_with(".attn_k.bias")) e.qk_heads = cfg.num_key_value_heads;
      if (e.qk_heads > 0 && e.rows * e.cols != e.qk_heads * cfg.head_dim * (t.shape.size() == 2 ? e.cols : 1))
        AR_THROW(src.source_path().string(), ": tensor '", hf, "' does not have ", e.qk_heads, " x ", cfg.head_dim, " rows");
    }
    // Gemma3Model.modify_tensors: llama.cpp's RMSNorm multiplies by the stored weight.
    e.norm_plus_one = cfg.norm_weight_offset && hf.ends_with("norm.weight");
    std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());
    by_hf_[hf] = entries_.size();
    entries_.push_back(e);
    // The reference converter stores everything as F32 before llama-quantize: 1-D tensors stay so
    // (and so does the MoE router, ffn_gate_inp, which llama.cpp never quantizes).
    mt.push_back({g, dims, GgmlType::F32});
    mt_decl.push_back(e.decl);
    mt.back().requested = requested_type(hf);
    decls_.push_back({g, GgmlType::F32, dims});
  }
  for (const auto& [hf, type] : requested)
    if (!by_hf_.count(hf))
      AR_THROW(src.source_path().string(), ": a GGUF type was asked for tensor '", hf, "', which the export does not write");
  std::map<size_t, int64_t> experts_of;  // decl -> experts seen
  for (const Entry& e : entries_)
    if (e.expert >= 0) ++experts_of[e.decl];
  for (const auto& [g, dk] : stacked) {
    const int64_t n = experts_of[dk.first];
    if (n != cfg.num_experts)
      AR_THROW(src.source_path().string(), ": '", g, "' gets ", n, " of ", cfg.num_experts, " experts' tensors");
  }
  GgufMixModel mm;
  mm.arch = gguf_arch_name(cfg.arch);
  mm.n_layer = int(cfg.num_hidden_layers);
  mm.n_head = int(cfg.num_attention_heads);
  mm.n_head_kv = int(cfg.num_key_value_heads);
  mm.n_expert = int(cfg.num_experts);
  mm.has_imatrix = has_importance;
  const std::vector<GgufTensorType> types = gguf_mix_types(mix, mm, mt);
  for (size_t k = 0; k < mt.size(); ++k) decls_[mt_decl[k]].type = types[k].type;
  for (Entry& e : entries_) e.size_bytes = size_t(e.rows) * ggml_row_bytes(decls_[e.decl].type, e.cols);

  fs::create_directories(output_dir, ec);
  if (ec) AR_THROW(output_dir.string(), ": cannot create the output folder: ", ec.message());
  w_ = std::make_unique<GgufWriter>(file, kvs_, decls_);
  if (!rope_freqs.empty()) write_ready(0, rope_freqs.data(), rope_freqs.size() * sizeof(float));
}

GgufModelWriter::~GgufModelWriter() = default;

const fs::path& GgufModelWriter::path() const { return w_->path(); }

bool GgufModelWriter::wants(const std::string& hf_name) const { return by_hf_.count(hf_name) != 0; }

const GgufModelWriter::Entry& GgufModelWriter::entry(const std::string& hf_name) const {
  auto it = by_hf_.find(hf_name);
  AR_CHECK(it != by_hf_.end(), "GGUF export: tensor '", hf_name, "' is not part of the plan");
  return entries_[it->second];
}

GgmlType GgufModelWriter::planned_type(const std::string& hf_name) const { return decls_[entry(hf_name).decl].type; }
const std::string& GgufModelWriter::gguf_name(const std::string& hf_name) const { return decls_[entry(hf_name).decl].name; }

std::vector<std::string> GgufModelWriter::hf_order() const {
  std::vector<std::string> r;
  for (const Entry& e : entries_) r.push_back(e.hf_name);
  return r;
}

std::vector<uint8_t> GgufModelWriter::encode_weight(const std::string& hf_name, const float* w, int64_t rows,
                                                    int64_t cols, const float* imp) const {
  const Entry& e = entry(hf_name);
  AR_CHECK(rows * cols == e.rows * e.cols && cols == e.cols, "GGUF export: '", hf_name, "' given as ", rows, "x",
           cols, ", planned ", e.rows, "x", e.cols);
  std::vector<float> permuted;
  if (e.qk_heads > 0) {
    permuted.assign(w, w + rows * cols);
    // A bias is one value per row of the projection: permuted as a (rows*cols, 1) matrix.
    const int64_t per_row = e.rows == 1 ? 1 : e.cols;
    gguf_permute_qk_rows(permuted.data(), e.qk_heads, cfg_.head_dim, per_row, true);
    w = permuted.data();
  }
  if (e.norm_plus_one) {
    // In f32, as the decoder forms 1 + w: a reader subtracting 1 gets back a w whose 1 + w is
    // this very value (the subtraction is exact for 1 + w in [0.5, 2]), so its forward is ours.
    permuted.assign(w, w + rows * cols);
    for (float& v : permuted) v += 1.0f;
    w = permuted.data();
  }
  std::vector<uint8_t> out(e.size_bytes);
  gguf_quantize_tensor(decls_[e.decl].type, w, e.rows, e.cols, out.data(), imp);
  return out;
}

std::vector<uint8_t> GgufModelWriter::encode_copy(const std::string& hf_name) const {
  const Entry& e = entry(hf_name);
  std::vector<float> x(size_t(e.rows * e.cols));
  src_.read_f32(src_.require(hf_name), x.data());
  return encode_weight(hf_name, x.data(), e.rows, e.cols);
}

void GgufModelWriter::add_weight(const std::string& hf_name, const float* w, int64_t rows, int64_t cols,
                                 const float* imp) {
  const std::vector<uint8_t> b = encode_weight(hf_name, w, rows, cols, imp);
  add_bytes(hf_name, planned_type(hf_name), b.data(), b.size());
}

void GgufModelWriter::add_bytes(const std::string& hf_name, GgmlType t, const void* data, size_t size) {
  const Entry& e = entry(hf_name);
  AR_CHECK(t == decls_[e.decl].type && size == e.size_bytes, "GGUF export: '", hf_name, "' given as ",
           ggml_info(t).name, " (", size, " bytes), planned ", ggml_info(decls_[e.decl].type).name, " (",
           e.size_bytes, " bytes)");
  AR_CHECK(e.decl >= next_decl_ && !pending_.count(e.decl), "GGUF export: '", hf_name, "' given twice");
  const uint8_t* p = static_cast<const uint8_t*>(data);
  if (e.expert >= 0) {
    // An expert's rows are one slice of the stacked tensor: gathered until every expert is in.
    Stack& st = stacks_[e.decl];
    if (st.bytes.empty()) {
      st.bytes.resize(size * size_t(e.n_experts));
      st.seen.assign(size_t(e.n_experts), 0);
    }
    AR_CHECK(!st.seen[size_t(e.expert)], "GGUF export: '", hf_name, "' given twice");
    std::copy(p, p + size, st.bytes.begin() + std::ptrdiff_t(size * size_t(e.expert)));
    st.seen[size_t(e.expert)] = 1;
    if (++st.count < e.n_experts) return;
    std::vector<uint8_t> whole = std::move(st.bytes);
    stacks_.erase(e.decl);
    if (e.decl == next_decl_) write_ready(e.decl, whole.data(), whole.size());
    else pending_.emplace(e.decl, std::move(whole));
    return;
  }
  if (e.decl == next_decl_) {
    write_ready(e.decl, data, size);
  } else {
    pending_.emplace(e.decl, std::vector<uint8_t>(p, p + size));
  }
}

uint64_t GgufModelWriter::block_buffer_bytes(const std::vector<std::string>& tensors) const {
  std::set<size_t> stacked;
  uint64_t n = 0;
  for (const std::string& t : tensors) {
    if (!wants(t)) continue;
    const Entry& e = entry(t);
    if (e.expert >= 0 && stacked.insert(e.decl).second) n += uint64_t(e.size_bytes) * uint64_t(e.n_experts);
  }
  return n;
}

void GgufModelWriter::add_copy(const std::string& hf_name) {
  if (!wants(hf_name)) return;
  const Entry& e = entry(hf_name);
  const uint64_t row_f32 = uint64_t(e.cols) * sizeof(float);
  // Out-of-turn tensors and permuted q/k are converted whole; the rest streams in row chunks.
  if (e.decl != next_decl_ || e.expert >= 0 || e.qk_heads > 0 || e.norm_plus_one ||
      uint64_t(e.rows) * row_f32 <= kCopyChunkBytes) {
    const std::vector<uint8_t> b = encode_copy(hf_name);
    add_bytes(hf_name, planned_type(hf_name), b.data(), b.size());
    return;
  }
  const GgmlType type = decls_[e.decl].type;
  const TensorInfo& t = src_.require(hf_name);
  const int64_t chunk = std::max<int64_t>(1, int64_t(kCopyChunkBytes / row_f32));
  std::vector<float> x(size_t(std::min(chunk, e.rows) * e.cols));
  std::vector<uint8_t> q(size_t(std::min(chunk, e.rows)) * ggml_row_bytes(type, e.cols));
  for (int64_t r0 = 0; r0 < e.rows; r0 += chunk) {
    const int64_t n = std::min(chunk, e.rows - r0);
    src_.read_rows_f32(t, r0, n, x.data());
    gguf_quantize_tensor(type, x.data(), n, e.cols, q.data());
    w_->write_tensor_chunk(decls_[e.decl].name, q.data(), size_t(n) * ggml_row_bytes(type, e.cols));
  }
  ++next_decl_;
  flush_pending();
}

void GgufModelWriter::add_block(const std::vector<std::string>& tensors, const BlockResult& r,
                                const BlockWeights* w) {
  std::map<std::string, const LinearWeights*> linears;  // HF weight name -> the block's linear
  for (int i = 0; w && i < block_linear_count(*w); ++i)
    if (block_linears(*w, i)->present()) linears.emplace(block_linears(*w, i)->name + ".weight", block_linears(*w, i));
  for (const std::string& t : tensors) {
    if (!wants(t)) continue;
    const auto found = linears.find(t);
    const LinearWeights* lw = found == linears.end() ? nullptr : found->second;
    if (!lw) {
      AR_CHECK(w || !t.ends_with(".weight") || src_.require(t).shape.size() != 2,
               "GGUF export: block weights not given for '", t, "'");
      add_copy(t);
      continue;
    }
    const GgmlType type = planned_type(t);
    const LinearResult* lr = r.find(lw->name);
    if (lr && !lr->gguf.empty()) {
      // Tuned under a block type: that type must be this file's plan for the tensor.
      if (lr->gguf_type != type)
        AR_THROW("GGUF export: '", t, "' was tuned as ", ggml_info(lr->gguf_type).name, " but ",
                 path().filename().string(), " plans ", ggml_info(type).name,
                 " (a checkpoint of another run?)");
      const Entry& e = entry(t);
      if (e.qk_heads > 0) {
        // The tuner worked in HF's row order; llama's q/k go into the file in llama.cpp's (as
        // encode_weight permutes the f32 rows before quantizing).
        std::vector<uint8_t> rows(lr->gguf);
        gguf_permute_qk_row_bytes(rows.data(), e.qk_heads, cfg_.head_dim, ggml_row_bytes(type, lw->in), true);
        add_bytes(t, type, rows.data(), rows.size());
      } else {
        add_bytes(t, type, lr->gguf.data(), lr->gguf.size());
      }
    } else {
      const float* imp = lr && !lr->importance.empty() ? lr->importance.data() : nullptr;
      // An expert no calibration token was routed to has no importance at all: plain RTN for it
      // (all-zero weights would leave the importance-weighted scale search nothing to fit).
      if (imp && std::all_of(lr->importance.begin(), lr->importance.end(), [](float v) { return v == 0.0f; }))
        imp = nullptr;
      const std::vector<uint8_t> b = encode_weight(t, lw->w.as<float>(), lw->out, lw->in, imp);
      add_bytes(t, type, b.data(), b.size());
    }
    if (ggml_is_quantized(type)) {
      ++stats_.layers;
      stats_.bits += 8.0 * double(ggml_row_bytes(type, lw->in)) * double(lw->out);
      stats_.weights += double(lw->out) * double(lw->in);
    }
  }
}

void GgufModelWriter::write_ready(size_t decl, const void* data, size_t size) {
  AR_CHECK(decl == next_decl_, "GGUF export: tensor ", decl, " written out of turn");
  w_->write_tensor(decls_[decl].name, data, size);
  ++next_decl_;
  flush_pending();
}

void GgufModelWriter::flush_pending() {
  for (auto it = pending_.find(next_decl_); it != pending_.end(); it = pending_.find(next_decl_)) {
    std::vector<uint8_t> b = std::move(it->second);
    pending_.erase(it);
    w_->write_tensor(decls_[next_decl_].name, b.data(), b.size());
    ++next_decl_;
  }
}

void GgufModelWriter::finish() {
  AR_CHECK(!finished_, "GGUF export: finish() called twice");
  if (next_decl_ != decls_.size()) {
    std::string missing;
    for (size_t i = next_decl_; i < decls_.size(); ++i)
      if (!pending_.count(i)) missing += (missing.empty() ? "" : ", ") + decls_[i].name + (stacks_.count(i) ? " (some experts)" : "");
    AR_CHECK(false, "GGUF export: tensors never given: ", missing);
  }
  // Side files first, so a .gguf that exists is always a complete export.
  std::error_code ec;
  for (const char* f : kSideFiles)
    if (fs::exists(model_dir_ / f, ec)) write_file_atomic(out_dir_ / f, read_text_file(model_dir_ / f));
  w_->finish();
  finished_ = true;
}

}  // namespace ar
