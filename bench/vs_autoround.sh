#!/usr/bin/env bash
# Our `autoround quantize` against the Python AutoRound (auto-round, CPU) on the same model, the
# same calibration samples and the same settings; one held-out perplexity evaluator (our `eval`)
# scores both. Prints a line per run as it finishes, then a table (wall clock, peak RSS, ppl).
#   bench/vs_autoround.sh [BUILD_DIR] [OUT_DIR]     (defaults: build, /tmp/ar_vs_autoround)
# Settings (environment, defaults in brackets):
#   ITERS [200] NSAMPLES [128] SEQLEN [256] BATCH [8] SEEDS ["42 43 44"] THREADS [2]
#   SCHEMES ["W4G128 W2G64"]: W<bits>G<group>[-sym|-asym]; without a suffix 2-bit is asym and
#     everything else sym (the issue's pair: W4G128 sym, W2G64 asym)
#   VENV [/work/venv-eco] (torch, transformers, auto-round), AR_FIXTURES [../shared/fixtures],
#   EVAL_SEQLEN [256], EVAL_LIMIT [0 = all 400 windows], TF_CHECK [0; 1 = transformers cross-check]
#   TORCH_COMPILE [0; 1 = let AutoRound use torch.compile, its own Linux default]
# The default run is 2 schemes x 2 tools x 3 seeds of 200 iterations: hours on 2 cores. Smoke test:
#   ITERS=2 NSAMPLES=8 SEQLEN=64 BATCH=4 SEEDS=42 SCHEMES=W4G128 bench/vs_autoround.sh
# What differs between the two tools' defaults: bench/ecosystem/VS_AUTOROUND.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[[ -d ${1:-$ROOT/build} ]] || { echo "vs_autoround: build folder ${1:-$ROOT/build} not found" >&2; exit 1; }
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
OUT=${2:-${OUT:-/tmp/ar_vs_autoround}}
FIX=${AR_FIXTURES:-$(cd "$ROOT/.." && pwd)/shared/fixtures}
VENV=${VENV:-/work/venv-eco}
ITERS=${ITERS:-200}
NSAMPLES=${NSAMPLES:-128}
SEQLEN=${SEQLEN:-256}
BATCH=${BATCH:-8}
SEEDS=${SEEDS:-42 43 44}
THREADS=${THREADS:-2}
SCHEMES=${SCHEMES:-W4G128 W2G64}
EVAL_SEQLEN=${EVAL_SEQLEN:-256}
EVAL_LIMIT=${EVAL_LIMIT:-0}
TF_CHECK=${TF_CHECK:-0}
TORCH_COMPILE=${TORCH_COMPILE:-0}

AR="$BUILD/autoround"
PY="$VENV/bin/python"
RUN_AR="$ROOT/bench/ecosystem/run_autoround.py"
MODEL=$FIX/models/qwen3-student/hf
CALIB_ALL=$FIX/models/qwen3-student/derived-data/calib_256x256.ids.json
HELDOUT=$FIX/models/qwen3-student/derived-data/heldout_400x256.ids.json

die() { echo "vs_autoround: $*" >&2; exit 1; }
[[ -x $AR ]] || die "no autoround binary in $BUILD"
[[ -d $FIX ]] || die "fixtures not found at $FIX (set AR_FIXTURES)"
for f in "$MODEL/config.json" "$CALIB_ALL" "$HELDOUT"; do [[ -e $f ]] || die "fixture $f is missing"; done
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is needed for wall clock and peak RSS"
[[ -f $RUN_AR ]] || die "$RUN_AR is missing"
[[ -x $PY ]] || die "no Python at $PY (set VENV to a virtualenv with torch, transformers and auto-round)"
if ! "$PY" -c "import auto_round, torch, transformers" > /dev/null 2>&1; then
  die "the Python in $VENV cannot import auto_round, torch and transformers; install them there" \
      "(pip install auto-round) or point VENV at such an environment: nothing was compared"
fi
for v in ITERS NSAMPLES SEQLEN BATCH THREADS EVAL_SEQLEN EVAL_LIMIT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v=${!v} is not a whole number"
done
(( ITERS > 0 && NSAMPLES > 0 && BATCH > 0 && THREADS > 0 )) || die "ITERS, NSAMPLES, BATCH and THREADS must be positive"
read -r -a seeds <<< "$SEEDS"
read -r -a schemes <<< "$SCHEMES"
(( ${#seeds[@]} > 0 )) || die "SEEDS is empty"
(( ${#schemes[@]} > 0 )) || die "SCHEMES is empty"

# W4G128 -> "4 128 sym"; W2G64 -> "2 64 asym"; W4G32-asym -> "4 32 asym".
parse_scheme() {
  local s=${1^^} sym
  [[ $s =~ ^W([0-9]+)G(-?[0-9]+)(-(SYM|ASYM))?$ ]] || die "scheme '$1' is not W<bits>G<group>[-sym|-asym]"
  sym=${BASH_REMATCH[4],,}
  [[ -n $sym ]] || { if (( BASH_REMATCH[1] == 2 )); then sym=asym; else sym=sym; fi; }
  echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]} $sym"
}
for s in "${schemes[@]}"; do parse_scheme "$s" > /dev/null; done

[[ -n $OUT && $OUT != / && $(realpath -m "$OUT") != "$ROOT" && $(realpath -m "$OUT") != "$FIX"* ]] || die "refusing OUT_DIR '$OUT'"
rm -rf "$OUT"; mkdir -p "$OUT/logs" "$OUT/runs" "$OUT/bin"
# Run a copy: a rebuild of $BUILD during the (long) benchmark must not mix two builds' numbers.
cp "$AR" "$OUT/bin/autoround"
AR_SRC=$AR
AR=$OUT/bin/autoround
TSV=$OUT/runs.tsv
compile_flag=(); [[ $TORCH_COMPILE == 1 ]] && compile_flag=(--torch_compile)
printf 'scheme\ttool\tseed\twall_s\tpeak_rss_mib\theldout_ppl\tmodel_dir\n' > "$TSV"
export OMP_NUM_THREADS=$THREADS

# The same samples for both tools: the first NSAMPLES lists, each cut to SEQLEN. (Given the
# whole 256-list file, our quantize would draw a seed-dependent NSAMPLES of them, while
# run_autoround.py takes the first NSAMPLES; with exactly NSAMPLES lists both use all of them.)
CALIB=$OUT/calib_${NSAMPLES}x${SEQLEN}.ids.json
"$PY" - "$CALIB_ALL" "$NSAMPLES" "$SEQLEN" "$CALIB" <<'EOF'
import json, sys
src, n, L, dst = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
docs = json.load(open(src))
picked = [d[:L] for d in docs[:n]]
if len(picked) < n or any(len(d) < L for d in picked):
    sys.exit(f"vs_autoround: {src} has fewer than {n} lists of at least {L} ids")
json.dump(picked, open(dst, "w"))
EOF

# ------------------------------------------------------------------ what is compared on what
echo "# vs_autoround: $(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname)"
echo "# cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) logical cpus"
flags=$(grep -o -w -E 'avx512[a-z0-9_]*|amx[a-z0-9_]*' /proc/cpuinfo | sort -u | tr '\n' ' ' || true)
echo "# cpu flags (avx512*/amx*): ${flags:-none}"
if grep -q -w avx512_bf16 /proc/cpuinfo; then
  echo "#   avx512_bf16 present: AutoRound tunes with bf16 autocast (amp), ours with bf16 matmul inputs (--amp auto)"
else
  echo "#   no avx512_bf16: AutoRound turns amp off (fp32 tuning); ours tunes in fp32 too"
fi
"$AR" --version | sed 's/^/# ours: /'
echo "# ours: copy of $AR_SRC ($(date -u -r "$AR_SRC" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$AR" | cut -c1-12))"
"$PY" -c "import sys, auto_round, torch, transformers; print(f'# python {sys.version.split()[0]}, auto_round {auto_round.__version__}, torch {torch.__version__}, transformers {transformers.__version__}')" 2>/dev/null
echo "# ours: tree at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (src has uncommitted changes now)')"
echo "# model: $MODEL"
echo "# calibration: $CALIB (first $NSAMPLES lists of $(basename "$CALIB_ALL"), $SEQLEN ids each)"
echo "# held-out: $HELDOUT, windows of $EVAL_SEQLEN$( (( EVAL_LIMIT > 0 )) && echo ", first $EVAL_LIMIT windows")"
echo "# settings: iters $ITERS, nsamples $NSAMPLES, seqlen $SEQLEN, batch_size $BATCH, seeds ${seeds[*]}, threads $THREADS (OMP_NUM_THREADS; torch.set_num_threads)"
echo "# AutoRound torch.compile: $( [[ $TORCH_COMPILE == 1 ]] && echo on || echo 'off (TORCH_COMPILE=1 turns it on)')"
echo "# schemes: $(for s in "${schemes[@]}"; do read -r b g y <<< "$(parse_scheme "$s")"; printf 'W%sG%s-%s ' "$b" "$g" "$y"; done)"
echo "# output: $OUT"

# ------------------------------------------------------------------ helpers
# Runs a command under /usr/bin/time -v; sets WALL (s) and RSS (MiB). Exits on failure.
timed() {  # name, log, command...
  local name=$1 log=$2; shift 2
  local tf="$OUT/logs/$name.time"
  if ! /usr/bin/time -v -o "$tf" "$@" > "$log" 2>&1; then
    echo "vs_autoround: $name failed, see $log" >&2; tail -15 "$log" >&2; exit 1
  fi
  WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s}' "$tf")
  RSS=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$tf")
  [[ -n $WALL && -n $RSS ]] || die "could not read wall clock / RSS from $tf"
}

# Held-out perplexity of a model folder by our eval; sets PPL.
heldout_ppl() {  # name, model dir
  local log="$OUT/logs/$1.eval.log" lim=()
  (( EVAL_LIMIT > 0 )) && lim=(--limit "$EVAL_LIMIT")
  if ! "$AR" eval --model "$2" --dataset "$HELDOUT" --seqlen "$EVAL_SEQLEN" "${lim[@]}" > "$log" 2>&1; then
    echo "vs_autoround: eval of $2 failed, see $log" >&2; tail -15 "$log" >&2; exit 1
  fi
  PPL=$(sed -n 's/^perplexity: \([0-9.eE+-]*\).*/\1/p' "$log" | head -1)
  [[ -n $PPL ]] || die "no 'perplexity:' line in $log"
}

# ------------------------------------------------------------------ the unquantized reference
heldout_ppl reference "$MODEL"
printf 'unquantized\treference\t-\t\t\t%s\t%s\n' "$PPL" "$MODEL" >> "$TSV"
echo "[unquantized] held-out ppl $PPL"

# ------------------------------------------------------------------ the runs
for s in "${schemes[@]}"; do
  read -r bits group sym <<< "$(parse_scheme "$s")"
  tag="W${bits}G${group}-${sym}"
  for seed in "${seeds[@]}"; do
    # AutoRound (Python, CPU; torch.compile only with TORCH_COMPILE=1: see VS_AUTOROUND.md)
    name="${tag}.autoround.s$seed"
    dir="$OUT/runs/$tag/autoround-s$seed"
    timed "$name" "$OUT/logs/$name.log" "$PY" "$RUN_AR" --model "$MODEL" --calib "$CALIB" --out "$dir" \
      --bits "$bits" --group_size "$group" "--$sym" --iters "$ITERS" --nsamples "$NSAMPLES" --seqlen "$SEQLEN" \
      --batch_size "$BATCH" --seed "$seed" --format auto_round --threads "$THREADS" "${compile_flag[@]}"
    qdir=$(find "$dir" -name config.json -printf '%h\n' | sort | head -1)
    [[ -n $qdir ]] || die "AutoRound wrote no config.json under $dir (log: $OUT/logs/$name.log)"
    grep -q "amp is set to FALSE" "$OUT/logs/$name.log" && amp_note=", amp off (fp32)" || amp_note=""
    heldout_ppl "$name" "$qdir"
    printf '%s\tautoround\t%s\t%s\t%s\t%s\t%s\n' "$tag" "$seed" "$WALL" "$RSS" "$PPL" "$qdir" >> "$TSV"
    printf '[%s] autoround seed %-4s wall %8.1f s  peak RSS %8.1f MiB  held-out ppl %s%s\n' \
      "$tag" "$seed" "$WALL" "$RSS" "$PPL" "$amp_note"

    # ours
    name="${tag}.ours.s$seed"
    qdir="$OUT/runs/$tag/ours-s$seed"
    symflag=(); [[ $sym == asym ]] && symflag=(--asym)
    timed "$name" "$OUT/logs/$name.log" "$AR" quantize --model "$MODEL" --dataset "$CALIB" \
      --bits "$bits" --group_size "$group" "${symflag[@]}" --iters "$ITERS" --nsamples "$NSAMPLES" \
      --seqlen "$SEQLEN" --batch_size "$BATCH" --seed "$seed" --format auto_round --output_dir "$qdir"
    [[ -f $qdir/config.json ]] || die "our quantize wrote no $qdir/config.json (log: $OUT/logs/$name.log)"
    rm -rf "$qdir.autoround_work"
    heldout_ppl "$name" "$qdir"
    printf '%s\tours\t%s\t%s\t%s\t%s\t%s\n' "$tag" "$seed" "$WALL" "$RSS" "$PPL" "$qdir" >> "$TSV"
    printf '[%s] ours      seed %-4s wall %8.1f s  peak RSS %8.1f MiB  held-out ppl %s\n' \
      "$tag" "$seed" "$WALL" "$RSS" "$PPL"
  done
done

# ------------------------------------------------------------------ the table
echo
"$PY" - "$TSV" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
ref = next(r for r in rows if r["tool"] == "reference")
runs = [r for r in rows if r["tool"] != "reference"]
schemes = list(dict.fromkeys(r["scheme"] for r in runs))

def stats(xs):
    return sum(xs) / len(xs), min(xs), max(xs)

def spread(xs, fmt):
    m, lo, hi = stats(xs)
    return f"{m:{fmt}} ({lo:{fmt}}-{hi:{fmt}})" if len(xs) > 1 else f"{m:{fmt}}"

head = ["scheme", "tool", "runs", "wall s mean (min-max)", "peak RSS MiB (max)", "held-out ppl mean (min-max)"]
table = [["-", "unquantized", "-", "-", "-", f"{float(ref['heldout_ppl']):.4f}"]]
summary = []
for s in schemes:
    by = {}
    for tool in ("autoround", "ours"):
        sel = [r for r in runs if r["scheme"] == s and r["tool"] == tool]
        wall = [float(r["wall_s"]) for r in sel]
        rss = [float(r["peak_rss_mib"]) for r in sel]
        ppl = [float(r["heldout_ppl"]) for r in sel]
        by[tool] = (wall, rss, ppl)
        table.append([s, "AutoRound" if tool == "autoround" else "ours", str(len(sel)), spread(wall, ".1f"),
                      f"{max(rss):.1f}", spread(ppl, ".4f")])
    (aw, ar_, ap), (ow, or_, op) = by["autoround"], by["ours"]
    a_mean, a_lo, a_hi = stats(ap)
    o_mean = stats(op)[0]
    if o_mean < a_lo:
        verdict = f"better than every AutoRound seed (ours {o_mean:.4f} < AutoRound min {a_lo:.4f})"
    elif o_mean <= a_hi:
        verdict = f"within AutoRound's seed range [{a_lo:.4f}, {a_hi:.4f}] (ours {o_mean:.4f})"
    else:
        verdict = (f"worse: ours {o_mean:.4f} is above AutoRound's worst seed {a_hi:.4f} "
                   f"by {o_mean - a_hi:.4f} ({100 * (o_mean - a_hi) / a_hi:.2f} %)")
    if len(ap) == 1:
        verdict += "; one seed, so no spread"
    summary.append(f"{s}: time ours/AutoRound {stats(ow)[0] / stats(aw)[0]:.3f} (mean wall), "
                   f"RSS ours/AutoRound {max(or_) / max(ar_):.3f} (max peak); held-out ppl: {verdict}")
w = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(head)]
line = lambda cells: "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(cells)) + " |"
print(line(head))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in table:
    print(line(r))
print()
for s in summary:
    print(s)
EOF
echo
echo "raw numbers: $TSV; logs: $OUT/logs"

# ------------------------------------------------------------------ optional transformers cross-check
if [[ $TF_CHECK == 1 ]]; then
  echo
  echo "# TF_CHECK: one AutoRound and one of our outputs scored by transformers (auto-round's inference backend) too"
  first=${schemes[0]}
  read -r bits group sym <<< "$(parse_scheme "$first")"
  tag="W${bits}G${group}-${sym}"
  TF_WINDOWS=${TF_WINDOWS:-32}
  for tool in autoround ours; do
    qdir=$(awk -F'\t' -v s="$tag" -v t="$tool" -v d="${seeds[0]}" '$1 == s && $2 == t && $3 == d {print $7}' "$TSV")
    log="$OUT/logs/tf_check.$tool.log"
    "$AR" eval --model "$qdir" --dataset "$HELDOUT" --seqlen "$EVAL_SEQLEN" --limit "$TF_WINDOWS" > "$log.ours_eval" 2>&1 \
      || die "eval for TF_CHECK failed, see $log.ours_eval"
    ours_ppl=$(sed -n 's/^perplexity: \([0-9.eE+-]*\).*/\1/p' "$log.ours_eval" | head -1)
    ECO_TORCH_THREADS=$THREADS "$PY" - "$ROOT/bench/ecosystem" "$qdir" "$HELDOUT" "$EVAL_SEQLEN" "$TF_WINDOWS" \
        "$tag" "$tool" "$ours_ppl" > "$log" 2>&1 <<'EOF' || { tail -15 "$log" >&2; die "TF_CHECK failed, see $log"; }
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import ecolib
qdir, ids, seqlen, n, tag, tool, ours = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7], float(sys.argv[8])
wins = ecolib.windows_of(Path(ids), seqlen, n)
tf = ecolib.ppl_from_logits(ecolib.hf_logits(Path(qdir), wins, device_map="cpu"), wins)
print(f"TF_CHECK [{tag}] {tool} output, first {len(wins)} held-out windows: transformers ppl {tf:.6f}, "
      f"our eval {ours:.6f}, relative difference {abs(tf - ours) / ours:.2e}")
EOF
    grep '^TF_CHECK' "$log"
  done
fi
