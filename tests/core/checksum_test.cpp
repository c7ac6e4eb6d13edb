#include "core/checksum.h"

#include <gtest/gtest.h>

#include <set>
#include <utility>
#include <vector>

namespace ar {
namespace {

TEST(Checksum, DetectsEverySingleBitFlipAndLengthChange) {
  std::vector<unsigned char> d(100);
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<unsigned char>(i * 37 + 11);
  const uint64_t h = checksum64(d.data(), d.size());
  EXPECT_EQ(h, checksum64(d.data(), d.size()));
  std::set<uint64_t> seen{h};
  for (size_t i = 0; i < d.size(); ++i)
    for (int b = 0; b < 8; ++b) {
      d[i] ^= static_cast<unsigned char>(1u << b);
      seen.insert(checksum64(d.data(), d.size()));
      d[i] ^= static_cast<unsigned char>(1u << b);
    }
  EXPECT_EQ(seen.size(), 1u + 800u);  // every flip gives a new value
  EXPECT_NE(checksum64(d.data(), 99), h);
  EXPECT_NE(checksum64(d.data(), d.size(), 1), h);  // the seed matters
}

TEST(Checksum, SwappedWordsDiffer) {
  std::vector<uint64_t> a = {1, 2, 3, 4, 5, 6, 7, 8}, b = {2, 1, 3, 4, 5, 6, 7, 8};
  EXPECT_NE(checksum64(a.data(), 64), checksum64(b.data(), 64));
  EXPECT_EQ(checksum_hex(0xabcull), "0000000000000abc");
}

// Checkpoints written before the streaming form existed must still verify: these values came from
// the one-shot checksum64 of session 13 (git show b0e1b50:src/core/checksum.cpp), compiled alone.
TEST(Checksum, ValuesOfTheOneShotForm) {
  std::vector<unsigned char> d(1000);
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<unsigned char>(i * 7 + 3);
  const std::pair<size_t, uint64_t> want[] = {{0, 0xf719702e2f998394ull},  {1, 0xaccc27c6a67ea86full},
                                              {31, 0x92648d65859d5f99ull}, {32, 0x9129f545c871f42bull},
                                              {33, 0x4cc682bb7dcf11b9ull}, {1000, 0x6eb0ba0e9577095dull}};
  for (const auto& [n, h] : want) EXPECT_EQ(checksum64(d.data(), n), h) << n << " bytes";
  EXPECT_EQ(checksum64(d.data(), 1000, 5), 0xf63ada1045cac20full);
}

// Pieces of any sizes, added in order, give the checksum of the whole.
TEST(Checksum, StreamInPiecesEqualsTheWhole) {
  std::vector<unsigned char> d(777);
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<unsigned char>(i * 31 + 11);
  const size_t cuts[][4] = {{0, 0, 0, 777}, {1, 1, 30, 745}, {31, 1, 64, 681}, {5, 100, 0, 672}, {400, 377, 0, 0}};
  for (uint64_t seed : {0ull, 9ull})
    for (const auto& c : cuts) {
      Checksum64Stream s(seed);
      size_t at = 0;
      for (size_t n : c) {
        s.add(d.data() + at, n);
        at += n;
      }
      ASSERT_EQ(at, d.size());
      EXPECT_EQ(s.value(), checksum64(d.data(), d.size(), seed)) << c[0] << "+" << c[1] << "+" << c[2];
    }
  EXPECT_EQ(Checksum64Stream().value(), checksum64(nullptr, 0));
}

}  // namespace
}  // namespace ar
