// GgufWriter: exact byte layout of a tiny file (every header field at its offset, worked out by
// hand from the format), write -> read round trips with every value type and several tensor
// types, chunked == whole writes, an abandoned writer leaves nothing, plan and misuse errors, and
// a llama.cpp fixture rewritten through reader + writer comes out byte-identical.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "core/error.h"
#include "io/file.h"
#include "io/gguf.h"
#include "support/fixtures.h"

namespace ar {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

template <typename T>
T at(const std::string& b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = char(rng() & 0xff);
  return s;
}

class GgufWriterTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::make_temp_dir("gguf-writer"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// One u32 KV and one F32 [3, 1] tensor. Layout by hand:
//  0 "GGUF" | 4 u32 3 | 8 u64 n_tensors=1 | 16 u64 n_kv=1
// 24 u64 key len 5 | 32 "a.key" | 37 u32 type 4 | 41 u32 value 7
// 45 u64 name len 1 | 53 "t" | 54 u32 n_dims 1 | 58 u64 dim 3 | 66 u32 type 0 | 70 u64 offset 0
// 78..95 zero padding | 96 data (12 bytes) | 108..127 zero padding; 128 bytes in all.
TEST_F(GgufWriterTest, ByteLayoutOfTinyFile) {
  const fs::path p = dir_ / "tiny.gguf";
  GgufWriter w(p, {{"a.key", GgufValue::scalar<uint32_t>(7)}}, {{"t", GgmlType::F32, {3}}});
  EXPECT_EQ(w.data_offset_bytes(), 96u);
  EXPECT_EQ(w.total_bytes(), 128u);
  const float data[3] = {1.0f, -2.0f, 0.5f};
  w.write_tensor("t", data, sizeof data);
  w.finish();
  const std::string b = slurp(p);
  ASSERT_EQ(b.size(), 128u);
  EXPECT_EQ(b.substr(0, 4), "GGUF");
  EXPECT_EQ(at<uint32_t>(b, 4), 3u);
  EXPECT_EQ(at<uint64_t>(b, 8), 1u);
  EXPECT_EQ(at<uint64_t>(b, 16), 1u);
  EXPECT_EQ(at<uint64_t>(b, 24), 5u);
  EXPECT_EQ(b.substr(32, 5), "a.key");
  EXPECT_EQ(at<uint32_t>(b, 37), 4u);
  EXPECT_EQ(at<uint32_t>(b, 41), 7u);
  EXPECT_EQ(at<uint64_t>(b, 45), 1u);
  EXPECT_EQ(b.substr(53, 1), "t");
  EXPECT_EQ(at<uint32_t>(b, 54), 1u);
  EXPECT_EQ(at<uint64_t>(b, 58), 3u);
  EXPECT_EQ(at<uint32_t>(b, 66), 0u);
  EXPECT_EQ(at<uint64_t>(b, 70), 0u);
  EXPECT_EQ(b.substr(78, 18), std::string(18, '\0'));
  EXPECT_EQ(std::memcmp(b.data() + 96, data, 12), 0);
  EXPECT_EQ(b.substr(108), std::string(20, '\0'));
  EXPECT_FALSE(fs::exists(p.string() + ".tmp"));
}

TEST_F(GgufWriterTest, PlanWithoutWriting) {
  const GgufPlan plan = gguf_plan({{"a.key", GgufValue::scalar<uint32_t>(7)}},
                                  {{"t", GgmlType::F32, {3}}, {"u", GgmlType::Q8_0, {64, 3}}}, "dry.gguf");
  EXPECT_EQ(plan.alignment, 32u);
  EXPECT_EQ(plan.data_offset_bytes, 128u);  // 78 header bytes + "u" info (8 + 1 + 4 + 16 + 4 + 8)
  ASSERT_EQ(plan.tensors.size(), 2u);
  EXPECT_EQ(plan.tensors[0].offset_bytes, 128u);
  EXPECT_EQ(plan.tensors[0].size_bytes, 12u);
  EXPECT_EQ(plan.tensors[1].offset_bytes, 160u);
  EXPECT_EQ(plan.tensors[1].size_bytes, 6u * 34u);
  EXPECT_EQ(plan.total_bytes, 160u + 224u);
  EXPECT_FALSE(fs::exists("dry.gguf"));
}

// Strings and arrays on disk: string = u64 length + bytes; array = u32 elem type + u64 count + data.
TEST_F(GgufWriterTest, ByteLayoutOfStringAndArrays) {
  const fs::path p = dir_ / "arr.gguf";
  GgufWriter w(p,
               {{"s", GgufValue::string("hi")},
                {"v", GgufValue::array<int16_t>({-1, 2})},
                {"w", GgufValue::string_array({"ab", ""})}},
               {});
  w.finish();
  const std::string b = slurp(p);
  size_t o = 24;
  EXPECT_EQ(at<uint64_t>(b, o), 1u);
  EXPECT_EQ(b.substr(o + 8, 1), "s");
  EXPECT_EQ(at<uint32_t>(b, o + 9), 8u);
  EXPECT_EQ(at<uint64_t>(b, o + 13), 2u);
  EXPECT_EQ(b.substr(o + 21, 2), "hi");
  o += 23;
  EXPECT_EQ(b.substr(o + 8, 1), "v");
  EXPECT_EQ(at<uint32_t>(b, o + 9), 9u);
  EXPECT_EQ(at<uint32_t>(b, o + 13), 3u);  // i16
  EXPECT_EQ(at<uint64_t>(b, o + 17), 2u);
  EXPECT_EQ(at<int16_t>(b, o + 25), -1);
  EXPECT_EQ(at<int16_t>(b, o + 27), 2);
  o += 29;
  EXPECT_EQ(b.substr(o + 8, 1), "w");
  EXPECT_EQ(at<uint32_t>(b, o + 9), 9u);
  EXPECT_EQ(at<uint32_t>(b, o + 13), 8u);  // string
  EXPECT_EQ(at<uint64_t>(b, o + 17), 2u);
  EXPECT_EQ(at<uint64_t>(b, o + 25), 2u);
  EXPECT_EQ(b.substr(o + 33, 2), "ab");
  EXPECT_EQ(at<uint64_t>(b, o + 35), 0u);
  o += 43;
  EXPECT_EQ(b.size(), (o + 31) / 32 * 32);  // no tensors: header padded to the alignment
}

std::vector<GgufKV> all_kinds_of_kvs(uint32_t alignment) {
  return {
      {"general.architecture", GgufValue::string("llama")},
      {"general.alignment", GgufValue::scalar<uint32_t>(alignment)},
      {"k.u8", GgufValue::scalar<uint8_t>(255)},
      {"k.i8", GgufValue::scalar<int8_t>(-128)},
      {"k.u16", GgufValue::scalar<uint16_t>(65535)},
      {"k.i16", GgufValue::scalar<int16_t>(-32768)},
      {"k.i32", GgufValue::scalar<int32_t>(-7)},
      {"k.f32", GgufValue::scalar<float>(9.999999974752427e-07f)},
      {"k.bool", GgufValue::scalar<bool>(false)},
      {"k.u64", GgufValue::scalar<uint64_t>(~uint64_t(0))},
      {"k.i64", GgufValue::scalar<int64_t>(-1)},
      {"k.f64", GgufValue::scalar<double>(-0.0)},
      {"k.empty", GgufValue::string("")},
      {"k.a_f32", GgufValue::array<float>({0.0f, -1000.0f, 3.25f})},
      {"k.a_i32", GgufValue::array<int32_t>({1, 2, 3, 6})},
      {"k.a_bool", GgufValue::array<bool>({true, false, true})},
      {"k.a_u8", GgufValue::array<uint8_t>({})},
      {"k.a_str", GgufValue::string_array({"\xe2\x96\x81", "<0x0A>", "\xc4\xa0t he"})},
  };
}

TEST_F(GgufWriterTest, RoundTripKeepsMetadataAndTensors) {
  for (uint32_t alignment : {32u, 64u, 1u}) {
    SCOPED_TRACE(alignment);
    const fs::path p = dir_ / ("rt" + std::to_string(alignment) + ".gguf");
    const std::vector<GgufKV> kvs = all_kinds_of_kvs(alignment);
    const std::vector<GgufTensorDecl> decls = {
        {"token_embd.weight", GgmlType::F16, {16, 5}},
        {"blk.0.attn_q.weight", GgmlType::Q4_0, {64, 3}},
        {"blk.0.ffn_down.weight", GgmlType::Q4_K, {256, 2}},
        {"blk.0.attn_norm.weight", GgmlType::F32, {7}},
        {"x.4d", GgmlType::BF16, {3, 2, 2, 2}},
        {"blk.0.ffn_up.weight", GgmlType::Q6_K, {512, 1}},
    };
    std::vector<std::string> data;
    {
      GgufWriter w(p, kvs, decls);
      for (size_t i = 0; i < decls.size(); ++i) {
        const GgufTensorInfo& t = w.tensors()[i];
        EXPECT_EQ(t.offset_bytes % alignment, 0u);
        data.push_back(random_bytes(t.size_bytes, uint32_t(i)));
        w.write_tensor(decls[i].name, data.back().data(), data.back().size());
      }
      w.finish();
      EXPECT_EQ(fs::file_size(p), w.total_bytes());
    }
    GgufReader r = GgufReader::open(p);
    EXPECT_EQ(r.alignment(), alignment);
    ASSERT_EQ(r.metadata().size(), kvs.size());
    for (size_t i = 0; i < kvs.size(); ++i) {
      EXPECT_EQ(r.metadata()[i].key, kvs[i].key);
      EXPECT_TRUE(r.metadata()[i].value == kvs[i].value)
          << kvs[i].key << ": " << r.metadata()[i].value.to_string() << " vs " << kvs[i].value.to_string();
    }
    EXPECT_EQ(r.get_array<bool>("k.a_bool"), (std::vector<bool>{true, false, true}));
    EXPECT_EQ(r.get_f32("k.f32"), 9.999999974752427e-07f);
    ASSERT_EQ(r.tensors().size(), decls.size());
    for (size_t i = 0; i < decls.size(); ++i) {
      const GgufTensorInfo& t = r.tensors()[i];
      EXPECT_EQ(t.name, decls[i].name);
      EXPECT_EQ(t.type, decls[i].type);
      EXPECT_EQ(t.dims, decls[i].dims);
      std::string got(t.size_bytes, '\0');
      r.read(t, got.data());
      EXPECT_EQ(got, data[i]) << t.name;
    }
  }
}

TEST_F(GgufWriterTest, ChunkedWritesEqualWholeWrites) {
  const std::vector<GgufTensorDecl> decls = {{"a", GgmlType::Q8_0, {64, 4}}, {"b", GgmlType::F32, {5, 3}}};
  const std::string da = random_bytes(4 * 68, 1), db = random_bytes(60, 2);
  {
    GgufWriter w(dir_ / "whole.gguf", {}, decls);
    w.write_tensor("a", da.data(), da.size());
    w.write_tensor("b", db.data(), db.size());
    w.finish();
  }
  {
    GgufWriter w(dir_ / "chunked.gguf", {}, decls);
    for (size_t row = 0; row < 4; ++row) w.write_tensor_chunk("a", da.data() + row * 68, 68);
    w.write_tensor_chunk("b", db.data(), 1);
    w.write_tensor_chunk("b", db.data() + 1, 59);
    w.finish();
  }
  EXPECT_EQ(slurp(dir_ / "whole.gguf"), slurp(dir_ / "chunked.gguf"));
}

TEST_F(GgufWriterTest, AbandonedWriterLeavesNoFile) {
  const fs::path p = dir_ / "abandoned.gguf";
  const std::string d = random_bytes(128, 3);
  {
    GgufWriter w(p, all_kinds_of_kvs(32), {{"a", GgmlType::F32, {32}}, {"b", GgmlType::F32, {32}}});
    w.write_tensor("a", d.data(), d.size());
    EXPECT_TRUE(fs::exists(p.string() + ".tmp"));
  }
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(p.string() + ".tmp"));
  {  // a failed call half-way (wrong tensor) and then the writer is dropped
    GgufWriter w(p, {}, {{"a", GgmlType::F32, {32}}});
    EXPECT_THROW(w.write_tensor("b", d.data(), d.size()), InternalError);
  }
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(p.string() + ".tmp"));
}

TEST_F(GgufWriterTest, BadPlansAreErrorsNamingTheFile) {
  const fs::path p = dir_ / "plan.gguf";
  auto expect_error = [&](std::vector<GgufKV> kvs, std::vector<GgufTensorDecl> decls, const std::string& needle) {
    try {
      GgufWriter w(p, kvs, decls);
      ADD_FAILURE() << "no error, expected " << needle;
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(needle));
      EXPECT_THAT(e.what(), HasSubstr("plan.gguf"));
    }
    EXPECT_FALSE(fs::exists(p));
  };
  const GgufValue one = GgufValue::scalar<uint32_t>(1);
  expect_error({{"k", one}, {"k", one}}, {}, "duplicate metadata key 'k'");
  expect_error({{"", one}}, {}, "key is empty");
  expect_error({{"general.alignment", GgufValue::scalar<uint32_t>(24)}}, {}, "not a power of two");
  expect_error({{"general.alignment", GgufValue::scalar<uint64_t>(32)}}, {}, "must be u32");
  expect_error({}, {{"t", GgmlType::F32, {2}}, {"t", GgmlType::F32, {2}}}, "duplicate tensor name 't'");
  expect_error({}, {{"", GgmlType::F32, {2}}}, "empty name");
  expect_error({}, {{std::string(64, 'n'), GgmlType::F32, {2}}}, "at most 63");
  expect_error({}, {{"t", GgmlType::F32, {}}}, "has 0 dims");
  expect_error({}, {{"t", GgmlType::F32, {1, 1, 1, 1, 1}}}, "has 5 dims");
  expect_error({}, {{"t", GgmlType::F32, {2, 0}}}, "not positive");
  expect_error({}, {{"t", GgmlType::Q4_K, {128, 2}}}, "not a multiple of the Q4_K block size 256");
  expect_error({}, {{"t", GgmlType::F32, {int64_t(1) << 40, int64_t(1) << 40}}}, "overflows");
}

TEST_F(GgufWriterTest, MisuseIsAnInternalError) {
  const fs::path p = dir_ / "misuse.gguf";
  const std::string d = random_bytes(256, 4);
  GgufWriter w(p, {}, {{"a", GgmlType::F32, {8}}, {"b", GgmlType::F32, {8}}});
  EXPECT_THROW(w.write_tensor("b", d.data(), 32), InternalError);  // out of order
  EXPECT_THROW(w.write_tensor("a", d.data(), 31), InternalError);  // wrong size
  EXPECT_THROW(w.write_tensor_chunk("a", d.data(), 33), InternalError);  // too much
  w.write_tensor_chunk("a", d.data(), 16);
  EXPECT_THROW(w.write_tensor("b", d.data(), 32), InternalError);  // a is half written
  EXPECT_THROW(w.finish(), InternalError);
  w.write_tensor_chunk("a", d.data(), 16);
  w.write_tensor("b", d.data(), 32);
  EXPECT_THROW(w.write_tensor("c", d.data(), 32), InternalError);  // nothing left
  w.finish();
  EXPECT_TRUE(fs::exists(p));
}

// A file written by llama.cpp, passed through our reader and writer (same KVs, same tensors in
// the same order), comes out byte for byte the same: same layout, padding and offsets.
TEST_F(GgufWriterTest, RewritingLlamaCppFilesIsByteIdentical) {
  for (const char* name : {"gguf/model-F32.gguf", "gguf/model-Q4_K_M.gguf"}) {
    SCOPED_TRACE(name);
    AR_REQUIRE_FIXTURE(src, name);
    GgufReader r = GgufReader::open(src);
    std::vector<GgufTensorDecl> decls;
    for (const GgufTensorInfo& t : r.tensors()) decls.push_back({t.name, t.type, t.dims});
    const fs::path out = dir_ / src.filename();
    GgufWriter w(out, r.metadata(), decls);
    std::vector<char> buf;
    for (const GgufTensorInfo& t : r.tensors()) {
      EXPECT_EQ(w.tensors()[&t - r.tensors().data()].offset_bytes, t.offset_bytes) << t.name;
      buf.resize(t.size_bytes);
      r.read(t, buf.data());
      w.write_tensor(t.name, buf.data(), buf.size());
    }
    w.finish();
    EXPECT_TRUE(slurp(out) == slurp(src)) << "rewritten file differs from " << src;
  }
}

}  // namespace
}  // namespace ar
