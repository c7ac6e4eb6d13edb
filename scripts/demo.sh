#!/usr/bin/env bash
# One command on a fresh machine: installs the packages, builds, generates a small random-weight
# Llama-shaped model with its own tokenizer, quantizes it with SignRound (W4G32, 20 tuning steps per
# block, calibrated on the built-in text) into auto_round and fake formats, and prints original vs
# quantized perplexity.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
DEMO=build/demo
./build/autoround generate --preset tiny --output_dir "$DEMO/model" --overwrite
./build/autoround quantize --model "$DEMO/model" --output_dir "$DEMO/quantized" --format auto_round,fake \
  --bits 4 --group_size 32 --iters 20 --dataset builtin --nsamples 16 --seqlen 128 --eval builtin --eval_seqlen 128 --overwrite
