#!/usr/bin/env bash
# Issue 19 (stage 2): RTN perplexity of the floating-point schemes (MXFP4, NVFP4, MXFP8, FP8,
# FP8_BLOCK; --iters 0, --format fake) next to the integer W4G32 / W4G128 (plain RTN and the
# default optimized RTN without calibration data), with bits per weight as `quantize` reports them
# (quantized linears, codes + scales + zero points / global scales).
# Eval: qwen3-student on its held-out ids (derived-data/heldout_400x256.ids.json, every window of
# 256); stories260K on text/tinystories-sample.txt in 256-token windows (SPEC §5).
# Usage: bench/fp_rtn_table.sh [models="stories260K qwen3-student"]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${AR_BIN:-./build/autoround}
[[ -x $BIN ]] || ./scripts/build.sh >/dev/null
FIX=${AR_FIXTURES:-../shared/fixtures}
MODELS=${1:-stories260K qwen3-student}
OUT=${BENCH_DIR:-/tmp}/ar-fp-rtn-table
mkdir -p "$OUT"

ppl() {  # ppl <model dir> <model name> -> perplexity
  local data
  if [[ $2 == qwen3-student ]]; then data=$FIX/models/qwen3-student/derived-data/heldout_400x256.ids.json
  else data=$FIX/text/tinystories-sample.txt; fi
  $BIN eval --model "$1" --dataset "$data" --seqlen 256 2>/dev/null | sed -n 's/^perplexity: \([0-9.]*\).*/\1/p'
}

printf '%-14s %-22s %8s %12s\n' model scheme bits/w perplexity
for m in $MODELS; do
  model=$FIX/models/$m/hf
  printf '%-14s %-22s %8s %12s\n' "$m" original 16/32 "$(ppl "$model" "$m")"
  while read -r name args; do
    dir=$OUT/$m-$name
    $BIN quantize --model "$model" --output_dir "$dir" --format fake --iters 0 --overwrite $args \
      > "$dir.log" 2>&1 || { echo "$m $name failed:"; tail -3 "$dir.log"; exit 1; }
    bpw=$(sed -n 's/^bits per weight[^:]*: \([0-9.]*\)/\1/p' "$dir.log")
    printf '%-14s %-22s %8s %12s\n' "$m" "$name" "$bpw" "$(ppl "$dir" "$m")"
  done <<'EOF'
MXFP4 --scheme MXFP4
NVFP4 --scheme NVFP4
MXFP8 --scheme MXFP8
FP8 --scheme FP8
FP8_BLOCK --scheme FP8_BLOCK
W4G32-rtn --scheme W4A16G32 --disable_opt_rtn
W4G32-opt_rtn --scheme W4A16G32
W4G128-rtn --scheme W4A16 --disable_opt_rtn
W4G128-opt_rtn --scheme W4A16
EOF
done
