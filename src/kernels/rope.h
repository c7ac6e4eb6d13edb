// Rotary position embedding, HF "rotate_half" convention: dimension i is paired with i + D/2
// (not interleaved pairs as in the original paper / GGML's NORM mode).
#pragma once
#include <cstdint>

namespace ar {

// cos, sin (T, half_D) overwritten: angle(t, j) = (pos0 + t) * inv_freq[j], the product taken in
// f32 as HF's rotary embedding does (it matters at large positions), cos/sin then rounded from
// double. inv_freq (half_D) already includes any rope_scaling (llama3, linear): the caller's job.
// Schemes with an attention factor (YaRN, longrope) would also scale cos/sin afterwards.
void rope_tables(float* cos, float* sin, const float* inv_freq, int64_t pos0, int64_t T,
                 int64_t half_D);

// x (T, H, D) rotated in place with cos, sin (T, D/2):
// x1' = x1*cos - x2*sin, x2' = x2*cos + x1*sin, where x1 = x[..., :D/2], x2 = x[..., D/2:].
void rope_forward(float* x, const float* cos, const float* sin, int64_t T, int64_t H, int64_t D);

// Gradient of rope_forward, in place: dx (T, H, D) holds dL/dy on entry and dL/dx on return
// (the inverse rotation: dx1 = dy1*cos + dy2*sin, dx2 = dy2*cos - dy1*sin).
void rope_backward(float* dx, const float* cos, const float* sin, int64_t T, int64_t H, int64_t D);

}  // namespace ar
