// Branch-free f32 exp for the softmax and SiLU inner loops, written so `#pragma omp simd` loops
// vectorise it at -O2 (std::exp does not vectorise without -ffast-math). Cody–Waite reduction
// x = n·ln2 + r, |r| <= ln2/2, then a degree-6 Taylor polynomial for e^r: within a few ulp of
// expf. Returns 0 below ln(FLT_MIN) (no subnormals) and +inf above 88.376 (expf: above 88.723).
// fast_tanh / fast_sech2 (attention's logit soft-cap and its derivative) are built on it.
#pragma once
#include <bit>
#include <cstdint>
#include <limits>

namespace ar {

inline float fast_exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;        // ln2 split so n·kLn2Hi is exact
  constexpr float kLn2Lo = 1.428606765330187045e-06f;
  constexpr float kRoundMagic = 12582912.0f;          // 1.5·2^23: adding it rounds to integer
  constexpr float kMaxArg = 88.3762626647949f;         // 127.5·ln2: keeps n <= 127
  constexpr float kMinArg = -87.3365447505531f;        // below ln(FLT_MIN): flush to 0
  // No clamping of x and no ternaries: out-of-range lanes compute garbage that the masks below
  // discard. A select here lets GCC move the polynomial into a branch (possibly trapping FP ops
  // under a condition), which it then refuses to if-convert, and the loop stays scalar.
  const bool under = x < kMinArg, over = x > kMaxArg;
  const float t = x * kLog2e + kRoundMagic;
  const float n = t - kRoundMagic;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n built in the exponent field; n is in [-126, 127] for every lane that is kept.
  // Unsigned so the discarded lanes cannot overflow a signed int.
  const uint32_t n_biased = std::bit_cast<uint32_t>(t) - std::bit_cast<uint32_t>(kRoundMagic) + 127u;
  const float y = p * std::bit_cast<float>(n_biased << 23);
  // Fix-ups as bit masks, not ternaries, for the same reason.
  const uint32_t under_mask = 0u - uint32_t(under), over_mask = 0u - uint32_t(over);
  const uint32_t inf_bits = std::bit_cast<uint32_t>(std::numeric_limits<float>::infinity());
  return std::bit_cast<float>((std::bit_cast<uint32_t>(y) & ~(under_mask | over_mask)) |
                              (inf_bits & over_mask));
}

// tanh(x), branch-free like fast_exp. |x| >= 0.25: (1 − E)/(1 + E) with E = exp(−2|x|) <= 0.61,
// so the subtraction costs at most ~1.5 bits; |x| < 0.25, where it would cancel: the odd Taylor
// series through x^11 (next term < 1e-8 relative). Within ~3e-7 relative of tanh; exactly ±1
// once E underflows (|x| > 43.7), never NaN for finite or infinite x.
inline float fast_tanh(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t sign = bits & 0x80000000u;
  const float a = std::bit_cast<float>(bits & 0x7fffffffu);
  const float e = fast_exp(-2.0f * a);
  const float large = (1.0f - e) / (1.0f + e);
  const float a2 = a * a;
  float p = -1382.0f / 155925.0f;
  p = p * a2 + 62.0f / 2835.0f;
  p = p * a2 - 17.0f / 315.0f;
  p = p * a2 + 2.0f / 15.0f;
  p = p * a2 - 1.0f / 3.0f;
  const float small = a + a * a2 * p;
  // select as bit masks, for the reason given in fast_exp
  const uint32_t small_mask = 0u - uint32_t(a < 0.25f);
  const uint32_t mag = (std::bit_cast<uint32_t>(small) & small_mask) |
                       (std::bit_cast<uint32_t>(large) & ~small_mask);
  return std::bit_cast<float>(mag | sign);
}

// sech²(x) = 1 − tanh²(x) = 4E/(1 + E)² with E = exp(−2|x|): no cancellation where tanh
// saturates (1 − t² would round to 0 long before sech² does). Within ~1e-6 relative; 0 once E
// underflows.
inline float fast_sech2(float x) {
  const float a = std::bit_cast<float>(std::bit_cast<uint32_t>(x) & 0x7fffffffu);
  const float e = fast_exp(-2.0f * a);
  const float d = 1.0f + e;
  return 4.0f * e / (d * d);
}

}  // namespace ar
