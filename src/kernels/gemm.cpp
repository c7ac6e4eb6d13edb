// GEMM on oneDNN's matmul primitive (the only file that includes oneDNN) and its naive reference.
// Strided row-major views map to oneDNN memory descriptors with explicit strides, so user
// pointers are wrapped without copying; primitives are built once per shape and reused.
#include "kernels/gemm.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>

#include "core/buffer.h"
#include "core/dtype.h"
#include "core/error.h"

namespace ar {
namespace {

using dt = dnnl::memory::data_type;

// Everything that changes the primitive. lda/ldb are the strides actually handed to oneDNN
// (after staging into tight copies, if any).
struct PrimKey {
  int64_t M, N, K, lda, ldb, ldc;
  bool trans_a, trans_b, accumulate, bf16_inputs, bf16_out;
  bool operator==(const PrimKey&) const = default;
};

struct PrimKeyHash {
  size_t operator()(const PrimKey& k) const {
    uint64_t h = 1469598103934665603ull;
    for (int64_t v : {k.M, k.N, k.K, k.lda, k.ldb, k.ldc}) h = (h ^ uint64_t(v)) * 1099511628211ull;
    uint64_t flags = (k.trans_a ? 1u : 0u) | (k.trans_b ? 2u : 0u) | (k.accumulate ? 4u : 0u) |
                     (k.bf16_inputs ? 8u : 0u) | (k.bf16_out ? 16u : 0u);
    return size_t((h ^ flags) * 1099511628211ull);
  }
};

// A primitive and the descriptors of its operands and scratchpad. Memory objects are made per
// call around the caller's pointers (cheap on CPU), so nothing in an entry is written at run time
// and concurrent calls can share it.
struct PrimEntry {
  dnnl::matmul prim;
  dnnl::memory::desc a, b, c, scratch;
};

// Too many distinct shapes means the caller is not reusing them; start over rather than grow.
// An MoE block adds 7 shapes per distinct (rounded) expert row count, ~40 counts at most for 2048
// tokens (moe.cpp), on top of the dense layers' ~30: 1024 keeps them all across steps.
constexpr size_t kMaxCachedPrimitives = 1024;

struct Backend {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::unordered_map<PrimKey, PrimEntry, PrimKeyHash> cache;
  std::mutex mu;
  // Grow-only staging for BF16 inputs of top-level calls: rounded f32 copies (fallback) or bf16
  // copies (native). Scratchpads are per thread (execute).
  Buffer stage_a{0, "gemm.stage_a"}, stage_b{0, "gemm.stage_b"};
};

Backend& backend() {
  static Backend b;
  return b;
}

bool env_forces_ref() {
  static const bool on = [] {
    const char* v = std::getenv("AR_GEMM_REF");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}

// Logical (rows, cols) view of a stored matrix with row stride ld, as a oneDNN descriptor of
// the *used* shape: a transposed operand is described by swapping the strides.
dnnl::memory::desc view_desc(int64_t rows_used, int64_t cols_used, int64_t ld, bool transposed,
                             dt type) {
  dnnl::memory::dims dims{rows_used, cols_used};
  dnnl::memory::dims strides = transposed ? dnnl::memory::dims{1, ld} : dnnl::memory::dims{ld, 1};
  return dnnl::memory::desc(dims, type, strides);
}

PrimEntry make_entry(Backend& be, const PrimKey& k) {
  const dt in_type = k.bf16_inputs ? dt::bf16 : dt::f32;
  auto a_md = view_desc(k.M, k.K, k.lda, k.trans_a, in_type);
  auto b_md = view_desc(k.K, k.N, k.ldb, k.trans_b, in_type);
  auto c_md = view_desc(k.M, k.N, k.ldc, false, k.bf16_out ? dt::bf16 : dt::f32);
  dnnl::primitive_attr attr;
  // The scratchpad is ours, not the library's. With oneDNN's default (library) mode a primitive
  // owns one scratchpad, allocated when it is created, and every execution of that primitive
  // uses it; oneDNN sizes it per thread of one execution and indexes it by the thread number
  // inside that execution. Two nested calls (each single-threaded, each thread number 0) that
  // run the same cached primitive at once would then share one buffer. The AVX-512/AMX
  // (brgemm) matmul kernels stage A/B panels and C accumulators there, the AVX2 (jit sgemm)
  // path books none, which is why the race only showed on AVX-512 machines (issue #13).
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (k.accumulate) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  // Every primitive runs single-threaded (see execute); oneDNN reads the thread count when it
  // plans a primitive, so plan it for one thread too, whatever OMP_NUM_THREADS is.
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  PrimEntry e;
  try {
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, be.engine);
    e.prim = dnnl::matmul(pd);
    e.scratch = pd.scratchpad_desc();
  } catch (...) {
    omp_set_num_threads(before);
    throw;
  }
  omp_set_num_threads(before);
  e.a = a_md;
  e.b = b_md;
  e.c = c_md;
  return e;
}

// Native: the CPU multiplies bf16 itself (AVX512-BF16 or AMX). Below that, oneDNN 2.6 still builds
// bf16 matmuls on AVX-512 by emulating the conversions, at a third of its f32 rate (71 vs 237
// GFLOP/s measured on a Sapphire Rapids-class Xeon capped at avx512_core), so that does not count.
bool detect_native_bf16() {
  const unsigned isa = unsigned(dnnl::get_effective_cpu_isa());
  const unsigned bf16_isa = unsigned(dnnl::cpu_isa::avx512_core_bf16);  // ISA values are nested bit sets
  if ((isa & bf16_isa) != bf16_isa) return false;
  try {
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    auto a = dnnl::memory::desc({32, 32}, dt::bf16, dnnl::memory::format_tag::ab);
    auto c = dnnl::memory::desc({32, 32}, dt::f32, dnnl::memory::format_tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, a, c), eng);
    (void)pd;
    return true;
  } catch (const dnnl::error&) {
    return false;  // e.g. AVX2-only CPUs: "could not create a primitive descriptor iterator"
  }
}

// True if every used element of the stored (rows, cols) matrix already is a bf16 value, so
// the BF16 fallback can use it in place. Stops at the first element that is not.
bool is_bf16_exact(const float* x, int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * ld;
    for (int64_t c = 0; c < cols; ++c) {
      uint32_t u;
      std::memcpy(&u, row + c, 4);
      if (u & 0xffffu) return false;
    }
  }
  return true;
}

// Stored (rows, cols) with stride ld -> tight rounded f32 copy.
void stage_rounded_f32(float* out, const float* x, int64_t rows, int64_t cols, int64_t ld) {
#pragma omp parallel for if (rows * cols > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) round_to_bf16_values(out + r * cols, x + r * ld, size_t(cols));
}

void stage_bf16(uint16_t* out, const float* x, int64_t rows, int64_t cols, int64_t ld) {
#pragma omp parallel for if (rows * cols > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) f32_to_bf16(out + r * cols, x + r * ld, size_t(cols));
}

// The same on the calling thread only (inside the tile loop).
void stage_bf16_serial(uint16_t* out, const float* x, int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) f32_to_bf16(out + r * cols, x + r * ld, size_t(cols));
}

// An operand as handed to oneDNN: the user's pointer, or a tight staged copy (ld = cols).
struct Operand {
  const void* ptr;
  int64_t ld;
};

// Stored (rows, cols) at X with stride ld, as oneDNN will read it: as given, or (when `stage`)
// a tight copy in `buf`, bf16 when the native primitive is used, else rounded f32.
Operand stage_operand(const float* X, int64_t rows, int64_t cols, int64_t ld, bool stage,
                      bool native, Buffer& buf) {
  if (!stage) return {X, ld};
  if (native) {
    buf.reserve(size_t(rows * cols) * sizeof(uint16_t));
    stage_bf16(buf.as<uint16_t>(), X, rows, cols, ld);
  } else {
    buf.reserve(size_t(rows * cols) * sizeof(float));
    stage_rounded_f32(buf.as<float>(), X, rows, cols, ld);
  }
  return {buf.data(), cols};
}

// Staged copies are bounded: an operand larger than this is staged and multiplied in panels
// (rows of C for A, columns of C for B), so BF16 never holds a second copy of a big weight.
// Counted in bytes: bf16 copies (native) take twice the elements of rounded f32 ones, which
// lets a (2048, 2560) activation fit one panel, so the weight is staged once, not per panel.
constexpr int64_t kStageMaxBytes = int64_t(16) << 20;

// Panel length along M (or N) for an operand with K elements per panel row/column.
int64_t panel_len(int64_t total, int64_t K, bool staged, int64_t elem_bytes) {
  const int64_t max_elems = kStageMaxBytes / elem_bytes;
  if (!staged || total * K <= max_elems) return total;
  return std::max<int64_t>(1, max_elems / K);
}

void zero_rows(float* C, int64_t M, int64_t N, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, size_t(N) * sizeof(float));
}


// Tiles of one product: C split along its longer side into at most kMaxTiles pieces of at least
// kMinTile rows (or columns), a multiple of 16. A function of the shape only, never of the thread
// count. Splitting the longer side re-reads the smaller operand once per tile, and a thin tile
// leaves the single-threaded kernel little to block over: on a 4B block's shapes (2 threads,
// AVX-512 + AMX) 8 tiles ran bf16 products at 960-1150 GFLOP/s where 32 gave 560-1000 (the
// backward layouts lost most), f32 at 200-340 vs 190-300 (bench/gemm_bench). The price: a single
// product keeps at most 8 threads busy.
constexpr int64_t kMaxTiles = 8, kMinTile = 64;

struct Tiling {
  bool along_m;
  int64_t size, count, last;  // tile length, number of tiles, length of the last one
};

Tiling tiling(int64_t M, int64_t N, bool along_m) {
  Tiling t;
  t.along_m = along_m;
  const int64_t dim = t.along_m ? M : N;
  t.size = std::max(kMinTile, (dim + kMaxTiles - 1) / kMaxTiles);
  t.size = std::min(dim, (t.size + 15) / 16 * 16);
  t.count = (dim + t.size - 1) / t.size;
  t.last = dim - (t.count - 1) * t.size;
  return t;
}

// The cached primitive for `k`, made on first use. Caller holds be.mu.
PrimEntry cached_entry(Backend& be, const PrimKey& k) {
  auto it = be.cache.find(k);
  if (it == be.cache.end()) {
    if (be.cache.size() >= kMaxCachedPrimitives) be.cache.clear();
    it = be.cache.emplace(k, make_entry(be, k)).first;
  }
  // Handles are reference counted: copies stay valid even if another thread clears the cache.
  return it->second;
}

// One execution, single-threaded, with this thread's own stream and scratchpad: no two
// executions ever share scratch memory (issue #13). Outside a parallel region the thread count
// is held at 1 around the call, so oneDNN does not thread it itself.
void execute(Backend& be, const PrimEntry& e, const void* a, const void* b, void* c) {
  thread_local Buffer scratch(0, "gemm.scratch.thread");
  const size_t scratch_bytes = e.scratch.get_size();
  if (scratch_bytes > 0) scratch.reserve(scratch_bytes);
  // oneDNN only reads src/weights; its API just has no const handles.
  dnnl::memory am(e.a, be.engine, const_cast<void*>(a)), bm(e.b, be.engine, const_cast<void*>(b));
  dnnl::memory cm(e.c, be.engine, c);
  dnnl::memory sm(e.scratch, be.engine, scratch_bytes > 0 ? scratch.data() : nullptr);
  thread_local dnnl::stream stream(backend().engine);  // streams are not shared by threads
  const bool outside = !omp_in_parallel();
  const int before = outside ? omp_get_max_threads() : 1;
  if (outside) omp_set_num_threads(1);
  e.prim.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}, {DNNL_ARG_SCRATCHPAD, sm}});
  stream.wait();
  if (outside) omp_set_num_threads(before);
}

// C as oneDNN writes it: f32, or (native bf16 only) bf16, each element its f32 sum rounded once.
struct Output {
  float* f32 = nullptr;
  uint16_t* bf16 = nullptr;
  void* at(int64_t elems) const { return f32 ? static_cast<void*>(f32 + elems) : static_cast<void*>(bf16 + elems); }
};

// Native bf16: the operand the tiles split, given as f32, converted one tile's slice at a time.
// src_cols: the slice is stored columns off.. (K rows of len), else stored rows off.. (len rows of K).
struct TileStaging {
  bool a;  // A is split (tiles along M), else B (tiles along N)
  const float* src;
  int64_t ld;
  bool src_cols;
};

// C (mm, nn) [+]= op(a)·op(b), tile by tile (see Tiling): each tile multiplied by one thread with a
// single-threaded primitive. A top-level call (lock held) spreads the tiles over the threads, a
// nested one runs them in turn: the same tiles and the same kernels either way, so every element
// is summed in the same order whatever the thread count (oneDNN's own threading splits the K sums
// of some shapes by thread count: seen for bf16 on AMX with 2, 3 and 4 threads). a, b: as oneDNN
// reads them (bf16 when native); stage: the split operand is converted per tile instead.
void multiply_tiles(Backend& be, std::unique_lock<std::mutex>& lock, bool nested, const Tiling& t, int64_t mm,
                    int64_t nn, int64_t K, Operand a, Operand b, bool trans_a, bool trans_b, bool accumulate,
                    bool native, Output c, int64_t ldc, const TileStaging* stage) {
  const size_t elem = native ? sizeof(uint16_t) : sizeof(float);
  // A staged slice's stride: K when K runs along its stored rows, else the tile length.
  auto staged_ld = [&](int64_t len) { return stage->src_cols ? len : K; };
  // The (at most two) tile shapes' primitives, looked up under the lock.
  PrimEntry entry[2];
  for (int which = 0; which < 2; ++which) {
    const int64_t len = which == 0 ? t.size : t.last;
    if (len == 0 || (which == 1 && len == t.size)) {
      entry[which] = entry[0];
      continue;
    }
    const int64_t a_ld = stage && stage->a ? staged_ld(len) : a.ld;
    const int64_t b_ld = stage && !stage->a ? staged_ld(len) : b.ld;
    const PrimKey key{t.along_m ? len : mm, t.along_m ? nn : len, K, a_ld, b_ld, ldc,
                      trans_a, trans_b, accumulate, native, c.bf16 != nullptr};
    if (nested) lock.lock();
    entry[which] = cached_entry(be, key);
    if (nested) lock.unlock();
  }
  auto run_tile = [&](int64_t i) {
    const int64_t off = i * t.size, len = i + 1 == t.count ? t.last : t.size;
    const PrimEntry& e = entry[i + 1 == t.count ? 1 : 0];
    // Rows off.. of op(A) (stored columns when transposed), or columns off.. of op(B).
    const char* ap = static_cast<const char*>(a.ptr);
    const char* bp = static_cast<const char*>(b.ptr);
    if (stage) {
      thread_local Buffer tile_buf(0, "gemm.stage_tile.thread");
      tile_buf.reserve(size_t(len * K) * sizeof(uint16_t));
      uint16_t* out = tile_buf.as<uint16_t>();
      if (stage->src_cols) stage_bf16_serial(out, stage->src + off, K, len, stage->ld);
      else stage_bf16_serial(out, stage->src + off * stage->ld, len, K, stage->ld);
      (stage->a ? ap : bp) = reinterpret_cast<const char*>(out);
    } else if (t.along_m) {
      ap += size_t(trans_a ? off : off * a.ld) * elem;
    } else {
      bp += size_t(trans_b ? off * b.ld : off) * elem;
    }
    execute(be, e, ap, bp, c.at(t.along_m ? off * ldc : off));
  };
  if (nested || t.count == 1) {  // a single tile still runs single-threaded (see execute)
    for (int64_t i = 0; i < t.count; ++i) run_tile(i);
    return;
  }
  std::exception_ptr err;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < t.count; ++i) {
    try {
      run_tile(i);
    } catch (...) {
#pragma omp critical(ar_gemm_tile_error)
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
}
}  // namespace

namespace {
std::string isa_name(dnnl::cpu_isa isa) {
  using I = dnnl::cpu_isa;
  switch (isa) {
    case I::sse41: return "sse41";
    case I::avx: return "avx";
    case I::avx2: return "avx2";
    case I::avx2_vnni: return "avx2_vnni";
    case I::avx512_mic: return "avx512_mic";
    case I::avx512_mic_4ops: return "avx512_mic_4ops";
    case I::avx512_core: return "avx512_core";
    case I::avx512_core_vnni: return "avx512_core_vnni";
    case I::avx512_core_bf16: return "avx512_core_bf16";
    case I::avx512_core_amx: return "avx512_core_amx";
    case I::all: return "all";
    default: break;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "isa-0x%x", unsigned(isa));
  return buf;
}
}  // namespace

GemmBackendInfo gemm_backend_info() {
  GemmBackendInfo info;
  const dnnl::version_t* v = dnnl::version();
  char buf[96];
  std::snprintf(buf, sizeof buf, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
  info.library = buf;
  // Distribution builds report "N/A" for the commit.
  if (v->hash && *v->hash && std::strcmp(v->hash, "N/A") != 0)
    info.library += std::string(" (") + std::string(v->hash).substr(0, 8) + ")";
  info.isa = isa_name(dnnl::get_effective_cpu_isa());
  info.native_bf16 = gemm_has_native_bf16();
  info.threads = omp_get_max_threads();
  return info;
}

std::string gemm_backend_summary() {
  const GemmBackendInfo i = gemm_backend_info();
  return i.library + ", ISA " + i.isa + ", native bf16: " + (i.native_bf16 ? "yes" : "no") +
         ", threads: " + std::to_string(i.threads);
}

size_t gemm_scratchpad_bytes(int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
                             bool accumulate, Precision p) {
  Backend& be = backend();
  const bool native = native_bf16_products(p);
  const PrimKey key{M, N, K, trans_a ? M : K, trans_b ? K : N, N, trans_a, trans_b, accumulate,
                    native, false};
  return make_entry(be, key).scratch.get_size();
}

bool gemm_has_native_bf16() {
  static const bool native = detect_native_bf16();
  return native;
}

bool native_bf16_products(Precision p) { return p == Precision::BF16 && gemm_has_native_bf16(); }

void round_to_bf16(float* out, const float* in, int64_t n) {
  constexpr int64_t kChunk = 1 << 16;
#pragma omp parallel for if (n > kChunk)
  for (int64_t i = 0; i < n; i += kChunk) round_to_bf16_values(out + i, in + i, size_t(std::min(kChunk, n - i)));
}

void gemm_release_cache() {
  Backend& be = backend();
  std::lock_guard<std::mutex> lock(be.mu);
  be.cache.clear();
  be.stage_a = Buffer(0, "gemm.stage_a");
  be.stage_b = Buffer(0, "gemm.stage_b");
}

namespace {

// Fills in tight strides (ld 0) and checks them; does the empty cases. False: nothing left to do.
bool prepare_call(Output C, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, bool accumulate,
                  int64_t& lda, int64_t& ldb, int64_t& ldc) {
  AR_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm: negative size M=", M, " N=", N, " K=", K);
  const int64_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  if (lda == 0) lda = a_cols;
  if (ldb == 0) ldb = b_cols;
  if (ldc == 0) ldc = N;
  AR_CHECK(lda >= a_cols && ldb >= b_cols && ldc >= N, "gemm: leading dimension too small: lda=",
           lda, " (cols ", a_cols, ") ldb=", ldb, " (cols ", b_cols, ") ldc=", ldc, " (N ", N, ")");
  if (M == 0 || N == 0) return false;
  if (K == 0) {  // empty sum; oneDNN would reject a zero-sized reduction
    if (!accumulate && C.f32) zero_rows(C.f32, M, N, ldc);
    if (!accumulate && C.bf16)
      for (int64_t i = 0; i < M; ++i) std::memset(C.bf16 + i * ldc, 0, size_t(N) * sizeof(uint16_t));
    return false;
  }
  return true;
}

}  // namespace

void gemm_bf16(float* C, const uint16_t* A, const uint16_t* B, int64_t M, int64_t N, int64_t K, bool trans_a,
               bool trans_b, bool accumulate, int64_t lda, int64_t ldb, int64_t ldc) {
  AR_CHECK(gemm_has_native_bf16(), "gemm_bf16 without native bf16 matmuls");
  if (!prepare_call(Output{C}, M, N, K, trans_a, trans_b, accumulate, lda, ldb, ldc)) return;
  const bool nested = omp_in_parallel();
  Backend& be = backend();
  std::unique_lock<std::mutex> lock(be.mu, std::defer_lock);  // as in gemm
  if (!nested) lock.lock();
  // One tile, whether nested or not: the same single primitive call either way.
  const Tiling whole{/*along_m=*/true, M, 1, M};
  multiply_tiles(be, lock, nested, whole, M, N, K, Operand{A, lda}, Operand{B, ldb}, trans_a, trans_b, accumulate,
                 /*native=*/true, Output{C}, ldc, nullptr);
}

void gemm_serial(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool trans_a,
                 bool trans_b, bool accumulate, Precision p, int64_t lda, int64_t ldb, int64_t ldc) {
  if (env_forces_ref()) {
    gemm_ref(C, A, B, M, N, K, trans_a, trans_b, accumulate, p, lda, ldb, ldc);
    return;
  }
  if (!prepare_call(Output{C}, M, N, K, trans_a, trans_b, accumulate, lda, ldb, ldc)) return;
  const int64_t a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
  const int64_t b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
  const bool native = native_bf16_products(p);
  // Per-thread staging, whether nested or not (the shared buffers belong to top-level gemm calls).
  thread_local Buffer local_a(0, "gemm.serial_a.thread"), local_b(0, "gemm.serial_b.thread");
  Operand a{A, lda}, b{B, ldb};
  if (p == Precision::BF16) {
    const bool stage_a = native || !is_bf16_exact(A, a_rows, a_cols, lda);
    const bool stage_b = native || !is_bf16_exact(B, b_rows, b_cols, ldb);
    const size_t elem = native ? sizeof(uint16_t) : sizeof(float);
    // Staged serially: this thread alone works on this product.
    auto stage = [&](Operand& op, const float* X, int64_t rows, int64_t cols, int64_t ld, Buffer& buf) {
      buf.reserve(size_t(rows * cols) * elem);
      if (native) stage_bf16_serial(buf.as<uint16_t>(), X, rows, cols, ld);
      else
        for (int64_t r = 0; r < rows; ++r) round_to_bf16_values(buf.as<float>() + r * cols, X + r * ld, size_t(cols));
      op = Operand{buf.data(), cols};
    };
    if (stage_a) stage(a, A, a_rows, a_cols, lda, local_a);
    if (stage_b) stage(b, B, b_rows, b_cols, ldb, local_b);
  }
  const bool nested = omp_in_parallel();
  Backend& be = backend();
  std::unique_lock<std::mutex> lock(be.mu, std::defer_lock);  // as in gemm_bf16
  if (!nested) lock.lock();
  const Tiling whole{/*along_m=*/true, M, 1, M};
  multiply_tiles(be, lock, nested, whole, M, N, K, a, b, trans_a, trans_b, accumulate, native, Output{C}, ldc,
                 nullptr);
}

namespace {

// gemm, with each operand given either as f32 (A, B) or, native bf16 only, as bf16 bits (A16, B16;
// the f32 pointer null), and C as f32 or (native bf16, no accumulation) bf16.
void gemm_impl(Output C, const float* A, const uint16_t* A16, const float* B, const uint16_t* B16, int64_t M,
               int64_t N, int64_t K, bool trans_a, bool trans_b, bool accumulate, Precision p, int64_t lda,
               int64_t ldb, int64_t ldc) {
  if (!prepare_call(C, M, N, K, trans_a, trans_b, accumulate, lda, ldb, ldc)) return;
  // Stored shapes: A is (M,K) or (K,M); B is (K,N) or (N,K).
  const int64_t a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
  const int64_t b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;

  const bool bf16 = p == Precision::BF16;
  const bool native = bf16 && gemm_has_native_bf16();
  // Native, C wider than tall (tiles along N) and an A too big to stage whole: panels along K, not
  // M. Panels of M would have each tile's kernel pack its slice of B again for every panel (a
  // (2048, 9728) input gradient times a 9728-row weight: 3 panels, B packed 3 times, 714
  // GFLOP/s); panels of K pack every part of B once and add the panels' products into C instead,
  // in K order: a function of the shape, as the tiles are.
  // A bf16 C is rounded once, from the whole sum: no panels of K there (its A is bf16 already, so
  // nothing of it is staged).
  if (native && !C.bf16 && M < N && M * K * int64_t(sizeof(uint16_t)) > kStageMaxBytes) {
    const int64_t pk = std::max<int64_t>(kStageMaxBytes / (M * int64_t(sizeof(uint16_t))), 16) / 16 * 16;
    for (int64_t k0 = 0; k0 < K; k0 += pk) {
      const int64_t kk = std::min(pk, K - k0);
      const int64_t a_off = trans_a ? k0 * lda : k0, b_off = trans_b ? k0 : k0 * ldb;
      gemm_impl(C, A ? A + a_off : nullptr, A16 ? A16 + a_off : nullptr, B ? B + b_off : nullptr,
                B16 ? B16 + b_off : nullptr, M, N, kk, trans_a, trans_b, accumulate || k0 > 0, p, lda, ldb, ldc);
    }
    return;
  }
  const bool nested = omp_in_parallel();
  Backend& be = backend();
  // Top level: one call at a time, shared staging and cached memory objects. Inside a parallel
  // region (e.g. attention's per-head loop) calls run concurrently, single-threaded: the lock
  // covers only cache lookups, and staging is per thread.
  std::unique_lock<std::mutex> lock(be.mu, std::defer_lock);
  if (!nested) lock.lock();
  // Nested calls stage into per-thread buffers (grow-only, each at most kStageMaxBytes) so the
  // many small calls of a parallel loop do not allocate and fault in fresh pages every time.
  thread_local Buffer local_a(0, "gemm.stage_a.thread"), local_b(0, "gemm.stage_b.thread");
  Buffer& buf_a = nested ? local_a : be.stage_a;
  Buffer& buf_b = nested ? local_b : be.stage_b;
  // The fallback uses operands already holding bf16 values (weights from bf16 checkpoints) in
  // place; everything else in BF16 mode is staged.
  AR_CHECK((!A16 && !B16) || native, "gemm: a bf16 operand without native bf16 products");
  const bool stage_a = bf16 && !A16 && (native || !is_bf16_exact(A, a_rows, a_cols, lda));
  const bool stage_b = bf16 && !B16 && (native || !is_bf16_exact(B, b_rows, b_cols, ldb));
  // Tiles run along the longer side of C. With native bf16, the operand the tiles split (A along
  // M, B along N) is converted tile by tile by the thread that multiplies it, while it is hot in
  // its cache: no separate pass over it, and no panels of it (a big weight is never staged whole).
  const bool along_m = M >= N;
  // A bf16 operand is read in place, whole: its tiles are slices of it, nothing to convert.
  const bool tile_a = native && along_m && !A16, tile_b = native && !along_m && !B16;
  const int64_t stage_elem = native ? int64_t(sizeof(uint16_t)) : int64_t(sizeof(float));
  const int64_t pm = tile_a || A16 ? M : panel_len(M, K, stage_a, stage_elem);
  const int64_t pn = tile_b || B16 ? N : panel_len(N, K, stage_b, stage_elem);
  Operand b_whole{nullptr, 0};
  for (int64_t m0 = 0; m0 < M; m0 += pm) {
    const int64_t mm = std::min(pm, M - m0);
    // Rows m0.. of op(A): stored rows when not transposed, stored columns when transposed.
    const float* a_src = A16 ? nullptr : trans_a ? A + m0 : A + m0 * lda;
    const Operand a = A16      ? Operand{A16, lda}
                      : tile_a  ? Operand{a_src, lda}
                      : trans_a ? stage_operand(a_src, K, mm, lda, stage_a, native, buf_a)
                                : stage_operand(a_src, mm, K, lda, stage_a, native, buf_a);
    for (int64_t n0 = 0; n0 < N; n0 += pn) {
      const int64_t nn = std::min(pn, N - n0);
      // A whole-B staging (pn == N) is done once, on the first row panel, and then reused.
      const bool restage_b = pn < N || m0 == 0;
      const float* b_src = B16 ? nullptr : trans_b ? B + n0 * ldb : B + n0;
      const Operand b = B16         ? Operand{B16, ldb}
                        : tile_b      ? Operand{b_src, ldb}
                        : !restage_b ? b_whole
                        : trans_b    ? stage_operand(b_src, nn, K, ldb, stage_b, native, buf_b)
                                     : stage_operand(b_src, K, nn, ldb, stage_b, native, buf_b);
      if (pn == N) b_whole = b;
      const Output c = C.f32 ? Output{C.f32 + m0 * ldc + n0} : Output{nullptr, C.bf16 + m0 * ldc + n0};
      // A tile's slice of the split operand, converted by the thread that multiplies it.
      std::optional<TileStaging> ts;
      if (tile_a) ts = TileStaging{true, static_cast<const float*>(a.ptr), a.ld, trans_a};
      if (tile_b) ts = TileStaging{false, static_cast<const float*>(b.ptr), b.ld, !trans_b};
      // Native: the direction of the whole product (its split operand is never in panels); otherwise
      // the panel's own longer side, as before the per-tile conversion existed.
      multiply_tiles(be, lock, nested, tiling(mm, nn, native ? along_m : mm >= nn), mm, nn, K, a, b, trans_a,
                     trans_b, accumulate, native, c, ldc, ts ? &*ts : nullptr);
    }
  }
}

}  // namespace

void gemm(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K,
          bool trans_a, bool trans_b, bool accumulate, Precision p, int64_t lda, int64_t ldb,
          int64_t ldc) {
  if (env_forces_ref()) {
    gemm_ref(C, A, B, M, N, K, trans_a, trans_b, accumulate, p, lda, ldb, ldc);
    return;
  }
  gemm_impl(Output{C}, A, nullptr, B, nullptr, M, N, K, trans_a, trans_b, accumulate, p, lda, ldb, ldc);
}

void gemm_view(float* C, MatrixView A, MatrixView B, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
               bool accumulate, Precision p, int64_t lda, int64_t ldb, int64_t ldc) {
  AR_CHECK(A && B, "gemm_view: an operand without data");
  if (!A.bf16 && !B.bf16) return gemm(C, A.f32, B.f32, M, N, K, trans_a, trans_b, accumulate, p, lda, ldb, ldc);
  AR_CHECK(p == Precision::BF16, "gemm_view: a bf16 operand needs BF16 products");
  if (gemm_has_native_bf16() && !env_forces_ref()) {
    gemm_impl(Output{C}, A.f32, A.bf16, B.f32, B.bf16, M, N, K, trans_a, trans_b, accumulate, p, lda, ldb, ldc);
    return;
  }
  // Widened: bf16 values are exact in f32, which the fallback then uses in place.
  auto widen = [](const uint16_t* X, int64_t rows, int64_t cols, int64_t& ld) {
    if (ld == 0) ld = cols;
    std::vector<float> wide(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r) bf16_to_f32(wide.data() + r * cols, X + r * ld, size_t(cols));
    ld = cols;
    return wide;
  };
  std::vector<float> wide_a, wide_b;
  if (A.bf16) wide_a = widen(A.bf16, trans_a ? K : M, trans_a ? M : K, lda);
  if (B.bf16) wide_b = widen(B.bf16, trans_b ? N : K, trans_b ? K : N, ldb);
  gemm(C, A.bf16 ? wide_a.data() : A.f32, B.bf16 ? wide_b.data() : B.f32, M, N, K, trans_a, trans_b, accumulate, p,
       lda, ldb, ldc);
}

void gemm_b16(float* C, const float* A, const uint16_t* B, int64_t M, int64_t N, int64_t K, bool trans_a,
              bool trans_b, bool accumulate, int64_t lda, int64_t ldb, int64_t ldc) {
  gemm_view(C, A, MatrixView(B), M, N, K, trans_a, trans_b, accumulate, Precision::BF16, lda, ldb, ldc);
}

void gemm_view_bf16_out(uint16_t* C, MatrixView A, MatrixView B, int64_t M, int64_t N, int64_t K, bool trans_a,
                        bool trans_b, Precision p, int64_t lda, int64_t ldb, int64_t ldc) {
  AR_CHECK(A && B, "gemm_view_bf16_out: an operand without data");
  AR_CHECK(native_bf16_products(p) && !env_forces_ref(), "gemm_view_bf16_out without native bf16 products");
  gemm_impl(Output{nullptr, C}, A.f32, A.bf16, B.f32, B.bf16, M, N, K, trans_a, trans_b, /*accumulate=*/false, p, lda,
            ldb, ldc);
}

void gemm_ref(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K,
              bool trans_a, bool trans_b, bool accumulate, Precision p, int64_t lda, int64_t ldb,
              int64_t ldc) {
  const int64_t a_cols = trans_a ? M : K;
  const int64_t b_cols = trans_b ? K : N;
  if (lda == 0) lda = a_cols;
  if (ldb == 0) ldb = b_cols;
  if (ldc == 0) ldc = N;
  AR_CHECK(lda >= a_cols && ldb >= b_cols && ldc >= N, "gemm_ref: leading dimension too small");
  const bool round = p == Precision::BF16;
  auto in = [round](float x) { return round ? double(bf16_to_f32(f32_to_bf16(x))) : double(x); };
#pragma omp parallel for if (M * N * K > (1 << 16))
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const float a = trans_a ? A[k * lda + i] : A[i * lda + k];
        const float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        s += in(a) * in(b);
      }
      float& c = C[i * ldc + j];
      c = float(accumulate ? double(c) + s : s);
    }
  }
}

}  // namespace ar
