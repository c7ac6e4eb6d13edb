// quantization_config contents for auto_round / auto_gptq: the keys transformers' AutoRoundConfig /
// GPTQConfig and the Python AutoRound loader read, the dominant scheme, per-layer differences.
#include <gtest/gtest.h>

#include "core/error.h"
#include "export/quant_config_json.h"

namespace ar {
namespace {

using nlohmann::json;

std::vector<StoredLinear> layers() {
  return {{"model.layers.0.self_attn.q_proj", {4, 128, true}},
          {"model.layers.0.mlp.down_proj", {8, 128, true}},
          {"model.layers.0.mlp.up_proj", {16, 128, true}},
          {"model.layers.1.self_attn.q_proj", {4, 128, true}},
          {"model.layers.1.mlp.down_proj", {4, 64, false}},
          {"model.layers.1.mlp.up_proj", {16, 128, true}}};
}

TEST(QuantConfigJson, AutoRound) {
  const json q = make_quantization_config(OutputFormat::AutoRound, layers(),
                                          json{{"iters", 0}, {"bits", 99}, {"nsamples", 16}});
  EXPECT_EQ(q["quant_method"], "auto-round");
  EXPECT_EQ(q["packing_format"], "auto_round:auto_gptq");
  EXPECT_EQ(q["bits"], 4);  // the tuning object never overrides the format's keys
  EXPECT_EQ(q["group_size"], 128);
  EXPECT_EQ(q["sym"], true);
  EXPECT_EQ(q["data_type"], "int");
  EXPECT_EQ(q["block_name_to_quantize"], "model.layers");
  EXPECT_EQ(q["iters"], 0);
  EXPECT_EQ(q["nsamples"], 16);
  const json& e = q["extra_config"];
  EXPECT_EQ(e.size(), 4u);
  EXPECT_EQ(e["model.layers.0.mlp.down_proj"], (json{{"bits", 8}}));
  EXPECT_EQ(e["model.layers.1.mlp.down_proj"], (json{{"group_size", 64}, {"sym", false}}));
  EXPECT_EQ(e["model.layers.0.mlp.up_proj"], (json{{"bits", 16}, {"data_type", "float"}}));
  EXPECT_FALSE(e.contains("model.layers.0.self_attn.q_proj"));
}

TEST(QuantConfigJson, AsymmetricAutoRoundIsPackedWithoutTheZeroOffset) {
  // As the Python AutoRound writes them: symmetric "auto_round:auto_gptq" (zeros - 1), asymmetric
  // "auto_round" (zeros as they are), decided by the file's dominant scheme; auto_gptq is always v1.
  const std::vector<StoredLinear> asym = {{"model.layers.0.self_attn.q_proj", {4, 32, false}},
                                          {"model.layers.0.self_attn.k_proj", {4, 32, false}},
                                          {"model.layers.0.mlp.up_proj", {4, 32, true}}};
  const json q = make_quantization_config(OutputFormat::AutoRound, asym, json::object());
  EXPECT_EQ(q["packing_format"], "auto_round");
  EXPECT_EQ(q["sym"], false);
  EXPECT_EQ(q["extra_config"]["model.layers.0.mlp.up_proj"], (json{{"sym", true}}));
  EXPECT_FALSE(packed_zeros_minus_one(OutputFormat::AutoRound, {4, 32, false}));
  EXPECT_TRUE(packed_zeros_minus_one(OutputFormat::AutoRound, {4, 32, true}));
  EXPECT_TRUE(packed_zeros_minus_one(OutputFormat::AutoGptq, {4, 32, false}));
  EXPECT_EQ(make_quantization_config(OutputFormat::AutoGptq, asym, json::object())["checkpoint_format"], "gptq");
}

TEST(QuantConfigJson, AutoGptq) {
  const json q = make_quantization_config(OutputFormat::AutoGptq, layers(), json::object());
  EXPECT_EQ(q["quant_method"], "gptq");
  EXPECT_EQ(q["bits"], 4);
  EXPECT_EQ(q["group_size"], 128);
  EXPECT_EQ(q["sym"], true);
  EXPECT_EQ(q["desc_act"], false);
  EXPECT_EQ(q["true_sequential"], false);
  EXPECT_EQ(q["damp_percent"], 0.01);
  EXPECT_EQ(q["checkpoint_format"], "gptq");
  const json& d = q["dynamic"];
  EXPECT_EQ(d["-:^model\\.layers\\.0\\.mlp\\.up_proj$"], json::object());
  EXPECT_EQ(d["+:^model\\.layers\\.0\\.mlp\\.down_proj$"], (json{{"bits", 8}, {"group_size", 128}, {"sym", true}}));
  // Every block keeps up_proj: the loader is told which modules are quantized.
  EXPECT_EQ(q["modules_in_block_to_quantize"], json::array({json::array({"mlp.down_proj", "self_attn.q_proj"})}));
}

TEST(QuantConfigJson, DominantSchemeAndNothingQuantized) {
  EXPECT_EQ(dominant_scheme(layers()), (QuantScheme{4, 128, true}));
  std::vector<StoredLinear> none = {{"model.layers.0.mlp.up_proj", {16, 128, true}}};
  EXPECT_THROW(dominant_scheme(none), Error);
  EXPECT_THROW(make_quantization_config(OutputFormat::AutoRound, none, json::object()), Error);
}

}  // namespace
}  // namespace ar
