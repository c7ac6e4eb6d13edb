// Plain RTN over a whole (out, in) weight: per-group parameters then codes, rows in parallel.
// The per-group math lives in quant/qdq.cpp so the optimized search shares it.
#include "quant/rtn.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "quant/fp_quantize.h"
#include "quant/qdq.h"
#include "quant/weight_rows.h"

namespace ar {

void check_quantizable(const QuantScheme& s) {
  if (s.is_fp()) {
    AR_CHECK(s == fp_scheme(s.data_type), "scheme ", scheme_label(s), " with bits ", s.bits, ", group_size ",
             s.group_size, ": not the format's own");
    return;
  }
  AR_CHECK(s.bits >= 2 && s.bits <= 8, "quantizer called with bits ", s.bits, " (16 means: do not quantize)");
  AR_CHECK(s.group_size == -1 || s.group_size > 0, "group_size ", s.group_size);
}

namespace {

// The integer schemes' codes and scales into q (allocated for s, out, in), rows in parallel.
template <typename Rows>
void quantize_int_rows(QuantizedWeight& q, const Rows& rows, int64_t out, int64_t in, const QuantScheme& s,
                       const float* v, const float* min_scale, const float* max_scale) {
  for_each_row_group(rows, out, in, q.group, [&](const RowGroup& r) {
    const float lo_s = min_scale ? min_scale[r.index] : 1.f, hi_s = max_scale ? max_scale[r.index] : 1.f;
    write_group_rtn(q, r.at, r.index, r.w, v ? v + r.at : nullptr, r.n,
                    group_params(r.w, r.n, s.sym, s.bits, lo_s, hi_s), s.bits);
  });
}

// q as allocate(s, out, in) would give it, keeping its storage when it already has that shape.
void reuse_or_allocate(QuantizedWeight& q, const QuantScheme& s, int64_t out, int64_t in) {
  if (q.scheme == s && q.out == out && q.in == in && q.sizes_match()) return;
  q = QuantizedWeight::allocate(s, out, in);
}

}  // namespace

void write_group_rtn(QuantizedWeight& q, int64_t at, int64_t index, const float* w, const float* v, int64_t n,
                     const GroupQuant& p, int bits) {
  quantize_group_codes(q.codes.data() + at, w, v, n, p.scale, p.zero, bits);
  write_group_params(q, index, p);
}

void write_group_params(QuantizedWeight& q, int64_t index, const GroupQuant& p) {
  q.scales[size_t(index)] = p.scale_f16;
  q.zeros[size_t(index)] = uint8_t(p.zero);
}

QuantizedWeight quantize_rtn(const float* w, int64_t out, int64_t in, const QuantScheme& s, const float* v,
                             const float* min_scale, const float* max_scale, const std::string& name,
                             float global_amax) {
  check_quantizable(s);
  if (s.is_fp()) return quantize_fp(w, out, in, s, name, v, max_scale, global_amax);
  QuantizedWeight q = QuantizedWeight::allocate(s, out, in);
  quantize_int_rows(q, F32Rows{w, in}, out, in, s, v, min_scale, max_scale);
  return q;
}

void quantize_rtn_into(QuantizedWeight& q, const float* w, int64_t out, int64_t in, const QuantScheme& s,
                       const float* v, const float* min_scale, const float* max_scale) {
  check_quantizable(s);
  AR_CHECK(!s.is_fp(), "quantize_rtn_into: integer schemes only, not ", scheme_label(s));
  reuse_or_allocate(q, s, out, in);
  quantize_int_rows(q, F32Rows{w, in}, out, in, s, v, min_scale, max_scale);
}

void quantize_rtn_into(QuantizedWeight& q, const uint16_t* w_bf16, int64_t out, int64_t in, const QuantScheme& s,
                       const float* v, const float* min_scale, const float* max_scale) {
  check_quantizable(s);
  AR_CHECK(!s.is_fp(), "quantize_rtn_into: integer schemes only, not ", scheme_label(s));
  reuse_or_allocate(q, s, out, in);
  quantize_int_rows(q, Bf16Rows{w_bf16, in}, out, in, s, v, min_scale, max_scale);
}

}  // namespace ar
