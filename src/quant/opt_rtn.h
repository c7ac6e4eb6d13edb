// "Optimized RTN": the Python AutoRound's default for iters 0, a per-group search over a grid of
// scales for the least importance-weighted squared rounding error (issue 3 item 1).
#pragma once
#include <cstdint>

#include "quant/quantized.h"
#include "quant/rtn.h"

namespace ar {

// Number of grid points: factors f_i = 1 - 0.0075 i, i = -100..100 (0.25 .. 1.75).
constexpr int kOptRtnGridHalf = 100;
constexpr double kOptRtnGridStep = 0.0075;

// w (out, in) f32; imp (in) per-input-channel importance (mean squared activation), null = all 1.
// Symmetric: g = the group's largest-magnitude weight, signed (a tie between +a and -a counts as +a,
// the side plain RTN picks), n = 2^(b-1); candidates s_i = -g / (n f_i), each rounded to fp16 and
// floored like the stored scale; keeps the one minimising sum imp (s clamp(round(w/s), -n, n-1) - w)^2.
// Asymmetric (our own design; issue 3 specifies the search for symmetric int only): with
// wmin = min(0, min w), wmax = max(0, max w), after plain RTN's (scale, zero), each
// s_i = (wmax - wmin) / ((2^b - 1) f_i) (fp16, floored) with the zero point
// c = round((2^b - 1)/2 - (wmin + wmax) / (2 s_i)) that centres [wmin, wmax] on the code range
// (clamped to [0, 2^b - 1]); then the winner's zero +-1. Least weighted error wins.
// Plain RTN's own choice is evaluated first and only a strictly smaller error replaces it, so the
// result is never worse (in this weighted error, up to f32 rounding of the sums) than quantize_rtn.
// Rows run in parallel; the result does not depend on the thread count.
// A floating-point scheme (MXFP4, NVFP4, FP8, ...) gets plain RTN (quantize_rtn): this search is over
// integer grids, and one over the FP formats' scales is not implemented yet.
QuantizedWeight quantize_opt_rtn(const float* w, int64_t out, int64_t in, const QuantScheme& s,
                                 const float* imp = nullptr);

// w (out, in) overwritten by its dequantized value (fake quantization): optimized or plain RTN.
// A scheme with bits 16 leaves w untouched.
void fake_quantize(float* w, int64_t out, int64_t in, const QuantScheme& s, bool optimized,
                   const float* imp = nullptr);

}  // namespace ar
