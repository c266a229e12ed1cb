#!/bin/bash
# deepcast convert: FP8 <-> BF16/F16/F32 against DeepSeek's own fp8_cast_bf16.py output,
# round trips, determinism across thread counts, dry run, MTP dropping, and bad input.
dc=$1; src=$2; scratch=$3; oracle=$4
rm -rf "$scratch"; mkdir -p "$scratch"
. "$src/cli_lib.bash"
O="$oracle/models"; G="$oracle/golden"
py() { python3 "$@"; }

# FP8 -> BF16: bit-identical to DeepSeek's script, config cleaned, index with total_size
cp -r "$O/v3-fp8" "$scratch/in"
echo '{"bos_token": "<s>"}' >"$scratch/in/tokenizer_config.json"
echo '{"do_sample": true}' >"$scratch/in/generation_config.json"
expect_rc 0 "fp8 -> bf16" "$dc" convert "$scratch/in" "$scratch/bf16" --to bf16
check "fp8 -> bf16 hashes equal DeepSeek's fp8_cast_bf16 output" diff <("$dc" hash "$scratch/bf16") "$G/v3-fp8/fp8_cast_bf16.xxh3.txt"
py - "$scratch/bf16" <<'PY' && ok || bad "bf16 output config / index / aux files"
import json, os, sys
d = sys.argv[1]
c = json.load(open(f"{d}/config.json"))
assert "quantization_config" not in c and c["torch_dtype"] == "bfloat16" and c["num_nextn_predict_layers"] == 1
ix = json.load(open(f"{d}/model.safetensors.index.json"))
sizes = 0
for f in set(ix["weight_map"].values()):
    with open(f"{d}/{f}", "rb") as fh:
        import struct
        n = struct.unpack("<Q", fh.read(8))[0]
        h = json.loads(fh.read(n))
        sizes += sum(v["data_offsets"][1] - v["data_offsets"][0] for k, v in h.items() if k != "__metadata__")
assert ix["metadata"]["total_size"] == sizes, (ix["metadata"], sizes)
assert not any(k.endswith("_scale_inv") for k in ix["weight_map"])
assert os.path.exists(f"{d}/tokenizer_config.json") and os.path.exists(f"{d}/generation_config.json")
PY
expect_rc 0 "inspect --check bf16 output" "$dc" inspect "$scratch/bf16" --check --no-tensors
expect_rc 0 "ue8m0 fp8 -> bf16" "$dc" convert "$O/v3-fp8-ue8m0" "$scratch/ue-bf16" --to bf16
check "ue8m0 fp8 -> bf16 hashes equal DeepSeek's output" diff <("$dc" hash "$scratch/ue-bf16") "$G/v3-fp8-ue8m0/fp8_cast_bf16.xxh3.txt"

# BF16 -> FP8 with F32 scales reproduces the release's FP8 bytes exactly (0 codes change)
expect_rc 0 "bf16 -> fp8" "$dc" convert "$scratch/bf16" "$scratch/fp8" --to fp8
check "fp8 -> bf16 -> fp8 is byte-identical (F32 scales)" diff <("$dc" hash "$scratch/fp8") <("$dc" hash "$O/v3-fp8")
py - "$scratch/fp8/config.json" <<'PY' && ok || bad "fp8 output quantization_config"
import json, sys
q = json.load(open(sys.argv[1]))["quantization_config"]
assert q == {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]}, q
PY
# ue8m0: the same values; byte-identical except blocks whose largest code rounded to half range
expect_rc 0 "bf16 -> fp8 ue8m0" "$dc" convert "$scratch/ue-bf16" "$scratch/ue-fp8" --to fp8 --scale-format ue8m0
check "ue8m0 config" grep -q '"scale_fmt":[[:space:]]*"ue8m0"' "$scratch/ue-fp8/config.json"
expect_rc 0 "ue8m0 fp8 -> bf16 again" "$dc" convert "$scratch/ue-fp8" "$scratch/ue-bf16b" --to bf16
check "ue8m0 round trip keeps every weight value" diff <("$dc" hash "$scratch/ue-bf16") <("$dc" hash "$scratch/ue-bf16b")
py - "$O/v3-fp8-ue8m0" "$scratch/ue-fp8" <<'PY' && ok || bad "ue8m0 byte reproduction fraction"
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
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
blocks = same = 0
for k in a:
    if k.endswith("_scale_inv"):
        n = len(a[k]) // 4
        blocks += n
        same += sum(a[k][4*i:4*i+4] == b[k][4*i:4*i+4] for i in range(n))
print(f"ue8m0 round trip: {same}/{blocks} scale blocks byte-identical ({100*same/blocks:.1f}%)", file=sys.stderr)
assert same / blocks > 0.8
PY

# thread count does not change a byte
expect_rc 0 "threads 1" "$dc" convert "$scratch/bf16" "$scratch/t1" --to fp8 --threads 1
expect_rc 0 "threads 2" "$dc" convert "$scratch/bf16" "$scratch/t2" --to fp8 --threads 2
check "identical bytes for --threads 1 and 2" diff -r "$scratch/t1" "$scratch/t2"
expect_rc 0 "fp8 -> bf16 threads 1" "$dc" convert "$O/v3-fp8" "$scratch/b1" --to bf16 --threads 1
check "fp8 -> bf16 shards identical across thread counts" cmp -s "$scratch/b1/model-00001-of-00003.safetensors" "$scratch/bf16/model-00001-of-00003.safetensors"

# f16 / f32 targets, shard size, drop-mtp, dry run
for t in f16 f32; do
    expect_rc 0 "fp8 -> $t" "$dc" convert "$O/v3-fp8" "$scratch/$t" --to $t --max-shard-size 4MB
    expect_rc 0 "inspect --check $t" "$dc" inspect "$scratch/$t" --check --json --no-tensors
    check "$t output has no FP8" py -c "import json,sys; d=json.load(open('$scratch/stdout')); sys.exit(0 if 'F8_E4M3' not in d['bytes_by_dtype'] and d['n_scale_tensors']==0 else 1)"
done
check "--max-shard-size makes more shards" [ "$(ls "$scratch/f32" | grep -c safetensors$)" -gt 4 ]
expect_rc 0 "--drop-mtp" "$dc" convert "$O/v3-fp8" "$scratch/nomtp" --to bf16 --drop-mtp
check "no MTP tensors left" [ -z "$("$dc" hash "$scratch/nomtp" | grep 'model.layers.3.')" ]
check "num_nextn_predict_layers 0" grep -q '"num_nextn_predict_layers":[[:space:]]*0' "$scratch/nomtp/config.json"
expect_rc 0 "inspect --check after --drop-mtp" "$dc" inspect "$scratch/nomtp" --check
expect_rc 0 "--dry-run" "$dc" convert "$O/v3-fp8" "$scratch/dry" --to bf16
rm -rf "$scratch/dry"
expect_rc 0 "--dry-run" "$dc" convert "$O/v3-fp8" "$scratch/dry" --to bf16 --dry-run
check "dry run writes nothing" [ ! -e "$scratch/dry" ]
check "dry run lists each tensor" grep -q "model.layers.0.mlp.down_proj.weight .*dequant .*F8_E4M3 .*BF16 .*320x448" "$scratch/stdout"
check "dry run prints totals" grep -q "^total: 383 tensors in" "$scratch/stdout"

# logits through conversions (the forward pass reads every storage through one interface)
T="$G/v3-fp8/gen200.tokens.json"
"$dc" logits "$O/v3-fp8" --tokens "$T" --out "$scratch/l-fp8.f32" 2>/dev/null
"$dc" logits "$scratch/fp8" --tokens "$T" --out "$scratch/l-rt.f32" 2>/dev/null
check "FP8 -> BF16 -> FP8 round trip: identical logits" cmp -s "$scratch/l-fp8.f32" "$scratch/l-rt.f32"
"$dc" logits "$scratch/bf16" --tokens "$T" --out "$scratch/l-bf16.f32" 2>/dev/null
check "FP8 and its DeepSeek-style BF16 dequantisation: identical logits" cmp -s "$scratch/l-fp8.f32" "$scratch/l-bf16.f32"
for v in v3-bf16 v2lite v3-fp8; do   # resharded only (a pure copy into other shards): identical logits
    to=bf16; [ $v = v3-fp8 ] && to=fp8
    "$dc" convert "$O/$v" "$scratch/rs-$v" --to $to --max-shard-size 2MB 2>/dev/null
    check "$v resharded: same tensors" diff <("$dc" hash "$O/$v") <("$dc" hash "$scratch/rs-$v")
    check "$v resharded: more shards" [ "$(ls "$scratch/rs-$v" | grep -c safetensors$)" -gt 3 ]
    "$dc" logits "$O/$v" --tokens "$G/$v/seq64.tokens.json" --out "$scratch/a-$v.f32" 2>/dev/null
    "$dc" logits "$scratch/rs-$v" --tokens "$G/$v/seq64.tokens.json" --out "$scratch/b-$v.f32" 2>/dev/null
    check "$v resharded: identical logits" cmp -s "$scratch/a-$v.f32" "$scratch/b-$v.f32"
done
# FP8 vs its BF16 dequantisation with exact f32 products: small, positive KLD
# (the f32 output above holds exactly f32(fp8) * scale)
expect_rc 0 "kld fp8 vs exact f32" "$dc" kld "$O/v3-fp8" "$scratch/f32" --tokens "$T" --json
py - "$scratch/stdout" <<'PY' && ok || bad "KLD of FP8 vs its exact f32 dequantisation is small and positive"
import json, sys
d = json.load(open(sys.argv[1]))
k = d["kld_mean"]
print(f"KLD(v3-fp8 || exact f32) = {k:.3g}, same top p = {d.get('same_top_p')}", file=sys.stderr)
assert 0 < k < 1e-2, k
PY

# bad input: clear error, documented exit code, no output left behind
mk() { rm -rf "$scratch/bad"; cp -r "$O/v3-fp8" "$scratch/bad"; }
noout() { [ ! -e "$scratch/out" ] && [ -z "$(ls "$scratch" | grep '\.tmp-')" ]; }
mk; py "$src/st_edit.py" "$scratch/bad" drop model.layers.0.mlp.down_proj.weight_scale_inv
expect_rc 7 "FP8 weight without its scale" "$dc" convert "$scratch/bad" "$scratch/out" --to bf16
expect_stderr "FP8 tensor model.layers.0.mlp.down_proj.weight has no scale tensor" "missing scale message"
check "no output (missing scale)" noout
mk; py "$src/st_edit.py" "$scratch/bad" reshape model.layers.0.mlp.down_proj.weight_scale_inv 4x3
expect_rc 7 "scale of the wrong shape" "$dc" convert "$scratch/bad" "$scratch/out" --to bf16
expect_stderr "scale model.layers.0.mlp.down_proj.weight_scale_inv has shape 4x3" "wrong scale shape message"
check "no output (scale shape)" noout
mk; py "$src/st_edit.py" "$scratch/bad" dtype model.layers.0.mlp.down_proj.weight U8
expect_rc 7 "a non-FP8 tensor with a scale" "$dc" convert "$scratch/bad" "$scratch/out" --to bf16
expect_stderr "model.layers.0.mlp.down_proj.weight has dtype U8 but also a block scale" "scale on a non-FP8 tensor message"
check "no output (scale on BF16)" noout
mk; sed -i 's/"quant_method": "fp8"/"quant_method": "fp8", "scale_fmt": "e4m3fnuz"/' "$scratch/bad/config.json"
expect_rc 6 "unknown scale_fmt" "$dc" convert "$scratch/bad" "$scratch/out" --to bf16
expect_stderr "unknown quantization_config.scale_fmt \"e4m3fnuz\"" "scale_fmt message"
mk
expect_rc 2 "output inside the input" "$dc" convert "$scratch/bad" "$scratch/bad/sub" --to bf16
expect_stderr "is inside the input directory" "inside message"
check "nothing created inside the input" [ ! -e "$scratch/bad/sub" ]
expect_rc 3 "disk full (file size limit)" bash -c "ulimit -f 2000; exec '$dc' convert '$scratch/bad' '$scratch/out' --to bf16"
expect_stderr "File too large" "disk full message"
check "no output after disk full" noout
expect_rc 10 "output exists" "$dc" convert "$O/v3-fp8" "$scratch/bf16" --to bf16
expect_rc 2 "bad --to" "$dc" convert "$O/v3-fp8" "$scratch/out" --to int3
expect_rc 2 "missing --to" "$dc" convert "$O/v3-fp8" "$scratch/out"
finish
