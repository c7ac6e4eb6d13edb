// A fast 64-bit checksum for detecting corrupted work files (activation caches, checkpoints).
// Not cryptographic: it catches flipped, truncated or swapped data, not deliberate tampering.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace ar {

// Mixes 8 bytes at a time (multiply-xorshift per word, position-dependent), then the tail bytes
// and the length; deterministic across platforms of the same endianness.
uint64_t checksum64(const void* data, size_t size, uint64_t seed = 0);
std::string checksum_hex(uint64_t h);  // 16 lowercase hex digits

// checksum64 of data arriving in pieces (a file written as it is made): add() the pieces in
// order, then value() is checksum64 of their concatenation.
class Checksum64Stream {
 public:
  explicit Checksum64Stream(uint64_t seed = 0);
  void add(const void* data, size_t size);
  uint64_t value() const;

 private:
  void block(const unsigned char* p);  // one 32-byte step of the four lanes
  uint64_t h_[4];
  unsigned char pending_[32];
  size_t npending_ = 0;
  uint64_t size_ = 0;
};

}  // namespace ar
