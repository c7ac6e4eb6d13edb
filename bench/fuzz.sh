#!/usr/bin/env bash
# bench/fuzz.sh SECONDS [TARGET...]: runs each libFuzzer target in fuzz/ (all by default) for
# SECONDS and prints, per target, the executions, the coverage (cov = edges, ft = features, from
# libFuzzer's final stats), the corpus size and the crashes (crash/leak/timeout/oom reproducers,
# kept in $BUILD/fuzz-artifacts/<target>/; rerun one with `$BUILD/fuzz_<target> FILE`).
# Builds $BUILD (default build-fuzz: clang, -DAR_FUZZ=ON, ASan + UBSan) unless AR_FUZZ_NO_BUILD=1.
# Seeds come from the shared fixtures (fuzz_make_seeds; $AR_FIXTURES or ../shared/fixtures) and
# the corpus grows in $BUILD/fuzz-corpus/<target>/ across runs. Exit status 1 if anything crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:?usage: bench/fuzz.sh SECONDS [TARGET...]}
shift
BUILD=${BUILD:-build-fuzz}
FIX=${AR_FIXTURES:-$(cd .. && pwd)/shared/fixtures}
if [[ ${AR_FUZZ_NO_BUILD:-0} != 1 ]]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DAR_FUZZ=ON -DAR_BENCH=OFF -DAR_MPI=OFF >/dev/null
  ninja -C "$BUILD" >/dev/null
fi
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then
  for f in fuzz/*_fuzz.cpp; do b=$(basename "$f" _fuzz.cpp); TARGETS+=("$b"); done
fi

SEEDS=$BUILD/fuzz-seeds
rm -rf "$SEEDS"
"$BUILD/fuzz_make_seeds" "$FIX" "$SEEDS" >/dev/null

# Leaks are findings; UB already aborts (-fno-sanitize-recover); stacks printed for both.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export OMP_NUM_THREADS=1

printf '%-13s %6s %12s %7s %7s %7s %8s\n' target secs execs cov ft corpus crashes
status=0
for t in "${TARGETS[@]}"; do
  bin=$BUILD/fuzz_$t
  [[ -x $bin ]] || { echo "fuzz.sh: no target $bin" >&2; exit 2; }
  corpus=$BUILD/fuzz-corpus/$t
  art=$BUILD/fuzz-artifacts/$t
  dict=$BUILD/fuzz-dict/$t.dict
  mkdir -p "$corpus" "$art" "$(dirname "$dict")" "$SEEDS/$t"
  : >"$dict"
  [[ $t != gguf ]] && cat fuzz/json.dict >>"$dict"
  [[ -f fuzz/$t.dict ]] && cat "fuzz/$t.dict" >>"$dict"
  log=$BUILD/fuzz-logs/$t.log
  mkdir -p "$(dirname "$log")"
  before=$(find "$art" -type f | wc -l)
  rc=0
  # -max_len 64 KiB: enough for every seed; -timeout: one input taking 10 s is a finding (hang).
  "$bin" -max_total_time="$SECS" -print_final_stats=1 -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_funcs=0 -dict="$dict" -artifact_prefix="$art/" "$corpus" "$SEEDS/$t" >"$log" 2>&1 || rc=$?
  after=$(find "$art" -type f | wc -l)
  crashes=$((after - before))
  ((rc != 0 && crashes == 0)) && crashes=1  # died without writing a reproducer
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # The last status line ("#N DONE cov: C ft: F corp: ...", or the last pulse before a crash).
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(find "$corpus" -type f | wc -l)
  printf '%-13s %6s %12s %7s %7s %7s %8s\n' "$t" "$SECS" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$corp" "$crashes"
  if ((crashes > 0)); then
    status=1
    echo "  fuzz_$t crashed (exit $rc); log: $log; reproducers: $art" >&2
    grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|terminate called|AR_CHECK|InternalError' "$log" >&2 || true
  fi
done
exit $status
