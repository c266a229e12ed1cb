#!/bin/bash
# deepcast reshard: fused experts (merge/split), DeepSeek's model-parallel layout (--mp / --from-mp,
# checked against a Python transcription of convert.py and the oracle's name_map.json), re-sharding
# by size; bit-identical round trips, thread-count independence, dry run, and bad input.
dc=$1; src=$2; scratch=$3; oracle=$4
rm -rf "$scratch"; mkdir -p "$scratch"
. "$src/cli_lib.bash"
O="$oracle/models"; G="$oracle/golden"
py() { PYTHONPATH="$scratch" python3 "$@"; }
h() { "$dc" hash "$1"; }
# hash lines without the MTP layers (layer index >= num_hidden_layers), as --mp drops them
h_main() { "$dc" hash "$1" | awk -v n="$(py -c "import json;print(json.load(open('$1/config.json'))['num_hidden_layers'])")" \
    '{split($1, p, "."); if (!($1 ~ /^model\.layers\./ && p[3] + 0 >= n)) print}'; }

cat >"$scratch/stref.py" <<'PY'
"""Reads safetensors without deepcast, and transcribes DeepSeek's convert.py (NOTES.md section 7)."""
import glob, json, math, os, struct

def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    h.pop("__metadata__", None)
    return {k: (v["dtype"], list(v["shape"]), data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in h.items()}

def ckpt(d):
    out = {}
    for fn in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        out.update(read(fn))
    return out

MAPPING = {
    "embed_tokens": ("embed", 0), "input_layernorm": ("attn_norm", None), "post_attention_layernorm": ("ffn_norm", None),
    "q_proj": ("wq", 0), "q_a_proj": ("wq_a", None), "q_a_layernorm": ("q_norm", None), "q_b_proj": ("wq_b", 0),
    "kv_a_proj_with_mqa": ("wkv_a", None), "kv_a_layernorm": ("kv_norm", None), "kv_b_proj": ("wkv_b", 0),
    "o_proj": ("wo", 1), "gate": ("gate", None), "gate_proj": ("w1", 0), "down_proj": ("w2", 1), "up_proj": ("w3", 0),
    "norm": ("norm", None), "lm_head": ("head", 0), "scale": ("scale", None),
}

def rename(name):
    if name.startswith("model."):
        name = name[len("model."):]
    name = name.replace("self_attn", "attn").replace("mlp", "ffn")
    name = name.replace("weight_scale_inv", "scale").replace("e_score_correction_bias", "bias")
    key = name.split(".")[-2]
    new_key, dim = MAPPING[key]
    return name.replace(key, new_key), dim

def convert(hf_dir, mp):
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    n_layers, n_experts = cfg["num_hidden_layers"], cfg["n_routed_experts"]
    n_local = n_experts // mp
    ranks = [{} for _ in range(mp)]
    for name, (dt, shape, data) in ckpt(hf_dir).items():
        if name.startswith("model.layers.") and int(name.split(".")[2]) >= n_layers:
            continue  # the MTP layers (convert.py: "model.layers.61" for the 61-layer V3)
        name, dim = rename(name)
        for i in range(mp):
            if "experts" in name and "shared_experts" not in name:
                idx = int(name.split(".")[-3])
                if idx < i * n_local or idx >= (i + 1) * n_local:
                    continue
                ranks[i][name] = (dt, shape, data)
            elif dim is not None:
                assert shape[dim] % mp == 0
                part = shape[dim] // mp
                esz = len(data) // math.prod(shape)
                outer, inner = math.prod(shape[:dim]), math.prod(shape[dim + 1:]) * esz
                b = b"".join(data[(o * shape[dim] + i * part) * inner:(o * shape[dim] + (i + 1) * part) * inner]
                             for o in range(outer))
                s = list(shape)
                s[dim] = part
                ranks[i][name] = (dt, s, b)
            else:
                ranks[i][name] = (dt, shape, data)
    return ranks

def drop(d, pattern):
    """Removes every tensor whose name matches the regex from the checkpoint directory d."""
    import re
    ipath = os.path.join(d, "model.safetensors.index.json")
    index = json.load(open(ipath)) if os.path.exists(ipath) else None
    for fn in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        t = read(fn)
        keep = {k: v for k, v in t.items() if not re.fullmatch(pattern, k)}
        if len(keep) == len(t):
            continue
        header, blob, off = {}, bytearray(), 0
        for k, (dt, shape, data) in keep.items():
            header[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
            blob += data
            off += len(data)
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        with open(fn, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + bytes(blob))
        if index:
            for k in t:
                if k not in keep:
                    del index["weight_map"][k]
    if index:
        json.dump(index, open(ipath, "w"), indent=2)
PY

expect_rc 0 "mkmodel v3-tiny-fp8" "$dc" mkmodel "$scratch/tiny" --preset v3-tiny-fp8
echo '{"bos_token": "<s>"}' >"$scratch/tiny/tokenizer_config.json"
echo '{"do_sample": true}' >"$scratch/tiny/generation_config.json"
# an FP8 checkpoint whose projections split 2 ways at 16x16 block boundaries
expect_rc 0 "fp8 with 16x16 blocks" "$dc" convert "$O/v3-bf16" "$scratch/fp8b16" --to fp8 --block 16

for v in v3-bf16 v3-fp8 v2lite tiny; do
    case $v in tiny) in=$scratch/tiny ;; *) in=$O/$v ;; esac
    # ---- merge / split experts
    expect_rc 0 "$v --merge-experts" "$dc" reshard "$in" "$scratch/$v-m" --merge-experts
    py - "$in" "$scratch/$v-m" <<'PY' && ok || bad "$v: fused tensors are the stacked per-expert bytes"
import json, re, sys, stref
a, b = stref.ckpt(sys.argv[1]), stref.ckpt(sys.argv[2])
cfg = json.load(open(sys.argv[1] + "/config.json"))
E = cfg["n_routed_experts"]
pe = re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.")
assert not any(pe.match(k) for k in b), "per-expert tensors left"
layers = sorted({int(pe.match(k).group(1)) for k in a if pe.match(k)})
assert layers, "no experts in the input"
for L in layers:
    p = f"model.layers.{L}.mlp.experts."
    for sfx in ["", "_scale_inv"]:
        if p + "0.gate_proj.weight" + sfx not in a:
            assert p + "gate_up_proj" + sfx not in b
            continue
        g = [a[f"{p}{e}.gate_proj.weight{sfx}"] for e in range(E)]
        u = [a[f"{p}{e}.up_proj.weight{sfx}"] for e in range(E)]
        d = [a[f"{p}{e}.down_proj.weight{sfx}"] for e in range(E)]
        gu, dn = b[p + "gate_up_proj" + sfx], b[p + "down_proj" + sfx]
        assert gu[0] == g[0][0] and gu[1] == [E, g[0][1][0] + u[0][1][0], g[0][1][1]], (gu[:2], g[0][:2])
        assert dn[0] == d[0][0] and dn[1] == [E] + d[0][1], (dn[:2], d[0][:2])
        assert gu[2] == b"".join(g[e][2] + u[e][2] for e in range(E))
        assert dn[2] == b"".join(x[2] for x in d)
rest_a = {k: v for k, v in a.items() if not pe.match(k)}
rest_b = {k: v for k, v in b.items() if ".mlp.experts.gate_up_proj" not in k and ".mlp.experts.down_proj" not in k}
assert rest_a == rest_b
PY
    check "$v merged: config unchanged" cmp -s "$in/config.json" "$scratch/$v-m/config.json"
    expect_rc 0 "$v merged output passes inspect --check" "$dc" inspect "$scratch/$v-m" --check --no-tensors
    expect_rc 0 "$v --split-experts" "$dc" reshard "$scratch/$v-m" "$scratch/$v-s" --split-experts
    check "$v merge/split round trip is bit-identical" diff <(h "$in") <(h "$scratch/$v-s")
    expect_rc 0 "$v split output passes inspect --check" "$dc" inspect "$scratch/$v-s" --check --no-tensors
    # the fused layout converts to GGUF (and quantizes) like the per-expert one: the same tensors
    if [ $v != tiny ]; then
        expect_rc 0 "$v fused -> gguf" "$dc" convert "$scratch/$v-m" "$scratch/$v-m.gguf" --to gguf --type q8_0
        expect_rc 0 "$v per-expert -> gguf" "$dc" convert "$in" "$scratch/$v.gguf" --to gguf --type q8_0
        check "$v: GGUF from fused experts has the same tensors" diff <(h "$scratch/$v-m.gguf") <(h "$scratch/$v.gguf")
        expect_rc 0 "$v fused -> Q4_K_M" "$dc" quantize "$scratch/$v-m" "$scratch/$v-m.q4.gguf" Q4_K_M
        expect_rc 0 "$v per-expert -> Q4_K_M" "$dc" quantize "$in" "$scratch/$v.q4.gguf" Q4_K_M
        check "$v: Q4_K_M from fused experts has the same tensors" diff <(h "$scratch/$v-m.q4.gguf") <(h "$scratch/$v.q4.gguf")
        rm -f "$scratch/$v-m.gguf" "$scratch/$v.gguf" "$scratch/$v-m.q4.gguf" "$scratch/$v.q4.gguf"
    fi
    # convert reads fused FP8 experts (their stacked scales): FP8 -> BF16 equals the per-expert
    # conversion (split afterwards), FP8 -> FP8 keeps the bytes; BF16 -> FP8 asks for a split
    if [ $v = v3-fp8 ] || [ $v = tiny ]; then
        expect_rc 0 "$v fused --to bf16" "$dc" convert "$scratch/$v-m" "$scratch/$v-mb" --to bf16
        expect_rc 0 "$v --to bf16" "$dc" convert "$in" "$scratch/$v-b" --to bf16
        expect_rc 0 "$v fused bf16 --split-experts" "$dc" reshard "$scratch/$v-mb" "$scratch/$v-mbs" --split-experts
        check "$v: fused FP8 -> BF16 = per-expert FP8 -> BF16" diff <(h "$scratch/$v-mbs") <(h "$scratch/$v-b")
        expect_rc 0 "$v fused --to fp8 (kept)" "$dc" convert "$scratch/$v-m" "$scratch/$v-mf" --to fp8
        check "$v: fused FP8 -> FP8 keeps every tensor" diff <(h "$scratch/$v-mf") <(h "$scratch/$v-m")
        expect_rc 6 "$v fused BF16 --to fp8" "$dc" convert "$scratch/$v-mb" "$scratch/$v-x" --to fp8
        expect_stderr "run 'deepcast reshard --split-experts' first" "fused BF16 -> FP8 message"
        check "$v: no output after the refusal" [ ! -e "$scratch/$v-x" ]
        rm -rf "$scratch/$v-mb" "$scratch/$v-b" "$scratch/$v-mbs" "$scratch/$v-mf"
    fi

    # ---- re-shard by size
    expect_rc 0 "$v --max-shard-size 2MB" "$dc" reshard "$in" "$scratch/$v-sh" --max-shard-size 2MB
    check "$v re-shard is bit-identical" diff <(h "$in") <(h "$scratch/$v-sh")
    expect_rc 0 "$v re-sharded passes inspect --check" "$dc" inspect "$scratch/$v-sh" --check --no-tensors
    py - "$scratch/$v-sh" 2000000 <<'PY' && ok || bad "$v: shard sizes, order by layer, whole layers, index"
import glob, json, os, re, sys, stref
d, cap = sys.argv[1], int(sys.argv[2])
cfg = json.load(open(d + "/config.json"))
ix = json.load(open(d + "/model.safetensors.index.json"))
files = sorted(glob.glob(d + "/model-*.safetensors"))
assert len(files) > 2 and sorted(set(ix["weight_map"].values())) == [os.path.basename(f) for f in files]
def key(n):
    m = re.match(r"model\.layers\.(\d+)\.", n)
    if n.startswith("model.embed_tokens."): return (0, 0)
    if m: return (1, int(m.group(1)))
    if n.startswith("model.norm."): return (2, 0)
    if n.startswith("lm_head."): return (3, 0)
    return (4, 0)
seq, where, total, sizes = [], {}, 0, {}
for fn in files:
    with open(fn, "rb") as f:
        n = int.from_bytes(f.read(8), "little"); h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    ks = sorted(h, key=lambda k: h[k]["data_offsets"][0])
    sz = sum(h[k]["data_offsets"][1] - h[k]["data_offsets"][0] for k in ks)
    total += sz
    # at most cap, unless the shard is one tensor (with its scale) larger than cap
    assert sz <= cap or len([k for k in ks if not k.endswith("_scale_inv")]) == 1, (fn, sz)
    for k in ks:
        assert ix["weight_map"][k] == os.path.basename(fn)
        seq.append(key(k)); where.setdefault(key(k), set()).add(fn)
        sizes[key(k)] = sizes.get(key(k), 0) + h[k]["data_offsets"][1] - h[k]["data_offsets"][0]
assert seq == sorted(seq), "not ordered embed, layers 0..L (MTP after), norm, lm_head"
assert total == ix["metadata"]["total_size"]
for k, fs in where.items():
    assert sizes[k] > cap or len(fs) == 1, f"group {k} ({sizes[k]} bytes) split over {len(fs)} shards"
PY

    # ---- DeepSeek model parallel: mp 1 is a pure rename (name_map.json)
    expect_rc 0 "$v --mp 1" "$dc" reshard "$in" "$scratch/$v-mp1" --mp 1
    if [ "$v" != tiny ]; then
        py - "$scratch/$v-mp1" "$G/$v/name_map.json" "$in" <<'PY' && ok || bad "$v: --mp 1 names equal name_map.json"
import json, sys, stref
got = stref.read(sys.argv[1] + "/model0-mp1.safetensors")
nm = json.load(open(sys.argv[2]))
src = stref.ckpt(sys.argv[3])
# name_map.json of v3-fp8 was made from the dequantized checkpoint: its scale names follow their weight's
want = {v for v in nm.values() if v}
for k in src:
    if k.endswith(".weight_scale_inv") and nm.get(k[:-len("_scale_inv")]):
        want.add(nm[k[:-len("_scale_inv")]][:-len("weight")] + "scale")
assert set(got) == want, (sorted(set(got) ^ want)[:10])
for k, v in nm.items():
    if v:
        assert got[v] == src[k], k
PY
    fi
    check "$v --mp 1 copies the tokenizer files" [ "$v" != tiny -o -e "$scratch/$v-mp1/tokenizer_config.json" ]
    check "$v --mp 1 copies nothing else" [ ! -e "$scratch/$v-mp1/generation_config.json" ]
    check "$v --mp 1: num_nextn_predict_layers 0 in the copied config" py -c "
import json,sys; c=json.load(open('$scratch/$v-mp1/config.json')); sys.exit(c.get('num_nextn_predict_layers', 0) != 0)"
    expect_rc 0 "$v --from-mp (mp 1)" "$dc" reshard "$scratch/$v-mp1" "$scratch/$v-mp1-back" --from-mp
    check "$v mp 1 round trip equals the input minus the MTP layer" diff <(h_main "$in") <(h "$scratch/$v-mp1-back")
    expect_rc 0 "$v mp 1 round trip passes inspect --check" "$dc" inspect "$scratch/$v-mp1-back" --check --no-tensors
done

# ---- mp 2: every rank file equals convert.py's (Python transcription), and the round trip
for v in v3-bf16 v2lite fp8b16; do
    case $v in fp8b16) in=$scratch/fp8b16 ;; *) in=$O/$v ;; esac
    expect_rc 0 "$v --mp 2" "$dc" reshard "$in" "$scratch/$v-mp2" --mp 2
    py - "$in" "$scratch/$v-mp2" <<'PY' && ok || bad "$v: --mp 2 rank files equal convert.py's (names, dtypes, shapes, bytes)"
import os, sys, stref
ref = stref.convert(sys.argv[1], 2)
files = sorted(f for f in os.listdir(sys.argv[2]) if f.endswith(".safetensors"))
assert files == ["model0-mp2.safetensors", "model1-mp2.safetensors"], files
for i in range(2):
    got = stref.read(f"{sys.argv[2]}/model{i}-mp2.safetensors")
    assert set(got) == set(ref[i]), sorted(set(got) ^ set(ref[i]))[:10]
    for k in got:
        assert got[k][:2] == ref[i][k][:2], (k, got[k][:2], ref[i][k][:2])
        assert got[k][2] == ref[i][k][2], k
PY
    expect_rc 0 "$v --from-mp (mp 2)" "$dc" reshard "$scratch/$v-mp2" "$scratch/$v-mp2-back" --from-mp
    check "$v mp 2 round trip equals the input minus the MTP layer" diff <(h_main "$in") <(h "$scratch/$v-mp2-back")
    expect_rc 0 "$v mp 2 round trip passes inspect --check" "$dc" inspect "$scratch/$v-mp2-back" --check --no-tensors
done
expect_rc 0 "--mp 8" "$dc" reshard "$O/v3-bf16" "$scratch/mp8" --mp 8
check "--mp 8 writes 8 rank files" [ "$(ls "$scratch/mp8" | grep -c '^model[0-7]-mp8\.safetensors$')" -eq 8 ]
rm "$scratch/mp8/config.json"
expect_rc 0 "--from-mp with --config" "$dc" reshard "$scratch/mp8" "$scratch/mp8-back" --from-mp --config "$O/v3-bf16/config.json"
check "mp 8 round trip" diff <(h_main "$O/v3-bf16") <(h "$scratch/mp8-back")
check "--from-mp writes num_nextn_predict_layers 0" grep -q '"num_nextn_predict_layers":[[:space:]]*0' "$scratch/mp8-back/config.json"
expect_rc 0 "--from-mp --max-shard-size" "$dc" reshard "$scratch/v3-bf16-mp2" "$scratch/mp2-one" --from-mp --max-shard-size 1GB
check "--from-mp into one file" [ -e "$scratch/mp2-one/model.safetensors" -a ! -e "$scratch/mp2-one/model.safetensors.index.json" ]
check "one file: same tensors" diff <(h "$scratch/v3-bf16-mp2-back") <(h "$scratch/mp2-one")

# ---- the thread count does not change a byte
for t in 1 2; do
    expect_rc 0 "merge --threads $t" "$dc" reshard "$scratch/tiny" "$scratch/tm$t" --merge-experts --threads $t
    expect_rc 0 "mp 2 --threads $t" "$dc" reshard "$O/v3-bf16" "$scratch/tp$t" --mp 2 --threads $t
    expect_rc 0 "from-mp --threads $t" "$dc" reshard "$scratch/v3-bf16-mp2" "$scratch/tf$t" --from-mp --threads $t
done
check "merge: identical bytes for --threads 1 and 2" diff -r "$scratch/tm1" "$scratch/tm2"
check "mp 2: identical bytes for --threads 1 and 2" diff -r "$scratch/tp1" "$scratch/tp2"
check "from-mp: identical bytes for --threads 1 and 2" diff -r "$scratch/tf1" "$scratch/tf2"
# work units of 1000 bytes cut runs, strides and segments anywhere: the same bytes
export DC_RESHARD_UNIT_BYTES=1000
expect_rc 0 "merge, small units" "$dc" reshard "$scratch/tiny" "$scratch/um" --merge-experts
expect_rc 0 "split, small units" "$dc" reshard "$scratch/tiny-m" "$scratch/us" --split-experts
expect_rc 0 "mp 2, small units" "$dc" reshard "$O/v3-bf16" "$scratch/up" --mp 2
expect_rc 0 "from-mp, small units" "$dc" reshard "$scratch/v3-bf16-mp2" "$scratch/uf" --from-mp
unset DC_RESHARD_UNIT_BYTES
check "merge: small units give the same bytes" diff -r "$scratch/tm1" "$scratch/um"
check "split: small units give the same bytes" diff -r "$scratch/tiny-s" "$scratch/us"
check "mp 2: small units give the same bytes" diff -r "$scratch/tp1" "$scratch/up"
check "from-mp: small units give the same bytes" diff -r "$scratch/tf1" "$scratch/uf"

# ---- dry run
expect_rc 0 "--dry-run" "$dc" reshard "$O/v3-fp8" "$scratch/dry" --merge-experts --dry-run
check "dry run writes nothing" [ ! -e "$scratch/dry" -a -z "$(ls "$scratch" | grep 'dry.*\.tmp-')" ]
check "dry run lists the fused tensors" grep -q "^model.layers.1.mlp.experts.gate_up_proj_scale_inv .*stack .*F32 .*16x4x3 .*32 tensors" "$scratch/stdout"
check "dry run prints totals" grep -q "^total: 383 tensors in .* 107 out" "$scratch/stdout"
expect_rc 0 "--mp --dry-run" "$dc" reshard "$O/v3-bf16" "$scratch/dry" --mp 2 --dry-run
check "mp dry run: split on dim 1" grep -q "^layers.0.attn.wo.weight .*split .*BF16 .*320x96 .*model1-mp2.safetensors" "$scratch/stdout"
check "mp dry run: MTP dropped" grep -q "^total: 207 tensors in .* 68 dropped" "$scratch/stdout"
check "mp dry run writes nothing" [ ! -e "$scratch/dry" ]

# ---- bad input: clear error, documented exit code, no output left behind
noout() { [ ! -e "$scratch/out" ] && [ -z "$(ls "$scratch" | grep 'out\.tmp-')" ]; }
expect_rc 6 "--mp 2 on an FP8 checkpoint with 128x128 blocks" "$dc" reshard "$O/v3-fp8" "$scratch/out" --mp 2
expect_stderr "each of the 2 ranks gets 224 columns on dim 1, not a multiple of the 128-wide scale block" "FP8 block message"
check "no output (FP8 split)" noout
expect_rc 6 "--mp 16: vocab 3000 does not divide" "$dc" reshard "$O/v3-bf16" "$scratch/out" --mp 16
expect_stderr "dim 0 (3000) is not divisible by --mp 16" "divisibility message"
expect_rc 6 "--mp 3: 16 experts do not divide" "$dc" reshard "$O/v3-bf16" "$scratch/out" --mp 3
expect_stderr "n_routed_experts 16 is not divisible by --mp 3" "experts message"
check "no output (mp 3)" noout
expect_rc 6 "--mp on fused experts" "$dc" reshard "$scratch/v3-bf16-m" "$scratch/out" --mp 2
expect_stderr "run 'deepcast reshard --split-experts' first" "fused mp message"
expect_rc 6 "--split-experts without fused experts" "$dc" reshard "$O/v3-bf16" "$scratch/out" --split-experts
expect_stderr "no fused expert tensors" "split message"
expect_rc 6 "--merge-experts on fused experts" "$dc" reshard "$scratch/v3-bf16-m" "$scratch/out" --merge-experts
expect_stderr "already stores its experts fused" "merge twice message"
check "no output (layout errors)" noout
mk() { rm -rf "$scratch/bad"; cp -r "$1" "$scratch/bad"; }
mk "$O/v3-fp8"; py "$src/st_edit.py" "$scratch/bad" drop model.layers.2.mlp.experts.5.up_proj.weight
expect_rc 7 "merge with a missing expert" "$dc" reshard "$scratch/bad" "$scratch/out" --merge-experts
expect_stderr "layer 2: expert 5 has no up_proj" "missing expert message"
check "no output (missing expert)" noout
expect_rc 7 "mp with a missing expert" "$dc" reshard "$scratch/bad" "$scratch/out" --mp 1
expect_stderr "missing routed expert tensor model.layers.2.mlp.experts.5.up_proj.weight" "mp missing expert message"
mk "$O/v3-bf16"; py -c "import stref; stref.drop('$scratch/bad', r'model\.layers\.2\.mlp\.experts\.\d+\..*')"
expect_rc 7 "merge with a MoE layer without experts" "$dc" reshard "$scratch/bad" "$scratch/out" --merge-experts
expect_stderr "layer 2 is a MoE layer but has no routed experts" "no experts message"
expect_rc 7 "mp with a MoE layer without experts" "$dc" reshard "$scratch/bad" "$scratch/out" --mp 2
expect_stderr "missing routed expert tensor model.layers.2.mlp.experts.0.gate_proj.weight" "mp no experts message"
mk "$O/v3-bf16"; py "$src/st_edit.py" "$scratch/bad" dtype model.layers.1.mlp.experts.3.gate_proj.weight F16
expect_rc 7 "merge with an expert of another dtype" "$dc" reshard "$scratch/bad" "$scratch/out" --merge-experts
expect_stderr "model.layers.1.mlp.experts.3.gate_proj.weight is F16 160x320; expected BF16 160x320" "expert dtype message"
mk "$O/v3-fp8"; py "$src/st_edit.py" "$scratch/bad" drop model.layers.1.mlp.experts.0.down_proj.weight_scale_inv
expect_rc 7 "merge with an FP8 expert without its scale" "$dc" reshard "$scratch/bad" "$scratch/out" --merge-experts
expect_stderr "FP8 tensor model.layers.1.mlp.experts.0.down_proj.weight has no scale tensor" "expert scale message"
mk "$scratch/v3-fp8-m"; py "$src/st_edit.py" "$scratch/bad" reshape model.layers.1.mlp.experts.gate_up_proj_scale_inv 16x12
expect_rc 7 "split with a scale of the wrong shape" "$dc" reshard "$scratch/bad" "$scratch/out" --split-experts
expect_stderr "scale model.layers.1.mlp.experts.gate_up_proj_scale_inv has shape 16x12" "fused scale message"
mk "$scratch/v3-fp8-m"; py "$src/st_edit.py" "$scratch/bad" drop model.layers.2.mlp.experts.down_proj
expect_rc 7 "split with gate_up_proj but no down_proj" "$dc" reshard "$scratch/bad" "$scratch/out" --split-experts
expect_stderr "but no model.layers.2.mlp.experts.down_proj" "half fused message"
check "no output (split errors)" noout
mk "$O/v3-bf16"; py "$src/st_edit.py" "$scratch/bad" rename model.layers.0.input_layernorm.weight model.layers.0.odd_norm.extra
expect_rc 6 "--mp with a tensor convert.py cannot map" "$dc" reshard "$scratch/bad" "$scratch/out" --mp 2
expect_stderr "module 'odd_norm' is not in convert.py's name mapping" "mapping message"
mk "$scratch/v3-bf16-mp2"; py "$src/st_edit.py" "$scratch/bad" drop layers.1.ffn.experts.9.w3.weight
expect_rc 7 "--from-mp with a missing expert" "$dc" reshard "$scratch/bad" "$scratch/out" --from-mp
expect_stderr "no rank file holds layers.1.ffn.experts.9.w3.weight" "from-mp missing expert message"
mk "$scratch/v3-bf16-mp2"; py "$src/st_edit.py" "$scratch/bad" drop layers.0.attn.wo.weight
expect_rc 7 "--from-mp with a split tensor missing from a rank" "$dc" reshard "$scratch/bad" "$scratch/out" --from-mp
expect_stderr "is in model1-mp2.safetensors but missing from model0-mp2.safetensors" "from-mp missing split message"
mk "$scratch/v3-bf16-mp2"; rm "$scratch/bad/model1-mp2.safetensors"
expect_rc 7 "--from-mp with a missing rank file" "$dc" reshard "$scratch/bad" "$scratch/out" --from-mp
expect_stderr "missing model1-mp2.safetensors" "missing rank message"
mk "$scratch/v3-bf16-mp2"; rm "$scratch/bad/config.json"
expect_rc 5 "--from-mp without a config" "$dc" reshard "$scratch/bad" "$scratch/out" --from-mp
expect_stderr "--from-mp needs the original model's config (--config FILE)" "config message"
expect_rc 6 "--from-mp on an HF checkpoint" "$dc" reshard "$O/v3-bf16" "$scratch/out" --from-mp
expect_stderr "is not a model{i}-mp{N}.safetensors rank file" "from-mp layout message"
check "no output (from-mp errors)" noout
mk "$O/v3-bf16"
expect_rc 2 "output inside the input" "$dc" reshard "$scratch/bad" "$scratch/bad/sub" --merge-experts
expect_stderr "is inside the input directory" "inside message"
expect_rc 3 "disk full (file size limit)" bash -c "ulimit -f 2000; exec '$dc' reshard '$scratch/bad' '$scratch/out' --merge-experts"
expect_stderr "File too large" "disk full message"
check "no output after disk full" noout
expect_rc 10 "output exists" "$dc" reshard "$O/v3-bf16" "$scratch/v3-bf16-m" --merge-experts
expect_rc 0 "--force replaces it" "$dc" reshard "$O/v3-bf16" "$scratch/v3-bf16-m" --merge-experts --force
expect_rc 2 "no mode" "$dc" reshard "$O/v3-bf16" "$scratch/out"
expect_rc 2 "two modes" "$dc" reshard "$O/v3-bf16" "$scratch/out" --merge-experts --mp 2
expect_rc 2 "--mp with --max-shard-size" "$dc" reshard "$O/v3-bf16" "$scratch/out" --mp 2 --max-shard-size 1GB
expect_rc 2 "--mp 0" "$dc" reshard "$O/v3-bf16" "$scratch/out" --mp 0
expect_rc 2 "--config without --from-mp" "$dc" reshard "$O/v3-bf16" "$scratch/out" --merge-experts --config x.json
expect_rc 3 "missing input" "$dc" reshard "$scratch/nonexistent" "$scratch/out" --merge-experts
check "no output (usage errors)" noout
# the forward pass reads fused experts too: identical logits for merged and per-expert layouts,
# and for a size-resharded copy
for v in v3-fp8 v3-bf16 v2lite; do
    T="$oracle/golden/$v/seq64.tokens.json"
    "$dc" reshard "$oracle/models/$v" "$scratch/lg-$v-m" --merge-experts 2>/dev/null
    "$dc" reshard "$oracle/models/$v" "$scratch/lg-$v-s" --max-shard-size 1MB 2>/dev/null
    "$dc" logits "$oracle/models/$v" --tokens "$T" --out "$scratch/lg-$v.f32" 2>/dev/null
    "$dc" logits "$scratch/lg-$v-m" --tokens "$T" --out "$scratch/lg-$v-m.f32" 2>/dev/null
    "$dc" logits "$scratch/lg-$v-s" --tokens "$T" --out "$scratch/lg-$v-s.f32" 2>/dev/null
    check "$v: logits of the merged-experts checkpoint equal the source's" cmp -s "$scratch/lg-$v.f32" "$scratch/lg-$v-m.f32"
    check "$v: logits of the resharded checkpoint equal the source's" cmp -s "$scratch/lg-$v.f32" "$scratch/lg-$v-s.f32"
done
finish
