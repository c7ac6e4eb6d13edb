// GgufModelWriter: a quantized model as one GGUF file that llama.cpp loads (`--format gguf:<mix>`),
// written as the pipeline produces it, block by block. Everything is planned before any work: HF
// tensor names -> llama.cpp names, GGUF shapes (fastest dimension first), each tensor's type from
// the mix (gguf_mix_types), metadata and tokenizer (gguf_metadata), llama3 rope_freqs. Tensor data
// is streamed through GgufWriter into `<name>.tmp`, renamed only when complete; config.json and
// the tokenizer files are copied beside it so `autoround eval` finds them.
//
// Layout decisions (llama.cpp's convert_hf_to_gguf.py): q/k projection rows (and biases) of
// `llama`-architecture models are permuted into llama.cpp's pair order (gguf_permute_qk_rows);
// Gemma's norms (every "*norm.weight", the final one and q/k norms included) are written as the
// multiplier 1 + w they apply, where HF stores w; Phi3's fused qkv_proj / gate_up_proj are
// written whole as attn_qkv / ffn_up; norms and biases stay F32; a tied lm_head is not written
// (llama.cpp reuses token_embd). Mixture of experts (Qwen3Moe -> qwen3moe, Mixtral -> llama): the
// router is ffn_gate_inp (F32, never quantized) and each projection's experts are one 3-D tensor
// ffn_{gate,up,down}_exps, GGUF dims (in, out, n_expert): every expert's rows are quantized on
// their own (with that expert's importance) and the slices concatenated in expert order. The
// per-expert HF names stay the unit of the interface (planned_type, add_bytes, ...); the stacked
// tensor is written once its last expert arrives.
// Tensor order in the file: rope_freqs (if any), block 0 ... block L-1 (each in HF name order),
// then embedding / final norm / lm_head -- the order the pipeline produces them.
#pragma once
#include "export/model_writer.h"
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/ggml_type.h"
#include "export/gguf_mix.h"
#include "io/gguf.h"
#include "model/config.h"

namespace ar {

class SafetensorsReader;

class GgufModelWriter final : public ModelWriter {
 public:
  // Plans the file and writes everything before the tensor data. ar::Error (before anything is
  // created) when output_dir is the model folder, when the .gguf file exists and !overwrite, for a
  // source tensor llama.cpp has no name for, or a row length no type of the mix fits.
  // has_importance: per-column importance will be given for the block linears (llama.cpp's
  // imatrix rule for q4_0 / q5_0 ffn_down applies then).
  // requested: HF tensor name -> the type asked for it (--layer_config), instead of the mix's
  // choice (gguf_mix_types); every name must be a tensor of the plan (ar::Error otherwise).
  GgufModelWriter(const std::filesystem::path& model_dir, const std::filesystem::path& output_dir, GgufMix mix,
                  const SafetensorsReader& src, const ModelConfig& cfg, bool overwrite,
                  bool has_importance = false, const std::map<std::string, GgmlType>& requested = {});
  ~GgufModelWriter() override;  // unfinished: no .gguf file appears
  GgufModelWriter(const GgufModelWriter&) = delete;
  GgufModelWriter& operator=(const GgufModelWriter&) = delete;

  // Whether the HF tensor goes into the file (false for e.g. rotary_emb.inv_freq).
  bool wants(const std::string& hf_name) const;
  GgmlType planned_type(const std::string& hf_name) const;  // wants() must hold (InternalError)
  const std::string& gguf_name(const std::string& hf_name) const;
  // HF names of the planned tensors, in file order (rope_freqs, which has none, excluded).
  std::vector<std::string> hf_order() const;

  // The bytes of a tensor in its planned type, without writing them (for checkpoints): w is the
  // f32 HF tensor, (rows, cols) row-major (a 1-D tensor is rows = 1); imp: optional per-column
  // importance (cols values). q/k are permuted here for llama.
  std::vector<uint8_t> encode_weight(const std::string& hf_name, const float* w, int64_t rows, int64_t cols,
                                     const float* imp = nullptr) const;
  // The same for a tensor read from the source model.
  std::vector<uint8_t> encode_copy(const std::string& hf_name) const;

  // f32 (rows, cols) weights quantized to the planned type and written (see encode_weight).
  void add_weight(const std::string& hf_name, const float* w, int64_t rows, int64_t cols, const float* imp = nullptr);
  // Bytes already in the planned type `t` (from encode_* or a checkpoint); size must be exact.
  void add_bytes(const std::string& hf_name, GgmlType t, const void* data, size_t size);
  // A source tensor, converted to its planned type; large tensors go through in row chunks.
  // Tensors the file leaves out (wants() false) are skipped.
  void add_copy(const std::string& hf_name) override;
  // ModelWriter: a block linear's weight is written from the bytes tuned under its planned type
  // when r has them, else encoded from w (importance-weighted when r has importance); every
  // other tensor of the block is converted from the source.
  void add_block(const std::vector<std::string>& tensors, const BlockResult& r, const BlockWeights* w) override;
  bool needs_block_weights() const override { return true; }
  // Stacked expert tensors are gathered whole before they are written.
  uint64_t block_buffer_bytes(const std::vector<std::string>& tensors) const override;
  const std::filesystem::path& output_path() const override { return out_dir_; }
  std::filesystem::path eval_path() const override { return path(); }
  bool is_gguf() const override { return true; }
  QuantStats stats() const override { return stats_; }
  // Tensors may come in any order; one that is not next in the file is held in memory until its
  // turn. finish() checks every tensor was given, copies config.json / tokenizer files beside the
  // file and renames the .gguf into place.
  void finish() override;

  const std::filesystem::path& path() const;  // the final .gguf path
  const std::vector<GgufKV>& metadata() const { return kvs_; }
  const std::vector<GgufTensorDecl>& tensors() const { return decls_; }
  GgufMix mix() const { return mix_; }

 private:
  struct Entry {
    std::string hf_name;
    size_t decl = 0;       // index into decls_
    int64_t rows = 1, cols = 0;
    int64_t qk_heads = 0;  // > 0: permute rows in groups of head_dim (llama q/k)
    bool norm_plus_one = false;  // Gemma norm: the file stores the multiplier 1 + w
    int64_t expert = -1;         // >= 0: this expert's slice of a stacked tensor (decl)
    int64_t n_experts = 0;
    size_t size_bytes = 0;       // this tensor's bytes (one expert's slice for an expert)
  };
  // A stacked expert tensor being gathered: n_experts slices in expert order.
  struct Stack {
    std::vector<uint8_t> bytes;
    std::vector<uint8_t> seen;
    int64_t count = 0;
  };
  const Entry& entry(const std::string& hf_name) const;
  void write_ready(size_t decl, const void* data, size_t size);
  void flush_pending();

  std::filesystem::path model_dir_, out_dir_;
  GgufMix mix_;
  const SafetensorsReader& src_;
  ModelConfig cfg_;
  std::vector<GgufKV> kvs_;
  std::vector<GgufTensorDecl> decls_;
  std::vector<Entry> entries_;
  std::map<std::string, size_t> by_hf_;  // -> entries_ index
  std::unique_ptr<GgufWriter> w_;
  size_t next_decl_ = 0;
  std::map<size_t, std::vector<uint8_t>> pending_;  // decl index -> bytes waiting for their turn
  std::map<size_t, Stack> stacks_;                   // decl index -> experts gathered so far
  bool finished_ = false;
  QuantStats stats_;
};

}  // namespace ar
