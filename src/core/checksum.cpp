#include "core/checksum.h"

#include <cstdio>
#include <cstring>

namespace ar {

namespace {
constexpr uint64_t kMul = 0x9e3779b97f4a7c15ull;

inline uint64_t mix(uint64_t x) {  // splitmix64's finalizer: every input bit reaches every output bit
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}
}  // namespace

uint64_t checksum64(const void* data, size_t size, uint64_t seed) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  // Four independent lanes so the multiplies pipeline; combined at the end.
  uint64_t h[4] = {seed ^ kMul, seed + 1, seed * kMul + 2, ~seed};
  size_t i = 0;
  for (; i + 32 <= size; i += 32)
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      h[l] = (h[l] ^ (w * kMul)) * 0xff51afd7ed558ccdull;
      h[l] ^= h[l] >> 32;
    }
  uint64_t r = mix(h[0]) ^ mix(h[1] + 1) ^ mix(h[2] + 2) ^ mix(h[3] + 3);
  for (; i < size; ++i) r = mix(r ^ (uint64_t(p[i]) + (uint64_t(i) << 8)));
  return mix(r ^ uint64_t(size));
}

std::string checksum_hex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

}  // namespace ar
