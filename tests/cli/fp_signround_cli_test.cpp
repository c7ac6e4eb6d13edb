// SignRound for the floating-point schemes end to end (issue 19, stage 3): stories260K tuned in
// MXFP4 and NVFP4 (the formats where tuning has most to win) lowers every block's loss below its
// RTN start (iteration 0 is RTN: v = 0, max_scale = 1) and gives a fake folder `eval` reads with
// a lower perplexity than RTN's on the same text.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <regex>
#include <string>

#include "support/fixtures.h"
#include "support/run.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

std::string cli() { return AR_CLI_PATH; }

double eval_ppl(const fs::path& model, const fs::path& text) {
  auto r = test::run_command(cli() + " eval --model " + model.string() + " --dataset " + text.string() +
                             " --seqlen 128");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const size_t at = r.out.find("perplexity: ");
  return at == std::string::npos ? std::nan("") : std::stod(r.out.substr(at + 12));
}

TEST(FpSignRoundCli, TuningBeatsRtnInMxfp4AndNvfp4) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(calib, "models/stories260K/derived-data/stories260K_samples_seed1234.txt");
  AR_REQUIRE_FIXTURE(text, "text/tinystories-sample.txt");
  const fs::path root = test::make_temp_dir("fp-signround");
  for (const char* name : {"MXFP4", "NVFP4"}) {
    SCOPED_TRACE(name);
    const std::string base = cli() + " quantize --model " + model.string() + " --format fake --scheme " + name;
    auto rtn = test::run_command(base + " --iters 0 --output_dir " + (root / (std::string(name) + "-rtn")).string());
    ASSERT_EQ(rtn.exit_code, 0) << rtn.err;
    auto tuned = test::run_command(base + " --iters 40 --nsamples 16 --seqlen 128 --batch_size 4 --dataset " +
                                   calib.string() + " --output_dir " + (root / name).string());
    ASSERT_EQ(tuned.exit_code, 0) << tuned.err;
    // "block 3: loss iter 0 0.0590715 -> best 0.0428001 (iter 38); ..."
    const std::regex line(R"(block (\d+): loss iter 0 ([0-9.eE+-]+) -> best ([0-9.eE+-]+))");
    int blocks = 0;
    for (auto it = std::sregex_iterator(tuned.err.begin(), tuned.err.end(), line); it != std::sregex_iterator();
         ++it) {
      const double start = std::stod((*it)[2]), best = std::stod((*it)[3]);
      EXPECT_LT(best, start * 0.97) << "block " << (*it)[1] << ": tuning did not lower the loss";
      ++blocks;
    }
    EXPECT_EQ(blocks, 5) << tuned.err;
    const double p_rtn = eval_ppl(root / (std::string(name) + "-rtn"), text), p_tuned = eval_ppl(root / name, text);
    std::printf("stories260K %s: RTN ppl %.4f, SignRound (40 steps) ppl %.4f\n", name, p_rtn, p_tuned);
    EXPECT_LT(p_tuned, p_rtn);
  }
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace ar
