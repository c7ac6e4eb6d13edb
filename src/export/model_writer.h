// ModelWriter: the one interface every output format implements (auto_round / auto_gptq / fake
// folders, GGUF files). The run feeds each writer block by block, in the order of
// output_tensor_order: add_block with all of a block's source tensors and what quantizing the
// block produced, then add_copy for the tensors outside the blocks, then finish. Until finish
// returns nothing looks like a complete output; a writer destroyed unfinished leaves none.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/weights.h"
#include "quant/block_result.h"

namespace ar {

// What a writer stored quantized, for the report's layer count and bits per weight.
struct QuantStats {
  int64_t layers = 0;
  double bits = 0;     // stored bits of the quantized linears (codes, scales, zeros / block bytes)
  double weights = 0;  // their weight count
};

class ModelWriter {
 public:
  virtual ~ModelWriter() = default;

  // tensors: the block's source tensors (HF names, writer order). r: the block's results. w: the
  // block's f32 weights as the step left them (see BlockResult::tuned); writers that encode
  // weights themselves (GGUF) need them, the others ignore them (may be null then).
  virtual void add_block(const std::vector<std::string>& tensors, const BlockResult& r,
                         const BlockWeights* w) = 0;
  virtual bool needs_block_weights() const = 0;
  // Bytes add_block holds at once beyond what it is given (for the memory plan), for a block
  // with these source tensors.
  virtual uint64_t block_buffer_bytes(const std::vector<std::string>& tensors) const {
    (void)tensors;
    return 0;
  }
  // A source tensor outside the blocks (embedding, final norm, lm_head), converted as the
  // format stores it; tensors the format leaves out are skipped.
  virtual void add_copy(const std::string& tensor) = 0;
  virtual void finish() = 0;

  virtual const std::filesystem::path& output_path() const = 0;  // folder or file, for the report
  virtual std::filesystem::path eval_path() const = 0;           // what `eval` reads back
  // GGUF writers count their own block bytes; integer ones count the integer results.
  virtual bool is_gguf() const = 0;
  virtual QuantStats stats() const = 0;
};

}  // namespace ar
