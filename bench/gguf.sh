#!/bin/bash
# FP8 Hugging Face checkpoint -> Q8_0 GGUF in one streaming pass (dequantize, rename, stack
# experts, split kv_b, quantize), on a v3-layer mkmodel checkpoint (DeepSeek-V3's real per-layer
# dimensions), timed against `cp -r` of the same input in the same run; prints the ratio and peak RSS.
# usage: bench/gguf.sh [WORKDIR] [EXPERTS]   (default 32 experts: ~5.9 GB FP8 input)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/deepcast-bench-gguf}
experts=${2:-32}
dc=$PWD/build/deepcast
[ -x "$dc" ] || bash scripts/build.sh
rm -rf "$work"; mkdir -p "$work"
$dc mkmodel "$work/fp8" --preset v3-layer --layers 2 --dense 1 --experts "$experts" --no-tokenizer
sync
. bench/lib.sh
in=$(du -sb "$work/fp8" | cut -f1)
read -r _ cps _ < <(measure cp cp -r "$work/fp8" "$work/cp")
rm -rf "$work/cp"
read -r _ cs rss < <(measure gguf $dc convert "$work/fp8" "$work/out.gguf" --to gguf --type q8_0)
out=$(stat -c %s "$work/out.gguf")
report "FP8 HF -> Q8_0 GGUF" "$in" "$out" "$cs" "$rss" "$cps"
rm -rf "$work"
