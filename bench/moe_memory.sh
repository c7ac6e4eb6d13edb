#!/usr/bin/env bash
# Issue 16's memory measurement: SignRound W4G128 of a 2-block Qwen3-30B-A3B-shaped BF16
# checkpoint (generated here, 3.5 GB), 32 samples x 2048 tokens of WikiText-2, --iters 1, under
# each --max_ram given. Prints the memory plan (with the expert groups it chose), the per-block
# losses, the peak RSS and the wall time of each run. Needs ~6 GB of free disk in $BENCH_DIR
# (default /tmp) and the WikiText-2 test text (../shared/fixtures/text/wiki.test.raw or $DATASET).
# Prints numbers, asserts nothing.
# Usage: [AR_BIN=path] [KEEP=1] [ITERS=1] [NSAMPLES=32] bench/moe_memory.sh [max_ram ...]   (default: 4G 8G)
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGETS=("$@")
[[ ${#BUDGETS[@]} -gt 0 ]] || BUDGETS=(4G 8G)
DIR=${BENCH_DIR:-/tmp}/ar-bench-qwen3-30b-a3b-2
DATASET=${DATASET:-../shared/fixtures/text/wiki.test.raw}
[[ -f $DATASET ]] || { echo "no calibration text at $DATASET (set DATASET)"; exit 1; }
BIN=${AR_BIN:-./build/autoround}
[[ -x $BIN ]] || ./scripts/build.sh >/dev/null
if [[ ! -f $DIR/model/config.json ]]; then
  $BIN generate --preset qwen3-30b-a3b --num_layers 2 --output_dir "$DIR/model" --overwrite 2>&1 | tail -1
fi
lscpu | grep -m1 'Model name'
for RAM in "${BUDGETS[@]}"; do
  echo "== --max_ram $RAM"
  START=$(date +%s.%N)
  if ! OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} $BIN quantize --model "$DIR/model" --output_dir "$DIR/out-$RAM" \
    --bits 4 --group_size 128 --iters "${ITERS:-1}" --nsamples "${NSAMPLES:-32}" --seqlen 2048 \
    --dataset "$DATASET" --max_ram "$RAM" --log_memory --overwrite > "$DIR/quantize-$RAM.log" 2>&1; then
    tail -5 "$DIR/quantize-$RAM.log"; continue
  fi
  END=$(date +%s.%N)
  sed -n '/^memory plan/,/chosen:/p' "$DIR/quantize-$RAM.log"
  grep -E '^block [0-9]+( expert group [0-9/]+)?: loss|^memory: block|SignRound:|peak RSS' "$DIR/quantize-$RAM.log"
  echo "wall: $(echo "$END - $START" | bc) s"
  rm -rf "$DIR/out-$RAM"
done
[[ ${KEEP:-0} == 1 ]] || rm -rf "$DIR"
