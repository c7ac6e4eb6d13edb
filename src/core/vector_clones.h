// AR_VECTOR_CLONES: compile a function for AVX-512, AVX2 and baseline x86-64 and pick one at run
// time (GCC target_clones). The binary itself targets baseline x86-64, so without it a
// `#pragma omp simd` loop runs 4 lanes wide on every CPU. For memory-bound or elementwise kernels
// only; put it on a function with external linkage (the ifunc resolver needs a symbol).
// Per-element arithmetic is the same in every clone (none of the targets enables FMA
// contraction); reductions are not: a sum over an `omp simd` loop adds in a different order at
// each width, so such results may differ in the last bits between CPUs, never between runs.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AR_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define AR_VECTOR_CLONES
#endif
