// GPTQ packing (AutoGPTQ v1 layout, SPEC §4): QuantizedWeight (out, in) codes / (out, n_groups)
// scales and zeros <-> qweight / qzeros / scales / g_idx. The bit stream itself is model/packed_linear.
#include "export/gptq_pack.h"

#include <algorithm>

#include "core/error.h"
#include "model/packed_linear.h"

namespace ar {

namespace {

bool gptq_bits(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

constexpr int64_t kTile = 64;  // output columns transposed together

}  // namespace

std::string packed_shape_problem(const QuantScheme& s, int64_t in, int64_t out) {
  if (!gptq_bits(s.bits)) return cat(s.bits, "-bit weights cannot be GPTQ-packed (2, 3, 4 or 8 bits)");
  if (in % 32 != 0 || out % 32 != 0)
    return cat("shape (out ", out, ", in ", in, ") is not a multiple of 32 in both dimensions");
  if (s.group_size != -1 && in % s.group_size != 0)
    return cat("in_features ", in, " is not a multiple of group_size ", s.group_size);
  return {};
}

PackedLinear pack_gptq(const QuantizedWeight& q, bool zeros_minus_one) {
  AR_CHECK(!q.scheme.is_fp(), "pack_gptq: ", scheme_label(q.scheme), " weights are not integer codes");
  const std::string problem = packed_shape_problem(q.scheme, q.in, q.out);
  AR_CHECK(problem.empty(), "pack_gptq: ", problem);
  AR_CHECK(int64_t(q.codes.size()) == q.out * q.in && int64_t(q.scales.size()) == q.out * q.n_groups &&
               int64_t(q.zeros.size()) == q.out * q.n_groups,
           "QuantizedWeight sizes do not match its shape");
  const int bits = q.scheme.bits;
  const int64_t in = q.in, out = q.out, ng = q.n_groups;
  const int64_t qw_rows = gptq_packed_words(bits, in), qz_cols = gptq_packed_words(bits, out);
  PackedLinear p;
  p.in = in;
  p.out = out;
  p.n_groups = ng;
  p.scheme = q.scheme;
  p.qweight = Buffer(size_t(qw_rows * out) * 4, "qweight");
  p.qzeros = Buffer(size_t(ng * qz_cols) * 4, "qzeros");
  p.scales = Buffer(size_t(ng * out) * 2, "scales");
  p.g_idx = Buffer(size_t(in) * 4, "g_idx");

  // qweight: column o is the packed stream of codes row o (contiguous in the QuantizedWeight).
  // Columns are packed kTile at a time and stored row by row, so the transposed writes stay in cache.
  uint32_t* qw = p.qweight.as<uint32_t>();
  std::vector<uint32_t> cols(static_cast<size_t>(kTile * qw_rows));
  for (int64_t o0 = 0; o0 < out; o0 += kTile) {
    const int64_t nt = std::min(kTile, out - o0);
    for (int64_t t = 0; t < nt; ++t)
      gptq_pack_values(cols.data() + t * qw_rows, q.codes.data() + (o0 + t) * in, in, bits);
    for (int64_t r = 0; r < qw_rows; ++r)
      for (int64_t t = 0; t < nt; ++t) qw[r * out + o0 + t] = cols[size_t(t * qw_rows + r)];
  }
  // qzeros row g: (zero[o, g] - 1) & mask over o (v1; v2: zero[o, g]); scales transposed to (n_groups, out).
  const unsigned mask = (1u << bits) - 1u;
  std::vector<uint8_t> zrow(static_cast<size_t>(out));
  uint16_t* sc = p.scales.as<uint16_t>();
  for (int64_t g = 0; g < ng; ++g) {
    for (int64_t o = 0; o < out; ++o) {
      zrow[size_t(o)] = uint8_t((unsigned(q.zeros[size_t(o * ng + g)]) - (zeros_minus_one ? 1u : 0u)) & mask);
      sc[g * out + o] = q.scales[size_t(o * ng + g)];
    }
    gptq_pack_values(p.qzeros.as<uint32_t>() + g * qz_cols, zrow.data(), out, bits);
  }
  int32_t* gi = p.g_idx.as<int32_t>();
  for (int64_t i = 0; i < in; ++i) gi[i] = int32_t(i / q.group);
  return p;
}

QuantizedWeight unpack_gptq(const uint32_t* qweight, const uint32_t* qzeros, const uint16_t* scales,
                            const int32_t* g_idx, const QuantScheme& s, int64_t in, int64_t out,
                            bool zeros_minus_one) {
  AR_CHECK(gptq_bits(s.bits), "unpack_gptq: bits ", s.bits);
  QuantizedWeight q;
  q.scheme = s;
  q.in = in;
  q.out = out;
  q.group = effective_group_size(s, in);
  q.n_groups = num_groups(s, in);
  const int bits = s.bits;
  const int64_t ng = q.n_groups;
  const int64_t qw_rows = gptq_packed_words(bits, in), qz_cols = gptq_packed_words(bits, out);
  if (g_idx)
    for (int64_t i = 0; i < in; ++i)
      if (g_idx[i] != i / q.group)
        AR_THROW("g_idx[", i, "] = ", g_idx[i], ", expected ", i / q.group,
                 " (act-order / permuted groups are not supported here)");
  q.codes.resize(size_t(out * in));
  std::vector<uint32_t> cols(static_cast<size_t>(kTile * qw_rows));
  for (int64_t o0 = 0; o0 < out; o0 += kTile) {
    const int64_t nt = std::min(kTile, out - o0);
    for (int64_t r = 0; r < qw_rows; ++r)
      for (int64_t t = 0; t < nt; ++t) cols[size_t(t * qw_rows + r)] = qweight[r * out + o0 + t];
    for (int64_t t = 0; t < nt; ++t)
      gptq_unpack_values(q.codes.data() + (o0 + t) * in, cols.data() + t * qw_rows, in, bits);
  }
  q.scales.resize(size_t(out * ng));
  q.zeros.resize(size_t(out * ng));
  const unsigned mask = (1u << bits) - 1u;
  std::vector<uint8_t> zrow(static_cast<size_t>(out));
  for (int64_t g = 0; g < ng; ++g) {
    gptq_unpack_values(zrow.data(), qzeros + g * qz_cols, out, bits);
    for (int64_t o = 0; o < out; ++o) {
      const unsigned z = zrow[size_t(o)];
      q.zeros[size_t(o * ng + g)] = uint8_t(zeros_minus_one ? (z + 1u) & mask : z);
      q.scales[size_t(o * ng + g)] = scales[g * out + o];
    }
  }
  return q;
}

int64_t count_wrapped_zeros(const QuantizedWeight& q) {
  int64_t n = 0;
  for (uint8_t z : q.zeros) n += z == 0;
  return n;
}

std::vector<TensorSpec> packed_tensor_specs(const std::string& linear, const QuantScheme& s, int64_t in,
                                            int64_t out, bool with_g_idx) {
  const int64_t ng = num_groups(s, in);
  std::vector<TensorSpec> specs = {{linear + ".qweight", DType::I32, {gptq_packed_words(s.bits, in), out}},
                                   {linear + ".qzeros", DType::I32, {ng, gptq_packed_words(s.bits, out)}},
                                   {linear + ".scales", DType::F16, {ng, out}}};
  if (with_g_idx) specs.push_back({linear + ".g_idx", DType::I32, {in}});
  return specs;
}

}  // namespace ar
