// Open-addressing hash maps for the tokenizer's hot lookups (vocabulary, merge pairs, word
// cache): power-of-two tables with linear probing, keys stored flat. std::unordered_map's
// per-node allocations and modulo bucketing made up a third of load + encode time.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace ar::tok {

// string -> V. Keys live in one arena; re-inserting a key overwrites its value.
template <typename V>
class FlatStringMap {
 public:
  size_t size() const { return entries_.size(); }
  void reserve(size_t n) { rehash(capacity_for(n)); }
  void clear() {
    entries_.clear();
    arena_.clear();
    slots_.assign(slots_.size(), kEmpty);
  }
  const V* find(std::string_view key) const {
    if (slots_.empty()) return nullptr;
    const uint64_t h = hash(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      uint32_t e = slots_[i];
      if (e == kEmpty) return nullptr;
      const Entry& en = entries_[e];
      if (en.hash == h && key_of(en) == key) return &en.value;
    }
  }
  void insert_or_assign(std::string_view key, const V& value) {
    if ((entries_.size() + 1) * 4 > slots_.size() * 3) rehash(capacity_for(entries_.size() * 2 + 16));
    const uint64_t h = hash(key);
    size_t i = h & mask_;
    for (;; i = (i + 1) & mask_) {
      uint32_t e = slots_[i];
      if (e == kEmpty) break;
      Entry& en = entries_[e];
      if (en.hash == h && key_of(en) == key) {
        en.value = value;
        return;
      }
    }
    slots_[i] = static_cast<uint32_t>(entries_.size());
    entries_.push_back({h, arena_.size(), static_cast<uint32_t>(key.size()), value});
    arena_.append(key);
  }
  // Calls f(key, value) for every entry in insertion order.
  template <typename F>
  void for_each(F&& f) const {
    for (const Entry& en : entries_) f(key_of(en), en.value);
  }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  struct Entry {
    uint64_t hash;
    size_t offset;
    uint32_t length;
    V value;
  };
  static uint64_t hash(std::string_view s) { return std::hash<std::string_view>{}(s); }
  static size_t capacity_for(size_t n) {
    size_t c = 16;
    while (c * 3 < n * 4) c *= 2;  // load factor <= 3/4
    return c;
  }
  std::string_view key_of(const Entry& en) const { return std::string_view(arena_).substr(en.offset, en.length); }
  void rehash(size_t cap) {
    if (cap <= slots_.size()) return;
    slots_.assign(cap, kEmpty);
    mask_ = cap - 1;
    for (uint32_t e = 0; e < entries_.size(); ++e) {
      size_t i = entries_[e].hash & mask_;
      while (slots_[i] != kEmpty) i = (i + 1) & mask_;
      slots_[i] = e;
    }
  }

  std::vector<Entry> entries_;
  std::string arena_;
  std::vector<uint32_t> slots_;
  size_t mask_ = 0;
};

// uint64 -> V for merge pairs; UINT64_MAX is reserved as the empty marker (pair keys of two
// non-negative int32 ids never reach it).
template <typename V>
class FlatPairMap {
 public:
  size_t size() const { return size_; }
  void reserve(size_t n) { rehash(capacity_for(n)); }
  const V* find(uint64_t key) const {
    if (keys_.empty()) return nullptr;
    for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }
  void insert_or_assign(uint64_t key, const V& value) {
    if ((size_ + 1) * 4 > keys_.size() * 3) rehash(capacity_for(size_ * 2 + 16));
    size_t i = mix(key) & mask_;
    while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
    if (keys_[i] == kEmpty) ++size_;
    keys_[i] = key;
    values_[i] = value;
  }

 private:
  static constexpr uint64_t kEmpty = UINT64_MAX;
  static uint64_t mix(uint64_t k) {  // splitmix64 finaliser: spreads both ids over the low bits
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ULL;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebULL;
    return k ^ (k >> 31);
  }
  static size_t capacity_for(size_t n) {
    size_t c = 16;
    while (c * 3 < n * 4) c *= 2;
    return c;
  }
  void rehash(size_t cap) {
    if (cap <= keys_.size()) return;
    std::vector<uint64_t> old_keys(cap, kEmpty);
    std::vector<V> old_values(cap);
    old_keys.swap(keys_);
    old_values.swap(values_);
    mask_ = cap - 1;
    for (size_t j = 0; j < old_keys.size(); ++j) {
      if (old_keys[j] == kEmpty) continue;
      size_t i = mix(old_keys[j]) & mask_;
      while (keys_[i] != kEmpty) i = (i + 1) & mask_;
      keys_[i] = old_keys[j];
      values_[i] = old_values[j];
    }
  }

  std::vector<uint64_t> keys_;
  std::vector<V> values_;
  size_t size_ = 0;
  size_t mask_ = 0;
};

}  // namespace ar::tok
