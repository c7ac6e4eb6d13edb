#include "core/memory.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/error.h"

namespace ar {
namespace {

TEST(Memory, ReadsRssAndPeak) {
  MemStats a = read_mem_stats();
  ASSERT_GT(a.rss_bytes, 0u);
  ASSERT_GE(a.peak_bytes, a.rss_bytes);
  {
    std::vector<char> big(64 << 20);
    std::memset(big.data(), 1, big.size());  // touch so it becomes resident
    MemStats b = read_mem_stats();
    EXPECT_GE(b.peak_bytes, a.rss_bytes + (60u << 20));
  }
}

TEST(Memory, ParseBytes) {
  EXPECT_EQ(parse_bytes("2G", "x"), 2ull << 30);  // a bare letter is binary, as docker -m reads it
  EXPECT_EQ(parse_bytes("64K", "x"), 65536u);
  EXPECT_EQ(parse_bytes("512MiB", "x"), 512ull << 20);
  EXPECT_EQ(parse_bytes("5GB", "x"), 5000000000u);
  EXPECT_EQ(parse_bytes("1234", "x"), 1234u);
  EXPECT_THROW(parse_bytes("lots", "--max_ram"), Error);
  EXPECT_THROW(parse_bytes("3Q", "--max_ram"), Error);
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
}

}  // namespace
}  // namespace ar
