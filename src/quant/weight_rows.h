// The original weight of a linear a row at a time as f32, for the fake quantizers that read it
// once per tuning step: in place, or bf16 bits widened into the calling thread's row buffer (exact,
// so both give the same bits downstream).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

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

// One group of one row, as for_each_row_group hands it out.
struct RowGroup {
  const float* w;  // its weights (f32, valid during the call)
  int64_t n;       // how many (the last group of a row may be shorter)
  int64_t at;      // offset of its first weight in the (out, in) matrix
  int64_t index;   // row * groups_per_row + group: its scale's index
};

// f(o, w) for every row o of an (out, in) weight read through `rows` (w: its in weights as f32),
// the rows split over the threads (each with its own row buffer when rows widens). f must not
// throw; the result does not depend on the thread count when each call writes only its row.
template <typename Rows, typename F>
void for_each_row(const Rows& rows, int64_t out, int64_t in, F&& f) {
#pragma omp parallel if (out * in >= (int64_t(1) << 16))
  {
    std::vector<float> row_buf(Rows::kWidens ? size_t(in) : 0);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < out; ++o) f(o, rows.row(o, row_buf.data()));
  }
}

// f(RowGroup) for every group of G weights of every row, as for_each_row splits them.
template <typename Rows, typename F>
void for_each_row_group(const Rows& rows, int64_t out, int64_t in, int64_t G, F&& f) {
  const int64_t ng = (in + G - 1) / G;
  for_each_row(rows, out, in, [&](int64_t o, const float* wr) {
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t i0 = g * G;
      f(RowGroup{wr + i0, std::min(G, in - i0), o * in + i0, o * ng + g});
    }
  });
}

}  // namespace ar
