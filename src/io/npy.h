// A float32 NumPy .npy file (format version 1.0, C order, little-endian) written row by row
// through an AtomicFile, so a run that fails half-way leaves no file that looks complete.
// Used by `autoround eval --dump_logits` to hand logits to other runtimes for comparison.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/atomic_output.h"

namespace ar {

// The header bytes ("\x93NUMPY", version, length, dict padded with spaces and '\n' so the data
// starts at a multiple of 64) for a '<f4' array of `shape`.
std::string npy_f32_header(const std::vector<int64_t>& shape);

class NpyF32Writer {
 public:
  NpyF32Writer(std::filesystem::path path, std::vector<int64_t> shape);
  // Appends `n` values; more than the shape holds is an ar::Error.
  void append(const float* data, int64_t n);
  // Checks that every element was written, then renames the file into place.
  void commit();

 private:
  AtomicFile out_;
  int64_t total_ = 1, written_ = 0;
};

}  // namespace ar
