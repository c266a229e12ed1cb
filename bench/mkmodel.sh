#!/bin/bash
# mkmodel at DeepSeek-V3's real per-layer dimensions: writes a `v3-layer` checkpoint (default 2
# layers: one dense, one with 256 routed experts; FP8 + scales, embeddings and head in BF16) and
# reports bytes written, throughput, peak RSS, and the ratio bytes/RSS.
# Goal (issue 2): > 5 GB written with peak RSS < 1 GB.
# usage: bench/mkmodel.sh [OUTDIR] [LAYERS]   (needs ~16 GB free disk for 2 layers)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/deepcast-bench-v3-layer}
layers=${2:-2}
dc=build/deepcast
[ -x $dc ] || bash scripts/build.sh
rm -rf "$out"
python3 bench/peakrss.py $dc mkmodel "$out" --preset v3-layer --layers "$layers" --dense 1 --no-tokenizer 2>"$out.log" || { cat "$out.log"; exit 1; }
bytes=$(du -sb "$out" | cut -f1)
read -r wall rss < <(sed -n 's/.*wall_s=\([0-9.]*\) peak_rss_mb=\([0-9.]*\).*/\1 \2/p' "$out.log")
$dc inspect "$out" --check --no-tensors | sed -n '1,4p;/^check/p'
python3 - "$bytes" "$wall" "$rss" <<'PY'
import sys
b, w, r = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"mkmodel v3-layer: {b/1e9:.2f} GB in {w:.1f} s = {b/1e6/w:.0f} MB/s, peak RSS {r:.0f} MB")
print(f"goal: > 5 GB written ({'met' if b > 5e9 else 'NOT met'}), peak RSS < 1024 MB ({'met' if r < 1024 else 'NOT met'}); bytes/RSS = {b/1e6/r:.0f}x")
PY
rm -rf "$out" "$out.log"
