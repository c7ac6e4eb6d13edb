// Decoder: a HF model folder or a GGUF model file opened for streaming. Only config and tensor
// headers are held; block weights are read from disk when a pass reaches them and dropped right after.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "core/precision.h"
#include "model/config.h"
#include "model/weights.h"

namespace ar {

class SafetensorsReader;

struct ForwardOptions {
  Precision precision = Precision::F32;
  // Called after each block with (layer index, layers total); for progress lines.
  std::function<void(int64_t, int64_t)> on_block;
  // Applied to each block's weights right after loading (e.g. fake quantization for evaluation).
  std::function<void(BlockWeights&)> transform_block;
};

class Decoder {
 public:
  // `path`: a HF folder (config.json + safetensors), a .gguf file, or a folder whose only model
  // file is a .gguf (see find_gguf_model). A GGUF model's config comes from its metadata.
  explicit Decoder(const std::filesystem::path& path);
  ~Decoder();
  Decoder(Decoder&&) noexcept;
  Decoder& operator=(Decoder&&) noexcept;

  const ModelConfig& config() const { return config_; }
  // The safetensors files of a HF folder; ar::Error for a GGUF model.
  const SafetensorsReader& reader() const;
  // Weights as f32 in HF layout, whatever the file format.
  const WeightSource& weights() const { return *weights_; }
  // The folder (for a GGUF model: the file's folder, where its tokenizer.json is looked for).
  const std::filesystem::path& dir() const { return dir_; }
  bool is_gguf() const { return !gguf_file_.empty(); }
  const std::filesystem::path& gguf_file() const { return gguf_file_; }  // empty for HF folders

  // x (n, C) = embedding rows of ids (n). Throws ar::Error for an id outside the vocabulary.
  void embed(float* x, std::span<const int32_t> ids) const;

  // x (n_seq, T, C): embedded inputs in, final-normed hidden states out. Streams the blocks:
  // block k is loaded once and applied to every sequence, then released.
  void forward_hidden(float* x, int64_t n_seq, int64_t T, const ForwardOptions& opt) const;

  // logits (n, V) = h (n, C) · lm_head^T, reading lm_head in row chunks.
  void logits(float* out, const float* h, int64_t n, Precision p) const;

  // For each row i of h (n, C): nll[i] = logsumexp(logits_i) - logits_i[target[i]], without
  // materialising more than a chunk of the vocabulary's logits.
  void next_token_nll(double* nll, const float* h, const int32_t* target, int64_t n, Precision p) const;

 private:
  std::filesystem::path dir_, gguf_file_;
  ModelConfig config_;
  std::unique_ptr<SafetensorsReader> reader_;  // null for a GGUF model
  std::unique_ptr<WeightSource> weights_;
};

// Greedy decoding without a KV cache (recomputes the prefix each step): for tests and demos.
std::vector<int32_t> greedy_generate(const Decoder& d, std::vector<int32_t> prompt, int64_t n_new,
                                     Precision p = Precision::F32);

}  // namespace ar
