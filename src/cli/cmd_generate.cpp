// `autoround generate`: writes a random-weight HF model folder (a preset or a given config.json)
// with a small byte-level BPE tokenizer, for demos and benchmarks. See tools/synth_model.h.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/timer.h"
#include "io/file.h"
#include "tools/synth_model.h"

namespace ar::cli {

namespace {

struct GenerateOptions {
  std::string preset;
  std::string config_file;
  int64_t num_layers = 0;  // 0: keep the config's
  std::string output_dir;
  std::string dtype = "bf16";
  std::string max_shard_size = "5GB";
  uint64_t seed = 0;
  bool overwrite = false;
};

void run_generate(const GenerateOptions& o) {
  if (o.preset.empty() == o.config_file.empty()) AR_THROW("generate: give exactly one of --preset or --config");
  SynthOptions s;
  if (!o.preset.empty()) {
    s.config = synth_preset_config(o.preset);
  } else {
    try {
      s.config = nlohmann::json::parse(read_text_file(o.config_file, 16ull << 20));
    } catch (const nlohmann::json::exception& e) {
      AR_THROW(o.config_file, ": invalid JSON: ", e.what());
    }
    if (!s.config.is_object()) AR_THROW(o.config_file, ": not a JSON object");
  }
  if (o.num_layers != 0) synth_set_num_layers(s.config, o.num_layers);
  if (o.dtype == "bf16") s.dtype = DType::BF16;
  else if (o.dtype == "f16") s.dtype = DType::F16;
  else if (o.dtype == "f32") s.dtype = DType::F32;
  else AR_THROW("--dtype: '", o.dtype, "' is not one of bf16, f16, f32");
  s.max_shard_bytes = parse_bytes(o.max_shard_size, "--max_shard_size");
  s.output_dir = o.output_dir;
  s.seed = o.seed;
  s.overwrite = o.overwrite;
  Timer t;
  generate_synthetic_model(s);
  std::fprintf(stderr, "generated %s in %.1f s\n", o.output_dir.c_str(), t.seconds());
  print_peak_memory();
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  auto* sub = app.add_subcommand("generate", "Write a random-weight HF model folder (weights, config, tokenizer)");
  std::string presets;
  for (const auto& n : synth_preset_names()) presets += (presets.empty() ? "" : ", ") + n;
  auto* preset = sub->add_option("--preset", o->preset, "Built-in config: " + presets);
  auto* config = sub->add_option("--config", o->config_file, "A HF config.json to take the shapes from");
  preset->excludes(config);
  sub->add_option("--num_layers", o->num_layers, "Override num_hidden_layers");
  sub->add_option("--output_dir", o->output_dir, "Folder to create")->required();
  sub->add_option("--dtype", o->dtype, "Weight dtype: bf16, f16 or f32")->capture_default_str();
  sub->add_option("--max_shard_size", o->max_shard_size, "Largest shard, e.g. 5GB, 500MB")->capture_default_str();
  sub->add_option("--seed", o->seed, "Random seed")->capture_default_str();
  sub->add_flag("--overwrite", o->overwrite, "Replace an existing model folder");
  sub->callback([o] { run_generate(*o); });
}

}  // namespace ar::cli
