#!/bin/bash
# FP8 -> BF16 and BF16 -> FP8 on a v3-layer mkmodel checkpoint (DeepSeek-V3's real per-layer
# dimensions), each timed against `cp -r` of the same input in the same run; prints throughput
# ratios and peak RSS. Goal (issue 4): >= 0.8x cp throughput, peak RSS < 1 GB.
# usage: bench/convert.sh [WORKDIR] [EXPERTS]   (default 32 experts: ~5.7 GB FP8 input;
#        256 experts (the real count) needs ~60 GB of free disk)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/deepcast-bench-convert}
experts=${2:-32}
dc=$PWD/build/deepcast
[ -x "$dc" ] || bash scripts/build.sh
rm -rf "$work"; mkdir -p "$work"
$dc mkmodel "$work/fp8" --preset v3-layer --layers 2 --dense 1 --experts "$experts" --no-tokenizer
sync
. bench/lib.sh
in1=$(du -sb "$work/fp8" | cut -f1)
read -r _ cps1 _ < <(measure cp cp -r "$work/fp8" "$work/cp1")
rm -rf "$work/cp1"
read -r _ cs1 rss1 < <(measure convert $dc convert "$work/fp8" "$work/bf16" --to bf16)
out1=$(du -sb "$work/bf16" | cut -f1)
report "FP8 -> BF16" "$in1" "$out1" "$cs1" "$rss1" "$cps1"
rm -rf "$work/fp8"
read -r _ cps2 _ < <(measure cp cp -r "$work/bf16" "$work/cp2")
rm -rf "$work/cp2"
read -r _ cs2 rss2 < <(measure convert $dc convert "$work/bf16" "$work/fp8b" --to fp8)
out2=$(du -sb "$work/fp8b" | cut -f1)
report "BF16 -> FP8" "$out1" "$out2" "$cs2" "$rss2" "$cps2"
rm -rf "$work"
