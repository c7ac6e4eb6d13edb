// Activation caches of the calibration run (SPEC §3): n samples of (T, C) f32 activations each,
// behind one interface with two backings — RAM, or a file in the work directory read and written
// one sample at a time, so only the sample in use is resident. Both keep a checksum per sample
// (taken on write) so a checkpoint can record them and a resume can detect a corrupted file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "io/work_file.h"

namespace ar {

class ActivationStore {
 public:
  ActivationStore(std::string name, int64_t n, size_t sample_floats);
  virtual ~ActivationStore() = default;
  ActivationStore(const ActivationStore&) = delete;
  ActivationStore& operator=(const ActivationStore&) = delete;

  const std::string& name() const { return name_; }
  int64_t samples() const { return n_; }
  size_t sample_floats() const { return floats_; }
  uint64_t bytes() const { return uint64_t(n_) * floats_ * sizeof(float); }

  // dst / src: sample_floats() floats. A sample never written reads as unspecified data.
  virtual void read(int64_t i, float* dst) const = 0;
  // Sample i where it lives, when the store keeps it in RAM (else null): valid until the store is
  // written or destroyed, for readers that need no copy of their own.
  virtual const float* resident(int64_t i) const { return nullptr; }
  void write(int64_t i, const float* src);
  // Checksums of what was last written to each sample (0 before the first write).
  const std::vector<uint64_t>& checksums() const { return sums_; }
  // Makes the contents durable in `file` (a file store at that path: fsync; else the data is
  // written there, replacing it).
  virtual void persist(const std::filesystem::path& file) = 0;
  virtual bool on_disk() const = 0;

 protected:
  virtual void store(int64_t i, const float* src) = 0;
  void check_index(int64_t i) const;
  std::vector<uint64_t> sums_;

 private:
  std::string name_;
  int64_t n_;
  size_t floats_;
};

std::unique_ptr<ActivationStore> make_ram_store(const std::string& name, int64_t n, size_t sample_floats);
// A new file of n samples (space reserved now; throws ar::Error naming the file if it cannot be).
std::unique_ptr<ActivationStore> make_file_store(const std::string& name, const std::filesystem::path& file,
                                                 int64_t n, size_t sample_floats);
// An existing cache file written by a previous run (resume): every sample is read once and its
// checksum compared with `expected`; a mismatch or a wrong size is an ar::Error naming the file
// and the sample. With in_ram the data is loaded into a RAM store, else the file is used in place.
std::unique_ptr<ActivationStore> open_checked_store(const std::string& name, const std::filesystem::path& file,
                                                    int64_t n, size_t sample_floats,
                                                    const std::vector<uint64_t>& expected, bool in_ram);

}  // namespace ar
