#!/usr/bin/env bash
# RTN W4G128 of a synthetic Qwen3-4B-shaped BF16 checkpoint (~8 GB, sharded): peak RSS, wall time,
# throughput. Needs ~17 GB of free disk in $BENCH_DIR (default /tmp). Prints numbers, asserts nothing.
# Usage: [OPT_RTN=1] [KEEP=1] bench/quantize_memory.sh [layers=36] [format=auto_round]
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=${1:-36}
FORMAT=${2:-auto_round}
DIR=${BENCH_DIR:-/tmp}/ar-bench-qwen3-4b-$LAYERS
BIN=./build/autoround
[[ -x $BIN ]] || ./scripts/build.sh >/dev/null
if [[ ! -f $DIR/model/config.json ]]; then
  $BIN generate --preset qwen3-4b --num_layers "$LAYERS" --output_dir "$DIR/model" --overwrite 2>&1 | tail -1
fi
IN_BYTES=$(du -sb "$DIR/model" | cut -f1)
START=$(date +%s.%N)
if ! $BIN quantize --model "$DIR/model" --output_dir "$DIR/out" --format "$FORMAT" --bits 4 --group_size 128 \
  --iters 0 $([[ ${OPT_RTN:-0} == 1 ]] || echo --disable_opt_rtn) --overwrite > "$DIR/quantize.log" 2>&1; then
  tail -5 "$DIR/quantize.log"; exit 1
fi
grep -E '^\[(1|9|18|27|36)/|quantized|output|bits per|peak RSS' "$DIR/quantize.log"
END=$(date +%s.%N)
echo "input: $(numfmt --to=iec "$IN_BYTES")  wall: $(echo "$END - $START" | bc) s  throughput: $(echo "$IN_BYTES / ($END - $START) / 1000000" | bc) MB/s of input"
[[ ${KEEP:-0} == 1 ]] || rm -rf "$DIR"
