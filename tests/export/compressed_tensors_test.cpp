// The llm_compressor format (compressed-tensors layouts): bit streams and every packed tensor
// against hand-worked bytes, the quantization_config fields AutoRound 0.16.1 writes, writer ->
// reader round trips equal to QuantizedWeight::dequantize bit for bit for every scheme, and
// malformed checkpoints giving an ar::Error that names the file.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "export/compressed_tensors_config.h"
#include "export/compressed_tensors_pack.h"
#include "export/output_format.h"
#include "export/quantized_writer.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/compressed_tensors_linear.h"
#include "model/decoder.h"
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

template <typename T>
std::vector<T> as_vec(const Buffer& b) {
  std::vector<T> v(b.size_bytes() / sizeof(T));
  std::memcpy(v.data(), b.data(), b.size_bytes());
  return v;
}

// ---- bit streams ---------------------------------------------------------------------------------

TEST(CtBits, StreamsWorkedByHand) {
  // value k at stream bit b*k, little-endian, zero bits after the last value.
  const std::vector<uint8_t> v4 = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<uint32_t> w(2);
  ct_pack_bits(w.data(), v4.data(), 9, 4);
  EXPECT_EQ(w, (std::vector<uint32_t>{0x87654321u, 0x9u}));
  // 3 bits: value 10 starts at bit 30 and spills its top bit into word 1.
  const std::vector<uint8_t> v3 = {1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 7};
  ct_pack_bits(w.data(), v3.data(), 11, 3);
  EXPECT_EQ(w, (std::vector<uint32_t>{0xd11f58d1u, 0x1u}));
  const std::vector<uint8_t> v2 = {3, 0, 1, 2, 3, 1, 2, 0, 3, 1, 1, 0, 2, 2, 3, 3, 1};
  ct_pack_bits(w.data(), v2.data(), 17, 2);
  EXPECT_EQ(w, (std::vector<uint32_t>{0xfa172793u, 0x1u}));
  const std::vector<uint8_t> v8 = {1, 2, 3, 4, 5};
  ct_pack_bits(w.data(), v8.data(), 5, 8);
  EXPECT_EQ(w, (std::vector<uint32_t>{0x04030201u, 0x5u}));
  EXPECT_EQ(ct_packed_words(3, 11), 2);
  EXPECT_EQ(ct_packed_words(4, 256), 32);
  EXPECT_EQ(ct_packed_words(3, 256), 24);
}

TEST(CtBits, UnpackInvertsPackForEveryWidth) {
  std::mt19937 rng(7);
  for (int b = 1; b <= 8; ++b)
    for (int64_t n : {1, 7, 31, 32, 33, 100}) {
      std::vector<uint8_t> v(static_cast<size_t>(n)), back(static_cast<size_t>(n));
      for (auto& x : v) x = uint8_t(rng() % (1u << b));
      std::vector<uint32_t> w(static_cast<size_t>(ct_packed_words(b, n)));
      ct_pack_bits(w.data(), v.data(), n, b);
      ct_unpack_bits(back.data(), w.data(), n, b);
      EXPECT_EQ(v, back) << b << " bits, " << n << " values";
    }
}

// ---- tensors -------------------------------------------------------------------------------------

TEST(CtPack, IntSymmetricLayout) {
  // out 2, in 8, group 8, 4 bits: one word per row; scales copied as fp16 bits; no zero point.
  QuantizedWeight q = QuantizedWeight::allocate(QuantScheme{4, 8, true}, 2, 8);
  for (int i = 0; i < 16; ++i) q.codes[size_t(i)] = uint8_t(i);
  q.scales = {f32_to_f16(0.5f), f32_to_f16(-0.25f)};
  q.zeros = {8, 8};
  const std::vector<TensorSpec> specs = ct_tensor_specs("L", q.scheme, 8, 2);
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_EQ(specs[0].name, "L.weight_packed");
  EXPECT_EQ(specs[0].dtype, DType::I32);
  EXPECT_EQ(specs[0].shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(specs[1].name, "L.weight_scale");
  EXPECT_EQ(specs[1].dtype, DType::F16);
  EXPECT_EQ(specs[1].shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(specs[2].name, "L.weight_shape");
  EXPECT_EQ(specs[2].dtype, DType::I64);
  std::vector<Buffer> b = ct_pack(q);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(as_vec<uint32_t>(b[0]), (std::vector<uint32_t>{0x76543210u, 0xfedcba98u}));
  EXPECT_EQ(as_vec<uint16_t>(b[1]), (std::vector<uint16_t>{0x3800, 0xb400}));
  EXPECT_EQ(as_vec<int64_t>(b[2]), (std::vector<int64_t>{2, 8}));
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(b[i].size_bytes(), specs[i].size_bytes());
}

TEST(CtPack, IntAsymmetricZeroPointsRunDownTheColumns) {
  // out 9, in 8, group 4 (2 groups), 4 bits: zero points (9, 2) packed along the outputs:
  // weight_zero_point [ceil(9*4/32) = 2, 2], column g = the stream of zero[0..9, g].
  QuantizedWeight q = QuantizedWeight::allocate(QuantScheme{4, 4, false}, 9, 8);
  std::fill(q.codes.begin(), q.codes.end(), 3);
  std::fill(q.scales.begin(), q.scales.end(), f32_to_f16(1.0f));
  for (int o = 0; o < 9; ++o) {
    q.zeros[size_t(o * 2)] = uint8_t(o + 1);   // group 0: 1..9
    q.zeros[size_t(o * 2 + 1)] = uint8_t(15 - o);  // group 1: 15..7
  }
  const std::vector<TensorSpec> specs = ct_tensor_specs("L", q.scheme, 8, 9);
  ASSERT_EQ(specs.size(), 4u);
  EXPECT_EQ(specs[3].name, "L.weight_zero_point");
  EXPECT_EQ(specs[3].shape, (std::vector<int64_t>{2, 2}));
  std::vector<Buffer> b = ct_pack(q);
  ASSERT_EQ(b.size(), 4u);
  // row-major [word][group]: group 0 = 0x87654321, 0x9; group 1 = 0x89abcdef, 0x7.
  EXPECT_EQ(as_vec<uint32_t>(b[3]), (std::vector<uint32_t>{0x87654321u, 0x89abcdefu, 0x9u, 0x7u}));
  EXPECT_EQ(as_vec<uint32_t>(b[0])[0], 0x33333333u);
}

TEST(CtPack, ChannelSchemeHasOneScalePerRow) {
  const QuantScheme s{8, -1, true};
  const std::vector<TensorSpec> specs = ct_tensor_specs("L", s, 40, 3);
  EXPECT_EQ(specs[0].shape, (std::vector<int64_t>{3, 10}));  // 40 bytes a row
  EXPECT_EQ(specs[1].shape, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(ct_shape_problem(s, 40, 3), "");
}

// What compressed-tensors decompresses a layer to: QuantizedWeight::dequantize, except NVFP4,
// where it computes e2m1 * (scale / global_scale) (AutoRound's fake quantizer, and so our
// dequantize, divides twice: 1 / (1 / (scale / gs)), one f32 ulp away at times).
void ct_dequantize(const QuantizedWeight& q, float* w) {
  if (q.scheme.data_type != DataType::NVFP4) return q.dequantize(w);
  for (int64_t o = 0; o < q.out; ++o)
    for (int64_t i = 0; i < q.in; ++i) {
      const float step = decode_e4m3(q.scale_codes[size_t(o * q.n_groups + i / q.group)]) / q.global_scale;
      w[o * q.in + i] = decode_e2m1(q.codes[size_t(o * q.in + i)]) * step;
    }
}

TEST(CtPack, Nvfp4Layout) {
  QuantizedWeight q = QuantizedWeight::allocate(fp_scheme(DataType::NVFP4), 1, 16);
  for (int i = 0; i < 16; ++i) q.codes[size_t(i)] = uint8_t(i);
  q.scale_codes = {0x38};  // E4M3 1.0
  q.global_scale = 448.0f * 6.0f / 3.0f;
  const std::vector<TensorSpec> specs = ct_tensor_specs("L", q.scheme, 16, 1);
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_EQ(specs[0].name, "L.weight_global_scale");
  EXPECT_EQ(specs[0].dtype, DType::F32);
  EXPECT_EQ(specs[0].shape, (std::vector<int64_t>{1}));
  EXPECT_EQ(specs[1].name, "L.weight_packed");
  EXPECT_EQ(specs[1].dtype, DType::U8);
  EXPECT_EQ(specs[1].shape, (std::vector<int64_t>{1, 8}));
  EXPECT_EQ(specs[2].name, "L.weight_scale");
  EXPECT_EQ(specs[2].dtype, DType::F8_E4M3);
  EXPECT_EQ(specs[2].shape, (std::vector<int64_t>{1, 1}));
  std::vector<Buffer> b = ct_pack(q);
  EXPECT_EQ(as_vec<float>(b[0]), (std::vector<float>{896.0f}));
  EXPECT_EQ(as_vec<uint8_t>(b[1]), (std::vector<uint8_t>{0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe}));
  EXPECT_EQ(as_vec<uint8_t>(b[2]), (std::vector<uint8_t>{0x38}));
}

TEST(CtPack, MxAndFp8Layouts) {
  QuantizedWeight m4 = QuantizedWeight::allocate(fp_scheme(DataType::MXFP4), 2, 32);
  for (size_t i = 0; i < m4.codes.size(); ++i) m4.codes[i] = uint8_t(i % 16);
  m4.scale_codes = {127, 120};
  std::vector<TensorSpec> s = ct_tensor_specs("L", m4.scheme, 32, 2);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].name, "L.weight_packed");
  EXPECT_EQ(s[0].shape, (std::vector<int64_t>{2, 16}));
  EXPECT_EQ(s[1].dtype, DType::U8);
  EXPECT_EQ(s[1].shape, (std::vector<int64_t>{2, 1}));
  std::vector<Buffer> b = ct_pack(m4);
  EXPECT_EQ(as_vec<uint8_t>(b[0])[0], 0x10);
  EXPECT_EQ(as_vec<uint8_t>(b[0])[8], 0x10);  // element 16 = code 0, element 17 = code 1
  EXPECT_EQ(as_vec<uint8_t>(b[1]), (std::vector<uint8_t>{127, 120}));

  QuantizedWeight m8 = QuantizedWeight::allocate(fp_scheme(DataType::MXFP8), 1, 64);
  for (size_t i = 0; i < m8.codes.size(); ++i) m8.codes[i] = uint8_t(i * 3);
  m8.scale_codes = {130, 125};
  s = ct_tensor_specs("L", m8.scheme, 64, 1);
  EXPECT_EQ(s[0].name, "L.weight");
  EXPECT_EQ(s[0].dtype, DType::F8_E4M3);
  EXPECT_EQ(s[1].shape, (std::vector<int64_t>{1, 2}));
  b = ct_pack(m8);
  EXPECT_EQ(as_vec<uint8_t>(b[0]), m8.codes);
  EXPECT_EQ(as_vec<uint8_t>(b[1]), m8.scale_codes);

  QuantizedWeight f8 = QuantizedWeight::allocate(fp_scheme(DataType::FP8), 3, 5);
  for (size_t i = 0; i < f8.codes.size(); ++i) f8.codes[i] = uint8_t(0x30 + i);
  f8.scales_f32 = {0.5f, 0.25f, 2.0f};
  s = ct_tensor_specs("L", f8.scheme, 5, 3);
  EXPECT_EQ(s[1].dtype, DType::F32);
  EXPECT_EQ(s[1].shape, (std::vector<int64_t>{3, 1}));
  b = ct_pack(f8);
  EXPECT_EQ(as_vec<uint8_t>(b[0]), f8.codes);
  EXPECT_EQ(as_vec<float>(b[1]), f8.scales_f32);

  // FP8_BLOCK (200, 300): scales [ceil(200/128), ceil(300/128)] = [2, 3]; ragged blocks are fine.
  s = ct_tensor_specs("L", fp_scheme(DataType::FP8Block), 300, 200);
  EXPECT_EQ(s[1].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ct_shape_problem(fp_scheme(DataType::FP8Block), 300, 200), "");
  EXPECT_NE(ct_shape_problem(fp_scheme(DataType::NVFP4), 172, 64), "");
  EXPECT_NE(ct_shape_problem(QuantScheme{4, 128, true}, 172, 64), "");
  EXPECT_EQ(ct_shape_problem(QuantScheme{4, 128, true}, 256, 70), "");
}

TEST(CtPack, FormatNames) {
  EXPECT_EQ(output_format_name(parse_output_format("llm_compressor")), "llm_compressor");
  EXPECT_EQ(parse_output_format("llmcompressor"), OutputFormat::LlmCompressor);
  EXPECT_EQ(parse_output_format("llm-compressor"), OutputFormat::LlmCompressor);
  EXPECT_FALSE(is_packed_format(OutputFormat::LlmCompressor));
  try {
    parse_output_format("llm_compresor");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("llm_compresor"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("llm_compressor"), std::string::npos) << e.what();
  }
  EXPECT_STREQ(ct_format_name(QuantScheme{4, 128, false}), "pack-quantized");
  EXPECT_STREQ(ct_format_name(fp_scheme(DataType::NVFP4)), "nvfp4-pack-quantized");
  EXPECT_STREQ(ct_format_name(fp_scheme(DataType::MXFP4)), "mxfp4-pack-quantized");
  EXPECT_STREQ(ct_format_name(fp_scheme(DataType::MXFP8)), "mxfp8-quantized");
  EXPECT_STREQ(ct_format_name(fp_scheme(DataType::FP8)), "naive-quantized");
  EXPECT_STREQ(ct_format_name(fp_scheme(DataType::FP8Block)), "float-quantized");
  QuantScheme g;
  g.gguf = GgmlType::Q4_K;
  EXPECT_NE(ct_scheme_problem(g), "");
}

// ---- quantization_config -------------------------------------------------------------------------

std::vector<StoredLinear> layers_with(const QuantScheme& s) {
  std::vector<StoredLinear> v;
  for (int l = 0; l < 2; ++l)
    for (const char* n : {"mlp.down_proj", "mlp.gate_proj", "self_attn.q_proj"})
      v.push_back({cat("model.layers.", l, ".", n), s});
  return v;
}

TEST(CtConfig, IntegerGroupAsAutoRoundWritesIt) {
  // Fields of AutoRound 0.16.1's llm_compressor config.json for W4A16 (group 128, sym).
  const json q = make_ct_quantization_config(layers_with(QuantScheme{4, 128, true}), json{{"iters", 0}});
  const json expect_group = {{"targets", {"Linear"}},
                             {"weights",
                              {{"num_bits", 4}, {"type", "int"}, {"symmetric", true}, {"group_size", 128},
                               {"strategy", "group"}, {"dynamic", false}}},
                             {"input_activations", nullptr},
                             {"output_activations", nullptr},
                             {"format", "pack-quantized"}};
  EXPECT_EQ(q["config_groups"], (json{{"group_0", expect_group}}));
  EXPECT_EQ(q["quant_method"], "compressed-tensors");
  EXPECT_EQ(q["format"], "pack-quantized");
  EXPECT_EQ(q["quantization_status"], "compressed");
  EXPECT_EQ(q["ignore"], json::array({"lm_head"}));
  EXPECT_TRUE(q["kv_cache_scheme"].is_null());
  EXPECT_TRUE(q["global_compression_ratio"].is_null());
  EXPECT_TRUE(q["moe_sparsity_config"].is_null());
  EXPECT_EQ(q["iters"], 0);
  EXPECT_FALSE(q.contains("provider"));

  const json ch = make_ct_quantization_config(layers_with(QuantScheme{8, -1, false}), json::object());
  EXPECT_EQ(ch["config_groups"]["group_0"]["weights"],
            (json{{"num_bits", 8}, {"type", "int"}, {"symmetric", false}, {"group_size", nullptr},
                  {"strategy", "channel"}, {"dynamic", false}}));
}

TEST(CtConfig, FloatingPointSchemes) {
  const json mx = make_ct_quantization_config(layers_with(fp_scheme(DataType::MXFP4)), json::object());
  const json mx_args = {{"dynamic", false},     {"group_size", 32},  {"num_bits", 4}, {"scale_dtype", "torch.uint8"},
                        {"strategy", "group"}, {"symmetric", true}, {"type", "float"}};
  EXPECT_EQ(mx["format"], "mxfp4-pack-quantized");
  EXPECT_TRUE(mx["config_groups"]["group_0"]["format"].is_null());  // as AutoRound's export_to_fp
  EXPECT_EQ(mx["config_groups"]["group_0"]["weights"], mx_args);
  json act = mx_args;
  act["dynamic"] = true;
  EXPECT_EQ(mx["config_groups"]["group_0"]["input_activations"], act);
  EXPECT_EQ(mx["provider"], "auto-round");

  const json m8 = make_ct_quantization_config(layers_with(fp_scheme(DataType::MXFP8)), json::object());
  EXPECT_EQ(m8["format"], "mxfp8-quantized");
  EXPECT_EQ(m8["config_groups"]["group_0"]["weights"]["num_bits"], 8);

  const json nv = make_ct_quantization_config(layers_with(fp_scheme(DataType::NVFP4)), json::object());
  EXPECT_EQ(nv["format"], "nvfp4-pack-quantized");
  EXPECT_EQ(nv["config_groups"]["group_0"]["weights"],
            (json{{"dynamic", false}, {"group_size", 16}, {"num_bits", 4}, {"scale_dtype", "torch.float8_e4m3fn"},
                  {"strategy", "tensor_group"}, {"symmetric", true}, {"type", "float"}}));
  EXPECT_TRUE(nv["config_groups"]["group_0"]["input_activations"].is_null());  // NVFP4A16: no input_global_scale

  const json f8 = make_ct_quantization_config(layers_with(fp_scheme(DataType::FP8)), json::object());
  EXPECT_EQ(f8["format"], "naive-quantized");
  EXPECT_EQ(f8["config_groups"]["group_0"]["format"], "naive-quantized");
  EXPECT_EQ(f8["config_groups"]["group_0"]["weights"],
            (json{{"dynamic", false}, {"group_size", nullptr}, {"num_bits", 8}, {"strategy", "channel"},
                  {"symmetric", true}, {"type", "float"}}));

  const json fb = make_ct_quantization_config(layers_with(fp_scheme(DataType::FP8Block)), json::object());
  EXPECT_EQ(fb["format"], "float-quantized");
  EXPECT_EQ(fb["config_groups"]["group_0"]["weights"]["block_structure"], json::array({128, 128}));
  EXPECT_EQ(fb["config_groups"]["group_0"]["weights"]["strategy"], "block");
  EXPECT_EQ(fb["config_groups"]["group_0"]["input_activations"],
            (json{{"dynamic", true}, {"group_size", 128}, {"num_bits", 8}, {"strategy", "group"},
                  {"symmetric", true}, {"type", "float"}}));
}

TEST(CtConfig, MixedSchemesNameTheirLayersAndKeptOnesAreIgnored) {
  std::vector<StoredLinear> v = layers_with(QuantScheme{4, 128, true});
  v[0].scheme = QuantScheme{8, 128, true};      // model.layers.0.mlp.down_proj
  v[4].scheme = QuantScheme{16, 128, true};     // model.layers.1.mlp.gate_proj: kept
  const json q = make_ct_quantization_config(v, json::object());
  // Groups in module order of first appearance (q_proj of block 0 comes first), sorted names.
  EXPECT_EQ(q["config_groups"]["group_0"]["targets"],
            (json{"model.layers.0.mlp.gate_proj", "model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj",
                  "model.layers.1.self_attn.q_proj"}));
  EXPECT_EQ(q["config_groups"]["group_1"]["targets"], json::array({"model.layers.0.mlp.down_proj"}));
  EXPECT_EQ(q["config_groups"]["group_1"]["weights"]["num_bits"], 8);
  EXPECT_EQ(q["ignore"], (json{"model.layers.1.mlp.gate_proj", "lm_head"}));
  EXPECT_EQ(q["format"], "pack-quantized");

  // An MXFP4 model with one integer layer: AutoRound's FP layout, the default group last.
  std::vector<StoredLinear> m = layers_with(fp_scheme(DataType::MXFP4));
  m[2].scheme = QuantScheme{8, -1, true};
  const json mq = make_ct_quantization_config(m, json::object());
  EXPECT_EQ(mq["format"], "mixed-precision");
  EXPECT_EQ(mq["config_groups"]["group_0"]["targets"], json::array({"model.layers.0.self_attn.q_proj"}));
  EXPECT_EQ(mq["config_groups"]["group_0"]["format"], "pack-quantized");
  EXPECT_EQ(mq["config_groups"]["group_1"]["targets"], json::array({"Linear"}));
  EXPECT_EQ(mq["config_groups"]["group_1"]["format"], "mxfp4-pack-quantized");

  // The reader resolves them back.
  const CtQuantConfig rc = parse_ct_quant_config(q.dump(), "config.json");
  EXPECT_EQ(rc.scheme_for("model.layers.0.mlp.down_proj").bits, 8);
  EXPECT_EQ(rc.scheme_for("model.layers.1.self_attn.q_proj").bits, 4);
  EXPECT_FALSE(rc.scheme_for("model.layers.1.mlp.gate_proj").quantized);
  const CtQuantConfig rm = parse_ct_quant_config(mq.dump(), "config.json");
  EXPECT_EQ(rm.scheme_for("model.layers.0.self_attn.q_proj").layout, CtLayout::PackQuantized);
  EXPECT_EQ(rm.scheme_for("model.layers.1.self_attn.q_proj").layout, CtLayout::Mxfp4);
}

TEST(CtConfig, ReaderTargetRules) {
  const json g4 = {{"weights", {{"num_bits", 4}, {"type", "int"}, {"symmetric", true}, {"group_size", 128},
                                {"strategy", "group"}}}};
  json g8 = g4;
  g8["weights"]["num_bits"] = 8;
  json cfg = {{"quant_method", "compressed-tensors"},
              {"format", "pack-quantized"},
              {"config_groups", {{"a", g4}, {"b", g8}, {"c", g4}}},
              {"ignore", {"re:.*down_proj$", "lm_head"}}};
  cfg["config_groups"]["a"]["targets"] = {"Linear"};
  cfg["config_groups"]["b"]["targets"] = {"re:model\\.layers\\.1\\..*"};
  cfg["config_groups"]["c"]["targets"] = {"model.layers.1.mlp.up_proj"};
  const CtQuantConfig qc = parse_ct_quant_config(cfg.dump(), "x/config.json");
  EXPECT_EQ(qc.scheme_for("model.layers.0.mlp.up_proj").bits, 4);       // class
  EXPECT_EQ(qc.scheme_for("model.layers.1.mlp.gate_proj").bits, 8);     // regex beats class
  EXPECT_EQ(qc.scheme_for("model.layers.1.mlp.up_proj").bits, 4);       // exact name beats regex
  EXPECT_FALSE(qc.scheme_for("model.layers.1.mlp.down_proj").quantized);  // ignored
  EXPECT_EQ(qc.scheme_for("model.layers.0.mlp.up_proj").layout, CtLayout::PackQuantized);

  auto bad = [&](json c, const std::string& what) {
    try {
      parse_ct_quant_config(c.dump(), "x/config.json");
      ADD_FAILURE() << "no error for " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("x/config.json"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  json c = cfg;
  c["format"] = "marlin-24";
  bad(c, "marlin-24");
  c = cfg;
  c["config_groups"]["a"]["weights"]["num_bits"] = 16;
  bad(c, "pack-quantized holds 1..8-bit");
  c = cfg;
  c["quant_method"] = "gptq";
  bad(c, "quant_method");
  c = cfg;
  c.erase("config_groups");
  bad(c, "config_groups");
}

// ---- writer -> reader round trips ----------------------------------------------------------------

constexpr int64_t kC = 64, kF = 172, kLayers = 2, kVocab = 96, kHeads = 8, kKv = 4, kD = 8;

fs::path make_tiny_model(const fs::path& dir) {
  return test::write_tiny_llama(dir, test::TinyLlama{kC, kF, kLayers, kVocab, kHeads, kKv, kD, 42, false});
}

class CtWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = test::make_temp_dir("compressed_tensors");
    src_dir_ = make_tiny_model(root_ / "src");
    src_ = std::make_unique<SafetensorsReader>(SafetensorsReader::open(src_dir_));
    cfg_ = load_model_config(src_dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(root_);
  }

  // Writes the model under `scheme` (v_proj under `other` when given) and returns what was fed.
  std::map<std::string, QuantizedWeight> write(const fs::path& out, const QuantScheme& scheme,
                                               std::optional<QuantScheme> other = std::nullopt) {
    auto scheme_for = [&](const std::string& n) {
      return other && n.find("v_proj") != std::string::npos ? *other : scheme;
    };
    QuantizedModelWriter w(OutputFormat::LlmCompressor, src_dir_, out, *src_, cfg_, scheme_for, 1ull << 30, false,
                           json{{"iters", 0}});
    std::map<std::string, QuantizedWeight> fed;
    for (const std::string& name : output_tensor_order(*src_)) {
      const TensorInfo& t = src_->require(name);
      const std::string linear = name.substr(0, name.size() - 7);
      if (is_block_linear_weight(name, t.shape) && w.stores_quantized(linear)) {
        const std::vector<float> wf = read_f32(*src_, name);
        const QuantScheme s = scheme_for(linear);
        QuantizedWeight q = s.is_fp() ? quantize_fp(wf.data(), t.shape[0], t.shape[1], s, name)
                                      : quantize_rtn(wf.data(), t.shape[0], t.shape[1], s);
        w.add_quantized(linear, q);
        fed.emplace(linear, std::move(q));
      } else {
        w.add_copy(name);
      }
    }
    unstorable_ = w.unstorable_layers().size();
    w.finish();
    return fed;
  }

  // Every block linear read back through load_block equals the dequantized QuantizedWeight (or the
  // source for kept layers) bit for bit.
  void expect_round_trip(const fs::path& out, const std::map<std::string, QuantizedWeight>& fed) {
    const SafetensorsReader st = SafetensorsReader::open(out);
    const ModelConfig c = load_model_config(out);
    for (int64_t l = 0; l < kLayers; ++l) {
      BlockWeights b = load_block(st, c, l);
      for (int i = 0; i < kDenseLinears; ++i) {
        const LinearWeights& lw = *block_linears(b, i);
        SCOPED_TRACE(lw.name);
        std::vector<float> expect(static_cast<size_t>(lw.in * lw.out));
        auto it = fed.find(lw.name);
        if (it != fed.end()) ct_dequantize(it->second, expect.data());
        else expect = read_f32(*src_, lw.name + ".weight");
        ASSERT_EQ(lw.w.size_bytes(), expect.size() * 4);
        EXPECT_EQ(std::memcmp(lw.w.data(), expect.data(), lw.w.size_bytes()), 0);
      }
    }
  }

  fs::path root_, src_dir_;
  std::unique_ptr<SafetensorsReader> src_;
  ModelConfig cfg_;
  size_t unstorable_ = 0;
};

TEST_F(CtWriterTest, EverySchemeRoundTripsBitExactly) {
  struct Case {
    const char* tag;
    QuantScheme s;
    size_t kept;  // layers per model the format cannot hold (down_proj: in 172)
  };
  const Case cases[] = {
      {"w4g32sym", QuantScheme{4, 32, true}, kLayers},    {"w4g32asym", QuantScheme{4, 32, false}, kLayers},
      {"w3g64asym", QuantScheme{3, 64, false}, kLayers},  {"w2g32sym", QuantScheme{2, 32, true}, kLayers},
      {"w8chasym", QuantScheme{8, -1, false}, 0},         {"w4chsym", QuantScheme{4, -1, true}, 0},
      {"nvfp4", fp_scheme(DataType::NVFP4), kLayers},      {"mxfp4", fp_scheme(DataType::MXFP4), kLayers},
      {"mxfp8", fp_scheme(DataType::MXFP8), kLayers},      {"fp8", fp_scheme(DataType::FP8), 0},
      {"fp8block", fp_scheme(DataType::FP8Block), 0},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.tag);
    const fs::path out = root_ / k.tag;
    const auto fed = write(out, k.s);
    EXPECT_EQ(unstorable_, k.kept);
    expect_round_trip(out, fed);
    const json cfg = json::parse(std::ifstream(out / "config.json"));
    const json& qc = cfg["quantization_config"];
    EXPECT_EQ(qc["quant_method"], "compressed-tensors");
    EXPECT_EQ(qc["format"], ct_format_name(k.s));
    EXPECT_EQ(cfg["torch_dtype"], "bfloat16");  // copies keep their dtype
    if (k.kept) {
      EXPECT_EQ(qc["ignore"][0], "model.layers.0.mlp.down_proj");
    }
    EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
    const SafetensorsReader st = SafetensorsReader::open(out);
    EXPECT_EQ(st.require("model.norm.weight").dtype, DType::BF16);
    EXPECT_EQ(st.find("model.layers.0.self_attn.q_proj.qweight"), nullptr);
  }
}

TEST_F(CtWriterTest, MixedSchemesRoundTrip) {
  const fs::path out = root_ / "mixed";
  const auto fed = write(out, fp_scheme(DataType::MXFP4), QuantScheme{8, 32, false});
  expect_round_trip(out, fed);
  const json qc = json::parse(std::ifstream(out / "config.json"))["quantization_config"];
  EXPECT_EQ(qc["format"], "mixed-precision");
}

TEST_F(CtWriterTest, ForwardOfTheExportEqualsInMemoryFakeQuantization) {
  const fs::path out = root_ / "nvfp4";
  const auto fed = write(out, fp_scheme(DataType::NVFP4));
  const int64_t T = 5;
  const std::vector<int32_t> ids = {1, 5, 9, 33, 70};
  std::vector<float> h_out(static_cast<size_t>(T * kC)), h_ref(static_cast<size_t>(T * kC));
  Decoder dec(out);
  dec.embed(h_out.data(), ids);
  dec.forward_hidden(h_out.data(), 1, T, {});
  Decoder src_dec(src_dir_);
  src_dec.embed(h_ref.data(), ids);
  ForwardOptions fo;
  fo.transform_block = [&](BlockWeights& b) {
    for (int i = 0; i < kDenseLinears; ++i) {
      LinearWeights& lw = *block_linears(b, i);
      auto it = fed.find(lw.name);
      if (it != fed.end()) ct_dequantize(it->second, lw.w.as<float>());
    }
  };
  src_dec.forward_hidden(h_ref.data(), 1, T, fo);
  EXPECT_EQ(std::memcmp(h_out.data(), h_ref.data(), h_out.size() * 4), 0);
}

TEST_F(CtWriterTest, RefusesGgufTargetsBeforeAnyWork) {
  QuantScheme g;
  g.gguf = GgmlType::Q4_K;
  try {
    QuantizedModelWriter w(OutputFormat::LlmCompressor, src_dir_, root_ / "g", *src_, cfg_,
                           [&](const std::string&) { return g; }, 1ull << 30, false, json::object());
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("llm_compressor"), std::string::npos) << m;
    EXPECT_NE(m.find("Q4_K"), std::string::npos) << m;
    EXPECT_NE(m.find("model.layers.0."), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(root_ / "g"));
}

// ---- malformed checkpoints -----------------------------------------------------------------------

class CtCorrupt : public CtWriterTest {
 protected:
  // Rewrites `out`'s model.safetensors with `edit` applied to its tensor list, then expects loading
  // block 0 to fail naming the file and `what`.
  void expect_error(const fs::path& out, const std::function<void(std::vector<TensorSpec>&)>& edit,
                    const std::string& what) {
    const fs::path bad = root_ / "bad";
    fs::remove_all(bad);
    fs::create_directories(bad);
    fs::copy_file(out / "config.json", bad / "config.json");
    const SafetensorsReader st = SafetensorsReader::open(out);
    std::vector<TensorSpec> specs;
    for (const TensorInfo& t : st.tensors()) specs.push_back({t.name, t.dtype, t.shape});
    edit(specs);
    SafetensorsWriter w(bad / "model.safetensors", specs, {{"format", "pt"}});
    for (const TensorSpec& s : specs) {
      std::vector<uint8_t> bytes(static_cast<size_t>(s.size_bytes()), 0);
      if (const TensorInfo* t = st.find(s.name); t && t->dtype == s.dtype && t->shape == s.shape) st.read(*t, bytes.data());
      w.write(s.name, bytes.data(), bytes.size());
    }
    w.finish();
    const SafetensorsReader bst = SafetensorsReader::open(bad);
    const ModelConfig c = load_model_config(bad);
    try {
      load_block(bst, c, 0);
      ADD_FAILURE() << "no error for " << what;
    } catch (const Error& e) {
      // A tensor of the wrong kind: the file holding it; a missing one: the checkpoint.
      const std::string m = e.what();
      EXPECT_NE(m.find(bad.string()), std::string::npos) << m;
      if (what.find("expected") != std::string::npos) {
        EXPECT_NE(m.find((bad / "model.safetensors").string()), std::string::npos) << m;
      }
      EXPECT_NE(m.find(what), std::string::npos) << m;
    }
  }
};

TEST_F(CtCorrupt, MissingTensorWrongDtypeWrongShape) {
  const fs::path out = root_ / "asym";
  write(out, QuantScheme{4, 32, false});
  const std::string q = "model.layers.0.self_attn.q_proj.";
  auto erase = [&](const std::string& n) {
    return [n](std::vector<TensorSpec>& s) {
      std::erase_if(s, [&](const TensorSpec& t) { return t.name == n; });
    };
  };
  auto retype = [&](const std::string& n, DType d, std::vector<int64_t> shape) {
    return [=](std::vector<TensorSpec>& s) {
      for (TensorSpec& t : s)
        if (t.name == n) {
          t.dtype = d;
          if (!shape.empty()) t.shape = shape;
        }
    };
  };
  expect_error(out, erase(q + "weight_zero_point"), q + "weight_zero_point");
  expect_error(out, erase(q + "weight_shape"), q + "weight_shape");
  expect_error(out, retype(q + "weight_packed", DType::U8, {64, 32}), "expected I32 [64, 8]");
  expect_error(out, retype(q + "weight_scale", DType::F16, {64, 3}), "expected F16/BF16/F32 [64, 2]");

  const fs::path nv = root_ / "nv";
  write(nv, fp_scheme(DataType::NVFP4));
  expect_error(nv, erase(q + "weight_global_scale"), q + "weight_global_scale");
  expect_error(nv, retype(q + "weight_scale", DType::U8, {}), "expected F8_E4M3");

  const fs::path f8 = root_ / "f8";
  write(f8, fp_scheme(DataType::FP8));
  expect_error(f8, retype(q + "weight", DType::BF16, {}), "expected F8_E4M3 [64, 64]");
  expect_error(f8, erase(q + "weight"), q + "weight");
}

TEST_F(CtCorrupt, ConfigThatDoesNotMatchTheTensors) {
  const fs::path out = root_ / "w4";
  write(out, QuantScheme{4, 32, true});
  // A config without quantization_config, and one of another method.
  for (const json& qc : {json(nullptr), json{{"quant_method", "gptq"}, {"bits", 4}}}) {
    json cfg = json::parse(std::ifstream(out / "config.json"));
    if (qc.is_null()) cfg.erase("quantization_config");
    else cfg["quantization_config"] = qc;
    std::ofstream(out / "config.json") << cfg.dump();
    const SafetensorsReader st = SafetensorsReader::open(out);
    try {
      load_block(st, load_model_config(out), 0);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find((out / "config.json").string()), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace ar
