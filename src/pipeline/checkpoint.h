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
#include "quant/quantized.h"

namespace ar {

struct CheckpointManifest {
  nlohmann::json identity;       // everything that determines the output; a resume must match it
  int64_t next_block = 0;        // blocks [0, next_block) are finished
  std::string x_file, xq_file;   // caches for block next_block (file names in the work dir; "" = none)
  std::vector<uint64_t> x_sums, xq_sums;  // per-sample checksums
  std::vector<std::string> block_files;   // per finished block
  std::vector<uint64_t> block_sums;
  // GGUF outputs: per finished block, the checksum of its GGUF tensor file (block.<k>.gguf);
  // empty when the run writes no GGUF.
  std::vector<uint64_t> gguf_block_sums;
};

constexpr const char* kManifestName = "checkpoint.json";

void write_manifest(const std::filesystem::path& work_dir, const CheckpointManifest& m);
// nullopt when the work dir has no manifest; ar::Error naming the file when it is malformed.
std::optional<CheckpointManifest> read_manifest(const std::filesystem::path& work_dir);
// Throws ar::Error naming the first field that differs ("... was made with iters=200, this run has 100").
void check_identity(const std::filesystem::path& work_dir, const nlohmann::json& saved, const nlohmann::json& now);

// One block's quantized linears, by layer name. save returns the file's checksum; load verifies it
// (and the structure) and throws ar::Error naming the file on any mismatch.
uint64_t save_block_result(const std::filesystem::path& file, const std::map<std::string, QuantizedWeight>& q);
std::map<std::string, QuantizedWeight> load_block_result(const std::filesystem::path& file, uint64_t expected_sum);

// One tensor of a block as a GGUF output wrote it: which output (index among the run's GGUF
// formats), the HF tensor name, and its bytes in the GGUF type.
struct GgufBlockTensor {
  uint32_t output = 0;
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<uint8_t> bytes;
};
// The GGUF tensors of one block, in order; same checksum and error contract as save_block_result.
uint64_t save_gguf_block(const std::filesystem::path& file, const std::vector<GgufBlockTensor>& t);
std::vector<GgufBlockTensor> load_gguf_block(const std::filesystem::path& file, uint64_t expected_sum);

}  // namespace ar
