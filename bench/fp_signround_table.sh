#!/usr/bin/env bash
# Issue 19 (stage 3): RTN vs SignRound perplexity of the floating-point schemes (MXFP4, NVFP4,
# MXFP8, FP8, FP8_BLOCK) with bits per weight, on stories260K and qwen3-student, --format fake.
# SignRound: iters 200, nsamples 128, seqlen 256, batch 8 (AutoRound's defaults but the sequence
# length, which these models' calibration files fix), seed 42.
# Calibration: stories260K's samples text; qwen3-student's calib_256x256 ids. Eval: qwen3-student on
# its held-out ids (every window of 256); stories260K on text/tinystories-sample.txt in 256-token
# windows (SPEC §5). Prints one row per (model, scheme, method) and the per-block loss lines' sum.
# Usage: bench/fp_signround_table.sh [models="stories260K qwen3-student"] [schemes="MXFP4 NVFP4 MXFP8 FP8 FP8_BLOCK"]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${AR_BIN:-./build/autoround}
[[ -x $BIN ]] || ./scripts/build.sh >/dev/null
FIX=${AR_FIXTURES:-../shared/fixtures}
MODELS=${1:-stories260K qwen3-student}
SCHEMES=${2:-MXFP4 NVFP4 MXFP8 FP8 FP8_BLOCK}
ITERS=${ITERS:-200}
OUT=${BENCH_DIR:-/tmp}/ar-fp-signround-table
mkdir -p "$OUT"

ppl() {  # ppl <model dir> <model name> -> perplexity
  local data
  if [[ $2 == qwen3-student ]]; then data=$FIX/models/qwen3-student/derived-data/heldout_400x256.ids.json
  else data=$FIX/text/tinystories-sample.txt; fi
  $BIN eval --model "$1" --dataset "$data" --seqlen 256 2>/dev/null | sed -n 's/^perplexity: \([0-9.]*\).*/\1/p'
}

printf '%-14s %-10s %-10s %8s %12s %10s %22s\n' model scheme method bits/w perplexity wall_s "block loss (sum) 0->best"
for m in $MODELS; do
  model=$FIX/models/$m/hf
  if [[ $m == qwen3-student ]]; then calib=$FIX/models/qwen3-student/derived-data/calib_256x256.ids.json
  else calib=$FIX/models/stories260K/derived-data/stories260K_samples_seed1234.txt; fi
  printf '%-14s %-10s %-10s %8s %12s\n' "$m" original - 16/32 "$(ppl "$model" "$m")"
  for s in $SCHEMES; do
    for method in RTN SignRound; do
      dir=$OUT/$m-$s-$method
      if [[ $method == RTN ]]; then args=(--iters 0)
      else args=(--iters "$ITERS" --nsamples 128 --seqlen 256 --batch_size 8 --seed 42 --dataset "$calib"); fi
      t0=$(date +%s.%N)
      $BIN quantize --model "$model" --output_dir "$dir" --format fake --scheme "$s" --overwrite "${args[@]}" \
        > "$dir.log" 2>&1 || { echo "$m $s $method failed:"; tail -3 "$dir.log"; exit 1; }
      wall=$(echo "$(date +%s.%N) - $t0" | bc)
      bpw=$(sed -n 's/^bits per weight[^:]*: \([0-9.]*\)/\1/p' "$dir.log")
      loss=$(sed -n 's/^block [0-9]*: loss iter 0 \([0-9.eE+-]*\) -> best \([0-9.eE+-]*\).*/\1 \2/p' "$dir.log" |
             awk '{a += $1; b += $2} END {if (NR) printf "%.5g -> %.5g", a, b; else printf "-"}')
      printf '%-14s %-10s %-10s %8s %12s %10.1f %22s\n' "$m" "$s" "$method" "$bpw" "$(ppl "$dir" "$m")" "$wall" "$loss"
    done
  done
done
