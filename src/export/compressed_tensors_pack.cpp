// QuantizedWeight -> compressed-tensors tensors (llm_compressor format). Layouts: see
// model/compressed_tensors_linear.h; our integer codes are already compressed-tensors' stored
// (unsigned) values, and our FP element and scale codes are its bytes.
#include "export/compressed_tensors_pack.h"

#include <cstring>

#include "core/error.h"
#include "model/compressed_tensors_linear.h"

namespace ar {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

Buffer bytes_of(const void* p, size_t n, const std::string& name) {
  Buffer b(n, name);
  if (n) std::memcpy(b.data(), p, n);
  return b;
}

// Two FP4 codes per byte, element 2k in the low nibble.
Buffer pack_fp4(const QuantizedWeight& q, const std::string& name) {
  const int64_t half = q.in / 2;
  Buffer b(static_cast<size_t>(q.out * half), name);
  uint8_t* d = b.as<uint8_t>();
  const uint8_t* c = q.codes.data();
  for (int64_t k = 0; k < q.out * half; ++k) d[k] = uint8_t((c[2 * k] & 15u) | (c[2 * k + 1] & 15u) << 4);
  return b;
}

}  // namespace

const char* ct_format_name(const QuantScheme& s) {
  switch (s.data_type) {
    case DataType::Int: return "pack-quantized";
    case DataType::NVFP4: return "nvfp4-pack-quantized";
    case DataType::MXFP4: return "mxfp4-pack-quantized";
    case DataType::MXFP8: return "mxfp8-quantized";
    case DataType::FP8: return "naive-quantized";
    case DataType::FP8Block: return "float-quantized";
  }
  return "?";
}

std::string ct_scheme_problem(const QuantScheme& s) {
  if (!s.quantized()) return {};
  if (s.gguf_target()) return cat("a GGUF block type (", scheme_label(s), ") is stored by --format gguf:<mix> only");
  if (s.data_type == DataType::Int && (s.bits < 1 || s.bits > 8))
    return cat(s.bits, "-bit integers (pack-quantized holds 1 to 8 bits)");
  if (s.is_fp() && !s.sym) return "asymmetric floating-point weights";
  return {};
}

std::string ct_shape_problem(const QuantScheme& s, int64_t in, int64_t out) {
  (void)out;  // pack-quantized pads each row's and each zero-point column's bit stream
  if (s.data_type == DataType::FP8 || s.data_type == DataType::FP8Block) return {};  // blocks may be ragged
  if (s.group_size > 0 && in % s.group_size != 0)
    return cat("in_features ", in, " is not a multiple of the group size ", s.group_size,
               " (compressed-tensors groups must divide the row)");
  return {};
}

std::vector<TensorSpec> ct_tensor_specs(const std::string& linear, const QuantScheme& s, int64_t in, int64_t out) {
  const int64_t n_groups = num_groups(s, in);
  const std::string L = linear + ".";
  switch (s.data_type) {
    case DataType::Int: {
      std::vector<TensorSpec> v = {{L + "weight_packed", DType::I32, {out, ct_packed_words(s.bits, in)}},
                                   {L + "weight_scale", DType::F16, {out, n_groups}},
                                   {L + "weight_shape", DType::I64, {2}}};
      if (!s.sym) v.push_back({L + "weight_zero_point", DType::I32, {ct_packed_words(s.bits, out), n_groups}});
      return v;
    }
    case DataType::NVFP4:
      return {{L + "weight_global_scale", DType::F32, {1}},
              {L + "weight_packed", DType::U8, {out, in / 2}},
              {L + "weight_scale", DType::F8_E4M3, {out, n_groups}}};
    case DataType::MXFP4:
      return {{L + "weight_packed", DType::U8, {out, in / 2}}, {L + "weight_scale", DType::U8, {out, n_groups}}};
    case DataType::MXFP8:
      return {{L + "weight", DType::F8_E4M3, {out, in}}, {L + "weight_scale", DType::U8, {out, n_groups}}};
    case DataType::FP8:
      return {{L + "weight", DType::F8_E4M3, {out, in}}, {L + "weight_scale", DType::F32, {out, 1}}};
    case DataType::FP8Block:
      return {{L + "weight", DType::F8_E4M3, {out, in}},
              {L + "weight_scale", DType::F32, {ceil_div(out, kFp8BlockSize), n_groups}}};
  }
  return {};
}

std::vector<Buffer> ct_pack(const QuantizedWeight& q) {
  const QuantScheme& s = q.scheme;
  AR_CHECK(q.sizes_match(), "ct_pack: QuantizedWeight sizes do not match its shape");
  AR_CHECK(ct_scheme_problem(s).empty() && ct_shape_problem(s, q.in, q.out).empty(), "ct_pack: ", scheme_label(s),
           " (", q.out, ", ", q.in, ") cannot be stored: ", ct_scheme_problem(s), ct_shape_problem(s, q.in, q.out));
  std::vector<Buffer> r;
  switch (s.data_type) {
    case DataType::Int: {
      const int b = s.bits;
      const int64_t row_words = ct_packed_words(b, q.in);
      Buffer packed(static_cast<size_t>(q.out * row_words) * 4, "weight_packed");
      for (int64_t o = 0; o < q.out; ++o)
        ct_pack_bits(packed.as<uint32_t>() + o * row_words, q.codes.data() + o * q.in, q.in, b);
      r.push_back(std::move(packed));
      r.push_back(bytes_of(q.scales.data(), q.scales.size() * 2, "weight_scale"));  // fp16 bits, (out, n_groups)
      const int64_t shape[2] = {q.out, q.in};
      r.push_back(bytes_of(shape, sizeof shape, "weight_shape"));
      if (s.sym) {
        for (uint8_t z : q.zeros) AR_CHECK(z == (1u << (b - 1)), "ct_pack: symmetric zero point ", int(z));
      } else {
        // Column g of (out, n_groups) zeros as one bit stream, stored down column g.
        const int64_t zw = ct_packed_words(b, q.out);
        Buffer zp(static_cast<size_t>(zw * q.n_groups) * 4, "weight_zero_point");
        std::vector<uint8_t> col(static_cast<size_t>(q.out));
        std::vector<uint32_t> words(static_cast<size_t>(zw));
        for (int64_t g = 0; g < q.n_groups; ++g) {
          for (int64_t o = 0; o < q.out; ++o) col[size_t(o)] = q.zeros[size_t(o * q.n_groups + g)];
          ct_pack_bits(words.data(), col.data(), q.out, b);
          for (int64_t k = 0; k < zw; ++k) zp.as<uint32_t>()[k * q.n_groups + g] = words[size_t(k)];
        }
        r.push_back(std::move(zp));
      }
      break;
    }
    case DataType::NVFP4:
      r.push_back(bytes_of(&q.global_scale, 4, "weight_global_scale"));
      r.push_back(pack_fp4(q, "weight_packed"));
      r.push_back(bytes_of(q.scale_codes.data(), q.scale_codes.size(), "weight_scale"));
      break;
    case DataType::MXFP4:
      r.push_back(pack_fp4(q, "weight_packed"));
      r.push_back(bytes_of(q.scale_codes.data(), q.scale_codes.size(), "weight_scale"));
      break;
    case DataType::MXFP8:
      r.push_back(bytes_of(q.codes.data(), q.codes.size(), "weight"));
      r.push_back(bytes_of(q.scale_codes.data(), q.scale_codes.size(), "weight_scale"));
      break;
    case DataType::FP8:
    case DataType::FP8Block:
      r.push_back(bytes_of(q.codes.data(), q.codes.size(), "weight"));
      r.push_back(bytes_of(q.scales_f32.data(), q.scales_f32.size() * 4, "weight_scale"));
      break;
  }
  return r;
}

}  // namespace ar
