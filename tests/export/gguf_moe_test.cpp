// GGUF export and import of the mixture-of-experts models Qwen3-MoE (llama.cpp's qwen3moe) and
// Mixtral (llama with ffn_*_exps), on tiny generated folders (tests/support/tiny_arch.h): the
// expert keys llama.cpp reads (llama-model.cpp expert_count / expert_used_count, qwen3moe's
// expert_feed_forward_length), the router as ffn_gate_inp in F32, the experts stacked into 3-D
// ffn_{gate,up,down}_exps with each expert's rows as its own slice (Mixtral's w1 / w3 / w2 as gate /
// up / down), the Q4_K_M types of llama-quant.cpp's MoE rules, tuned bytes and importance given per
// expert, and an F32 export read back to the HF folder's logits. bench/ecosystem/gguf_moe_oracle.py
// checks the same files against llama.cpp itself.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/dtype.h"
#include "export/gguf_meta.h"
#include "export/gguf_model_writer.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/block_specs.h"
#include "model/decoder.h"
#include "model/gguf_config.h"
#include "quant/gguf_blocks.h"
#include "support/fixtures.h"
#include "support/gguf_export.h"
#include "support/model_logits.h"
#include "support/tiny_arch.h"

namespace ar {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using D = std::vector<int64_t>;

const GgufValue* find_kv(const std::vector<GgufKV>& kvs, const std::string& key) {
  for (const GgufKV& k : kvs)
    if (k.key == key) return &k.value;
  return nullptr;
}

uint32_t u32(const std::vector<GgufKV>& kvs, const std::string& key) {
  const GgufValue* v = find_kv(kvs, key);
  if (!v) {
    ADD_FAILURE() << "missing key " << key;
    return 0;
  }
  return v->as<uint32_t>();
}



// An F32 file holds the folder's very weights and the forward is the same code: float rounding only.
constexpr float kRoundTripTol = 1e-5f;

json config_of(const std::string& arch) {
  return arch == "qwen3moe" ? test::tiny_qwen3_moe_config() : test::tiny_mixtral_config();
}

TEST(GgufMoe, Qwen3MoeMetadataKeys) {
  const fs::path dir = test::make_temp_dir("gguf_moe_qwen_meta");
  const fs::path model = test::write_tiny_arch(dir / "tq", test::tiny_qwen3_moe_config());
  testing::internal::CaptureStderr();
  const std::vector<GgufKV> m = gguf_metadata(model, {GgufFileType::MOSTLY_Q4_K_M, "", 32});
  const std::string err = testing::internal::GetCapturedStderr();
  ASSERT_NE(find_kv(m, "general.architecture"), nullptr);
  EXPECT_EQ(find_kv(m, "general.architecture")->as_string(), "qwen3moe");
  EXPECT_EQ(u32(m, "qwen3moe.expert_count"), 8u);
  EXPECT_EQ(u32(m, "qwen3moe.expert_used_count"), 2u);
  EXPECT_EQ(u32(m, "qwen3moe.expert_feed_forward_length"), 64u);
  EXPECT_EQ(u32(m, "qwen3moe.feed_forward_length"), 256u);  // the dense layers' width
  EXPECT_EQ(u32(m, "qwen3moe.attention.key_length"), 32u);
  EXPECT_EQ(u32(m, "qwen3moe.block_count"), 4u);
  // llama.cpp's qwen3moe builds every layer with experts: the dense layer 1 is warned about.
  EXPECT_THAT(err, testing::HasSubstr("layer(s) 1 have a dense MLP"));
  EXPECT_EQ(err.find("norm_topk_prob"), std::string::npos);

  json c = test::tiny_qwen3_moe_config();
  c["mlp_only_layers"] = json::array();
  c["norm_topk_prob"] = false;
  const fs::path model2 = test::write_tiny_arch(dir / "tq2", c);
  testing::internal::CaptureStderr();
  (void)gguf_metadata(model2, {GgufFileType::ALL_F32, "", 32});
  const std::string err2 = testing::internal::GetCapturedStderr();
  EXPECT_THAT(err2, testing::HasSubstr("norm_topk_prob = false"));
  EXPECT_EQ(err2.find("dense MLP"), std::string::npos);
  fs::remove_all(dir);
}

TEST(GgufMoe, MixtralIsLlamaWithExperts) {
  const fs::path dir = test::make_temp_dir("gguf_moe_mixtral_meta");
  const fs::path model = test::write_tiny_arch(dir / "tm", test::tiny_mixtral_config());
  const std::vector<GgufKV> m = gguf_metadata(model, {GgufFileType::MOSTLY_F16, "", 32});
  EXPECT_EQ(find_kv(m, "general.architecture")->as_string(), "llama");
  EXPECT_EQ(u32(m, "llama.expert_count"), 4u);
  EXPECT_EQ(u32(m, "llama.expert_used_count"), 2u);
  EXPECT_EQ(u32(m, "llama.feed_forward_length"), 96u);  // the experts' width (LlamaModel writes intermediate_size)
  EXPECT_EQ(find_kv(m, "llama.expert_feed_forward_length"), nullptr);
  EXPECT_EQ(u32(m, "llama.rope.dimension_count"), 32u);
  fs::remove_all(dir);
}

std::map<std::string, std::pair<D, GgmlType>> tensors_of(const fs::path& path) {
  std::map<std::string, std::pair<D, GgmlType>> r;
  const GgufReader rd = GgufReader::open(path);
  for (const GgufTensorInfo& t : rd.tensors()) r[t.name] = {t.dims, t.type};
  return r;
}

TEST(GgufMoe, StackedExpertTensors) {
  const fs::path dir = test::make_temp_dir("gguf_moe_stacked");
  for (const std::string arch : {"qwen3moe", "mixtral"}) {
    SCOPED_TRACE(arch);
    const bool qwen = arch == "qwen3moe";
    const fs::path model = test::write_tiny_arch(dir / arch, config_of(arch));
    const fs::path gguf = test::export_gguf(model, dir / (arch + "-out"), GgufMix::F16);
    const int64_t E = qwen ? 8 : 4, F = qwen ? 64 : 96;
    // llama_model_qwen3moe / llama_model_llama::load_arch_tensors: ffn_gate_inp {n_embd, n_expert},
    // gate/up exps {n_embd, n_ff_exp, n_expert}, down exps {n_ff_exp, n_embd, n_expert}.
    std::map<std::string, std::pair<D, GgmlType>> want{{"token_embd.weight", {D{128, 1024}, GgmlType::F16}},
                                                       {"output_norm.weight", {D{128}, GgmlType::F32}}};
    if (!qwen) want["output.weight"] = {D{128, 1024}, GgmlType::F16};
    for (int l = 0; l < 4; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      want[b + "attn_norm.weight"] = {D{128}, GgmlType::F32};
      want[b + "ffn_norm.weight"] = {D{128}, GgmlType::F32};
      want[b + "attn_q.weight"] = {D{128, 128}, GgmlType::F16};
      want[b + "attn_k.weight"] = {D{128, 64}, GgmlType::F16};
      want[b + "attn_v.weight"] = {D{128, 64}, GgmlType::F16};
      want[b + "attn_output.weight"] = {D{128, 128}, GgmlType::F16};
      if (qwen) {
        want[b + "attn_q_norm.weight"] = {D{32}, GgmlType::F32};
        want[b + "attn_k_norm.weight"] = {D{32}, GgmlType::F32};
      }
      if (qwen && l == 1) {  // mlp_only_layers: an ordinary MLP
        want[b + "ffn_gate.weight"] = {D{128, 256}, GgmlType::F16};
        want[b + "ffn_up.weight"] = {D{128, 256}, GgmlType::F16};
        want[b + "ffn_down.weight"] = {D{256, 128}, GgmlType::F16};
        continue;
      }
      want[b + "ffn_gate_inp.weight"] = {D{128, E}, GgmlType::F32};
      want[b + "ffn_gate_exps.weight"] = {D{128, F, E}, GgmlType::F16};
      want[b + "ffn_up_exps.weight"] = {D{128, F, E}, GgmlType::F16};
      want[b + "ffn_down_exps.weight"] = {D{F, 128, E}, GgmlType::F16};
    }
    EXPECT_EQ(tensors_of(gguf), want);

    // Expert e's HF matrix is slice e, rows in HF order; Mixtral's w1 / w3 / w2 are gate / up / down.
    const GgufReader r = GgufReader::open(gguf);
    const SafetensorsReader st = SafetensorsReader::open(model);
    const std::string moe = qwen ? "model.layers.2.mlp.experts." : "model.layers.2.block_sparse_moe.experts.";
    const std::vector<std::pair<std::string, std::string>> parts =
        qwen ? std::vector<std::pair<std::string, std::string>>{{"gate_proj", "ffn_gate_exps"}, {"up_proj", "ffn_up_exps"},
                                                                 {"down_proj", "ffn_down_exps"}}
             : std::vector<std::pair<std::string, std::string>>{{"w1", "ffn_gate_exps"}, {"w3", "ffn_up_exps"},
                                                                 {"w2", "ffn_down_exps"}};
    for (const auto& [hf, gg] : parts) {
      const GgufTensorInfo& t = r.require_tensor("blk.2." + gg + ".weight");
      std::vector<uint16_t> h(size_t(t.numel()));
      r.read(t, h.data());
      const size_t per = size_t(t.numel() / E);
      for (int64_t e = 0; e < E; e += E - 1) {  // first and last expert
        std::vector<float> w(per);
        st.read_f32(st.require(moe + std::to_string(e) + "." + hf + ".weight"), w.data());
        for (size_t i = 0; i < per; ++i)
          ASSERT_EQ(h[size_t(e) * per + i], f32_to_f16(w[i])) << gg << " expert " << e << " [" << i << "]";
      }
    }
    // The router, F32 and exact.
    const std::string router = qwen ? "model.layers.0.mlp.gate.weight" : "model.layers.0.block_sparse_moe.gate.weight";
    std::vector<float> w(size_t(E * 128)), g(w.size());
    st.read_f32(st.require(router), w.data());
    r.read(r.require_tensor("blk.0.ffn_gate_inp.weight"), g.data());
    EXPECT_EQ(w, g);
  }
  fs::remove_all(dir);
}

// llama-quantize's Q4_K_M on these shapes (llama-quant.cpp; bench/ecosystem/gguf_moe_oracle.py finds
// the same types from our F16 files). 128-wide rows take the k-quants' fallbacks (Q4_K -> Q5_0,
// Q5_K -> Q5_1, Q6_K -> Q8_0). With 8 experts (qwen3moe) attn_k and attn_v are Q8_0 and
// attn_output Q5_K; the 4-expert Mixtral keeps the dense rules. ffn_down_exps promotion reads the
// layer from the name (use_more_bits(l, 4): layers 2, 3).
TEST(GgufMoe, Q4KMMixTypes) {
  const fs::path dir = test::make_temp_dir("gguf_moe_mix");
  for (const std::string arch : {"qwen3moe", "mixtral"}) {
    SCOPED_TRACE(arch);
    const bool qwen = arch == "qwen3moe";
    const fs::path model = test::write_tiny_arch(dir / arch, config_of(arch));
    const ModelConfig cfg = load_model_config(model);
    const SafetensorsReader st = SafetensorsReader::open(model);
    testing::internal::CaptureStderr();
    const GgufModelWriter w(model, dir / (arch + "-out"), GgufMix::Q4_K_M, st, cfg, true);
    testing::internal::GetCapturedStderr();
    std::map<std::string, GgmlType> got;
    for (const std::string& hf : w.hf_order()) {
      const auto [it, fresh] = got.emplace(w.gguf_name(hf), w.planned_type(hf));
      // Every expert of a stacked tensor plans the stacked tensor's type.
      EXPECT_EQ(it->second, w.planned_type(hf)) << hf;
    }
    EXPECT_EQ(got.at("token_embd.weight"), qwen ? GgmlType::Q8_0 : GgmlType::Q5_0);  // tied: output's rule
    if (!qwen) {
      EXPECT_EQ(got.at("output.weight"), GgmlType::Q8_0);
    }
    for (int l = 0; l < 4; ++l) {
      SCOPED_TRACE(l);
      const std::string b = "blk." + std::to_string(l) + ".";
      const bool more = l >= 2;
      EXPECT_EQ(got.at(b + "attn_q.weight"), GgmlType::Q5_0);
      EXPECT_EQ(got.at(b + "attn_k.weight"), qwen ? GgmlType::Q8_0 : GgmlType::Q5_0);
      EXPECT_EQ(got.at(b + "attn_v.weight"), qwen || more ? GgmlType::Q8_0 : GgmlType::Q5_0);
      EXPECT_EQ(got.at(b + "attn_output.weight"), qwen ? GgmlType::Q5_1 : GgmlType::Q5_0);
      if (qwen && l == 1) {
        EXPECT_EQ(got.at(b + "ffn_down.weight"), GgmlType::Q4_K);  // 256-wide rows, no fallback
        EXPECT_EQ(got.at(b + "ffn_up.weight"), GgmlType::Q5_0);
        continue;
      }
      EXPECT_EQ(got.at(b + "ffn_gate_inp.weight"), GgmlType::F32);
      EXPECT_EQ(got.at(b + "ffn_gate_exps.weight"), GgmlType::Q5_0);
      EXPECT_EQ(got.at(b + "ffn_up_exps.weight"), GgmlType::Q5_0);
      EXPECT_EQ(got.at(b + "ffn_down_exps.weight"), more ? GgmlType::Q8_0 : GgmlType::Q5_0);
    }
  }
  fs::remove_all(dir);
}

// The pipeline hands a block over with per-expert results: tuned bytes (SignRound under the
// planned type) and importance are keyed by the expert's HF linear name and land in its slice;
// an expert no token reached (all-zero importance) is quantized as without importance.
TEST(GgufMoe, BlockResultsPerExpert) {
  const fs::path dir = test::make_temp_dir("gguf_moe_block");
  const fs::path model = test::write_tiny_arch(dir / "tm", test::tiny_mixtral_config());
  const ModelConfig cfg = load_model_config(model);
  const SafetensorsReader st = SafetensorsReader::open(model);
  const Decoder d(model);
  fs::path gguf;
  const std::string up3 = "model.layers.0.block_sparse_moe.experts.3.w3";
  const std::string down1 = "model.layers.0.block_sparse_moe.experts.1.w2";
  std::vector<uint8_t> tuned, plain_down1, imp_up0;
  {
    GgufModelWriter w(model, dir / "out", GgufMix::Q4_0, st, cfg, true, /*has_importance=*/true);
    const std::vector<std::string> order = w.hf_order();
    for (int64_t l = 0; l < 4; ++l) {
      BlockWeights bw = d.weights().load_block(l);
      std::vector<std::string> tensors;
      for (const std::string& n : order)
        if (n.starts_with("model.layers." + std::to_string(l) + ".")) tensors.push_back(n);
      BlockResult r;
      r.layer = l;
      if (l == 0) {
        // "Tuned" bytes for expert 3's up: another matrix's, so they cannot come from the weights.
        std::vector<float> other(96 * 128, 0.25f);
        tuned = w.encode_weight(up3 + ".weight", other.data(), 96, 128);
        r.linears[up3].gguf_type = w.planned_type(up3 + ".weight");
        r.linears[up3].gguf = tuned;
        r.linears[down1].importance.assign(96, 0.0f);
        const LinearWeights& ld = *block_linears(bw, kDenseLinears + 3 * 1 + 2);
        plain_down1 = w.encode_weight(down1 + ".weight", ld.w.as<float>(), ld.out, ld.in);
        std::vector<float> imp(128);
        for (size_t i = 0; i < imp.size(); ++i) imp[i] = 1.0f + float(i % 7) * 10.0f;
        const LinearWeights& lu = *block_linears(bw, kDenseLinears + 1);
        ASSERT_EQ(lu.name, "model.layers.0.block_sparse_moe.experts.0.w3");
        imp_up0 = w.encode_weight(lu.name + ".weight", lu.w.as<float>(), lu.out, lu.in, imp.data());
        r.linears[lu.name].importance = imp;
      }
      w.add_block(tensors, r, &bw);
    }
    for (const std::string& n : order)
      if (n.find(".layers.") == std::string::npos) w.add_copy(n);
    w.finish();
    gguf = w.path();
  }
  const GgufReader r = GgufReader::open(gguf);
  auto slice = [&](const std::string& name, int64_t e) {
    const GgufTensorInfo& t = r.require_tensor(name);
    std::vector<uint8_t> all(t.size_bytes);
    r.read(t, all.data());
    const size_t per = all.size() / 4;
    return std::vector<uint8_t>(all.begin() + std::ptrdiff_t(per * size_t(e)), all.begin() + std::ptrdiff_t(per * size_t(e + 1)));
  };
  EXPECT_EQ(r.require_tensor("blk.0.ffn_up_exps.weight").type, GgmlType::Q4_0);
  EXPECT_TRUE(slice("blk.0.ffn_up_exps.weight", 3) == tuned);
  EXPECT_TRUE(slice("blk.0.ffn_up_exps.weight", 0) == imp_up0);
  EXPECT_TRUE(slice("blk.0.ffn_down_exps.weight", 1) == plain_down1);
  // The ffn_down rule with importance (Q4_0 -> Q4_1 in the first eighth of the layers) reaches no
  // layer of 4; the experts keep Q4_0.
  EXPECT_EQ(r.require_tensor("blk.0.ffn_down_exps.weight").type, GgmlType::Q4_0);
  fs::remove_all(dir);
}

// HF folder -> our F32 GGUF -> Decoder: the folder's config and logits.
class GgufMoeRoundTrip : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufMoeRoundTrip, F32ExportGivesTheFoldersLogits) {
  const std::string arch = GetParam();
  const fs::path dir = test::make_temp_dir("gguf_moe_roundtrip_" + arch);
  const fs::path model = test::write_tiny_arch(dir / "m", config_of(arch), 13);
  testing::internal::CaptureStderr();
  const fs::path gguf = test::export_gguf(model, dir / "out", GgufMix::F32);
  testing::internal::GetCapturedStderr();
  const Decoder a(model), b(gguf);
  ASSERT_TRUE(b.is_gguf());
  const ModelConfig &ca = a.config(), &cb = b.config();
  EXPECT_EQ(cb.arch, ca.arch);
  EXPECT_EQ(cb.architecture, ca.architecture);
  EXPECT_EQ(cb.num_experts, ca.num_experts);
  EXPECT_EQ(cb.num_experts_per_tok, ca.num_experts_per_tok);
  EXPECT_EQ(cb.moe_intermediate_size, ca.moe_intermediate_size);
  EXPECT_EQ(cb.intermediate_size, ca.intermediate_size);
  EXPECT_EQ(cb.norm_topk_prob, ca.norm_topk_prob);
  EXPECT_EQ(cb.layer_moe, ca.layer_moe);
  EXPECT_EQ(cb.qk_norm, ca.qk_norm);
  EXPECT_EQ(cb.head_dim, ca.head_dim);
  EXPECT_EQ(cb.tie_word_embeddings, ca.tie_word_embeddings);
  EXPECT_EQ(cb.rope_theta, ca.rope_theta);
  EXPECT_FLOAT_EQ(float(cb.rms_norm_eps), float(ca.rms_norm_eps));

  // Every expert's weights come back as they were (F32: exactly), Mixtral's q/k unpermuted.
  const BlockWeights wa = a.weights().load_block(2), wb = b.weights().load_block(2);
  ASSERT_EQ(block_linear_count(wa), block_linear_count(wb));
  for (int i = 0; i < block_linear_count(wa); ++i) {
    const LinearWeights &x = *block_linears(wa, i), &y = *block_linears(wb, i);
    ASSERT_EQ(x.name, y.name);
    ASSERT_EQ(x.w.size_bytes(), y.w.size_bytes()) << x.name;
    if (x.w.size_bytes() == 0) continue;  // a slot the MoE layer leaves empty (no data pointer)
    EXPECT_EQ(0, std::memcmp(x.w.data(), y.w.data(), x.w.size_bytes())) << x.name;
  }
  EXPECT_EQ(0, std::memcmp(wa.router.w.data(), wb.router.w.data(), wa.router.w.size_bytes()));

  std::vector<int32_t> ids(80);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 131 + 7) % 1024);
  const std::vector<float> la = test::logits_of(a, ids), lb = test::logits_of(b, ids);
  float max_d = 0;
  for (size_t i = 0; i < la.size(); ++i) max_d = std::max(max_d, std::fabs(la[i] - lb[i]));
  std::printf("  %s: max |logit diff| HF folder vs F32 GGUF %.2e\n", arch.c_str(), max_d);
  EXPECT_LT(max_d, kRoundTripTol);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Tiny, GgufMoeRoundTrip, ::testing::Values("qwen3moe", "mixtral"),
                         [](const auto& info) { return std::string(info.param); });

// A llama.cpp-style qwen3moe file (every layer with experts, no expert_feed_forward_length): the
// experts' width is llama.cpp's default, feed_forward_length / expert_used_count, and every layer
// is MoE; a llama file with expert_count is Mixtral.
TEST(GgufMoe, ConfigFromKeysAsLlamaCpp) {
  const fs::path dir = test::make_temp_dir("gguf_moe_keys");
  auto write = [&](const json& c, const std::string& name, const std::vector<std::string>& drop,
                   const std::vector<GgufTensorDecl>& extra) {
    testing::internal::CaptureStderr();
    std::vector<GgufKV> kvs = gguf_model_kvs(parse_model_config(c, name), dir, {GgufFileType::ALL_F32, name, 32});
    testing::internal::GetCapturedStderr();
    std::erase_if(kvs, [&](const GgufKV& k) { return std::find(drop.begin(), drop.end(), k.key) != drop.end(); });
    std::vector<GgufTensorDecl> t{{"token_embd.weight", GgmlType::F32, {128, 1024}}};
    for (const GgufTensorDecl& e : extra) t.push_back(e);
    const fs::path p = dir / (name + ".gguf");
    GgufWriter w(p, kvs, t);
    for (const GgufTensorDecl& d : t) {
      int64_t n = 1;
      for (int64_t x : d.dims) n *= x;
      const std::vector<float> zeros(static_cast<size_t>(n), 0.0f);
      w.write_tensor(d.name, zeros.data(), zeros.size() * 4);
    }
    w.finish();
    return gguf_model_config(GgufReader::open(p));
  };
  json q = test::tiny_qwen3_moe_config();
  q["mlp_only_layers"] = json::array();
  q["moe_intermediate_size"] = 128;  // = 256 / 2, what llama.cpp assumes without the key
  std::vector<GgufTensorDecl> routers;
  for (int l = 0; l < 4; ++l) routers.push_back({"blk." + std::to_string(l) + ".ffn_gate_inp.weight", GgmlType::F32, {128, 8}});
  const ModelConfig a = write(q, "qwen", {"qwen3moe.expert_feed_forward_length"}, routers);
  EXPECT_EQ(a.arch, Arch::Qwen3Moe);
  EXPECT_EQ(a.moe_intermediate_size, 128);
  EXPECT_TRUE(a.norm_topk_prob);
  for (int64_t l = 0; l < 4; ++l) EXPECT_TRUE(layer_is_moe(a, l)) << l;
  const ModelConfig b = write(test::tiny_mixtral_config(), "mix", {}, {});
  EXPECT_EQ(b.arch, Arch::Mixtral);
  EXPECT_EQ(b.num_experts, 4);
  EXPECT_EQ(b.num_experts_per_tok, 2);
  EXPECT_EQ(b.moe_intermediate_size, 96);
  // Without expert_count it is a dense llama.
  const ModelConfig c = write(test::tiny_mixtral_config(), "dense", {"llama.expert_count", "llama.expert_used_count"}, {});
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.num_experts, 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ar
