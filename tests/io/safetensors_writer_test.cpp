// SafetensorsWriter: exact header bytes against a hand-written expectation, write -> read round
// trips (pieces, zero-size tensors, shards + index), atomic tmp handling, shard planning.
#include "io/safetensors_writer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/safetensors.h"
#include "support/files.h"
#include "support/fixtures.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) { return test::read_bytes(p); }

class SafetensorsWriterTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::make_temp_dir("st-writer"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(SafetensorsWriterTest, ByteLayoutMatchesHandWrittenHeader) {
  fs::path p = dir_ / "x.safetensors";
  {
    SafetensorsWriter w(p, {{"b", DType::F32, {2}}, {"a", DType::BF16, {1, 3}}}, {{"format", "pt"}});
    float b[2] = {1.0f, -2.0f};
    uint16_t a[3] = {0x3f80, 0x4000, 0xc040};
    w.write("b", b, 8);
    w.write("a", a, 6);
    w.finish();
  }
  // 142 characters of JSON (metadata first, spec order kept), padded with 2 spaces to 144.
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("a":{"dtype":"BF16","shape":[1,3],"data_offsets":[8,14]}})";
  ASSERT_EQ(json.size(), 142u);
  std::string want = std::string("\x90\0\0\0\0\0\0\0", 8) + json + std::string(2, ' ');
  want += std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);  // 1.0f, -2.0f little-endian
  want += std::string("\x80\x3f\x00\x40\x40\xc0", 6);
  EXPECT_EQ(slurp(p), want);
  EXPECT_FALSE(fs::exists(dir_ / "x.safetensors.tmp"));
}

TEST_F(SafetensorsWriterTest, RoundTripInPiecesWithEmptyTensor) {
  fs::path p = dir_ / "rt.safetensors";
  std::vector<float> big(1000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = float(i) * 0.5f - 7.0f;
  std::vector<int32_t> ints = {5, -6, 7};
  {
    SafetensorsWriter w(p, {{"big", DType::F32, {10, 100}}, {"empty", DType::F16, {0, 4}}, {"ints", DType::I32, {3}}},
                        {{"k", "v"}});
    w.write("big", big.data(), 1000);  // three uneven pieces
    w.write("big", big.data() + 250, 2000);
    w.write("big", big.data() + 750, 1000);
    w.write("ints", ints.data(), 12);
    EXPECT_TRUE(w.complete());
    w.finish();
  }
  auto r = SafetensorsReader::open(p);
  EXPECT_EQ(r.metadata().at("k"), "v");
  ASSERT_EQ(r.tensors().size(), 3u);
  std::vector<float> got(1000);
  r.read_f32(r.require("big"), got.data());
  EXPECT_EQ(got, big);
  std::vector<int32_t> gi(3);
  r.read(r.require("ints"), gi.data());
  EXPECT_EQ(gi, ints);
  EXPECT_EQ(r.require("empty").size_bytes, 0u);
  EXPECT_EQ(r.require("big").offset_bytes % 8, 0u);
}

TEST_F(SafetensorsWriterTest, HalfPrecisionToF32AcrossChunks) {
  // 300,000 BF16 values: more than one conversion chunk (2^18 elements) inside read_f32.
  const int64_t rows = 1000, cols = 300;
  std::vector<uint16_t> bf(size_t(rows * cols));
  for (size_t i = 0; i < bf.size(); ++i) bf[i] = uint16_t(0x3f80 + (i % 97) * 3);  // 1.0 .. ~1.9
  const uint16_t f16[4] = {0x3c00, 0xc000, 0x0001, 0x7bff};  // 1, -2, 2^-24 (subnormal), 65504
  fs::path p = dir_ / "half.safetensors";
  {
    SafetensorsWriter w(p, {{"bf", DType::BF16, {rows, cols}}, {"h", DType::F16, {4}}});
    w.write("bf", bf.data(), bf.size() * 2);
    w.write("h", f16, 8);
    w.finish();
  }
  auto r = SafetensorsReader::open(p);
  std::vector<float> got(bf.size());
  r.read_f32(r.require("bf"), got.data());
  for (size_t i = 0; i < bf.size(); ++i) {
    uint32_t u = uint32_t(bf[i]) << 16;  // bf16 is the top half of an f32
    float want;
    std::memcpy(&want, &u, 4);
    ASSERT_EQ(got[i], want) << i;
  }
  // Rows 870..999 straddle the 2^18-element chunk edge (row 873.8).
  std::vector<float> rows_got(130 * cols);
  r.read_rows_f32(r.require("bf"), 870, 130, rows_got.data());
  EXPECT_TRUE(std::equal(rows_got.begin(), rows_got.end(), got.begin() + 870 * cols));
  float h[4];
  r.read_f32(r.require("h"), h);
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], std::ldexp(1.0f, -24));
  EXPECT_EQ(h[3], 65504.0f);
}

TEST_F(SafetensorsWriterTest, UnfinishedWriterLeavesNothing) {
  fs::path p = dir_ / "u.safetensors";
  {
    SafetensorsWriter w(p, {{"a", DType::F32, {2}}});
    EXPECT_TRUE(fs::exists(dir_ / "u.safetensors.tmp"));
    float a = 1;
    w.write("a", &a, 4);
  }
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(dir_ / "u.safetensors.tmp"));
}

TEST_F(SafetensorsWriterTest, MisuseIsCaught) {
  float a[2] = {};
  SafetensorsWriter w(dir_ / "m.safetensors", {{"a", DType::F32, {2}}, {"b", DType::F32, {1}}});
  EXPECT_THROW(w.write("b", a, 4), InternalError);       // out of order
  EXPECT_THROW(w.write("a", a, 12), InternalError);      // more than the tensor holds
  w.write("a", a, 8);
  EXPECT_THROW(w.finish(), InternalError);               // 'b' incomplete
  EXPECT_THROW(SafetensorsWriter(dir_ / "d.safetensors", {{"a", DType::F32, {1}}, {"a", DType::F32, {1}}}), Error);
  EXPECT_FALSE(fs::exists(dir_ / "d.safetensors.tmp"));
}

TEST(PlanShards, GroupsInOrderAndIsolatesOversizedTensors) {
  // F32 sizes: 4, 4, 4, 40, 4, 4 bytes; limit 8.
  std::vector<TensorSpec> s = {{"a", DType::F32, {1}}, {"b", DType::F32, {1}}, {"c", DType::F32, {1}},
                               {"big", DType::F32, {10}}, {"d", DType::F32, {1}}, {"e", DType::F32, {1}}};
  auto plan = plan_shards(s, 8);
  std::vector<std::vector<size_t>> want = {{0, 1}, {2}, {3}, {4, 5}};
  EXPECT_EQ(plan, want);
  EXPECT_EQ(plan_shards(s, 1000), (std::vector<std::vector<size_t>>{{0, 1, 2, 3, 4, 5}}));
  EXPECT_EQ(shard_file_name(1, 1), "model.safetensors");
  EXPECT_EQ(shard_file_name(2, 4), "model-00002-of-00004.safetensors");
}

TEST_F(SafetensorsWriterTest, ShardedRoundTrip) {
  std::vector<TensorSpec> specs;
  for (int i = 0; i < 5; ++i) specs.push_back({"t" + std::to_string(i), DType::BF16, {4, 8}});  // 64 B each
  {
    ShardedSafetensorsWriter w(dir_, specs, 150, {{"format", "pt"}});
    EXPECT_EQ(w.num_shards(), 3u);
    for (int i = 0; i < 5; ++i) {
      std::vector<uint16_t> v(32, uint16_t(0x3f80 + i));
      w.write(specs[i].name, v.data(), 64);
    }
    w.finish();
  }
  auto idx = nlohmann::json::parse(slurp(dir_ / "model.safetensors.index.json"));
  EXPECT_EQ(idx["metadata"]["total_size"], 320);
  EXPECT_EQ(idx["weight_map"]["t0"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(idx["weight_map"]["t2"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(idx["weight_map"]["t4"], "model-00003-of-00003.safetensors");
  auto r = SafetensorsReader::open(dir_);
  ASSERT_EQ(r.tensors().size(), 5u);
  EXPECT_EQ(r.num_files(), 3u);
  EXPECT_EQ(r.metadata().at("format"), "pt");
  std::vector<float> got(32);
  r.read_f32(r.require("t3"), got.data());
  EXPECT_EQ(got[31], bf16_to_f32(uint16_t(0x3f83)));
  for (const auto& e : fs::directory_iterator(dir_)) EXPECT_NE(e.path().extension(), ".tmp");
}

}  // namespace
}  // namespace ar
