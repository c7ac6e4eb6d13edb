#include "pipeline/calib_stream.h"

#include "core/interrupt.h"
#include "core/error.h"
#include "pipeline/work_dir.h"

namespace ar {

CalibStream::CalibStream(const ModelConfig& cfg, int64_t n, int64_t T, bool with_xq, bool on_disk,
                         std::filesystem::path work_dir)
    : cfg_(cfg),
      n_(n),
      T_(T),
      floats_(size_t(T * cfg.hidden_size)),
      with_xq_(with_xq),
      on_disk_(on_disk),
      work_dir_(std::move(work_dir)),
      a_(floats_),
      b_(floats_) {
  rope_.emplace(make_rope_tables(cfg, T));
}

std::unique_ptr<ActivationStore> CalibStream::new_store(const char* what, int64_t gen) const {
  return on_disk_ ? make_file_store(what, work_dir_ / cache_file(what, gen), n_, floats_)
                  : make_ram_store(what, n_, floats_);
}

void CalibStream::start(const Decoder& d, const std::vector<std::vector<int32_t>>& samples) {
  AR_CHECK(int64_t(samples.size()) == n_, "calibration: ", samples.size(), " samples for ", n_);
  x_ = new_store("X", 0);
  if (with_xq_) xq_ = new_store("Xq", 0);
  for (int64_t s = 0; s < n_; ++s) {
    d.embed(a_.data(), samples[size_t(s)]);
    x_->write(s, a_.data());
    if (xq_) xq_->write(s, a_.data());
  }
}

void CalibStream::resume(const CheckpointManifest& m) {
  if (m.x_file.empty() || (with_xq_ && m.xq_file.empty()) || m.x_sums.size() != size_t(n_))
    AR_THROW(work_dir_.string(), ": checkpoint has no activation caches for block ", m.next_block);
  x_ = open_checked_store("X", work_dir_ / m.x_file, n_, floats_, m.x_sums, !on_disk_);
  if (with_xq_) xq_ = open_checked_store("Xq", work_dir_ / m.xq_file, n_, floats_, m.xq_sums, !on_disk_);
}

void CalibStream::pass(const BlockWeights& w, ActivationStore& in, ActivationStore& out, Precision p,
                       const LinearInputObserver& observe, bool write, const DenseBf16Weights* w16) {
  // The inference scratch lives only during a pass, never beside the tuner's (the memory plan
  // counts the larger of the two).
  BlockScratch scratch(cfg_, T_);
  for (int64_t s = 0; s < n_; ++s) {
    throw_if_interrupted("during a calibration pass");
    in.read(s, a_.data());
    block_forward(a_.data(), w, cfg_, *rope_, scratch, p, observe, w16);
    if (write) out.write(s, a_.data());
  }
}

void CalibStream::propagate_quantized(const BlockWeights& w, int64_t layer, Precision p) {
  xq_next_ = on_disk_ ? new_store("Xq", layer + 1) : nullptr;
  const DenseBf16Weights w16 = DenseBf16Weights::make(w, p);
  pass(w, *xq_, xq_next_ ? *xq_next_ : *xq_, p, {}, true, &w16);
  if (!xq_next_) xq_next_ = std::move(xq_);
}

uint64_t CalibStream::propagate_bytes(const BlockWeights& shapes, Precision p) {
  return DenseBf16Weights::bytes(shapes, p);
}

void CalibStream::checkpoint(CheckpointManifest& m, int64_t layer, bool last) {
  m.x_file.clear();
  m.xq_file.clear();
  m.x_sums.clear();
  m.xq_sums.clear();
  if (last) return;  // nothing follows the last block
  if (x_next_) {
    m.x_file = cache_file("X", layer + 1);
    x_next_->persist(work_dir_ / m.x_file);
    m.x_sums = x_next_->checksums();
  }
  if (xq_next_) {
    m.xq_file = cache_file("Xq", layer + 1);
    xq_next_->persist(work_dir_ / m.xq_file);
    m.xq_sums = xq_next_->checksums();
  }
}

void CalibStream::advance(int64_t layer) {
  x_ = std::move(x_next_);
  xq_ = std::move(xq_next_);
  // Block `layer`'s inputs are superseded (by the checkpoint just written, if any): on disk they
  // are the files of generation `layer`; in RAM, the previous checkpoint's copies.
  std::error_code ec;
  std::filesystem::remove(work_dir_ / cache_file("X", layer), ec);
  std::filesystem::remove(work_dir_ / cache_file("Xq", layer), ec);
}

void CalibStream::clear() {
  x_.reset();
  xq_.reset();
  x_next_.reset();
  xq_next_.reset();
}

}  // namespace ar
