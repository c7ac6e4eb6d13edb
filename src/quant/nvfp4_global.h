// NVFP4's per-tensor global scale, shared by the projections a runtime fuses into one GEMM.
//
// vLLM loads q/k/v_proj as one qkv_proj and gate/up_proj as one gate_up_proj, and after loading
// collapses the parts' weight_global_scale to a single scalar (their max). A part whose own
// global scale differs is then dequantized with another part's, and its weights come out scaled
// by the ratio. AutoRound 0.16.1 therefore gives the parts one global scale before tuning, the
// smallest of theirs (data_type/utils.py update_fused_layer_global_scales, on unless
// AR_NVFP4_FUSED_LAYER_GLOBAL_SCALE=0); since gs = 448·6 / amax, that is the one of the largest
// amax, so no part's block scales saturate. We do the same by passing each part the group's
// largest amax (quantize_fp's global_amax).
//
// The groups are found by name, as AutoRound finds them: linears under the same parent module named
// {q_proj, k_proj, v_proj}, {gate_proj, up_proj}, or a Mixtral expert's {w1, w3}; only the NVFP4
// ones among them join. One deliberate difference: AutoRound's min over global scales picks 0 when
// one part is all zeros (get_reciprocal(0) = 0), which would zero the whole group; the largest amax
// ignores such a part.
#pragma once
#include <string>
#include <vector>

namespace ar {

// names[i]: linear i's module name ("model.layers.0.self_attn.q_proj"); amax[i]: the largest |w| of
// its weight; nvfp4[i]: whether it is quantized as NVFP4. Returns, for each linear, the amax its
// global scale is to be computed from: the largest amax of its group's NVFP4 members when `fused`
// and it is one, its own otherwise (unused for non-NVFP4 linears).
std::vector<float> nvfp4_global_amax(const std::vector<std::string>& names, const std::vector<float>& amax,
                                     const std::vector<bool>& nvfp4, bool fused);

}  // namespace ar
