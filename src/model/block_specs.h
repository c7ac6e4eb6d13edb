// The one description of a decoder block's tensors: HF name, llama.cpp (GGUF) name, shape, which
// part of BlockWeights it fills, and whether it is a quantizable linear. Loaders (safetensors,
// GGUF), the quantize pipeline's estimates and the synthetic model generator all read this list;
// an architecture's block is a description here, not code in each of them.
//
// Which tensors a config has follows HF's modeling code:
//   attention  q/k/v/o_proj.weight; bias on q/k/v/o when attention_bias (Llama, Mistral, Qwen3),
//              on q/k/v only for Qwen2 (config.json's attention_bias is forced on, o_proj has none)
//   qk-norm    self_attn.q_norm / k_norm (head_dim) when qk_norm (Qwen3)
//   mlp        gate/up/down_proj.weight; bias on all three when mlp_bias (LlamaMLP)
//   norms      input_layernorm, post_attention_layernorm (hidden_size); Gemma3 adds
//              pre_feedforward_layernorm and post_feedforward_layernorm (sandwich_norms)
//   fused      Phi3: self_attn.qkv_proj (rows q | k | v) fills the Q slot and mlp.gate_up_proj
//              (rows gate | up) the Gate slot; the K, V and Up slots stay empty (out = 0). A
//              fused tensor is one linear to quantize, as AutoRound and llama.cpp treat it
//              (its rows are independent, so per-row groups are the same either way), and the
//              kernels multiply with row ranges of it.
// The list is in HF module order (the order HF registers the modules, and the order the synthetic
// generator writes them).
//
//   moe        on layer_is_moe layers, instead of gate/up/down: the router (Qwen3Moe mlp.gate,
//              Mixtral block_sparse_moe.gate; never quantized) and per expert e its gate/up/down
//              (mlp.experts.e.gate_proj/up_proj/down_proj; Mixtral's experts.e.w1/w3/w2). llama.cpp
//              stacks the experts into one tensor per projection (ffn_gate_exps, ...): gguf_name is
//              that stacked tensor's, with `expert` its index.
//
// Growing it: a new layout adds parts and a branch in block_tensor_specs.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/buffer.h"
#include "model/config.h"
#include "model/weights.h"

namespace ar {

// The module a block tensor belongs to. The seven projections come first, in block_linears order,
// so a projection's value is its block_linears index.
// Q and Gate hold the fused qkv_proj / gate_up_proj where the config has them.
// Router, Expert*: a mixture-of-experts MLP (BlockTensorSpec::expert says whose).
enum class BlockPart {
  Q, K, V, O, Gate, Up, Down, InputNorm, PostNorm, QNorm, KNorm, PreFfnNorm, PostFfnNorm,
  Router, ExpertGate, ExpertUp, ExpertDown
};

// What the tensor is to its module: the weight (a linear's matrix, a norm's scale) or a bias.
enum class TensorRole { Weight, Bias };

struct BlockTensorSpec {
  std::string module;          // HF module, e.g. "model.layers.3.self_attn.q_proj"
  std::string name;            // HF tensor, module + ".weight" / ".bias"
  std::string gguf_name;       // llama.cpp tensor, e.g. "blk.3.attn_q.weight"
  std::vector<int64_t> shape;  // HF (row-major) shape: (out, in) for a linear's weight, (n) otherwise
  BlockPart part = BlockPart::Q;
  TensorRole role = TensorRole::Weight;
  int64_t expert = -1;  // the expert of an Expert* part

  bool is_linear() const { return linear_index() >= 0; }
  // Index into block_linears (0 q .. 6 down, then 3 per expert), -1 for a norm or the router.
  int linear_index() const;
  // A linear's weight matrix: what the quantizers work on. Biases and norms are copied.
  bool quantizable() const { return is_linear() && role == TensorRole::Weight; }
  int64_t numel() const;
};

// Every tensor layer `layer` has under config `c`, in HF module order.
std::vector<BlockTensorSpec> block_tensor_specs(const ModelConfig& c, int64_t layer);

// The buffer of `b` that spec `s` fills (a norm, or a linear's w or b).
Buffer& block_tensor_buffer(BlockWeights& b, const BlockTensorSpec& s);

// Layer `layer`'s BlockWeights with each linear's name, in and out set and no data: what loaders
// fill (through block_tensor_buffer), and what estimates made before any block is read look at.
BlockWeights block_shapes(const ModelConfig& c, int64_t layer);

// Bytes of the largest block's tensors as f32 (blocks differ where some are MoE and some dense).
uint64_t block_f32_bytes(const ModelConfig& c);
// The layer whose block has the most bytes (the first of equals): what memory estimates size for.
int64_t largest_block_layer(const ModelConfig& c);

// The GGUF suffix (after "blk.N.") of a block tensor's HF suffix (after "model.layers.N.") under
// config c, e.g. "self_attn.o_proj.bias" -> "attn_output.bias"; "" when llama.cpp has no name
// for it.
std::string gguf_block_suffix(std::string_view hf_suffix, const ModelConfig& c);

// Rows of the fused linear in `slot` (Q: qkv_proj, Gate: gate_up_proj) that each logical
// projection takes: {q, k, v} or {gate, up}, as (first row, rows).
struct RowRange {
  int64_t row0 = 0, rows = 0;
};
RowRange fused_rows(const ModelConfig& c, BlockPart logical);

}  // namespace ar
