// Data-parallel quantize under mpirun (issue 17): two processes write the bytes one process
// writes for the same global batch (RTN, optimized RTN, SignRound with --partitions 2), a rank
// killed with SIGKILL ends the job within seconds with the rank named, and --resume with the same
// number of processes finishes it to the same bytes (another number is refused).
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "pipeline/run_lock.h"
#include "support/child.h"
#include "support/files.h"
#include "support/fixtures.h"
#include "support/run.h"

namespace ar {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

#ifdef AR_MPIEXEC
#define REQUIRE_MPI() \
  do {                \
  } while (0)
const char* kMpiexec = AR_MPIEXEC;
#else
#define REQUIRE_MPI() GTEST_SKIP() << "built without MPI (install libopenmpi-dev and reconfigure)"
const char* kMpiexec = "";
#endif

std::string cli() { return AR_CLI_PATH; }

// Runs as root in CI (Open MPI refuses that unless told); one OpenMP thread per rank on 2 cores;
// idle ranks yield instead of spinning, so a loaded machine stays usable.
std::string mpirun(int np) {
  return std::string("env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1 "
                     "OMP_NUM_THREADS=1 ") +
         kMpiexec + " -np " + std::to_string(np) + " --oversubscribe --bind-to none ";
}

fs::path tiny_model(const fs::path& root, int layers) {
  const fs::path m = root / "m";
  auto g = test::run_command(cli() + " generate --preset tiny-qwen3 --num_layers " + std::to_string(layers) +
                             " --seed 5 --output_dir " + m.string());
  EXPECT_EQ(g.exit_code, 0) << g.err;
  return m;
}

TEST(DataParallel, TwoProcessesWriteTheBytesOfOne) {
  REQUIRE_MPI();
  const fs::path root = test::make_temp_dir("mpi-bytes");
  const fs::path m = tiny_model(root, 3);
  struct Case {
    const char* name;
    std::string args;    // both runs
    std::string single;  // the one-process run only
  };
  const Case cases[] = {
      {"rtn", "--iters 0 --disable_opt_rtn --format auto_round,gguf:q4_0", ""},
      {"opt-rtn", "--iters 0 --dataset builtin --nsamples 5 --format auto_round,gguf:q4_k_m", ""},
      {"signround", "--iters 5 --dataset builtin --nsamples 5 --batch_size 3", "--partitions 2"},
      // Tuned under the GGUF types, starting from the importance-weighted RTN (sums passed rank to rank).
      {"signround-gguf", "--iters 3 --dataset builtin --nsamples 5 --batch_size 2 --format gguf:q4_k_m", "--partitions 2"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string base = cli() + " quantize --model " + m.string() + " --bits 4 --group_size 32 --seqlen 32 " + c.args;
    const fs::path one = root / (std::string(c.name) + "-1"), two = root / (std::string(c.name) + "-2");
    auto a = test::run_command("OMP_NUM_THREADS=1 " + base + " " + c.single + " --output_dir " + one.string());
    ASSERT_EQ(a.exit_code, 0) << a.err;
    auto b = test::run_command(mpirun(2) + base + " --output_dir " + two.string());
    ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
    EXPECT_TRUE(test::tree_bytes(one) == test::tree_bytes(two)) << "2 processes wrote other bytes than 1";
    if (std::string(c.name) == "signround") {
      EXPECT_NE(b.out.find("data-parallel: 2 processes"), std::string::npos) << b.out;
      EXPECT_EQ(b.out.find("linear layers in"), b.out.rfind("linear layers in")) << "only rank 0 reports:\n" << b.out;
    }
  }
  if (!HasFailure()) fs::remove_all(root);
}

TEST(DataParallel, BadPartitionCountsAreRefused) {
  REQUIRE_MPI();
  const fs::path root = test::make_temp_dir("mpi-refuse");
  const fs::path m = tiny_model(root, 1);
  auto r = test::run_command(mpirun(2) + cli() + " quantize --model " + m.string() +
                             " --iters 2 --dataset builtin --nsamples 1 --seqlen 16 --output_dir " + (root / "o").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("2 sample partitions (processes) need at least 2 calibration samples"), std::string::npos)
      << r.out << r.err;
  auto p = test::run_command(mpirun(2) + cli() + " quantize --model " + m.string() +
                             " --iters 2 --dataset builtin --nsamples 4 --seqlen 16 --partitions 3 --output_dir " +
                             (root / "p").string());
  EXPECT_NE(p.exit_code, 0);
  EXPECT_NE((p.out + p.err).find("--partitions 3: a run of 2 processes has one sample partition per process"),
            std::string::npos)
      << p.out << p.err;
  EXPECT_FALSE(fs::exists(root / "p"));
  EXPECT_FALSE(fs::exists(root / "o"));
  if (!HasFailure()) fs::remove_all(root);
}

TEST(DataParallel, KilledRankEndsTheJobAndResumeMatches) {
  REQUIRE_MPI();
  const fs::path root = test::make_temp_dir("mpi-kill");
  const fs::path m = tiny_model(root, 6);
  const std::string base = cli() + " quantize --model " + m.string() +
                           " --bits 4 --group_size 32 --iters 40 --batch_size 2 --dataset builtin --nsamples 4 --seqlen 32";
  const fs::path out = root / "out", work = root / "work";
  const std::string args = " --output_dir " + out.string() + " --work_dir " + work.string();
  test::Child job;
  ASSERT_TRUE(job.spawn("exec " + mpirun(2) + base + args + " > " + (root / "a.log").string() + " 2>&1"));
  // Rank 1 keeps its checkpoint in work/rank-1 and its pid in the lock beside it.
  const fs::path rank1_manifest = work / "rank-1" / "checkpoint.json";
  bool ready = false;
  for (int i = 0; i < 60000 && !ready; ++i) {
    std::error_code ec;
    ready = fs::exists(rank1_manifest, ec) && fs::exists(work / "checkpoint.json", ec);
    if (!ready && job.wait_for(std::chrono::milliseconds(5))) break;
  }
  ASSERT_TRUE(ready) << "no checkpoint appeared: " << test::read_bytes(root / "a.log");
  ASSERT_FALSE(job.done) << "the run ended before the kill; make it longer";
  const std::string pid_text = test::read_bytes(lock_path_for(work / "rank-1"));
  const pid_t rank1 = pid_t(std::stol(pid_text));
  ASSERT_GT(rank1, 0);
  const auto sent = Clock::now();
  ASSERT_EQ(::kill(rank1, SIGKILL), 0);
  ASSERT_TRUE(job.wait_for(std::chrono::seconds(60))) << "the job did not end after a rank died";
  const double secs = std::chrono::duration<double>(Clock::now() - sent).count();
  EXPECT_LT(secs, 10.0) << "the other rank took " << secs << " s to stop";
  EXPECT_FALSE(WIFEXITED(job.status) && WEXITSTATUS(job.status) == 0) << "mpirun reported success";
  const std::string log = test::read_bytes(root / "a.log");
  EXPECT_NE(log.find("rank 1"), std::string::npos) << "the error does not name the rank:\n" << log;
  EXPECT_FALSE(fs::exists(out)) << "a failed run left an output folder";

  // The same number of processes resumes; another is refused, naming the number.
  auto wrong = test::run_command("OMP_NUM_THREADS=1 " + base + args + " --resume");
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.err.find("made by 2 processes"), std::string::npos) << wrong.err;
  auto resumed = test::run_command(mpirun(2) + base + args + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find("resumed:"), std::string::npos) << resumed.out;
  auto ref = test::run_command("OMP_NUM_THREADS=1 " + base + " --partitions 2 --output_dir " + (root / "ref").string());
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  EXPECT_TRUE(test::tree_bytes(out) == test::tree_bytes(root / "ref")) << "resumed output differs from one process's";
  EXPECT_FALSE(fs::exists(work)) << "the work dir outlived the finished run";
  if (!HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace ar
