// Run control (issue #20): one run per output / work dir (lock file with the owner's pid, stale
// locks of killed runs taken over) and SIGINT/SIGTERM stopping a run at a safe point with the
// checkpoint kept, so --resume finishes it to the same bytes.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "pipeline/run_lock.h"
#include "support/child.h"
#include "support/files.h"
#include "support/fixtures.h"
#include "support/run.h"


namespace ar {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string cli() { return AR_CLI_PATH; }

using test::tree_bytes;
std::string read_all(const fs::path& p) { return test::read_bytes(p); }

TEST(RunLock, SecondHolderIsRefusedWithThePid) {
  const fs::path dir = test::make_temp_dir("runlock") / "out";
  std::vector<std::string> notes;
  auto log = [&](const std::string& s) { notes.push_back(s); };
  {
    RunLock a(dir, "output folder", log);
    EXPECT_TRUE(fs::exists(lock_path_for(dir)));
    EXPECT_EQ(read_all(lock_path_for(dir)), std::to_string(::getpid()) + "\n");
    try {
      RunLock b(dir, "output folder", log);
      FAIL() << "a second lock on the same folder was granted";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("pid " + std::to_string(::getpid())), std::string::npos) << m;
      EXPECT_NE(m.find("output folder"), std::string::npos) << m;
    }
  }
  EXPECT_FALSE(fs::exists(lock_path_for(dir))) << "the lock file outlived its run";
  RunLock again(dir, "output folder", log);
  EXPECT_TRUE(notes.empty());
  fs::remove_all(dir.parent_path());
}

TEST(RunLock, StaleLockOfADeadRunIsTakenOver) {
  const fs::path dir = test::make_temp_dir("runlock-stale") / "out";
  // A pid that certainly belonged to a process that is gone now: a child we reaped.
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ::waitpid(dead, nullptr, 0);
  { std::ofstream(lock_path_for(dir)) << dead << "\n"; }
  std::vector<std::string> notes;
  RunLock l(dir, "output folder", [&](const std::string& s) { notes.push_back(s); });
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("pid " + std::to_string(dead)), std::string::npos) << notes[0];
  EXPECT_EQ(read_all(lock_path_for(dir)), std::to_string(::getpid()) + "\n");
  fs::remove_all(dir.parent_path());
}

TEST(RunLock, PathSitsBesideTheFolder) {
  EXPECT_EQ(lock_path_for("/a/b/out"), fs::path("/a/b/.out.lock"));
  EXPECT_EQ(lock_path_for("/a/b/out/"), fs::path("/a/b/.out.lock"));
  EXPECT_EQ(lock_path_for("out"), fs::path(".out.lock"));
}

using test::Child;

// One run is locked against a second on the same output; SIGINT stops the first at its next
// safe point with the checkpoint kept; --resume finishes it to the bytes of an uninterrupted run.
// 200 iterations (60 until session 19): the first run must outlast the second's start and refusal
// under a loaded -j2 suite, and the steps got faster.
TEST(RunControl, SecondRunRefusedThenSigintKeepsCheckpointAndResumeMatches) {
  const fs::path root = test::make_temp_dir("run-control");
  auto g = test::run_command(cli() + " generate --preset tiny-qwen3 --num_layers 6 --seed 3 --output_dir " +
                             (root / "m").string());
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const std::string base = cli() + " quantize --model " + (root / "m").string() +
                           " --bits 4 --group_size 32 --iters 200 --batch_size 2 --dataset builtin --nsamples 6 --seqlen 32";
  const fs::path out = root / "out", work = root / "work";
  const std::string args = " --output_dir " + out.string() + " --work_dir " + work.string();
  Child a;
  ASSERT_TRUE(a.spawn("exec " + base + args + " > " + (root / "a.log").string() + " 2>&1"));
  ASSERT_TRUE(a.wait_for_file(work / "checkpoint.json")) << read_all(root / "a.log");

  // A second run on the same output and work dir: refused at once, naming the first one's pid.
  auto b = test::run_command(base + args);
  EXPECT_EQ(b.exit_code, 1) << b.err;
  EXPECT_NE(b.err.find("another autoround run (pid " + std::to_string(a.pid) + ")"), std::string::npos) << b.err;
  ASSERT_FALSE(a.done) << "the first run ended before the signal; make it longer";

  const auto sent = Clock::now();
  ::kill(a.pid, SIGINT);
  ASSERT_TRUE(a.wait_for(std::chrono::seconds(30)));
  const double secs = std::chrono::duration<double>(Clock::now() - sent).count();
  EXPECT_LT(secs, 5.0) << "SIGINT took " << secs << " s to stop the run";
  ASSERT_TRUE(WIFEXITED(a.status)) << "killed by the signal instead of stopping cleanly";
  EXPECT_EQ(WEXITSTATUS(a.status), 128 + SIGINT);
  const std::string log = read_all(root / "a.log");
  EXPECT_NE(log.find("stopped: interrupted by SIGINT"), std::string::npos) << log;
  EXPECT_NE(log.find("--resume"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(out)) << "an interrupted run left an output folder";
  EXPECT_TRUE(fs::exists(work / "checkpoint.json"));
  EXPECT_FALSE(fs::exists(lock_path_for(out))) << "the lock file outlived the run";

  auto resumed = test::run_command(base + args + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  auto ref = test::run_command(base + " --output_dir " + (root / "ref").string() + " --work_dir " +
                               (root / "refwork").string());
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  EXPECT_TRUE(tree_bytes(out) == tree_bytes(root / "ref")) << "resumed output differs from an uninterrupted run";
  if (!HasFailure()) fs::remove_all(root);
}

// The file system refusing the final output (a file size limit between the checkpoint's block
// files and the output shard): a clear error naming the file, no output folder, the checkpoint
// kept; --resume without the limit writes what an unhindered run writes.
TEST(RunControl, OutputWriteFailureKeepsCheckpointAndResumes) {
  const fs::path root = test::make_temp_dir("run-control-full");
  auto g = test::run_command(cli() + " generate --preset tiny-qwen3 --num_layers 6 --seed 3 --output_dir " +
                             (root / "m").string());
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const std::string base = cli() + " quantize --model " + (root / "m").string() +
                           " --bits 4 --group_size 32 --iters 2 --batch_size 2 --dataset builtin --nsamples 4 "
                           "--seqlen 32 --cache ram";
  const fs::path out = root / "out", work = root / "work";
  const std::string args = " --output_dir " + out.string() + " --work_dir " + work.string();
  // 1000 blocks of 512 or 1024 bytes: above a block file (~270 KB), below the shard (~1.2 MB).
  auto lim = test::run_command("ulimit -f 1000 && " + base + args);
  EXPECT_EQ(lim.exit_code, 1) << lim.err;
  EXPECT_NE(lim.err.find("model.safetensors"), std::string::npos) << lim.err;
  EXPECT_NE(lim.err.find("File too large"), std::string::npos) << lim.err;
  EXPECT_NE(lim.err.find("--resume"), std::string::npos) << lim.err;
  EXPECT_FALSE(fs::exists(out)) << "a failed run left an output folder";
  EXPECT_TRUE(fs::exists(work / "checkpoint.json"));
  auto resumed = test::run_command(base + args + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  auto ref = test::run_command(base + " --output_dir " + (root / "ref").string() + " --work_dir " +
                               (root / "refwork").string());
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  EXPECT_TRUE(tree_bytes(out) == tree_bytes(root / "ref"));
  if (!HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace ar
