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

}  // namespace ar
