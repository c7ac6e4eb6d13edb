// The model forward against references computed by independent implementations (fixture READMEs):
// stories260K greedy ids and top-5 logits (torch fp32), qwen3-student top-5 logits + logsumexp.
#include "model/decoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "support/fixtures.h"

namespace ar {
namespace {

using json = nlohmann::json;

json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

// The references were printed with 5 decimals and computed with torch on 2 threads; the fixture
// README suggests ~1e-4 across machines, the issue asks for 1e-3.
constexpr double kLogitTol = 1e-3;

TEST(Decoder, Stories260KGreedyMatchesReference) {
  AR_REQUIRE_FIXTURE(dir, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(ref_path, "models/stories260K/derived-data/stories260K_reference.json");
  json ref = read_json(ref_path);
  std::vector<int32_t> expect = ref["greedy_from_bos"]["ids"].get<std::vector<int32_t>>();
  ASSERT_EQ(expect.size(), 101u);  // BOS + 100 generated
  Decoder d(dir);
  std::vector<int32_t> got = greedy_generate(d, {expect[0]}, int64_t(expect.size()) - 1);
  ASSERT_EQ(got.size(), expect.size());
  for (size_t i = 0; i < expect.size(); ++i) ASSERT_EQ(got[i], expect[i]) << "first mismatch at position " << i;
}

TEST(Decoder, Stories260KLogitsAfterBos) {
  AR_REQUIRE_FIXTURE(dir, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(ref_path, "models/stories260K/derived-data/stories260K_reference.json");
  json ref = read_json(ref_path)["logits_after_bos_top5"];
  Decoder d(dir);
  const int64_t C = d.config().hidden_size, V = d.config().vocab_size;
  std::vector<int32_t> ids = {1};
  std::vector<float> x(static_cast<size_t>(C)), logits(static_cast<size_t>(V));
  d.embed(x.data(), ids);
  d.forward_hidden(x.data(), 1, 1, {});
  d.logits(logits.data(), x.data(), 1, Precision::F32);
  for (int k = 0; k < 5; ++k) {
    int id = ref["ids"][k];
    EXPECT_NEAR(logits[size_t(id)], ref["logits"][k].get<double>(), kLogitTol) << "id " << id;
  }
}

TEST(Decoder, Qwen3StudentLogitsMatchReference) {
  AR_REQUIRE_FIXTURE(dir, "models/qwen3-student/hf");
  AR_REQUIRE_FIXTURE(ref_path, "models/qwen3-student/derived-data/student_reference.json");
  json ref = read_json(ref_path);
  Decoder d(dir);
  EXPECT_TRUE(d.config().qk_norm);
  const int64_t C = d.config().hidden_size, V = d.config().vocab_size;
  double max_err = 0;
  for (const json& seq : ref["sequences"]) {
    std::vector<int32_t> ids = seq["ids"].get<std::vector<int32_t>>();
    const int64_t T = int64_t(ids.size());
    std::vector<float> x(size_t(T * C)), logits(size_t(T * V));
    d.embed(x.data(), ids);
    d.forward_hidden(x.data(), 1, T, {});
    d.logits(logits.data(), x.data(), T, Precision::F32);
    for (int64_t t = 0; t < T; ++t) {
      const float* l = logits.data() + t * V;
      double m = *std::max_element(l, l + V), s = 0;
      for (int64_t v = 0; v < V; ++v) s += std::exp(double(l[v]) - m);
      double lse = m + std::log(s);
      EXPECT_NEAR(lse, seq["logsumexp"][t].get<double>(), kLogitTol) << "position " << t;
      for (int k = 0; k < 5; ++k) {
        int id = seq["top5_ids"][t][k];
        double want = seq["top5_logits"][t][k];
        max_err = std::max(max_err, std::abs(double(l[id]) - want));
        EXPECT_NEAR(l[id], want, kLogitTol) << "position " << t << " id " << id;
      }
      // The reference's top-1 must be our argmax too.
      EXPECT_EQ(std::max_element(l, l + V) - l, seq["top5_ids"][t][0].get<int64_t>()) << "position " << t;
    }
  }
  RecordProperty("max_abs_logit_error", std::to_string(max_err));
}

TEST(Decoder, RejectsOutOfVocabIds) {
  AR_REQUIRE_FIXTURE(dir, "models/stories260K/hf");
  Decoder d(dir);
  std::vector<float> x(64);
  std::vector<int32_t> ids = {512};
  EXPECT_THROW(d.embed(x.data(), ids), Error);
}

TEST(Decoder, BlockByBlockNllMatchesFullLogits) {
  // next_token_nll (vocab-chunked online logsumexp) against logits() + a plain logsumexp.
  AR_REQUIRE_FIXTURE(dir, "models/stories260K/hf");
  Decoder d(dir);
  const int64_t C = d.config().hidden_size, V = d.config().vocab_size, T = 40;
  std::vector<int32_t> ids(T);
  for (int64_t i = 0; i < T; ++i) ids[size_t(i)] = int32_t((i * 37 + 1) % V);
  std::vector<float> x(size_t(T * C)), logits(size_t(T * V));
  d.embed(x.data(), ids);
  d.forward_hidden(x.data(), 1, T, {});
  d.logits(logits.data(), x.data(), T, Precision::F32);
  std::vector<int32_t> tgt(ids.begin() + 1, ids.end());
  tgt.push_back(0);
  std::vector<double> nll(static_cast<size_t>(T));
  d.next_token_nll(nll.data(), x.data(), tgt.data(), T, Precision::F32);
  for (int64_t t = 0; t < T; ++t) {
    const float* l = logits.data() + t * V;
    double m = *std::max_element(l, l + V), s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(double(l[v]) - m);
    EXPECT_NEAR(nll[size_t(t)], m + std::log(s) - l[tgt[size_t(t)]], 1e-4);
  }
}

}  // namespace
}  // namespace ar
