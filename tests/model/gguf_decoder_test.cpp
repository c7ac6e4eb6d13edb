// Decoder over GGUF files: llama.cpp's F32 GGUF of qwen3-student gives the same per-token NLL as
// the HF folder; llama.cpp's stories260K.gguf (llama q/k layout) gives the same as its HF folder,
// so the permutation is undone exactly; llama-quantize's files load and stay close to F32; the
// q/k permutation and name map by hand; --model path resolution.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/file.h"
#include "model/decoder.h"
#include "model/gguf_names.h"
#include "model/gguf_weights.h"
#include "support/fixtures.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

// NLL of every token that has a predecessor, for `n_seq` windows of T tokens.
std::vector<double> window_nll(const Decoder& d, const std::vector<std::vector<int32_t>>& windows) {
  const int64_t T = int64_t(windows[0].size()), C = d.config().hidden_size, n = int64_t(windows.size());
  std::vector<float> x(size_t(n * T * C));
  for (int64_t s = 0; s < n; ++s) d.embed(x.data() + s * T * C, windows[size_t(s)]);
  d.forward_hidden(x.data(), n, T, ForwardOptions{});
  std::vector<double> nll;
  for (int64_t s = 0; s < n; ++s) {
    std::vector<double> o(size_t(T - 1));
    d.next_token_nll(o.data(), x.data() + s * T * C, windows[size_t(s)].data() + 1, T - 1, Precision::F32);
    nll.insert(nll.end(), o.begin(), o.end());
  }
  return nll;
}

double ppl(const std::vector<double>& nll) {
  double s = 0;
  for (double v : nll) s += v;
  return std::exp(s / double(nll.size()));
}

std::vector<std::vector<int32_t>> windows_from(const fs::path& ids_json, size_t n, size_t T) {
  const auto j = nlohmann::json::parse(read_text_file(ids_json));
  std::vector<std::vector<int32_t>> w;
  for (size_t i = 0; i < n && i < j.size(); ++i) {
    std::vector<int32_t> s = j[i].get<std::vector<int32_t>>();
    s.resize(std::min(s.size(), T));
    w.push_back(s);
  }
  return w;
}

// Same weights in f32 either way (the F32 GGUF is the BF16 model upcast), so the NLLs agree to
// float rounding of identical arithmetic; 1e-5 leaves room for nothing more.
constexpr double kSameWeightsTol = 1e-5;

TEST(GgufDecoder, Qwen3F32GgufMatchesSafetensors) {
  AR_REQUIRE_FIXTURE(hf, "models/qwen3-student/hf");
  AR_REQUIRE_FIXTURE(gguf, "gguf/model-F32.gguf");
  AR_REQUIRE_FIXTURE(ids, "models/qwen3-student/derived-data/heldout_400x256.ids.json");
  const Decoder a(hf), b(gguf);
  EXPECT_TRUE(b.is_gguf());
  EXPECT_EQ(b.config().arch, Arch::Qwen3);
  EXPECT_EQ(b.config().hidden_size, a.config().hidden_size);
  EXPECT_EQ(b.config().num_key_value_heads, a.config().num_key_value_heads);
  EXPECT_EQ(b.config().head_dim, a.config().head_dim);
  EXPECT_EQ(b.config().tie_word_embeddings, a.config().tie_word_embeddings);
  EXPECT_FLOAT_EQ(float(b.config().rms_norm_eps), float(a.config().rms_norm_eps));
  const auto w = windows_from(ids, 3, 256);
  const auto na = window_nll(a, w), nb = window_nll(b, w);
  ASSERT_EQ(na.size(), nb.size());
  for (size_t i = 0; i < na.size(); ++i) ASSERT_NEAR(na[i], nb[i], kSameWeightsTol) << "token " << i;
  EXPECT_NEAR(ppl(na), ppl(nb), 1e-4);
}

TEST(GgufDecoder, Stories260KLlamaLayoutIsUndone) {
  AR_REQUIRE_FIXTURE(hf, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(gguf, "models/stories260K/original/stories260K.gguf");
  AR_REQUIRE_FIXTURE(ids, "models/stories260K/derived-data/stories260K_samples_seed1234.ids.json");
  const Decoder a(hf), b(gguf);
  EXPECT_EQ(b.config().arch, Arch::Llama);
  const auto w = windows_from(ids, 4, 128);
  const auto na = window_nll(a, w), nb = window_nll(b, w);
  for (size_t i = 0; i < na.size(); ++i) ASSERT_NEAR(na[i], nb[i], kSameWeightsTol) << "token " << i;
  // Without undoing the permutation the model is a different function: check the test can tell.
  BlockWeights blk = b.weights().load_block(0);
  BlockWeights ref = a.weights().load_block(0);
  const float* q = blk.q.w.as<float>();
  EXPECT_TRUE(std::equal(q, q + blk.q.in * blk.q.out, ref.q.w.as<float>()));
  gguf_permute_qk_rows(blk.q.w.as<float>(), b.config().num_attention_heads, b.config().head_dim, blk.q.in, true);
  EXPECT_FALSE(std::equal(q, q + blk.q.in * blk.q.out, ref.q.w.as<float>()));
}

TEST(GgufDecoder, LlamaCppQuantizedFilesStayCloseToF32) {
  AR_REQUIRE_FIXTURE(dir, "gguf");
  AR_REQUIRE_FIXTURE(ids, "models/qwen3-student/derived-data/heldout_400x256.ids.json");
  const auto w = windows_from(ids, 2, 256);
  const double p32 = ppl(window_nll(Decoder(dir / "model-F32.gguf"), w));
  // Bounds from llama-perplexity's numbers for these files (README): <= 1 % above F32 at 4+ bits,
  // 2.3 % at Q2_K; ours on two windows get 3x that room.
  for (const auto& [name, rel] : {std::pair{"model-Q8_0.gguf", 0.01}, {"model-Q4_K_M.gguf", 0.03}, {"model-Q2_K.gguf", 0.07}}) {
    const double p = ppl(window_nll(Decoder(dir / name), w));
    std::printf("%s: ppl %.4f (F32 %.4f)\n", name, p, p32);
    EXPECT_TRUE(std::isfinite(p)) << name;
    EXPECT_LT(std::fabs(p / p32 - 1), rel) << name << ": " << p << " vs F32 " << p32;
  }
}

TEST(GgufNames, MapAndPermutationByHand) {
  ModelConfig llama;
  llama.arch = Arch::Llama;
  ModelConfig gemma = llama, phi = llama;
  gemma.arch = Arch::Gemma3;
  gemma.sandwich_norms = gemma.qk_norm = true;
  phi.arch = Arch::Phi3;
  phi.fused_qkv = phi.fused_gate_up = true;
  const auto gguf_tensor_name = [&llama](const std::string& hf) { return ar::gguf_tensor_name(hf, llama); };
  // llama.cpp's gemma3 and phi3 names (its tensor_mapping.py).
  EXPECT_EQ(ar::gguf_tensor_name("model.layers.3.post_attention_layernorm.weight", gemma), "blk.3.post_attention_norm.weight");
  EXPECT_EQ(ar::gguf_tensor_name("model.layers.3.pre_feedforward_layernorm.weight", gemma), "blk.3.ffn_norm.weight");
  EXPECT_EQ(ar::gguf_tensor_name("model.layers.3.post_feedforward_layernorm.weight", gemma), "blk.3.post_ffw_norm.weight");
  EXPECT_EQ(ar::gguf_tensor_name("model.layers.1.self_attn.qkv_proj.weight", phi), "blk.1.attn_qkv.weight");
  EXPECT_EQ(ar::gguf_tensor_name("model.layers.1.mlp.gate_up_proj.weight", phi), "blk.1.ffn_up.weight");
  EXPECT_EQ(ar::gguf_tensor_name("model.layers.1.self_attn.qkv_proj.weight", llama), "");
  EXPECT_EQ(gguf_tensor_name("model.layers.12.self_attn.q_proj.weight"), "blk.12.attn_q.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.0.self_attn.k_proj.bias"), "blk.0.attn_k.bias");
  EXPECT_EQ(gguf_tensor_name("model.layers.3.post_attention_layernorm.weight"), "blk.3.ffn_norm.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.3.self_attn.k_norm.weight"), "blk.3.attn_k_norm.weight");
  EXPECT_EQ(gguf_tensor_name("model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(gguf_tensor_name("lm_head.weight"), "output.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.x.mlp.up_proj.weight"), "");
  EXPECT_EQ(gguf_tensor_name("model.rotary_emb.inv_freq"), "");
  EXPECT_TRUE(gguf_permutes_qk(Arch::Mistral));
  EXPECT_FALSE(gguf_permutes_qk(Arch::Qwen2));
  // 2 heads of 4 rows, one column: per head HF rows (0 1 | 2 3) -> GGUF (0 2 1 3).
  std::vector<float> v = {0, 1, 2, 3, 4, 5, 6, 7};
  gguf_permute_qk_rows(v.data(), 2, 4, 1, true);
  EXPECT_EQ(v, (std::vector<float>{0, 2, 1, 3, 4, 6, 5, 7}));
  gguf_permute_qk_rows(v.data(), 2, 4, 1, false);
  EXPECT_EQ(v, (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));
  // Whole rows move: head_dim 6, 2 columns.
  std::vector<float> m(12);
  for (int i = 0; i < 12; ++i) m[size_t(i)] = float(i);
  gguf_permute_qk_rows(m.data(), 1, 6, 2, true);
  EXPECT_EQ(m, (std::vector<float>{0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11}));
}

TEST(GgufDecoder, ModelPathResolution) {
  const fs::path d = test::make_temp_dir("gguf-find");
  EXPECT_FALSE(find_gguf_model(d).has_value());
  std::ofstream(d / "a.gguf") << "x";
  EXPECT_EQ(find_gguf_model(d), d / "a.gguf");
  EXPECT_EQ(find_gguf_model(d / "a.gguf"), d / "a.gguf");
  std::ofstream(d / "b.gguf") << "x";
  try {
    find_gguf_model(d);
    ADD_FAILURE() << "two GGUF files accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.gguf b.gguf"), std::string::npos) << e.what();
  }
  std::ofstream(d / "model.safetensors") << "x";  // a HF folder: its weights win
  EXPECT_FALSE(find_gguf_model(d).has_value());
  // A corrupt .gguf fails cleanly, naming the file.
  const fs::path bad = test::make_temp_dir("gguf-bad") / "m.gguf";
  std::ofstream(bad) << "GGUF";
  try {
    Decoder x(bad);
    ADD_FAILURE() << "corrupt file accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("m.gguf"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ar
