// Reading GPTQ-packed linears back: hand-built qweight/qzeros/scales dequantize to hand-computed
// weights; quantization_config parsing (extra_config, gptq_v2, unsupported methods); malformed
// tensors give errors naming the tensor and shapes; load_block dequantizes packed layers.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/packed_linear.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace ar {
namespace {

// A 32 (in) x 32 (out) 4-bit layer with two groups of 16: codes[o][i] = (i + o) % 16, zero 8 (sym)
// for group 0 and zero (o % 15) + 1 for group 1, scale (g + 1) * 0.5.
struct Layer {
  static constexpr int64_t in = 32, out = 32, group = 16;
  std::vector<uint32_t> qweight = std::vector<uint32_t>(4 * 32);  // [in*4/32, out]
  std::vector<uint32_t> qzeros = std::vector<uint32_t>(2 * 4);    // [2, out*4/32]
  std::vector<uint16_t> scales = std::vector<uint16_t>(2 * 32);   // [2, out]
  std::vector<float> expected = std::vector<float>(32 * 32);      // (out, in)
  Layer() {
    for (int64_t o = 0; o < out; ++o) {
      uint8_t codes[32];
      for (int64_t i = 0; i < in; ++i) codes[i] = uint8_t((i + o) % 16);
      uint32_t words[4];
      gptq_pack_values(words, codes, in, 4);
      for (int r = 0; r < 4; ++r) qweight[size_t(r * out + o)] = words[r];
    }
    for (int g = 0; g < 2; ++g) {
      uint8_t z[32];
      for (int64_t o = 0; o < out; ++o) {
        const int zero = g == 0 ? 8 : int(o % 15) + 1;
        z[o] = uint8_t(zero - 1);  // GPTQ v1
        scales[size_t(g * out + o)] = f32_to_f16(0.5f * float(g + 1));
        for (int64_t i = g * group; i < (g + 1) * group; ++i)
          expected[size_t(o * in + i)] = 0.5f * float(g + 1) * float(int((i + o) % 16) - zero);
      }
      gptq_pack_values(qzeros.data() + g * 4, z, out, 4);
    }
  }
};

json quant_config(int group = 16) {
  return {{"quant_method", "auto-round"}, {"packing_format", "auto_round:auto_gptq"}, {"bits", 4},
          {"group_size", group}, {"sym", true}, {"data_type", "int"}};
}

class PackedLinearTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::make_temp_dir("packed_linear"); }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  // Writes one file with the layer "L" (possibly altered) and returns a reader on it.
  SafetensorsReader write(const Layer& l, std::vector<TensorSpec> specs = {}) {
    if (specs.empty())
      specs = {{"L.qweight", DType::I32, {4, 32}}, {"L.qzeros", DType::I32, {2, 4}}, {"L.scales", DType::F16, {2, 32}}};
    SafetensorsWriter w(dir_ / "model.safetensors", specs);
    for (const TensorSpec& s : specs) {
      const void* p = s.name == "L.qweight" ? static_cast<const void*>(l.qweight.data())
                      : s.name == "L.qzeros" ? static_cast<const void*>(l.qzeros.data())
                                             : static_cast<const void*>(l.scales.data());
      std::vector<uint8_t> bytes(s.size_bytes(), 0);
      const size_t have = s.name == "L.qweight" ? l.qweight.size() * 4
                          : s.name == "L.qzeros" ? l.qzeros.size() * 4
                                                 : l.scales.size() * 2;
      std::memcpy(bytes.data(), p, std::min(have, bytes.size()));
      w.write(s.name, bytes.data(), bytes.size());
    }
    w.finish();
    return SafetensorsReader::open(dir_ / "model.safetensors");
  }
  fs::path dir_;
};

TEST_F(PackedLinearTest, DequantizesHandBuiltLayer) {
  Layer l;
  SafetensorsReader st = write(l);
  const PackedQuantConfig qc = parse_packed_quant_config(quant_config().dump(), "config.json");
  std::vector<float> w(32 * 32);
  load_packed_linear_weight(w.data(), st, qc, "L", 32, 32);
  for (size_t k = 0; k < w.size(); ++k) ASSERT_EQ(w[k], l.expected[k]) << k;
  EXPECT_TRUE(has_packed_linear(st, "L"));
  EXPECT_FALSE(has_packed_linear(st, "M"));
}

TEST_F(PackedLinearTest, PlainAutoRoundPackingStoresZerosAsTheyAre) {
  // The layout the Python AutoRound writes for asymmetric int schemes: packing_format "auto_round",
  // the GPTQ qweight layout with each zero stored as it is (no "- 1"), no g_idx. Rebuild the hand
  // layer's qzeros that way: reading it with the v1 rule would shift every group by one step.
  Layer l;
  for (int g = 0; g < 2; ++g) {
    uint8_t z[32];
    for (int64_t o = 0; o < Layer::out; ++o) z[o] = uint8_t(g == 0 ? 8 : int(o % 15) + 1);
    gptq_pack_values(l.qzeros.data() + g * 4, z, Layer::out, 4);
  }
  SafetensorsReader st = write(l);
  json c = quant_config();
  c["packing_format"] = "auto_round";
  c["sym"] = false;
  const PackedQuantConfig qc = parse_packed_quant_config(c.dump(), "config.json");
  EXPECT_FALSE(qc.zeros_minus_one);
  std::vector<float> w(32 * 32);
  load_packed_linear_weight(w.data(), st, qc, "L", 32, 32);
  for (size_t k = 0; k < w.size(); ++k) ASSERT_EQ(w[k], l.expected[k]) << k;
  // Other packings without "gptq" in their name stay refused.
  c["packing_format"] = "auto_round:llm_compressor";
  EXPECT_THROW(parse_packed_quant_config(c.dump(), "config.json"), Error);
}

TEST_F(PackedLinearTest, AwqPackingAsAutoRoundWritesIt) {
  // packing_format "auto_round:auto_awq" (AutoRound's 4-bit asymmetric auto_round files): AutoAWQ's
  // GEMM layout. qweight int32 (in, out/8): nibble k of word c holds output column 8c + order[k],
  // order = {0, 2, 4, 6, 1, 3, 5, 7}; qzeros (n_groups, out/8) the same, zeros stored as they are;
  // scales (n_groups, out). Same weights as the hand-built GPTQ layer.
  const Layer ref;
  constexpr int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  constexpr int64_t in = 32, out = 32, group = 16, wc = out / 8;
  std::vector<uint32_t> qweight(size_t(in * wc), 0), qzeros(size_t(2 * wc), 0);
  for (int64_t i = 0; i < in; ++i)
    for (int64_t c = 0; c < wc; ++c)
      for (int k = 0; k < 8; ++k) {
        const int64_t o = 8 * c + order[k];
        qweight[size_t(i * wc + c)] |= uint32_t((i + o) % 16) << (4 * k);
      }
  for (int64_t g = 0; g < 2; ++g)
    for (int64_t c = 0; c < wc; ++c)
      for (int k = 0; k < 8; ++k) {
        const int64_t o = 8 * c + order[k];
        qzeros[size_t(g * wc + c)] |= uint32_t(g == 0 ? 8 : int(o % 15) + 1) << (4 * k);
      }
  const std::vector<TensorSpec> specs = {{"L.qweight", DType::I32, {in, wc}}, {"L.qzeros", DType::I32, {2, wc}},
                                         {"L.scales", DType::F16, {2, out}}};
  {
    SafetensorsWriter w(dir_ / "model.safetensors", specs);
    w.write("L.qweight", qweight.data(), qweight.size() * 4);
    w.write("L.qzeros", qzeros.data(), qzeros.size() * 4);
    w.write("L.scales", ref.scales.data(), ref.scales.size() * 2);
    w.finish();
  }
  SafetensorsReader st = SafetensorsReader::open(dir_ / "model.safetensors");
  json c = quant_config(int(group));
  c["packing_format"] = "auto_round:auto_awq";
  c["sym"] = false;
  const PackedQuantConfig qc = parse_packed_quant_config(c.dump(), "config.json");
  ASSERT_TRUE(qc.awq);
  std::vector<float> w(size_t(in * out));
  load_packed_linear_weight(w.data(), st, qc, "L", in, out);
  for (size_t k = 0; k < w.size(); ++k) ASSERT_EQ(w[k], ref.expected[k]) << k;
  // A GPTQ-shaped qweight under the AWQ config is refused with the shapes named.
  SafetensorsReader gptq = write(ref);
  EXPECT_THROW(load_packed_linear_weight(w.data(), gptq, qc, "L", in, out), Error);
}

TEST_F(PackedLinearTest, ConfigJsonBesideTheWeights) {
  Layer l;
  SafetensorsReader st = write(l);
  json cfg = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 32},
              {"intermediate_size", 32}, {"num_hidden_layers", 1}, {"num_attention_heads", 4},
              {"num_key_value_heads", 4}, {"vocab_size", 16}, {"quantization_config", quant_config()}};
  std::ofstream(dir_ / "config.json") << cfg.dump();
  std::vector<float> w(32 * 32);
  load_packed_linear_weight(w.data(), st, "L", 32, 32);
  EXPECT_EQ(w, l.expected);
}

TEST_F(PackedLinearTest, MalformedTensorsNameTensorAndShapes) {
  Layer l;
  const PackedQuantConfig qc = parse_packed_quant_config(quant_config().dump(), "config.json");
  std::vector<float> w(32 * 32);
  {
    SafetensorsReader st = write(
        l, {{"L.qweight", DType::I32, {3, 32}}, {"L.qzeros", DType::I32, {2, 4}}, {"L.scales", DType::F16, {2, 32}}});
    try {
      load_packed_linear_weight(w.data(), st, qc, "L", 32, 32);
      FAIL();
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("'L.qweight'"), std::string::npos) << m;
      EXPECT_NE(m.find("[3, 32]"), std::string::npos) << m;
      EXPECT_NE(m.find("[4, 32]"), std::string::npos) << m;
    }
  }
  {
    SafetensorsReader st = write(
        l, {{"L.qweight", DType::I32, {4, 32}}, {"L.qzeros", DType::F32, {2, 4}}, {"L.scales", DType::F16, {2, 32}}});
    EXPECT_THROW(load_packed_linear_weight(w.data(), st, qc, "L", 32, 32), Error);
  }
  {
    SafetensorsReader st = write(
        l, {{"L.qweight", DType::I32, {4, 32}}, {"L.qzeros", DType::I32, {2, 4}}, {"L.scales", DType::F16, {1, 32}}});
    EXPECT_THROW(load_packed_linear_weight(w.data(), st, qc, "L", 32, 32), Error);
  }
  {
    SafetensorsReader st = write(l, {{"L.qweight", DType::I32, {4, 32}}, {"L.scales", DType::F16, {2, 32}}});
    EXPECT_THROW(load_packed_linear_weight(w.data(), st, qc, "L", 32, 32), Error);  // no qzeros
  }
}

TEST_F(PackedLinearTest, GidxOutOfRangeIsAnError) {
  Layer l;
  std::vector<TensorSpec> specs = {{"L.qweight", DType::I32, {4, 32}}, {"L.qzeros", DType::I32, {2, 4}},
                                   {"L.scales", DType::F16, {2, 32}}, {"L.g_idx", DType::I32, {32}}};
  {
    SafetensorsWriter w(dir_ / "model.safetensors", specs);
    w.write("L.qweight", l.qweight.data(), l.qweight.size() * 4);
    w.write("L.qzeros", l.qzeros.data(), l.qzeros.size() * 4);
    w.write("L.scales", l.scales.data(), l.scales.size() * 2);
    std::vector<int32_t> gi(32, 0);
    gi[7] = 2;  // only groups 0 and 1 exist
    w.write("L.g_idx", gi.data(), gi.size() * 4);
    w.finish();
  }
  SafetensorsReader st = SafetensorsReader::open(dir_ / "model.safetensors");
  const PackedQuantConfig qc = parse_packed_quant_config(quant_config().dump(), "config.json");
  std::vector<float> w(32 * 32);
  EXPECT_THROW(load_packed_linear_weight(w.data(), st, qc, "L", 32, 32), Error);
}

TEST(PackedQuantConfig, ParsesOverridesAndFormats) {
  json j = quant_config(128);
  j["extra_config"] = {{"model.layers.0.mlp.down_proj", {{"bits", 8}}},
                       {"model.layers.1.self_attn.q_proj", {{"bits", 16}, {"data_type", "float"}}},
                       {".*k_proj", {{"group_size", 32}}}};
  const PackedQuantConfig qc = parse_packed_quant_config(j.dump(), "c.json");
  EXPECT_TRUE(qc.zeros_minus_one);
  EXPECT_EQ(qc.scheme_for("model.layers.0.mlp.down_proj").bits, 8);
  EXPECT_EQ(qc.scheme_for("model.layers.0.mlp.down_proj").group_size, 128);
  EXPECT_EQ(qc.scheme_for("model.layers.1.self_attn.q_proj").bits, 16);
  EXPECT_EQ(qc.scheme_for("model.layers.3.self_attn.k_proj").group_size, 32);
  EXPECT_EQ(qc.scheme_for("model.layers.3.self_attn.q_proj").bits, 4);

  json g = {{"quant_method", "gptq"}, {"bits", 3}, {"group_size", 64}, {"desc_act", false},
            {"checkpoint_format", "gptq_v2"}, {"dynamic", {{"-:.*down_proj", json::object()}}}};
  const PackedQuantConfig gq = parse_packed_quant_config(g.dump(), "c.json");
  EXPECT_FALSE(gq.zeros_minus_one);
  EXPECT_TRUE(gq.scheme.sym);  // GPTQ's default
  EXPECT_EQ(gq.scheme_for("model.layers.2.mlp.down_proj").bits, 16);
  EXPECT_EQ(gq.scheme_for("model.layers.2.mlp.up_proj").bits, 3);

  // AutoAWQ / auto_awq checkpoints: the GEMM layout (also AutoAWQ's own w_bit / q_group_size spelling).
  const PackedQuantConfig aq = parse_packed_quant_config(R"({"quant_method": "awq", "bits": 4, "group_size": 64, "version": "gemm"})", "c.json");
  EXPECT_TRUE(aq.awq);
  EXPECT_FALSE(aq.zeros_minus_one);
  EXPECT_EQ(aq.scheme.group_size, 64);
  EXPECT_EQ(parse_packed_quant_config(R"({"quant_method": "awq", "w_bit": 4, "q_group_size": 32})", "c.json").scheme.group_size, 32);
  EXPECT_THROW(parse_packed_quant_config(R"({"quant_method": "awq", "bits": 4, "version": "gemv"})", "c.json"), Error);
  EXPECT_TRUE(parse_packed_quant_config(R"({"quant_method": "auto-round", "packing_format": "auto_round:auto_awq", "bits": 4})", "c.json").awq);
  EXPECT_THROW(parse_packed_quant_config(R"({"quant_method": "gptq", "bits": 5})", "c.json"), Error);
  EXPECT_THROW(parse_packed_quant_config(R"({"quant_method": "gptq"})", "c.json"), Error);
  EXPECT_THROW(parse_packed_quant_config("{not json", "c.json"), Error);
}

TEST(GptqBitStream, ThreeBitsStraddleWords) {
  // Value 5 (0b101) at index 10 puts bits 0..1 at the top of word 0 and bit 2 at the bottom of word 1.
  uint8_t v[32] = {};
  v[10] = 5;
  uint32_t w[3];
  gptq_pack_values(w, v, 32, 3);
  EXPECT_EQ(w[0], 0x40000000u);
  EXPECT_EQ(w[1], 0x00000001u);
  EXPECT_EQ(w[2], 0u);
  uint8_t back[32];
  gptq_unpack_values(back, w, 32, 3);
  EXPECT_EQ(back[10], 5);
}

}  // namespace
}  // namespace ar
