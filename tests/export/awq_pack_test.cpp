// auto_awq packing (issue 19): AutoAWQ's GEMM nibble order against hand-worked words, the symmetric
// zero of 8 as AutoRound stores it (0x88888888), pack -> unpack round trips, which schemes the
// format refuses, and its quantization_config fields as AutoRound 0.16.1 writes them.
#include <gtest/gtest.h>

#include <random>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "export/awq_pack.h"
#include "export/format_configs.h"
#include "export/output_format.h"
#include "quant/rtn.h"

using nlohmann::json;

namespace ar {
namespace {

// out 32, in 64, group 32, asymmetric: codes[o, i] = (o + i) % 16, zeros[o, g] = (o + 3g) % 16,
// scales[o, g] = fp16(0.25 (o + 1)) (negative for odd g, as symmetric full-range scales can be).
QuantizedWeight hand_layer() {
  QuantizedWeight q = QuantizedWeight::allocate({4, 32, false}, 32, 64);
  for (int64_t o = 0; o < 32; ++o) {
    for (int64_t i = 0; i < 64; ++i) q.codes[size_t(o * 64 + i)] = uint8_t((o + i) % 16);
    for (int64_t g = 0; g < 2; ++g) {
      q.zeros[size_t(o * 2 + g)] = uint8_t((o + 3 * g) % 16);
      q.scales[size_t(o * 2 + g)] = f32_to_f16((g % 2 ? -0.25f : 0.25f) * float(o + 1));
    }
  }
  return q;
}

TEST(AwqPack, NibbleOrderIsAutoAwqs) {
  const QuantizedWeight q = hand_layer();
  const AwqPacked p = pack_awq(q);
  ASSERT_EQ(p.qweight.size_bytes(), size_t(64 * 4 * 4));  // [in 64, out/8 = 4] int32
  ASSERT_EQ(p.qzeros.size_bytes(), size_t(2 * 4 * 4));    // [2 groups, 4]
  ASSERT_EQ(p.scales.size_bytes(), size_t(2 * 32 * 2));   // [2, 32] fp16
  const uint32_t* qw = p.qweight.as<uint32_t>();
  // Word (i, c) holds outputs 8c..8c+7; nibbles from low to high: outputs +0, +2, +4, +6, +1, +3, +5, +7.
  // i = 0, c = 0: codes 0..7 -> nibbles 0 2 4 6 1 3 5 7.
  EXPECT_EQ(qw[0 * 4 + 0], 0x75316420u);
  // i = 1, c = 0: codes 1..8 -> nibbles 1 3 5 7 2 4 6 8.
  EXPECT_EQ(qw[1 * 4 + 0], 0x86427531u);
  // i = 0, c = 1: outputs 8..15, codes 8..15 -> nibbles 8 a c e 9 b d f.
  EXPECT_EQ(qw[0 * 4 + 1], 0xfdb9eca8u);
  // i = 9, c = 0: codes 9..15, 0 (wraps) -> nibbles 9 b d f a c e 0.
  EXPECT_EQ(qw[9 * 4 + 0], 0x0ecafdb9u);
  // qzeros (g, c) packed the same way: g = 1, c = 0: zeros 3..10 -> nibbles 3 5 7 9 4 6 8 a.
  EXPECT_EQ(p.qzeros.as<uint32_t>()[1 * 4 + 0], 0xa8649753u);
  // scales transposed to (n_groups, out).
  EXPECT_EQ(p.scales.as<uint16_t>()[1 * 32 + 5], f32_to_f16(-0.25f * 6));
  EXPECT_EQ(p.scales.as<uint16_t>()[0 * 32 + 31], f32_to_f16(0.25f * 32));
}

TEST(AwqPack, SymmetricZerosAreEightsAsAutoRoundWritesThem) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> w(64 * 128);
  for (float& x : w) x = nd(rng);
  const QuantizedWeight q = quantize_rtn(w.data(), 64, 128, {4, 128, true});
  const AwqPacked p = pack_awq(q);
  for (int64_t k = 0; k < 8; ++k) EXPECT_EQ(p.qzeros.as<uint32_t>()[k], 0x88888888u);  // int32 -2004318072
}

TEST(AwqPack, RoundTripIsExact) {
  for (bool sym : {true, false})
    for (int64_t group : {32, 128, -1}) {
      SCOPED_TRACE(cat("sym ", sym, " group ", group));
      std::mt19937 rng(uint32_t(group + 7 * sym));
      std::normal_distribution<float> nd(0.f, 0.05f);
      std::vector<float> w(96 * 256);
      for (float& x : w) x = nd(rng);
      const QuantScheme s{4, group, sym};
      const QuantizedWeight q = quantize_rtn(w.data(), 96, 256, s);
      const AwqPacked p = pack_awq(q);
      const QuantizedWeight b = unpack_awq(p.qweight.as<uint32_t>(), p.qzeros.as<uint32_t>(), p.scales.as<uint16_t>(), s,
                                           256, 96);
      EXPECT_EQ(b.codes, q.codes);
      EXPECT_EQ(b.zeros, q.zeros);
      EXPECT_EQ(b.scales, q.scales);
      const std::vector<TensorSpec> specs = awq_tensor_specs("L", s, 256, 96);
      ASSERT_EQ(specs.size(), size_t(3));
      EXPECT_EQ(specs[0].shape, (std::vector<int64_t>{256, 12}));
      EXPECT_EQ(specs[1].shape, (std::vector<int64_t>{q.n_groups, 12}));
      EXPECT_EQ(specs[2].dtype, DType::F16);
      EXPECT_EQ(specs[0].size_bytes(), p.qweight.size_bytes());
      EXPECT_EQ(specs[1].size_bytes(), p.qzeros.size_bytes());
    }
}

TEST(AwqPack, OnlyFourBitIntegerSchemes) {
  EXPECT_TRUE(awq_scheme_problem({4, 128, true}).empty());
  EXPECT_TRUE(awq_scheme_problem({4, 32, false}).empty());
  EXPECT_NE(awq_scheme_problem({2, 64, false}).find("4-bit only"), std::string::npos);
  EXPECT_NE(awq_scheme_problem({8, 128, true}).find("4-bit only"), std::string::npos);
  EXPECT_NE(awq_scheme_problem(fp_scheme(DataType::MXFP4)).find("MXFP4"), std::string::npos);
  EXPECT_NE(format_scheme_problem(OutputFormat::AutoAwq, fp_scheme(DataType::NVFP4)), "");
  EXPECT_EQ(format_scheme_problem(OutputFormat::AutoRound, fp_scheme(DataType::NVFP4)), "");
  EXPECT_NE(format_scheme_problem(OutputFormat::AutoGptq, fp_scheme(DataType::FP8)), "");
  EXPECT_EQ(parse_output_format("awq"), OutputFormat::AutoAwq);
  EXPECT_EQ(output_format_name(parse_output_format("auto_awq")), "auto_awq");
}

TEST(AwqConfig, FieldsAsAutoRoundWritesThem) {
  const std::vector<StoredLinear> ls = {{"model.layers.0.self_attn.q_proj", {4, 128, false}},
                                        {"model.layers.0.mlp.down_proj", {16, 128, true}},
                                        {"model.layers.1.self_attn.q_proj", {4, 128, false}}};
  const json q = make_awq_quantization_config(ls, json{{"iters", 0}});
  EXPECT_EQ(q["quant_method"], "awq");
  EXPECT_EQ(q["version"], "gemm");
  EXPECT_EQ(q["bits"], 4);
  EXPECT_EQ(q["group_size"], 128);
  EXPECT_EQ(q["sym"], false);
  EXPECT_EQ(q["zero_point"], true);
  EXPECT_EQ(q["data_type"], "int");
  EXPECT_EQ(q["to_quant_block_names"], "model.layers");
  EXPECT_EQ(q["modules_to_not_convert"], (json{"lm_head", "model.layers.0.mlp.down_proj"}));
  EXPECT_EQ(q["iters"], 0);
  const json s = make_awq_quantization_config({{"a", {4, 32, true}}}, json::object());
  EXPECT_EQ(s["zero_point"], false);
  EXPECT_EQ(s["group_size"], 32);
  // No per-layer schemes in AWQ: a second scheme is refused, naming the layer.
  try {
    make_awq_quantization_config({{"a", {4, 128, true}}, {"b", {4, 128, true}}, {"c", {4, 32, true}}}, json::object());
    FAIL() << "mixed schemes accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 'c' is W4G32 sym"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ar
