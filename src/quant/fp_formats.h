// The floating-point weight formats of issue 19: element codecs (FP4 E2M1, FP8 E4M3, the E8M0
// power-of-two scale) and the group quantizers built on them:
//   MXFP4 / MXFP8  OCP Microscaling Formats (MX) Specification v1.0, §5 (E2M1 / E4M3 elements,
//                  blocks of 32 sharing an E8M0 scale 2^(floor(log2(amax)) - emax_elem), elements
//                  rounded to nearest-even and saturated at the element's largest normal, §6.3).
//   NVFP4          NVIDIA's FP4 (blocks of 16 E2M1 elements, an FP8 E4M3 block scale, one FP32
//                  global scale per tensor: gs = 448·6 / amax(tensor), block scale =
//                  e4m3(gs · amax(block) / 6), w' = e2m1 · (scale / gs)), as ModelOpt and
//                  compressed-tensors' nvfp4-pack-quantized define it.
//   FP8            E4M3 weights with an FP32 scale amax / 448 per output channel or per 128×128
//                  block (vLLM's and DeepSeek-V3's block FP8), the scale floored at 1 / (448·512).
// The arithmetic follows AutoRound's data_type/{mxfp,nvfp,fp8}.py step for step (same f32 operations
// in the same order), so RTN and tuned results agree with AutoRound's, with one documented exception:
// the MX shared exponent is floor(log2(amax)) computed exactly (frexp), where AutoRound takes
// floor(torch.log2(amax)) in f32, which rounds up for amax within ~2^-24 below a power of two.
// `v` is SignRound's rounding offset (added to the scaled weight before rounding), `max_scale`
// its clipping factor on amax; both as in the integer quantizer (SPEC §2).
#pragma once
#include <cstdint>
#include <string>

namespace ar {

// ---- elements -------------------------------------------------------------------------------
constexpr float kE2M1Max = 6.0f;
constexpr float kE4M3Max = 448.0f;

// x rounded to the nearest FP4 E2M1 value {0, 0.5, 1, 1.5, 2, 3, 4, 6} (with sign), ties to the
// even encoding, saturating at ±6. x finite.
float round_e2m1(float x);
// The 4-bit code (sign bit 3, exponent bits 2..1, mantissa bit 0) of an E2M1 value; v must be one.
uint8_t encode_e2m1(float v);
float decode_e2m1(uint8_t code);

// x rounded to the nearest FP8 E4M3 ("e4m3fn": bias 7, subnormals down to 2^-9, no infinities,
// largest 448), ties to even, saturating at ±448. x finite.
float round_e4m3(float x);
uint8_t encode_e4m3(float v);  // v must be an E4M3 value; -0 encodes as 0x80
float decode_e4m3(uint8_t code);  // 0x7f / 0xff (NaN) decode as NaN

// E8M0: 2^(code - 127); code 255 is NaN.
float decode_e8m0(uint8_t code);

// Throws ar::Error naming `what` when x[0..n) holds a NaN or an infinity: a weight the formats
// cannot scale.
void check_finite(const float* x, int64_t n, const std::string& what);

// ---- group quantizers -----------------------------------------------------------------------
enum class MxElem { FP4, FP8 };  // E2M1 or E4M3 elements

// The E8M0 scale code of an MX block whose largest |x| is amax (already times max_scale):
// 127 + clamp(floor(log2(amax)) - emax, -127, 127), emax = 2 (FP4) or 8 (FP8); amax = 0 gives
// the code for 2^(1 - emax), as AutoRound does (its shared exponent is torch.where(amax == 0, 1,
// log2(amax))): the block is all zeros, but SignRound's v still lands on that scale's grid.
uint8_t mx_scale_code(float amax, MxElem e);
// One MX block of n ≤ 32 values: codes[i] = element code of round(x[i] / 2^s + v[i]) (saturated);
// returns the scale code. v may be null.
uint8_t mx_quantize_block(uint8_t* codes, const float* x, const float* v, int64_t n, MxElem e,
                          float max_scale = 1.f);
// out[i] = element value · 2^(scale_code - 127).
void mx_dequantize_block(float* out, const uint8_t* codes, int64_t n, uint8_t scale_code, MxElem e);

// NVFP4's per-tensor global scale 448·6 / amax (f32), 0 when amax is 0.
float nvfp4_global_scale(float amax);
// One NVFP4 block of n ≤ 16 values under global scale gs: returns the E4M3 block scale code.
uint8_t nvfp4_quantize_block(uint8_t* codes, const float* x, const float* v, int64_t n, float gs,
                             float max_scale = 1.f);
void nvfp4_dequantize_block(float* out, const uint8_t* codes, int64_t n, uint8_t scale_code, float gs);

// FP8 scale of a channel or block with largest |x| amax: max(amax · max_scale / 448, 1 / (448·512)).
float fp8_scale(float amax, float max_scale = 1.f);
// codes[i] = e4m3(clamp(x[i] / scale + v[i], ±448)).
void fp8_quantize(uint8_t* codes, const float* x, const float* v, int64_t n, float scale);
void fp8_dequantize(float* out, const uint8_t* codes, int64_t n, float scale);

}  // namespace ar
