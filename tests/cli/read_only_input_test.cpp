// The input model folder is never modified: quantize (SignRound with a calibration set, two output
// formats, a GGUF file) runs on a read-only copy and must succeed with every input file's bytes and
// mtime, and the folder's own mtime, unchanged. As root, permission bits are not enforced, so the
// run could write anyway without failing: the byte/mtime comparison is what catches that, and the
// test says permission enforcement could not be exercised.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <map>

#include "core/checksum.h"
#include "io/file.h"
#include "support/fixtures.h"
#include "support/run.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

struct Entry {
  uint64_t sum = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const Entry&) const = default;
};

int64_t mtime_ns(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Every file (bytes + mtime) and folder (mtime: a file created or removed inside changes it).
std::map<std::string, Entry> snapshot(const fs::path& root) {
  std::map<std::string, Entry> m;
  m["."] = {0, 0, mtime_ns(root)};
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    Entry x;
    x.mtime_ns = mtime_ns(e.path());
    if (e.is_regular_file()) {
      const std::string bytes = read_text_file(e.path(), kNoSizeLimit);
      x.sum = checksum64(bytes.data(), bytes.size());
      x.size = bytes.size();
    }
    m[fs::relative(e.path(), root).string()] = x;
  }
  return m;
}

void set_writable(const fs::path& root, bool writable) {
  const auto perms = fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write;
  const auto opt = writable ? fs::perm_options::add : fs::perm_options::remove;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) fs::permissions(e.path(), writable ? fs::perms::owner_write : perms, opt);
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_directory()) fs::permissions(e.path(), writable ? fs::perms::owner_write : perms, opt);
  fs::permissions(root, writable ? fs::perms::owner_write : perms, opt);
}

TEST(ReadOnlyInput, QuantizeLeavesAReadOnlyModelFolderUntouched) {
  const fs::path root = test::make_temp_dir("read-only-input");
  const fs::path model = root / "model";
  const fs::path fixture = test::find_fixture("models/stories260K/hf");
  if (!fixture.empty()) {
    fs::copy(fixture, model, fs::copy_options::recursive);
  } else {  // fresh clone without fixtures: a generated tiny model serves the same purpose
    auto g = test::run_command(std::string(AR_CLI_PATH) + " generate --preset tiny --num_layers 2 --output_dir " +
                               model.string() + " --seed 3");
    ASSERT_EQ(g.exit_code, 0) << g.err;
  }
  set_writable(model, false);
  const auto before = snapshot(model);
  ASSERT_GT(before.size(), 2u);

  const bool root_user = ::geteuid() == 0;
  if (root_user) {
    std::cout << "[ note ] running as root: permission bits are not enforced, so only the unchanged bytes "
                 "and mtimes are checked (permission enforcement could not be exercised)\n";
  } else {  // the copy really is read-only for us
    EXPECT_NE(::access(model.c_str(), W_OK), 0);
    EXPECT_NE(::access((model / "config.json").c_str(), W_OK), 0);
  }

  const std::string cmd = std::string(AR_CLI_PATH) + " quantize --model " + model.string() +
                          " --output_dir " + (root / "out").string() +
                          " --format auto_round,fake --iters 2 --dataset builtin --nsamples 2 --seqlen 32"
                          " --group_size 32 --bits 4";
  const auto r = test::run_command(cmd);
  EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.err;
  EXPECT_TRUE(fs::exists(root / "out" / "auto_round" / "config.json")) << "no auto_round output: " << r.err;
  EXPECT_TRUE(fs::exists(root / "out" / "fake" / "config.json")) << "no fake output: " << r.err;
  const auto g = test::run_command(std::string(AR_CLI_PATH) + " quantize --model " + model.string() +
                                   " --output_dir " + (root / "out_gguf").string() + " --format gguf:f16 --iters 0");
  EXPECT_EQ(g.exit_code, 0) << g.err;
  bool gguf_written = false;
  if (fs::exists(root / "out_gguf"))
    for (const auto& e : fs::directory_iterator(root / "out_gguf")) gguf_written |= e.path().extension() == ".gguf";
  EXPECT_TRUE(gguf_written) << g.err;

  const auto after = snapshot(model);
  EXPECT_EQ(after.size(), before.size()) << "files were added to or removed from the input folder";
  for (const auto& [name, e] : before) {
    auto it = after.find(name);
    ASSERT_NE(it, after.end()) << name << " disappeared";
    EXPECT_EQ(it->second.sum, e.sum) << name << ": bytes changed";
    EXPECT_EQ(it->second.size, e.size) << name << ": size changed";
    EXPECT_EQ(it->second.mtime_ns, e.mtime_ns) << name << ": mtime changed";
  }
  set_writable(model, true);
  if (!HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace ar
