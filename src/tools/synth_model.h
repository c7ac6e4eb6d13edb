// Synthetic HuggingFace model folders: random weights with the exact tensor names and shapes of a
// given config.json (Llama / Mistral / Qwen2 / Qwen3 decoders), sharded like real checkpoints, plus
// a small byte-level BPE tokenizer. For demos and benchmarks at real model sizes without downloads.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/safetensors_writer.h"

namespace ar {

struct SynthOptions {
  std::filesystem::path output_dir;
  nlohmann::json config;  // a full HF config.json (architectures, sizes, ...)
  DType dtype = DType::BF16;
  uint64_t max_shard_bytes = 5'000'000'000ull;
  uint64_t seed = 0;
  bool overwrite = false;  // replace an existing model folder (one holding config.json) or empty dir
  int max_merges = 400;    // tokenizer merges to learn (fewer if the config's vocab is smaller)
};

// "tiny", "tiny-qwen3", "tiny-qwen2", "qwen3-0.6b", "qwen3-4b", "qwen2.5-0.5b", "llama-3.2-1b".
std::vector<std::string> synth_preset_names();
// The preset's config.json object; throws ar::Error listing the valid names.
nlohmann::json synth_preset_config(const std::string& name);
// Sets num_hidden_layers and keeps per-layer lists (layer_types, max_window_layers) consistent.
void synth_set_num_layers(nlohmann::json& config, int64_t n_layers);

// Every tensor the config's architecture needs, in module order (embedding, layer 0 .. N-1, final
// norm, lm_head unless tied), with HF names and shapes. Throws ar::Error on an unusable config.
std::vector<TensorSpec> synth_tensor_specs(const nlohmann::json& config, DType dtype);

// Writes the whole folder (weights, config.json, generation_config.json, tokenizer files) into a
// temporary sibling folder and renames it into place when complete. Memory stays a few MiB.
void generate_synthetic_model(const SynthOptions& opt);

}  // namespace ar
