#include "pipeline/activation_store.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "support/fixtures.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

std::vector<float> sample(int64_t i, size_t n) {
  std::vector<float> v(n);
  for (size_t k = 0; k < n; ++k) v[k] = float(i) * 1000.f + float(k) * 0.25f;
  return v;
}

void fill(ActivationStore& s) {
  for (int64_t i = 0; i < s.samples(); ++i) s.write(i, sample(i, s.sample_floats()).data());
}

void expect_contents(const ActivationStore& s) {
  std::vector<float> got(s.sample_floats());
  for (int64_t i = s.samples() - 1; i >= 0; --i) {  // any order
    s.read(i, got.data());
    EXPECT_EQ(got, sample(i, s.sample_floats())) << s.name() << " sample " << i;
  }
}

TEST(ActivationStore, RamAndFileHoldTheSameDataAndChecksums) {
  const fs::path dir = test::make_temp_dir("store");
  auto ram = make_ram_store("X", 5, 37);
  auto file = make_file_store("X", dir / "x.f32", 5, 37);
  EXPECT_EQ(fs::file_size(dir / "x.f32"), 5u * 37u * 4u);  // reserved up front
  fill(*ram);
  fill(*file);
  expect_contents(*ram);
  expect_contents(*file);
  EXPECT_EQ(ram->checksums(), file->checksums());
  EXPECT_NE(ram->checksums()[0], ram->checksums()[1]);
  EXPECT_FALSE(ram->on_disk());
  EXPECT_TRUE(file->on_disk());
  // A RAM store hands out each sample where it lives (the tuner reads it in place); a file store
  // has none resident.
  for (int64_t i = 0; i < 5; ++i) {
    ASSERT_NE(ram->resident(i), nullptr);
    EXPECT_EQ(std::vector<float>(ram->resident(i), ram->resident(i) + 37), sample(i, 37)) << i;
    EXPECT_EQ(file->resident(i), nullptr);
  }
  // Overwriting a sample in place updates data and checksum.
  const auto before = file->checksums()[2];
  file->write(2, sample(9, 37).data());
  std::vector<float> got(37);
  file->read(2, got.data());
  EXPECT_EQ(got, sample(9, 37));
  EXPECT_NE(file->checksums()[2], before);
}

TEST(ActivationStore, PersistedStoresReopenCheckedInRamOrInPlace) {
  const fs::path dir = test::make_temp_dir("store-persist");
  auto ram = make_ram_store("X", 4, 16);
  fill(*ram);
  ram->persist(dir / "ram.f32");
  auto file = make_file_store("Xq", dir / "file.f32", 4, 16);
  fill(*file);
  file->persist(dir / "file.f32");
  for (bool in_ram : {true, false}) {
    auto a = open_checked_store("X", dir / "ram.f32", 4, 16, ram->checksums(), in_ram);
    auto b = open_checked_store("Xq", dir / "file.f32", 4, 16, file->checksums(), in_ram);
    expect_contents(*a);
    expect_contents(*b);
    EXPECT_EQ(a->checksums(), ram->checksums());
    EXPECT_EQ(a->on_disk(), !in_ram);
  }
}

TEST(ActivationStore, CorruptedOrWrongSizedFilesAreErrorsNamingTheFile) {
  const fs::path dir = test::make_temp_dir("store-bad");
  auto s = make_file_store("X", dir / "x.f32", 3, 8);
  fill(*s);
  s->persist(dir / "x.f32");
  const auto sums = s->checksums();
  s.reset();
  {
    std::fstream f(dir / "x.f32", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(3 * 8 * 4 - 5);  // inside the last sample
    f.put('\x7f');
  }
  try {
    open_checked_store("X", dir / "x.f32", 3, 8, sums, true);
    FAIL() << "corruption not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.f32"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sample 2"), std::string::npos) << e.what();
  }
  try {
    open_checked_store("X", dir / "x.f32", 4, 8, std::vector<uint64_t>(4, 0), false);
    FAIL() << "wrong size not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected 128"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_file_store("X", dir / "no" / "such" / "dir.f32", 2, 2), Error);
}

}  // namespace
}  // namespace ar
