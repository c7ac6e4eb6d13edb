// Scale searches behind the k-quants and the importance-weighted simple formats: given a small
// group of weights, choose the scale (and min) and integer levels that minimise a weighted error.
// They follow the searches of llama.cpp's ggml-quants.c (make_qx_quants, make_q3_quants,
// make_qkx2/qkx3_quants, make_qp_quants), with the same float arithmetic, so a k-quant row built
// from them matches llama.cpp's reference quantizer. The *_groups variants give the same results
// for many groups at once, faster; the quantizers use those, tests check one against the other.
#pragma once
#include <cstdint>
#include <cstring>

namespace ar::gguf {

// Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves the rounded integer in
// the low mantissa bits (cheaper than lrintf, and it is the rounding the reference files use).
inline int round_nearest(float v) {
  float f = v + 12582912.f;
  int32_t i;
  std::memcpy(&i, &f, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// Symmetric levels l in [-nmax, nmax-1] with x ~ scale * l. Starts from the scale that maps the
// largest |x| to -nmax and tries 18 nearby scales (nmax +- 0.1 k), keeping the one with the best
// weighted least-squares fit; returns that fit's scale. w: weights (null = x^2). L gets l + nmax.
// All |x| < 1e-15 -> scale 0, L = 0.
float fit_sym_levels(int n, int nmax, const float* x, const float* w, int8_t* L);

// Symmetric levels as above (weights x^2), refined by up to 5 passes that move single levels
// whenever that raises sum(w x l)^2 / sum(w l^2). L gets l + nmax; returns the fitted scale.
float fit_sym_levels_refined(int n, int nmax, const float* x, int8_t* L);

// Affine levels l in [0, nmax] with x ~ scale * l - min, min >= 0 (the group's minimum, or 0 when
// all x > 0). Starting from the min/max grid, tries nstep+1 grids of (nmax + rmin + rdelta * k)
// steps and, for each, the least-squares (scale, min); keeps the smallest weighted error
// (|err| if use_mad, else err^2). Returns scale, stores min in *min_out. n <= 32.
float fit_affine_levels(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out,
                        float rmin, float rdelta, int nstep, bool use_mad);

// The same search as fit_affine_levels, with levels clamped before rounding (robust when the best
// min so far sits near max) and weights x^2 when w is null; used by the importance-weighted paths.
float fit_affine_levels_v3(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out,
                           float rmin, float rdelta, int nstep, bool use_mad);

// fit_affine_levels (v3 = false) or fit_affine_levels_v3 (v3 = true) on `groups` groups of n
// consecutive weights (x + g*n, w + g*n, L + g*n -> scale_out[g], min_out[g]). Bit-identical to
// calling the single-group search per group; runs 8 groups in lockstep so their float chains
// (sequential sums, which the single search is latency-bound on) overlap. n <= 32.
void fit_affine_levels_groups(int groups, int n, int nmax, const float* x, const float* w, uint8_t* L,
                              float* scale_out, float* min_out, float rmin, float rdelta, int nstep, bool use_mad,
                              bool v3);

// fit_sym_levels on `groups` groups of n consecutive weights (x + g*n, w + g*n or null for x^2,
// L + g*n -> scale_out[g]), bit-identical, 8 groups in lockstep. n <= 32.
void fit_sym_levels_groups(int groups, int n, int nmax, const float* x, const float* w, int8_t* L, float* scale_out);

// Non-negative levels l in [0, nmax] for non-negative x (sub-block scales or mins) with weights w:
// best of 9 grid scales by weighted squared error, then up to 5 single-level refinement passes.
// Returns the least-squares scale of the final levels.
float fit_positive_levels(int n, int nmax, const float* x, uint8_t* L, const float* w);

}  // namespace ar::gguf
