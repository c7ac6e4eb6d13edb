// The work directory of a quantize run: where it is, what identifies the run that owns a
// checkpoint there, which files are ours, and the guard that cleans up after a failed run.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ar {

struct QuantizeOptions;
struct ModelConfig;
class SafetensorsReader;

// <output_dir>.autoround_work beside the output.
std::filesystem::path default_work_dir(const std::filesystem::path& output_dir);

// Everything that determines the output bytes; a resumed run must agree on all of it.
nlohmann::json run_identity(const QuantizeOptions& opt, const ModelConfig& cfg, const SafetensorsReader& src,
                            const std::vector<std::vector<int32_t>>& calib);

// Activation cache files of generation `block` ("X.3.f32") and a block's result file.
std::string cache_file(const char* what, int64_t block);
std::string block_file(int64_t block);

// Our files only: the work dir may be a folder the user shares with other things. The dir
// itself goes when it is then empty.
void remove_work_files(const std::filesystem::path& dir);
uint64_t dir_bytes(const std::filesystem::path& dir);

// A failed run keeps its work dir only when it holds a checkpoint that --resume can continue
// from; the caches of a run that never finished a block are worth nothing and are removed.
class WorkDirGuard {
 public:
  WorkDirGuard(std::filesystem::path dir, std::function<void(const std::string&)> log)
      : dir_(std::move(dir)), log_(std::move(log)) {}
  WorkDirGuard(const WorkDirGuard&) = delete;
  WorkDirGuard& operator=(const WorkDirGuard&) = delete;
  void release() { armed_ = false; }
  ~WorkDirGuard();

 private:
  std::filesystem::path dir_;
  std::function<void(const std::string&)> log_;
  bool armed_ = true;
};

}  // namespace ar
