#!/bin/bash
# The main job on bundled tiny models: build, then inspect and hash the bundled FP8 oracle
# checkpoint (DeepSeek-V3 layout, made by DeepSeek's own code), and make + check a synthetic one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
dc=build/deepcast
out=$(mktemp -d /tmp/deepcast-demo.XXXXXX)
sh tests/data/extract.sh "$out/data"
model="$out/data/oracle/models/v3-fp8"
echo "== deepcast inspect $model"
$dc inspect "$model" --check --no-tensors
echo "== deepcast hash (first lines)"
$dc hash "$model" | head -5
echo "== deepcast convert (FP8 -> BF16, bit-identical to DeepSeek's fp8_cast_bf16.py)"
$dc convert "$model" "$out/bf16" --to bf16
echo "== deepcast perplexity on the FP8 model (200 tokens the model generated itself)"
$dc perplexity "$model" --tokens "$out/data/oracle/golden/v3-fp8/gen200.tokens.json"
echo "== deepcast kld FP8 vs its BF16 conversion (identical weights: KLD 0)"
$dc kld "$model" "$out/bf16" --tokens "$out/data/oracle/golden/v3-fp8/gen200.tokens.json" | head -6
echo "== deepcast mkmodel --preset v3-tiny-fp8, then inspect --check"
$dc mkmodel "$out/mk" --preset v3-tiny-fp8 --seed 42
$dc inspect "$out/mk" --check --no-tensors | tail -3
echo "demo outputs in $out"
