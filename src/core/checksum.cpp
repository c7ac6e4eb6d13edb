#include "core/checksum.h"

#include <algorithm>
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
  Checksum64Stream s(seed);
  s.add(data, size);
  return s.value();
}

// Four independent lanes so the multiplies pipeline, combined at the end; the tail (size % 32
// bytes) is mixed in byte by byte with its position.
Checksum64Stream::Checksum64Stream(uint64_t seed) : h_{seed ^ kMul, seed + 1, seed * kMul + 2, ~seed} {}

void Checksum64Stream::block(const unsigned char* p) {
  for (int l = 0; l < 4; ++l) {
    uint64_t w;
    std::memcpy(&w, p + 8 * l, 8);
    h_[l] = (h_[l] ^ (w * kMul)) * 0xff51afd7ed558ccdull;
    h_[l] ^= h_[l] >> 32;
  }
}

void Checksum64Stream::add(const void* data, size_t size) {
  if (size == 0) return;  // data may be null
  const unsigned char* p = static_cast<const unsigned char*>(data);
  size_ += size;
  if (npending_ > 0) {
    const size_t take = std::min(size, sizeof pending_ - npending_);
    std::memcpy(pending_ + npending_, p, take);
    npending_ += take;
    p += take;
    size -= take;
    if (npending_ < sizeof pending_) return;
    block(pending_);
    npending_ = 0;
  }
  for (; size >= 32; p += 32, size -= 32) block(p);
  if (size > 0) std::memcpy(pending_, p, size);
  npending_ = size;
}

uint64_t Checksum64Stream::value() const {
  uint64_t r = mix(h_[0]) ^ mix(h_[1] + 1) ^ mix(h_[2] + 2) ^ mix(h_[3] + 3);
  const uint64_t tail = size_ - npending_;
  for (size_t i = 0; i < npending_; ++i) r = mix(r ^ (uint64_t(pending_[i]) + ((tail + i) << 8)));
  return mix(r ^ size_);
}

std::string checksum_hex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

}  // namespace ar
