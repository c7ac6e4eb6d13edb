// UniqueFd: a descriptor is closed exactly once whichever way ownership moves, and every failure
// names the file. Liveness is asked of the kernel (fcntl) rather than of the object.
#include <fcntl.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <optional>

#include "core/error.h"
#include "io/unique_fd.h"
#include "io/work_file.h"
#include "support/fixtures.h"

namespace ar {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

class UniqueFdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::make_temp_dir("unique_fd");
    std::ofstream(dir_ / "a.bin", std::ios::binary) << "abcdef";
    std::ofstream(dir_ / "b.bin", std::ios::binary) << "xyz";
  }
  void TearDown() override { fs::remove_all(dir_); }
  UniqueFd open(const char* name) { return UniqueFd::open(dir_ / name, O_RDONLY, "open for reading"); }
  fs::path dir_;
};

TEST_F(UniqueFdTest, OpenFailuresNameTheFile) {
  EXPECT_THAT([&] { open("missing.bin"); },
              ThrowsMessage<Error>(AllOf(HasSubstr("missing.bin"), HasSubstr("cannot open for reading"))));
  UniqueFd d = UniqueFd::open(dir_, O_RDONLY, "open");  // a directory opens, but has no file size
  EXPECT_THAT([&] { d.regular_file_size(); }, ThrowsMessage<Error>(HasSubstr("not a regular file")));
  EXPECT_EQ(open("a.bin").regular_file_size(), 6u);
}

TEST_F(UniqueFdTest, DestructorCloses) {
  int raw = -1;
  {
    UniqueFd f = open("a.bin");
    raw = f.get();
    EXPECT_TRUE(fd_is_open(raw));
  }
  EXPECT_FALSE(fd_is_open(raw));
}

TEST_F(UniqueFdTest, MoveClosesExactlyOnce) {
  std::optional<UniqueFd> from(open("a.bin"));
  const int raw = from->get();
  {
    UniqueFd to = std::move(*from);
    EXPECT_FALSE(from->is_open());
    EXPECT_EQ(to.get(), raw);
    EXPECT_EQ(to.path(), dir_ / "a.bin");
  }
  EXPECT_FALSE(fd_is_open(raw));
  // open(2) hands out the lowest free number, so this reuses `raw`: if the moved-from object still
  // thought it owned `raw`, destroying it would close this unrelated descriptor.
  const int reused = ::open((dir_ / "b.bin").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_EQ(reused, raw);
  from.reset();
  EXPECT_TRUE(fd_is_open(reused));
  ::close(reused);
}

TEST_F(UniqueFdTest, MoveAssignClosesTheOldDescriptor) {
  UniqueFd a = open("a.bin");
  UniqueFd b = open("b.bin");
  const int ra = a.get(), rb = b.get();
  a = std::move(b);
  EXPECT_FALSE(fd_is_open(ra));
  EXPECT_EQ(a.get(), rb);
  EXPECT_TRUE(fd_is_open(rb));
  EXPECT_EQ(a.path(), dir_ / "b.bin");
  UniqueFd& self = a;
  a = std::move(self);
  EXPECT_TRUE(fd_is_open(rb));
  EXPECT_EQ(a.get(), rb);
}

TEST_F(UniqueFdTest, ReleaseAndCloseHandOverOrEndOwnership) {
  int raw = -1;
  {
    UniqueFd f = open("a.bin");
    raw = f.release();
    EXPECT_FALSE(f.is_open());
  }
  EXPECT_TRUE(fd_is_open(raw));
  ::close(raw);
  UniqueFd g = open("a.bin");
  const int rg = g.get();
  g.close();
  EXPECT_FALSE(fd_is_open(rg));
  EXPECT_FALSE(g.is_open());
  g.close();  // a second close is a no-op, not a close of whatever now has that number
}

TEST_F(UniqueFdTest, PositionedTransfersAndTheirErrors) {
  UniqueFd w = UniqueFd::open(dir_ / "c.bin", O_RDWR | O_CREAT | O_TRUNC, "create");
  w.write_all("0123456789", 10);
  w.write_exact_at(2, "AB", 2);
  char buf[4] = {};
  w.read_exact_at(1, buf, 4);
  EXPECT_EQ(std::string(buf, 4), "1AB4");
  EXPECT_THAT([&] { w.read_exact_at(8, buf, 4); },
              ThrowsMessage<Error>(AllOf(HasSubstr("c.bin"), HasSubstr("unexpected end of file at offset 10"))));
  w.sync();
}

TEST_F(UniqueFdTest, WorkFileChecksSizeOnOpen) {
  {
    WorkFile f = WorkFile::create(dir_ / "w.bin", 16);
    f.write_at(8, "hi", 2);
    WorkFile moved = std::move(f);
    char buf[2] = {};
    moved.read_at(8, buf, 2);
    EXPECT_EQ(std::string(buf, 2), "hi");
  }
  EXPECT_EQ(fs::file_size(dir_ / "w.bin"), 16u);
  EXPECT_NO_THROW(WorkFile::open(dir_ / "w.bin", 16));
  EXPECT_THAT([&] { WorkFile::open(dir_ / "w.bin", 32); },
              ThrowsMessage<Error>(AllOf(HasSubstr("w.bin"), HasSubstr("16 bytes, expected 32"))));
  EXPECT_THAT([&] { WorkFile::open(dir_ / "none.bin", 16); },
              ThrowsMessage<Error>(AllOf(HasSubstr("none.bin"), HasSubstr("cannot open work file"))));
}

}  // namespace
}  // namespace ar
