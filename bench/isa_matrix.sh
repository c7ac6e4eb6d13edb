#!/usr/bin/env bash
# Correctness under every oneDNN ISA level this CPU allows, with 1 and 2 threads (issue #13):
#   bench/isa_matrix.sh [BUILD_DIR]           (default: build; QUICK=1 skips the ctest runs)
# For each ONEDNN_MAX_CPU_ISA level (AVX2, the AVX-512 levels the CPU has, and the default) and
# OMP_NUM_THREADS 1 and 2 it runs the whole test suite (ctest) and prints the stories260K and
# qwen3-student perplexities (references from the fixtures' READMEs) and the sha256 of an RTN and
# a SignRound quantize output, so thread-count and ISA differences show. Ends with one table.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
FIX=${AR_FIXTURES:-$(cd "$ROOT/.." && pwd)/shared/fixtures}
AR="$BUILD/autoround"
[[ -x $AR ]] || { echo "isa_matrix: no autoround binary in $BUILD" >&2; exit 1; }
[[ -d $FIX ]] || { echo "isa_matrix: fixtures not found at $FIX (set AR_FIXTURES)" >&2; exit 1; }
S260=$FIX/models/stories260K/hf
QWEN=$FIX/models/qwen3-student/hf
TS=$FIX/text/tinystories-sample.txt
HELD=$FIX/models/qwen3-student/derived-data/heldout_400x256.ids.json
SCALIB=$FIX/models/stories260K/derived-data/stories260K_samples_seed1234.txt
REF_S=5.558252   # stories260K, tinystories-sample, 512-token windows (fixtures README)
REF_Q=3.8451     # qwen3-student, 400 held-out sequences of 256 (its README, fp32 compute)
TMP=$(mktemp -d /tmp/ar_isa.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { [[ " $flags " == *" $1 "* ]]; }
LEVELS=${LEVELS:-}
if [[ -z $LEVELS ]]; then
  has avx2 && LEVELS+=" AVX2"
  has avx512f && has avx512bw && has avx512vl && has avx512dq && LEVELS+=" AVX512_CORE"
  has avx512_vnni && LEVELS+=" AVX512_CORE_VNNI"
  has avx512_bf16 && LEVELS+=" AVX512_CORE_BF16"
  has amx_bf16 && has amx_tile && LEVELS+=" AVX512_CORE_AMX"
  LEVELS+=" DEFAULT"
fi
echo "# CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
echo "# ISA flags: $(for f in avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16; do has $f && printf '%s ' $f; done)"
echo "# levels:$LEVELS; threads: 1 2"

ppl() {  # model dataset seqlen [extra] -> perplexity or ERR
  "$AR" eval --model "$1" --dataset "$2" --seqlen "$3" ${4:-} 2>"$TMP/eval.err" | awk '/^perplexity:/ {print $2}' | grep . || echo ERR
}
close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "ERR" && d <= t) }'; }
hash_dir() { (cd "$1" && find . -type f | LC_ALL=C sort | xargs -r sha256sum) | sha256sum | cut -c1-12; }
quant_hash() {  # name, args... -> short hash of the output folder or ERR
  local out="$TMP/q_$1"; shift
  rm -rf "$out"
  if "$AR" quantize --model "$S260" --output_dir "$out" "$@" >"$TMP/q.log" 2>&1; then hash_dir "$out"; else echo ERR; fi
}

rows=()
fail=0
for level in $LEVELS; do
  for thr in 1 2; do
    if [[ $level == DEFAULT ]]; then unset ONEDNN_MAX_CPU_ISA; else export ONEDNN_MAX_CPU_ISA=$level; fi
    export OMP_NUM_THREADS=$thr
    isa=$("$AR" --version | sed -n 's/.*ISA \([^,]*\),.*/\1/p')
    bf16=$("$AR" --version | sed -n 's/.*native bf16: \([a-z]*\).*/\1/p')
    echo "== ONEDNN_MAX_CPU_ISA=$level OMP_NUM_THREADS=$thr -> $isa, native bf16 $bf16"
    tests="skipped"
    if [[ ${QUICK:-0} != 1 ]]; then
      ctest --test-dir "$BUILD" -j2 >"$TMP/ctest.log" 2>&1
      tests=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2-\1 of \2/p' "$TMP/ctest.log" |
              awk '{split($1, a, "-"); print a[1]-a[2] "/" $3}')
      [[ -z $tests ]] && tests="ERR"
      grep -q " 0 tests failed" "$TMP/ctest.log" || { fail=1; grep -E "\(Failed\)|\(SEGFAULT\)|\(Timeout\)" "$TMP/ctest.log" | head -20; }
    fi
    ps=$(ppl "$S260" "$TS" 512)
    psb=$(ppl "$S260" "$TS" 512 "--precision bf16")
    pq=$(ppl "$QWEN" "$HELD" 256)
    close "$ps" $REF_S 0.001 || fail=1
    close "$psb" $REF_S 0.05 || fail=1
    close "$pq" $REF_Q 0.001 || fail=1
    h_rtn=$(quant_hash rtn --iters 0 --bits 4 --group_size 32 --format auto_round,gguf:q4_k_m)
    h_opt=$(quant_hash opt --iters 0 --bits 3 --group_size 32 --dataset "$SCALIB" --nsamples 16 --seqlen 64 --format auto_round)
    h_sr=$(quant_hash sr --iters 20 --bits 4 --group_size 32 --dataset "$SCALIB" --nsamples 16 --seqlen 64 --batch_size 4 --format auto_round)
    rows+=("$(printf '| %-16s | %-16s | %-4s | %d | %-9s | %-9s | %-9s | %-9s | %s | %s | %s |' \
      "$level" "$isa" "$bf16" "$thr" "$tests" "$ps" "$psb" "$pq" "$h_rtn" "$h_opt" "$h_sr")")
    echo "${rows[-1]}"
  done
done
echo
echo "| ONEDNN_MAX_CPU_ISA | effective ISA | bf16 | thr | ctest pass | stories260K ppl | bf16 ppl | qwen3-student ppl | RTN+q4_k_m sha | opt-RTN sha | SignRound sha |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "references: stories260K $REF_S (f32 within 0.001, bf16 within 0.05), qwen3-student held-out $REF_Q (within 0.001)"
if ((fail)); then echo "isa_matrix: FAILED (a test or a perplexity is off)"; exit 1; fi
echo "isa_matrix: all green"
