// --layer_config in a GGUF output, through the real binary: a rule's bits pick the layer's block
// type (16 keeps it in F16, bit for bit the source weights), overriding the mix's promotions, in an
// RTN run and a tuned one; group_size / sym rules are reported as not applying.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "support/fixtures.h"
#include "support/run.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

std::string cli() { return AR_CLI_PATH; }

fs::path only_gguf(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".gguf") return e.path();
  return {};
}

// A 2-block synthetic Qwen3 whose rows (256, 512) fit the k-quant super-blocks, so the mix's
// promotions are visible (the tiny preset's 128-wide rows fall back to 32-weight formats).
fs::path kquant_model(const fs::path& root) {
  const fs::path base = root / "base", model = root / "m";
  auto g = test::run_command(cli() + " generate --preset tiny-qwen3 --num_layers 2 --output_dir " + base.string());
  EXPECT_EQ(g.exit_code, 0) << g.err;
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(base / "config.json"));
  cfg["hidden_size"] = 256;
  cfg["intermediate_size"] = 512;
  std::ofstream(root / "config.json") << cfg.dump(2);
  g = test::run_command(cli() + " generate --config " + (root / "config.json").string() + " --output_dir " +
                        model.string() + " --seed 3");
  EXPECT_EQ(g.exit_code, 0) << g.err;
  return model;
}

std::vector<uint8_t> tensor_bytes(const GgufReader& r, const std::string& name) {
  const GgufTensorInfo* t = r.find_tensor(name);
  if (!t) {
    ADD_FAILURE() << name << " missing";
    return {};
  }
  std::vector<uint8_t> b(t->size_bytes);
  r.read(*t, b.data());
  return b;
}

TEST(GgufLayerConfig, BitsRulesPickTheBlockTypeInRtnAndTunedRuns) {
  const fs::path root = test::make_temp_dir("gguf-layer-config");
  const fs::path model = kquant_model(root);
  const fs::path lc = root / "layers.json";
  std::ofstream(lc) << R"({
      "model.layers.0.mlp.down_proj": {"bits": 16},
      "self_attn.v_proj": {"bits": 8},
      "model.layers.1.mlp.down_proj": {"bits": 4, "group_size": 32}
    })";
  auto run = [&](const std::string& name, const std::string& extra, const std::string& mix = "q4_k_m") {
    auto r = test::run_command(cli() + " quantize --model " + model.string() + " --format gguf:" + mix + " --output_dir " +
                               (root / name).string() + " " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r;
  };
  // Without rules, q4_k_m promotes ffn_down and attn_v of the last eighth of the layers (block 1
  // of 2) to Q6_K.
  run("plain", "--iters 0");
  const GgufReader plain = GgufReader::open(only_gguf(root / "plain"));
  EXPECT_EQ(plain.find_tensor("blk.0.ffn_down.weight")->type, GgmlType::Q4_K);
  EXPECT_EQ(plain.find_tensor("blk.1.ffn_down.weight")->type, GgmlType::Q6_K);
  EXPECT_EQ(plain.find_tensor("blk.0.attn_v.weight")->type, GgmlType::Q4_K);
  EXPECT_EQ(plain.find_tensor("blk.1.attn_v.weight")->type, GgmlType::Q6_K);

  // The source weights of the layer kept in 16 bits, as F16.
  std::vector<uint16_t> want_f16;
  {
    const SafetensorsReader st = SafetensorsReader::open(model);
    const TensorInfo& t = st.require("model.layers.0.mlp.down_proj.weight");
    std::vector<float> w(size_t(t.numel()));
    st.read_f32(t, w.data());
    want_f16.resize(w.size());
    f32_to_f16(want_f16.data(), w.data(), w.size());
  }

  const std::string rules = "--layer_config " + lc.string();
  const std::string calib = "--dataset builtin --nsamples 4 --seqlen 32";
  for (const auto& [name, extra] : std::vector<std::pair<std::string, std::string>>{
           {"rtn", "--iters 0 " + rules}, {"tuned", "--iters 3 --batch_size 2 " + calib + " " + rules}}) {
    auto r = run(name, extra);
    EXPECT_NE(r.err.find("group_size / sym do not apply to GGUF block types (1 layer(s), e.g. "
                         "model.layers.1.mlp.down_proj)"),
              std::string::npos)
        << r.err;
    // The F16 layer is kept, not quantized: 13 of the 14 linears count.
    EXPECT_NE(r.out.find("quantized 13 linear layers"), std::string::npos) << r.out;
    const GgufReader g = GgufReader::open(only_gguf(root / name));
    EXPECT_EQ(g.find_tensor("blk.0.ffn_down.weight")->type, GgmlType::F16) << name;
    EXPECT_EQ(g.find_tensor("blk.1.ffn_down.weight")->type, GgmlType::Q4_K) << name;
    for (int l = 0; l < 2; ++l)
      EXPECT_EQ(g.find_tensor("blk." + std::to_string(l) + ".attn_v.weight")->type, GgmlType::Q8_0) << name;
    // Layers no rule names keep the mix's type.
    EXPECT_EQ(g.find_tensor("blk.0.ffn_up.weight")->type, plain.find_tensor("blk.0.ffn_up.weight")->type) << name;
    EXPECT_EQ(g.find_tensor("blk.0.ffn_up.weight")->type, GgmlType::Q4_K) << name;
    // The 16-bit layer is the source, untouched by tuning.
    const std::vector<uint8_t> b = tensor_bytes(g, "blk.0.ffn_down.weight");
    ASSERT_EQ(b.size(), want_f16.size() * 2) << name;
    EXPECT_EQ(std::memcmp(b.data(), want_f16.data(), b.size()), 0) << name;
  }
  // A 16-bit mix quantizes nothing, and says so instead of printing a bits-per-weight of 0.
  auto f16 = run("f16", "--iters 0", "f16");
  EXPECT_NE(f16.out.find("quantized 0 linear layers"), std::string::npos) << f16.out;
  EXPECT_NE(f16.out.find("bits per weight: n/a"), std::string::npos) << f16.out;
  fs::remove_all(root);
}

}  // namespace
}  // namespace ar
