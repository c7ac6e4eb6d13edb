// The run's outputs: one ModelWriter per --format, planned (and their destinations checked)
// before any work, fed block by block, finished together.
#pragma once
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "export/gguf_model_writer.h"
#include "export/model_writer.h"
#include "quant/layer_config.h"

namespace ar {

struct QuantizeOptions;

class OutputSet {
 public:
  // Plans every format of opt.formats (ar::Error before any work for a bad format, an existing
  // output without --overwrite, q2_k_s without calibration data, ...). has_importance: RTN will
  // give importance per linear (GGUF's imatrix rules apply). linear_names: every block linear
  // (HF name without ".weight"). Logs the 16-bit fallbacks.
  OutputSet(const QuantizeOptions& opt, const SafetensorsReader& src, const ModelConfig& cfg,
            const LayerConfig& layers, const std::vector<std::string>& linear_names, bool calibrated,
            bool has_importance,
            const std::function<void(const std::string&)>& log);

  bool has_integer_formats() const;  // auto_round / auto_gptq / fake
  bool has_gguf_formats() const;
  size_t size() const { return writers_.size(); }
  // The single GGUF writer when it is the only output (SignRound then tunes under its types).
  const GgufModelWriter* sole_gguf() const;
  bool needs_block_weights() const;

  void add_block(int64_t layer, const BlockResult& r, const BlockWeights* w);
  // What the writers hold at once while add_block(layer, ...) runs (ModelWriter::block_buffer_bytes).
  uint64_t block_buffer_bytes(int64_t layer) const;
  // Tensors outside the blocks, then every writer's finish (the outputs appear only now).
  void finish();

  const std::vector<std::filesystem::path>& paths() const { return paths_; }
  const std::filesystem::path& eval_path() const { return eval_path_; }
  const std::vector<std::string>& kept_16bit() const { return kept_16bit_; }
  // The integer formats' count when there are any, else the first GGUF file's.
  QuantStats stats() const;

 private:
  std::vector<std::unique_ptr<ModelWriter>> writers_;
  std::vector<std::filesystem::path> paths_;
  std::filesystem::path eval_path_;
  std::vector<std::string> kept_16bit_;
  std::map<int64_t, std::vector<std::string>> by_block_;  // source tensors per block, writer order
  std::vector<std::string> outside_;                      // the rest
};

}  // namespace ar
