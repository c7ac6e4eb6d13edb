#include "pipeline/checkpoint.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "core/error.h"
#include "core/checksum.h"
#include "io/file.h"
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
