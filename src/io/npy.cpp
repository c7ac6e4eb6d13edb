#include "io/npy.h"

#include <bit>

#include "core/error.h"

namespace ar {

std::string npy_f32_header(const std::vector<int64_t>& shape) {
  static_assert(std::endian::native == std::endian::little, "npy writer assumes a little-endian host");
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) {
    AR_CHECK(shape[i] >= 0, "negative npy dimension");
    dict += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";
    if (i + 1 < shape.size()) dict += " ";
  }
  dict += "), }";
  // magic (6) + version (2) + header length (2) + dict + padding + '\n' = multiple of 64.
  const size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  AR_CHECK(dict.size() <= 0xffff, "npy header too long");
  std::string h("\x93NUMPY\x01\x00", 8);
  h += char(dict.size() & 0xff);
  h += char(dict.size() >> 8);
  return h + dict;
}

NpyF32Writer::NpyF32Writer(std::filesystem::path path, std::vector<int64_t> shape) : out_(std::move(path)) {
  for (int64_t d : shape) total_ *= d;
  const std::string h = npy_f32_header(shape);
  out_.write(h.data(), h.size());
}

void NpyF32Writer::append(const float* data, int64_t n) {
  if (n < 0 || written_ + n > total_)
    AR_THROW(out_.final_path().string(), ": ", written_ + n, " values written to an array of ", total_);
  out_.write(data, size_t(n) * sizeof(float));
  written_ += n;
}

void NpyF32Writer::commit() {
  if (written_ != total_)
    AR_THROW(out_.final_path().string(), ": only ", written_, " of ", total_, " values were written");
  out_.commit();
}

}  // namespace ar
