#include "quant/fp_formats.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace ar {

namespace {

// Round half to even at the current (default: to-nearest-even) rounding mode; torch.round's rule.
float rne(float x) { return std::nearbyint(x); }

// floor(log2(a)) for a finite a > 0, exactly (frexp: a = m·2^k, m in [0.5, 1)).
int floor_log2(float a) {
  int k = 0;
  std::frexp(a, &k);
  return k - 1;
}

// NaN-free reciprocal as AutoRound's get_reciprocal: 1/x, and 0 for x = 0.
float reciprocal(float x) { return x == 0.f ? 0.f : 1.f / x; }

}  // namespace

float round_e2m1(float x) {
  const float a = std::min(std::fabs(x), kE2M1Max);
  // Steps of 0.5 below 2, 1 below 4, 2 up to 6 (the subnormal 0.5 shares the first step).
  float q;
  if (a < 2.f) q = rne(a * 2.f) * 0.5f;
  else if (a < 4.f) q = rne(a);
  else q = rne(a * 0.5f) * 2.f;
  q = std::min(q, kE2M1Max);
  return std::signbit(x) ? -q : q;
}

uint8_t encode_e2m1(float v) {
  static constexpr float kValues[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  const float a = std::fabs(v);
  for (uint8_t c = 0; c < 8; ++c)
    if (kValues[c] == a) return uint8_t((std::signbit(v) ? 8 : 0) | c);
  AR_CHECK(false, "encode_e2m1: ", v, " is not an E2M1 value");
  return 0;
}

float decode_e2m1(uint8_t code) {
  static constexpr float kValues[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  const float a = kValues[code & 7];
  return code & 8 ? -a : a;
}

float round_e4m3(float x) {
  const float a = std::min(std::fabs(x), kE4M3Max);
  if (a == 0.f) return x;  // keeps the sign of zero
  // Three mantissa bits: the step is 2^(e-3) in binade e, and 2^-9 in the subnormals (e < -6).
  const int e = std::max(floor_log2(a), -6);
  const float q = std::ldexp(rne(std::ldexp(a, 3 - e)), e - 3);  // exact scalings by powers of 2
  return std::signbit(x) ? -q : q;  // q <= 448: 448 is on the grid of its binade
}

uint8_t encode_e4m3(float v) {
  const uint8_t sign = std::signbit(v) ? 0x80 : 0;
  const float a = std::fabs(v);
  AR_CHECK(a <= kE4M3Max && round_e4m3(a) == a, "encode_e4m3: ", v, " is not an E4M3 value");
  if (a == 0.f) return sign;
  const int e = floor_log2(a);
  if (e < -6) return uint8_t(sign | int(std::ldexp(a, 9)));  // subnormal: m · 2^-9
  const int m = int(std::ldexp(a, 3 - e)) - 8;                // 1.m · 2^e
  return uint8_t(sign | ((e + 7) << 3) | m);
}

float decode_e4m3(uint8_t code) {
  const int E = (code >> 3) & 15, M = code & 7;
  if (E == 15 && M == 7) return NAN;
  const float a = E == 0 ? std::ldexp(float(M), -9) : std::ldexp(float(8 + M), E - 10);
  return code & 0x80 ? -a : a;
}

float decode_e8m0(uint8_t code) { return code == 255 ? NAN : std::ldexp(1.f, int(code) - 127); }

void check_finite(const float* x, int64_t n, const std::string& what) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i]))
      AR_THROW(what, ": value ", x[i], " at index ", i, " is not finite; the floating-point formats cannot scale it");
}

// ---- MX -------------------------------------------------------------------------------------

namespace {
int mx_emax(MxElem e) { return e == MxElem::FP4 ? 2 : 8; }
float mx_max(MxElem e) { return e == MxElem::FP4 ? kE2M1Max : kE4M3Max; }
float mx_round(float x, MxElem e) { return e == MxElem::FP4 ? round_e2m1(x) : round_e4m3(x); }
uint8_t mx_encode(float v, MxElem e) { return e == MxElem::FP4 ? encode_e2m1(v) : encode_e4m3(v); }
float mx_decode(uint8_t c, MxElem e) { return e == MxElem::FP4 ? decode_e2m1(c) : decode_e4m3(c); }
float amax_of(const float* x, int64_t n) {
  float m = 0.f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}
}  // namespace

uint8_t mx_scale_code(float amax, MxElem e) {
  const int fl = amax == 0.f ? 1 : floor_log2(amax);  // AutoRound: exponent 1 for an all-zero block
  return uint8_t(127 + std::clamp(fl - mx_emax(e), -127, 127));
}

uint8_t mx_quantize_block(uint8_t* codes, const float* x, const float* v, int64_t n, MxElem e, float max_scale) {
  AR_CHECK(n > 0 && n <= 32, "MX block of ", n);
  const uint8_t sc = mx_scale_code(amax_of(x, n) * max_scale, e);
  const float scale = decode_e8m0(sc), lim = mx_max(e);
  for (int64_t i = 0; i < n; ++i) {
    float t = x[i] / scale;
    if (v) t += v[i];
    codes[i] = mx_encode(mx_round(std::clamp(t, -lim, lim), e), e);
  }
  return sc;
}

void mx_dequantize_block(float* out, const uint8_t* codes, int64_t n, uint8_t scale_code, MxElem e) {
  const float scale = decode_e8m0(scale_code);
  for (int64_t i = 0; i < n; ++i) out[i] = mx_decode(codes[i], e) * scale;
}

// ---- NVFP4 ----------------------------------------------------------------------------------

float nvfp4_global_scale(float amax) { return (kE4M3Max * kE2M1Max) * reciprocal(amax); }

namespace {
// The factor the scaled weights are multiplied by, 1 / (scale / gs), in AutoRound's operations.
float nvfp4_output_scale(float scale, float gs) { return reciprocal(scale * reciprocal(gs)); }
}  // namespace

uint8_t nvfp4_quantize_block(uint8_t* codes, const float* x, const float* v, int64_t n, float gs, float max_scale) {
  AR_CHECK(n > 0 && n <= 16, "NVFP4 block of ", n);
  const float vec_max = amax_of(x, n) * max_scale;
  const float scale = round_e4m3(std::clamp(gs * (vec_max * (1.f / 6.f)), -kE4M3Max, kE4M3Max));
  const float os = nvfp4_output_scale(scale, gs);
  for (int64_t i = 0; i < n; ++i) {
    float t = x[i] * os;
    if (v) t += v[i];
    // + 0.f: a weight that rounds to zero is stored as +0, as AutoRound's and compressed-tensors' packers
    // (signbit of their qdq value) store it, so the files agree byte for byte.
    codes[i] = encode_e2m1(round_e2m1(std::clamp(t, -kE2M1Max, kE2M1Max)) + 0.f);
  }
  return encode_e4m3(scale);
}

void nvfp4_dequantize_block(float* out, const uint8_t* codes, int64_t n, uint8_t scale_code, float gs) {
  const float back = reciprocal(nvfp4_output_scale(decode_e4m3(scale_code), gs));
  for (int64_t i = 0; i < n; ++i) out[i] = decode_e2m1(codes[i]) * back;
}

// ---- FP8 ------------------------------------------------------------------------------------

float fp8_scale(float amax, float max_scale) {
  return std::max((amax * max_scale) / kE4M3Max, float(1.0 / (448.0 * 512.0)));
}

void fp8_quantize(uint8_t* codes, const float* x, const float* v, int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) {
    float t = x[i] / scale;
    if (v) t += v[i];
    codes[i] = encode_e4m3(round_e4m3(std::clamp(t, -kE4M3Max, kE4M3Max)) + 0.f);  // zero as +0 (see NVFP4)
  }
}

void fp8_dequantize(float* out, const uint8_t* codes, int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) out[i] = decode_e4m3(codes[i]) * scale;
}

}  // namespace ar
