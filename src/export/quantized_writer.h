// QuantizedModelWriter: writes a quantized HF model folder (auto_round / auto_gptq / fake, SPEC §4)
// as the pipeline produces it, block by block. Every output tensor is planned up front from the
// source tensor list and the per-layer schemes, so safetensors headers are written first and data is
// streamed; the folder is assembled beside the target and renamed into place only when complete.
#pragma once
#include "export/model_writer.h"
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "export/output_format.h"
#include "io/safetensors_writer.h"
#include "model/config.h"
#include "quant/quantized.h"

namespace ar {

class SafetensorsReader;

// "model.layers.<k>.<...>" -> k; -1 for tensors outside the decoder blocks.
int64_t tensor_block_index(const std::string& tensor_name);

// The source tensors in the order the writer expects them (and lays out the shards): block 0's
// tensors, block 1's, ..., each block's in name order; then every tensor outside the blocks
// (embedding, final norm, lm_head) in name order. Tensors given in another order are still accepted
// but held in memory until their turn, so the pipeline should follow this order.
std::vector<std::string> output_tensor_order(const SafetensorsReader& src);

// True for a weight the writer treats as a quantizable linear: a 2-D "<...>.weight" inside a block.
bool is_block_linear_weight(const std::string& tensor_name, const std::vector<int64_t>& shape);

class QuantizedModelWriter final : public ModelWriter {
 public:
  // Plans the whole output and fails before any work (ar::Error) when out_dir exists and !overwrite,
  // when out_dir is the source folder, when a scheme's bits or data type cannot be stored in format
  // `f` (the packed formats store integer schemes only, for now), or when no layer ends up
  // quantized. scheme_for(linear) is asked once per block linear (HF name without ".weight"); bits
  // 16 keeps it. For auto_round / auto_gptq a layer whose shape cannot be packed
  // (packed_shape_problem) is kept in 16-bit and listed in unstorable_layers(). quant_config_extra:
  // tuning settings that differ from defaults (see make_quantization_config).
  QuantizedModelWriter(OutputFormat f, const std::filesystem::path& src_model_dir,
                       const std::filesystem::path& out_dir, const SafetensorsReader& src, const ModelConfig& cfg,
                       std::function<QuantScheme(const std::string& linear_name)> scheme_for,
                       uint64_t max_shard_bytes, bool overwrite, nlohmann::json quant_config_extra);
  ~QuantizedModelWriter() override;  // unfinished: the temporary folder is removed
  QuantizedModelWriter(const QuantizedModelWriter&) = delete;
  QuantizedModelWriter& operator=(const QuantizedModelWriter&) = delete;

  // Whether `linear_name` is stored quantized (then call add_quantized), else add_copy its tensors.
  bool stores_quantized(const std::string& linear_name) const;
  // Layers the schemes asked to quantize but this format cannot store: (name, reason). For the
  // pipeline's one warning; they are written in 16-bit.
  const std::vector<std::pair<std::string, std::string>>& unstorable_layers() const;

  // The quantized result of one linear (HF name without ".weight"); its scheme must be the one
  // scheme_for gave. Packed formats write qweight/qzeros/scales(/g_idx: auto_gptq only); fake writes the dequantized
  // weight in the source tensor's dtype under the original ".weight" name.
  void add_quantized(const std::string& linear_name, const QuantizedWeight& q);
  // A source tensor copied as is, read from `src` in bounded chunks. Dtype: fake keeps the source
  // dtype; the integer packed formats keep BF16/F16 and turn F32 into F16 (GPTQ kernels compute in
  // fp16, and config.json's torch_dtype then says float16); a quantized linear's bias is F16 as GPTQ
  // stores it. auto_round with FP layers keeps every dtype, as AutoRound does (MX / NV bias: F16).
  void add_copy(const std::string& tensor_name) override;
  // ModelWriter: each block linear with an integer result that this format stores quantized goes
  // through add_quantized, every other tensor through add_copy. Counts every integer result.
  void add_block(const std::vector<std::string>& tensors, const BlockResult& r, const BlockWeights* w) override;
  bool needs_block_weights() const override { return false; }
  const std::filesystem::path& output_path() const override;
  std::filesystem::path eval_path() const override { return output_path(); }
  bool is_gguf() const override { return false; }
  QuantStats stats() const override;
  // Checks every planned tensor was written, completes the shards (+ index json when > 1),
  // writes config.json (+ quantization_config for packed formats), copies the tokenizer /
  // generation / other small files, then renames the folder into place (replacing an old one when
  // overwrite was given).
  void finish() override;

  // The planned output tensors in file order, and their total size in bytes.
  const std::vector<TensorSpec>& specs() const;
  uint64_t total_bytes() const;
  // The quantization_config that finish() will write (null for fake).
  const nlohmann::json& quantization_config() const;
  const std::filesystem::path& temp_dir() const;

  // Test hook: called with each output tensor's name just before its bytes are written.
  void set_before_write_hook(std::function<void(const std::string& tensor_name)> hook);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ar
