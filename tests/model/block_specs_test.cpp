// The block tensor list per architecture and bias option, with shapes written by hand from HF's
// modeling code (LlamaAttention / Qwen2Attention / Qwen3Attention, LlamaMLP), its GGUF names
// (llama.cpp's), and the helpers built on it: block_tensor_buffer, block_shapes, block_f32_bytes.
#include "model/block_specs.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "model/gguf_names.h"

namespace ar {
namespace {

using Shape = std::vector<int64_t>;

ModelConfig config(Arch arch) {
  ModelConfig c;
  c.arch = arch;
  c.hidden_size = 64;
  c.intermediate_size = 172;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.head_dim = 12;  // H*D = 96 != C: o_proj is not square
  c.qk_norm = arch == Arch::Qwen3 || arch == Arch::Gemma3;
  c.attention_bias = arch == Arch::Qwen2;
  c.sandwich_norms = c.norm_weight_offset = arch == Arch::Gemma3;
  c.fused_qkv = c.fused_gate_up = arch == Arch::Phi3;
  return c;
}

std::map<std::string, Shape> shapes_of(const std::vector<BlockTensorSpec>& specs) {
  std::map<std::string, Shape> m;
  for (const auto& s : specs) m[s.name] = s.shape;
  return m;
}

TEST(BlockSpecs, LlamaInHfModuleOrder) {
  const auto specs = block_tensor_specs(config(Arch::Llama), 3);
  std::vector<std::string> names;
  for (const auto& s : specs) names.push_back(s.name);
  const std::string p = "model.layers.3.";
  EXPECT_EQ(names, (std::vector<std::string>{p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight",
                                             p + "self_attn.v_proj.weight", p + "self_attn.o_proj.weight",
                                             p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight",
                                             p + "mlp.down_proj.weight", p + "input_layernorm.weight",
                                             p + "post_attention_layernorm.weight"}));
  auto m = shapes_of(specs);
  EXPECT_EQ(m.at(p + "self_attn.q_proj.weight"), (Shape{96, 64}));
  EXPECT_EQ(m.at(p + "self_attn.k_proj.weight"), (Shape{48, 64}));
  EXPECT_EQ(m.at(p + "self_attn.o_proj.weight"), (Shape{64, 96}));
  EXPECT_EQ(m.at(p + "mlp.down_proj.weight"), (Shape{64, 172}));
  EXPECT_EQ(m.at(p + "input_layernorm.weight"), (Shape{64}));
  EXPECT_EQ(specs[3].module, p + "self_attn.o_proj");
  EXPECT_EQ(specs[3].gguf_name, "blk.3.attn_output.weight");
  EXPECT_EQ(specs[7].gguf_name, "blk.3.attn_norm.weight");
  EXPECT_EQ(specs[8].gguf_name, "blk.3.ffn_norm.weight");
  for (size_t i = 0; i < specs.size(); ++i) {
    EXPECT_EQ(specs[i].quantizable(), i < 7) << specs[i].name;
    EXPECT_EQ(specs[i].linear_index(), i < 7 ? int(i) : -1) << specs[i].name;
  }
}

TEST(BlockSpecs, LlamaAttentionBiasIsOnAllFourProjections) {
  ModelConfig c = config(Arch::Llama);
  c.attention_bias = true;
  auto m = shapes_of(block_tensor_specs(c, 0));
  EXPECT_EQ(m.at("model.layers.0.self_attn.q_proj.bias"), (Shape{96}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.k_proj.bias"), (Shape{48}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.v_proj.bias"), (Shape{48}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.o_proj.bias"), (Shape{64}));
  EXPECT_FALSE(m.count("model.layers.0.mlp.up_proj.bias"));
  EXPECT_EQ(m.size(), 9u + 4);
  c.arch = Arch::Qwen3;  // Qwen3Attention: the same rule
  c.qk_norm = true;
  EXPECT_TRUE(shapes_of(block_tensor_specs(c, 0)).count("model.layers.0.self_attn.o_proj.bias"));
}

TEST(BlockSpecs, Qwen2HasQkvBiasButNoOBias) {
  auto m = shapes_of(block_tensor_specs(config(Arch::Qwen2), 1));
  EXPECT_EQ(m.at("model.layers.1.self_attn.q_proj.bias"), (Shape{96}));
  EXPECT_EQ(m.at("model.layers.1.self_attn.v_proj.bias"), (Shape{48}));
  EXPECT_FALSE(m.count("model.layers.1.self_attn.o_proj.bias"));
  EXPECT_EQ(m.size(), 9u + 3);
}

TEST(BlockSpecs, Qwen3HasQkNorm) {
  const auto specs = block_tensor_specs(config(Arch::Qwen3), 0);
  auto m = shapes_of(specs);
  EXPECT_EQ(m.at("model.layers.0.self_attn.q_norm.weight"), (Shape{12}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.k_norm.weight"), (Shape{12}));
  EXPECT_EQ(specs[4].name, "model.layers.0.self_attn.q_norm.weight");  // after o_proj, as HF registers it
  EXPECT_EQ(specs[4].gguf_name, "blk.0.attn_q_norm.weight");
  EXPECT_FALSE(specs[4].quantizable());
}

TEST(BlockSpecs, MlpBias) {
  ModelConfig c = config(Arch::Llama);
  c.mlp_bias = true;
  const auto specs = block_tensor_specs(c, 2);
  auto m = shapes_of(specs);
  EXPECT_EQ(m.at("model.layers.2.mlp.gate_proj.bias"), (Shape{172}));
  EXPECT_EQ(m.at("model.layers.2.mlp.up_proj.bias"), (Shape{172}));
  EXPECT_EQ(m.at("model.layers.2.mlp.down_proj.bias"), (Shape{64}));
  for (const auto& s : specs)
    if (s.name == "model.layers.2.mlp.down_proj.bias") {
      EXPECT_EQ(s.gguf_name, "blk.2.ffn_down.bias");
      EXPECT_FALSE(s.quantizable());
      EXPECT_EQ(s.linear_index(), 6);
    }
}

// Every spec names one distinct buffer, the GGUF name agrees with gguf_tensor_name, and the shape
// helpers agree with the list.
TEST(BlockSpecs, HelpersAgreeWithTheList) {
  for (Arch arch : {Arch::Llama, Arch::Mistral, Arch::Qwen2, Arch::Qwen3, Arch::Gemma3, Arch::Phi3}) {
    ModelConfig c = config(arch);
    c.attention_bias = arch != Arch::Phi3;
    c.mlp_bias = arch == Arch::Llama;
    BlockWeights b = block_shapes(c, 1);
    std::set<const Buffer*> seen;
    uint64_t bytes = 0;
    for (const BlockTensorSpec& s : block_tensor_specs(c, 1)) {
      EXPECT_TRUE(seen.insert(&block_tensor_buffer(b, s)).second) << s.name;
      EXPECT_EQ(gguf_tensor_name(s.name, c), s.gguf_name);
      EXPECT_EQ(s.name, s.module + (s.role == TensorRole::Bias ? ".bias" : ".weight"));
      bytes += uint64_t(s.numel()) * 4;
      if (s.quantizable()) {
        const LinearWeights& l = *block_linears(b, s.linear_index());
        EXPECT_EQ(l.name, s.module);
        EXPECT_EQ((Shape{l.out, l.in}), s.shape);
      }
    }
    EXPECT_EQ(block_f32_bytes(c), bytes);
    EXPECT_EQ(b.layer, 1);
  }
}

TEST(BlockSpecs, GgufSuffixes) {
  const ModelConfig c = config(Arch::Llama);
  EXPECT_EQ(gguf_block_suffix("self_attn.o_proj.bias", c), "attn_output.bias");
  EXPECT_EQ(gguf_block_suffix("mlp.gate_proj.weight", c), "ffn_gate.weight");
  EXPECT_EQ(gguf_block_suffix("input_layernorm.weight", c), "attn_norm.weight");
  EXPECT_EQ(gguf_block_suffix("input_layernorm.bias", c), "");  // RMSNorm has no bias
  EXPECT_EQ(gguf_block_suffix("self_attn.rotary_emb.inv_freq", c), "");
  EXPECT_EQ(gguf_block_suffix("mlp", c), "");
  EXPECT_EQ(gguf_tensor_name("model.layers.7.self_attn.o_proj.bias", c), "blk.7.attn_output.bias");
}

TEST(BlockSpecs, Gemma3HasFourNormsAndQkNorms) {
  const ModelConfig c = config(Arch::Gemma3);
  const auto specs = block_tensor_specs(c, 2);
  auto m = shapes_of(specs);
  const std::string p = "model.layers.2.";
  for (const char* n : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                        "post_feedforward_layernorm"})
    EXPECT_EQ(m.at(p + n + ".weight"), (Shape{64})) << n;
  EXPECT_EQ(m.at(p + "self_attn.q_norm.weight"), (Shape{12}));
  EXPECT_EQ(specs.size(), 7u + 4u + 2u);
  for (const auto& s : specs)
    if (s.name == p + "post_attention_layernorm.weight") {
      EXPECT_EQ(s.gguf_name, "blk.2.post_attention_norm.weight");
    }
}

TEST(BlockSpecs, Phi3FusedLinearsFillTheQAndGateSlots) {
  const ModelConfig c = config(Arch::Phi3);
  const auto specs = block_tensor_specs(c, 0);
  auto m = shapes_of(specs);
  // (H + 2 Hkv) * D = (8 + 8) * 12 rows; gate | up = 2 * 172 rows.
  EXPECT_EQ(m.at("model.layers.0.self_attn.qkv_proj.weight"), (Shape{192, 64}));
  EXPECT_EQ(m.at("model.layers.0.mlp.gate_up_proj.weight"), (Shape{344, 64}));
  EXPECT_EQ(m.count("model.layers.0.self_attn.q_proj.weight"), 0u);
  EXPECT_EQ(specs.size(), 4u + 2u);
  const BlockWeights b = block_shapes(c, 0);
  EXPECT_EQ(b.q.name, "model.layers.0.self_attn.qkv_proj");
  EXPECT_EQ(b.gate.out, 344);
  EXPECT_FALSE(b.k.present());
  EXPECT_FALSE(b.v.present());
  EXPECT_FALSE(b.up.present());
  EXPECT_EQ(fused_rows(c, BlockPart::K).row0, 96);
  EXPECT_EQ(fused_rows(c, BlockPart::V).row0, 144);
  EXPECT_EQ(fused_rows(c, BlockPart::Up).row0, 172);
}

}  // namespace
}  // namespace ar

namespace ar {
namespace {

ModelConfig moe_config(Arch arch) {
  ModelConfig c = config(arch == Arch::Mixtral ? Arch::Mistral : Arch::Qwen3);
  c.arch = arch;
  c.num_experts = 16;  // 16 x 3 x 20 x 64 weights: more than the dense MLP's 3 x 172 x 64
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 20;
  c.layer_moe = {0, 1, 1, 0};  // layers 0 and 3 dense (mlp_only_layers)
  return c;
}

TEST(BlockSpecs, MoeRouterAndExpertsAfterTheDenseSlots) {
  const ModelConfig c = moe_config(Arch::Qwen3Moe);
  const auto specs = block_tensor_specs(c, 1);
  auto m = shapes_of(specs);
  const std::string p = "model.layers.1.mlp.";
  EXPECT_EQ(m.at(p + "gate.weight"), (Shape{16, 64}));
  EXPECT_EQ(m.at(p + "experts.2.down_proj.weight"), (Shape{64, 20}));
  EXPECT_EQ(m.count(p + "gate_proj.weight"), 0u);
  for (const BlockTensorSpec& s : specs) {
    if (s.part == BlockPart::Router) {
      EXPECT_FALSE(s.quantizable());
      EXPECT_EQ(s.gguf_name, "blk.1.ffn_gate_inp.weight");
    }
    if (s.name == p + "experts.2.up_proj.weight") {
      EXPECT_EQ(s.linear_index(), kDenseLinears + 3 * 2 + 1);
      EXPECT_EQ(s.gguf_name, "blk.1.ffn_up_exps.weight");  // llama.cpp's stacked tensor
      EXPECT_EQ(gguf_tensor_name(s.name, c), "");          // no per-expert GGUF tensor
    }
  }
  const BlockWeights b = block_shapes(c, 1);
  EXPECT_EQ(block_linear_count(b), kDenseLinears + 48);
  EXPECT_EQ(block_linears(b, kDenseLinears + 5)->name, p + "experts.1.down_proj");
  EXPECT_EQ(b.router.out, 16);
  EXPECT_FALSE(b.gate.present());
  // Dense layers keep the ordinary MLP; estimates size for the largest block.
  EXPECT_EQ(block_linear_count(block_shapes(c, 0)), kDenseLinears);
  EXPECT_EQ(largest_block_layer(c), 1);
  uint64_t bytes = 0;
  for (const BlockTensorSpec& s : specs) bytes += uint64_t(s.numel()) * 4;
  EXPECT_EQ(block_f32_bytes(c), bytes);
}

TEST(BlockSpecs, MixtralNames) {
  const ModelConfig c = moe_config(Arch::Mixtral);
  auto m = shapes_of(block_tensor_specs(c, 2));
  const std::string p = "model.layers.2.block_sparse_moe.";
  EXPECT_EQ(m.at(p + "gate.weight"), (Shape{16, 64}));
  EXPECT_EQ(m.at(p + "experts.0.w1.weight"), (Shape{20, 64}));  // gate
  EXPECT_EQ(m.at(p + "experts.0.w3.weight"), (Shape{20, 64}));  // up
  EXPECT_EQ(m.at(p + "experts.0.w2.weight"), (Shape{64, 20}));  // down
  const BlockWeights b = block_shapes(c, 2);
  EXPECT_EQ(block_linears(b, kDenseLinears + 1)->name, p + "experts.0.w3");
}

}  // namespace
}  // namespace ar
