// GGUF of the MoE presets through the real binary: SignRound tuned under the GGUF mix (a few
// steps), written as stacked expert tensors, read back by `autoround eval`; and RTN with
// importance (per-expert calibration statistics). Unit-level checks of the same export are in
// tests/export/gguf_moe_test.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "io/gguf.h"
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

double ppl_of(const test::RunResult& r) {
  const size_t at = r.out.find("perplexity: ");
  return at == std::string::npos ? std::nan("") : std::stod(r.out.substr(at + 12));
}

class GgufMoeCli : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufMoeCli, SignRoundGgufRunReadsBack) {
  const std::string preset = GetParam();
  const fs::path root = test::make_temp_dir("gguf-moe-cli-" + preset);
  const fs::path model = root / "m";
  auto g = test::run_command(cli() + " generate --preset " + preset + " --output_dir " + model.string());
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const std::string data = " --dataset builtin --nsamples 4 --seqlen 32 --batch_size 2";
  auto q = test::run_command(cli() + " quantize --model " + model.string() + " --format gguf:q4_k_m --iters 3" + data +
                             " --output_dir " + (root / "tuned").string());
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(q.err.find("note: gguf"), std::string::npos) << "tuning did not target the GGUF types";
  auto rtn = test::run_command(cli() + " quantize --model " + model.string() + " --format gguf:q4_k_m --iters 0" + data +
                               " --output_dir " + (root / "rtn").string());
  ASSERT_EQ(rtn.exit_code, 0) << rtn.err;

  const fs::path tuned = only_gguf(root / "tuned"), imp = only_gguf(root / "rtn");
  ASSERT_FALSE(tuned.empty());
  const GgufReader r = GgufReader::open(tuned);
  const int64_t E = preset == "tiny-qwen3-moe" ? 8 : 4;
  const GgufTensorInfo& down = r.require_tensor("blk.0.ffn_down_exps.weight");
  EXPECT_EQ(down.dims.size(), 3u);
  EXPECT_EQ(down.dims.back(), E);
  EXPECT_EQ(r.require_tensor("blk.0.ffn_gate_inp.weight").type, GgmlType::F32);

  const std::string eval_args = " --dataset builtin --seqlen 32 --limit 4";
  const double p_fp = ppl_of(test::run_command(cli() + " eval --model " + model.string() + eval_args));
  auto et = test::run_command(cli() + " eval --model " + tuned.string() + eval_args);
  ASSERT_EQ(et.exit_code, 0) << et.err;
  auto ei = test::run_command(cli() + " eval --model " + imp.string() + eval_args);
  ASSERT_EQ(ei.exit_code, 0) << ei.err;
  const double p_tuned = ppl_of(et), p_imp = ppl_of(ei);
  std::printf("  %s: ppl fp %.4f, q4_k_m importance RTN %.4f, SignRound (3 steps) %.4f\n", preset.c_str(), p_fp,
              p_imp, p_tuned);
  // Random tiny weights: perplexity near the vocabulary size; 4-5 bit weights move it little.
  ASSERT_TRUE(std::isfinite(p_tuned) && std::isfinite(p_imp) && std::isfinite(p_fp));
  EXPECT_LT(std::fabs(p_tuned / p_fp - 1), 0.05);
  EXPECT_LT(std::fabs(p_imp / p_fp - 1), 0.05);
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(Presets, GgufMoeCli, ::testing::Values("tiny-qwen3-moe", "tiny-mixtral"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace ar
