#!/usr/bin/env bash
# Issue 17's scaling benchmark: data-parallel SignRound on a synthetic Qwen3-4B-shaped BF16 model
# of 2 blocks (real block shapes; random token ids as calibration data): one process with 2
# OpenMP threads against `mpirun -np 2` with 1 thread per rank, the same global batch (the
# one-process run uses --partitions 2, so both must write identical bytes). Prints per run the
# time per SignRound step, the peak RSS (rank 0, and the largest rank), the bytes each rank
# sends+receives per step and the time it spends in collective operations; asserts nothing.
#
#   bench/mpi_scaling.sh                  ITERS=4 NSAMPLES=8 SEQLEN=512 BATCH=4 by default
#   ITERS=10 SEQLEN=2048 bench/mpi_scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${AR_BIN:-./build/autoround}
[[ -x $BIN ]] || ./scripts/build.sh >/dev/null
DIR=${BENCH_DIR:-/work/bench-data}
ITERS=${ITERS:-4} NSAMPLES=${NSAMPLES:-8} SEQLEN=${SEQLEN:-512} BATCH=${BATCH:-4}
mkdir -p "$DIR"
M=$DIR/qwen3-4b-L2
[[ -f $M/config.json ]] || $BIN generate --preset qwen3-4b --num_layers 2 --output_dir "$M" --seed 1 >&2
IDS=$DIR/ids-${NSAMPLES}x${SEQLEN}.json
[[ -f $IDS ]] || awk -v N="$NSAMPLES" -v T="$SEQLEN" 'BEGIN { srand(1); printf "[";
  for (d = 0; d < N; d++) { printf (d ? ",[" : "[");
    for (t = 0; t < T; t++) printf (t ? ",%d" : "%d"), 3 + int(rand() * 151000); printf "]" }
  print "]" }' > "$IDS"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ARGS=(quantize --model "$M" --dataset "$IDS" --bits 4 --group_size 128 --iters "$ITERS" --nsamples "$NSAMPLES"
      --seqlen "$SEQLEN" --batch_size "$BATCH" --overwrite)
echo "model: $M (2 blocks, Qwen3-4B shapes); W4G128 sym, $ITERS iters, $NSAMPLES x $SEQLEN, batch $BATCH"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $($BIN --version | tail -1)"

report() {  # report <name> <log> <wall seconds>
  local log=$2
  local step peak dp
  step=$(sed -n 's/^SignRound: .*, \([0-9.]*\) s per step.*/\1/p' "$log")
  peak=$(sed -n 's/^peak RSS (VmHWM): //p' "$log" | head -1)
  dp=$(grep '^data-parallel:' "$log" || true)
  printf '%-22s wall %6.1f s  step %7s s  peak RSS (rank 0) %s\n' "$1" "$3" "$step" "$peak"
  [[ -n $dp ]] && echo "    $dp"
  grep -E "s/step" "$log" | sed 's/^/    /' || true
}

t0=$(date +%s.%N)
OMP_NUM_THREADS=2 $BIN "${ARGS[@]}" --partitions 2 --output_dir "$DIR/mpi-one" > "$DIR/mpi-one.log" 2>&1
t1=$(date +%s.%N)
report "1 process x 2 threads" "$DIR/mpi-one.log" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
t0=$(date +%s.%N)
OMP_NUM_THREADS=1 mpirun -np 2 --bind-to core "$BIN" "${ARGS[@]}" --output_dir "$DIR/mpi-two" > "$DIR/mpi-two.log" 2>&1
t1=$(date +%s.%N)
report "2 processes x 1 thread" "$DIR/mpi-two.log" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
if diff -r -q "$DIR/mpi-one" "$DIR/mpi-two" >/dev/null; then echo "outputs: identical"; else echo "outputs: DIFFER"; fi
