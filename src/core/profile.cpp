#include "core/profile.h"

#include <atomic>
#include <iterator>

namespace ar {
namespace {
std::atomic<bool> g_on{false};
std::array<std::atomic<int64_t>, kPhases> g_ns{};
}  // namespace

const char* phase_name(Phase p) {
  static constexpr const char* kNames[] = {
      "fake quant W'",       "fake quant backward", "GEMM q/k/v fwd",   "GEMM o fwd",
      "GEMM gate/up fwd",    "GEMM down fwd",       "GEMM q/k/v bwd",   "GEMM o bwd",
      "GEMM gate/up bwd",    "GEMM down bwd",       "attention fwd",    "attention bwd",
      "norms/rope/act/add",  "loss",                "signed update",
      "quantize at best",    "tuner setup"};
  static_assert(std::size(kNames) == kPhases, "one name per Phase");
  return kNames[int(p)];
}

void profile_enable(bool on) { g_on.store(on, std::memory_order_relaxed); }
bool profile_enabled() { return g_on.load(std::memory_order_relaxed); }
void profile_reset() {
  for (auto& a : g_ns) a.store(0, std::memory_order_relaxed);
}
std::array<double, kPhases> profile_seconds() {
  std::array<double, kPhases> s{};
  for (int i = 0; i < kPhases; ++i) s[size_t(i)] = double(g_ns[size_t(i)].load(std::memory_order_relaxed)) * 1e-9;
  return s;
}
void profile_add(Phase p, int64_t ns) { g_ns[size_t(p)].fetch_add(ns, std::memory_order_relaxed); }

}  // namespace ar
