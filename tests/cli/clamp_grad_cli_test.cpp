// --clamp_grad (quant/fake_quant_grad.h ClampGrad): strict by default, inclusive on request; the
// two are different tunings (different bytes), an unknown value is refused, and a work dir made
// with one is not resumed with the other.
#include <gtest/gtest.h>

#include <filesystem>

#include "support/files.h"
#include "support/fixtures.h"
#include "support/run.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

TEST(ClampGradCli, StrictByDefaultInclusiveOnRequest) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(calib, "models/stories260K/derived-data/stories260K_samples_seed1234.txt");
  const fs::path root = test::make_temp_dir("clamp-grad");
  const std::string base = std::string(AR_CLI_PATH) + " quantize --model " + model.string() + " --dataset " +
                           calib.string() + " --bits 2 --group_size 32 --asym --iters 6 --nsamples 8 --seqlen 64 " +
                           "--batch_size 4 --format fake --output_dir ";
  auto d = test::run_command(base + (root / "default").string());
  auto s = test::run_command(base + (root / "strict").string() + " --clamp_grad strict");
  auto i = test::run_command(base + (root / "inclusive").string() + " --clamp_grad INCLUSIVE");
  ASSERT_EQ(d.exit_code, 0) << d.err;
  ASSERT_EQ(s.exit_code, 0) << s.err;
  ASSERT_EQ(i.exit_code, 0) << i.err;
  EXPECT_TRUE(test::tree_bytes(root / "default") == test::tree_bytes(root / "strict"));
  EXPECT_FALSE(test::tree_bytes(root / "default") == test::tree_bytes(root / "inclusive"))
      << "2-bit asym has many weights on end codes: the conventions must tune differently";

  auto bad = test::run_command(base + (root / "bad").string() + " --clamp_grad maybe");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--clamp_grad"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(root / "bad"));
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace ar
