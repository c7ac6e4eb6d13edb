#!/usr/bin/env bash
# One command on a fresh machine: installs the packages, builds, generates a small random-weight
# Llama-shaped model with its own tokenizer, and runs the main job on it with the built-in text.
# (Today the main job is perplexity evaluation; quantization joins it as it lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
DEMO=build/demo
mkdir -p "$DEMO"
./build/autoround generate --preset tiny --output_dir "$DEMO/model" --overwrite
./build/autoround eval --model "$DEMO/model" --dataset builtin --seqlen 128
