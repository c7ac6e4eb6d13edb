#!/usr/bin/env bash
# Installs every Debian package the build and tests need. Safe to re-run.
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config
      libdnnl-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libutf8proc-dev
      libgtest-dev googletest libomp-dev
      clang libclang-rt-dev llvm   # sanitizer build + libFuzzer (scripts/sanitize.sh, bench/fuzz.sh)
      openmpi-bin libopenmpi-dev   # data-parallel quantize under mpirun (tests run 2 ranks)
      python3-venv python3-dev)    # the Python module (a venv in build/ gets nanobind etc. from PyPI)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "setup: all packages present"
