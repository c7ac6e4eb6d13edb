#include "pipeline/checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "core/checksum.h"
#include "io/file.h"
#include "quant/rtn.h"
#include "support/fixtures.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A block result with every kind of record: integer results, GGUF bytes, importance, and a
// linear with both an integer result and importance.
BlockResult two_layers() {
  std::map<std::string, QuantizedWeight> m;
  QuantizedWeight a = QuantizedWeight::allocate(QuantScheme{4, 32, true}, 3, 64);
  for (size_t i = 0; i < a.codes.size(); ++i) a.codes[i] = uint8_t(i % 16);
  for (size_t i = 0; i < a.scales.size(); ++i) a.scales[i] = uint16_t(0x3c00 + i);
  for (size_t i = 0; i < a.zeros.size(); ++i) a.zeros[i] = 8;
  QuantizedWeight b = QuantizedWeight::allocate(QuantScheme{2, -1, false}, 2, 10);
  for (size_t i = 0; i < b.codes.size(); ++i) b.codes[i] = uint8_t(i % 4);
  for (auto& s : b.scales) s = 0x2000;
  for (auto& z : b.zeros) z = 1;
  m.emplace("model.layers.0.mlp.up_proj", std::move(a));
  m.emplace("model.layers.0.self_attn.q_proj", std::move(b));
  BlockResult r;
  r.layer = 3;
  r.tuned = true;
  for (auto& [name, q] : m) r.linears[name].q = std::move(q);
  r.linears["model.layers.0.self_attn.q_proj"].importance = {0.5f, 1.5f, 2.5f};
  LinearResult& g = r.linears["model.layers.0.mlp.down_proj"];
  g.gguf_type = GgmlType::Q4_K;
  g.gguf.assign(144, 0);
  for (size_t i = 0; i < g.gguf.size(); ++i) g.gguf[i] = uint8_t(i * 7);
  return r;
}

TEST(Checkpoint, BlockResultsRoundTripAndDetectCorruption) {
  const fs::path dir = test::make_temp_dir("ckpt-block");
  const BlockResult m = two_layers();
  const uint64_t sum = save_block_result(dir / "block.0.q", m);
  const BlockResult back = load_block_result(dir / "block.0.q", sum);
  EXPECT_EQ(back.layer, 3);
  EXPECT_TRUE(back.tuned);
  ASSERT_EQ(back.linears.size(), m.linears.size());
  for (const auto& [name, lr] : m.linears) {
    const LinearResult& b = back.linears.at(name);
    EXPECT_EQ(b.importance, lr.importance) << name;
    EXPECT_EQ(b.gguf, lr.gguf) << name;
    EXPECT_EQ(b.gguf_type, lr.gguf_type) << name;
    ASSERT_EQ(b.q.has_value(), lr.q.has_value()) << name;
    if (!lr.q) continue;
    const QuantizedWeight& w = *lr.q;
    const QuantizedWeight& r = *b.q;
    EXPECT_EQ(r.scheme, w.scheme);
    EXPECT_EQ(r.out, w.out);
    EXPECT_EQ(r.in, w.in);
    EXPECT_EQ(r.codes, w.codes);
    EXPECT_EQ(r.scales, w.scales);
    EXPECT_EQ(r.zeros, w.zeros);
  }
  EXPECT_NE(error_of([&] { load_block_result(dir / "block.0.q", sum ^ 1); }).find("corrupted"), std::string::npos);
  // Truncated, but with the checksum of the truncated bytes: the structure check catches it.
  std::string bytes = read_text_file(dir / "block.0.q");
  bytes.resize(bytes.size() - 3);
  std::ofstream(dir / "t.q", std::ios::binary) << bytes;
  const std::string e = error_of([&] { load_block_result(dir / "t.q", checksum64(bytes.data(), bytes.size())); });
  EXPECT_NE(e.find("t.q"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST(Checkpoint, ManifestRoundTripAndMalformedManifests) {
  const fs::path dir = test::make_temp_dir("ckpt-manifest");
  EXPECT_FALSE(read_manifest(dir).has_value());
  CheckpointManifest m;
  m.identity = {{"iters", 200}, {"seed", 42}};
  m.next_block = 2;
  m.x_file = "X.2.f32";
  m.xq_file = "Xq.2.f32";
  m.x_sums = {1, 0xffffffffffffffffull};
  m.xq_sums = {3, 4};
  m.block_files = {"block.0.q", "block.1.q"};
  m.block_sums = {5, 6};
  write_manifest(dir, m);
  auto r = read_manifest(dir);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->identity, m.identity);
  EXPECT_EQ(r->next_block, 2);
  EXPECT_EQ(r->x_file, m.x_file);
  EXPECT_EQ(r->x_sums, m.x_sums);
  EXPECT_EQ(r->xq_sums, m.xq_sums);
  EXPECT_EQ(r->block_files, m.block_files);
  EXPECT_EQ(r->block_sums, m.block_sums);

  m.block_files.pop_back();  // fewer files than finished blocks
  write_manifest(dir, m);
  EXPECT_NE(error_of([&] { read_manifest(dir); }).find("block files"), std::string::npos);
  std::ofstream(dir / kManifestName) << "{\"format\": \"autoround.cpp checkpoint 2\", \"next_block\": ";
  EXPECT_NE(error_of([&] { read_manifest(dir); }).find("malformed checkpoint manifest"), std::string::npos);
  // A checkpoint of an earlier version (other block-file layout) is refused by name.
  std::ofstream(dir / kManifestName) << "{\"format\": \"autoround.cpp checkpoint 1\", \"next_block\": 0}";
  EXPECT_NE(error_of([&] { read_manifest(dir); }).find("is not this version's"), std::string::npos);
}

TEST(Checkpoint, IdentityMismatchNamesTheSetting) {
  const nlohmann::json saved = {{"iters", 200}, {"seed", 42}};
  EXPECT_NO_THROW(check_identity("/w", saved, saved));
  const std::string e = error_of([&] { check_identity("/w", saved, {{"iters", 100}, {"seed", 42}}); });
  EXPECT_NE(e.find("was made with iters=200, this run has iters=100"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { check_identity("/w", saved, {{"iters", 200}}); }).find("seed"), std::string::npos);
}

// Issue 19: every floating-point format's record (element codes, E8M0 / E4M3 scale codes, f32
// scales, NVFP4's global scale) comes back exactly, and dequantizes to the same weights.
TEST(Checkpoint, FloatingPointResultsRoundTrip) {
  const fs::path dir = test::make_temp_dir("ckpt-fp");
  std::vector<float> w(size_t(130 * 70));
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(float(i) * 0.37f) * float(1 + i % 13);
  BlockResult r;
  r.layer = 0;
  for (DataType t : {DataType::MXFP4, DataType::MXFP8, DataType::NVFP4, DataType::FP8, DataType::FP8Block})
    r.linears[data_type_name(t)].q = quantize_rtn(w.data(), 130, 70, fp_scheme(t));
  r.linears["int"].q = quantize_rtn(w.data(), 130, 70, QuantScheme{4, 32, false});
  const uint64_t sum = save_block_result(dir / "block.0.q", r);
  EXPECT_EQ(read_text_file(dir / "block.0.q").substr(0, 8), "ARBLK003");
  const BlockResult back = load_block_result(dir / "block.0.q", sum);
  ASSERT_EQ(back.linears.size(), r.linears.size());
  for (const auto& [name, lr] : r.linears) {
    const QuantizedWeight& a = *lr.q;
    const QuantizedWeight& b = *back.linears.at(name).q;
    EXPECT_EQ(b.scheme, a.scheme) << name;
    EXPECT_EQ(b.codes, a.codes) << name;
    EXPECT_EQ(b.scales, a.scales) << name;
    EXPECT_EQ(b.zeros, a.zeros) << name;
    EXPECT_EQ(b.scale_codes, a.scale_codes) << name;
    EXPECT_EQ(b.scales_f32, a.scales_f32) << name;
    EXPECT_EQ(b.global_scale, a.global_scale) << name;
    std::vector<float> da(w.size()), db(w.size());
    a.dequantize(da.data());
    b.dequantize(db.data());
    EXPECT_EQ(da, db) << name;
  }
}

// A version 3 file with one quantized record: header fields then `payload` bytes.
std::string v3_record(uint8_t type, int32_t bits, int64_t group, int64_t out, int64_t in, const std::string& payload) {
  std::string b("ARBLK003", 8);
  auto put = [&](auto v) { b.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(int64_t(0));
  put(uint8_t(0));
  put(uint32_t(1));
  const std::string name = "model.layers.0.mlp.up_proj";
  put(uint32_t(name.size()));
  b += name;
  put(uint8_t(1));
  put(bits);
  put(group);
  put(uint8_t(1));
  put(type);
  put(out);
  put(in);
  return b + payload;
}

TEST(Checkpoint, MalformedFloatingPointRecordsAreRefused) {
  const fs::path dir = test::make_temp_dir("ckpt-fp-bad");
  auto load_error = [&](const std::string& bytes) {
    std::ofstream(dir / "b.q", std::ios::binary | std::ios::trunc) << bytes;
    return error_of([&] { load_block_result(dir / "b.q", checksum64(bytes.data(), bytes.size())); });
  };
  std::string e = load_error(v3_record(9, 4, 32, 1, 32, std::string(33, '\0')));
  EXPECT_NE(e.find("unknown data type 9"), std::string::npos) << e;
  // MXFP4 with bits or group size other than the format's own.
  e = load_error(v3_record(uint8_t(DataType::MXFP4), 8, 32, 1, 32, std::string(33, '\0')));
  EXPECT_NE(e.find("bad layer header"), std::string::npos) << e;
  EXPECT_NE(e.find("MXFP4"), std::string::npos) << e;
  e = load_error(v3_record(uint8_t(DataType::NVFP4), 4, 32, 1, 32, std::string(37, '\0')));
  EXPECT_NE(e.find("bad layer header"), std::string::npos) << e;
  // Payloads one byte short: 32 codes + 2 scale codes + the f32 global scale is 38 for NVFP4.
  e = load_error(v3_record(uint8_t(DataType::NVFP4), 4, 16, 1, 32, std::string(37, '\0')));
  EXPECT_NE(e.find("needs 38 bytes"), std::string::npos) << e;
  e = load_error(v3_record(uint8_t(DataType::FP8Block), 8, 128, 130, 10, std::string(130 * 10 + 7, '\0')));
  EXPECT_NE(e.find("needs 1308 bytes"), std::string::npos) << e;  // two block rows x one block column
  // A scale that cannot be: FP8 scales are positive and finite.
  std::string fp8 = std::string(32, '\0');
  const float neg = -1.f;
  fp8.append(reinterpret_cast<const char*>(&neg), 4);
  e = load_error(v3_record(uint8_t(DataType::FP8), 8, -1, 1, 32, fp8));
  EXPECT_NE(e.find("FP8 scale -1"), std::string::npos) << e;
  std::string nv = std::string(34, '\0');
  const float nan = std::nanf("");
  nv.append(reinterpret_cast<const char*>(&nan), 4);
  e = load_error(v3_record(uint8_t(DataType::NVFP4), 4, 16, 1, 32, nv));
  EXPECT_NE(e.find("NVFP4 global scale"), std::string::npos) << e;
}

// A run interrupted before data types existed left version 2 files and a "checkpoint 2" manifest
// (integer layers only): both still load, so that run resumes.
TEST(Checkpoint, Version2FilesStillLoad) {
  const fs::path dir = test::make_temp_dir("ckpt-v2");
  std::string b("ARBLK002", 8);
  auto put = [&](auto v) { b.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(int64_t(2));
  put(uint8_t(1));
  put(uint32_t(1));
  put(uint32_t(1));
  b += "q";
  put(uint8_t(1));
  put(int32_t(4));
  put(int64_t(2));    // group_size
  put(uint8_t(1));    // sym; no data type byte in version 2
  put(int64_t(1));    // out
  put(int64_t(4));    // in
  b += std::string("\x01\x02\x03\x04", 4);  // codes
  put(uint16_t(0x3c00));
  put(uint16_t(0x4000));  // scales
  b += std::string("\x08\x08", 2);  // zeros
  std::ofstream(dir / "block.2.q", std::ios::binary) << b;
  const BlockResult r = load_block_result(dir / "block.2.q", checksum64(b.data(), b.size()));
  const QuantizedWeight& q = *r.linears.at("q").q;
  EXPECT_EQ(q.scheme, (QuantScheme{4, 2, true}));
  std::vector<float> d(4);
  q.dequantize(d.data());
  EXPECT_EQ(d, (std::vector<float>{-7.f, -6.f, -10.f, -8.f}));
  std::ofstream(dir / kManifestName)
      << R"({"format": "autoround.cpp checkpoint 2", "identity": {}, "next_block": 0, "x_file": "", "xq_file": "",)"
      << R"( "x_sums": [], "xq_sums": [], "block_files": [], "block_sums": []})";
  EXPECT_TRUE(read_manifest(dir).has_value());
}

// A block file whose single record is a quantized layer header with the given fields (no data).
std::string layer_header_only(int64_t group_size, int64_t out, int64_t in) {
  std::string b("ARBLK002", 8);
  auto put = [&](auto v) { b.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(int64_t(0));        // layer
  put(uint8_t(0));        // tuned
  put(uint32_t(1));       // records
  const std::string name = "model.layers.0.mlp.up_proj";
  put(uint32_t(name.size()));
  b += name;
  put(uint8_t(1));        // has q
  put(int32_t(4));        // bits
  put(group_size);
  put(uint8_t(1));        // sym
  put(out);
  put(in);
  return b;
}

// The layer header's shape (up to 2^24 x 2^24) was allocated before checking the file held it:
// 2^48 bytes of codes for a 70-byte file (bad_alloc, or an ASan allocation-size report).
TEST(Checkpoint, BlockLayerSizesAreRefusedBeforeAllocating) {
  const fs::path dir = test::make_temp_dir("ckpt-huge");
  const std::string bytes = layer_header_only(32, int64_t(1) << 24, int64_t(1) << 24);
  std::ofstream(dir / "block.0.q", std::ios::binary) << bytes;
  const std::string e = error_of([&] { load_block_result(dir / "block.0.q", checksum64(bytes.data(), bytes.size())); });
  EXPECT_NE(e.find("block.0.q"), std::string::npos) << e;
  EXPECT_NE(e.find("needs"), std::string::npos) << e;
  EXPECT_NE(e.find("16777216 x 16777216"), std::string::npos) << e;
}

// group_size near INT64_MAX made num_groups compute in + g - 1, a signed overflow (UB).
TEST(Checkpoint, HugeGroupSizeDoesNotOverflowTheGroupCount) {
  EXPECT_EQ(num_groups(QuantScheme{4, INT64_MAX, true}, 100), 1);
  EXPECT_EQ(num_groups(QuantScheme{4, 32, true}, 100), 4);
  EXPECT_EQ(num_groups(QuantScheme{4, -1, true}, 100), 1);
  const fs::path dir = test::make_temp_dir("ckpt-group");
  const std::string bytes = layer_header_only(INT64_MAX, 3, 5);
  std::ofstream(dir / "block.0.q", std::ios::binary) << bytes;
  const std::string e = error_of([&] { load_block_result(dir / "block.0.q", checksum64(bytes.data(), bytes.size())); });
  EXPECT_NE(e.find("needs 24 bytes"), std::string::npos) << e;  // 3x5 codes + 3 fp16 scales + 3 zeros
}

// Cache file names in the manifest could point outside the work dir ("../x", "/etc/x"); only
// block file names were checked.
TEST(Checkpoint, ManifestCacheFileNamesMustStayInTheWorkDir) {
  const fs::path dir = test::make_temp_dir("ckpt-names");
  CheckpointManifest m;
  m.identity = {{"iters", 1}};
  for (const char* bad : {"../X.1.f32", "/etc/passwd", ".."}) {
    m.x_file = bad;
    write_manifest(dir, m);
    const std::string e = error_of([&] { read_manifest(dir); });
    EXPECT_NE(e.find("is not a plain name"), std::string::npos) << bad << ": " << e;
    EXPECT_NE(e.find(kManifestName), std::string::npos) << e;
  }
  m.x_file = "X.1.f32";
  write_manifest(dir, m);
  EXPECT_TRUE(read_manifest(dir).has_value());
}

// Found by fuzz_checkpoint: an empty GGUF or importance record made the reader memcpy 0 bytes into
// an empty vector's null data() (UB, reported by UBSan). Empty records load as empty.
TEST(Checkpoint, EmptyRecordsLoadWithoutTouchingNullBuffers) {
  const fs::path dir = test::make_temp_dir("ckpt-empty");
  std::string b("ARBLK002", 8);
  auto put = [&](auto v) { b.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(int64_t(1));
  put(uint8_t(0));
  put(uint32_t(2));
  put(uint32_t(0));        // an empty name
  put(uint8_t(2 | 4));     // gguf + importance records
  put(uint32_t(8));        // Q8_0
  put(uint64_t(0));        // no gguf bytes
  put(uint64_t(0));        // no importance values
  put(uint32_t(1));
  b += "x";
  put(uint8_t(0));         // nothing at all
  std::ofstream(dir / "block.1.q", std::ios::binary) << b;
  const BlockResult r = load_block_result(dir / "block.1.q", checksum64(b.data(), b.size()));
  ASSERT_EQ(r.linears.size(), 2u);
  EXPECT_TRUE(r.linears.at("").gguf.empty());
  EXPECT_TRUE(r.linears.at("").importance.empty());
  EXPECT_FALSE(r.linears.at("x").q.has_value());
}

}  // namespace
}  // namespace ar
