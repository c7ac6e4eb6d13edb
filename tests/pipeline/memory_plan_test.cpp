#include "pipeline/memory_plan.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace ar {
namespace {

constexpr uint64_t MiB = 1ull << 20, GiB = 1ull << 30;

// A Qwen3-4B-like run: 400 MiB block, 1.2 GiB tuning, two 10 GiB caches.
PlanInputs big_run() {
  PlanInputs p;
  p.base_bytes = 100 * MiB;
  p.block_bytes = 400 * MiB;
  p.work_bytes = 1200 * MiB;
  p.cache_bytes = 10 * GiB;
  p.caches = 2;
  p.caches_streamed = 2;
  p.result_bytes = 200 * MiB;
  p.max_ram = 24 * GiB;
  p.free_disk = 80 * GiB;
  return p;
}

std::string error_of(const PlanInputs& p) {
  try {
    choose_plan(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(MemoryPlan, RamWhenTheCachesFitElseDisk) {
  PlanInputs p = big_run();
  MemoryPlan m = choose_plan(p);
  EXPECT_EQ(m.mode, CacheMode::Ram);
  EXPECT_EQ(m.peak_ram, 1700 * MiB + 20 * GiB);
  EXPECT_TRUE(m.checkpoint);
  EXPECT_EQ(m.disk_bytes, 40 * GiB + 200 * MiB);  // two generations of checkpointed caches
  p.max_ram = 2 * GiB;
  m = choose_plan(p);
  EXPECT_EQ(m.mode, CacheMode::Disk);
  EXPECT_FALSE(m.stream_targets);
  EXPECT_EQ(m.peak_ram, 1700 * MiB);
  EXPECT_EQ(m.disk_bytes, 40 * GiB + 200 * MiB);
  EXPECT_NE(m.text.find("chosen: caches on disk"), std::string::npos) << m.text;
  EXPECT_NE(m.text.find("over the RAM budget"), std::string::npos) << m.text;
}

TEST(MemoryPlan, StreamedTargetsWhenTheySaveACache) {
  PlanInputs p = big_run();
  p.caches_streamed = 1;  // no quantized inputs: X only
  p.max_ram = 12 * GiB;
  MemoryPlan m = choose_plan(p);
  EXPECT_EQ(m.mode, CacheMode::Ram);
  EXPECT_TRUE(m.stream_targets);
  p.force_stream = true;
  p.max_ram = 24 * GiB;
  EXPECT_TRUE(choose_plan(p).stream_targets);
}

TEST(MemoryPlan, RamCheckpointDroppedWhenDiskIsShort) {
  PlanInputs p = big_run();
  p.free_disk = 1 * GiB;
  MemoryPlan m = choose_plan(p);
  EXPECT_EQ(m.mode, CacheMode::Ram);
  EXPECT_FALSE(m.checkpoint);
  EXPECT_NE(m.text.find("--resume will not be possible"), std::string::npos) << m.text;
}

TEST(MemoryPlan, NothingFitsSaysWhatWould) {
  PlanInputs p = big_run();
  p.max_ram = 1 * GiB;
  std::string e = error_of(p);
  EXPECT_NE(e.find("no strategy fits"), std::string::npos) << e;
  EXPECT_NE(e.find("1.66 GiB of RAM"), std::string::npos) << e;
  p.max_ram = 2 * GiB;
  p.free_disk = 5 * GiB;
  e = error_of(p);
  EXPECT_NE(e.find("40.20 GiB in the work directory, which has 5.00 GiB free"), std::string::npos) << e;
  p.allow_disk = false;
  p.free_disk = 80 * GiB;
  e = error_of(p);
  EXPECT_NE(e.find("no strategy fits"), std::string::npos) << e;
}

TEST(MemoryPlan, ForcedModes) {
  PlanInputs p = big_run();
  p.allow_ram = false;
  EXPECT_EQ(choose_plan(p).mode, CacheMode::Disk);
  p = big_run();
  p.caches = 0;
  p.caches_streamed = 0;
  MemoryPlan m = choose_plan(p);
  EXPECT_EQ(m.mode, CacheMode::None);
  EXPECT_EQ(m.peak_ram, 1700 * MiB);
  p.max_ram = 1 * GiB;
  EXPECT_NE(error_of(p).find("raise --max_ram"), std::string::npos);
}

}  // namespace
}  // namespace ar
