// ReadFile / WriteFile / AtomicFile: errors name the file, reads past the end are refused,
// uncommitted atomic outputs vanish, committed ones replace the old file whole.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/atomic_output.h"
#include "io/file.h"
#include "support/fixtures.h"

namespace ar {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

TEST(ReadFile, ReadsRangesAndRefusesPastEnd) {
  auto dir = test::make_temp_dir("file");
  std::ofstream(dir / "f.bin", std::ios::binary) << "0123456789";
  ReadFile f(dir / "f.bin");
  EXPECT_EQ(f.size_bytes(), 10u);
  char buf[4] = {};
  f.read_at(3, buf, 4);
  EXPECT_EQ(std::string(buf, 4), "3456");
  EXPECT_THAT([&] { f.read_at(8, buf, 4); }, ::testing::ThrowsMessage<Error>(HasSubstr("f.bin")));
  ReadFile moved = std::move(f);
  moved.read_at(0, buf, 1);
  EXPECT_EQ(buf[0], '0');
  EXPECT_THAT([&] { ReadFile g(dir / "missing.bin"); }, ::testing::ThrowsMessage<Error>(HasSubstr("missing.bin")));
  EXPECT_THAT([&] { ReadFile g(dir); }, ::testing::ThrowsMessage<Error>(HasSubstr("not a regular file")));
  EXPECT_THAT([&] { read_text_file(dir / "f.bin", 5); }, ::testing::ThrowsMessage<Error>(HasSubstr("f.bin")));
  fs::remove_all(dir);
}

TEST(ReadTextFile, ReturnsExactBytesOrNamesTheFileAndProblem) {
  auto dir = test::make_temp_dir("text_file");
  const std::string bytes("line 1\r\nnul \0 and \xff byte\n", 25);
  std::ofstream(dir / "t.txt", std::ios::binary) << bytes;
  std::ofstream(dir / "empty.txt", std::ios::binary);
  EXPECT_EQ(read_text_file(dir / "t.txt"), bytes);
  EXPECT_EQ(read_text_file(dir / "empty.txt"), "");
  EXPECT_EQ(read_text_file(dir / "t.txt", bytes.size()), bytes);  // the cap is inclusive
  EXPECT_THAT([&] { read_text_file(dir / "missing.txt"); },
              ::testing::ThrowsMessage<Error>(
                  ::testing::AllOf(HasSubstr("missing.txt"), HasSubstr("cannot open for reading"))));
  EXPECT_THAT([&] { read_text_file(dir); },
              ::testing::ThrowsMessage<Error>(
                  ::testing::AllOf(HasSubstr(dir.string()), HasSubstr("not a regular file"))));
  EXPECT_THAT([&] { read_text_file(dir / "t.txt", bytes.size() - 1); },
              ::testing::ThrowsMessage<Error>(::testing::AllOf(HasSubstr("t.txt"), HasSubstr("25 bytes"))));
  fs::remove_all(dir);
}

TEST(AtomicFile, CommitRenamesAndDropRemoves) {
  auto dir = test::make_temp_dir("atomic");
  {
    AtomicFile a(dir / "out.txt");
    a.write("hello", 5);
    EXPECT_TRUE(fs::exists(dir / "out.txt.tmp"));
    EXPECT_FALSE(fs::exists(dir / "out.txt"));
    a.commit();
  }
  EXPECT_EQ(slurp(dir / "out.txt"), "hello");
  EXPECT_FALSE(fs::exists(dir / "out.txt.tmp"));
  {
    AtomicFile b(dir / "out.txt");
    b.write("partial", 7);
  }  // dropped without commit: the old file is untouched, the tmp is gone
  EXPECT_EQ(slurp(dir / "out.txt"), "hello");
  EXPECT_FALSE(fs::exists(dir / "out.txt.tmp"));
  // Many small writes larger than the buffer in total, and a big one that bypasses it.
  {
    AtomicFile c(dir / "big.bin");
    WriteFile& w = c.file();
    std::string piece(1000, 'x'), big(3 << 20, 'y');
    for (int i = 0; i < 2000; ++i) w.write(piece.data(), piece.size());
    w.write(big.data(), big.size());
    EXPECT_EQ(w.bytes_written(), 2000u * 1000 + big.size());
    c.commit();
  }
  EXPECT_EQ(fs::file_size(dir / "big.bin"), 2000u * 1000 + (3u << 20));
  write_file_atomic(dir / "out.txt", "replaced");
  EXPECT_EQ(slurp(dir / "out.txt"), "replaced");
  EXPECT_THAT([&] { write_file_atomic(dir / "no" / "such" / "dir.txt", "x"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("dir.txt")));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ar
