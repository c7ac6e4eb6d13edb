// AR_VECTOR_CLONES: compile a function for AVX-512, AVX2 and baseline x86-64 and pick one at run
// time (GCC target_clones). The binary itself targets baseline x86-64, so without it a
// `#pragma omp simd` loop runs 4 lanes wide on every CPU. For memory-bound or elementwise kernels
// only; put it on a function with external linkage (the ifunc resolver needs a symbol).
// Results may differ in the last bits between CPUs, never between runs or thread counts on one:
// GCC enables FMA with AVX-512F, so that clone contracts a*b + c, and a sum over an `omp simd`
// loop adds in a different order at each width. (oneDNN's kernels differ between ISAs anyway.)
// Code whose bits must not depend on the CPU (the group quantizers, the bf16 conversions, which
// have no a*b + c) is fine here; anything with products and sums is not bit-portable.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AR_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define AR_VECTOR_CLONES
#endif
