#!/bin/bash
# The KLD tables of docs/quantize.md: a model quantized to every file type, without and with an
# importance matrix made by `deepcast imatrix` on the oracle's seq64 tokens (chunks of 32), scored
# with `deepcast kld` against the unquantized model on the oracle's gen200 sequence.
#   oracle    the oracle's v3-bf16 checkpoint as an F32 GGUF (rows of 32..448 values: every 256-block
#             type falls back to a 32-block one, as llama-quantize does)
#   v3-layer  a `mkmodel --preset v3-layer` checkpoint (DeepSeek-V3's real dimensions; 2 layers, 16
#             experts, vocabulary 16384) as a BF16 GGUF (its FP8 weights dequantized exactly); also
#             four file types with --recipe deepseek
# usage: [ROWS="Q4_K_M Q8_0+recipe ..."] bench/quantize_kld.sh oracle|v3-layer [BUILD_DIR] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-oracle}
build=${2:-build}
work=${3:-/tmp/deepcast-quantize-kld}
dc=$PWD/$build/deepcast
oracle=$PWD/$build/testdata/oracle
[ -d "$oracle" ] || sh tests/data/extract.sh "$oracle/.."
rm -rf "$work"; mkdir -p "$work"
if [ "$which" = oracle ]; then
    $dc -q convert "$oracle/models/v3-bf16" "$work/base.gguf" --to gguf --type f32
else
    $dc -q mkmodel "$work/fp8" --preset v3-layer --layers 2 --dense 1 --experts 16 --vocab 16384 --mtp 0 --no-tokenizer
    $dc -q convert "$work/fp8" "$work/base.gguf" --to gguf --type bf16
    rm -rf "$work/fp8"
fi
$dc -q imatrix "$work/base.gguf" --tokens "$oracle/golden/v3-bf16/seq64.tokens.json" --ctx 32 -o "$work/im.gguf"
T=$oracle/golden/v3-bf16/gen200.tokens.json
echo "| type | MiB | bits/weight | KLD | KLD 99% | top-1 | KLD, imatrix | top-1, imatrix |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
rows="${ROWS:-Q8_0 Q6_K Q5_K_M Q5_K_S Q5_1 Q5_0 Q4_K_M Q4_K_S Q4_1 Q4_0 IQ4_NL IQ4_XS MXFP4_MOE Q3_K_L Q3_K_M Q3_K_S Q2_K Q2_K_S TQ2_0 TQ1_0}"
[ "$which" = oracle ] || [ -n "${ROWS:-}" ] || rows="$rows Q4_K_M+recipe Q3_K_M+recipe Q2_K+recipe IQ4_XS+recipe"
for r in $rows; do
    t=${r%+recipe}
    extra=(); [ "$r" = "$t" ] || extra=(--recipe deepseek)
    if $dc quantize "$work/base.gguf" "$work/q.gguf" $t --force "${extra[@]}" 2>"$work/log"; then
        $dc kld "$work/base.gguf" "$work/q.gguf" --tokens "$T" --json >"$work/k.json"
    elif grep -q "needs an importance matrix" "$work/log"; then # Q2_K_S with real q2_K tensors
        echo '{"kld_mean": null}' >"$work/k.json"
    else
        cat "$work/log" >&2; exit 1
    fi
    $dc quantize "$work/base.gguf" "$work/qi.gguf" $t --force --imatrix "$work/im.gguf" "${extra[@]}" 2>"$work/logi"
    bpw=$(sed -n 's/.*-> \([0-9.]*\) bits per weight.*/\1/p' "$work/logi")
    mib=$(python3 -c "import os; print(f'{os.path.getsize(\"$work/qi.gguf\")/1048576:.2f}')")
    $dc kld "$work/base.gguf" "$work/qi.gguf" --tokens "$T" --json >"$work/ki.json"
    python3 - "${r/+recipe/ --recipe deepseek}" "$mib" "$bpw" "$work/k.json" "$work/ki.json" <<'PY'
import json, sys
t, mib, bpw, a, b = sys.argv[1:6]
k, ki = json.load(open(a)), json.load(open(b))
plain = (f"{k['kld_mean']:.5f} | {k['kld_percentiles']['99']:.4f} | {k['same_top_p']:.1f}%" if k["kld_mean"] is not None
         else "(needs an imatrix) | | ")
print(f"| {t} | {mib} | {bpw} | {plain} | {ki['kld_mean']:.5f} | {ki['same_top_p']:.1f}% |")
PY
done
rm -rf "$work"
