// Ziggurat normal sampler (Marsaglia & Tsang, "The Ziggurat Method for Generating Random Variables",
// J. Stat. Software 5(8), 2000): 128 equal-area layers; ~99% of draws cost one table lookup,
// one multiply and one compare, which keeps multi-GB synthetic checkpoints quick to produce.
#include "tools/synth_random.h"

#include <cmath>

namespace ar {

namespace {

constexpr int kLayers = 128;
constexpr double kR = 3.442619855899;          // start of the tail
constexpr double kV = 9.91256303526217e-3;     // area of each layer
constexpr double kM = 2147483648.0;            // 2^31: samples are signed 32-bit integers

struct ZigguratTables {
  uint32_t k[kLayers];  // |hz| below k[i]: the point is inside layer i's rectangle core
  double w[kLayers];    // hz * w[i] = x
  double f[kLayers];    // exp(-x_i^2 / 2) at the layer edges
  ZigguratTables() {
    double dn = kR, tn = dn;
    const double q = kV / std::exp(-0.5 * dn * dn);
    k[0] = uint32_t((dn / q) * kM);
    k[1] = 0;
    w[0] = q / kM;
    w[kLayers - 1] = dn / kM;
    f[0] = 1.0;
    f[kLayers - 1] = std::exp(-0.5 * dn * dn);
    for (int i = kLayers - 2; i >= 1; --i) {
      dn = std::sqrt(-2.0 * std::log(kV / dn + std::exp(-0.5 * dn * dn)));
      k[i + 1] = uint32_t((dn / tn) * kM);
      tn = dn;
      f[i] = std::exp(-0.5 * dn * dn);
      w[i] = dn / kM;
    }
  }
};

const ZigguratTables& tables() {
  static const ZigguratTables t;
  return t;
}

struct Stream {
  uint64_t state;
  uint64_t next() { return mix64(state += 0x9e3779b97f4a7c15ull); }
  double uniform() { return (double(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }  // (0, 1)
};

// The rare path: the wedge between rectangles, or the tail beyond kR.
double normal_slow(Stream& s, const ZigguratTables& t, int32_t hz, int iz) {
  for (;;) {
    const double x = double(hz) * t.w[iz];
    if (iz == 0) {  // tail: Marsaglia's exponential rejection
      double xt, y;
      do {
        xt = -std::log(s.uniform()) / kR;
        y = -std::log(s.uniform());
      } while (y + y < xt * xt);
      return hz > 0 ? kR + xt : -kR - xt;
    }
    if (t.f[iz] + s.uniform() * (t.f[iz - 1] - t.f[iz]) < std::exp(-0.5 * x * x)) return x;
    const uint64_t r = s.next();
    hz = int32_t(uint32_t(r));
    iz = int((r >> 32) & (kLayers - 1));
    if (uint32_t(std::abs(int64_t(hz))) < t.k[iz]) return double(hz) * t.w[iz];
  }
}

}  // namespace

void fill_normal(float* out, int64_t n, uint64_t key, float mean, float stddev) {
  const ZigguratTables& t = tables();
  uint64_t state = key;  // a local, so the fast path keeps it in a register
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t r = mix64(state += 0x9e3779b97f4a7c15ull);
    const int32_t hz = int32_t(uint32_t(r));
    const int iz = int((r >> 32) & (kLayers - 1));  // independent bits for the layer
    double x;
    if (uint32_t(std::abs(int64_t(hz))) < t.k[iz]) {
      x = double(hz) * t.w[iz];
    } else {
      Stream s{state};
      x = normal_slow(s, t, hz, iz);
      state = s.state;
    }
    out[i] = mean + stddev * float(x);
  }
}

}  // namespace ar
