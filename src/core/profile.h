// Where a SignRound step's time goes (issue #18's profile table): wall time per phase, summed
// over every scope of that phase. Off by default (one relaxed load per scope); bench tools turn
// it on. Scopes nest only across phases that do not overlap in the table (a GEMM inside
// attention is attention's). Concurrent scopes (two tuning lanes) both count: the table then
// sums thread time, not wall time.
#pragma once
#include <array>
#include <chrono>
#include <cstdint>

namespace ar {

enum class Phase : int {
  FakeQuant,      // W' from v / min / max
  FakeQuantGrad,  // dL/dv, dL/dmin, dL/dmax from dL/dW'
  GemmQkvFwd, GemmOFwd, GemmGateUpFwd, GemmDownFwd,
  GemmQkvBwd, GemmOBwd, GemmGateUpBwd, GemmDownBwd,  // weight and input gradients
  AttentionFwd, AttentionBwd,
  Elementwise,  // norms, RoPE, SwiGLU, residual adds, forward and backward
  Loss,
  Update,  // signed steps
  QuantizeBest,  // the codes of the parameters at a new best loss
  Setup,  // once per block, not per step: a group's parameters and gradients allocated and freed
  kCount
};
constexpr int kPhases = int(Phase::kCount);

const char* phase_name(Phase p);
void profile_enable(bool on);
bool profile_enabled();
void profile_reset();
std::array<double, kPhases> profile_seconds();
void profile_add(Phase p, int64_t ns);

class PhaseScope {
 public:
  explicit PhaseScope(Phase p) : p_(p), on_(profile_enabled()) {
    if (on_) t0_ = std::chrono::steady_clock::now();
  }
  ~PhaseScope() {
    if (on_)
      profile_add(p_, std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0_)
                          .count());
  }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  Phase p_;
  bool on_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace ar
