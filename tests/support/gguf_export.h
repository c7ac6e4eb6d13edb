// A whole HF folder through the GGUF writer with every tensor copied (no block results): the
// mix's RTN of each tensor. For export tests; header-only (the export test binary links it).
#pragma once
#include <filesystem>
#include <string>

#include "export/gguf_model_writer.h"
#include "io/safetensors.h"
#include "model/config.h"

namespace ar::test {

inline std::filesystem::path export_gguf(const std::filesystem::path& model, const std::filesystem::path& out,
                                         GgufMix mix) {
  const ModelConfig cfg = load_model_config(model);
  const SafetensorsReader st = SafetensorsReader::open(model);
  GgufModelWriter w(model, out, mix, st, cfg, /*overwrite=*/true);
  for (const std::string& n : w.hf_order()) w.add_copy(n);
  w.finish();
  return w.path();
}

}  // namespace ar::test
