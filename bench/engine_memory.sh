#!/usr/bin/env bash
# Issue 4's memory benchmark: SignRound W4G128 sym on a synthetic Qwen3-4B-shaped BF16 checkpoint
# (hidden 2560, ffn 9728, 32/8 heads, head_dim 128, vocab 151936, tied embeddings) with random
# token-id calibration data, under --max_ram 2G. Every per-block cost is the real one; only the
# block count is reduced. Prints the chosen plan, per-block RSS, wall time, work-dir disk use and
# peak RSS; asserts nothing.
#
#   bench/engine_memory.sh main [layers=4] [iters=1]   nsamples 512, seqlen 2048
#   bench/engine_memory.sh flat [iters=1]              nsamples 32: 2 vs 8 blocks; 2 blocks: 128 vs 512
#   FLAT_RUNS="2b-32 8b-32" bench/engine_memory.sh flat  a subset of the flat runs
#   RESUME=1 bench/engine_memory.sh main ...           continue an interrupted main run (--resume)
#
# On 2 Zen3 cores (f32 GEMM ~150 GFLOP/s) one calibration pass over 512 x 2048 tokens of one
# block takes ~27 min; the main run makes 2 passes per block (1 for the last). Needs ~45 GB of
# free disk in $BENCH_DIR (default /work/bench-data).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${AR_BIN:-./build/autoround}
[[ -x $BIN ]] || ./scripts/build.sh >/dev/null
DIR=${BENCH_DIR:-/work/bench-data}
mkdir -p "$DIR"

model() {  # model <layers> -> path
  local m=$DIR/qwen3-4b-L$1
  [[ -f $m/config.json ]] || $BIN generate --preset qwen3-4b --num_layers "$1" --output_dir "$m" --seed 1 >&2
  echo "$m"
}

ids() {  # ids <nsamples> <seqlen> -> path of a token-id JSON file (one document per sample)
  local f=$DIR/ids-$1x$2.json
  [[ -f $f ]] || awk -v N="$1" -v T="$2" 'BEGIN { srand(1); printf "[";
    for (d = 0; d < N; d++) { printf (d ? ",[" : "[");
      for (t = 0; t < T; t++) printf (t ? ",%d" : "%d"), 3 + int(rand() * 151000); printf "]" }
    print "]" }' > "$f"
  echo "$f"
}

run() {  # run <name> <layers> <nsamples> <seqlen> <iters> [extra...]
  local name=$1 layers=$2 n=$3 T=$4 iters=$5
  shift 5
  local m; m=$(model "$layers")
  local d; d=$(ids "$n" "$T")
  local log=$DIR/$name.log
  # A resumed run appends, so the interrupted run's blocks (and their peaks) stay in the log.
  [[ " $* " == *" --resume "* ]] || : > "$log"
  local start; start=$(date +%s)
  echo "== $name: $layers blocks, nsamples $n, seqlen $T, iters $iters $*"
  if ! $BIN quantize --model "$m" --output_dir "$DIR/$name-out" --work_dir "$DIR/$name-work" --format auto_round \
      --bits 4 --group_size 128 --iters "$iters" --dataset "$d" --nsamples "$n" --seqlen "$T" --max_ram 2G \
      --overwrite "$@" >> "$log" 2>&1; then
    tail -5 "$log"
    return 1
  fi
  grep -E 'option:|chosen:|^\[[0-9]+/|resume:|work dir peak|quantized [0-9]+|peak RSS' "$log"
  echo "wall: $(( $(date +%s) - start )) s"
}

case ${1:-main} in
  main)
    extra=()
    [[ ${RESUME:-0} == 1 ]] && extra+=(--resume)
    run main "${2:-4}" 512 2048 "${3:-1}" --log_memory "${extra[@]}"
    ;;
  flat)
    it=${2:-1}
    # <blocks>b-<nsamples>; FLAT_RUNS picks a subset (2b-512 alone takes ~75 min here).
    for r in ${FLAT_RUNS:-2b-32 8b-32 2b-128 2b-512}; do
      run "flat-$r" "${r%%b-*}" "${r##*-}" 2048 "$it"
    done
    ;;
  *) echo "usage: $0 main [layers] [iters] | flat [iters]" >&2; exit 2 ;;
esac
