// ModelConfig of a GGUF model file, from its metadata (llama.cpp's <arch>.* keys) and tensor list,
// so a GGUF file evaluates without the HF folder it came from.
#pragma once
#include "model/config.h"

namespace ar {

class GgufReader;

// Architectures "llama" (Mixtral when it has expert_count), "qwen2", "qwen3", "gemma3", "phi3",
// "qwen3moe" (layers without ffn_gate_inp are mlp_only_layers). Hyper-parameters come from the <arch>.* keys (integers
// of any GGUF integer type), the vocabulary size from token_embd's shape, tied embeddings from the
// absence of output.weight, attention biases from blk.0.attn_q.bias, mlp biases from
// blk.0.ffn_up.bias, llama3 rope scaling from the rope_freqs tensor. Throws ar::Error naming the file and the key for anything missing or invalid.
ModelConfig gguf_model_config(const GgufReader& r);

}  // namespace ar
