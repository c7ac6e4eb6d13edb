#!/usr/bin/env bash
# The same SignRound tuning step (Qwen3-4B-shaped block, W4G128 sym, forward + backward of a batch,
# signed update) in plain PyTorch on CPU (bench/vs_torch_step.py) and in ours (block_step_bench),
# f32 and bf16, one run; prints a table with s/step, GFLOP/s (one FLOP count for both) and the
# ratio torch_time / our_time. Not part of CI. What is compared and measured numbers: VS_TORCH.md.
#   bench/vs_torch.sh [BUILD_DIR]        (default: build; needs BUILD_DIR/block_step_bench)
# Settings (environment, defaults in brackets):
#   BATCH [1] SEQLEN [2048] ITERS [3] (ours: steps averaged, first included, the block's one-time
#   tuner setup not, as block_step_bench prints it apart; torch: timed steps
#   after one warm-up step) THREADS [number of cores] PRECISIONS ["f32 bf16"] VENV [/work/venv-eco]
#   BF16_SEQLEN, BF16_ITERS: the bf16 row's sequence length (both sides) and torch's timed steps.
#     On a CPU without avx512_bf16/amx_bf16, torch's bf16 matmuls fall back to kernels of
#     0.4-20 GFLOP/s and one step at seqlen 2048 takes well over ten minutes, so there they
#     default to 128 and 1; elsewhere to SEQLEN and ITERS. Ours always runs ITERS steps (cheap).
# A default run on 2 Zen 3 cores (no native bf16) takes about 3.5 minutes, BATCH=8 ITERS=1 f32 about 5.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
VENV=${VENV:-/work/venv-eco}
PY="$VENV/bin/python"
HELPER="$ROOT/bench/vs_torch_step.py"
BATCH=${BATCH:-1}
SEQLEN=${SEQLEN:-2048}
ITERS=${ITERS:-3}
THREADS=${THREADS:-$(nproc)}
PRECISIONS=${PRECISIONS:-f32 bf16}

die() { echo "vs_torch: $*" >&2; exit 1; }
skip() { echo "vs_torch: skipped: $*"; exit 0; }
[[ -x $PY ]] || skip "no Python at $PY (set VENV to a virtualenv with torch): nothing was compared"
"$PY" -c "import torch" > /dev/null 2>&1 ||
  skip "the Python in $VENV cannot import torch (pip install torch there, or set VENV): nothing was compared"
[[ -x $BUILD/block_step_bench ]] ||
  die "no block_step_bench in $BUILD (ninja -C $BUILD block_step_bench, or pass the build folder)"
for v in BATCH SEQLEN ITERS THREADS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v} is not a positive whole number"
done

model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
native_bf16=()
for f in avx512_bf16 amx_bf16; do grep -qw "$f" /proc/cpuinfo && native_bf16+=("$f"); done
echo "CPU: ${model:-unknown}, $(nproc) cores; native bf16: ${native_bf16[*]:-none (no avx512_bf16, no amx_bf16)}"
if ((${#native_bf16[@]} == 0)); then
  echo "  without native bf16 both sides emulate bf16 matmuls (convert to f32); torch's CPU bf16"
  echo "  matmul falls back to slow generic kernels here, so the bf16 row runs a shorter sequence"
  BF16_SEQLEN=${BF16_SEQLEN:-128}
  BF16_ITERS=${BF16_ITERS:-1}
else
  BF16_SEQLEN=${BF16_SEQLEN:-$SEQLEN}
  BF16_ITERS=${BF16_ITERS:-$ITERS}
fi
for v in BF16_SEQLEN BF16_ITERS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v} is not a positive whole number"
done
echo "torch: $("$PY" -c 'import torch; print(torch.__version__)'); threads: $THREADS (torch.set_num_threads," \
     "OMP_NUM_THREADS for ours); batch $BATCH"

load() { cut -d' ' -f1 /proc/loadavg; }
# The machine may be shared: the 1-minute load before and after each timing goes into the table
# (a run's own threads add up to THREADS to the "after" figure).
rows=()
start=$SECONDS
for prec in $PRECISIONS; do
  [[ $prec == f32 || $prec == bf16 ]] || die "unknown precision $prec (f32 or bf16)"
  T=$SEQLEN; K=$ITERS; TK=$ITERS
  [[ $prec == bf16 ]] && { T=$BF16_SEQLEN; TK=$BF16_ITERS; }
  flops=$("$PY" "$HELPER" --flops --batch "$BATCH" --seqlen "$T")

  l0=$(load)
  echo "== ours, $prec, batch $BATCH x seqlen $T, $K steps (load $l0)"
  out=$(OMP_NUM_THREADS=$THREADS "$BUILD/block_step_bench" --batch "$BATCH" --seqlen "$T" --iters "$K" "--$prec" 2>&1) ||
    { echo "$out" >&2; die "block_step_bench failed"; }
  echo "$out" | sed 's/^/   /'
  ours_ms=$(echo "$out" | sed -n 's/^tuning: \([0-9.]*\) ms\/iter.*/\1/p')
  # The tuner's own log line: steps only, without building the tuner (its state, bf16 copies).
  ours_tune_s=$(echo "$out" | sed -n 's/.* steps, \([0-9.]*\) s\/step.*/\1/p')
  gemm=$(echo "$out" | sed -n "s/^gemm peak.* $prec \([0-9.]*\) GFLOP\/s.*/\1/p")
  [[ -n $ours_ms && -n $gemm ]] || die "could not read ms/iter and the GEMM rate from block_step_bench's output"
  l1=$(load)

  echo "== torch, $prec, batch $BATCH x seqlen $T, 1 warm-up + $TK steps (load $l1)"
  tout=$(OMP_NUM_THREADS=$THREADS "$PY" "$HELPER" --batch "$BATCH" --seqlen "$T" --iters "$TK" --threads "$THREADS" \
         --dtype "$prec" 2>&1) || { echo "$tout" >&2; die "vs_torch_step.py failed"; }
  echo "$tout" | grep -v '^RESULT' | sed 's/^/   /'
  torch_s=$(echo "$tout" | sed -n 's/^RESULT step_s=\([0-9.]*\) .*/\1/p')
  [[ -n $torch_s ]] || die "could not read the step time from vs_torch_step.py's output"
  l2=$(load)
  rows+=("$prec $BATCH $T $K/$TK $torch_s $ours_ms ${ours_tune_s:-nan} $gemm $flops $l0 $l1 $l2")
done

echo
echo "SignRound step, Qwen3-4B block, W4G128 sym, $THREADS threads, ${model:-unknown CPU}; $(date -u +%Y-%m-%d)"
echo "GFLOP/s: one count for both sides (bench/vs_torch_step.py step_flops), over the step time shown"
printf '%-5s %11s %6s %12s %12s %12s %10s %10s %11s %12s %15s\n' prec "batch x T" steps "torch s/st" "ours s/st" \
  "(tuner s/st)" "torch GF/s" "ours GF/s" "ours GEMM" "torch/ours" "load b/m/a"
for r in "${rows[@]}"; do
  read -r prec b T K ts om otu gemm flops l0 l1 l2 <<< "$r"
  awk -v p="$prec" -v b="$b" -v T="$T" -v K="$K" -v ts="$ts" -v om="$om" -v otu="$otu" -v g="$gemm" -v f="$flops" \
      -v l="$l0/$l1/$l2" 'BEGIN {
    os = om / 1000
    printf "%-5s %11s %6s %12.2f %12.2f %12s %10.1f %10.1f %11.1f %12.2f %15s\n", p, b "x" T, K, ts, os,
      (otu == "nan" ? "-" : sprintf("%.2f", otu)), f / ts / 1e9, f / os / 1e9, g, ts / os, l }'
done
echo "steps: ours/torch. ours s/st: block_step_bench's ms/iter (first step included; the block's one-time"
echo "tuner setup not); tuner s/st: the tuner's own per-step log; torch s/st: mean after one warm-up step."
echo "ours GEMM: the f32/bf16 GEMM rate (2048x9728x2560) block_step_bench measures in the same process."
echo "load: 1-min load average before ours / between / after torch. Total time: $((SECONDS - start)) s"
