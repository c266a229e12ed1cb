#!/bin/bash
# deepcast prune-experts: calibrated expert pruning (and merging) on the oracle checkpoints; the
# pruned model loads in every tool and the printed KLD equals a separate `deepcast kld`.
dc=$1; src=$2; scratch=$3; oracle=$4
rm -rf "$scratch"; mkdir -p "$scratch"
. "$src/cli_lib.bash"
O="$oracle/models"; G="$oracle/golden"
for v in v3-fp8 v3-bf16 v2lite; do
    keep=8; [ $v = v2lite ] && keep=6
    T="$G/$v/gen200.tokens.json"
    for mode in drop merge; do
        flag=""; [ $mode = merge ] && flag=--merge
        out="$scratch/$v-$mode"
        expect_rc 0 "prune $v $mode" "$dc" prune-experts "$O/$v" "$out" --keep $keep --tokens "$T" \
            --save-holdout "$scratch/hold.json" --json $flag
        cp "$scratch/stdout" "$scratch/report.json"
        expect_rc 0 "inspect --check pruned $v $mode" "$dc" inspect "$out" --check --json --no-tensors
        # the MTP layer (V3) is kept, its experts pruned by its own routing statistics
        py_ok=$(python3 - "$scratch/stdout" "$out/config.json" $keep "$O/$v/config.json" <<'PY'
import json, sys
d, c, k = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
n_mtp = json.load(open(sys.argv[4])).get("num_nextn_predict_layers", 0)
assert d["n_experts_routed"] == k and c["n_routed_experts"] == k
assert c.get("num_nextn_predict_layers", 0) == n_mtp and d["mtp_layers_present"] == n_mtp, (n_mtp, d["mtp_layers_present"])
assert d["consistent"] and not d["missing"] and not d["unexpected"]
print("ok")
PY
)
        check "pruned $v $mode: config and tensors have $keep experts" [ "$py_ok" = ok ]
        expect_rc 0 "kld on the held-out tokens ($v $mode)" "$dc" kld "$O/$v" "$out" --tokens "$scratch/hold.json" --json
        python3 - "$scratch/report.json" "$scratch/stdout" $mode <<'PY' && ok || bad "printed KLD equals deepcast kld ($v $mode)"
import json, sys
r, k = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert abs(r["kld_mean"] - k["kld_mean"]) <= 1e-9 * max(1, k["kld_mean"]), (r["kld_mean"], k["kld_mean"])
assert r["n_scored"] == k["n_positions"] and r["kld_mean"] > 0
if sys.argv[3] == "merge":
    assert r["kld_mean_drop"] > 0
    print(f"KLD merged {r['kld_mean']:.4f} vs dropped {r['kld_mean_drop']:.4f}", file=sys.stderr)
PY
        expect_rc 0 "perplexity on the pruned $v" "$dc" perplexity "$out" --tokens "$T" --json
        expect_rc 0 "hash the pruned $v" "$dc" hash "$out"
        expect_rc 0 "convert the pruned $v" "$dc" convert "$out" "$scratch/$v-$mode-conv" --to fp8
    done
done
# the drop variant equals the original restricted to the kept experts (renumbered)
python3 - "$scratch/v3-bf16-drop" "$O/v3-bf16" <<'PY' && ok || bad "dropped experts are byte copies of the kept originals"
import glob, json, struct, sys
def tensors(d):
    out = {}
    for fn in glob.glob(d + "/*.safetensors"):
        with open(fn, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); data = f.read()
        for k, v in h.items():
            if k != "__metadata__":
                b, e = v["data_offsets"]; out[k] = data[b:e]
    return out
p, o = tensors(sys.argv[1]), tensors(sys.argv[2])
router = p["model.layers.1.mlp.gate.weight"]; orig = o["model.layers.1.mlp.gate.weight"]
row = len(orig) // 16
kept = [orig.index(router[i*row:(i+1)*row]) // row for i in range(8)]
assert kept == sorted(kept), kept
for new, old in enumerate(kept):
    for p_ in ("gate", "up", "down"):
        assert p[f"model.layers.1.mlp.experts.{new}.{p_}_proj.weight"] == o[f"model.layers.1.mlp.experts.{old}.{p_}_proj.weight"]
bias_p, bias_o = p["model.layers.1.mlp.gate.e_score_correction_bias"], o["model.layers.1.mlp.gate.e_score_correction_bias"]
assert bias_p == b"".join(bias_o[4*k:4*k+4] for k in kept)
assert p["model.layers.0.self_attn.o_proj.weight"] == o["model.layers.0.self_attn.o_proj.weight"]
# the MTP layer (3): its kept experts too, and its own tensors copied
router = p["model.layers.3.mlp.gate.weight"]; orig = o["model.layers.3.mlp.gate.weight"]
kept3 = [orig.index(router[i*row:(i+1)*row]) // row for i in range(8)]
assert kept3 == sorted(kept3) and [k // 4 for k in kept3] == [0, 0, 1, 1, 2, 2, 3, 3], kept3   # 2 per group of 4
for new, old in enumerate(kept3):
    assert p[f"model.layers.3.mlp.experts.{new}.down_proj.weight"] == o[f"model.layers.3.mlp.experts.{old}.down_proj.weight"]
for t in ("eh_proj.weight", "enorm.weight", "hnorm.weight", "shared_head.head.weight"):
    assert p["model.layers.3." + t] == o["model.layers.3." + t], t
PY
# thread count does not change a byte
"$dc" prune-experts "$O/v3-fp8" "$scratch/t1" --keep 8 --tokens "$G/v3-fp8/gen200.tokens.json" --merge --threads 1 >/dev/null
"$dc" prune-experts "$O/v3-fp8" "$scratch/t2" --keep 8 --tokens "$G/v3-fp8/gen200.tokens.json" --merge --threads 2 >/dev/null
check "identical output for --threads 1 and 2" diff -r "$scratch/t1" "$scratch/t2"
# bad input
T="$G/v3-fp8/gen200.tokens.json"
expect_rc 2 "K not a multiple of n_group" "$dc" prune-experts "$O/v3-fp8" "$scratch/x" --keep 6 --tokens "$T"
expect_stderr "must be a multiple of n_group 4" "n_group message"
expect_rc 2 "K too small for top-k" "$dc" prune-experts "$O/v3-fp8" "$scratch/x" --keep 4 --tokens "$T"
expect_stderr "cannot supply num_experts_per_tok 4" "topk_group message"
expect_rc 2 "K >= experts" "$dc" prune-experts "$O/v3-fp8" "$scratch/x" --keep 16 --tokens "$T"
expect_rc 2 "no calibration tokens" "$dc" prune-experts "$O/v3-fp8" "$scratch/x" --keep 8
check "no output after errors" [ ! -e "$scratch/x" ]
expect_rc 0 "--dry-run" "$dc" prune-experts "$O/v3-fp8" "$scratch/x" --keep 8 --tokens "$T" --dry-run
check "dry run writes nothing" [ ! -e "$scratch/x" ]
check "dry run prints the selection" grep -q "layer 1 keeps" "$scratch/stdout"
expect_rc 10 "output exists" "$dc" prune-experts "$O/v3-fp8" "$scratch/t1" --keep 8 --tokens "$T"
finish
