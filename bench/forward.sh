#!/bin/bash
# Speed of the reference forward pass: tokens/s of `deepcast perplexity` (the best of REPEAT runs)
#   1. on the oracle checkpoints (tiny: hidden 320 / 256, vocab 3000), 200 tokens;
#   2. on a synthetic checkpoint with DeepSeek-V3's real per-layer dimensions (mkmodel --preset
#      v3-layer: hidden 7168, 128 heads, q_lora 1536, kv_lora 512, FP8 weights; 1 dense + 1 MoE
#      layer, MK_EXPERTS routed experts of width 2048, 8 active, vocab MK_VOCAB), MK_TOKENS tokens.
#
# usage: bench/forward.sh [DEEPCAST [WORKDIR]]
#   DEEPCAST  the binary (default: build-fwd/deepcast, then build/deepcast)
#   WORKDIR   scratch space (default: /tmp/deepcast-bench-forward); needs about 3.5 GB for step 2
# environment: THREADS (default: nproc), REPEAT (3), MK (1; 0 skips step 2), MK_EXPERTS (32),
#   MK_VOCAB (32768), MK_TOKENS (128)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dc=${1:-}
if [ -z "$dc" ]; then
    for c in "$here/build-fwd/deepcast" "$here/build/deepcast"; do [ -x "$c" ] && { dc=$c; break; }; done
fi
[ -n "$dc" ] && [ -x "$dc" ] || { echo "bench/forward.sh: no deepcast binary; build first" >&2; exit 2; }
work=${2:-/tmp/deepcast-bench-forward}
threads=${THREADS:-$(nproc)}
repeat=${REPEAT:-3}
mkdir -p "$work"
sh "$here/tests/data/extract.sh" "$work/testdata"
oracle="$work/testdata/oracle"

# best tokens/s of REPEAT runs: bench NAME THREADS ARGS...
bench() {
    name=$1; t=$2; shift 2
    best=0
    for _ in $(seq "$repeat"); do
        tps=$("$dc" -q perplexity "$@" --threads "$t" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')
        best=$(python3 -c "print(max($best, $tps))")
    done
    printf '%-34s %3s threads  %10.1f tokens/s\n' "$name" "$t" "$best"
}

echo "deepcast forward-pass speed ($(nproc) CPUs, $(uname -m); $dc)"
for v in v3-bf16 v3-fp8 v2lite; do
    for t in 1 "$threads"; do
        bench "oracle $v, 200 tokens" "$t" "$oracle/models/$v" --tokens "$oracle/golden/$v/gen200.tokens.json"
        [ "$t" = 1 ] && [ "$threads" = 1 ] && break
    done
done

if [ "${MK:-1}" != 0 ]; then
    mk="$work/v3-layer-e${MK_EXPERTS:-32}-v${MK_VOCAB:-32768}"
    if [ ! -f "$mk/config.json" ]; then
        "$dc" -q mkmodel "$mk" --preset v3-layer --experts "${MK_EXPERTS:-32}" --vocab "${MK_VOCAB:-32768}" --no-tokenizer --force
    fi
    python3 -c "
import random; random.seed(7)
print(' '.join(str(random.randrange(${MK_VOCAB:-32768})) for _ in range(${MK_TOKENS:-128})))" >"$work/tokens.txt"
    for t in 1 "$threads"; do
        bench "v3-layer (${MK_EXPERTS:-32} experts), ${MK_TOKENS:-128} tok" "$t" "$mk" --tokens "$work/tokens.txt"
        [ "$threads" = 1 ] && break
    done
fi
