#!/bin/bash
# The KLD tables of docs/int4.md: the oracle's v3-bf16 checkpoint converted to every 4-bit layout
# and group size with each algorithm (plain RTN, RTN + clip search, clip search weighted by an
# imatrix, GPTQ), scored with `deepcast kld` against the BF16 source on the oracle's gen200
# sequence. Cells: mean KL / KL over the positions whose expert routing is unchanged / top-1 %.
# Calibration for the imatrix and GPTQ: 8000 tokens drawn uniformly from the 3000-token vocabulary
# (fixed LCG seed, as tests/cli/int4.sh): the model's weights are random, so no token is more
# typical than another; the evaluation sequence is not among them.
# usage: bench/int4_kld.sh [experts|all] [BUILD_DIR] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
scope=${1:-experts}
build=${2:-build}
work=${3:-/tmp/deepcast-int4-kld}
dc=$PWD/$build/deepcast
oracle=$PWD/$build/testdata/oracle
[ -d "$oracle" ] || sh tests/data/extract.sh "$oracle/.."
rm -rf "$work"; mkdir -p "$work"
M=$oracle/models/v3-bf16
T=$oracle/golden/v3-bf16/gen200.tokens.json
python3 tests/calib_tokens.py 8000 3000 12345 "$work/calib.json"
$dc -q imatrix "$M" --tokens "$work/calib.json" --ctx 200 -o "$work/im.gguf"
cell() {
    $dc -q convert "$M" "$work/out" --scope "$scope" --force "$@"
    $dc kld "$M" "$work/out" --tokens "$T" --json 2>/dev/null | python3 -c "
import json, sys
d = json.load(sys.stdin)
print(f\"{d['kld_mean']:.4f} / {d['kld_mean_routing_stable']:.4f} ({d['same_top_p']:.1f}%)\")"
}
echo "| layout | group | RTN | RTN + clip | clip + imatrix | GPTQ |"
echo "|---|---:|---:|---:|---:|---:|"
while IFS='|' read -r label args; do
    for g in $(case "$args" in *nvfp4*) echo 16;; *mxfp4*) echo 32;; *) echo 32 64 128;; esac); do
        gs="--group-size $g"
        case "$args" in *nvfp4*|*mxfp4*) gs="";; esac
        echo "| $label | $g | $(cell $args $gs --no-clip) | $(cell $args $gs) | $(cell $args $gs --imatrix "$work/im.gguf") | $(cell $args $gs --gptq --calib-tokens "$work/calib.json" --calib-ctx 200) |"
    done
done <<'ROWS'
w4a16 (sym)|--to w4a16
w4a16 --asym|--to w4a16 --asym
gptq|--to gptq
awq|--to awq
nvfp4|--to nvfp4
mxfp4|--to mxfp4
ROWS
rm -rf "$work"
