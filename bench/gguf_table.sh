#!/usr/bin/env bash
# Issue 5's quality table: perplexity of qwen3-student exported to GGUF by RTN (--iters 0, without
# and with calibration importance) and by SignRound (--iters ITERS), for q4_0, q4_k_m, q3_k_m,
# q2_k_s, next to llama.cpp's own files in
# ../shared/fixtures/gguf (same eval: our perplexity protocol, 256-token windows of
# tinystories-sample.txt). Calibration: derived-data/calib_256x256.ids.json, seqlen 256.
# Usage: [NSAMPLES=128] bench/gguf_table.sh [iters=200] [mixes="q4_0 q4_k_m q3_k_m q2_k_s"]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${AR_BIN:-./build/autoround}
[[ -x $BIN ]] || ./scripts/build.sh >/dev/null
FIX=${AR_FIXTURES:-../shared/fixtures}
MODEL=$FIX/models/qwen3-student/hf
CALIB=$FIX/models/qwen3-student/derived-data/calib_256x256.ids.json
TEXT=$FIX/text/tinystories-sample.txt
ITERS=${1:-200}
MIXES=${2:-q4_0 q4_k_m q3_k_m q2_k_s}
OUT=${BENCH_DIR:-/tmp}/ar-gguf-table
mkdir -p "$OUT"

ppl() {  # ppl <model file or dir> -> perplexity
  $BIN eval --model "$1" --tokenizer "$MODEL" --dataset "$TEXT" --seqlen 256 2>/dev/null |
    sed -n 's/^perplexity: \([0-9.]*\).*/\1/p'
}

NS=${NSAMPLES:-128}
q() {  # q <mix> <name> <args...>
  local mix=$1 name=$2
  shift 2
  $BIN quantize --model "$MODEL" --format "gguf:$mix" --output_dir "$OUT/$mix-$name" --overwrite "$@" \
    > "$OUT/$mix-$name.log" 2>&1 || { tail -3 "$OUT/$mix-$name.log"; exit 1; }
}
printf '%-8s %10s %10s %10s %10s\n' mix RTN RTN+imp SignRound llama.cpp
printf '%-8s %10s\n' f32 "$(ppl "$MODEL")"
for mix in $MIXES; do
  up=$(echo "$mix" | tr a-z A-Z)
  # q2_k_s needs calibration data (as llama-quantize needs an imatrix): no plain-RTN column.
  rtn=refused
  [[ $mix == q2_k_s ]] || { q "$mix" rtn --iters 0; rtn=$(ppl "$OUT/$mix-rtn"); }
  q "$mix" imp --iters 0 --dataset "$CALIB" --nsamples "$NS" --seqlen 256
  q "$mix" sr --iters "$ITERS" --dataset "$CALIB" --nsamples "$NS" --seqlen 256
  ref=$FIX/gguf/model-$up.gguf
  printf '%-8s %10s %10s %10s %10s\n' "$mix" "$rtn" "$(ppl "$OUT/$mix-imp")" \
    "$(ppl "$OUT/$mix-sr")" "$([[ -f $ref ]] && ppl "$ref" || echo -)"
done
