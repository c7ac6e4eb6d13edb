// GELU-gated MLP activation (HF GemmaMLP: act_fn(gate_proj(x)) * up_proj(x) with act_fn =
// "gelu_pytorch_tanh", i.e. PyTorch gelu(approximate='tanh')).
#pragma once
#include <cstdint>

namespace ar {

// out (n) overwritten = gelu_tanh(gate) * up, with
// gelu_tanh(g) = 0.5·g·(1 + tanh(u)), u = sqrt(2/π)·(g + 0.044715·g³); n = T*F typically.
// Computed as g·sigmoid(2u) (the same function), which stays accurate where 1 + tanh(u) cancels
// (g << 0) and gives finite values for every finite g. out may alias gate or up.
void geglu_tanh_forward(float* out, const float* gate, const float* up, int64_t n);

// Gradients of geglu_tanh_forward, both overwritten: dgate (n) = dout·up·gelu_tanh'(gate),
// dup (n) = dout·gelu_tanh(gate), gelu_tanh'(g) = s + g·s·(1 − s)·2·u'(g) with s = sigmoid(2u),
// u'(g) = sqrt(2/π)·(1 + 3·0.044715·g²). dout, gate, up (n).
// Elementwise, so dgate/dup may alias dout, gate or up.
void geglu_tanh_backward(float* dgate, float* dup, const float* dout, const float* gate,
                         const float* up, int64_t n);

}  // namespace ar
