// GgufReader: a small file written byte by byte in the test (not by our writer), read back
// field by field; one corruption per failure mode, made by patching that file, each giving an
// ar::Error that names the file; and every llama.cpp fixture checked against its index.json.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <random>

#include "core/dtype.h"
#include "core/error.h"
#include "io/file.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "support/fixtures.h"

namespace ar {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Appends little-endian fields; remembers where interesting ones sit so tests can patch them.
struct Bytes {
  std::string b;
  template <typename T>
  size_t put(T v) {
    const size_t at = b.size();
    b.append(reinterpret_cast<const char*>(&v), sizeof v);
    return at;
  }
  size_t str(const std::string& s) {  // returns the offset of the length field
    const size_t at = put<uint64_t>(s.size());
    b += s;
    return at;
  }
  template <typename T>
  void patch(size_t at, T v) {
    std::memcpy(b.data() + at, &v, sizeof v);
  }
};

// The tiny file: 15 KVs covering every value type, tensors "a" (F32 [4, 2]) at data offset 0 and
// "b" (Q8_0 [32, 2], 68 bytes) at data offset 32; alignment 32 stated explicitly.
struct Tiny {
  Bytes f;
  size_t key0_len_at = 0, u8_type_at = 0, i8_key_char_at = 0, bool_value_at = 0;
  size_t str_array_count_at = 0, i32_array_count_at = 0, align_type_at = 0, align_value_at = 0;
  size_t a_ndims_at = 0, a_dim0_at = 0, a_dim1_at = 0, b_name_char_at = 0, b_dim0_at = 0, b_type_at = 0,
         b_offset_at = 0;
  size_t data_at = 0;         // start of the data section
  size_t data_end = 0;        // end of tensor b's bytes (the file is padded beyond)
  std::vector<float> a_vals;  // 8 floats
  std::string b_bytes;        // 68 bytes
};

Tiny make_tiny() {
  Tiny t;
  Bytes& f = t.f;
  f.b = "GGUF";
  f.put<uint32_t>(3);
  f.put<uint64_t>(2);   // tensors
  f.put<uint64_t>(15);  // KVs
  t.key0_len_at = f.str("general.architecture");
  f.put<uint32_t>(8);
  f.str("llama");
  f.str("t.u8");
  t.u8_type_at = f.put<uint32_t>(0);
  f.put<uint8_t>(200);
  t.i8_key_char_at = f.str("t.i8") + 8 + 2;  // the 'i' of "t.i8"
  f.put<uint32_t>(1);
  f.put<int8_t>(-5);
  f.str("t.u16"), f.put<uint32_t>(2), f.put<uint16_t>(60000);
  f.str("t.i16"), f.put<uint32_t>(3), f.put<int16_t>(-30000);
  f.str("t.u32"), f.put<uint32_t>(4), f.put<uint32_t>(4000000000u);
  f.str("t.i32"), f.put<uint32_t>(5), f.put<int32_t>(-2000000000);
  f.str("t.f32"), f.put<uint32_t>(6), f.put<float>(1.5f);
  f.str("t.bool"), f.put<uint32_t>(7);
  t.bool_value_at = f.put<uint8_t>(1);
  f.str("t.u64"), f.put<uint32_t>(10), f.put<uint64_t>(uint64_t(1) << 40);
  f.str("t.i64"), f.put<uint32_t>(11), f.put<int64_t>(-(int64_t(1) << 40));
  f.str("t.f64"), f.put<uint32_t>(12), f.put<double>(0.1);
  f.str("t.arr_i32"), f.put<uint32_t>(9), f.put<uint32_t>(5);
  t.i32_array_count_at = f.put<uint64_t>(3);
  f.put<int32_t>(7), f.put<int32_t>(-8), f.put<int32_t>(9);
  f.str("t.arr_str"), f.put<uint32_t>(9), f.put<uint32_t>(8);
  t.str_array_count_at = f.put<uint64_t>(3);
  f.str("x"), f.str(""), f.str("\xe2\x96\x81the");
  f.str("general.alignment");
  t.align_type_at = f.put<uint32_t>(4);
  t.align_value_at = f.put<uint32_t>(32);
  // tensor infos
  f.str("a");
  t.a_ndims_at = f.put<uint32_t>(2);
  t.a_dim0_at = f.put<uint64_t>(4);
  t.a_dim1_at = f.put<uint64_t>(2);
  f.put<uint32_t>(0);  // F32
  f.put<uint64_t>(0);
  t.b_name_char_at = f.str("b") + 8;
  f.put<uint32_t>(2);
  t.b_dim0_at = f.put<uint64_t>(32);
  f.put<uint64_t>(2);
  t.b_type_at = f.put<uint32_t>(8);  // Q8_0
  t.b_offset_at = f.put<uint64_t>(32);
  while (f.b.size() % 32) f.b.push_back('\0');
  t.data_at = f.b.size();
  for (int i = 0; i < 8; ++i) t.a_vals.push_back(0.25f * float(i) - 1.0f);
  for (float v : t.a_vals) f.put<float>(v);
  for (int i = 0; i < 68; ++i) t.b_bytes.push_back(char(i * 7 + 3));
  f.b += t.b_bytes;
  t.data_end = f.b.size();
  while (f.b.size() % 32) f.b.push_back('\0');
  return t;
}

class GgufReaderTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::make_temp_dir("gguf-reader"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& bytes) {
    fs::path p = dir_ / ("t" + std::to_string(n_++) + ".gguf");
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  // Expects open() of `bytes` to fail with an ar::Error containing `needle` and the file name.
  void expect_error(const std::string& bytes, const std::string& needle) {
    const fs::path p = write(bytes);
    try {
      GgufReader::open(p);
      ADD_FAILURE() << "no error, expected: " << needle;
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(needle));
      EXPECT_THAT(e.what(), HasSubstr(p.filename().string()));
    }
  }
  fs::path dir_;
  int n_ = 0;
};

TEST_F(GgufReaderTest, ReadsEveryFieldOfHandWrittenFile) {
  Tiny t = make_tiny();
  const fs::path p = write(t.f.b);
  GgufReader r = GgufReader::open(p);
  EXPECT_EQ(r.version(), 3u);
  EXPECT_EQ(r.alignment(), 32u);
  EXPECT_EQ(r.data_offset_bytes(), t.data_at);
  ASSERT_EQ(r.metadata().size(), 15u);
  EXPECT_EQ(r.metadata()[0].key, "general.architecture");
  EXPECT_EQ(r.get_string("general.architecture"), "llama");
  EXPECT_EQ(r.get<uint8_t>("t.u8"), 200);
  EXPECT_EQ(r.get<int8_t>("t.i8"), -5);
  EXPECT_EQ(r.get<uint16_t>("t.u16"), 60000);
  EXPECT_EQ(r.get<int16_t>("t.i16"), -30000);
  EXPECT_EQ(r.get_u32("t.u32"), 4000000000u);
  EXPECT_EQ(r.get_i32("t.i32"), -2000000000);
  EXPECT_EQ(r.get_f32("t.f32"), 1.5f);
  EXPECT_TRUE(r.get_bool("t.bool"));
  EXPECT_EQ(r.get_u64("t.u64"), uint64_t(1) << 40);
  EXPECT_EQ(r.get<int64_t>("t.i64"), -(int64_t(1) << 40));
  EXPECT_EQ(r.get<double>("t.f64"), 0.1);
  EXPECT_EQ(r.get_array<int32_t>("t.arr_i32"), (std::vector<int32_t>{7, -8, 9}));
  EXPECT_EQ(r.get_string_array("t.arr_str"), (std::vector<std::string>{"x", "", "\xe2\x96\x81the"}));
  EXPECT_EQ(r.get_u32("general.alignment"), 32u);

  ASSERT_EQ(r.tensors().size(), 2u);
  const GgufTensorInfo& a = r.tensors()[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.type, GgmlType::F32);
  EXPECT_EQ(a.dims, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(a.offset_bytes, t.data_at);
  EXPECT_EQ(a.size_bytes, 32u);
  EXPECT_EQ(a.n_rows(), 2);
  const GgufTensorInfo& b = r.require_tensor("b");
  EXPECT_EQ(b.type, GgmlType::Q8_0);
  EXPECT_EQ(b.offset_bytes, t.data_at + 32);
  EXPECT_EQ(b.size_bytes, 68u);
  EXPECT_EQ(b.row_bytes(), 34u);
  EXPECT_EQ(r.find_tensor("c"), nullptr);

  std::vector<float> av(8);
  r.read(a, av.data());
  EXPECT_EQ(av, t.a_vals);
  std::vector<float> row1(4);
  r.read_rows(a, 1, 1, row1.data());
  EXPECT_EQ(row1, std::vector<float>(t.a_vals.begin() + 4, t.a_vals.end()));
  std::string bb(68, '\0');
  r.read(b, bb.data());
  EXPECT_EQ(bb, t.b_bytes);
  std::string brow(34, '\0');
  r.read_rows(b, 1, 1, brow.data());
  EXPECT_EQ(brow, t.b_bytes.substr(34));
}

TEST_F(GgufReaderTest, TypedGettersNameFileKeyAndTypes) {
  GgufReader r = GgufReader::open(write(make_tiny().f.b));
  auto expect_throw = [&](auto fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected " << needle;
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(needle));
      EXPECT_THAT(e.what(), HasSubstr(r.path().filename().string()));
    }
  };
  expect_throw([&] { r.get_u32("general.architecture"); }, "'general.architecture' is string, expected u32");
  expect_throw([&] { r.get_string("t.u32"); }, "'t.u32' is u32, expected string");
  expect_throw([&] { r.get_array<float>("t.arr_i32"); }, "is array[i32], expected array[f32]");
  expect_throw([&] { r.get_string_array("t.arr_i32"); }, "expected array[string]");
  expect_throw([&] { r.get_u32("no.such.key"); }, "'no.such.key' not found");
  expect_throw([&] { r.require_tensor("zz"); }, "tensor 'zz' not found");
  EXPECT_EQ(r.find_kv("no.such.key"), nullptr);
}

TEST_F(GgufReaderTest, DefaultAlignmentIs32) {
  // Without general.alignment: the same layout still reads (alignment 32 by default). Drop the
  // key by renaming it to an unrelated key of the same length.
  Tiny t = make_tiny();
  const size_t at = t.f.b.find("general.alignment");
  t.f.b.replace(at, 17, "general.alignmenX");
  GgufReader r = GgufReader::open(write(t.f.b));
  EXPECT_EQ(r.alignment(), 32u);
  EXPECT_EQ(r.data_offset_bytes(), t.data_at);
}

TEST_F(GgufReaderTest, LargerAlignmentMovesDataStart) {
  // alignment 64: data starts at the next multiple of 64 and offsets must be multiples of 64.
  Tiny t = make_tiny();
  t.f.patch<uint32_t>(t.align_value_at, 64);
  t.f.patch<uint64_t>(t.b_offset_at, 64);
  std::string bytes = t.f.b.substr(0, t.data_at);
  while (bytes.size() % 64) bytes.push_back('\0');
  const size_t data_at = bytes.size();
  bytes += t.f.b.substr(t.data_at, 32) + std::string(32, '\0') + t.b_bytes + std::string(60, '\0');
  GgufReader r = GgufReader::open(write(bytes));
  EXPECT_EQ(r.alignment(), 64u);
  EXPECT_EQ(r.data_offset_bytes(), data_at);
  EXPECT_EQ(r.require_tensor("b").offset_bytes, data_at + 64);
}

TEST_F(GgufReaderTest, TruncatedAnywhereIsAnError) {
  Tiny t = make_tiny();
  // Every prefix that cuts into the header, metadata, tensor infos or tensor data. (Cutting only
  // the final padding leaves all data intact, which is acceptable.)
  for (size_t len = 0; len < t.data_end; ++len) {
    SCOPED_TRACE(len);
    const fs::path p = write(t.f.b.substr(0, len));
    try {
      GgufReader::open(p);
      ADD_FAILURE() << "no error for a file truncated to " << len << " bytes";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(p.filename().string()));
    }
    fs::remove(p);
  }
  EXPECT_NO_THROW(GgufReader::open(write(t.f.b.substr(0, t.data_end))));
}

TEST_F(GgufReaderTest, BadMagic) {
  Tiny t = make_tiny();
  t.f.b[0] = 'X';
  expect_error(t.f.b, "not a GGUF file");
}

TEST_F(GgufReaderTest, BadVersion) {
  for (uint32_t v : {0u, 1u, 4u, 0x03000000u}) {
    Tiny t = make_tiny();
    t.f.patch<uint32_t>(4, v);
    expect_error(t.f.b, "version");
  }
  Tiny t = make_tiny();
  t.f.patch<uint32_t>(4, 2);  // v2 has the same layout
  EXPECT_NO_THROW(GgufReader::open(write(t.f.b)));
}

TEST_F(GgufReaderTest, CountsPastTheEnd) {
  Tiny t = make_tiny();
  t.f.patch<uint64_t>(8, uint64_t(1) << 40);
  expect_error(t.f.b, "tensor count");
  t = make_tiny();
  t.f.patch<uint64_t>(16, ~uint64_t(0));
  expect_error(t.f.b, "KV count");
  t = make_tiny();
  t.f.patch<uint64_t>(16, 16);  // one KV more than there is: tensor infos are read as a KV
  expect_error(t.f.b, "");
}

TEST_F(GgufReaderTest, StringLengthPastTheEnd) {
  Tiny t = make_tiny();
  t.f.patch<uint64_t>(t.key0_len_at, uint64_t(1) << 62);
  expect_error(t.f.b, "past the end of the file");
}

TEST_F(GgufReaderTest, ArrayLengthPastTheEnd) {
  Tiny t = make_tiny();
  t.f.patch<uint64_t>(t.str_array_count_at, uint64_t(1) << 61);
  expect_error(t.f.b, "'t.arr_str': array of");
  t = make_tiny();
  t.f.patch<uint64_t>(t.i32_array_count_at, ~uint64_t(0) / 2);  // count * 4 overflows 64 bits
  expect_error(t.f.b, "'t.arr_i32': array of");
}

TEST_F(GgufReaderTest, DuplicateKey) {
  Tiny t = make_tiny();
  t.f.b[t.i8_key_char_at] = 'u';  // "t.i8" -> "t.u8"
  expect_error(t.f.b, "duplicate metadata key 't.u8'");
}

TEST_F(GgufReaderTest, DuplicateTensor) {
  Tiny t = make_tiny();
  t.f.b[t.b_name_char_at] = 'a';
  expect_error(t.f.b, "duplicate tensor name 'a'");
}

TEST_F(GgufReaderTest, BadAlignment) {
  for (uint32_t a : {0u, 3u, 48u}) {
    Tiny t = make_tiny();
    t.f.patch<uint32_t>(t.align_value_at, a);
    expect_error(t.f.b, "not a power of two");
  }
  Tiny t = make_tiny();
  t.f.patch<uint32_t>(t.align_type_at, 5);  // i32
  expect_error(t.f.b, "general.alignment is i32, expected u32");
}

TEST_F(GgufReaderTest, MisalignedOverlappingOrOutOfRangeOffsets) {
  Tiny t = make_tiny();
  t.f.patch<uint64_t>(t.b_offset_at, 36);
  expect_error(t.f.b, "is not a multiple of the alignment 32");
  t = make_tiny();
  t.f.patch<uint64_t>(t.b_offset_at, 0);
  expect_error(t.f.b, "overlapping");
  t = make_tiny();
  t.f.patch<uint64_t>(t.b_offset_at, 64);
  expect_error(t.f.b, "runs past the end of the data section");
  t = make_tiny();
  t.f.patch<uint64_t>(t.b_offset_at, ~uint64_t(0) - 31);  // aligned, and offset + size overflows
  expect_error(t.f.b, "runs past the end of the data section");
}

TEST_F(GgufReaderTest, UnknownTypes) {
  Tiny t = make_tiny();
  t.f.patch<uint32_t>(t.u8_type_at, 13);
  expect_error(t.f.b, "'t.u8': unknown value type 13");
  t = make_tiny();
  t.f.patch<uint32_t>(t.b_type_at, 4);  // Q4_2, long removed from ggml
  expect_error(t.f.b, "tensor 'b' has unknown or unsupported ggml type id 4");
  t = make_tiny();
  t.f.patch<uint32_t>(t.b_type_at, 1000);
  expect_error(t.f.b, "ggml type id 1000");
}

TEST_F(GgufReaderTest, BadDims) {
  Tiny t = make_tiny();
  t.f.patch<uint32_t>(t.a_ndims_at, 5);
  expect_error(t.f.b, "tensor 'a' has 5 dimensions");
  t = make_tiny();
  t.f.patch<uint32_t>(t.a_ndims_at, 0);
  expect_error(t.f.b, "tensor 'a' has 0 dimensions");
  t = make_tiny();
  t.f.patch<uint64_t>(t.a_dim0_at, uint64_t(1) << 40);
  t.f.patch<uint64_t>(t.a_dim1_at, uint64_t(1) << 40);
  expect_error(t.f.b, "overflow");
  t = make_tiny();
  t.f.patch<uint64_t>(t.a_dim0_at, uint64_t(1) << 63);
  expect_error(t.f.b, "out of range");
  t = make_tiny();
  t.f.patch<uint64_t>(t.b_dim0_at, 16);
  expect_error(t.f.b, "not a multiple of its block size 32");
}

TEST_F(GgufReaderTest, BoolOtherThanZeroOrOne) {
  Tiny t = make_tiny();
  t.f.patch<uint8_t>(t.bool_value_at, 2);
  expect_error(t.f.b, "bool value 2");
}

// Random corruption of the valid file: every mutant either reads or fails with ar::Error; no
// other exception (bad_alloc, length_error) and no crash (run under AR_SANITIZE to see overreads).
TEST_F(GgufReaderTest, RandomCorruptionsFailCleanly) {
  const Tiny t = make_tiny();
  std::mt19937 rng(1234);
  int opened = 0, rejected = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    std::string b = t.f.b;
    const int n_flips = 1 + int(rng() % 3);
    for (int k = 0; k < n_flips; ++k) {
      const size_t at = rng() % t.data_at;  // header, metadata and tensor infos
      // Mostly small values and all-ones bytes: the interesting cases for lengths and counts.
      const uint32_t r = rng() % 4;
      b[at] = char(r == 0 ? 0xff : r == 1 ? 0 : r == 2 ? (b[at] ^ (1 << (rng() % 8))) : rng() & 0xff);
    }
    // A fresh file each time: truncating and rewriting one file is slow on some filesystems.
    const fs::path p = dir_ / ("mutant-" + std::to_string(iter) + ".gguf");
    std::ofstream(p, std::ios::binary) << b;
    try {
      GgufReader r = GgufReader::open(p);
      for (const GgufTensorInfo& ti : r.tensors()) {
        std::string data(ti.size_bytes, '\0');
        r.read(ti, data.data());
      }
      ++opened;
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(p.filename().string()));
      ++rejected;
    }
    fs::remove(p);
  }
  EXPECT_GT(rejected, 100);
  EXPECT_GT(opened, 10);  // flips inside string contents or values leave a valid file
}

TEST_F(GgufReaderTest, NotARegularFileOrMissing) {
  EXPECT_THROW(GgufReader::open(dir_ / "missing.gguf"), Error);
  EXPECT_THROW(GgufReader::open(dir_), Error);
}

// Every reference file: tensor names, types, shapes, offsets and sizes equal index.json (written
// by the fixture's maker from llama.cpp's gguf-py), in file order.
TEST(GgufReaderFixtures, TensorTableEqualsIndexJson) {
  AR_REQUIRE_FIXTURE(dir, "gguf/index.json");
  const fs::path root = dir.parent_path();
  const nlohmann::json index = nlohmann::json::parse(read_text_file(root / "index.json"));
  int files = 0;
  for (auto it = index.begin(); it != index.end(); ++it) {
    SCOPED_TRACE(it.key());
    GgufReader r = GgufReader::open(root / (it.key() + ".gguf"));
    const nlohmann::json& tensors = it.value()["tensors"];
    ASSERT_EQ(r.tensors().size(), tensors.size());
    for (auto jt = tensors.begin(); jt != tensors.end(); ++jt) {
      const GgufTensorInfo* t = r.find_tensor(jt.key());
      ASSERT_NE(t, nullptr) << jt.key();
      EXPECT_EQ(ggml_info(t->type).name, jt.value()["type"].get<std::string>()) << jt.key();
      EXPECT_EQ(t->dims, jt.value()["shape_gguf"].get<std::vector<int64_t>>()) << jt.key();
      EXPECT_EQ(t->offset_bytes, jt.value()["offset_bytes"].get<uint64_t>()) << jt.key();
      EXPECT_EQ(t->size_bytes, jt.value()["n_bytes"].get<uint64_t>()) << jt.key();
    }
    EXPECT_EQ(r.get_string("general.architecture"), "qwen3");
    EXPECT_EQ(r.get_string_array("tokenizer.ggml.tokens").size(), 512u);
    ++files;
  }
  EXPECT_GE(files, 12);
}

// model-F32.gguf holds the HF weights upcast to f32: token_embd read through GgufReader (whole and
// by rows) equals embed_tokens read from the safetensors checkpoint.
TEST(GgufReaderFixtures, F32TensorDataEqualsCheckpoint) {
  AR_REQUIRE_FIXTURE(gguf, "gguf/model-F32.gguf");
  AR_REQUIRE_FIXTURE(hf, "models/qwen3-student/hf");
  GgufReader r = GgufReader::open(gguf);
  SafetensorsReader st = SafetensorsReader::open(hf);
  const TensorInfo& e = st.require("model.embed_tokens.weight");
  std::vector<float> want(size_t(e.numel()));
  st.read_f32(e, want.data());
  const GgufTensorInfo& t = r.require_tensor("token_embd.weight");
  ASSERT_EQ(t.dims, (std::vector<int64_t>{e.shape[1], e.shape[0]}));
  std::vector<float> got(size_t(t.numel()));
  r.read(t, got.data());
  EXPECT_EQ(got, want);
  std::vector<float> rows(size_t(3 * t.dims[0]));
  r.read_rows(t, 100, 3, rows.data());
  EXPECT_EQ(rows, std::vector<float>(want.begin() + 100 * t.dims[0], want.begin() + 103 * t.dims[0]));
}

// One F32 tensor with the given dims and no data, the smallest valid layout around them.
std::string one_tensor_file(const std::vector<uint64_t>& dims) {
  Bytes f;
  f.b = "GGUF";
  f.put<uint32_t>(3);
  f.put<uint64_t>(1);
  f.put<uint64_t>(0);
  f.str("t");
  f.put<uint32_t>(uint32_t(dims.size()));
  for (uint64_t d : dims) f.put<uint64_t>(d);
  f.put<uint32_t>(0);  // F32
  f.put<uint64_t>(0);
  while (f.b.size() % 32) f.b.push_back('\0');
  return f.b;
}

// A leading zero dim made the element count 0 and let dims whose product overflows int64 through;
// n_rows() (product of dims[1..]) then overflowed. Every non-zero product must fit now.
TEST_F(GgufReaderTest, ZeroDimDoesNotHideOverflowingDims) {
  expect_error(one_tensor_file({0, uint64_t(1) << 40, uint64_t(1) << 40}), "overflow the element count");
  expect_error(one_tensor_file({1, 0, uint64_t(1) << 62, 4}), "overflow the element count");
  const fs::path ok = write(one_tensor_file({0, uint64_t(1) << 20, uint64_t(1) << 20}));
  const GgufReader r = GgufReader::open(ok);
  EXPECT_EQ(r.require_tensor("t").numel(), 0);
  EXPECT_EQ(r.require_tensor("t").n_rows(), int64_t(1) << 40);
  EXPECT_EQ(r.require_tensor("t").size_bytes, 0u);
}

}  // namespace
}  // namespace ar
