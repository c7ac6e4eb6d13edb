#!/usr/bin/env bash
# RTN / optimized-RTN GGUF throughput against llama-quantize (issue #18): an 8-block Qwen3-4B-shaped
# synthetic F16 model, `quantize --iters 0 --format gguf:q4_0` and `gguf:q4_k_m` (plain RTN with
# --disable_opt_rtn, and the default optimized RTN) vs `llama-quantize F16.gguf out.gguf Q4_0|Q4_K_M
# THREADS` on the F16 GGUF our tool writes of the same model, same thread count, in one run.
# Prints per row wall seconds, MB/s and ours/theirs throughput (goal >= 1.0); see bench/RTN_VS_LLAMA.md.
#   bench/rtn_vs_llama_quantize.sh [BUILD_DIR]
#   env: LLAMA_QUANTIZE=/work/llama.cpp/build/bin/llama-quantize (absent: prints "skipped" and exits 0)
#        THREADS=$(nproc) NUM_LAYERS=8 PRESET=qwen3-4b REPEATS=1 (best of N) BENCH_TMP=/tmp KEEP=0
# MB/s = bytes of the block linear weights in F16 (q/k/v/o, gate/up/down of every block; the
# embedding and norms excluded, though both tools convert those too) / 1e6 / wall seconds.
# Needs ~3x the model's size of free disk in BENCH_TMP (8 blocks: ~7 GB); run it on an idle machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
AR="$BUILD/autoround"
LQ=${LLAMA_QUANTIZE:-/work/llama.cpp/build/bin/llama-quantize}
THREADS=${THREADS:-$(nproc)} NUM_LAYERS=${NUM_LAYERS:-8} PRESET=${PRESET:-qwen3-4b} REPEATS=${REPEATS:-1}
[[ -x $AR ]] || { echo "rtn_vs_llama_quantize: no autoround binary in $BUILD" >&2; exit 1; }
if [[ ! -x $LQ ]]; then
  echo "rtn_vs_llama_quantize: skipped: no llama-quantize at $LQ (build it outside the repo, see bench/RTN_VS_LLAMA.md, or set LLAMA_QUANTIZE)"
  exit 0
fi
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
TMP=$(mktemp -d "${BENCH_TMP:-/tmp}/ar_rtn_vs_lq.XXXXXX")
if [[ ${KEEP:-0} == 1 ]]; then echo "# keeping $TMP (KEEP=1): the model, its F16 GGUF and the logs" >&2
else trap 'rm -rf "$TMP"' EXIT; fi

die() { echo "rtn_vs_llama_quantize: $*" >&2; exit 1; }
logfail() { echo "rtn_vs_llama_quantize: $1 failed:" >&2; tail -5 "$2" >&2; exit 1; }

# 1. The model (HF folder, F16 safetensors) and its F16 GGUF, both written by our tool.
"$AR" generate --preset "$PRESET" --num_layers "$NUM_LAYERS" --dtype f16 --seed 0 --output_dir "$TMP/model" \
  > "$TMP/generate.log" 2>&1 || logfail generate "$TMP/generate.log"
model_bytes=$(du -sb "$TMP/model" | cut -f1)
avail=$(( $(df --output=avail -B1 "$TMP" | tail -1) ))
(( avail > 2 * model_bytes + 512 * 1024 * 1024 )) ||
  die "not enough free disk in $TMP: $(numfmt --to=iec "$avail") free, need ~$(numfmt --to=iec $((2 * model_bytes))) more"
OMP_NUM_THREADS=$THREADS "$AR" quantize --model "$TMP/model" --iters 0 --format gguf:f16 --output_dir "$TMP/f16" \
  > "$TMP/f16.log" 2>&1 || logfail "F16 GGUF export" "$TMP/f16.log"
F16=$(ls "$TMP"/f16/*.gguf)
[[ -f $F16 ]] || die "no F16 GGUF in $TMP/f16"

# What MB/s counts: the F16 bytes of the block linears, read from the safetensors headers.
read -r LIN_BYTES ALL_BYTES LIN_N < <(python3 - "$TMP/model" <<'EOF'
import glob, json, re, struct, sys
lin = re.compile(r"model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$")
lb = ab = n = 0
for f in sorted(glob.glob(sys.argv[1] + "/*.safetensors")):
    with open(f, "rb") as h:
        hdr = json.loads(h.read(struct.unpack("<Q", h.read(8))[0]))
    for k, v in hdr.items():
        if k == "__metadata__": continue
        size = v["data_offsets"][1] - v["data_offsets"][0]
        ab += size
        if lin.match(k):
            assert v["dtype"] == "F16", (k, v["dtype"])
            lb += size; n += 1
print(lb, ab, n)
EOF
)
(( LIN_N == 7 * NUM_LAYERS )) || die "expected $((7 * NUM_LAYERS)) block linears, counted $LIN_N"

warm() { cat "$@" > /dev/null; }  # both tools read their input from the page cache

# run NAME CMD...: wall seconds of CMD (output to NAME.log), then of a `sync` right after it (ours
# fsyncs its output before renaming it into place; llama-quantize leaves its dirty pages to the
# kernel). The best of REPEATS is kept, with its sync time.
declare -A BEST SYNC OUTB BLOCKS
run() {
  local name=$1; shift
  local t0 t1 t2 s
  sync
  t0=$(date +%s.%N)
  "$@" > "$TMP/$name.log" 2>&1 || logfail "$name" "$TMP/$name.log"
  t1=$(date +%s.%N)
  sync
  t2=$(date +%s.%N)
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  if [[ -z ${BEST[$name]:-} ]] || awk -v s="$s" -v b="${BEST[$name]}" 'BEGIN { exit !(s < b) }'; then
    BEST[$name]=$s
    SYNC[$name]=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')
    # ours logs each block's seconds ("[k/N] block k-1: X s"): their sum is the blocks' share
    BLOCKS[$name]=$(awk '/^\[[0-9]+\/[0-9]+\] block [0-9]+: / { s += $4 } END { printf "%.1f", s }' "$TMP/$name.log")
  fi
}
ours() {  # name mix [flags...]: safetensors folder -> <output_dir>/model-<MIX>.gguf
  local name=$1 mix=$2; shift 2
  rm -rf "$TMP/out_$name"
  warm "$TMP"/model/*.safetensors
  run "$name" env OMP_NUM_THREADS="$THREADS" "$AR" quantize --model "$TMP/model" --iters 0 --format "gguf:$mix" \
    --output_dir "$TMP/out_$name" "$@"
  local f; f=$(ls "$TMP/out_$name"/*.gguf)
  OUTB[$name]=$(stat -c %s "$f")
  mv "$f" "$TMP/$name.gguf"; rm -rf "$TMP/out_$name"
  [[ $name != *_copy ]] || rm -f "$TMP/$name.gguf"
}
theirs() {  # name TYPE [flags...]: F16 GGUF -> GGUF
  local name=$1 type=$2; shift 2
  rm -f "$TMP/$name.gguf"
  warm "$F16"
  run "$name" "$LQ" "$@" "$F16" "$TMP/$name.gguf" "$type" "$THREADS"
  OUTB[$name]=$(stat -c %s "$TMP/$name.gguf")
  [[ $name != *_copy && $name != *_embf16 ]] || rm -f "$TMP/$name.gguf"
}

# Same work? The files' metadata order differs (llama-quantize appends the keys it sets), so the
# tensors are compared: name, shape, type and the sha256 of each tensor's data.
same() {
  python3 - "$TMP/$1.gguf" "$TMP/$2.gguf" <<'EOF'
import hashlib, mmap, struct, sys
def tensors(path):  # name -> (dims, type, sha256 of its data up to the next tensor)
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    pos = 0
    def rd(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos); pos += struct.calcsize("<" + fmt); return v[0]
    def rstr():
        nonlocal pos
        n = rd("Q"); s = data[pos:pos + n]; pos += n; return s.decode("utf-8", "replace")
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    def rval(t):
        if t == 8: return rstr()
        if t == 9:
            et, n = rd("I"), rd("Q"); return [rval(et) for _ in range(n)]
        return rd(scalar[t])
    assert data[:4] == b"GGUF", path
    pos = 4; rd("I"); nt, nkv = rd("Q"), rd("Q")
    kv = {}
    for _ in range(nkv):
        k = rstr(); kv[k] = rval(rd("I"))
    info = []
    for _ in range(nt):
        name = rstr(); dims = [rd("Q") for _ in range(rd("I"))]; typ = rd("I"); off = rd("Q")
        info.append((name, tuple(dims), typ, off))
    align = kv.get("general.alignment", 32)
    start = (pos + align - 1) // align * align
    offs = sorted(o for *_, o in info) + [len(data) - start]
    out = {}
    for name, dims, typ, off in info:
        end = offs[offs.index(off) + 1]
        out[name] = (dims, typ, hashlib.sha256(data[start + off:start + end]).hexdigest())
    return out
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
diff = sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))
print(f"identical ({len(a)} tensors)" if not diff else f"{len(diff)} of {len(a | b)} tensors differ, e.g. {diff[0]}")
EOF
}
# compared once (the first repeat), then dropped: disk holds at most the model, the F16 GGUF and one copy
declare -A SAME
compare_and_drop() {  # mix
  local m=$1
  if [[ -z ${SAME[$m]:-} ]]; then
    SAME[$m]="ours vs llama-quantize: $(same "ours_$m" "lq_$m"); our RTN vs opt-RTN: $(same "ours_${m}_rtn" "ours_$m")"
  fi
  rm -f "$TMP/ours_$m.gguf" "$TMP/ours_${m}_rtn.gguf" "$TMP/lq_$m.gguf"
}

# Interleaved, so that a change of machine load hits both tools alike.
for ((r = 0; r < REPEATS; r++)); do
  ours ours_copy f16;                             theirs lq_copy COPY
  ours ours_q4_0_rtn q4_0 --disable_opt_rtn
  ours ours_q4_0 q4_0;                            theirs lq_q4_0 Q4_0
  compare_and_drop q4_0
  theirs lq_q4_0_embf16 Q4_0 --token-embedding-type f16
  ours ours_q4_k_m_rtn q4_k_m --disable_opt_rtn
  ours ours_q4_k_m q4_k_m;                        theirs lq_q4_k_m Q4_K_M
  compare_and_drop q4_k_m
  theirs lq_q4_k_m_embf16 Q4_K_M --token-embedding-type f16
done

row() {  # label name [theirs-name]: wall, MB/s, wall + sync, output size, ours/theirs (their s / our s) plain and + sync
  local t= ts=; [[ -z ${3:-} ]] || { t=${BEST[$3]}; ts=${SYNC[$3]}; }
  awk -v l="$1" -v s="${BEST[$2]}" -v ss="${SYNC[$2]}" -v t="$t" -v ts="$ts" -v b="$LIN_BYTES" \
    -v o="$(numfmt --to=iec "${OUTB[$2]}")" 'BEGIN {
      printf "%-40s %7.2f s %7.1f MB/s %7.2f s %7s  %5s  %5s\n", l, s, b / 1e6 / s, s + ss, o,
        t == "" ? "-" : sprintf("%.2f", t / s), t == "" ? "-" : sprintf("%.2f", (t + ts) / (s + ss)) }'
}

lq_ver=$(grep -m1 -i '^version' "$TMP/lq_q4_0.log" || true)
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cpus, load average at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# ours: $("$AR" --version | tail -1)"
echo "# llama-quantize: $LQ${lq_ver:+ ($lq_ver)}"
echo "# model: $PRESET, $NUM_LAYERS blocks, F16 safetensors $(numfmt --to=iec "$ALL_BYTES") of tensors; F16 GGUF $(numfmt --to=iec "$(stat -c %s "$F16")")"
echo "# MB/s = the $LIN_N block linears in F16, $LIN_BYTES bytes ($((LIN_BYTES / 1000000)) MB), / 1e6 / wall s; all F16 tensors: $ALL_BYTES bytes"
echo "# $THREADS threads (OMP_NUM_THREADS / llama-quantize's nthreads), best of $REPEATS, input in the page cache"
printf '%-40s %9s %12s %9s %7s  %5s  %5s\n' "row" "wall" "throughput" "+sync" "output" "ratio" "+sync"
row "ours f16 (safetensors -> F16 GGUF)" ours_copy lq_copy
row "llama-quantize COPY (GGUF -> GGUF)" lq_copy
row "ours q4_0 RTN (--disable_opt_rtn)" ours_q4_0_rtn lq_q4_0
row "ours q4_0 opt-RTN (default)" ours_q4_0 lq_q4_0
row "llama-quantize Q4_0" lq_q4_0
row "ours q4_k_m RTN (--disable_opt_rtn)" ours_q4_k_m_rtn lq_q4_k_m
row "ours q4_k_m opt-RTN (default)" ours_q4_k_m lq_q4_k_m
row "llama-quantize Q4_K_M" lq_q4_k_m
echo "# ratio = ours/theirs throughput = their wall s / our wall s (goal >= 1.0); +sync: with each run's following sync"
# Where the time goes. In both mixes the tied token_embd (151936 x 2560 for qwen3-4b) becomes Q6_K
# in both tools: at 8 blocks it is a third of the F16 bytes and most of a Q4_0 run.
net() { awk -v a="${BEST[$1]}" -v c="${BEST[$2]}" -v b="$LIN_BYTES" \
  'BEGIN { if (a > c) printf "%.2f s, %.1f MB/s", a - c, b / 1e6 / (a - c); else printf "n/a (not above its copy)" }'; }
for m in q4_0 q4_k_m; do
  M=${m^^}
  echo "# $m, the wall time less the same tool's copy run: ours $(net "ours_$m" ours_copy) | llama-quantize $(net "lq_$m" lq_copy)"
  echo "# $m, the blocks alone: ours $(awk -v s="${BLOCKS[ours_$m]}" -v b="$LIN_BYTES" 'BEGIN { printf "%.1f s, %.1f MB/s", s, b / 1e6 / s }') (sum of its per-block log times)" \
    "| llama-quantize $M --token-embedding-type f16 (embedding copied; start-up and the copy included): $(awk -v s="${BEST[lq_${m}_embf16]}" -v b="$LIN_BYTES" 'BEGIN { printf "%.2f s, %.1f MB/s", s, b / 1e6 / s }')"
done
echo "# same tensors (name, shape, type, data), q4_0: ${SAME[q4_0]}"
echo "# same tensors (name, shape, type, data), q4_k_m: ${SAME[q4_k_m]}"
echo "# whole script: ${SECONDS} s"
