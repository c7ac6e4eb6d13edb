#include "pipeline/work_dir.h"

#include <optional>

#include "core/checksum.h"
#include "core/log.h"
#include "export/quantized_writer.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "pipeline/checkpoint.h"
#include "pipeline/quantize.h"
#include "pipeline/run_setup.h"

namespace ar {

std::filesystem::path default_work_dir(const std::filesystem::path& output_dir) {
  std::filesystem::path out = std::filesystem::absolute(output_dir).lexically_normal();
  if (!out.has_filename()) out = out.parent_path();
  return out.parent_path() / (out.filename().string() + ".autoround_work");
}

std::string cache_file(const char* what, int64_t block) { return cat(what, ".", block, ".f32"); }
std::string block_file(int64_t block) { return cat("block.", block, ".q"); }

nlohmann::json run_identity(const QuantizeOptions& opt, const ModelConfig& cfg, const SafetensorsReader& src,
                            const std::vector<std::vector<int32_t>>& calib) {
  nlohmann::json j;
  j["model"] = std::filesystem::absolute(opt.model_dir).lexically_normal().string();
  uint64_t tensors = 0;
  for (const auto& name : output_tensor_order(src)) tensors = checksum64(name.data(), name.size(), tensors);
  j["model_tensors"] = checksum_hex(tensors);
  j["layers"] = cfg.num_hidden_layers;
  j["bits"] = opt.scheme.bits;
  j["group_size"] = opt.scheme.group_size;
  j["sym"] = opt.scheme.sym;
  // Only when set: a checkpoint of an integer run made before data types existed stays resumable.
  if (opt.scheme.is_fp()) j["data_type"] = data_type_name(opt.scheme.data_type);
  j["layer_config"] = opt.layer_config;
  // A config file may be edited between the interrupted run and the resume: its content counts.
  if (layer_config_is_file(opt)) {
    const std::string text = read_text_file(opt.layer_config);
    j["layer_config_content"] = checksum_hex(checksum64(text.data(), text.size()));
  }
  j["disable_opt_rtn"] = opt.disable_opt_rtn;
  j["iters"] = opt.tune.iters;
  j["batch_size"] = opt.tune.batch_size;
  j["gradient_accumulate_steps"] = opt.tune.gradient_accumulate_steps;
  j["lr"] = opt.tune.lr;
  j["minmax_lr"] = opt.tune.minmax_lr;
  j["enable_minmax_tuning"] = opt.tune.enable_minmax_tuning;
  j["clamp_grad"] = opt.tune.clamp_grad == ClampGrad::Strict ? "strict" : "inclusive";
  j["nvfp4_fused_global_scale"] = opt.tune.nvfp4_fused_global_scale;
  j["gguf_minmax_tuning"] = opt.gguf_minmax_tuning;
  j["seed"] = opt.tune.seed;
  j["tune_precision"] = int(opt.tune.precision);
  j["precision"] = int(opt.precision);
  j["enable_quanted_input"] = opt.enable_quanted_input;
  j["nsamples"] = opt.nsamples;
  j["seqlen"] = opt.seqlen;
  uint64_t ids = 0;
  for (const auto& s : calib) ids = checksum64(s.data(), s.size() * sizeof(int32_t), ids);
  j["calibration_ids"] = checksum_hex(ids);
  j["formats"] = opt.formats;
  j["max_shard_bytes"] = opt.max_shard_bytes;
  // Data parallelism: the partitions decide the batches; the processes, which shard of the
  // calibration caches each work dir holds (the ids above are this process's shard).
  j["partitions"] = opt.tune.partitions;
  j["processes"] = opt.comm ? opt.comm->size() : 1;
  return j;
}

void remove_work_files(const std::filesystem::path& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> ours;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n == kManifestName || n == kPrevManifestName || ((n.starts_with("X.") || n.starts_with("Xq.")) && n.ends_with(".f32")) ||
        (n.starts_with("block.") && n.ends_with(".q")))
      ours.push_back(e.path());
  }
  for (const auto& p : ours) std::filesystem::remove(p, ec);
  std::filesystem::remove(dir, ec);  // only if now empty
}

uint64_t dir_bytes(const std::filesystem::path& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) n += e.file_size(ec);
  return n;
}

WorkDirGuard::~WorkDirGuard() {
  if (!armed_) return;
  try {
    if (std::optional<CheckpointManifest> m = read_manifest(dir_)) {
      log_(cat("note: the checkpoint in ", dir_.string(), " is kept (", m->next_block,
               " block(s) finished): rerun with the same options and --resume to continue, or delete it"));
      return;
    }
  } catch (const std::exception&) {
    return;  // an unreadable checkpoint is the user's to inspect, not ours to delete
  }
  remove_work_files(dir_);
}

}  // namespace ar
