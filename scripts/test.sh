#!/usr/bin/env bash
# Builds and runs every test. Tests needing ../shared/fixtures (or $AR_FIXTURES) skip with a
# message naming the path they looked for when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Python module is built in the same build (the library compiles once) against a venv in
# build/ holding its build and test packages from PyPI; CTest runs its pytest suite (Python.pytest).
PYENV=build/pyenv
[[ -x $PYENV/bin/python ]] || python3 -m venv "$PYENV"
"$PYENV/bin/pip" install -q --disable-pip-version-check nanobind scikit-build-core numpy pytest
./scripts/build.sh -DAR_PYTHON=ON -DPython_EXECUTABLE="$PWD/$PYENV/bin/python"
FIX=${AR_FIXTURES:-$(cd .. && pwd)/shared/fixtures}
if [[ ! -d $FIX ]]; then
  echo "note: test fixtures not found at $FIX: the tests that need them will be reported as Skipped"
  echo "      (set AR_FIXTURES to the shared fixtures folder to run them)"
fi
# Two OpenMP threads unless told otherwise: the concurrent paths (sequences and heads in parallel,
# nested GEMMs) only run with more than one, and they are where ISA-specific races showed (#13).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
echo "test: $(./build/autoround --version | tail -1)"
ctest --test-dir build --output-on-failure -j2
# Then the same fast tests under ASan + UBSan and a smoke run of every fuzz target (clang build in
# build-fuzz; see scripts/sanitize.sh). AR_SKIP_SANITIZE=1 skips it.
if [[ ${AR_SKIP_SANITIZE:-0} != 1 ]]; then
  ./scripts/sanitize.sh
fi
