// Include FIRST (before any other header) in the GGUF quantizer sources: turns off the fusing of
// a * b + c into one fused multiply-add, which compilers do by default when the target has FMA
// (e.g. AR_NATIVE=ON, -march=native). A fused result is rounded once instead of twice, which moves
// the scale searches' choices, so the bytes would stop matching llama.cpp's reference files (built
// without FMA). Placed before the standard headers so their inline functions get the same setting
// and can still be inlined into ours.
#pragma once

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
