// How a HF decoder model's tensors are named and laid out in a GGUF file (llama.cpp's
// convert_hf_to_gguf.py conventions): the HF -> GGUF name map, and the q/k row order of
// llama.cpp's `llama` architecture. Shared by the GGUF exporter and the GGUF weight source.
#pragma once
#include <cstdint>
#include <string>

#include "model/config.h"

namespace ar {

// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight", "model.embed_tokens.weight"
// -> "token_embd.weight", "model.norm.weight" -> "output_norm.weight", "lm_head.weight" ->
// "output.weight"; "" for a tensor llama.cpp has no name for. Block names depend on the
// architecture (c: e.g. Gemma3's post_attention_layernorm, Phi3's fused qkv_proj).
std::string gguf_tensor_name(const std::string& hf_name, const ModelConfig& c);

// The query_pre_attn_scalar llama.cpp's gemma3 graph implies (it has no GGUF key for it): scores
// are scaled by 1/sqrt(hidden_size / heads) for its 62-layer model (Gemma 3 27B) and by
// 1/sqrt(head_dim) for every other size.
double gguf_gemma3_query_scalar(int64_t n_layer, int64_t hidden_size, int64_t n_head, int64_t head_dim);

// llama.cpp runs `llama` models (Llama, Mistral, Mixtral) with RoPE on adjacent pairs, so the converter
// reorders q/k rows from HF's rotate-half order; qwen2/qwen3, gemma3 and phi3 use the rotate-half
// (NEOX) mode and keep HF's order.
bool gguf_permutes_qk(Arch arch);

// Reorders the rows of a q or k projection, (n_head * head_dim, cols) row-major, in place (a bias
// is cols = 1). Within each head, HF row i * head_dim/2 + j (i in {0, 1}) is GGUF row 2j + i.
// to_gguf: HF -> GGUF order; false: back. n_head is the number of heads the rows belong to
// (num_key_value_heads for k).
void gguf_permute_qk_rows(float* w, int64_t n_head, int64_t head_dim, int64_t cols, bool to_gguf);
// The same on rows of row_bytes bytes each: a quantized projection's rows in a GGUF block type
// (a row's blocks run along the input dimension, so quantizing and reordering rows commute).
void gguf_permute_qk_row_bytes(void* data, int64_t n_head, int64_t head_dim, size_t row_bytes, bool to_gguf);

}  // namespace ar
