// SiLU-gated MLP activation (HF LlamaMLP: act_fn(gate_proj(x)) * up_proj(x), act_fn = SiLU).
#pragma once
#include <cstdint>

namespace ar {

// out (n) overwritten = silu(gate) * up, silu(g) = g / (1 + exp(-g)); n = T*F typically.
// out may alias gate or up.
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);

// Gradients of swiglu_forward, both overwritten: dgate (n) = dout·up·silu'(gate),
// dup (n) = dout·silu(gate), silu'(g) = s·(1 + g·(1 − s)) with s = sigmoid(g). dout, gate, up (n).
// Elementwise, so dgate/dup may alias dout, gate or up.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t n);

}  // namespace ar
