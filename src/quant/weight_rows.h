// The original weight of a linear a row at a time as f32, for the fake quantizers that read it
// once per tuning step: in place, or bf16 bits widened into the calling thread's row buffer (exact,
// so both give the same bits downstream).
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace ar {

struct F32Rows {
  static constexpr bool kWidens = false;
  const float* w;
  int64_t in;
  const float* row(int64_t o, float*) const { return w + o * in; }
};

struct Bf16Rows {
  static constexpr bool kWidens = true;
  const uint16_t* w;
  int64_t in;
  const float* row(int64_t o, float* buf) const {
    bf16_to_f32(buf, w + o * in, size_t(in));  // the bulk form: vectorized for this CPU
    return buf;
  }
};

}  // namespace ar
