// Resumable runs (--resume): after each finished block the work directory holds what the rest of
// the run needs — that block's quantized tensors, the activation caches for the next block, and a
// manifest naming them with their checksums and the identity of the run. The manifest is replaced
// atomically and written last, so a crash at any moment (kill -9 included) leaves the previous
// consistent checkpoint. Sampling needs no saved state: each block's sampler is seeded afresh.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/ggml_type.h"
#include "quant/block_result.h"

namespace ar {

struct CheckpointManifest {
  nlohmann::json identity;       // everything that determines the output; a resume must match it
  int64_t next_block = 0;        // blocks [0, next_block) are finished
  std::string x_file, xq_file;   // caches for block next_block (file names in the work dir; "" = none)
  std::vector<uint64_t> x_sums, xq_sums;  // per-sample checksums
  std::vector<std::string> block_files;   // per finished block
  std::vector<uint64_t> block_sums;
  // A data-parallel rank other than 0: its shard's caches only (rank 0 keeps the block files).
  bool caches_only = false;
};

constexpr const char* kManifestName = "checkpoint.json";
// Data-parallel runs: the manifest before the current one. The ranks write theirs one after the
// other, so a crash between two of them leaves some ranks a block ahead; a resume starts from the
// block every rank has, which for those is the previous manifest (its caches are still there:
// no rank removes a generation before every rank has written the next).
constexpr const char* kPrevManifestName = "checkpoint.prev.json";

// keep_previous: the current manifest becomes kPrevManifestName first (renamed: atomic).
void write_manifest(const std::filesystem::path& work_dir, const CheckpointManifest& m, bool keep_previous = false);
// nullopt when the work dir has no manifest `name`; ar::Error naming the file when it is malformed.
std::optional<CheckpointManifest> read_manifest(const std::filesystem::path& work_dir,
                                                const char* name = kManifestName);
// Throws ar::Error naming the first field that differs ("... was made with iters=200, this run has 100").
void check_identity(const std::filesystem::path& work_dir, const nlohmann::json& saved, const nlohmann::json& now);

// One block's result (every format's outputs are rebuilt from it on --resume). save returns the
// file's checksum; load verifies it and the structure and throws ar::Error naming the file on
// any mismatch.
uint64_t save_block_result(const std::filesystem::path& file, const BlockResult& r);
BlockResult load_block_result(const std::filesystem::path& file, uint64_t expected_sum);

}  // namespace ar
