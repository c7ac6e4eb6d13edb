#include "calib/calib_set.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"

namespace ar {
namespace {

std::vector<int32_t> doc(int32_t first, size_t n) {
  std::vector<int32_t> d(n);
  for (size_t i = 0; i < n; ++i) d[i] = first + int32_t(i);
  return d;
}

TEST(CalibSet, LongDocumentsAreTruncatedAndShuffled) {
  std::vector<std::vector<int32_t>> docs = {doc(0, 10), doc(100, 3), doc(200, 8), doc(300, 12)};
  CalibSet s = build_calib_set(docs, {2, 8, 42});
  ASSERT_EQ(s.samples.size(), 2u);
  EXPECT_FALSE(s.concatenated);
  for (const auto& smp : s.samples) {
    ASSERT_EQ(smp.size(), 8u);
    // Each sample is the first 8 ids of one of the long documents (never the 3-token one).
    EXPECT_TRUE(smp[0] == 0 || smp[0] == 200 || smp[0] == 300) << smp[0];
    EXPECT_EQ(smp[7], smp[0] + 7);
  }
  EXPECT_NE(s.samples[0][0], s.samples[1][0]);
  // Same seed, same choice; the shuffle is our own, so this holds on every platform.
  EXPECT_EQ(build_calib_set(docs, {2, 8, 42}).samples, s.samples);
}

TEST(CalibSet, FallsBackToConcatenation) {
  std::vector<std::vector<int32_t>> docs = {doc(0, 5), doc(100, 5), doc(200, 5)};
  CalibSet s = build_calib_set(docs, {4, 4, 1});
  EXPECT_TRUE(s.concatenated);
  EXPECT_EQ(s.samples.size(), 3u);  // 15 tokens -> 3 windows of 4, fewer than asked
  EXPECT_NE(s.note.find("fewer than --nsamples 4"), std::string::npos) << s.note;
  EXPECT_THROW(build_calib_set({doc(0, 3)}, {1, 4, 0}), Error);
}

TEST(CalibSet, SeededShuffleIsAPermutation) {
  std::vector<size_t> idx(100);
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  auto a = idx;
  seeded_shuffle(a, 7);
  EXPECT_NE(a, idx);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, idx);
}

TEST(CalibSet, TextDocumentsSplitOnBlankLines) {
  auto d = split_text_documents("one\ntwo\n\nthree\n\n\n\n  \n\nfour");
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0], "one\ntwo");
  EXPECT_EQ(d[1], "three");
  EXPECT_EQ(d[2], "four");
}

}  // namespace
}  // namespace ar
