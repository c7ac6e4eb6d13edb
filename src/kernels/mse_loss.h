// Mean squared error between a block's output and its target: the SignRound tuning loss
// (torch.nn.functional.mse_loss with reduction="mean", computed in fp32 inputs / f64 sum).
#pragma once
#include <cstdint>

namespace ar {

// Returns mean((y - target)^2) over n elements. y, target (n). The sum is taken in double, in
// fixed-size chunks combined in order, so the value is identical for any thread count.
double mse_loss_forward(const float* y, const float* target, int64_t n);

// dy (n) overwritten = grad_scale · 2·(y − target) / n, the gradient of grad_scale·mse_loss
// (grad_scale lets a caller average over samples or scale the loss without another pass).
// dy may alias y.
void mse_loss_backward(float* dy, const float* y, const float* target, int64_t n,
                       float grad_scale);

// Both in one pass over y and target (the tuner's step): writes mse_loss_backward's dy and
// returns mse_loss_forward's value. dy may alias y.
double mse_loss_forward_backward(float* dy, const float* y, const float* target, int64_t n, float grad_scale);

}  // namespace ar
