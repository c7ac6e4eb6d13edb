// auto_awq and the auto_round FP formats end to end through the real binary (issue 19): stories260K
// (f32, so its fake output holds the dequantized weights exactly) quantized into auto_round (or
// auto_awq) and fake in one run; every linear the packed folder stores quantized reads back
// (the Decoder, as `eval` reads it) to exactly the fake folder's weights, and `eval` runs on it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/config.h"
#include "model/fp_packed_linear.h"
#include "model/packed_linear.h"
#include "model/weights.h"
#include "support/fixtures.h"
#include "support/run.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

// Quantizes `model` with `args` into <out>/<packed> and <out>/fake, then compares every block
// linear the packed folder stores quantized; returns how many were compared.
int compare_with_fake(const fs::path& model, const fs::path& out, const std::string& args, const std::string& packed) {
  auto r = test::run_command(std::string(AR_CLI_PATH) + " quantize --model " + model.string() + " --output_dir " +
                             out.string() + " --format " + packed + ",fake " + args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return 0;
  const fs::path pdir = out / packed, fdir = out / "fake";
  const SafetensorsReader st = SafetensorsReader::open(pdir), fake = SafetensorsReader::open(fdir);
  const ModelConfig cfg = load_model_config(pdir);
  int n = 0;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    BlockWeights b = load_block(st, cfg, l);
    for (int i = 0; i < kDenseLinears; ++i) {
      const LinearWeights& lw = *block_linears(b, i);
      if (!has_fp_packed_linear(st, lw.name) && !has_packed_linear(st, lw.name)) continue;  // kept 16-bit
      const TensorInfo& t = fake.require(lw.name + ".weight");
      std::vector<float> want(size_t(t.numel()));
      fake.read_f32(t, want.data());
      EXPECT_EQ(lw.w.size_bytes(), want.size() * 4) << lw.name;
      if (lw.w.size_bytes() != want.size() * 4) continue;
      EXPECT_EQ(std::memcmp(lw.w.data(), want.data(), lw.w.size_bytes()), 0) << lw.name << " " << args;
      ++n;
    }
  }
  auto e = test::run_command(std::string(AR_CLI_PATH) + " eval --model " + pdir.string() +
                             " --dataset builtin --seqlen 64 --limit 2");
  EXPECT_EQ(e.exit_code, 0) << e.err;
  EXPECT_NE(e.out.find("perplexity: "), std::string::npos) << e.out;
  return n;
}

TEST(AwqFpCli, PackedFoldersReadBackAsTheFakeWeights) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  const fs::path root = test::make_temp_dir("awq-fp-cli");
  // stories260K: hidden 64, intermediate 172: down_proj's 172 inputs are no multiple of the MX / NV
  // blocks (kept 16-bit); FP8 stores every layer.
  EXPECT_EQ(compare_with_fake(model, root / "mxfp4", "--scheme MXFP4 --iters 0", "auto_round"), 6 * 5);
  EXPECT_EQ(compare_with_fake(model, root / "mxfp8", "--scheme MXFP8 --iters 0", "auto_round"), 6 * 5);
  EXPECT_EQ(compare_with_fake(model, root / "nvfp4", "--scheme NVFP4 --iters 0", "auto_round"), 6 * 5);
  EXPECT_EQ(compare_with_fake(model, root / "fp8", "--scheme FP8 --iters 0", "auto_round"), 7 * 5);
  EXPECT_EQ(compare_with_fake(model, root / "fp8b", "--scheme FP8_BLOCK --iters 0", "auto_round"), 7 * 5);
  // MXFP4 with MXFP8 o_proj layers: one auto_round file, their bits in extra_config (AutoRound's layout).
  const std::string mixed = R"( --layer_config '{"o_proj": {"bits": 8, "data_type": "mx_fp"}}')";
  EXPECT_EQ(compare_with_fake(model, root / "mx-mixed", "--scheme MXFP4 --iters 0" + mixed, "auto_round"), 6 * 5);
  {
    const nlohmann::json qc = nlohmann::json::parse(
        std::ifstream(root / "mx-mixed" / "auto_round" / "config.json"))["quantization_config"];
    EXPECT_EQ(qc["bits"], 4);
    EXPECT_EQ(qc["data_type"], "mx_fp");
    EXPECT_EQ(qc["extra_config"]["model.layers.2.self_attn.o_proj"], nlohmann::json({{"bits", 8}}));
    EXPECT_EQ(qc["extra_config"]["model.layers.2.mlp.down_proj"]["bits"], 16);  // 172 inputs: kept
    EXPECT_FALSE(qc["extra_config"].contains("model.layers.2.self_attn.q_proj"));
  }
  // AWQ: the 64 x 64 attention projections pack (group 32); the MLP's 172 does not (kept 16-bit).
  EXPECT_EQ(compare_with_fake(model, root / "awq-a", "--bits 4 --group_size 32 --asym --iters 0", "auto_awq"), 4 * 5);
  EXPECT_EQ(compare_with_fake(model, root / "awq-s", "--bits 4 --group_size 32 --sym --iters 0 --disable_opt_rtn", "auto_awq"), 4 * 5);
  // SignRound-tuned (a few steps): the tuned codes and scales are what both folders hold.
  const std::string tune = " --iters 3 --nsamples 2 --seqlen 32 --dataset builtin";
  EXPECT_EQ(compare_with_fake(model, root / "nvfp4-tuned", "--scheme NVFP4" + tune, "auto_round"), 6 * 5);
  EXPECT_EQ(compare_with_fake(model, root / "awq-tuned", "--bits 4 --group_size 32 --asym" + tune, "auto_awq"), 4 * 5);
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace ar
