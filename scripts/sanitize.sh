#!/usr/bin/env bash
# The sanitizer half of the test suite: one clang build (build-fuzz: ASan + UBSan with UB fatal, and
# libFuzzer's coverage instrumentation) that serves both
#   (a) the fast tests under ASan/UBSan (the long perplexity runs and the RSS/peak-memory tests are
#       excluded: ASan's shadow memory and slowdown make them meaningless there), and
#   (b) a smoke run of every fuzz target (AR_FUZZ_SMOKE_SECONDS each, default 10), stats printed.
# Run by scripts/test.sh (skip with AR_SKIP_SANITIZE=1).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-fuzz}
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DAR_FUZZ=ON -DAR_BENCH=OFF -DAR_MPI=OFF >/dev/null
ninja -C "$BUILD"

export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0
SYM=$(command -v llvm-symbolizer || ls /usr/lib/llvm-*/bin/llvm-symbolizer 2>/dev/null | tail -1 || true)
[[ -n $SYM ]] && export ASAN_SYMBOLIZER_PATH=$SYM
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# Excluded: the long perplexity evaluations (Perplexity.* on whole texts, FakeQuantPpl.*), every
# test that measures RSS or peak memory or sets --max_ram from a measured plan, and the two longest end-to-end runs (20 min of ASan time
# between them; both run uninstrumented in the normal suite just before): SignRound-tuned GGUF in
# every mode, kill -9 + resume of a SignRound run and of a GGUF run, and SIGINT + resume of one
# (the same path).
SLOW='^(Perplexity\.(Stories260KWikiText2|Qwen3StudentHeldOutIds|Qwen3StudentTinyStories256)|FakeQuantPpl\.'
SLOW+='|StreamingMemory\.|Engine\.DiskCachesKeepPeakFlat|Buffer\.ReleasedLargeBlocksLeaveNoResidentPages'
SLOW+='|SignRound\.StateBytesBoundsTheMeasuredAllocation|Memory\.ReadsRssAndPeak'
SLOW+='|ExpertGroups\.StateBytesShrinkAndBoundThePeak|NewArch\.MaxRamChoosesExpertGroups|Engine\.HeldStepWeightsDroppedWhenTheyDoNotFit'
SLOW+='|GgufTune\.StepsLowerTheLossInEveryMode|Engine\.ExternalKillNineThenResume|GgufCli\.KilledRunResumesToIdenticalFile'
SLOW+='|RunControl\.SecondRunRefusedThenSigint)'
echo "sanitize: ctest (ASan + UBSan) excluding $SLOW"
ctest --test-dir "$BUILD" --output-on-failure -j2 -E "$SLOW"

echo "sanitize: fuzz smoke, ${AR_FUZZ_SMOKE_SECONDS:-10} s per target"
AR_FUZZ_NO_BUILD=1 BUILD=$BUILD bench/fuzz.sh "${AR_FUZZ_SMOKE_SECONDS:-10}"
