// GGUF export and import of Gemma3 and Phi3 (llama.cpp's gemma3 / phi3 architectures), on tiny
// generated folders (tests/support/tiny_arch.h; no fixtures needed): the metadata keys and values
// llama.cpp reads (llama-arch.cpp names, llama_model_gemma3 / llama_model_phi3 load_arch_hparams),
// tensor names and GGUF shapes, Gemma's norms written as 1 + w and undone on read (an F32 export
// read back gives the HF folder's logits), the config read back from the file, and the Q4_K_M
// types of a phi3 mix as llama-quantize chooses them (llama-quant.cpp; attn_qkv counts as attn_v).
// bench/ecosystem/gguf_arch_oracle.py checks the same files against llama.cpp itself.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "export/gguf_meta.h"
#include "export/gguf_model_writer.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/decoder.h"
#include "model/gguf_config.h"
#include "model/gguf_names.h"
#include "support/fixtures.h"
#include "support/gguf_export.h"
#include "support/model_logits.h"
#include "support/tiny_arch.h"

namespace ar {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const GgufValue& kv(const std::vector<GgufKV>& kvs, const std::string& key) {
  for (const GgufKV& k : kvs)
    if (k.key == key) return k.value;
  static const GgufValue none = GgufValue::string("<missing>");
  ADD_FAILURE() << "missing key " << key;
  return none;
}

bool has_key(const std::vector<GgufKV>& kvs, const std::string& key) {
  return std::any_of(kvs.begin(), kvs.end(), [&](const GgufKV& k) { return k.key == key; });
}

uint32_t u32(const std::vector<GgufKV>& kvs, const std::string& key) { return kv(kvs, key).as<uint32_t>(); }
float f32(const std::vector<GgufKV>& kvs, const std::string& key) { return kv(kvs, key).as<float>(); }



// Longer than both windows (16, 48), so the sliding layers see a cut.
std::vector<int32_t> test_ids() {
  std::vector<int32_t> ids(96);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 131 + 7) % 1024);
  return ids;
}

// F32 export read back: the same f32 weights (norms through 1 + w and back, exact in f32) and
// the same arithmetic, so logits agree to float rounding; 1e-5 leaves room for nothing more.
constexpr float kRoundTripTol = 1e-5f;

TEST(GgufArch, Gemma3MetadataKeysAndValues) {
  const fs::path dir = test::make_temp_dir("gguf_gemma3_meta");
  const fs::path model = test::write_tiny_arch(dir / "tiny-gemma3", test::tiny_gemma3_config());
  const std::vector<GgufKV> m = gguf_metadata(model, {GgufFileType::MOSTLY_Q8_0, "", 32});
  EXPECT_EQ(kv(m, "general.architecture").as_string(), "gemma3");
  EXPECT_EQ(u32(m, "gemma3.block_count"), 4u);
  EXPECT_EQ(u32(m, "gemma3.embedding_length"), 128u);
  EXPECT_EQ(u32(m, "gemma3.feed_forward_length"), 384u);
  EXPECT_EQ(u32(m, "gemma3.attention.head_count"), 4u);
  EXPECT_EQ(u32(m, "gemma3.attention.head_count_kv"), 2u);
  EXPECT_EQ(u32(m, "gemma3.attention.key_length"), 32u);
  EXPECT_EQ(u32(m, "gemma3.attention.value_length"), 32u);
  EXPECT_EQ(u32(m, "gemma3.rope.dimension_count"), 32u);
  EXPECT_EQ(u32(m, "gemma3.context_length"), 1024u);
  EXPECT_EQ(f32(m, "gemma3.rope.freq_base"), 1e6f);
  EXPECT_EQ(f32(m, "gemma3.rope.freq_base_swa"), 1e4f);
  EXPECT_EQ(kv(m, "gemma3.rope.scaling.type").as_string(), "linear");
  EXPECT_EQ(f32(m, "gemma3.rope.scaling.factor"), 2.0f);
  EXPECT_EQ(f32(m, "gemma3.attention.layer_norm_rms_epsilon"), 1e-6f);
  EXPECT_EQ(u32(m, "gemma3.attention.sliding_window"), 16u);
  // One bool per layer (layer_types), not a period: layer 2 alone is global.
  const GgufValue& pat = kv(m, "gemma3.attention.sliding_window_pattern");
  EXPECT_EQ(pat.elem_type, GgufType::Bool);
  EXPECT_EQ(pat.as_array<bool>(), (std::vector<bool>{true, true, false, true}));
  EXPECT_FALSE(has_key(m, "gemma3.final_logit_softcapping"));  // null in the config
  EXPECT_EQ(u32(m, "general.file_type"), 7u);
  EXPECT_EQ(u32(m, "general.quantization_version"), 2u);
  EXPECT_EQ(kv(m, "tokenizer.ggml.model").as_string(), "gpt2");

  // A soft-cap is stated; a query_pre_attn_scalar llama.cpp will not use is warned about.
  json c = test::tiny_gemma3_config();
  c["final_logit_softcapping"] = 30.0;
  c["query_pre_attn_scalar"] = 64;
  const fs::path model2 = test::write_tiny_arch(dir / "capped", c);
  testing::internal::CaptureStderr();
  const std::vector<GgufKV> m2 = gguf_metadata(model2, {GgufFileType::ALL_F32, "", 32});
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(f32(m2, "gemma3.final_logit_softcapping"), 30.0f);
  EXPECT_THAT(err, testing::HasSubstr("query_pre_attn_scalar = 64"));
  EXPECT_THAT(err, testing::HasSubstr("1/sqrt(32)"));
  testing::internal::CaptureStderr();
  (void)gguf_metadata(model, {GgufFileType::ALL_F32, "", 32});
  EXPECT_EQ(testing::internal::GetCapturedStderr().find("query_pre_attn_scalar"), std::string::npos);
  fs::remove_all(dir);
}

TEST(GgufArch, Phi3MetadataKeysAndValues) {
  const fs::path dir = test::make_temp_dir("gguf_phi3_meta");
  const fs::path model = test::write_tiny_arch(dir / "tiny-p3", test::tiny_phi3_config());
  const std::vector<GgufKV> m = gguf_metadata(model, {GgufFileType::MOSTLY_F16, "", 32});
  EXPECT_EQ(kv(m, "general.architecture").as_string(), "phi3");
  EXPECT_EQ(u32(m, "phi3.block_count"), 4u);
  EXPECT_EQ(u32(m, "phi3.embedding_length"), 128u);
  EXPECT_EQ(u32(m, "phi3.feed_forward_length"), 320u);
  EXPECT_EQ(u32(m, "phi3.attention.head_count"), 4u);
  EXPECT_EQ(u32(m, "phi3.attention.head_count_kv"), 2u);
  EXPECT_EQ(u32(m, "phi3.rope.dimension_count"), 32u);  // hidden / heads: RoPE over the whole head
  EXPECT_EQ(f32(m, "phi3.rope.freq_base"), 1e4f);
  EXPECT_EQ(f32(m, "phi3.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(u32(m, "phi3.rope.scaling.original_context_length"), 1024u);
  EXPECT_EQ(u32(m, "phi3.attention.sliding_window"), 48u);
  EXPECT_FALSE(has_key(m, "phi3.attention.sliding_window_pattern"));
  EXPECT_FALSE(has_key(m, "phi3.rope.scaling.type"));
  EXPECT_FALSE(has_key(m, "general.quantization_version"));  // F16: not quantized
  // No window: the converter writes 0 (its marker for Phi-4).
  json c = test::tiny_phi3_config();
  c["sliding_window"] = nullptr;
  const fs::path model2 = test::write_tiny_arch(dir / "nowin", c);
  EXPECT_EQ(u32(gguf_metadata(model2, {GgufFileType::ALL_F32, "", 32}), "phi3.attention.sliding_window"), 0u);
  // A folder named like Phi-3 without Phi-3's special tokens: llama.cpp would refuse the file.
  const fs::path named = test::write_tiny_arch(dir / "tiny-phi3", test::tiny_phi3_config());
  testing::internal::CaptureStderr();
  (void)gguf_metadata(named, {GgufFileType::ALL_F32, "", 32});
  EXPECT_THAT(testing::internal::GetCapturedStderr(), testing::HasSubstr("no </s>, <unk>, <s>, <|endoftext|>"));
  fs::remove_all(dir);
}

// GGUF dims (fastest first) of every tensor of `path`.
std::map<std::string, std::vector<int64_t>> dims_of(const fs::path& path) {
  std::map<std::string, std::vector<int64_t>> r;
  const GgufReader rd = GgufReader::open(path);
  for (const GgufTensorInfo& t : rd.tensors()) r[t.name] = t.dims;
  return r;
}

TEST(GgufArch, TensorNamesAndShapes) {
  const fs::path dir = test::make_temp_dir("gguf_arch_names");
  const fs::path gemma = test::export_gguf(test::write_tiny_arch(dir / "g", test::tiny_gemma3_config()), dir / "g-out", GgufMix::F16);
  const fs::path phi = test::export_gguf(test::write_tiny_arch(dir / "p", test::tiny_phi3_config()), dir / "p-out", GgufMix::F16);
  using D = std::vector<int64_t>;
  // llama_model_gemma3::load_arch_tensors: q/k/v apart, four norms, tied output.
  std::map<std::string, D> g{{"token_embd.weight", D{128, 1024}}, {"output_norm.weight", D{128}}};
  // llama_model_phi3::load_arch_tensors: attn_qkv {n_embd, n_embd + 2 n_embd_gqa}, ffn_up {n_embd, 2 n_ff}.
  std::map<std::string, D> p{{"token_embd.weight", D{128, 1024}}, {"output.weight", D{128, 1024}},
                             {"output_norm.weight", D{128}}};
  for (int l = 0; l < 4; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    for (const auto& [n, d] : std::map<std::string, D>{
             {"attn_norm", D{128}}, {"attn_q", D{128, 128}}, {"attn_k", D{128, 64}}, {"attn_v", D{128, 64}},
             {"attn_output", D{128, 128}}, {"attn_q_norm", D{32}}, {"attn_k_norm", D{32}},
             {"post_attention_norm", D{128}}, {"ffn_norm", D{128}}, {"ffn_gate", D{128, 384}},
             {"ffn_up", D{128, 384}}, {"ffn_down", D{384, 128}}, {"post_ffw_norm", D{128}}})
      g[b + n + ".weight"] = d;
    for (const auto& [n, d] : std::map<std::string, D>{{"attn_norm", D{128}}, {"attn_qkv", D{128, 256}},
                                                       {"attn_output", D{128, 128}}, {"ffn_norm", D{128}},
                                                       {"ffn_up", D{128, 640}}, {"ffn_down", D{320, 128}}})
      p[b + n + ".weight"] = d;
  }
  EXPECT_EQ(dims_of(gemma), g);
  EXPECT_EQ(dims_of(phi), p);
  // The fused tensors are the HF ones, rows in HF order (q | k | v, gate | up): no permutation.
  const GgufReader r = GgufReader::open(phi);
  const SafetensorsReader st = SafetensorsReader::open(dir / "p");
  for (const auto& [hf, gg] : {std::pair{"model.layers.1.self_attn.qkv_proj.weight", "blk.1.attn_qkv.weight"},
                               {"model.layers.1.mlp.gate_up_proj.weight", "blk.1.ffn_up.weight"}}) {
    const GgufTensorInfo& t = r.require_tensor(gg);
    ASSERT_EQ(t.type, GgmlType::F16);
    std::vector<float> want(size_t(t.numel())), got(want.size());
    st.read_f32(st.require(hf), want.data());
    std::vector<uint16_t> h(want.size());
    r.read(t, h.data());
    for (size_t i = 0; i < h.size(); ++i) got[i] = f16_to_f32(h[i]);
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-3f) << gg << " [" << i << "]";
  }
  fs::remove_all(dir);
}

TEST(GgufArch, GemmaNormsWrittenAsOnePlusWAndUndoneOnRead) {
  const fs::path dir = test::make_temp_dir("gguf_gemma3_norms");
  const fs::path model = test::write_tiny_arch(dir / "g", test::tiny_gemma3_config());
  const fs::path gguf = test::export_gguf(model, dir / "out", GgufMix::F32);
  const GgufReader r = GgufReader::open(gguf);
  const SafetensorsReader st = SafetensorsReader::open(model);
  int n_norms = 0;
  for (const TensorInfo& s : st.tensors()) {
    if (!s.name.ends_with("norm.weight")) continue;
    const std::string g = gguf_tensor_name(s.name, load_model_config(model));
    std::vector<float> w(size_t(s.numel())), f(w.size());
    st.read_f32(s, w.data());
    r.read(r.require_tensor(g), f.data());
    for (size_t i = 0; i < w.size(); ++i) ASSERT_EQ(f[i], 1.0f + w[i]) << g << " [" << i << "]";
    ++n_norms;
  }
  EXPECT_EQ(n_norms, 4 * 6 + 1);  // four block norms + q/k norms per layer, and model.norm
  // Other tensors are stored as they are.
  std::vector<float> e(128 * 1024), ge(e.size());
  st.read_f32(st.require("model.embed_tokens.weight"), e.data());
  r.read(r.require_tensor("token_embd.weight"), ge.data());
  EXPECT_EQ(e, ge);

  // Read back: the offsets again, 1 + w of which is exactly the file's multiplier.
  const Decoder a(model), b(gguf);
  const BlockWeights wa = a.weights().load_block(1), wb = b.weights().load_block(1);
  for (const auto& [x, y] : {std::pair{&wa.input_norm, &wb.input_norm}, {&wa.post_ffn_norm, &wb.post_ffn_norm},
                             {&wa.q_norm, &wb.q_norm}}) {
    ASSERT_EQ(x->size_bytes(), y->size_bytes());
    for (size_t i = 0; i < x->size_bytes() / 4; ++i)
      ASSERT_EQ(1.0f + x->as<float>()[i], 1.0f + y->as<float>()[i]) << i;
  }
  std::vector<float> na(128), nb(128);
  a.weights().final_norm(na.data());
  b.weights().final_norm(nb.data());
  for (size_t i = 0; i < na.size(); ++i) ASSERT_EQ(1.0f + na[i], 1.0f + nb[i]) << i;
  fs::remove_all(dir);
}

// HF folder -> our GGUF F32 -> Decoder: the HF folder's config and logits.
class GgufArchRoundTrip : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufArchRoundTrip, F32ExportGivesTheFoldersLogits) {
  const bool gemma = std::string(GetParam()) == "gemma3";
  const fs::path dir = test::make_temp_dir(std::string("gguf_roundtrip_") + GetParam());
  const fs::path model =
      test::write_tiny_arch(dir / "m", gemma ? test::tiny_gemma3_config() : test::tiny_phi3_config(), 11);
  const fs::path gguf = test::export_gguf(model, dir / "out", GgufMix::F32);
  const Decoder a(model), b(gguf);
  ASSERT_TRUE(b.is_gguf());
  const ModelConfig &ca = a.config(), &cb = b.config();
  EXPECT_EQ(cb.arch, ca.arch);
  EXPECT_EQ(cb.head_dim, ca.head_dim);
  EXPECT_EQ(cb.num_key_value_heads, ca.num_key_value_heads);
  EXPECT_EQ(cb.sliding_window, ca.sliding_window);
  for (int64_t l = 0; l < ca.num_hidden_layers; ++l) {
    EXPECT_EQ(layer_is_sliding(cb, l), layer_is_sliding(ca, l)) << "layer " << l;
    EXPECT_EQ(layer_uses_local_rope(cb, l), layer_uses_local_rope(ca, l)) << "layer " << l;
  }
  EXPECT_EQ(cb.rope_theta, ca.rope_theta);
  EXPECT_EQ(cb.rope_local_theta, ca.rope_local_theta);
  EXPECT_EQ(cb.rope_scaling.type, ca.rope_scaling.type);
  EXPECT_EQ(cb.rope_scaling.factor, ca.rope_scaling.factor);
  EXPECT_EQ(attention_scale(cb), attention_scale(ca));
  EXPECT_EQ(cb.final_logit_softcapping, ca.final_logit_softcapping);
  EXPECT_EQ(cb.norm_weight_offset, ca.norm_weight_offset);
  EXPECT_EQ(cb.sandwich_norms, ca.sandwich_norms);
  EXPECT_EQ(cb.qk_norm, ca.qk_norm);
  EXPECT_EQ(cb.embed_scale, ca.embed_scale);
  EXPECT_EQ(cb.hidden_act, ca.hidden_act);
  EXPECT_EQ(cb.fused_qkv, ca.fused_qkv);
  EXPECT_EQ(cb.fused_gate_up, ca.fused_gate_up);
  EXPECT_EQ(cb.tie_word_embeddings, ca.tie_word_embeddings);
  EXPECT_FLOAT_EQ(float(cb.rms_norm_eps), float(ca.rms_norm_eps));

  const std::vector<int32_t> ids = test_ids();
  const std::vector<float> la = test::logits_of(a, ids), lb = test::logits_of(b, ids);
  float max_d = 0;
  for (size_t i = 0; i < la.size(); ++i) max_d = std::max(max_d, std::fabs(la[i] - lb[i]));
  std::printf("  %s: max |logit diff| HF folder vs F32 GGUF %.2e\n", GetParam(), max_d);
  EXPECT_LT(max_d, kRoundTripTol);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Tiny, GgufArchRoundTrip, ::testing::Values("gemma3", "phi3"),
                         [](const auto& info) { return std::string(info.param); });

// A Gemma3 file without our per-layer array (as llama.cpp's converter writes it): the period-6
// default; no sliding_window key: no window at all; the score scale llama.cpp uses.
TEST(GgufArch, Gemma3ConfigDefaultsAsLlamaCpp) {
  const fs::path dir = test::make_temp_dir("gguf_gemma3_defaults");
  auto write = [&](const std::string& name, bool drop_pattern, bool drop_window, uint32_t layers) {
    json c = test::tiny_gemma3_config();
    c["num_hidden_layers"] = layers;
    c["layer_types"] = nullptr;
    c["sliding_window_pattern"] = 6;
    c["query_pre_attn_scalar"] = 48;
    testing::internal::CaptureStderr();  // the query_pre_attn_scalar warning
    std::vector<GgufKV> kvs = gguf_model_kvs(parse_model_config(c, name), dir, {GgufFileType::ALL_F32, name, 32});
    testing::internal::GetCapturedStderr();
    std::erase_if(kvs, [&](const GgufKV& k) {
      return (drop_pattern && k.key == "gemma3.attention.sliding_window_pattern") ||
             (drop_window && k.key == "gemma3.attention.sliding_window");
    });
    std::vector<GgufTensorDecl> t{{"token_embd.weight", GgmlType::F32, {128, 1024}}};
    const fs::path p = dir / (name + ".gguf");
    GgufWriter w(p, kvs, t);
    std::vector<float> zeros(128 * 1024);
    w.write_tensor("token_embd.weight", zeros.data(), zeros.size() * 4);
    w.finish();
    return gguf_model_config(GgufReader::open(p));
  };
  const ModelConfig a = write("period", true, false, 8);
  EXPECT_EQ(a.sliding_window, 16);
  for (int64_t l = 0; l < 8; ++l) EXPECT_EQ(layer_is_sliding(a, l), l != 5) << l;
  EXPECT_FLOAT_EQ(attention_scale(a), 1.0f / std::sqrt(32.0f));  // head_dim, not 48
  const ModelConfig b = write("nowindow", true, true, 8);
  EXPECT_EQ(b.sliding_window, 0);
  for (int64_t l = 0; l < 8; ++l) EXPECT_FALSE(layer_is_sliding(b, l));
  fs::remove_all(dir);
}

// llama-quantize's Q4_K_M on a phi3 model (llama-quant.cpp): attn_qkv is attn_v-like (Q6_K on the
// use_more_bits layers, Q4_K elsewhere; its own Q5_K rule is never reached), ffn_down likewise,
// the fused ffn_up and attn_output Q4_K, output Q6_K, the untied token_embd Q4_K, norms F32.
// 256-wide rows so no k-quant falls back (bench/ecosystem/gguf_arch_oracle.py runs llama-quantize
// on the same shapes and finds the same types).
TEST(GgufArch, Phi3Q4KMMixTypes) {
  const fs::path dir = test::make_temp_dir("gguf_phi3_mix");
  json c = test::tiny_phi3_config();
  c["hidden_size"] = 256;
  c["intermediate_size"] = 512;
  c["num_hidden_layers"] = 8;
  const fs::path model = test::write_tiny_arch(dir / "p", c);
  const ModelConfig cfg = load_model_config(model);
  const SafetensorsReader st = SafetensorsReader::open(model);
  const GgufModelWriter w(model, dir / "out", GgufMix::Q4_K_M, st, cfg, true);
  std::map<std::string, GgmlType> got;
  for (const std::string& hf : w.hf_order()) got[w.gguf_name(hf)] = w.planned_type(hf);
  EXPECT_EQ(got.at("token_embd.weight"), GgmlType::Q4_K);
  EXPECT_EQ(got.at("output.weight"), GgmlType::Q6_K);
  EXPECT_EQ(got.at("output_norm.weight"), GgmlType::F32);
  for (int l = 0; l < 8; ++l) {
    SCOPED_TRACE(l);
    const std::string b = "blk." + std::to_string(l) + ".";
    const bool more = l == 0 || l == 3 || l == 6 || l == 7;  // use_more_bits(l, 8)
    EXPECT_EQ(got.at(b + "attn_qkv.weight"), more ? GgmlType::Q6_K : GgmlType::Q4_K);
    EXPECT_EQ(got.at(b + "ffn_down.weight"), more ? GgmlType::Q6_K : GgmlType::Q4_K);
    EXPECT_EQ(got.at(b + "attn_output.weight"), GgmlType::Q4_K);
    EXPECT_EQ(got.at(b + "ffn_up.weight"), GgmlType::Q4_K);
    EXPECT_EQ(got.at(b + "attn_norm.weight"), GgmlType::F32);
    EXPECT_EQ(got.at(b + "ffn_norm.weight"), GgmlType::F32);
  }
  EXPECT_EQ(got.size(), 3u + 8 * 6);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ar
