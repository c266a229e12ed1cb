#!/bin/bash
# deepcast quantize on a v3-layer mkmodel checkpoint (DeepSeek-V3's real per-layer dimensions: rows of
# 7168 / 2048 / 18432 values, so the K-quants run their real searches, no fallbacks): Q8_0 and Q4_K_M
# GGUFs straight from the FP8 Hugging Face checkpoint (one pass: FP8 dequantized, renamed, stacked,
# quantized), and Q4_K_M from a BF16 GGUF. Prints MB/s of input (bytes of the input tensors / wall
# time), the F32 values quantized per second, and the peak RSS.
# usage: bench/quantize.sh [WORKDIR] [EXPERTS] [VOCAB]   (defaults: 16 experts (the fewest V3's group routing
# allows), vocab 16384: ~1.6 G parameters, ~1.8 GB FP8)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/deepcast-bench-quantize}
experts=${2:-16}
vocab=${3:-16384}
dc=$PWD/build/deepcast
[ -x "$dc" ] || bash scripts/build.sh
rm -rf "$work"; mkdir -p "$work"
$dc -q mkmodel "$work/fp8" --preset v3-layer --layers 2 --dense 1 --experts "$experts" --vocab "$vocab" --no-tokenizer
$dc -q convert "$work/fp8" "$work/bf16.gguf" --to gguf --type bf16
sync
. bench/lib.sh
in_fp8=$(du -sb "$work/fp8" | cut -f1)
in_bf16=$(stat -c %s "$work/bf16.gguf")
threads=$(nproc)
row() { # LABEL IN_BYTES OUT SECONDS RSS
    python3 - "$@" <<'PY'
import sys
label, bi, out, s, rss = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
import os
bo = os.path.getsize(out)
print(f"| {label} | {bi/1e6:.0f} | {bo/1e6:.0f} | {s:.1f} | {bi/1e6/s:.0f} | {rss:.0f} |")
PY
}
echo "threads: $threads ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
echo "| input -> type | MB in | MB out | s | MB/s of input | peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|"
for t in Q8_0 Q4_K_M; do
    read -r _ s rss < <(measure "$t" $dc -q quantize "$work/fp8" "$work/$t.gguf" $t --force)
    row "FP8 HF -> $t" "$in_fp8" "$work/$t.gguf" "$s" "$rss"
done
read -r _ s rss < <(measure bf16 $dc -q quantize "$work/bf16.gguf" "$work/q4b.gguf" Q4_K_M --force)
row "BF16 GGUF -> Q4_K_M" "$in_bf16" "$work/q4b.gguf" "$s" "$rss"
# DeepSeek's FP8 dequantization rounds to bf16, so the BF16 GGUF holds the same values: same bytes
cmp -s "$work/Q4_K_M.gguf" "$work/q4b.gguf" && echo "FP8 HF -> Q4_K_M is byte-identical to FP8 -> BF16 GGUF -> Q4_K_M" ||
    echo "FP8 HF -> Q4_K_M differs from FP8 -> BF16 GGUF -> Q4_K_M"
rm -rf "$work"
