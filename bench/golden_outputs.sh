#!/usr/bin/env bash
# Writes a fixed set of quantize outputs and prints one sha256 per output, so two builds can be
# compared byte for byte (refactors must not change a single output byte):
#   bench/golden_outputs.sh [BUILD_DIR] [OUT_DIR]     (defaults: build, /tmp/ar_golden)
# Runs on the shared fixtures (stories260K and qwen3-student); 1-2 minutes on 2 cores.
# The hash of a folder is the sha256 of its files' "name sha256" lines, in name order.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
OUT=${2:-/tmp/ar_golden}
FIX=${AR_FIXTURES:-$(cd "$ROOT/.." && pwd)/shared/fixtures}
AR="$BUILD/autoround"
[[ -x $AR ]] || { echo "golden_outputs: no autoround binary in $BUILD" >&2; exit 1; }
[[ -d $FIX ]] || { echo "golden_outputs: fixtures not found at $FIX (set AR_FIXTURES)" >&2; exit 1; }
S260=$FIX/models/stories260K/hf
SCALIB=$FIX/models/stories260K/derived-data/stories260K_samples_seed1234.txt
QWEN=$FIX/models/qwen3-student/hf
QCALIB=$FIX/models/qwen3-student/derived-data/calib_256x256.ids.json
rm -rf "$OUT"; mkdir -p "$OUT"
# Byte-identical outputs are only promised for the same thread count.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

tree_hash() {  # folder or file -> one sha256
  local p=$1
  if [[ -f $p ]]; then sha256sum "$p" | cut -d' ' -f1; return; fi
  (cd "$p" && find . -type f | LC_ALL=C sort | xargs -r sha256sum) | sha256sum | cut -d' ' -f1
}

run() {  # name, then quantize arguments
  local name=$1; shift
  if ! "$AR" quantize --output_dir "$OUT/$name" "$@" > "$OUT/$name.log" 2>&1; then
    echo "golden_outputs: $name failed, see $OUT/$name.log" >&2; tail -5 "$OUT/$name.log" >&2; exit 1
  fi
}

TUNE_S=(--model "$S260" --dataset "$SCALIB" --nsamples 16 --seqlen 64 --batch_size 4 --iters 8)
TUNE_Q=(--model "$QWEN" --dataset "$QCALIB" --nsamples 8 --seqlen 128 --batch_size 4 --iters 6)

run s_ar_gptq_fake_rtn  --model "$S260" --iters 0 --disable_opt_rtn --bits 4 --group_size 32 --format auto_round,auto_gptq,fake
run s_ar_optrtn_asym    --model "$S260" --iters 0 --bits 4 --group_size 32 --asym --format auto_round --dataset "$SCALIB" --nsamples 8 --seqlen 64
run s_sr_ram            "${TUNE_S[@]}" --bits 4 --group_size 32 --format auto_round,auto_gptq,fake --cache ram
run s_sr_disk           "${TUNE_S[@]}" --bits 4 --group_size 32 --format auto_round,auto_gptq,fake --cache disk
run s_sr_stream         "${TUNE_S[@]}" --bits 4 --group_size 32 --format auto_round,auto_gptq,fake --cache disk --stream_loss
run s_sr_w2_asym_lc     "${TUNE_S[@]}" --bits 2 --group_size 32 --asym --format auto_round \
                        --layer_config '{"mlp.down_proj": {"bits": 8, "group_size": 64}}'
run q_gguf_q4km_rtn     --model "$QWEN" --iters 0 --format gguf:q4_k_m
run q_gguf_q4km_imp     --model "$QWEN" --iters 0 --format gguf:q4_k_m --dataset "$QCALIB" --nsamples 8 --seqlen 128
run q_gguf_q4km_tuned   "${TUNE_Q[@]}" --format gguf:q4_k_m
run q_gguf_q2ks_tuned   "${TUNE_Q[@]}" --format gguf:q2_k_s
run q_ar_sr_w3          "${TUNE_Q[@]}" --bits 3 --group_size 64 --format auto_round,gguf:q4_0
# Killed after block 1 (kill -9 of itself; the shell's "Killed" notice is silenced),
# then resumed: must equal the uninterrupted s_sr_disk.
{ "$AR" quantize --output_dir "$OUT/s_sr_resumed" "${TUNE_S[@]}" --bits 4 --group_size 32 \
  --format auto_round,auto_gptq,fake --cache disk --debug_kill_after_block 1 > "$OUT/s_sr_resumed.kill.log" 2>&1; } 2>/dev/null || true
run s_sr_resumed        "${TUNE_S[@]}" --bits 4 --group_size 32 --format auto_round,auto_gptq,fake --cache disk --resume
grep -q "resumed" "$OUT/s_sr_resumed.log" || { echo "golden_outputs: the resumed run did not resume" >&2; exit 1; }

echo "# golden outputs of $("$AR" --version | head -1), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), OMP_NUM_THREADS=$OMP_NUM_THREADS"
for d in "$OUT"/*/; do
  d=${d%/}
  printf '%s  %s\n' "$(tree_hash "$d")" "$(basename "$d")"
done
