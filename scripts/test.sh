#!/usr/bin/env bash
# Builds and runs every test. Tests needing ../shared/fixtures skip with a message when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
ctest --test-dir build --output-on-failure -j2
