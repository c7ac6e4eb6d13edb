// The calibration activations carried from block to block (SPEC §2 steps 1 and 5): X, the
// inputs of the current block on the full-precision path, and Xq, on the quantized path. Each
// lives in RAM or in work-dir files (one file per generation, "X.<block>.f32", so a checkpoint's
// caches stay intact while the next generation is written). A block step reads the current
// generation and fills the next; advance() makes the next current.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "model/block.h"
#include "model/decoder.h"
#include "pipeline/activation_store.h"
#include "pipeline/checkpoint.h"

namespace ar {

class CalibStream {
 public:
  // n samples of T tokens; with_xq: keep the quantized path's inputs too.
  CalibStream(const ModelConfig& cfg, int64_t n, int64_t T, bool with_xq, bool on_disk,
              std::filesystem::path work_dir);

  // Generation 0: every sample's embeddings, in X and (with_xq) Xq.
  void start(const Decoder& d, const std::vector<std::vector<int32_t>>& samples);
  // The caches a checkpoint saved for its next block, each sample checked against its checksum.
  void resume(const CheckpointManifest& m);

  int64_t samples() const { return n_; }
  bool on_disk() const { return on_disk_; }
  ActivationStore& x() { return *x_; }
  ActivationStore& xq() { return *xq_; }
  // The tuning inputs: Xq when the run keeps it, else X.
  ActivationStore& tune_inputs() { return xq_ ? *xq_ : *x_; }

  // A fresh store for generation `gen` (a file under the work dir, or RAM).
  std::unique_ptr<ActivationStore> new_store(const char* what, int64_t gen) const;
  // The next block's X: a new generation, or the current store itself (`reuse`, rewritten in place).
  void set_next_x(std::unique_ptr<ActivationStore> next) { x_next_ = std::move(next); }
  void keep_x_as_next() { x_next_ = std::move(x_); }
  bool has_next_x() const { return x_next_ != nullptr; }
  ActivationStore& next_x() { return *x_next_; }

  // Runs every sample of `in` through the block (y = block(x)), writing `out` (may be `in`).
  // observe: see block_forward (importance statistics); write false: only observe; w16: the
  // dense weights already rounded to bf16 (block_forward), or null.
  void pass(const BlockWeights& w, ActivationStore& in, ActivationStore& out, Precision p,
            const LinearInputObserver& observe = {}, bool write = true, const DenseBf16Weights* w16 = nullptr);
  // Xq <- block_q(Xq) into the next generation (step 5 on the quantized path). With native bf16
  // products the dense weights are rounded to bf16 once for the pass (propagate_bytes).
  void propagate_quantized(const BlockWeights& w, int64_t layer, Precision p);
  // Bytes propagate_quantized holds beside the block's weights and the pass's scratch.
  static uint64_t propagate_bytes(const BlockWeights& shapes, Precision p);

  // Persists the next generation for a checkpoint of `layer` (files and checksums into m; none
  // after the last block).
  void checkpoint(CheckpointManifest& m, int64_t layer, bool last);
  // The next generation becomes current; the files of `layer`'s generation are removed.
  void advance(int64_t layer);
  void clear();

  // Working buffers of one sample (T, C), for passes made outside this class (the tuner's).
  float* a() { return a_.data(); }
  float* b() { return b_.data(); }

 private:
  const ModelConfig& cfg_;
  int64_t n_, T_;
  size_t floats_;
  bool with_xq_, on_disk_;
  std::filesystem::path work_dir_;
  std::unique_ptr<ActivationStore> x_, xq_, x_next_, xq_next_;
  std::vector<float> a_, b_;
  std::optional<RopeTables> rope_;
};

}  // namespace ar
