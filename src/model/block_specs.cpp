// A decoder block's tensor list from ModelConfig (HF LlamaDecoderLayer / Qwen2DecoderLayer /
// Qwen3DecoderLayer / MistralDecoderLayer), with llama.cpp's names for each module (facts from
// convert_hf_to_gguf.py / gguf-py tensor_mapping.py; our own table).
#include "model/block_specs.h"

#include "core/error.h"

namespace ar {

namespace {

struct PartNames {
  BlockPart part;
  std::string_view hf;    // module suffix after "model.layers.N."
  std::string_view gguf;  // module suffix after "blk.N."
  bool has_bias;          // whether the module can have a bias at all (the config decides if it does)
};
// Indexed by BlockPart.
constexpr PartNames kParts[] = {
    {BlockPart::Q, "self_attn.q_proj", "attn_q", true},
    {BlockPart::K, "self_attn.k_proj", "attn_k", true},
    {BlockPart::V, "self_attn.v_proj", "attn_v", true},
    {BlockPart::O, "self_attn.o_proj", "attn_output", true},
    {BlockPart::Gate, "mlp.gate_proj", "ffn_gate", true},
    {BlockPart::Up, "mlp.up_proj", "ffn_up", true},
    {BlockPart::Down, "mlp.down_proj", "ffn_down", true},
    {BlockPart::InputNorm, "input_layernorm", "attn_norm", false},
    {BlockPart::PostNorm, "post_attention_layernorm", "ffn_norm", false},
    {BlockPart::QNorm, "self_attn.q_norm", "attn_q_norm", false},
    {BlockPart::KNorm, "self_attn.k_norm", "attn_k_norm", false},
    {BlockPart::PreFfnNorm, "pre_feedforward_layernorm", "ffn_norm", false},
    {BlockPart::PostFfnNorm, "post_feedforward_layernorm", "post_ffw_norm", false},
    {BlockPart::Router, "mlp.gate", "ffn_gate_inp", false},
    {BlockPart::ExpertGate, "mlp.experts.{}.gate_proj", "ffn_gate_exps", false},
    {BlockPart::ExpertUp, "mlp.experts.{}.up_proj", "ffn_up_exps", false},
    {BlockPart::ExpertDown, "mlp.experts.{}.down_proj", "ffn_down_exps", false},
};
// Mixtral's names for the same modules ({} is the expert index).
constexpr PartNames kMixtral[] = {
    {BlockPart::Router, "block_sparse_moe.gate", "ffn_gate_inp", false},
    {BlockPart::ExpertGate, "block_sparse_moe.experts.{}.w1", "ffn_gate_exps", false},
    {BlockPart::ExpertUp, "block_sparse_moe.experts.{}.w3", "ffn_up_exps", false},
    {BlockPart::ExpertDown, "block_sparse_moe.experts.{}.w2", "ffn_down_exps", false},
};
// Where a config renames a part (llama.cpp's phi3 and gemma3 tensors).
constexpr PartNames kFusedQkv{BlockPart::Q, "self_attn.qkv_proj", "attn_qkv", false};
constexpr PartNames kFusedGateUp{BlockPart::Gate, "mlp.gate_up_proj", "ffn_up", false};
constexpr PartNames kGemmaPostAttnNorm{BlockPart::PostNorm, "post_attention_layernorm", "post_attention_norm", false};

const PartNames& names_of(BlockPart p, const ModelConfig& c) {
  if (p == BlockPart::Q && c.fused_qkv) return kFusedQkv;
  if (p == BlockPart::Gate && c.fused_gate_up) return kFusedGateUp;
  if (p == BlockPart::PostNorm && c.sandwich_norms) return kGemmaPostAttnNorm;
  if (c.arch == Arch::Mixtral && p >= BlockPart::Router) return kMixtral[size_t(p) - size_t(BlockPart::Router)];
  const PartNames& n = kParts[size_t(p)];
  AR_CHECK(n.part == p, "kParts is out of BlockPart order at ", int(p));
  return n;
}

const char* leaf_of(TensorRole r) { return r == TensorRole::Bias ? "bias" : "weight"; }

// "mlp.experts.{}.w1" with expert 3 -> "mlp.experts.3.w1".
std::string with_expert(std::string_view pattern, int64_t expert) {
  const size_t at = pattern.find("{}");
  if (at == std::string_view::npos) return std::string(pattern);
  return cat(pattern.substr(0, at), expert, pattern.substr(at + 2));
}

}  // namespace

int BlockTensorSpec::linear_index() const {
  if (part <= BlockPart::Down) return int(part);
  if (part >= BlockPart::ExpertGate)
    return kDenseLinears + 3 * int(expert) + (int(part) - int(BlockPart::ExpertGate));
  return -1;
}

int64_t BlockTensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<BlockTensorSpec> block_tensor_specs(const ModelConfig& c, int64_t layer) {
  AR_CHECK(layer >= 0 && layer < c.num_hidden_layers, "layer ", layer, " of ", c.num_hidden_layers);
  const int64_t C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
  const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads;
  // HF: Qwen2Attention has q/k/v bias and a bias-free o_proj; Llama/Mistral/Qwen3 put
  // attention_bias on all four projections.
  const bool qkv_bias = c.attention_bias;
  const bool o_bias = c.attention_bias && c.arch != Arch::Qwen2;

  std::vector<BlockTensorSpec> s;
  auto add = [&](BlockPart part, TensorRole role, std::vector<int64_t> shape, int64_t expert = -1) {
    const PartNames& n = names_of(part, c);
    BlockTensorSpec t;
    t.module = cat("model.layers.", layer, ".", with_expert(n.hf, expert));
    t.expert = expert;
    t.name = cat(t.module, ".", leaf_of(role));
    t.gguf_name = cat("blk.", layer, ".", n.gguf, ".", leaf_of(role));
    t.shape = std::move(shape);
    t.part = part;
    t.role = role;
    s.push_back(std::move(t));
  };
  auto linear = [&](BlockPart part, int64_t in, int64_t out, bool bias) {
    add(part, TensorRole::Weight, {out, in});
    if (bias) add(part, TensorRole::Bias, {out});
  };
  if (c.fused_qkv) {
    linear(BlockPart::Q, C, (H + 2 * Hkv) * D, false);
  } else {
    linear(BlockPart::Q, C, H * D, qkv_bias);
    linear(BlockPart::K, C, Hkv * D, qkv_bias);
    linear(BlockPart::V, C, Hkv * D, qkv_bias);
  }
  linear(BlockPart::O, H * D, C, o_bias);
  if (c.qk_norm) {
    add(BlockPart::QNorm, TensorRole::Weight, {D});
    add(BlockPart::KNorm, TensorRole::Weight, {D});
  }
  if (layer_is_moe(c, layer)) {
    const int64_t E = c.num_experts, Fe = c.moe_intermediate_size;
    add(BlockPart::Router, TensorRole::Weight, {E, C});
    for (int64_t e = 0; e < E; ++e) {
      add(BlockPart::ExpertGate, TensorRole::Weight, {Fe, C}, e);
      add(BlockPart::ExpertUp, TensorRole::Weight, {Fe, C}, e);
      add(BlockPart::ExpertDown, TensorRole::Weight, {C, Fe}, e);
    }
  } else if (c.fused_gate_up) {
    linear(BlockPart::Gate, C, 2 * F, false);
  } else {
    linear(BlockPart::Gate, C, F, c.mlp_bias);
    linear(BlockPart::Up, C, F, c.mlp_bias);
  }
  if (!layer_is_moe(c, layer)) linear(BlockPart::Down, F, C, c.mlp_bias);
  add(BlockPart::InputNorm, TensorRole::Weight, {C});
  add(BlockPart::PostNorm, TensorRole::Weight, {C});
  if (c.sandwich_norms) {
    add(BlockPart::PreFfnNorm, TensorRole::Weight, {C});
    add(BlockPart::PostFfnNorm, TensorRole::Weight, {C});
  }
  return s;
}

Buffer& block_tensor_buffer(BlockWeights& b, const BlockTensorSpec& s) {
  if (s.is_linear()) {
    LinearWeights& l = *block_linears(b, s.linear_index());
    return s.role == TensorRole::Bias ? l.b : l.w;
  }
  AR_CHECK(s.role == TensorRole::Weight, "norm '", s.name, "' with a bias");
  switch (s.part) {
    case BlockPart::InputNorm: return b.input_norm;
    case BlockPart::PostNorm: return b.post_norm;
    case BlockPart::QNorm: return b.q_norm;
    case BlockPart::KNorm: return b.k_norm;
    case BlockPart::PreFfnNorm: return b.pre_ffn_norm;
    case BlockPart::PostFfnNorm: return b.post_ffn_norm;
    case BlockPart::Router: return b.router.w;
    default: AR_CHECK(false, "block part ", int(s.part));
  }
  return b.input_norm;  // not reached
}

BlockWeights block_shapes(const ModelConfig& c, int64_t layer) {
  BlockWeights b;
  b.layer = layer;
  if (layer_is_moe(c, layer)) b.experts.resize(size_t(3 * c.num_experts));
  for (const BlockTensorSpec& s : block_tensor_specs(c, layer)) {
    if (s.part == BlockPart::Router) {
      b.router.name = s.module;
      b.router.out = s.shape[0];
      b.router.in = s.shape[1];
    }
    if (!s.quantizable()) continue;
    LinearWeights& l = *block_linears(b, s.linear_index());
    l.name = s.module;
    l.out = s.shape[0];
    l.in = s.shape[1];
  }
  return b;
}

namespace {
uint64_t layer_f32_bytes(const ModelConfig& c, int64_t layer) {
  uint64_t n = 0;
  for (const BlockTensorSpec& s : block_tensor_specs(c, layer)) n += uint64_t(s.numel()) * sizeof(float);
  return n;
}
}  // namespace

int64_t largest_block_layer(const ModelConfig& c) {
  if (c.num_experts <= 0) return 0;  // dense: every block alike
  int64_t best = 0;
  uint64_t best_bytes = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    if (const uint64_t b = layer_f32_bytes(c, l); b > best_bytes) {
      best = l;
      best_bytes = b;
    }
  return best;
}

uint64_t block_f32_bytes(const ModelConfig& c) { return layer_f32_bytes(c, largest_block_layer(c)); }

std::string gguf_block_suffix(std::string_view hf_suffix, const ModelConfig& c) {
  const size_t dot = hf_suffix.rfind('.');
  if (dot == std::string_view::npos) return "";
  const std::string_view module = hf_suffix.substr(0, dot), leaf = hf_suffix.substr(dot + 1);
  for (const PartNames& p : kParts) {
    const PartNames& n = names_of(p.part, c);
    // Experts have no tensor of their own in GGUF (llama.cpp stacks them): "".
    if (n.hf == module && n.hf.find("{}") == std::string_view::npos &&
        (leaf == "weight" || (leaf == "bias" && n.has_bias)))
      return cat(n.gguf, ".", leaf);
  }
  return "";
}

RowRange fused_rows(const ModelConfig& c, BlockPart logical) {
  const int64_t D = c.head_dim, H = c.num_attention_heads, Hkv = c.num_key_value_heads, F = c.intermediate_size;
  switch (logical) {
    case BlockPart::Q: return {0, H * D};
    case BlockPart::K: return {H * D, Hkv * D};
    case BlockPart::V: return {(H + Hkv) * D, Hkv * D};
    case BlockPart::Gate: return {0, F};
    case BlockPart::Up: return {F, F};
    default: AR_CHECK(false, "fused_rows of block part ", int(logical));
  }
  return {};
}

}  // namespace ar
