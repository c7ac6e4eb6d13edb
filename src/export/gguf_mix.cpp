// Per-tensor type choice of the GGUF mixes, after llama.cpp's llama-quant.cpp (only the branches
// that concern the mixes below; the IQ / MXFP4 / TQ mixes are not offered). Layer-position rules
// use counters over the tensors in llama.cpp's order (by block number, then name), so a model
// with one attn_v / ffn_down per block sees counter == block index, as in llama.cpp.
#include "export/gguf_mix.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <numeric>

#include "core/error.h"

namespace ar {

namespace {

// file_type ids from llama.h (llama_ftype).
constexpr std::array<GgufMixInfo, 18> kMixes = {{
    {GgufMix::F32, "f32", 0, GgmlType::F32, "all tensors F32"},
    {GgufMix::F16, "f16", 1, GgmlType::F16, "2-D weights F16"},
    {GgufMix::BF16, "bf16", 32, GgmlType::BF16, "2-D weights BF16"},
    {GgufMix::Q4_0, "q4_0", 2, GgmlType::Q4_0, "Q4_0, output Q6_K"},
    {GgufMix::Q4_1, "q4_1", 3, GgmlType::Q4_1, "Q4_1, output Q6_K"},
    {GgufMix::Q5_0, "q5_0", 8, GgmlType::Q5_0, "Q5_0, output Q6_K"},
    {GgufMix::Q5_1, "q5_1", 9, GgmlType::Q5_1, "Q5_1, output Q6_K"},
    {GgufMix::Q8_0, "q8_0", 7, GgmlType::Q8_0, "Q8_0 throughout"},
    {GgufMix::Q2_K, "q2_k", 10, GgmlType::Q2_K, "Q2_K; attn_v, attn_output, ffn_down Q3_K (or Q4_K)"},
    {GgufMix::Q2_K_S, "q2_k_s", 21, GgmlType::Q2_K, "Q2_K; first eighth of ffn_down Q4_K (llama.cpp wants an imatrix)"},
    {GgufMix::Q3_K_S, "q3_k_s", 11, GgmlType::Q3_K, "Q3_K throughout"},
    {GgufMix::Q3_K_M, "q3_k_m", 12, GgmlType::Q3_K, "Q3_K; attn_v Q5_K/Q4_K, attn_output, ffn_down Q4_K"},
    {GgufMix::Q3_K_L, "q3_k_l", 13, GgmlType::Q3_K, "Q3_K; attn_v, attn_output, ffn_down Q5_K"},
    {GgufMix::Q4_K_S, "q4_k_s", 14, GgmlType::Q4_K, "Q4_K; first attn_v and ffn_down Q5_K"},
    {GgufMix::Q4_K_M, "q4_k_m", 15, GgmlType::Q4_K, "Q4_K; half of attn_v and ffn_down Q6_K"},
    {GgufMix::Q5_K_S, "q5_k_s", 16, GgmlType::Q5_K, "Q5_K throughout"},
    {GgufMix::Q5_K_M, "q5_k_m", 17, GgmlType::Q5_K, "Q5_K; half of attn_v and ffn_down Q6_K"},
    {GgufMix::Q6_K, "q6_k", 18, GgmlType::Q6_K, "Q6_K throughout"},
}};

enum class Category { TokenEmbd, AttnQ, AttnK, AttnV, AttnQkv, AttnKvB, AttnOutput, FfnUp, FfnGate, FfnDown, Output, Other };

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

Category category_of(std::string_view name) {
  if (name == "output.weight") return Category::Output;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") return Category::TokenEmbd;
  if (contains(name, "attn_qkv.weight")) return Category::AttnQkv;
  if (contains(name, "attn_kv_b.weight")) return Category::AttnKvB;
  if (contains(name, "attn_v.weight")) return Category::AttnV;
  if (contains(name, "attn_k.weight")) return Category::AttnK;
  if (contains(name, "attn_q.weight")) return Category::AttnQ;
  if (contains(name, "attn_output.weight")) return Category::AttnOutput;
  if (contains(name, "ffn_up")) return Category::FfnUp;
  if (contains(name, "ffn_gate")) return Category::FfnGate;
  if (contains(name, "ffn_down")) return Category::FfnDown;
  return Category::Other;
}

bool is_attn_v_like(Category c) { return c == Category::AttnV || c == Category::AttnQkv || c == Category::AttnKvB; }

int n_dims(const std::vector<int64_t>& shape) {
  int n = 1;
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] > 1) n = int(i) + 1;
  return n;
}

// Tensors llama.cpp never quantizes: 1-D, not a "...weight", norms, MoE routers and a few small
// architecture-specific matrices (kept for other architectures' names passing through).
bool allows_quantization(const GgufMixTensor& t) {
  if (n_dims(t.shape) < 2) return false;
  const std::string_view name = t.name;
  if (!name.ends_with("weight")) return false;
  static constexpr std::string_view kNever[] = {
      "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
      "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight", "time_mix_first.weight",
      "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
      "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
      "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
      "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
      ".patch_merger", "a.rvq.codebook", "mm.a.code_embd"};
  for (std::string_view part : kNever)
    if (contains(name, part)) return false;
  return name != "position_embd.weight" && name != "token_types.weight";
}

// Block index of "blk.<i>.<...>", -1 for tensors outside the blocks.
int block_index(const std::string& name) {
  int i = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &i) != 1) return -1;
  return i;
}

// More bits for the first and last eighth of the layers and every third layer in between.
bool use_more_bits(int i_layer, int n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

struct MixState {
  GgufMix mix;
  const GgufMixModel& model;
  bool tied_embeddings = true;
  bool is_70b = false;
  bool falcon = false;
  int n_gqa = 1;
  int n_attn_v = 0, i_attn_v = 0;
  int i_ffn_down = 0;
};

// A counter-based layer index, except for MoE models, where expert tensors are not in layer order
// and the block number is read from the name.
int layer_of(const MixState& s, int counter, const std::string& name) {
  if (s.model.n_expert <= 1) return counter;
  const int i = block_index(name);
  if (i < 0 || i >= s.model.n_layer)
    AR_THROW("GGUF mix: cannot tell the layer of tensor '", name, "' (model has ", s.model.n_layer, " layers)");
  return i;
}

// llama_tensor_get_type_impl for the mixes we offer; `t` starts as the mix's default type.
GgmlType promote(MixState& s, GgmlType t, const GgufMixTensor& tensor, Category cat) {
  const GgufMix m = s.mix;
  const int n_layer = s.model.n_layer;
  if (cat == Category::Output || (s.tied_embeddings && cat == Category::TokenEmbd)) {
    // The output projection (or the embedding it shares weights with) is the most sensitive matrix.
    if (s.falcon || tensor.shape[0] % ggml_info(t).block_elems != 0) return GgmlType::Q8_0;
    return t != GgmlType::Q8_0 ? GgmlType::Q6_K : t;
  }
  if (cat == Category::TokenEmbd) return t;
  if (is_attn_v_like(cat)) {
    const int i = s.i_attn_v++;
    if (m == GgufMix::Q2_K) t = s.n_gqa >= 4 ? GgmlType::Q4_K : GgmlType::Q3_K;
    else if (m == GgufMix::Q2_K_S && s.n_gqa >= 4) t = GgmlType::Q4_K;
    else if (m == GgufMix::Q3_K_M) t = i < 2 ? GgmlType::Q5_K : GgmlType::Q4_K;
    else if (m == GgufMix::Q3_K_L) t = GgmlType::Q5_K;
    else if ((m == GgufMix::Q4_K_M || m == GgufMix::Q5_K_M) && use_more_bits(i, s.n_attn_v)) t = GgmlType::Q6_K;
    else if (m == GgufMix::Q4_K_S && i < 4) t = GgmlType::Q5_K;
    // 70B: 8 query heads share each attn_v, so it is 8x smaller than attn_q and more bits are cheap.
    if (s.is_70b && (t == GgmlType::Q3_K || t == GgmlType::Q4_K)) t = GgmlType::Q5_K;
    if (s.model.n_expert == 8) t = GgmlType::Q8_0;
    return t;
  }
  if (cat == Category::AttnK) return s.model.n_expert == 8 ? GgmlType::Q8_0 : t;
  if (cat == Category::FfnDown) {
    const int i = layer_of(s, s.i_ffn_down++, tensor.name);
    if (m == GgufMix::Q2_K) t = GgmlType::Q3_K;
    else if (m == GgufMix::Q2_K_S) {
      if (i < n_layer / 8) t = GgmlType::Q4_K;
    } else if (m == GgufMix::Q3_K_M) {
      t = i < n_layer / 16 ? GgmlType::Q5_K
          : (!s.falcon || use_more_bits(i, n_layer)) ? GgmlType::Q4_K
                                                      : GgmlType::Q3_K;
    } else if (m == GgufMix::Q3_K_L) {
      t = s.falcon ? GgmlType::Q4_K : GgmlType::Q5_K;
    } else if (m == GgufMix::Q4_K_M) {
      if (s.falcon)
        t = i < n_layer / 16 ? GgmlType::Q6_K : use_more_bits(i, n_layer) ? GgmlType::Q5_K : GgmlType::Q4_K;
      else if (use_more_bits(i, n_layer))
        t = GgmlType::Q6_K;
    } else if (m == GgufMix::Q5_K_M && use_more_bits(i, n_layer)) {
      t = GgmlType::Q6_K;
    } else if (m == GgufMix::Q4_K_S && !s.falcon && i < n_layer / 8) {
      t = GgmlType::Q5_K;
    } else if ((m == GgufMix::Q4_0 || m == GgufMix::Q5_0) && s.model.has_imatrix && i < n_layer / 8) {
      t = m == GgufMix::Q4_0 ? GgmlType::Q4_1 : GgmlType::Q5_1;
    }
    return t;
  }
  if (cat == Category::AttnOutput) {
    if (!s.falcon) {
      if (s.model.n_expert == 8) {
        if (m == GgufMix::Q2_K || m == GgufMix::Q3_K_S || m == GgufMix::Q3_K_M || m == GgufMix::Q4_K_S ||
            m == GgufMix::Q4_K_M)
          t = GgmlType::Q5_K;
      } else if (m == GgufMix::Q2_K) {
        t = GgmlType::Q3_K;
      } else if (m == GgufMix::Q3_K_M) {
        t = GgmlType::Q4_K;
      } else if (m == GgufMix::Q3_K_L) {
        t = GgmlType::Q5_K;
      }
    } else if (m == GgufMix::Q3_K_L) {
      t = GgmlType::Q4_K;
    }
    return t;
  }
  if (cat == Category::AttnQkv) {
    if (m == GgufMix::Q3_K_M || m == GgufMix::Q3_K_L) t = GgmlType::Q4_K;
    else if (m == GgufMix::Q4_K_M) t = GgmlType::Q5_K;
    else if (m == GgufMix::Q5_K_M) t = GgmlType::Q6_K;
  }
  return t;
}

// A row length that does not divide the block size: the nearest 32-weight format, else F16.
GgufTensorType fall_back(const GgufMixTensor& tensor, GgmlType t) {
  const int64_t ncols = tensor.shape[0];
  if (ncols % ggml_info(t).block_elems == 0) return {t, false};
  GgmlType f;
  switch (t) {
    case GgmlType::Q2_K:
    case GgmlType::Q3_K: f = GgmlType::Q4_0; break;
    case GgmlType::Q4_K: f = GgmlType::Q5_0; break;
    case GgmlType::Q5_K: f = GgmlType::Q5_1; break;
    case GgmlType::Q6_K: f = GgmlType::Q8_0; break;
    default:
      AR_THROW("GGUF mix: tensor '", tensor.name, "' has rows of ", ncols, " weights, not a multiple of ",
               ggml_info(t).block_elems, " as ", ggml_info(t).name, " needs, and there is no fallback for it");
  }
  if (ncols % ggml_info(f).block_elems != 0) f = GgmlType::F16;
  return {f, true};
}

}  // namespace

std::span<const GgufMixInfo> gguf_mixes() { return kMixes; }

const GgufMixInfo& gguf_mix_info(GgufMix mix) {
  for (const auto& m : kMixes)
    if (m.mix == mix) return m;
  AR_CHECK(false, "gguf_mix_info: unknown mix ", int(mix));
  return kMixes[0];
}

std::optional<GgufMix> parse_gguf_mix(std::string_view name) {
  std::string low(name);
  for (char& c : low) c = char(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& m : kMixes)
    if (m.name == low) return m.mix;
  return std::nullopt;
}

GgmlType gguf_type_for_bits(int bits) {
  switch (bits) {
    case 2: return GgmlType::Q2_K;
    case 3: return GgmlType::Q3_K;
    case 4: return GgmlType::Q4_K;
    case 5: return GgmlType::Q5_K;
    case 6: return GgmlType::Q6_K;
    case 8: return GgmlType::Q8_0;
    case 16: return GgmlType::F16;
    default: AR_THROW("GGUF: no block type stores ", bits, "-bit weights (2, 3, 4, 5, 6, 8 or 16)");
  }
}

std::vector<GgufTensorType> gguf_mix_types(GgufMix mix, const GgufMixModel& model,
                                           const std::vector<GgufMixTensor>& tensors) {
  const GgufMixInfo& info = gguf_mix_info(mix);
  MixState s{mix, model};
  s.falcon = model.arch == "falcon";
  s.n_gqa = model.n_head_kv > 0 ? model.n_head / model.n_head_kv : 1;
  // llama.cpp's model loader calls an 80-layer llama with grouped-query attention "70B".
  s.is_70b = model.arch == "llama" && model.n_layer == 80 && model.n_head != model.n_head_kv;
  for (const auto& t : tensors) {
    AR_CHECK(!t.shape.empty() && t.shape[0] > 0, "gguf_mix_types: tensor '", t.name, "' has no shape");
    const Category c = category_of(t.name);
    if (is_attn_v_like(c)) ++s.n_attn_v;
    if (c == Category::Output) s.tied_embeddings = false;
  }
  // llama.cpp visits tensors ordered by block number (non-block tensors first), then by name.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int la = block_index(tensors[a].name), lb = block_index(tensors[b].name);
    if (la != lb) return la < lb;
    return tensors[a].name < tensors[b].name;
  });

  const bool quantized_default = ggml_is_quantized(info.default_type);
  std::vector<GgufTensorType> out(tensors.size(), GgufTensorType{GgmlType::F32, false});
  for (size_t idx : order) {
    const GgufMixTensor& t = tensors[idx];
    if (!allows_quantization(t)) {
      out[idx] = {t.source_type, false};
      continue;
    }
    // promote() runs for every tensor, requested or not: it counts attn_v / ffn_down positions,
    // and a request must not shift the other layers' promotions (llama.cpp overrides after it too).
    const GgmlType chosen = quantized_default ? promote(s, info.default_type, t, category_of(t.name)) : info.default_type;
    if (t.requested) {
      const GgmlType r = *t.requested;
      out[idx] = ggml_is_quantized(r) ? fall_back(t, r) : GgufTensorType{r, false};
    } else {
      out[idx] = quantized_default ? fall_back(t, chosen) : GgufTensorType{chosen, false};
    }
  }
  return out;
}

}  // namespace ar
