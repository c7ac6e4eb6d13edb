#!/usr/bin/env bash
# Builds and runs every test. Tests needing ../shared/fixtures (or $AR_FIXTURES) skip with a
# message naming the path they looked for when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
FIX=${AR_FIXTURES:-$(cd .. && pwd)/shared/fixtures}
if [[ ! -d $FIX ]]; then
  echo "note: test fixtures not found at $FIX: the tests that need them will be reported as Skipped"
  echo "      (set AR_FIXTURES to the shared fixtures folder to run them)"
fi
ctest --test-dir build --output-on-failure -j2
