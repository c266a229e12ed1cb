#!/bin/bash
# Q8_0 GGUF accuracy on a DeepSeek-V3 checkpoint with the release's real per-layer dimensions
# (`mkmodel --preset v3-layer`: hidden 7168, 128 heads, MLA ranks 1536 / 512, experts of 2048; here 2
# layers, one dense, 16 experts, vocabulary 2048: 1.5 GB FP8): `convert --to gguf --type q8_0` from
# the FP8 checkpoint, then `deepcast kld` against it: mean KLD below 1e-3 (measured 2.1e-4) and no
# expert-routing change. (The tiny oracle V3 misses 1e-3 through routing flips at near-tied expert
# scores, see docs/gguf.md "Q8_0 accuracy" and tests/cli/gguf.sh.)
dc=$1; src=$2; scratch=$3
rm -rf "$scratch"; mkdir -p "$scratch"
. "$src/cli_lib.bash"
# the checkpoint (1.5 GB) and the GGUF (1.6 GB) are on disk together
need_kb=$((3300 * 1024))
free_kb=$(df -Pk "$scratch" | awk 'NR == 2 { print $4 }')
if [ "${free_kb:-0}" -lt "$need_kb" ]; then
    bad "not enough disk space for this test: $((need_kb / 1024)) MB needed in $scratch, $((free_kb / 1024)) MB free"
    finish; exit
fi
expect_rc 0 "mkmodel v3-layer" "$dc" mkmodel "$scratch/m" --preset v3-layer --layers 2 --dense 1 --experts 16 --vocab 2048 --mtp 0 --no-tokenizer
python3 -c "import random, json; r = random.Random(3); print(json.dumps([r.randrange(2048) for _ in range(96)]))" >"$scratch/t.json"
expect_rc 0 "FP8 -> Q8_0 GGUF" "$dc" convert "$scratch/m" "$scratch/q8.gguf" --to gguf --type q8_0
expect_rc 0 "kld source vs Q8_0" "$dc" kld "$scratch/m" "$scratch/q8.gguf" --tokens "$scratch/t.json" --json
python3 - "$scratch/stdout" <<'PY' && ok || bad "Q8_0 KLD on real V3 dimensions"
import json, sys
d = json.load(open(sys.argv[1]))
print("Q8_0 on v3-layer: KLD mean %.2e, median %.2e, routing changes %d, top-1 %.1f%%" %
      (d["kld_mean"], d["kld_median"], d["n_routing_changed"], d["same_top_p"]), file=sys.stderr)
assert d["n_positions"] == 95 and 0 < d["kld_mean"] < 1e-3 and d["same_top_p"] > 95, d
PY
finish
