// The bounded-memory engine through the real binary (issue 4): caches in RAM, on disk and with
// streamed targets give byte-identical outputs; a killed run resumes to the same output; corrupted
// or mismatched checkpoints and a full work disk end with clear messages and no complete-looking
// output; peak RSS with disk caches does not grow with the number of samples.
#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/memory.h"
#include "support/fixtures.h"
#include "support/run.h"

extern char** environ;

namespace ar {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string cli() { return AR_CLI_PATH; }

// Every regular file under `dir`, by relative path, with its bytes.
std::map<std::string, std::string> read_tree(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream f(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    files[fs::relative(e.path(), dir).string()] = ss.str();
  }
  return files;
}

void expect_same_tree(const fs::path& a, const fs::path& b) {
  const auto ta = read_tree(a), tb = read_tree(b);
  ASSERT_FALSE(ta.empty()) << a;
  ASSERT_EQ(ta.size(), tb.size()) << a << " vs " << b;
  for (const auto& [name, bytes] : ta) {
    auto it = tb.find(name);
    ASSERT_NE(it, tb.end()) << name << " missing in " << b;
    EXPECT_TRUE(bytes == it->second) << name << " differs between " << a << " and " << b;
  }
}

// Removes a test's folder when the test passed (kept for inspection when it failed).
struct Cleanup {
  fs::path dir;
  ~Cleanup() {
    if (!::testing::Test::HasFailure()) {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  }
};

// A small synthetic Qwen3 model (q/k norm, GQA), generated once per test binary run.
fs::path synth_model(const std::string& tag, int layers) {
  static std::map<std::string, fs::path> made;
  const std::string key = tag + std::to_string(layers);
  if (made.count(key)) return made[key];
  const fs::path dir = test::make_temp_dir("engine-model-" + key);
  auto r = test::run_command(cli() + " generate --preset tiny-qwen3 --num_layers " + std::to_string(layers) +
                             " --output_dir " + (dir / "m").string() + " --seed 3");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return made[key] = dir / "m";
}

struct QRun {
  test::RunResult r;
  fs::path out, work;
};

// SignRound W4G32 with a few steps on short samples: enough to exercise every cache path.
QRun quantize(const fs::path& model, const fs::path& root, const std::string& name, const std::string& extra,
             const std::string& calib = "--dataset builtin --nsamples 6 --seqlen 32", int iters = 4) {
  QRun run;
  run.out = root / name;
  run.work = root / (name + ".work");
  run.r = test::run_command(cli() + " quantize --model " + model.string() + " --output_dir " + run.out.string() +
                            " --work_dir " + run.work.string() + " --bits 4 --group_size 32 --batch_size 2 --iters " + std::to_string(iters) +
                            " " + calib + " " + extra);
  return run;
}

TEST(Engine, CachesInRamOnDiskAndStreamedTargetsWriteIdenticalOutputs) {
  const fs::path model = synth_model("qwen3", 3);
  const fs::path root = test::make_temp_dir("engine-modes");
  Cleanup cleanup{root};
  QRun ram = quantize(model, root, "ram", "--cache ram");
  ASSERT_EQ(ram.r.exit_code, 0) << ram.r.err;
  EXPECT_NE(ram.r.err.find("chosen: caches in RAM"), std::string::npos) << ram.r.err;
  for (const auto& [name, flags, plan] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"disk", "--cache disk", "chosen: caches on disk"},
           {"ram_stream", "--cache ram --stream_loss", "streamed targets"},
           {"disk_stream", "--cache disk --stream_loss", "chosen: caches on disk, streamed targets"}}) {
    QRun r = quantize(model, root, name, flags);
    ASSERT_EQ(r.r.exit_code, 0) << name << ": " << r.r.err;
    EXPECT_NE(r.r.err.find(plan), std::string::npos) << name << ": " << r.r.err;
    expect_same_tree(ram.out, r.out);
    EXPECT_FALSE(fs::exists(r.work)) << "work dir left behind after success: " << r.work;
  }
  // Without quantized inputs the fp inputs and the targets are separate caches.
  QRun nq = quantize(model, root, "nq_ram", "--cache ram --disable_quanted_input");
  ASSERT_EQ(nq.r.exit_code, 0) << nq.r.err;
  for (const std::string flags : {"--cache disk --disable_quanted_input", "--cache ram --stream_loss --disable_quanted_input"}) {
    QRun r = quantize(model, root, "nq_other", flags + " --overwrite");
    ASSERT_EQ(r.r.exit_code, 0) << flags << ": " << r.r.err;
    expect_same_tree(nq.out, r.out);
  }
}

TEST(Engine, Stories260KRamDiskAndStreamedAgree) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(ids, "models/stories260K/derived-data/stories260K_samples_seed1234.ids.json");
  const fs::path root = test::make_temp_dir("engine-stories");
  Cleanup cleanup{root};
  const std::string calib = "--dataset " + ids.string() + " --nsamples 8 --seqlen 64";
  QRun ram = quantize(model, root, "ram", "--cache ram", calib);
  ASSERT_EQ(ram.r.exit_code, 0) << ram.r.err;
  QRun disk = quantize(model, root, "disk", "--cache disk", calib);
  ASSERT_EQ(disk.r.exit_code, 0) << disk.r.err;
  expect_same_tree(ram.out, disk.out);
  QRun stream = quantize(model, root, "stream", "--cache disk --stream_loss", calib);
  ASSERT_EQ(stream.r.exit_code, 0) << stream.r.err;
  expect_same_tree(ram.out, stream.out);
}

TEST(Engine, OptimizedRtnImportanceRamAndDiskAgree) {
  const fs::path model = synth_model("qwen3", 3);
  const fs::path root = test::make_temp_dir("engine-imp");
  Cleanup cleanup{root};
  const std::string calib = "--dataset builtin --nsamples 6 --seqlen 32";
  QRun ram = quantize(model, root, "ram", "--cache ram", calib, 0);
  ASSERT_EQ(ram.r.exit_code, 0) << ram.r.err;
  EXPECT_NE(ram.r.err.find("chosen: caches in RAM"), std::string::npos) << ram.r.err;
  QRun disk = quantize(model, root, "disk", "--cache disk", calib, 0);
  ASSERT_EQ(disk.r.exit_code, 0) << disk.r.err;
  expect_same_tree(ram.out, disk.out);
}

TEST(Engine, KilledRunResumesToIdenticalOutput) {
  const fs::path model = synth_model("qwen3", 4);
  const fs::path root = test::make_temp_dir("engine-kill");
  Cleanup cleanup{root};
  QRun full = quantize(model, root, "full", "");
  ASSERT_EQ(full.r.exit_code, 0) << full.r.err;
  for (const std::string mode : {"ram", "disk"}) {
    QRun killed = quantize(model, root, "k" + mode, "--cache " + mode + " --debug_kill_after_block 1");
    EXPECT_NE(killed.r.exit_code, 0);
    EXPECT_NE(killed.r.err.find("[2/4]"), std::string::npos) << killed.r.err;
    EXPECT_EQ(killed.r.err.find("[3/4]"), std::string::npos) << killed.r.err;
    EXPECT_FALSE(fs::exists(killed.out / "config.json")) << "a killed run left a complete-looking output";
    ASSERT_TRUE(fs::exists(killed.work / "checkpoint.json"));
    QRun resumed = quantize(model, root, "k" + mode, "--cache " + mode + " --resume");
    ASSERT_EQ(resumed.r.exit_code, 0) << resumed.r.err;
    EXPECT_NE(resumed.r.err.find("resume: 2 of 4 blocks finished"), std::string::npos) << resumed.r.err;
    EXPECT_EQ(resumed.r.err.find("[2/4]"), std::string::npos) << "a finished block ran again";
    expect_same_tree(full.out, resumed.out);
    EXPECT_FALSE(fs::exists(resumed.work));
  }
}

// A real SIGKILL from outside at whatever point the run has reached after its first checkpoint.
TEST(Engine, ExternalKillNineThenResume) {
  const fs::path model = synth_model("qwen3", 6);
  const fs::path root = test::make_temp_dir("engine-kill9");
  Cleanup cleanup{root};
  const std::string common = "--bits 4 --group_size 32 --iters 40 --batch_size 2 --dataset builtin --nsamples 6 --seqlen 32";
  const fs::path out = root / "out", work = root / "work", ref = root / "ref";
  auto ref_run = test::run_command(cli() + " quantize --model " + model.string() + " --output_dir " + ref.string() +
                                   " --work_dir " + (root / "refwork").string() + " " + common);
  ASSERT_EQ(ref_run.exit_code, 0) << ref_run.err;
  const std::string cmd = "exec " + cli() + " quantize --model " + model.string() + " --output_dir " + out.string() +
                          " --work_dir " + work.string() + " " + common + " > " + (root / "log").string() + " 2>&1";
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  bool killed = false;
  for (int i = 0; i < 60000 && !killed; ++i) {  // up to 5 min on a loaded machine
    std::error_code ec;
    if (fs::exists(work / "checkpoint.json", ec)) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    int st;
    if (!killed && waitpid(pid, &st, WNOHANG) == pid) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  int st = 0;
  if (killed) waitpid(pid, &st, 0);
  ASSERT_TRUE(killed) << "the run ended before its first checkpoint could be observed";
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "the run finished before the kill arrived";
  EXPECT_FALSE(fs::exists(out / "config.json"));
  auto resumed = test::run_command(cli() + " quantize --model " + model.string() + " --output_dir " + out.string() +
                                   " --work_dir " + work.string() + " " + common + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  expect_same_tree(ref, out);
}

void flip_byte(const fs::path& f, uint64_t at) {
  std::fstream s(f, std::ios::in | std::ios::out | std::ios::binary);
  s.seekg(std::streamoff(at));
  char c;
  s.read(&c, 1);
  c = char(c ^ 0x10);
  s.seekp(std::streamoff(at));
  s.write(&c, 1);
}

TEST(Engine, CorruptedOrMismatchedCheckpointIsReported) {
  const fs::path model = synth_model("qwen3", 4);
  const fs::path root = test::make_temp_dir("engine-corrupt");
  Cleanup cleanup{root};
  QRun killed = quantize(model, root, "c", "--cache disk --debug_kill_after_block 1");
  ASSERT_TRUE(fs::exists(killed.work / "checkpoint.json")) << killed.r.err;
  // A cache file with one flipped bit.
  const fs::path cache = killed.work / "X.2.f32";
  ASSERT_TRUE(fs::exists(cache));
  flip_byte(cache, fs::file_size(cache) / 2);
  QRun r = quantize(model, root, "c", "--cache disk --resume");
  EXPECT_EQ(r.r.exit_code, 1);
  EXPECT_NE(r.r.err.find("X.2.f32"), std::string::npos) << r.r.err;
  EXPECT_NE(r.r.err.find("corrupted"), std::string::npos) << r.r.err;
  flip_byte(cache, fs::file_size(cache) / 2);  // restored
  // A finished block's quantized tensors with a flipped bit.
  flip_byte(killed.work / "block.0.q", 40);
  r = quantize(model, root, "c", "--cache disk --resume");
  EXPECT_EQ(r.r.exit_code, 1);
  EXPECT_NE(r.r.err.find("block.0.q"), std::string::npos) << r.r.err;
  flip_byte(killed.work / "block.0.q", 40);
  // Different settings than the checkpoint was made with.
  r = quantize(model, root, "c", "--cache disk --resume --minmax_lr 0.5");
  EXPECT_EQ(r.r.exit_code, 1);
  EXPECT_NE(r.r.err.find("was made with minmax_lr=0.0, this run has minmax_lr=0.5"), std::string::npos) << r.r.err;
  // A truncated manifest.
  const std::string manifest = read_tree(killed.work).at("checkpoint.json");
  std::ofstream(killed.work / "checkpoint.json") << manifest.substr(0, manifest.size() / 2);
  r = quantize(model, root, "c", "--cache disk --resume");
  EXPECT_EQ(r.r.exit_code, 1);
  EXPECT_NE(r.r.err.find("checkpoint.json"), std::string::npos) << r.r.err;
  // Restored, the same checkpoint still resumes.
  std::ofstream(killed.work / "checkpoint.json") << manifest;
  r = quantize(model, root, "c", "--cache disk --resume");
  EXPECT_EQ(r.r.exit_code, 0) << r.r.err;
  EXPECT_FALSE(quantize(model, root, "none", "--resume").r.err.find("no checkpoint") == std::string::npos);
  // A --layer_config file edited between the interrupted run and the resume.
  const fs::path lc = root / "layers.json";
  std::ofstream(lc) << R"({"mlp.down_proj": {"bits": 8}})";
  const std::string with_lc = "--cache disk --layer_config " + lc.string();
  QRun k2 = quantize(model, root, "lc", with_lc + " --debug_kill_after_block 0");
  ASSERT_TRUE(fs::exists(k2.work / "checkpoint.json")) << k2.r.err;
  std::ofstream(lc) << R"({"mlp.down_proj": {"bits": 3}})";
  r = quantize(model, root, "lc", with_lc + " --resume");
  EXPECT_EQ(r.r.exit_code, 1);
  EXPECT_NE(r.r.err.find("was made with layer_config_content="), std::string::npos) << r.r.err;
  std::ofstream(lc) << R"({"mlp.down_proj": {"bits": 8}})";
  r = quantize(model, root, "lc", with_lc + " --resume");
  EXPECT_EQ(r.r.exit_code, 0) << r.r.err;
}

// The number after `key` on the first line of `text` that has it (e.g. a plan's byte count in MiB).
double number_after(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  return at == std::string::npos ? -1.0 : std::atof(text.c_str() + at + key.size());
}

// SignRoundOptions::hold_step_weights through the plan: a block whose batch of 2 at seqlen 2048
// runs in two passes holds its dense W' for the step when the budget allows; a budget that fits
// RAM caches only without it drops the holding (never a worse strategy for it); same bytes.
TEST(Engine, HeldStepWeightsDroppedWhenTheyDoNotFit) {
  const fs::path root = test::make_temp_dir("engine-hold");
  Cleanup cleanup{root};
  {
    std::ofstream cfg(root / "config.json");
    cfg << R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 1024,
      "intermediate_size": 2048, "num_hidden_layers": 1, "num_attention_heads": 16, "num_key_value_heads": 4,
      "head_dim": 64, "vocab_size": 1024, "tie_word_embeddings": true, "rms_norm_eps": 1e-6,
      "rope_theta": 1000000.0, "max_position_embeddings": 4096, "hidden_act": "silu", "torch_dtype": "bfloat16"})";
  }
  auto g = test::run_command(cli() + " generate --config " + (root / "config.json").string() + " --output_dir " +
                             (root / "m").string() + " --seed 1");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  {  // text enough for two windows of 2048 tokens
    std::ofstream txt(root / "calib.txt");
    uint32_t x = 1;
    for (int i = 0; i < 20000; ++i) {
      x = x * 1664525u + 1013904223u;
      txt << "word" << (x >> 22) << (i % 17 == 16 ? ".\n" : " ");
    }
  }
  const std::string calib = "--dataset " + (root / "calib.txt").string() + " --nsamples 2 --seqlen 2048";
  QRun roomy = quantize(root / "m", root, "roomy", "", calib, 2);
  ASSERT_EQ(roomy.r.exit_code, 0) << roomy.r.err;
  const std::string log = roomy.r.out + roomy.r.err;
  if (log.find("native bf16: yes") == std::string::npos) GTEST_SKIP() << "no native bf16 products: W' is never held";
  const double held = number_after(log, "held, in bf16 (");
  ASSERT_GT(held, 10.0) << log;  // MiB: q, k, v, o, gate, up, down at 2 bytes each (17 MiB)
  EXPECT_NE(log.find("chosen: caches in RAM"), std::string::npos) << log;
  const double ram = number_after(log, "caches in RAM (2 caches): peak RAM ");
  ASSERT_GT(ram, held) << log;
  // RAM caches fit without the held W' but not with it: the plan keeps RAM caches and drops it.
  QRun tight = quantize(root / "m", root, "tight",
                        "--max_ram " + std::to_string(int64_t((ram - held / 2) * 1024)) + "K", calib, 2);
  ASSERT_EQ(tight.r.exit_code, 0) << tight.r.err;
  const std::string tlog = tight.r.out + tight.r.err;
  EXPECT_EQ(tlog.find("held, in bf16"), std::string::npos) << tlog;
  EXPECT_NE(tlog.find("chosen: caches in RAM"), std::string::npos) << tlog;
  expect_same_tree(roomy.out, tight.out);
}

TEST(Engine, WorkDirWithoutSpaceStopsCleanly) {
  const fs::path model = synth_model("qwen3", 3);
  const fs::path root = test::make_temp_dir("engine-nospace");
  Cleanup cleanup{root};
  // A size limit we impose on the work dir: the plan sees it before any work.
  QRun r = quantize(model, root, "cap", "--cache disk --max_disk 64K");
  EXPECT_EQ(r.r.exit_code, 1);
  EXPECT_NE(r.r.err.find("no strategy fits"), std::string::npos) << r.r.err;
  EXPECT_NE(r.r.err.find("free"), std::string::npos) << r.r.err;
  EXPECT_FALSE(fs::exists(r.out)) << "output folder created although nothing was done";
  EXPECT_FALSE(fs::exists(r.work)) << "empty work dir left behind";
  // A RAM budget nothing fits: the message says how much would.
  QRun small = quantize(model, root, "ram", "--max_ram 4M");
  EXPECT_EQ(small.r.exit_code, 1);
  EXPECT_NE(small.r.err.find("no strategy fits: the smallest needs"), std::string::npos) << small.r.err;
  EXPECT_NE(small.r.err.find("raise --max_ram"), std::string::npos) << small.r.err;
  EXPECT_FALSE(fs::exists(small.out));
  // The file system refusing writes (a file size limit) once the work starts.
  QRun lim;
  lim.out = root / "lim";
  lim.r = test::run_command("ulimit -f 16 && " + cli() + " quantize --model " + model.string() + " --output_dir " +
                            lim.out.string() + " --work_dir " + (root / "limwork").string() +
                            " --bits 4 --group_size 32 --iters 4 --dataset builtin --nsamples 6 --seqlen 32 --cache disk");
  EXPECT_EQ(lim.r.exit_code, 1) << lim.r.err;
  EXPECT_NE(lim.r.err.find("limwork"), std::string::npos) << lim.r.err;
  EXPECT_FALSE(fs::exists(lim.out / "config.json")) << "a failed run left a complete-looking output";
}

// Peak RSS reported by a run, or 0 (with a test failure) if the run failed.
uint64_t peak_of(const QRun& r) {
  EXPECT_EQ(r.r.exit_code, 0) << r.r.err;
  return test::reported_peak_rss(r.r.err).value_or(0);
}

TEST(Engine, DiskCachesKeepPeakFlatInSamplesAndBlocks) {
  // hidden 128, seqlen 256: one sample is 128 KiB, 192 samples are 24 MiB per cache.
  const fs::path m2 = synth_model("qwen3", 2), m6 = synth_model("qwen3", 6);
  const fs::path root = test::make_temp_dir("engine-flat");
  Cleanup cleanup{root};
  // Token-id documents (the built-in text is too short for 512 samples of 256 tokens).
  const fs::path ids = root / "ids.json";
  {
    json docs = json::array();
    for (int d = 0; d < 192; ++d) {
      json doc = json::array();
      for (int t = 0; t < 256; ++t) doc.push_back((d * 7919 + t * 104729 + 13) % 1000 + 3);
      docs.push_back(doc);
    }
    std::ofstream(ids) << docs.dump();
  }
  auto calib = [&](int n) { return "--dataset " + ids.string() + " --nsamples " + std::to_string(n) + " --seqlen 256"; };
  const uint64_t small = peak_of(quantize(m2, root, "s", "--cache disk", calib(16), 1));
  const uint64_t big = peak_of(quantize(m2, root, "b", "--cache disk", calib(192), 1));
  const uint64_t ram = peak_of(quantize(m2, root, "r", "--cache ram", calib(192), 1));
  const uint64_t deep = peak_of(quantize(m6, root, "d", "--cache disk", calib(16), 1));
  // RAM caches for 192 samples are 2 x 24 MiB: the measurement can see them ...
  EXPECT_GT(ram, big + (36ull << 20)) << "ram " << format_bytes(ram) << " disk " << format_bytes(big);
  // ... and on disk neither 12x the samples nor 3x the blocks adds more than a few MiB.
  EXPECT_LT(big, small + (6ull << 20)) << "16 samples " << format_bytes(small) << ", 192: " << format_bytes(big);
  EXPECT_LT(deep, small + (6ull << 20)) << "2 blocks " << format_bytes(small) << ", 6: " << format_bytes(deep);
}

}  // namespace
}  // namespace ar
