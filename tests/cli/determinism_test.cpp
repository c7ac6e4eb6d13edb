// The same output bytes whatever the thread count (issue #18): SignRound and importance-weighted
// optimized RTN on stories260K with 1 and 2 threads.
#include <gtest/gtest.h>

#include <filesystem>

#include "support/files.h"
#include "support/fixtures.h"
#include "support/run.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

using test::tree_bytes;

void expect_same_for_1_and_2_threads(const std::string& tag, const std::string& args) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(calib, "models/stories260K/derived-data/stories260K_samples_seed1234.txt");
  const fs::path root = test::make_temp_dir("threads-" + tag);
  std::string out[2];
  for (int t = 1; t <= 2; ++t) {
    const fs::path dir = root / ("t" + std::to_string(t));
    auto r = test::run_command("OMP_NUM_THREADS=" + std::to_string(t) + " " + AR_CLI_PATH + " quantize --model " +
                               model.string() + " --dataset " + calib.string() + " --output_dir " + dir.string() +
                               " " + args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    out[t - 1] = tree_bytes(dir);
  }
  EXPECT_TRUE(out[0] == out[1]) << tag << ": outputs differ between 1 and 2 threads";
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

TEST(ThreadCount, SignRoundOutputIsByteIdentical) {
  expect_same_for_1_and_2_threads("signround", "--bits 4 --group_size 32 --iters 20 --nsamples 16 --seqlen 64 --batch_size 4");
  // (these settings gave different bytes for 1 and 2 threads before the GEMM was tiled)
}

// The FP formats' tuner (issue 19): NVFP4 (global scale, E4M3 block scales) and FP8_BLOCK (tiles
// spanning 128 rows: stories260K's 288-row linears have a short tile) in one run.
TEST(ThreadCount, FpSignRoundOutputIsByteIdentical) {
  expect_same_for_1_and_2_threads("fp-signround", "--scheme NVFP4 --iters 10 --nsamples 8 --seqlen 64 --batch_size 4 "
                                                  "--format fake --layer_config "
                                                  "'{\"re:mlp\\\\.\": {\"data_type\": \"fp\", \"group_size\": [128, 128]}}'");
}

TEST(ThreadCount, ImportanceOptRtnOutputIsByteIdentical) {
  expect_same_for_1_and_2_threads("optrtn", "--bits 3 --group_size 32 --iters 0 --nsamples 8 --seqlen 128 "
                                            "--format auto_round,gguf:q4_k_m");
}

}  // namespace
}  // namespace ar
