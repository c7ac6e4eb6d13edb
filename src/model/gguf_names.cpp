// HF <-> GGUF tensor names (a block's modules are named in block_specs.cpp) and the llama q/k row
// permutation (facts from llama.cpp's convert_hf_to_gguf.py; our own implementation).
#include "model/gguf_names.h"

#include <cstring>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "model/block_specs.h"

namespace ar {

std::string gguf_tensor_name(const std::string& hf, const ModelConfig& c) {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  constexpr std::string_view prefix = "model.layers.";
  if (!hf.starts_with(prefix)) return "";
  size_t i = prefix.size(), j = i;
  while (j < hf.size() && hf[j] >= '0' && hf[j] <= '9') ++j;
  if (j == i || j >= hf.size() || hf[j] != '.' || j - i > 9) return "";
  const std::string suffix = gguf_block_suffix(std::string_view(hf).substr(j + 1), c);
  if (suffix.empty()) return "";
  return cat("blk.", hf.substr(i, j - i), ".", suffix);
}

double gguf_gemma3_query_scalar(int64_t n_layer, int64_t hidden_size, int64_t n_head, int64_t head_dim) {
  return n_layer == 62 ? double(hidden_size / n_head) : double(head_dim);
}

bool gguf_permutes_qk(Arch arch) { return arch == Arch::Llama || arch == Arch::Mistral || arch == Arch::Mixtral; }

void gguf_permute_qk_row_bytes(void* data, int64_t n_head, int64_t head_dim, size_t row_bytes, bool to_gguf) {
  AR_CHECK(n_head > 0 && head_dim > 0 && head_dim % 2 == 0 && row_bytes > 0, "permute ", n_head, "x", head_dim);
  const int64_t half = head_dim / 2;
  std::vector<uint8_t> head(size_t(head_dim) * row_bytes);
  for (int64_t h = 0; h < n_head; ++h) {
    uint8_t* base = static_cast<uint8_t*>(data) + size_t(h * head_dim) * row_bytes;
    std::memcpy(head.data(), base, head.size());
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < half; ++j) {
        const int64_t hf_row = i * half + j, gguf_row = 2 * j + i;
        const int64_t dst = to_gguf ? gguf_row : hf_row, src = to_gguf ? hf_row : gguf_row;
        std::memcpy(base + size_t(dst) * row_bytes, head.data() + size_t(src) * row_bytes, row_bytes);
      }
  }
}

void gguf_permute_qk_rows(float* w, int64_t n_head, int64_t head_dim, int64_t cols, bool to_gguf) {
  AR_CHECK(cols > 0, "permute with ", cols, " columns");
  gguf_permute_qk_row_bytes(w, n_head, head_dim, size_t(cols) * sizeof(float), to_gguf);
}

}  // namespace ar
