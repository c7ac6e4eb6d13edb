// What run_quantize reports per block (the Python API's per-block losses) and calibration given in
// memory (the Python API's lists) instead of a dataset file.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include "calib/dataset.h"
#include "core/error.h"
#include "pipeline/quantize.h"
#include "pipeline/run_setup.h"
#include "support/fixtures.h"

namespace ar {
namespace {

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

QuantizeOptions tuned_options(const std::filesystem::path& model, const std::filesystem::path& out) {
  QuantizeOptions o;
  o.model_dir = model;
  o.output_dir = out;
  o.formats = {"fake"};
  o.scheme = {4, 32, true};
  o.tune.iters = 6;
  o.tune.batch_size = 4;
  o.nsamples = 8;
  o.seqlen = 32;
  return o;
}

TEST(QuantizeReport, EveryBlockWithItsLossesAndTheCallbackSeesThemInOrder) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(ids, "models/stories260K/derived-data/stories260K_samples_seed1234.ids.json");
  auto dir = test::make_temp_dir("quantize-report");
  QuantizeOptions o = tuned_options(model, dir / "file");
  o.dataset = ids.string();
  std::vector<int64_t> seen;
  o.on_block = [&](const BlockReport& b, int64_t n) {
    seen.push_back(b.layer);
    EXPECT_EQ(n, 5);
  };
  const QuantizeReport r = run_quantize(o);
  ASSERT_EQ(r.blocks.size(), 5u);  // stories260K has 5 blocks
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  for (size_t l = 0; l < r.blocks.size(); ++l) {
    const BlockReport& b = r.blocks[l];
    EXPECT_EQ(b.layer, int64_t(l));
    EXPECT_FALSE(b.resumed);
    ASSERT_TRUE(std::isfinite(b.loss_before) && std::isfinite(b.loss_after)) << "block " << l;
    EXPECT_LE(b.loss_after, b.loss_before) << "the best loss includes the first step's";
    EXPECT_TRUE(b.best_iter >= 0 && b.best_iter < 6);
    EXPECT_GT(b.peak_rss_bytes, 0u);
  }

  // The same ids given in memory: the same output bytes.
  o.on_block = nullptr;
  o.dataset.clear();
  o.dataset_ids = read_token_id_file(ids);
  o.output_dir = dir / "memory";
  run_quantize(o);
  const std::string a = file_bytes(dir / "file" / "model.safetensors");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == file_bytes(dir / "memory" / "model.safetensors"));
}

TEST(QuantizeReport, RtnBlocksHaveNoLosses) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  QuantizeOptions o = tuned_options(model, test::make_temp_dir("quantize-report-rtn") / "out");
  o.tune.iters = 0;
  const QuantizeReport r = run_quantize(o);
  ASSERT_EQ(r.blocks.size(), 5u);
  for (const BlockReport& b : r.blocks) EXPECT_TRUE(std::isnan(b.loss_before) && std::isnan(b.loss_after));
}

TEST(QuantizeReport, OneCalibrationSourceOnly) {
  QuantizeOptions o;
  o.dataset = "calib.txt";
  o.dataset_texts = {"a text"};
  try {
    check_quantize_options(o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("give one of a dataset file, texts or token ids"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ar
