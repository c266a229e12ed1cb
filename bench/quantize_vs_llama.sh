#!/bin/bash
# `deepcast quantize` against llama.cpp's llama-quantize on a v3-layer mkmodel checkpoint (DeepSeek-V3's
# real per-layer dimensions, as bench/quantize.sh makes it). llama-quantize is bench/llama_quantize.c: the
# tool's call of llama_model_quantize with its default parameters, on node-llama-cpp's prebuilt libllama
# (tests/interop/node_modules; `cd tests/interop && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci`), or $LIBLLAMA.
# For the BF16 GGUF of the checkpoint, Q8_0 and Q4_K_M by both with THREADS threads: MB/s of input (bytes
# of the input file / wall time), ratio deepcast / llama-quantize, peak RSS of each, and whether the two
# outputs are byte-identical (cmp). Then deepcast's one-pass FP8 HF -> TYPE (llama.cpp has no such path).
# The input is read once before timing (page cache warm for both); each measurement is the fastest of
# REPS runs (env, default 1).
# usage: bench/quantize_vs_llama.sh [WORKDIR] [EXPERTS] [VOCAB] [THREADS]
#   defaults: /tmp/deepcast-bench-qvl, 16 experts, vocab 16384 (~1.6 G parameters, 3.2 GB BF16), 2 threads
# env: REPS=N; SCALING=1 also times Q4_K_M with 1 thread (both tools) to show the thread scaling.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/deepcast-bench-qvl}
experts=${2:-16}
vocab=${3:-16384}
threads=${4:-2}
reps=${REPS:-1}
dc=$PWD/build/deepcast
[ -x "$dc" ] || bash scripts/build.sh
lib=${LIBLLAMA:-$(ls tests/interop/node_modules/@node-llama-cpp/linux-x64/bins/*/libllama.*so 2>/dev/null | head -1 || true)}
[ -n "$lib" ] && [ -f "$lib" ] || { echo "bench: no libllama (cd tests/interop && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci, or set LIBLLAMA)" >&2; exit 1; }
lib=$(readlink -f "$lib")
rm -rf "$work"; mkdir -p "$work"
lq=$work/llama_quantize
cc -O2 -std=c11 -D_GNU_SOURCE bench/llama_quantize.c -o "$lq" -ldl
$dc -q mkmodel "$work/fp8" --preset v3-layer --layers 2 --dense 1 --experts "$experts" --vocab "$vocab" --no-tokenizer
$dc -q convert "$work/fp8" "$work/bf16.gguf" --to gguf --type bf16
sync
. bench/lib.sh
in_fp8=$(du -sb "$work/fp8" | cut -f1)
in_bf16=$(stat -c %s "$work/bf16.gguf")
cat "$work/bf16.gguf" >/dev/null
# best LABEL CMD...: "LABEL seconds rss" of the fastest of $reps runs
best() {
    local label=$1; shift
    local bs="" br="" s r i
    for ((i = 0; i < reps; i++)); do
        read -r _ s r < <(measure "$label" "$@")
        if [ -z "$bs" ] || python3 -c "import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))" "$s" "$bs"; then
            bs=$s br=$r
        fi
    done
    echo "$label $bs $br"
}
row() { # LABEL IN_BYTES LLAMA_S LLAMA_RSS DC_S DC_RSS IDENTICAL
    python3 - "$@" <<'PY'
import sys
label, bi, ls, lr, ds, dr, same = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
print(f"| {label} | {bi/1e6:.0f} | {ls:.1f} | {bi/1e6/ls:.0f} | {ds:.1f} | {bi/1e6/ds:.0f} | **{ls/ds:.2f}x** | {lr:.0f} | {dr:.0f} | {same} |")
PY
}
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "$(date -u +%Y-%m-%d), $(nproc) CPUs ($cpu), $threads threads, $experts experts, vocab $vocab, best of $reps"
echo "llama-quantize: llama_model_quantize of $(basename "$lib")"
echo "| BF16 GGUF -> type | MB in | llama-quantize s | MB/s | deepcast s | MB/s | deepcast / llama | llama RSS MB | deepcast RSS MB | identical |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
cases="Q8_0:$threads Q4_K_M:$threads"
[ "${SCALING:-0}" = 1 ] && [ "$threads" != 1 ] && cases="$cases Q4_K_M:1"
for c in $cases; do
    t=${c%%:*} n=${c##*:}
    read -r _ ls lr < <(best "llama-$t" "$lq" "$work/bf16.gguf" "$work/llama.gguf" "$t" "$n" "$lib")
    read -r _ ds dr < <(best "deepcast-$t" $dc -q quantize "$work/bf16.gguf" "$work/dc.gguf" "$t" --threads "$n" --force)
    cmp -s "$work/llama.gguf" "$work/dc.gguf" && same=yes || same=NO
    label=$t; [ "$n" != "$threads" ] && label="$t, $n thread"
    row "$label" "$in_bf16" "$ls" "$lr" "$ds" "$dr" "$same"
    rm -f "$work/llama.gguf" "$work/dc.gguf"
done
echo
echo "| deepcast, one pass: input -> type | MB in | MB out | s | MB/s of input | peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|"
for t in Q8_0 Q4_K_M; do
    read -r _ s rss < <(best "fp8-$t" $dc -q quantize "$work/fp8" "$work/$t.gguf" $t --threads "$threads" --force)
    python3 - "FP8 HF -> $t" "$in_fp8" "$work/$t.gguf" "$s" "$rss" <<'PY'
import os, sys
label, bi, out, s, rss = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
print(f"| {label} | {bi/1e6:.0f} | {os.path.getsize(out)/1e6:.0f} | {s:.1f} | {bi/1e6/s:.0f} | {rss:.0f} |")
PY
    rm -f "$work/$t.gguf"
done
rm -rf "$work"
