// GGUF metadata for an exported model: the architecture hyper-parameters (general.*, <arch>.*)
// and the tokenizer vocabulary (tokenizer.ggml.*), built from a HF model folder the way
// llama.cpp's convert_hf_to_gguf.py does (facts taken from it; keys, value types and token-type
// numbering are llama.cpp's), so llama.cpp loads the file as if it had converted the model itself.
//
// Deliberate differences from convert_hf_to_gguf.py:
// - general.alignment is always written (llama.cpp's converter omits it and relies on the
//   default 32); readers treat both the same.
// - tokenizer.ggml.pre for byte-level BPE is chosen from the pre-tokenizer regex in
//   tokenizer.json (the converter hashes the tokenization of a probe text with HF tokenizers);
//   unknown regexes are an error rather than a guess.
// - llama3 rope scaling is not a KV in llama.cpp but a rope_freqs tensor; gguf_rope_freqs() gives
//   its values for the exporter to write.
// - Added tokens whose text HF would normalise on decode are written as they appear in
//   tokenizer.json (the converter round-trips them through transformers).
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/gguf.h"
#include "model/config.h"

namespace ar {

// llama_ftype values for general.file_type (llama.h): the tensor type most weights have.
enum class GgufFileType : uint32_t {
  ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_Q4_0 = 2, MOSTLY_Q4_1 = 3, MOSTLY_Q8_0 = 7, MOSTLY_Q5_0 = 8,
  MOSTLY_Q5_1 = 9, MOSTLY_Q2_K = 10, MOSTLY_Q3_K_S = 11, MOSTLY_Q3_K_M = 12, MOSTLY_Q3_K_L = 13,
  MOSTLY_Q4_K_S = 14, MOSTLY_Q4_K_M = 15, MOSTLY_Q5_K_S = 16, MOSTLY_Q5_K_M = 17, MOSTLY_Q6_K = 18,
  MOSTLY_Q2_K_S = 21, MOSTLY_BF16 = 32,
};

// "q4_k_m" / "Q4_K_M" / "f16" ... (llama-quantize's names) -> the file type; nullopt if unknown.
std::optional<GgufFileType> parse_gguf_file_type(std::string_view name);
std::string_view gguf_file_type_name(GgufFileType t);  // "Q4_K_M", "F32", ...
// ggml's quantization format version (GGML_QNT_VERSION), stated in files with quantized tensors.
inline constexpr uint32_t kGgmlQuantizationVersion = 2;

struct GgufMetaOptions {
  GgufFileType file_type = GgufFileType::ALL_F32;
  std::string name;                          // general.name; empty: the model folder's name
  uint32_t alignment = kGgufDefaultAlignment;  // general.alignment (power of two)
};

// llama.cpp's architecture name: Llama, Mistral and Mixtral -> "llama", Qwen2 -> "qwen2",
// Qwen3 -> "qwen3", Gemma3 -> "gemma3", Phi3 -> "phi3", Qwen3Moe -> "qwen3moe".
std::string gguf_arch_name(Arch arch);

// general.architecture, general.name, <arch>.{context_length, embedding_length, block_count,
// feed_forward_length, attention.head_count, attention.head_count_kv, attention.key_length,
// attention.value_length, rope.dimension_count, rope.freq_base, attention.layer_norm_rms_epsilon,
// vocab_size}, rope.scaling.{type,factor} for linear scaling; gemma3: attention.sliding_window,
// attention.sliding_window_pattern (one bool per layer), rope.freq_base_swa,
// final_logit_softcapping (and a warning when query_pre_attn_scalar is not what llama.cpp will
// use); phi3: rope.scaling.original_context_length, attention.sliding_window (0 = none);
// general.quantization_version
// (quantized file types only, as llama-quantize writes it), general.file_type, general.alignment. `model_dir` gives the default name. Throws ar::Error for values that do not
// fit the GGUF types (u32).
std::vector<GgufKV> gguf_model_kvs(const ModelConfig& c, const std::filesystem::path& model_dir,
                                   const GgufMetaOptions& o);

// tokenizer.ggml.* from <dir>/tokenizer.json (+ tokenizer_config.json, and config.json and
// tokenizer.model when present). SentencePiece-style BPE (byte fallback, "▁" metaspace) gives
// model "llama" with tokens, scores and token types (scores from tokenizer.model when present,
// as llama.cpp takes them; else rebuilt from the vocabulary order, which is how SentencePiece
// BPE scores its pieces); byte-level BPE gives model "gpt2" with tokens, token types, merges and
// the pre-tokenizer name. Then bos/eos/unknown/seperator/padding/mask ids, add_bos/add_eos,
// add_space_prefix (llama only) and chat_template when the folder states them.
// `n_vocab`: the model's vocab_size (ids past the tokenizer's are padded as "[PADi]", unused);
// 0 means the tokenizer's own size.
std::vector<GgufKV> gguf_tokenizer_kvs(const std::filesystem::path& dir, int64_t n_vocab, Arch arch);

// Both lists, model keys first: the whole metadata of a GGUF export of the model in `model_dir`.
std::vector<GgufKV> gguf_metadata(const std::filesystem::path& model_dir, const GgufMetaOptions& o);

// Per-frequency divisors of llama3-style rope scaling (head_dim / 2 values), as llama.cpp
// expects them in the "rope_freqs.weight" F32 tensor; empty when the model has no llama3 scaling.
std::vector<float> gguf_rope_freqs(const ModelConfig& c);

// Token types (llama_token_type / gguf TokenType numbering).
enum class GgufTokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

}  // namespace ar
