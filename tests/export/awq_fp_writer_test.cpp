// auto_awq and auto_round floating-point folders (issue 19) written by QuantizedModelWriter on a tiny
// synthetic Llama (hidden 64, intermediate 176: not a multiple of 32) and read back through the
// Decoder: every linear's weight equals the QuantizedWeight's dequantization bit for bit (what the
// fake format holds); tensor names, dtypes and shapes as AutoRound writes them; config fields;
// hand-worked FP4 nibble order; malformed files give errors naming the file.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "export/format_configs.h"
#include "export/quantized_writer.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/decoder.h"
#include "model/fp_packed_linear.h"
#include "model/packed_linear.h"
#include "model/weights.h"
#include "quant/fp_formats.h"
#include "quant/fp_quantize.h"
#include "quant/rtn.h"
#include "support/fixtures.h"
#include "support/tensors.h"
#include "support/tiny_llama.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace ar {
namespace {

using test::read_f32;

constexpr int64_t kC = 64, kF = 176, kLayers = 2, kVocab = 96, kHeads = 8, kKv = 4, kD = 8;

fs::path make_tiny_model(const fs::path& dir) {
  return test::write_tiny_llama(dir, test::TinyLlama{kC, kF, kLayers, kVocab, kHeads, kKv, kD, 7, false});
}

QuantizedWeight quantize(const std::vector<float>& w, int64_t out, int64_t in, const QuantScheme& s,
                         const std::string& name) {
  return s.is_fp() ? quantize_fp(w.data(), out, in, s, name) : quantize_rtn(w.data(), out, in, s);
}

class AwqFpWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = test::make_temp_dir("awq_fp_writer");
    src_dir_ = make_tiny_model(root_ / "src");
    src_ = std::make_unique<SafetensorsReader>(SafetensorsReader::open(src_dir_));
    cfg_ = load_model_config(src_dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(root_);
  }
  // Writes `f` with `scheme` for every linear; returns what was handed to the writer.
  std::map<std::string, QuantizedWeight> write(OutputFormat f, const fs::path& out,
                                               const std::function<QuantScheme(const std::string&)>& scheme) {
    QuantizedModelWriter w(f, src_dir_, out, *src_, cfg_, scheme, 1ull << 30, false, json{{"iters", 0}});
    std::map<std::string, QuantizedWeight> fed;
    for (const std::string& name : output_tensor_order(*src_)) {
      const TensorInfo& t = src_->require(name);
      const std::string linear = name.substr(0, name.size() - 7);
      if (is_block_linear_weight(name, t.shape) && w.stores_quantized(linear)) {
        QuantizedWeight q = quantize(read_f32(*src_, name), t.shape[0], t.shape[1], scheme(linear), name);
        w.add_quantized(linear, q);
        fed.emplace(linear, std::move(q));
      } else {
        w.add_copy(name);
      }
    }
    w.finish();
    return fed;
  }
  // Every block linear read back by the Decoder equals the dequantized QuantizedWeight (the fake
  // format's weights) or the source copy, bit for bit.
  void expect_reads_back(const fs::path& out, const std::map<std::string, QuantizedWeight>& fed) {
    Decoder dec(out);
    for (int64_t l = 0; l < kLayers; ++l) {
      BlockWeights b = load_block(dec.reader(), dec.config(), l);
      for (int i = 0; i < kDenseLinears; ++i) {
        const LinearWeights& lw = *block_linears(b, i);
        SCOPED_TRACE(lw.name);
        std::vector<float> expect(size_t(lw.in * lw.out));
        auto it = fed.find(lw.name);
        if (it != fed.end()) it->second.dequantize(expect.data());
        else expect = read_f32(*src_, lw.name + ".weight");
        ASSERT_EQ(lw.w.size_bytes(), expect.size() * 4);
        EXPECT_EQ(std::memcmp(lw.w.data(), expect.data(), lw.w.size_bytes()), 0);
      }
    }
  }
  fs::path root_, src_dir_;
  std::unique_ptr<SafetensorsReader> src_;
  ModelConfig cfg_;
};

TEST_F(AwqFpWriterTest, AutoAwqRoundTripIsBitExact) {
  for (bool sym : {false, true}) {
    SCOPED_TRACE(sym ? "sym" : "asym");
    const fs::path out = root_ / (sym ? "awq-sym" : "awq-asym");
    const auto fed = write(OutputFormat::AutoAwq, out, [&](const std::string&) { return QuantScheme{4, 32, sym}; });
    // gate/up (out 176) and down (in 176) are not multiples of 32: kept 16-bit, as AutoRound does.
    EXPECT_EQ(fed.size(), size_t(4 * kLayers));
    const json cfg = json::parse(std::ifstream(out / "config.json"));
    const json& qc = cfg["quantization_config"];
    EXPECT_EQ(qc["quant_method"], "awq");
    EXPECT_EQ(qc["version"], "gemm");
    EXPECT_EQ(qc["zero_point"], !sym);
    EXPECT_EQ(qc["group_size"], 32);
    EXPECT_EQ(qc["modules_to_not_convert"].size(), size_t(1 + 3 * kLayers));
    EXPECT_EQ(cfg["torch_dtype"], "float16");
    const SafetensorsReader st = SafetensorsReader::open(out);
    const TensorInfo& qw = st.require("model.layers.0.self_attn.q_proj.qweight");
    EXPECT_EQ(qw.dtype, DType::I32);
    EXPECT_EQ(qw.shape, (std::vector<int64_t>{kC, kHeads * kD / 8}));  // (in, out/8): packed along the outputs
    EXPECT_EQ(st.require("model.layers.0.self_attn.q_proj.qzeros").shape, (std::vector<int64_t>{2, kHeads * kD / 8}));
    EXPECT_EQ(st.require("model.layers.0.self_attn.q_proj.scales").dtype, DType::F16);
    EXPECT_EQ(st.find("model.layers.0.self_attn.q_proj.g_idx"), nullptr);
    expect_reads_back(out, fed);
  }
}

struct FpCase {
  DataType t;
  const char* data_type;
  int bits;
  std::vector<std::string> tensors;  // of q_proj, with dtype
  std::vector<DType> dtypes;
  size_t quantized;                  // layers stored quantized (of 7 per block)
};

TEST_F(AwqFpWriterTest, AutoRoundFloatingPointRoundTripsAreBitExact) {
  const std::vector<FpCase> cases = {
      {DataType::MXFP4, "mx_fp", 4, {"weight_packed", "weight_scale"}, {DType::U8, DType::U8}, 6},
      {DataType::MXFP8, "mx_fp", 8, {"weight", "weight_scale"}, {DType::F8_E4M3, DType::U8}, 6},
      {DataType::NVFP4, "nv_fp", 4, {"weight_packed", "weight_scale", "weight_global_scale"},
       {DType::U8, DType::F8_E4M3, DType::F32}, 7},
      {DataType::FP8, "fp", 8, {"weight", "weight_scale"}, {DType::F8_E4M3, DType::F32}, 7},
      {DataType::FP8Block, "fp", 8, {"weight", "weight_scale_inv"}, {DType::F8_E4M3, DType::F32}, 7},
  };
  for (const FpCase& c : cases) {
    SCOPED_TRACE(data_type_name(c.t));
    const fs::path out = root_ / data_type_name(c.t);
    const auto fed = write(OutputFormat::AutoRound, out, [&](const std::string&) { return fp_scheme(c.t); });
    // MX blocks of 32 do not divide down_proj's 176 inputs: kept 16-bit (AutoRound's QuantLinear refuses it).
    EXPECT_EQ(fed.size(), c.quantized * kLayers);
    const json qc = json::parse(std::ifstream(out / "config.json"))["quantization_config"];
    EXPECT_EQ(qc["quant_method"], "auto-round");
    EXPECT_EQ(qc["data_type"], c.data_type);
    EXPECT_EQ(qc["bits"], c.bits);
    EXPECT_EQ(qc["sym"], true);
    if (c.t == DataType::MXFP4 || c.t == DataType::MXFP8) {
      EXPECT_EQ(qc["packing_format"], "auto_round:llm_compressor");
      EXPECT_EQ(qc["act_bits"], c.bits);
      EXPECT_EQ(qc["act_data_type"], "mx_fp");
      EXPECT_EQ(qc["extra_config"]["model.layers.1.mlp.down_proj"], (json{{"bits", 16}, {"data_type", "float"}}));
    }
    if (c.t == DataType::NVFP4) {
      EXPECT_EQ(qc["packing_format"], "auto_round:llm_compressor");
      EXPECT_EQ(qc["group_size"], 16);
      EXPECT_FALSE(qc.contains("act_bits"));  // weight-only: no static activation scales computed
    }
    if (c.t == DataType::FP8) {
      EXPECT_EQ(qc["group_size"], -1);
      EXPECT_EQ(qc["fmt"], "e4m3");
      EXPECT_FALSE(qc.contains("packing_format"));  // as AutoRound writes weight-only FP8
    }
    if (c.t == DataType::FP8Block) {
      EXPECT_EQ(qc["group_size"], (json{128, 128}));
      EXPECT_EQ(qc["packing_format"], "auto_round:fp8");
      EXPECT_EQ(qc["weight_block_size"], (json{128, 128}));
      EXPECT_EQ(qc["act_bits"], 8);
    }
    const SafetensorsReader st = SafetensorsReader::open(out);
    for (size_t k = 0; k < c.tensors.size(); ++k)
      EXPECT_EQ(st.require("model.layers.0.self_attn.q_proj." + c.tensors[k]).dtype, c.dtypes[k]) << c.tensors[k];
    if (c.t == DataType::FP8Block) {  // gate_proj (176, 64): 2 x 1 tiles of 128, the last one short
      EXPECT_EQ(st.require("model.layers.0.mlp.gate_proj.weight_scale_inv").shape, (std::vector<int64_t>{2, 1}));
    }
    if (c.t == DataType::MXFP4) {
      EXPECT_EQ(st.require("model.layers.0.mlp.up_proj.weight_packed").shape, (std::vector<int64_t>{kF, kC / 2}));
      EXPECT_EQ(st.require("model.layers.0.mlp.up_proj.weight_scale").shape, (std::vector<int64_t>{kF, kC / 32}));
    }
    expect_reads_back(out, fed);
  }
}

TEST_F(AwqFpWriterTest, MixedSchemesAreRefusedBeforeAnyWork) {
  auto mixed = [](const std::string& n) {
    return n.find("v_proj") != std::string::npos ? fp_scheme(DataType::MXFP8) : QuantScheme{4, 32, true};
  };
  try {
    QuantizedModelWriter w(OutputFormat::AutoRound, src_dir_, root_ / "m", *src_, cfg_, mixed, 1ull << 30, false, json{});
    FAIL() << "integer + FP layers accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot mix integer and floating-point"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("v_proj"), std::string::npos) << e.what();
  }
  try {
    QuantizedModelWriter w(OutputFormat::AutoAwq, src_dir_, root_ / "a", *src_, cfg_,
                           [](const std::string&) { return fp_scheme(DataType::NVFP4); }, 1ull << 30, false, json{});
    FAIL() << "NVFP4 accepted by auto_awq";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("auto_awq cannot store NVFP4"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.layers.0."), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(root_ / "m"));
  EXPECT_FALSE(fs::exists(root_ / "a"));
}

// MXFP4 / NVFP4 pack two E2M1 codes per byte, element 2k in the low nibble (AutoRound's
// _pack_fp4_to_uint8); the E8M0 / E4M3 scales and the global scale are stored as they are.
TEST(AutoRoundFpPack, HandWorkedBytes) {
  QuantizedWeight q = QuantizedWeight::allocate(fp_scheme(DataType::MXFP4), 1, 32);
  for (int i = 0; i < 32; ++i) q.codes[size_t(i)] = uint8_t(i % 16);
  q.scale_codes[0] = 124;  // 2^-3
  std::vector<Buffer> b = pack_autoround_fp(q);
  ASSERT_EQ(b.size(), size_t(2));
  ASSERT_EQ(b[0].size_bytes(), size_t(16));
  EXPECT_EQ(b[0].as<uint8_t>()[0], 0x10);  // codes 0, 1
  EXPECT_EQ(b[0].as<uint8_t>()[1], 0x32);  // codes 2, 3
  EXPECT_EQ(b[0].as<uint8_t>()[7], 0xfe);  // codes 14 (-4), 15 (-6)
  EXPECT_EQ(b[1].as<uint8_t>()[0], 124);

  QuantizedWeight n = QuantizedWeight::allocate(fp_scheme(DataType::NVFP4), 1, 16);
  for (int i = 0; i < 16; ++i) n.codes[size_t(i)] = uint8_t(15 - i);
  n.scale_codes[0] = encode_e4m3(1.5f);
  n.global_scale = 2688.f;
  b = pack_autoround_fp(n);
  ASSERT_EQ(b.size(), size_t(3));  // weight_global_scale, weight_packed, weight_scale
  float gs;
  std::memcpy(&gs, b[0].data(), 4);
  EXPECT_EQ(gs, 2688.f);
  EXPECT_EQ(b[1].as<uint8_t>()[0], 0xef);
  EXPECT_EQ(b[2].as<uint8_t>()[0], 0x3c);  // E4M3 1.5 = 0 0111 100

  QuantizedWeight f = QuantizedWeight::allocate(fp_scheme(DataType::FP8), 2, 4);
  f.codes = {0x38, 0xb8, 0x7e, 0x01, 0, 0x80, 0x40, 0x44};  // 1, -1, 448, 2^-9, 0, -0, 2, 3
  f.scales_f32 = {0.5f, 0.25f};
  b = pack_autoround_fp(f);
  EXPECT_EQ(std::memcmp(b[0].data(), f.codes.data(), 8), 0);
  EXPECT_EQ(b[1].as<float>()[1], 0.25f);
  std::vector<float> w(8);
  f.dequantize(w.data());
  EXPECT_EQ(w, (std::vector<float>{0.5f, -0.5f, 224.f, std::ldexp(1.f, -10), 0.f, -0.f, 0.5f, 0.75f}));
}

// A hand-made safetensors file per failure mode: each error names the file and the tensor.
class FpMalformedTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::make_temp_dir("fp_malformed"); }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  // Writes the tensors (zero bytes, or `fill` for one tensor) as <dir>/<tag>/model.safetensors.
  fs::path file(const std::string& tag, const std::vector<TensorSpec>& specs, const std::string& fill_name = {},
                uint8_t fill = 0) {
    const fs::path d = dir_ / tag;
    fs::create_directories(d);
    SafetensorsWriter w(d / "model.safetensors", specs, {});
    for (const TensorSpec& s : specs) {
      std::vector<uint8_t> v(size_t(s.size_bytes()), s.name == fill_name ? fill : 0);
      if (s.dtype == DType::F32 && s.name != fill_name)
        for (size_t k = 0; k < v.size(); k += 4) std::memcpy(v.data() + k, "\x00\x00\x80\x3f", 4);  // 1.0f
      w.write(s.name, v.data(), v.size());
    }
    w.finish();
    return d / "model.safetensors";
  }
  void expect_error(const fs::path& f, const std::string& what, int64_t in, int64_t out,
                    const std::string& declared = {}, int bits = 0) {
    const SafetensorsReader st = SafetensorsReader::open(f.parent_path());
    try {
      read_fp_packed_linear(st, "L", in, out, declared, bits);
      FAIL() << "no error for " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(f.parent_path().string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  }
  fs::path dir_;
};

TEST_F(FpMalformedTest, EachFailureNamesFileAndTensor) {
  // MXFP4 with a scale of the wrong shape.
  expect_error(file("shape", {{"L.weight_packed", DType::U8, {4, 16}}, {"L.weight_scale", DType::U8, {4, 2}}}),
               "'L.weight_scale' is U8 [4, 2], expected U8 [4, 1]", 32, 4);
  // MXFP8 codes in the wrong dtype.
  expect_error(file("dtype", {{"L.weight", DType::U8, {4, 32}}, {"L.weight_scale", DType::U8, {4, 1}}}),
               "'L.weight' is U8 [4, 32], expected F8_E4M3", 32, 4);
  // NVFP4 without its block scales.
  expect_error(file("missing", {{"L.weight_packed", DType::U8, {4, 8}}, {"L.weight_global_scale", DType::F32, {1}}}),
               "'L.weight_scale' is missing", 16, 4);
  // A NaN E8M0 scale (code 255).
  expect_error(file("nan", {{"L.weight_packed", DType::U8, {4, 16}}, {"L.weight_scale", DType::U8, {4, 1}}},
                    "L.weight_scale", 255),
               "NaN E8M0 scale", 32, 4);
  // A NaN E4M3 code (0x7f).
  expect_error(file("nancode", {{"L.weight", DType::F8_E4M3, {4, 32}}, {"L.weight_scale", DType::F32, {4}}},
                    "L.weight", 0x7f),
               "NaN E4M3 code", 32, 4);
  // Tensors that contradict the config's data_type.
  expect_error(file("declared", {{"L.weight_packed", DType::U8, {4, 16}}, {"L.weight_scale", DType::U8, {4, 1}}}),
               "holds MXFP4 tensors but quantization_config declares data_type 'nv_fp'", 32, 4, "nv_fp", 4);
  // FP8_BLOCK scales of the wrong tile count.
  expect_error(file("blocks", {{"L.weight", DType::F8_E4M3, {130, 32}}, {"L.weight_scale_inv", DType::F32, {1, 1}}}),
               "'L.weight_scale_inv' is F32 [1, 1], expected F32/BF16/F16 [2, 1]", 32, 130);
}

// auto_awq folders read by the GPTQ reader's AWQ path: a qweight packed along the inputs (GPTQ's
// shape) or missing qzeros is an error naming the file and the tensor.
TEST_F(FpMalformedTest, AwqTensorsOfTheWrongShapeNameTheFile) {
  const json qc = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 32}, {"version", "gemm"}, {"zero_point", true}};
  auto check = [&](const std::string& tag, const std::vector<TensorSpec>& specs, const std::string& what) {
    const fs::path f = file(tag, specs);
    const SafetensorsReader st = SafetensorsReader::open(f.parent_path());
    const PackedQuantConfig pqc = parse_packed_quant_config(qc.dump(), "config.json");
    std::vector<float> w(32 * 64);
    try {
      load_packed_linear_weight(w.data(), st, pqc, "L", 64, 32);
      FAIL() << "no error for " << tag;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(f.parent_path().string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  check("awq-gptq-shape", {{"L.qweight", DType::I32, {8, 32}}, {"L.qzeros", DType::I32, {2, 4}}, {"L.scales", DType::F16, {2, 32}}},
        "'L.qweight' is I32 [8, 32], expected I32 [64, 4]");
  check("awq-missing", {{"L.qweight", DType::I32, {64, 4}}, {"L.scales", DType::F16, {2, 32}}}, "L.qzeros");
  check("awq-scales", {{"L.qweight", DType::I32, {64, 4}}, {"L.qzeros", DType::I32, {2, 4}}, {"L.scales", DType::I32, {2, 32}}},
        "'L.scales' is I32");
}

}  // namespace
}  // namespace ar
