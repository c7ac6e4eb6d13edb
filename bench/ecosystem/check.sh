#!/usr/bin/env bash
# Ecosystem oracles (issue #15 part 2): do our auto_round / auto_gptq / fake / GGUF outputs load in
# transformers, auto-round, llama-cpp-python with the logits our `eval` computes, and does our eval
# read AutoRound's own checkpoints?  Outside CI: needs a venv with the heavy packages (created by
# hand, see RESULTS.md) and a built build/autoround; builds and installs nothing itself.
#
#   VENV=/work/venv-eco bench/ecosystem/check.sh [pytest args, e.g. -k gguf]
#
# Outputs go to build/ecosystem (ECO_OUT); results (one JSON line per comparison) to
# build/ecosystem/results.jsonl, printed as a table at the end.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
VENV="${VENV:-/work/venv-eco}"
py="$VENV/bin/python"
[[ -x "$py" ]] || { echo "no python in VENV=$VENV (python3 -m venv it and pip install the packages in RESULTS.md)"; exit 2; }
[[ -x "$repo/build/autoround" ]] || { echo "build/autoround missing: run ./scripts/build.sh first"; exit 2; }
export ECO_OUT="${ECO_OUT:-$repo/build/ecosystem}"
export ECO_RESULTS="${ECO_RESULTS:-$ECO_OUT/results.jsonl}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
mkdir -p "$ECO_OUT"
: > "$ECO_RESULTS"
"$py" - <<'PY'
import importlib.metadata as md
for p in ["torch", "transformers", "accelerate", "safetensors", "numpy", "gguf", "auto-round", "compressed-tensors", "llama_cpp_python",
          "optimum", "gptqmodel", "auto-gptq", "pytest"]:
    try:
        print(f"  {p}=={md.version(p)}")
    except md.PackageNotFoundError:
        print(f"  {p}: not installed")
PY
"$repo/build/autoround" --version
cd "$here"
"$py" make_outputs.py
set +e
"$py" -m pytest -v -rs "$here/test_ecosystem.py" "$here/test_reverse.py" "$here/test_awq_fp.py" "$@"
rc=$?
# llm_compressor (compressed-tensors) output decompressed by the compressed-tensors package itself
# (issue 19); ECO_SKIP_LLMC=1 skips it.
if [[ ${ECO_SKIP_LLMC:-0} != 1 ]]; then
  if "$py" -c "import compressed_tensors" 2>/dev/null; then
    "$py" "$here/check_llm_compressor.py" || rc=1
  else
    echo "compressed-tensors not installed in $VENV: llm_compressor check skipped ($VENV/bin/pip install compressed-tensors)"
  fi
fi
set -e
"$py" report.py "$ECO_RESULTS"
exit $rc
