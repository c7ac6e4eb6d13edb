// General matrix multiply: the one seam to the GEMM backend (oneDNN matmul), plus the naive
// double-accumulating reference used as test oracle. Row-major throughout, BLAS-style op(A)·op(B).
// No oneDNN type appears here; only gemm.cpp includes dnnl.hpp (STYLE.md §2, §4).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/precision.h"

namespace ar {

// C[M,N] = (accumulate ? C : 0) + op(A)·op(B).
// op(A) is A stored [M,K], or, if trans_a, A stored [K,M] (used transposed).
// op(B) is B stored [K,N], or, if trans_b, B stored [N,K] (a Linear weight stored out×in).
// lda/ldb/ldc: row strides in elements of A, B, C as stored, so views into larger arrays work
// (e.g. one head's (T, D) slice of a (T, H*D) array has ld = H*D); 0 means tight.
// C must not overlap A or B. Threads: a call from outside any OpenMP parallel region uses all
// threads, and such calls are serialised by an internal lock (shared primitive cache and bf16
// staging buffers). A call from inside a parallel region runs single-threaded in the calling
// thread, concurrently with its siblings (that is how attention parallelises over heads); its
// bf16 staging, if any, goes to per-thread buffers (each bounded, see gemm.cpp).
// Environment: AR_GEMM_REF=1 routes every call to gemm_ref (slow; for debugging numerics).
void gemm(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K,
          bool trans_a, bool trans_b, bool accumulate, Precision p,
          int64_t lda = 0, int64_t ldb = 0, int64_t ldc = 0);

// gemm with both operands already bf16 (A, B as above, in bf16 elements), f32 C: nothing is
// staged, so callers that reuse an operand convert it once (attention's heads). Only where
// gemm_has_native_bf16(). Made for the many small products inside a parallel region: one
// single-threaded primitive call, not split into tiles, also when called from outside one (so
// the result never depends on the thread count).
void gemm_bf16(float* C, const uint16_t* A, const uint16_t* B, int64_t M, int64_t N, int64_t K, bool trans_a,
               bool trans_b, bool accumulate, int64_t lda = 0, int64_t ldb = 0, int64_t ldc = 0);

// A matrix operand as the products read it: f32, or bf16 bits when the products run in bf16 (what
// they would round f32 values to anyway). Exactly one of the two is set.
struct MatrixView {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
  MatrixView() = default;
  MatrixView(const float* m) : f32(m) {}  // NOLINT: f32 is the common case
  explicit MatrixView(const uint16_t* m) : bf16(m) {}
  // The view from element `elems` on (e.g. a fused weight's part).
  MatrixView offset(int64_t elems) const { return f32 ? MatrixView(f32 + elems) : MatrixView(bf16 + elems); }
  explicit operator bool() const { return f32 || bf16; }
};

// gemm with either operand (or both) given as bf16 bits, which requires Precision::BF16: for an
// operand made in bf16 once and read by several products (a tuning step's W', an activation whose
// producer wrote it as bf16). With native bf16 products nothing bf16 is converted again, and tight
// operands give the same bits as gemm on their values widened to f32; without, the bf16 operands
// are widened into temporary f32 copies first.
void gemm_view(float* C, MatrixView A, MatrixView B, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
               bool accumulate, Precision p, int64_t lda = 0, int64_t ldb = 0, int64_t ldc = 0);

// gemm_view with a bf16 C, overwritten: each element is its f32 sum rounded to bf16 once, the
// bits f32_to_bf16 gives gemm_view's f32 C (the same tiles and kernels; a product gemm_view would
// split along K is summed whole here). For a product whose reader needs no more than bf16 (a
// tuning step's dL/dW', as PyTorch's autocast gives it), at half the bytes written and read.
// Only with native_bf16_products(p); no accumulation (a bf16 sum would round at every add).
void gemm_view_bf16_out(uint16_t* C, MatrixView A, MatrixView B, int64_t M, int64_t N, int64_t K, bool trans_a,
                        bool trans_b, Precision p, int64_t lda = 0, int64_t ldb = 0, int64_t ldc = 0);
// gemm in Precision::BF16 with op(B) already bf16 (B, stored as in gemm, in bf16 elements), A and C
// f32: for a weight made in bf16 once and multiplied many times (a tuning step's W'), so no product
// converts it again. For a tight B, the same bits as gemm(..., Precision::BF16) on B's values widened
// to f32 (a strided B runs a primitive of its own stride, where gemm's staged copy is tight). Without
// native bf16 products, B is widened into a temporary f32 copy first.
void gemm_b16(float* C, const float* A, const uint16_t* B, int64_t M, int64_t N, int64_t K, bool trans_a,
              bool trans_b, bool accumulate, int64_t lda = 0, int64_t ldb = 0, int64_t ldc = 0);

// gemm by the calling thread alone, as one primitive call (no tiles, no threads of its own): for
// the many independent products of a parallel loop, e.g. an MoE block's experts, each run whole
// by one thread. Inside or outside a parallel region it runs the same primitive, so the result
// depends on the shape only, never on the thread count. BF16 inputs are staged into per-thread
// buffers (bf16 when native, else rounded f32; operands already holding bf16 values are used in
// place on the fallback), whole: unlike gemm's, these copies are not split into bounded panels, so
// keep it to products of modest size. Callers that vary M (or K) should round it up to a few
// sizes: every distinct shape is one more cached primitive (see gemm.cpp).
void gemm_serial(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool trans_a,
                 bool trans_b, bool accumulate, Precision p, int64_t lda = 0, int64_t ldb = 0, int64_t ldc = 0);

// Same contract as gemm, computed with plain loops and double accumulation (BF16 rounds each
// input element to bf16 first). The oracle for tests; parallel over rows, deterministic.
void gemm_ref(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K,
              bool trans_a, bool trans_b, bool accumulate, Precision p,
              int64_t lda = 0, int64_t ldb = 0, int64_t ldc = 0);

// True when this CPU runs a native oneDNN bf16 matmul (AVX-512-BF16 / AMX); false means BF16
// goes through rounded f32 copies. Detected on first use and cached.
bool gemm_has_native_bf16();
// True when products in precision p run as native bf16 products (p is BF16 and the CPU has them):
// where bf16 operands made once pay off.
bool native_bf16_products(Precision p);

// What the GEMM backend runs on, for the header of every run and `--version`: the oneDNN
// version, the instruction set its kernels dispatch to on this CPU (after ONEDNN_MAX_CPU_ISA),
// whether bf16 matmuls are native, and the OpenMP thread count.
struct GemmBackendInfo {
  std::string library;  // e.g. "oneDNN 2.6.3", with the commit when the build has one
  std::string isa;      // e.g. "avx2", "avx512_core_bf16", "avx512_core_amx"
  bool native_bf16 = false;
  int threads = 1;
};
GemmBackendInfo gemm_backend_info();
// One line: "oneDNN 2.6.3, ISA avx2, native bf16: no, threads: 2".
std::string gemm_backend_summary();

// Bytes of scratchpad oneDNN asks for one call of this shape (tight operands, f32 or bf16
// inputs as this CPU would run them). Diagnostic: tests print it to show which kernels stage
// data in scratch memory on this CPU, the memory every concurrent call must own privately.
size_t gemm_scratchpad_bytes(int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
                             bool accumulate, Precision p);

// Frees cached oneDNN primitives and the shared bf16 staging buffers (e.g. between model blocks
// whose shapes differ); the next call rebuilds what it needs. Staged operands are split into
// panels, so each shared staging buffer stays below 16 MiB.
void gemm_release_cache();

// Rounds n floats to the nearest bf16 value, kept as f32 (in place allowed: out == in).
void round_to_bf16(float* out, const float* in, int64_t n);

}  // namespace ar
