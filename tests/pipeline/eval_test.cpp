// Perplexity per SPEC §5 against the fixture READMEs' reference numbers (torch fp32).
#include "pipeline/eval.h"

#include <gtest/gtest.h>

#include "calib/dataset.h"
#include "calib/tokenizer.h"
#include "model/decoder.h"
#include "support/fixtures.h"

namespace ar {
namespace {

EvalResult eval_text(const std::filesystem::path& model, const std::filesystem::path& text, int64_t seqlen) {
  Tokenizer tok = Tokenizer::load(model);
  Decoder d(model);
  auto windows = cut_windows(load_eval_tokens(text, &tok), seqlen);
  return evaluate_perplexity(d, windows, {});
}

TEST(Perplexity, Stories260KTinyStories) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(text, "text/tinystories-sample.txt");
  EvalResult r = eval_text(model, text, 512);
  EXPECT_EQ(r.windows, 30);
  EXPECT_NEAR(r.perplexity, 5.558252, 1e-3);
}

TEST(Perplexity, Stories260KWikiText2) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(text, "text/wikitext2-test.txt");
  EvalResult r = eval_text(model, text, 512);
  EXPECT_EQ(r.windows, 1591);
  EXPECT_NEAR(r.perplexity, 122.3344, 0.05);
}

TEST(Perplexity, Qwen3StudentHeldOutIds) {
  // 400 separate 256-token sequences, each scored on its own (README: 3.8451).
  AR_REQUIRE_FIXTURE(model, "models/qwen3-student/hf");
  AR_REQUIRE_FIXTURE(ids, "models/qwen3-student/derived-data/heldout_400x256.ids.json");
  Decoder d(model);
  auto windows = cut_windows(load_eval_tokens(ids, nullptr), 256);
  ASSERT_EQ(windows.size(), 400u);
  EvalResult r = evaluate_perplexity(d, windows, {});
  EXPECT_NEAR(r.perplexity, 3.845069, 1e-3);
}

TEST(Perplexity, Qwen3StudentTinyStories256) {
  AR_REQUIRE_FIXTURE(model, "models/qwen3-student/hf");
  AR_REQUIRE_FIXTURE(text, "text/tinystories-sample.txt");
  EvalResult r = eval_text(model, text, 256);
  EXPECT_EQ(r.windows, 60);
  EXPECT_NEAR(r.perplexity, 5.835159, 1e-3);
}

TEST(Perplexity, GroupingDoesNotChangeTheResult) {
  // Windows processed one per group vs all in one group. The lm_head GEMM then runs with other
  // row counts, whose blocking sums in another order: equal to float rounding, not bit for bit.
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(text, "text/tinystories-sample.txt");
  Tokenizer tok = Tokenizer::load(model);
  Decoder d(model);
  auto windows = cut_windows(load_eval_tokens(text, &tok), 128);
  windows.resize(6);
  EvalOptions one;
  one.activation_budget_bytes = 1;  // forces groups of one window
  EvalResult a = evaluate_perplexity(d, windows, one), b = evaluate_perplexity(d, windows, {});
  EXPECT_EQ(a.tokens_scored, 6 * 127);
  EXPECT_NEAR(a.nll_sum, b.nll_sum, 1e-7 * b.nll_sum);
}

}  // namespace
}  // namespace ar
