#!/usr/bin/env bash
# SignRound's sensitivity to the thread count, against its sensitivity to the seed (issue #13):
#   bench/thread_spread.sh [BUILD_DIR]     (SEEDS="42 43 44 45", ITERS=50, NSAMPLES=32)
# qwen3-student, W3G64 sym, calibration ids from its fixtures, evaluated on the 400 held-out
# sequences. For each seed it runs 1 and 2 threads and prints the held-out perplexities; the
# run-to-run spread is the spread over seeds, the thread effect the |1-thread - 2-thread| gap.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
FIX=${AR_FIXTURES:-$(cd "$ROOT/.." && pwd)/shared/fixtures}
AR="$BUILD/autoround"
Q=$FIX/models/qwen3-student
[[ -x $AR && -d $Q ]] || { echo "thread_spread: need $AR and $Q" >&2; exit 1; }
SEEDS=${SEEDS:-"42 43 44 45"}
TMP=$(mktemp -d /tmp/ar_spread.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $("$AR" --version | tail -1)"
echo "# qwen3-student W3G64 sym, iters ${ITERS:-50}, nsamples ${NSAMPLES:-32}, seqlen 128; held-out ppl (400x256)"
echo "| seed | 1 thread | 2 threads | gap |"
echo "|---|---|---|---|"
for seed in $SEEDS; do
  p=()
  for thr in 1 2; do
    out="$TMP/s${seed}_t${thr}"
    OMP_NUM_THREADS=$thr "$AR" quantize --model "$Q/hf" --output_dir "$out" --bits 3 --group_size 64 \
      --iters "${ITERS:-50}" --nsamples "${NSAMPLES:-32}" --seqlen 128 --seed "$seed" \
      --dataset "$Q/derived-data/calib_256x256.ids.json" \
      --eval "$Q/derived-data/heldout_400x256.ids.json" --eval_seqlen 256 >"$TMP/log" 2>&1 ||
      { echo "run failed:"; tail -5 "$TMP/log"; exit 1; }
    p+=("$(awk '/^perplexity:/ {print $5}' "$TMP/log")")
    rm -rf "$out"
  done
  awk -v s="$seed" -v a="${p[0]}" -v b="${p[1]}" 'BEGIN { d = a - b; if (d < 0) d = -d; printf "| %s | %s | %s | %.4f |\n", s, a, b, d }'
done
