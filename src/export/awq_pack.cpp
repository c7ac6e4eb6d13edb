// AutoAWQ GEMM packing (layout: awq_pack.h). Facts from AutoAWQ's WQLinear_GEMM.from_linear and
// AutoRound 0.16.1's export_to_awq/utils.py; the code is ours.
#include "export/awq_pack.h"

#include "core/error.h"
#include "export/gptq_pack.h"

namespace ar {

namespace {

constexpr int kPack = 8;  // 4-bit values per int32 word

// word c of a row of n values (n % 8 == 0): value 8c+j in nibble kAwqSlot[j].
void awq_pack_row(uint32_t* words, const uint8_t* v, int64_t n) {
  for (int64_t c = 0; c < n / kPack; ++c) {
    uint32_t w = 0;
    for (int j = 0; j < kPack; ++j) w |= uint32_t(v[c * kPack + j] & 15u) << (4 * kAwqSlot[j]);
    words[c] = w;
  }
}

void awq_unpack_row(uint8_t* v, const uint32_t* words, int64_t n) {
  for (int64_t c = 0; c < n / kPack; ++c)
    for (int j = 0; j < kPack; ++j) v[c * kPack + j] = uint8_t((words[c] >> (4 * kAwqSlot[j])) & 15u);
}

}  // namespace

std::string awq_scheme_problem(const QuantScheme& s) {
  if (s.is_fp())
    return cat(data_type_name(s.data_type), " weights are floating point; AWQ stores 4-bit integer weights only");
  if (s.gguf_target()) return "a GGUF block type cannot be AWQ-packed";
  if (s.bits != 4) return cat(s.bits, "-bit weights cannot be AWQ-packed (AutoAWQ's GEMM layout is 4-bit only)");
  return {};
}

AwqPacked pack_awq(const QuantizedWeight& q) {
  const std::string sp = awq_scheme_problem(q.scheme);
  AR_CHECK(sp.empty(), "pack_awq: ", sp);
  const std::string problem = packed_shape_problem(q.scheme, q.in, q.out);
  AR_CHECK(problem.empty(), "pack_awq: ", problem);
  AR_CHECK(q.sizes_match(), "pack_awq: QuantizedWeight sizes do not match its shape");
  const int64_t in = q.in, out = q.out, ng = q.n_groups, wc = out / kPack;
  AwqPacked p;
  p.qweight = Buffer(size_t(in * wc) * 4, "qweight");
  p.qzeros = Buffer(size_t(ng * wc) * 4, "qzeros");
  p.scales = Buffer(size_t(ng * out) * 2, "scales");
  // qweight row i is input i across all outputs: gather column i of the (out, in) codes in tiles
  // of input rows, so the reads of q.codes stay sequential per output.
  constexpr int64_t kRows = 64;
  std::vector<uint8_t> tile(static_cast<size_t>(kRows * out));
  uint32_t* qw = p.qweight.as<uint32_t>();
  for (int64_t i0 = 0; i0 < in; i0 += kRows) {
    const int64_t n = std::min(kRows, in - i0);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t r = 0; r < n; ++r) tile[size_t(r * out + o)] = q.codes[size_t(o * in + i0 + r)];
    for (int64_t r = 0; r < n; ++r) awq_pack_row(qw + (i0 + r) * wc, tile.data() + r * out, out);
  }
  std::vector<uint8_t> zrow(static_cast<size_t>(out));
  uint16_t* sc = p.scales.as<uint16_t>();
  for (int64_t g = 0; g < ng; ++g) {
    for (int64_t o = 0; o < out; ++o) {
      zrow[size_t(o)] = q.zeros[size_t(o * ng + g)];
      sc[g * out + o] = q.scales[size_t(o * ng + g)];
    }
    awq_pack_row(p.qzeros.as<uint32_t>() + g * wc, zrow.data(), out);
  }
  return p;
}

QuantizedWeight unpack_awq(const uint32_t* qweight, const uint32_t* qzeros, const uint16_t* scales,
                           const QuantScheme& s, int64_t in, int64_t out) {
  AR_CHECK(awq_scheme_problem(s).empty() && out % kPack == 0, "unpack_awq: ", scheme_label(s), " out ", out);
  QuantizedWeight q = QuantizedWeight::allocate(s, out, in);
  const int64_t ng = q.n_groups, wc = out / kPack;
  std::vector<uint8_t> row(static_cast<size_t>(out));
  for (int64_t i = 0; i < in; ++i) {
    awq_unpack_row(row.data(), qweight + i * wc, out);
    for (int64_t o = 0; o < out; ++o) q.codes[size_t(o * in + i)] = row[size_t(o)];
  }
  for (int64_t g = 0; g < ng; ++g) {
    awq_unpack_row(row.data(), qzeros + g * wc, out);
    for (int64_t o = 0; o < out; ++o) {
      q.zeros[size_t(o * ng + g)] = row[size_t(o)];
      q.scales[size_t(o * ng + g)] = scales[g * out + o];
    }
  }
  return q;
}

std::vector<TensorSpec> awq_tensor_specs(const std::string& linear, const QuantScheme& s, int64_t in, int64_t out) {
  const int64_t ng = num_groups(s, in);
  return {{linear + ".qweight", DType::I32, {in, out / kPack}},
          {linear + ".qzeros", DType::I32, {ng, out / kPack}},
          {linear + ".scales", DType::F16, {ng, out}}};
}

}  // namespace ar
