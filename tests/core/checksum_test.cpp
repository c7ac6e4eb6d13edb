#include "core/checksum.h"

#include <gtest/gtest.h>

#include <set>
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

}  // namespace
}  // namespace ar
