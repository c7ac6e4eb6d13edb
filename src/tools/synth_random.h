// Deterministic random numbers for synthetic weights: a splitmix64 counter stream and standard
// normal samples by the ziggurat method (Marsaglia & Tsang 2000, 128 layers, with the layer index
// taken from bits independent of the sample as Doornik 2005 recommends).
#pragma once
#include <cstdint>

namespace ar {

// splitmix64's output function: a strong 64-bit mixer, also used to derive stream keys.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Fills out[0..n) with mean + stddev * N(0, 1) from the stream keyed by `key`; the same key
// always gives the same numbers.
void fill_normal(float* out, int64_t n, uint64_t key, float mean, float stddev);

}  // namespace ar
