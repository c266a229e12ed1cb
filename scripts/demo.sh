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
echo "== deepcast mkmodel --preset v3-tiny-fp8, then inspect --check"
$dc mkmodel "$out/mk" --preset v3-tiny-fp8 --seed 42
$dc inspect "$out/mk" --check --no-tensors | tail -3
echo "demo outputs in $out"
