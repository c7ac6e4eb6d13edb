// Perplexity per SPEC §5 against the fixture READMEs' reference numbers (torch fp32).
#include "pipeline/eval.h"

#include <gtest/gtest.h>

#include <cmath>

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

TEST(Perplexity, DumpedLogitsGiveTheSameNll) {
  // The logits handed to on_logits are the ones the perplexity was scored from: their
  // log-softmax at the next token sums to the same NLL, window by window, in order.
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(text, "text/tinystories-sample.txt");
  Tokenizer tok = Tokenizer::load(model);
  Decoder d(model);
  auto windows = cut_windows(load_eval_tokens(text, &tok), 64);
  windows.resize(5);
  EvalOptions opt;
  opt.activation_budget_bytes = 2 * 64 * 64 * 4;  // groups of two windows: 2 + 2 + 1
  std::vector<int64_t> seen;
  double nll = 0;
  opt.on_logits = [&](int64_t w, const float* lg, int64_t T, int64_t V) {
    ASSERT_EQ(T, 64);
    ASSERT_EQ(V, d.config().vocab_size);
    seen.push_back(w);
    for (int64_t t = 0; t + 1 < T; ++t) {
      const float* row = lg + t * V;
      double m = row[0], s = 0;
      for (int64_t j = 1; j < V; ++j) m = std::max(m, double(row[j]));
      for (int64_t j = 0; j < V; ++j) s += std::exp(double(row[j]) - m);
      nll += m + std::log(s) - double(row[windows[size_t(w)][size_t(t + 1)]]);
    }
  };
  EvalResult r = evaluate_perplexity(d, windows, opt);
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_NEAR(nll, r.nll_sum, 1e-5 * r.nll_sum);
  EXPECT_NEAR(r.nll_sum, evaluate_perplexity(d, windows, {}).nll_sum, 1e-7 * r.nll_sum);
}

}  // namespace
}  // namespace ar
