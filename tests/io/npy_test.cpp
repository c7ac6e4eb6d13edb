// NpyF32Writer: the exact header bytes NumPy's format 1.0 expects (checked against the layout
// written out by hand), data placement, and refusal of short or overlong arrays.
#include "io/npy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "support/files.h"
#include "support/fixtures.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) { return test::read_bytes(p); }

TEST(Npy, HeaderBytes) {
  const std::string h = npy_f32_header({2, 3, 5});
  // 10 fixed bytes + the 62-byte dict + spaces + '\n', so the data starts at byte 128.
  ASSERT_EQ(h.size(), 128u);
  EXPECT_EQ(h.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_EQ(uint8_t(h[8]) | (uint8_t(h[9]) << 8), 118);
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 5), }";
  EXPECT_EQ(h.substr(10, dict.size()), dict);
  EXPECT_EQ(h.substr(10 + dict.size(), 118 - dict.size() - 1), std::string(118 - dict.size() - 1, ' '));
  EXPECT_EQ(h.back(), '\n');
  // A 1-D shape keeps Python's trailing comma.
  EXPECT_NE(npy_f32_header({7}).find("'shape': (7,), }"), std::string::npos);
  // A long header still ends on a 64-byte boundary.
  EXPECT_EQ(npy_f32_header({123456789, 987654321, 5, 6, 7, 8, 9, 10, 11, 12}).size() % 64, 0u);
}

TEST(Npy, WritesDataAfterTheHeaderAndOnlyOnCommit) {
  fs::path dir = test::make_temp_dir("npy");
  fs::path p = dir / "a.npy";
  {
    NpyF32Writer w(p, {2, 2});
    const float a[] = {1.0f, -2.5f}, b[] = {3.0f, 0.125f};
    w.append(a, 2);
    w.append(b, 2);
    EXPECT_FALSE(fs::exists(p));
    w.commit();
  }
  const std::string bytes = slurp(p);
  const size_t off = npy_f32_header({2, 2}).size();
  ASSERT_EQ(bytes.size(), off + 16u);
  EXPECT_EQ(bytes.substr(0, off), npy_f32_header({2, 2}));
  float v[4];
  std::memcpy(v, bytes.data() + off, 16);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.5f);
  EXPECT_EQ(v[2], 3.0f);
  EXPECT_EQ(v[3], 0.125f);
  fs::remove_all(dir);
}

TEST(Npy, ShortAndOverlongArraysAreErrors) {
  fs::path dir = test::make_temp_dir("npy-bad");
  const float x[4] = {};
  {
    NpyF32Writer w(dir / "short.npy", {4});
    w.append(x, 3);
    EXPECT_THROW(w.commit(), Error);
  }
  EXPECT_FALSE(fs::exists(dir / "short.npy"));
  {
    NpyF32Writer w(dir / "long.npy", {3});
    EXPECT_THROW(w.append(x, 4), Error);
  }
  EXPECT_FALSE(fs::exists(dir / "long.npy"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ar
