// GGUF mixes: per-tensor types against the files llama-quantize made (../shared/fixtures/gguf:
// index.json records each tensor's type; general.file_type is read from the file's metadata), and
// hand-worked cases for the rules the small fixture model cannot reach (gqa >= 4, untied output,
// many layers, 70B, row-length fallbacks, MoE). Expected values come from llama.cpp's rules as
// written in llama-quant.cpp and llama.h, worked out by hand.
#include "export/gguf_mix.h"

#include "core/error.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "support/fixtures.h"

namespace ar {
namespace {

// ---- fixtures ----------------------------------------------------------------------------------

// general.file_type from a GGUF file's metadata without a GGUF parser: the key string is followed
// by its value type (u32 4 = UINT32) and the u32 value, all little-endian.
uint32_t read_file_type(const std::filesystem::path& gguf) {
  std::ifstream in(gguf, std::ios::binary);
  std::string head(64 * 1024, '\0');
  in.read(head.data(), std::streamsize(head.size()));
  const std::string key = "general.file_type";
  const size_t at = head.find(key);
  EXPECT_NE(at, std::string::npos) << gguf;
  if (at == std::string::npos) return ~0u;
  uint32_t type = 0, value = 0;
  std::memcpy(&type, head.data() + at + key.size(), 4);
  std::memcpy(&value, head.data() + at + key.size() + 4, 4);
  EXPECT_EQ(type, 4u) << "general.file_type is not a UINT32 in " << gguf;
  return value;
}

TEST(GgufMix, MatchesLlamaQuantizeOnFixtureFiles) {
  AR_REQUIRE_FIXTURE(index_path, "gguf/index.json");
  std::ifstream in(index_path);
  const nlohmann::json index = nlohmann::json::parse(in);
  // The fixture model (quantize-*.log metadata dump): qwen3, 6 blocks, 8 heads, 4 KV heads, tied
  // embeddings (no output.weight).
  const GgufMixModel model{"qwen3", 6, 8, 4};
  std::vector<GgufMixTensor> tensors;
  for (const auto& [name, t] : index.at("model-F32").at("tensors").items())
    tensors.push_back({name, t.at("shape_gguf").get<std::vector<int64_t>>(), GgmlType::F32});
  int n_files = 0;
  for (const auto& [file, entry] : index.items()) {
    const std::string suffix = file.substr(std::string("model-").size());
    const auto mix = parse_gguf_mix(suffix);
    ASSERT_TRUE(mix.has_value()) << file;
    const auto types = gguf_mix_types(*mix, model, tensors);
    std::map<std::string, int> counts;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const std::string expected = entry.at("tensors").at(tensors[i].name).at("type").get<std::string>();
      EXPECT_EQ(ggml_info(types[i].type).name, expected) << file << ": " << tensors[i].name;
      EXPECT_FALSE(types[i].fallback) << file << ": " << tensors[i].name;
      ++counts[expected];
    }
    EXPECT_EQ(read_file_type(index_path.parent_path() / (file + ".gguf")), gguf_mix_info(*mix).file_type) << file;
    std::printf("[ mix ] %-14s types match for %zu tensors (", file.c_str(), tensors.size());
    for (const auto& [t, n] : counts) std::printf(" %s:%d", t.c_str(), n);
    std::printf(" ), file_type %u\n", gguf_mix_info(*mix).file_type);
    ++n_files;
  }
  EXPECT_EQ(n_files, 13);
}

// ---- hand-worked rules -------------------------------------------------------------------------

// A dense decoder in GGUF names: embd/output, and per block the norms and seven matrices.
std::vector<GgufMixTensor> decoder(int n_layer, int64_t C, int64_t F, int64_t kv, bool with_output) {
  std::vector<GgufMixTensor> t;
  t.push_back({"token_embd.weight", {C, 1000}});
  t.push_back({"output_norm.weight", {C}});
  if (with_output) t.push_back({"output.weight", {C, 1000}});
  for (int i = 0; i < n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    t.push_back({p + "attn_norm.weight", {C}});
    t.push_back({p + "attn_q.weight", {C, C}});
    t.push_back({p + "attn_k.weight", {C, kv}});
    t.push_back({p + "attn_v.weight", {C, kv}});
    t.push_back({p + "attn_output.weight", {C, C}});
    t.push_back({p + "ffn_norm.weight", {C}});
    t.push_back({p + "ffn_gate.weight", {C, F}});
    t.push_back({p + "ffn_up.weight", {C, F}});
    t.push_back({p + "ffn_down.weight", {F, C}});
  }
  return t;
}

std::map<std::string, GgmlType> types_by_name(GgufMix mix, const GgufMixModel& m, const std::vector<GgufMixTensor>& t) {
  const auto types = gguf_mix_types(mix, m, t);
  std::map<std::string, GgmlType> out;
  for (size_t i = 0; i < t.size(); ++i) out[t[i].name] = types[i].type;
  return out;
}

std::string blk(int i, const char* what) { return "blk." + std::to_string(i) + "." + what + ".weight"; }

TEST(GgufMix, NamesAndFileTypesFollowLlamaH) {
  // llama.h: Q4_0 2, Q4_1 3, Q8_0 7, Q5_0 8, Q5_1 9, Q2_K 10, Q3_K_S..Q6_K 11..18, Q2_K_S 21, BF16 32.
  const std::map<std::string, uint32_t> expected = {
      {"f32", 0},     {"f16", 1},     {"q4_0", 2},    {"q4_1", 3},    {"q8_0", 7},    {"q5_0", 8},
      {"q5_1", 9},    {"q2_k", 10},   {"q3_k_s", 11}, {"q3_k_m", 12}, {"q3_k_l", 13}, {"q4_k_s", 14},
      {"q4_k_m", 15}, {"q5_k_s", 16}, {"q5_k_m", 17}, {"q6_k", 18},   {"q2_k_s", 21}, {"bf16", 32}};
  EXPECT_EQ(gguf_mixes().size(), expected.size());
  for (const auto& [name, ft] : expected) {
    const auto mix = parse_gguf_mix(name);
    ASSERT_TRUE(mix.has_value()) << name;
    EXPECT_EQ(gguf_mix_info(*mix).file_type, ft) << name;
    EXPECT_EQ(gguf_mix_info(*mix).name, name);
  }
  EXPECT_EQ(parse_gguf_mix("Q4_K_M"), GgufMix::Q4_K_M);
  EXPECT_FALSE(parse_gguf_mix("q4_k").has_value());
  EXPECT_FALSE(parse_gguf_mix("iq2_xxs").has_value());
}

TEST(GgufMix, Q4KMUseMoreBitsOver32Layers) {
  // n = 32: more bits for i < 4, i >= 28, and (i - 4) % 3 == 2 -> 6, 9, ..., 27.
  const std::set<int> more = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
  const auto ty = types_by_name(GgufMix::Q4_K_M, {"llama", 32, 32, 8}, decoder(32, 4096, 14336, 1024, true));
  for (int i = 0; i < 32; ++i) {
    const GgmlType want = more.count(i) ? GgmlType::Q6_K : GgmlType::Q4_K;
    EXPECT_EQ(ty.at(blk(i, "attn_v")), want) << i;
    EXPECT_EQ(ty.at(blk(i, "ffn_down")), want) << i;
    EXPECT_EQ(ty.at(blk(i, "attn_q")), GgmlType::Q4_K);
    EXPECT_EQ(ty.at(blk(i, "attn_output")), GgmlType::Q4_K);
    EXPECT_EQ(ty.at(blk(i, "attn_norm")), GgmlType::F32);
  }
  // Untied: output is promoted, token_embd keeps the mix's type.
  EXPECT_EQ(ty.at("output.weight"), GgmlType::Q6_K);
  EXPECT_EQ(ty.at("token_embd.weight"), GgmlType::Q4_K);
  EXPECT_EQ(ty.at("output_norm.weight"), GgmlType::F32);
}

TEST(GgufMix, LowBitMixesPromoteByGqaAndLayer) {
  const auto t = decoder(32, 4096, 14336, 1024, true);
  // gqa = 32 / 8 = 4: Q2_K and Q2_K_S give attn_v Q4_K.
  auto q2 = types_by_name(GgufMix::Q2_K, {"llama", 32, 32, 8}, t);
  EXPECT_EQ(q2.at(blk(5, "attn_v")), GgmlType::Q4_K);
  EXPECT_EQ(q2.at(blk(5, "ffn_down")), GgmlType::Q3_K);
  EXPECT_EQ(q2.at(blk(5, "attn_output")), GgmlType::Q3_K);
  EXPECT_EQ(q2.at(blk(5, "ffn_up")), GgmlType::Q2_K);
  auto q2s = types_by_name(GgufMix::Q2_K_S, {"llama", 32, 32, 8}, t);
  EXPECT_EQ(q2s.at(blk(5, "attn_v")), GgmlType::Q4_K);
  EXPECT_EQ(q2s.at(blk(3, "ffn_down")), GgmlType::Q4_K);  // 3 < 32/8
  EXPECT_EQ(q2s.at(blk(4, "ffn_down")), GgmlType::Q2_K);
  EXPECT_EQ(q2s.at(blk(4, "attn_output")), GgmlType::Q2_K);
  // gqa = 1: Q2_K_S leaves attn_v alone, Q2_K gives Q3_K.
  EXPECT_EQ(types_by_name(GgufMix::Q2_K_S, {"llama", 32, 32, 32}, t).at(blk(0, "attn_v")), GgmlType::Q2_K);
  EXPECT_EQ(types_by_name(GgufMix::Q2_K, {"llama", 32, 32, 32}, t).at(blk(0, "attn_v")), GgmlType::Q3_K);
  // Q3_K_M: first two attn_v Q5_K; ffn_down Q5_K below 32/16 = 2, else Q4_K (not falcon).
  auto q3m = types_by_name(GgufMix::Q3_K_M, {"qwen2", 32, 32, 8}, t);
  EXPECT_EQ(q3m.at(blk(1, "attn_v")), GgmlType::Q5_K);
  EXPECT_EQ(q3m.at(blk(2, "attn_v")), GgmlType::Q4_K);
  EXPECT_EQ(q3m.at(blk(1, "ffn_down")), GgmlType::Q5_K);
  EXPECT_EQ(q3m.at(blk(2, "ffn_down")), GgmlType::Q4_K);
  EXPECT_EQ(q3m.at(blk(2, "attn_output")), GgmlType::Q4_K);
  EXPECT_EQ(q3m.at(blk(2, "attn_k")), GgmlType::Q3_K);
  // Q3_K_L: attn_v, ffn_down, attn_output all Q5_K.
  auto q3l = types_by_name(GgufMix::Q3_K_L, {"qwen2", 32, 32, 8}, t);
  EXPECT_EQ(q3l.at(blk(9, "attn_v")), GgmlType::Q5_K);
  EXPECT_EQ(q3l.at(blk(9, "ffn_down")), GgmlType::Q5_K);
  EXPECT_EQ(q3l.at(blk(9, "attn_output")), GgmlType::Q5_K);
  // Q4_K_S: first four attn_v and the first eighth of ffn_down Q5_K.
  auto q4s = types_by_name(GgufMix::Q4_K_S, {"qwen2", 32, 32, 8}, t);
  EXPECT_EQ(q4s.at(blk(3, "attn_v")), GgmlType::Q5_K);
  EXPECT_EQ(q4s.at(blk(4, "attn_v")), GgmlType::Q4_K);
  EXPECT_EQ(q4s.at(blk(3, "ffn_down")), GgmlType::Q5_K);
  EXPECT_EQ(q4s.at(blk(4, "ffn_down")), GgmlType::Q4_K);
  // Q5_K_M: as Q4_K_M's pattern with Q6_K over Q5_K.
  auto q5m = types_by_name(GgufMix::Q5_K_M, {"qwen2", 32, 32, 8}, t);
  EXPECT_EQ(q5m.at(blk(6, "attn_v")), GgmlType::Q6_K);
  EXPECT_EQ(q5m.at(blk(7, "ffn_down")), GgmlType::Q5_K);
  // The simple formats: only the output changes (Q8_0 keeps its own type).
  auto q40 = types_by_name(GgufMix::Q4_0, {"llama", 32, 32, 8}, t);
  EXPECT_EQ(q40.at("output.weight"), GgmlType::Q6_K);
  EXPECT_EQ(q40.at(blk(0, "ffn_down")), GgmlType::Q4_0);
  EXPECT_EQ(types_by_name(GgufMix::Q8_0, {"llama", 32, 32, 8}, t).at("output.weight"), GgmlType::Q8_0);
  // With an importance matrix, q4_0 / q5_0 guard the first eighth of ffn_down with the _1 formats.
  GgufMixModel with_imatrix{"llama", 32, 32, 8};
  with_imatrix.has_imatrix = true;
  EXPECT_EQ(types_by_name(GgufMix::Q4_0, with_imatrix, t).at(blk(3, "ffn_down")), GgmlType::Q4_1);
  EXPECT_EQ(types_by_name(GgufMix::Q5_0, with_imatrix, t).at(blk(4, "ffn_down")), GgmlType::Q5_0);
}

TEST(GgufMix, SeventyBAttnVGetsQ5K) {
  const auto t = decoder(80, 8192, 28672, 1024, true);
  const auto ty = types_by_name(GgufMix::Q4_K_S, {"llama", 80, 64, 8}, t);
  EXPECT_EQ(ty.at(blk(40, "attn_v")), GgmlType::Q5_K);  // Q4_K bumped: 80-layer GQA llama is "70B"
  EXPECT_EQ(types_by_name(GgufMix::Q4_K_S, {"qwen2", 80, 64, 8}, t).at(blk(40, "attn_v")), GgmlType::Q4_K);
}

TEST(GgufMix, FallbacksForRowLengths) {
  // ne[0] = 96: a multiple of 32, not of 256. ne[0] = 48: not even a multiple of 32.
  std::vector<GgufMixTensor> t = {{"token_embd.weight", {256, 100}},
                                  {"blk.0.attn_q.weight", {96, 256}},
                                  {"blk.0.ffn_up.weight", {48, 256}},
                                  {"blk.0.attn_norm.weight", {96}}};
  const GgufMixModel m{"llama", 1, 4, 4};
  auto check = [&](GgufMix mix, GgmlType q, GgmlType up) {
    const auto ty = gguf_mix_types(mix, m, t);
    EXPECT_EQ(ty[1].type, q) << gguf_mix_info(mix).name;
    EXPECT_TRUE(ty[1].fallback);
    EXPECT_EQ(ty[2].type, up) << gguf_mix_info(mix).name;
    EXPECT_TRUE(ty[2].fallback);
    EXPECT_EQ(ty[3].type, GgmlType::F32);
    EXPECT_FALSE(ty[0].fallback);
  };
  check(GgufMix::Q2_K, GgmlType::Q4_0, GgmlType::F16);
  check(GgufMix::Q3_K_S, GgmlType::Q4_0, GgmlType::F16);
  check(GgufMix::Q4_K_M, GgmlType::Q5_0, GgmlType::F16);
  check(GgufMix::Q5_K_S, GgmlType::Q5_1, GgmlType::F16);
  check(GgufMix::Q6_K, GgmlType::Q8_0, GgmlType::F16);
  // A 32-weight format cannot hold 48-weight rows and has no fallback: llama.cpp refuses too.
  EXPECT_THROW(gguf_mix_types(GgufMix::Q4_0, m, t), Error);
  // Tied output with rows not a multiple of the k-quant block: Q8_0 instead of Q6_K.
  std::vector<GgufMixTensor> embd = {{"token_embd.weight", {96, 100}}};
  EXPECT_EQ(gguf_mix_types(GgufMix::Q4_K_M, m, embd)[0].type, GgmlType::Q8_0);
}

TEST(GgufMix, RequestedTypesReplaceTheMixWithItsFallbacks) {
  std::vector<GgufMixTensor> t = decoder(8, 256, 512, 64, true);
  auto ask = [&](const std::string& name, GgmlType type) {
    for (auto& x : t)
      if (x.name == name) x.requested = type;
  };
  ask(blk(0, "ffn_down"), GgmlType::F16);       // kept unquantized
  ask(blk(1, "attn_q"), GgmlType::Q8_0);
  ask(blk(3, "ffn_down"), GgmlType::Q4_K);      // replaces q4_k_m's Q6_K promotion (use_more_bits)
  ask(blk(3, "attn_norm"), GgmlType::Q8_0);     // 1-D: never quantized, the request is moot
  const auto ty = types_by_name(GgufMix::Q4_K_M, {"qwen3", 8, 4, 1}, t);
  EXPECT_EQ(ty.at(blk(0, "ffn_down")), GgmlType::F16);
  EXPECT_EQ(ty.at(blk(1, "attn_q")), GgmlType::Q8_0);
  EXPECT_EQ(ty.at(blk(3, "ffn_down")), GgmlType::Q4_K);
  EXPECT_EQ(ty.at(blk(3, "attn_norm")), GgmlType::F32);
  // Untouched tensors keep the mix's rules: over 8 layers, ffn_down of 0, 3, 6, 7 gets more bits.
  EXPECT_EQ(ty.at(blk(6, "ffn_down")), GgmlType::Q6_K);
  EXPECT_EQ(ty.at(blk(1, "ffn_down")), GgmlType::Q4_K);
  EXPECT_EQ(ty.at(blk(0, "attn_q")), GgmlType::Q4_K);
  EXPECT_EQ(ty.at("output.weight"), GgmlType::Q6_K);

  // A requested k-quant on rows of 96 weights takes the usual fallback.
  std::vector<GgufMixTensor> odd = {{"blk.0.attn_q.weight", {96, 96}}};
  odd[0].requested = GgmlType::Q3_K;
  const auto f = gguf_mix_types(GgufMix::Q8_0, {"llama", 1, 1, 1}, odd);
  EXPECT_EQ(f[0].type, GgmlType::Q4_0);
  EXPECT_TRUE(f[0].fallback);
}

TEST(GgufMix, TypeForLayerConfigBits) {
  EXPECT_EQ(gguf_type_for_bits(2), GgmlType::Q2_K);
  EXPECT_EQ(gguf_type_for_bits(3), GgmlType::Q3_K);
  EXPECT_EQ(gguf_type_for_bits(4), GgmlType::Q4_K);
  EXPECT_EQ(gguf_type_for_bits(8), GgmlType::Q8_0);
  EXPECT_EQ(gguf_type_for_bits(16), GgmlType::F16);
  EXPECT_THROW(gguf_type_for_bits(7), Error);
}

TEST(GgufMix, UnquantizedMixesAndSkippedTensors) {
  std::vector<GgufMixTensor> t = {{"token_embd.weight", {256, 100}},
                                  {"blk.0.attn_q_norm.weight", {32}},
                                  {"blk.0.attn_q.weight", {256, 256}},
                                  {"blk.0.ffn_gate_inp.weight", {256, 8}},
                                  {"blk.0.some_bias", {256, 256}},  // not a "...weight"
                                  {"blk.0.attn_k.weight", {256, 1}, GgmlType::BF16}};  // 1-D after all
  const GgufMixModel m{"qwen3", 1, 4, 4};
  for (GgufMix mix : {GgufMix::F16, GgufMix::BF16, GgufMix::Q4_K_M}) {
    const auto ty = gguf_mix_types(mix, m, t);
    const GgmlType main = mix == GgufMix::Q4_K_M ? GgmlType::Q4_K : gguf_mix_info(mix).default_type;
    EXPECT_EQ(ty[0].type, mix == GgufMix::Q4_K_M ? GgmlType::Q6_K : main);
    EXPECT_EQ(ty[1].type, GgmlType::F32);
    EXPECT_EQ(ty[2].type, main);
    EXPECT_EQ(ty[3].type, GgmlType::F32);
    EXPECT_EQ(ty[4].type, GgmlType::F32);
    EXPECT_EQ(ty[5].type, GgmlType::BF16);
  }
  const auto f32 = gguf_mix_types(GgufMix::F32, m, t);
  const std::vector<GgmlType> want = {GgmlType::F32, GgmlType::F32, GgmlType::F32,
                                      GgmlType::F32, GgmlType::F32, GgmlType::BF16};
  for (size_t i = 0; i < t.size(); ++i) EXPECT_EQ(f32[i].type, want[i]) << t[i].name;
}

TEST(GgufMix, MoeLayerComesFromTheName) {
  // 8 experts: attn_v -> Q8_0, attn_k -> Q8_0; ffn_down_exps by block number from the name even
  // when listed out of order.
  std::vector<GgufMixTensor> t;
  for (int i = 7; i >= 0; --i) t.push_back({blk(i, "ffn_down_exps"), {14336, 4096, 8}});
  t.push_back({blk(0, "attn_v"), {4096, 1024}});
  t.push_back({blk(0, "attn_k"), {4096, 1024}});
  GgufMixModel m{"llama", 8, 32, 8};
  m.n_expert = 8;
  const auto ty = gguf_mix_types(GgufMix::Q4_K_M, m, t);
  // n = 8: use_more_bits for i < 1, i >= 7, (i - 1) % 3 == 2 -> 0, 3, 6, 7.
  const std::set<int> more = {0, 3, 6, 7};
  for (int k = 0; k < 8; ++k) {
    const int i = 7 - k;
    EXPECT_EQ(ty[size_t(k)].type, more.count(i) ? GgmlType::Q6_K : GgmlType::Q4_K) << i;
  }
  EXPECT_EQ(ty[8].type, GgmlType::Q8_0);
  EXPECT_EQ(ty[9].type, GgmlType::Q8_0);
  t.push_back({"blk.x.ffn_down_exps.weight", {14336, 4096, 8}});
  EXPECT_THROW(gguf_mix_types(GgufMix::Q4_K_M, m, t), Error);
}

}  // namespace
}  // namespace ar
