// Buffer: alignment, moves, grow-only reserve, and that a large block's pages go back to the
// kernel when it is released, however many large blocks came before it (the property streamed
// block weights rely on for a flat peak).
#include "core/buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "core/memory.h"

namespace ar {
namespace {

TEST(Buffer, AlignedMovableAndGrowOnly) {
  for (size_t n : {size_t(1), size_t(100), size_t(4096), size_t(3) << 20}) {
    Buffer b(n, "b");
    ASSERT_NE(b.data(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 64, 0u) << n;
    std::memset(b.data(), 0x5a, n);
    void* p = b.data();
    Buffer m(std::move(b));
    EXPECT_EQ(m.data(), p);
    EXPECT_EQ(m.size_bytes(), n);
    EXPECT_EQ(b.data(), nullptr);
    EXPECT_EQ(b.size_bytes(), 0u);
    m.reserve(n / 2);
    EXPECT_EQ(m.data(), p) << "reserve must keep a block that is large enough";
    m.reserve(2 * n + 64);
    EXPECT_EQ(m.size_bytes(), 2 * n + 64);
    m.zero();
    EXPECT_EQ(m.as<uint8_t>()[2 * n + 63], 0);
  }
  Buffer empty(0);
  EXPECT_EQ(empty.data(), nullptr);
}

TEST(Buffer, ReleasedLargeBlocksLeaveNoResidentPages) {
  // Through plain malloc, freeing one 16 MiB block raises glibc's mmap threshold, the next one
  // comes from the heap and stays resident after it is freed.
  constexpr size_t kBlock = size_t(16) << 20;
  const uint64_t before = read_mem_stats().rss_bytes;
  for (int i = 0; i < 4; ++i) {
    Buffer b(kBlock, "block");
    std::memset(b.data(), i + 1, kBlock);  // make every page resident
    EXPECT_GT(read_mem_stats().rss_bytes, before + kBlock / 2) << i;
  }
  const uint64_t after = read_mem_stats().rss_bytes;
  EXPECT_LT(after, before + kBlock / 4) << "RSS " << format_bytes(before) << " -> " << format_bytes(after);
}

}  // namespace
}  // namespace ar
