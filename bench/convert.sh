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
measure() { # label, command...: prints "label seconds rss_mb"
    local label=$1; shift
    python3 bench/peakrss.py "$@" 2>"$work/m.log" >/dev/null
    local w r
    read -r w r < <(sed -n 's/.*wall_s=\([0-9.]*\) peak_rss_mb=\([0-9.]*\).*/\1 \2/p' "$work/m.log")
    echo "$label $w $r"
}
report() { # label, bytes_in, bytes_out, convert_s, rss, cp_s
    python3 - "$@" <<'PY'
import sys
label, bi, bo, cs, rss, cps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
conv = (bi + bo) / cs / 1e9
cp = 2 * bi / cps / 1e9
print(f"{label}: {bi/1e9:.2f} GB in, {bo/1e9:.2f} GB out in {cs:.1f} s ({conv:.2f} GB/s read+write); "
      f"cp -r of the input: {cps:.1f} s ({cp:.2f} GB/s); ratio {conv/cp:.2f}x cp (goal >= 0.8x); peak RSS {rss:.0f} MB (goal < 1024)")
PY
}
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
