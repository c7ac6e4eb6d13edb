// A GGUF model file as a Decoder's weight source: each tensor is dequantized (any block format)
// when a pass reaches it, the llama q/k row permutation and Gemma's 1 + w norms are undone, so the
// blocks come out in HF layout exactly like a safetensors folder's.
#pragma once
#include <filesystem>
#include <memory>
#include <optional>

#include "model/config.h"
#include "model/weights.h"

namespace ar {

class GgufReader;

// The GGUF model a --model path names: the path itself when it is a .gguf file; for a folder
// without safetensors weights, its only .gguf file (several: ar::Error listing them); otherwise
// nullopt (a HF folder).
std::optional<std::filesystem::path> find_gguf_model(const std::filesystem::path& path);

// Takes ownership of the reader; `c` is the model's config (gguf_model_config). Checks the
// embedding, output and final norm tensors up front.
std::unique_ptr<WeightSource> make_gguf_source(std::unique_ptr<GgufReader> r, const ModelConfig& c);

}  // namespace ar
