#!/bin/bash
# deepcast convert --to w4a16|gptq|awq|nvfp4|mxfp4 (default clip search) on a v3-layer mkmodel
# checkpoint (DeepSeek-V3's real per-layer dimensions; the FP8 release layout), timed against
# `cp -r` of the same input. Prints MB/s of input, the 4-bit weights produced per second, peak RSS,
# and the same conversion with the AVX2 fast paths off (DC_QUANTS_SCALAR=1: the speed-up; the
# output must be byte-identical, checked). Routed experts only (--scope experts, the default).
# usage: bench/int4_convert.sh [WORKDIR] [EXPERTS] [LAYOUTS]   (defaults: 16 experts, ~2 GB FP8;
#        all five layouts)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/deepcast-bench-int4}
experts=${2:-16}
layouts=${3:-w4a16 gptq awq nvfp4 mxfp4}
dc=$PWD/build/deepcast
[ -x "$dc" ] || bash scripts/build.sh
rm -rf "$work"; mkdir -p "$work"
$dc -q mkmodel "$work/fp8" --preset v3-layer --layers 2 --dense 1 --experts "$experts" --vocab 16384 --no-tokenizer
sync
. bench/lib.sh
in=$(du -sb "$work/fp8" | cut -f1)
read -r _ cps _ < <(measure cp cp -r "$work/fp8" "$work/cp")
rm -rf "$work/cp"
echo "threads: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); input $((in / 1000000)) MB FP8;" \
     "cp -r: $(python3 -c "print(f'{$in/1e6/$cps:.0f}')") MB/s"
echo "| layout | s | MB/s of input | ratio to cp | M 4-bit weights/s | peak RSS MB | scalar s | AVX2 speed-up |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for L in $layouts; do
    read -r _ s rss < <(measure $L $dc convert "$work/fp8" "$work/$L" --to $L --force)
    # 4-bit weights written: two per packed byte of the 4-bit tensors
    w4=$(python3 - "$work/$L" <<'PY'
import glob, json, struct, sys
n = 0
for p in glob.glob(sys.argv[1] + "/*.safetensors"):
    with open(p, "rb") as f:
        h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    for k, v in h.items():
        if k.endswith(("weight_packed", "qweight")) or (v.get("dtype") == "U8" and k.endswith(".weight")):
            a, b = v["data_offsets"]
            n += 2 * (b - a)
print(n)
PY
)
    read -r _ s0 _ < <(DC_QUANTS_SCALAR=1 measure $L $dc convert "$work/fp8" "$work/$L-scalar" --to $L --force)
    same=$(diff -rq "$work/$L" "$work/$L-scalar" >/dev/null && echo yes || echo NO)
    python3 - "$L" "$in" "$s" "$cps" "$w4" "$rss" "$s0" "$same" <<'PY'
import sys
L, bi, s, cps, w4, rss, s0, same = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), sys.argv[8]
print(f"| {L} | {s:.1f} | {bi/1e6/s:.0f} | {cps/s:.2f}x | {w4/1e6/s:.0f} | {rss:.0f} | {s0:.1f} | {s0/s:.1f}x"
      f"{'' if same == 'yes' else ' (OUTPUT DIFFERS)'} |")
PY
    rm -rf "$work/$L" "$work/$L-scalar"
done
rm -rf "$work"
