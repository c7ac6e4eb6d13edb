// SiLU-gated MLP activation (HF LlamaMLP: act_fn(gate_proj(x)) * up_proj(x), act_fn = SiLU).
#pragma once
#include <cstdint>

namespace ar {

// out (n) overwritten = silu(gate) * up, silu(g) = g / (1 + exp(-g)); n = T*F typically.
// out may alias gate or up.
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);

}  // namespace ar
