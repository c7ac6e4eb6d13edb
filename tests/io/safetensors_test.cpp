// SafetensorsReader: one hand-made corrupt file per failure mode (each error must name the file),
// sharded-index failures, and the real fixtures checked against an independent header parse.
#include "io/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>

#include "core/error.h"
#include "support/fixtures.h"

namespace ar {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Writes <u64 len><header text><data bytes> exactly as given (no padding, no validation).
void write_raw(const fs::path& p, const std::string& header, const std::string& data, uint64_t len_override = 0) {
  uint64_t len = len_override ? len_override : header.size();
  std::ofstream f(p, std::ios::binary);
  for (int i = 0; i < 8; ++i) f.put(char((len >> (8 * i)) & 0xff));
  f << header << data;
}

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// Expects open(p) to throw ar::Error whose message has `needle` and the name of `named`.
void expect_error(const fs::path& p, const std::string& needle, const fs::path& named = {}) {
  try {
    SafetensorsReader::open(p);
    FAIL() << "no error for " << p << ", expected: " << needle;
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(needle));
    EXPECT_THAT(e.what(), HasSubstr((named.empty() ? p : named).filename().string()));
  }
}

class SafetensorsCorrupt : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::make_temp_dir("st-corrupt"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path file(const std::string& header, const std::string& data = std::string(8, '\0')) {
    fs::path p = dir_ / ("t" + std::to_string(n_++) + ".safetensors");
    write_raw(p, header, data);
    return p;
  }
  fs::path dir_;
  int n_ = 0;
};

TEST_F(SafetensorsCorrupt, ShorterThanEightBytes) {
  fs::path p = dir_ / "short.safetensors";
  write_text(p, "abcde");
  expect_error(p, "too short");
}

TEST_F(SafetensorsCorrupt, HeaderLengthBeyondFile) {
  fs::path p = dir_ / "beyond.safetensors";
  write_raw(p, "{}", "", 1000);
  expect_error(p, "runs past end of file");
}

TEST_F(SafetensorsCorrupt, HeaderLengthAbsurd) {
  fs::path p = dir_ / "absurd.safetensors";
  write_raw(p, "{}", "", uint64_t(1) << 60);
  expect_error(p, "absurdly large");
}

TEST_F(SafetensorsCorrupt, InvalidJson) { expect_error(file("{\"a\": {"), "invalid JSON"); }

TEST_F(SafetensorsCorrupt, HeaderNotObject) { expect_error(file("[1, 2]  "), "not a JSON object"); }

TEST_F(SafetensorsCorrupt, MissingFields) {
  expect_error(file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})"), "missing 'dtype'");
  expect_error(file(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})"), "missing 'shape'");
  expect_error(file(R"({"a":{"dtype":"F32","shape":[2]}})"), "missing 'data_offsets'");
}

TEST_F(SafetensorsCorrupt, UnknownDtype) {
  expect_error(file(R"({"a":{"dtype":"F8_E5M2","shape":[8],"data_offsets":[0,8]}})"), "unsupported dtype");
}

TEST_F(SafetensorsCorrupt, BadShapeEntries) {
  expect_error(file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})"), "negative dimension");
  expect_error(file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})"), "not an integer");
  expect_error(file(R"({"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})"), "not an array");
}

TEST_F(SafetensorsCorrupt, ShapeDoesNotMatchByteRange) {
  expect_error(file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})"), "needs 12 bytes");
  // An overflowing element count must not wrap around to a matching size.
  expect_error(file(R"({"a":{"dtype":"F32","shape":[4611686018427387904, 4],"data_offsets":[0,0]}})"),
               "overflowing");
}

TEST_F(SafetensorsCorrupt, BeginAfterEnd) {
  expect_error(file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})"), "begin 8 > end 4");
}

TEST_F(SafetensorsCorrupt, NegativeOffset) {
  expect_error(file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})"), "not a non-negative integer");
}

TEST_F(SafetensorsCorrupt, RangeBeyondDataSection) {
  expect_error(file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})"),
               "runs past the end of the data section");
}

TEST_F(SafetensorsCorrupt, OverlappingRanges) {
  expect_error(file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                    std::string(12, '\0')),
               "overlapping");
}

TEST_F(SafetensorsCorrupt, DuplicateNamesInOneFile) {
  expect_error(file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                    R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})"),
               "duplicate key 'a'");
}

TEST_F(SafetensorsCorrupt, MetadataNotStrings) {
  expect_error(file(R"({"__metadata__":{"format":3}})"), "not a string");
}

TEST_F(SafetensorsCorrupt, ReadF32RejectsIntegerTensors) {
  fs::path p = file(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})");
  auto r = SafetensorsReader::open(p);
  std::vector<float> out(2);
  try {
    r.read_f32(r.require("a"), out.data());
    FAIL() << "I32 read as f32 without error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("I32"));
    EXPECT_THAT(e.what(), HasSubstr(p.filename().string()));
  }
  // Raw reads of any dtype work.
  int32_t raw[2] = {1, 1};
  r.read(r.require("a"), raw);
  EXPECT_EQ(raw[0], 0);
}

TEST_F(SafetensorsCorrupt, RequireNamesModelAndTensor) {
  fs::path p = file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})");
  auto r = SafetensorsReader::open(p);
  EXPECT_EQ(r.find("b"), nullptr);
  try {
    r.require("b");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("'b'"));
    EXPECT_THAT(e.what(), HasSubstr(p.filename().string()));
  }
}

TEST_F(SafetensorsCorrupt, EmptyFolder) { expect_error(dir_, "neither model.safetensors.index.json"); }

// ---- sharded checkpoints -------------------------------------------------------------------

class SafetensorsSharded : public SafetensorsCorrupt {
 protected:
  // Two good shards: a (F32 [2]) in shard 1, b (F32 [1]) in shard 2.
  void SetUp() override {
    SafetensorsCorrupt::SetUp();
    write_raw(dir_ / "s1.safetensors", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
              std::string(8, '\0'));
    write_raw(dir_ / "s2.safetensors", R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
              std::string(4, '\0'));
  }
  fs::path index(const std::string& text) {
    fs::path p = dir_ / "model.safetensors.index.json";
    write_text(p, text);
    return p;
  }
};

TEST_F(SafetensorsSharded, GoodIndexOpensThroughFolder) {
  index(R"({"metadata":{"total_size":12},"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
  auto r = SafetensorsReader::open(dir_);
  ASSERT_EQ(r.tensors().size(), 2u);
  EXPECT_EQ(r.num_files(), 2u);
  EXPECT_EQ(r.file_path(r.require("b").file_index).filename(), "s2.safetensors");
  EXPECT_EQ(r.require("a").offset_bytes, 8 + std::strlen(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})"));
}

TEST_F(SafetensorsSharded, InvalidJson) { expect_error(index("{\"weight_map\": "), "invalid JSON"); }

TEST_F(SafetensorsSharded, MissingWeightMap) {
  expect_error(index(R"({"metadata":{}})"), "weight_map");
}

TEST_F(SafetensorsSharded, MissingShardFile) {
  expect_error(index(R"({"weight_map":{"a":"s1.safetensors","b":"s9.safetensors"}})"), "s9.safetensors");
}

TEST_F(SafetensorsSharded, ShardOutsideFolder) {
  expect_error(index(R"({"weight_map":{"a":"../s1.safetensors"}})"), "not a file in the same folder");
}

TEST_F(SafetensorsSharded, ListedButAbsentFromShard) {
  expect_error(index(R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors","c":"s2.safetensors"}})"),
               "'c' is listed in the index");
}

TEST_F(SafetensorsSharded, TensorInDifferentShard) {
  expect_error(index(R"({"weight_map":{"a":"s2.safetensors","b":"s2.safetensors"}})"), "'a'");
}

TEST_F(SafetensorsSharded, TensorNotInIndex) {
  write_raw(dir_ / "s2.safetensors",
            R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"c":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            std::string(8, '\0'));
  expect_error(index(R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})"), "'c' is in shard s2");
}

TEST_F(SafetensorsSharded, DuplicateAcrossShards) {
  write_raw(dir_ / "s3.safetensors", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
            std::string(4, '\0'));
  // The index can only place 'a' in one shard, so the other copy is reported.
  expect_error(index(R"({"weight_map":{"a":"s1.safetensors","b":"s3.safetensors"}})"), "'a' is in shard s3");
}

TEST_F(SafetensorsSharded, CorruptShardNamesTheShard) {
  write_text(dir_ / "s2.safetensors", "xy");
  fs::path p = index(R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
  expect_error(p, "too short", dir_ / "s2.safetensors");
}

// ---- real fixtures, checked against a header parse and bit conversion done here ----------------

struct RawHeader {
  nlohmann::json json;
  uint64_t data_start;
};

RawHeader parse_header_by_hand(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  unsigned char b[8];
  f.read(reinterpret_cast<char*>(b), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(b[i]) << (8 * i);
  std::string text(n, '\0');
  f.read(text.data(), std::streamsize(n));
  return {nlohmann::json::parse(text), 8 + n};
}

std::vector<char> bytes_at(const fs::path& p, uint64_t off, size_t n) {
  std::ifstream f(p, std::ios::binary);
  f.seekg(std::streamoff(off));
  std::vector<char> v(n);
  f.read(v.data(), std::streamsize(n));
  return v;
}

TEST(SafetensorsFixture, Stories260KF32) {
  AR_REQUIRE_FIXTURE(dir, "models/stories260K/hf");
  auto r = SafetensorsReader::open(dir);
  EXPECT_EQ(r.tensors().size(), 47u);
  RawHeader h = parse_header_by_hand(dir / "model.safetensors");
  for (const char* name : {"model.norm.weight", "model.layers.2.mlp.down_proj.weight"}) {
    const auto& e = h.json[name];
    const TensorInfo& t = r.require(name);
    EXPECT_EQ(t.dtype, DType::F32);
    EXPECT_EQ(t.shape, e["shape"].get<std::vector<int64_t>>());
    uint64_t b = e["data_offsets"][0], end = e["data_offsets"][1];
    EXPECT_EQ(t.offset_bytes, h.data_start + b);
    auto raw = bytes_at(dir / "model.safetensors", h.data_start + b, end - b);
    std::vector<float> want(raw.size() / 4), got(size_t(t.numel()));
    std::memcpy(want.data(), raw.data(), raw.size());
    r.read_f32(t, got.data());
    EXPECT_EQ(got, want) << name;
  }
  // down_proj is [64, 172]: rows 3..5 are floats [3*172, 6*172).
  const TensorInfo& d = r.require("model.layers.2.mlp.down_proj.weight");
  ASSERT_EQ(d.shape, (std::vector<int64_t>{64, 172}));
  std::vector<float> all(size_t(d.numel())), rows(3 * 172);
  r.read_f32(d, all.data());
  r.read_rows_f32(d, 3, 3, rows.data());
  EXPECT_TRUE(std::equal(rows.begin(), rows.end(), all.begin() + 3 * 172));
  r.release(d);
}

TEST(SafetensorsFixture, Qwen3StudentBF16) {
  AR_REQUIRE_FIXTURE(file, "models/qwen3-student/hf/model.safetensors");
  auto r = SafetensorsReader::open(file);
  EXPECT_EQ(r.tensors().size(), 68u);
  RawHeader h = parse_header_by_hand(file);
  const char* name = "model.embed_tokens.weight";
  const TensorInfo& t = r.require(name);
  EXPECT_EQ(t.dtype, DType::BF16);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{512, 256}));
  uint64_t b = h.json[name]["data_offsets"][0];
  // Row 7 by hand: bf16 is the high half of an f32.
  auto raw = bytes_at(file, h.data_start + b + 7 * 256 * 2, 256 * 2);
  std::vector<float> got(256);
  r.read_rows_f32(t, 7, 1, got.data());
  for (int i = 0; i < 256; ++i) {
    uint32_t u = uint32_t(uint8_t(raw[2 * i])) << 16 | uint32_t(uint8_t(raw[2 * i + 1])) << 24;
    float want;
    std::memcpy(&want, &u, 4);
    ASSERT_EQ(got[i], want) << i;
  }
  std::vector<uint16_t> raw_rows(2 * 256);
  r.read_rows(t, 7, 2, raw_rows.data());
  EXPECT_EQ(std::memcmp(raw_rows.data(), raw.data(), 512), 0);
  EXPECT_NE(r.find("model.layers.0.self_attn.q_norm.weight"), nullptr);
  // Movable: lookups and reads keep working through the moved-to reader.
  SafetensorsReader moved = std::move(r);
  std::vector<float> again(256);
  moved.read_rows_f32(moved.require(name), 7, 1, again.data());
  EXPECT_EQ(again, got);
}

// A zero dimension made the byte count 0 and hid that the other dims' product overflows int64, so
// numel() and row arithmetic on the accepted tensor overflowed (UB). Refused at open now.
TEST_F(SafetensorsCorrupt, ZeroDimDoesNotHideOverflowingElementCount) {
  expect_error(file(R"({"a":{"dtype":"U8","shape":[2, 4611686018427387904, 0],"data_offsets":[0,0]}})"),
               "overflowing");
  expect_error(file(R"({"a":{"dtype":"BF16","shape":[0, 4611686018427387904, 4611686018427387904],"data_offsets":[0,0]}})"),
               "overflowing");
  // Zero-sized tensors with sane dims are fine, and numel() is 0.
  const auto r = SafetensorsReader::open(file(R"({"a":{"dtype":"U8","shape":[3, 0, 1000000],"data_offsets":[0,0]}})"));
  EXPECT_EQ(r.require("a").numel(), 0);
}

// numel * dtype size past int64 (but within uint64) is refused too, before any read is sized from it.
TEST_F(SafetensorsCorrupt, ByteCountBeyondInt64IsRefused) {
  expect_error(file(R"({"a":{"dtype":"F64","shape":[1152921504606846976, 2],"data_offsets":[0,0]}})"), "overflowing");
}

}  // namespace
}  // namespace ar
