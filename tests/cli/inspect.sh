#!/bin/bash
# deepcast inspect / hash / mkmodel from the command line, on the oracle checkpoints and on
# synthetic ones; exit codes and messages of bad input; no partial output.
dc=$1; src=$2; scratch=$3; oracle=$4
rm -rf "$scratch"; mkdir -p "$scratch"
. "$src/cli_lib.bash"

# --- every oracle checkpoint: inspect --json / --check, hash ---------------------------------
for v in v3-bf16 v3-fp8 v3-fp8-ue8m0 v2lite; do
    m="$oracle/models/$v"
    expect_rc 0 "inspect --check $v" "$dc" inspect "$m" --check
    expect_rc 0 "inspect --json $v" "$dc" inspect "$m" --json
    python3 - "$v" "$scratch/stdout" <<'PY' && ok || bad "inspect --json fields for $v"
import json, sys
v, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))
assert d["arch"] == ("deepseek_v2" if v == "v2lite" else "deepseek_v3"), d["arch"]
assert d["n_params"] > 1000000 and d["n_params_active"] < d["n_params"]
assert d["consistent"] is True and not d["missing"] and not d["unexpected"]
ts = d["tensors"]
assert all(set(t) >= {"name", "dtype", "shape", "bytes", "file"} for t in ts)
assert sum(t["bytes"] for t in ts) == d["bytes"]
names = [t["name"] for t in ts]
assert names == sorted(names)
if v != "v2lite":
    assert d["n_mtp_layers"] == 1 and d["mtp_layers_present"] == 1
    assert any(t["name"] == "model.layers.3.eh_proj.weight" for t in ts)
fp8 = v.startswith("v3-fp8")
assert d["n_scale_tensors"] == (176 if fp8 else 0), d["n_scale_tensors"]
assert (d["quantization"] is not None) == fp8
if fp8:
    assert d["quantization"]["scale_fmt"] == ("ue8m0" if "ue8m0" in v else "f32")
    assert any(t["name"].endswith("weight_scale_inv") and t["dtype"] == "F32" for t in ts)
PY
    expect_rc 0 "hash $v" "$dc" hash "$m"
    n=$(wc -l <"$scratch/stdout")
    cnt=$(python3 -c "import json;print(len(json.load(open('$m/model.safetensors.index.json'))['weight_map']))")
    check "hash $v: one line per tensor ($n vs $cnt)" [ "$n" -eq "$cnt" ]
    check "hash $v: sorted" cmp -s "$scratch/stdout" <(LC_ALL=C sort "$scratch/stdout")
done
# The tensors that DeepSeek's fp8_cast_bf16.py copies unchanged have the hashes its output has.
"$dc" hash "$oracle/models/v3-fp8" | grep -E ' (BF16|F32) ' | grep -v _scale_inv >"$scratch/ours"
grep -Ff <(cut -d' ' -f1 "$scratch/ours" | sed 's/$/ /') "$oracle/golden/v3-fp8/fp8_cast_bf16.xxh3.txt" >"$scratch/theirs"
check "hash agrees with the oracle's xxh3 list for unconverted tensors" cmp -s "$scratch/ours" "$scratch/theirs"
check "that list is not empty" [ "$(wc -l <"$scratch/ours")" -gt 20 ]
# a single shard file
expect_rc 0 "inspect one shard" "$dc" inspect "$oracle/models/v2lite/model-00001-of-00002.safetensors" --json

# --- mkmodel ---------------------------------------------------------------------------------
for p in v3-tiny v3-tiny-fp8 v3-tiny-fp8-ue8m0 v2-lite-tiny; do
    expect_rc 0 "mkmodel $p" "$dc" mkmodel "$scratch/$p" --preset "$p" --seed 7
    expect_rc 0 "inspect --check $p" "$dc" inspect "$scratch/$p" --check --no-tensors
    check "$p has a tokenizer" [ -f "$scratch/$p/tokenizer.json" ] && [ -f "$scratch/$p/tokenizer_config.json" ]
    check "$p has several shards and an index" [ -f "$scratch/$p/model.safetensors.index.json" ]
done
# same bytes for any thread count; hashes independent of sharding
OMP_NUM_THREADS=1 "$dc" mkmodel "$scratch/t1" --preset v3-tiny-fp8 --seed 7 --threads 1 2>/dev/null
"$dc" mkmodel "$scratch/t2" --preset v3-tiny-fp8 --seed 7 --threads 2 2>/dev/null
check "mkmodel output identical with 1 and 2 threads" diff -r "$scratch/t1" "$scratch/t2"
"$dc" mkmodel "$scratch/t8" --preset v3-tiny-fp8 --seed 8 2>/dev/null
check "mkmodel seeds differ" differ "$scratch/t1/model-00001-of-000003.safetensors" "$scratch/t8/model-00001-of-000003.safetensors"
check "same seed, same config" cmp -s "$scratch/t1/config.json" "$scratch/t8/config.json"
"$dc" mkmodel "$scratch/t3" --preset v3-tiny-fp8 --seed 7 --max-shard-size 1MB 2>/dev/null
check "small shards: many files" [ "$(ls "$scratch/t3" | grep -c safetensors$)" -gt 10 ]
check "hash independent of sharding" diff <("$dc" hash "$scratch/t1") <("$dc" hash "$scratch/t3")
expect_rc 0 "mkmodel overrides" "$dc" mkmodel "$scratch/ov" --preset v3-tiny --layers 5 --dense 2 --experts 8 --mtp 0 --vocab 1000
python3 - "$scratch/ov/config.json" <<'PY' && ok || bad "mkmodel overrides reach config.json"
import json, sys
c = json.load(open(sys.argv[1]))
assert (c["num_hidden_layers"], c["first_k_dense_replace"], c["n_routed_experts"], c["num_nextn_predict_layers"], c["vocab_size"]) == (5, 2, 8, 0, 1000), c
PY
expect_rc 0 "inspect --check overrides" "$dc" inspect "$scratch/ov" --check

# --- errors: exit codes, messages, no partial output -----------------------------------------
expect_rc 2 "no command" "$dc"
expect_rc 2 "unknown command" "$dc" frobnicate
expect_stderr "deepcast: unknown command 'frobnicate'" "unknown command message"
for c in inspect hash mkmodel tokenize convert prune-experts; do
    expect_rc 0 "$c --help" "$dc" "$c" --help
    check "$c --help prints usage" grep -q "usage: deepcast $c" "$scratch/stdout"
done
expect_rc 0 "--help" "$dc" --help
expect_rc 3 "inspect missing path" "$dc" inspect "$scratch/nope"
expect_stderr "$scratch/nope: no such file or directory" "missing path message"
expect_rc 2 "inspect bad option" "$dc" inspect "$oracle/models/v2lite" --bogus
mkdir -p "$scratch/trunc"
cp "$oracle/models/v2lite/config.json" "$oracle/models/v2lite/model.safetensors.index.json" "$scratch/trunc/"
cp "$oracle/models/v2lite/model-00001-of-00002.safetensors" "$scratch/trunc/"
head -c 1000000 "$oracle/models/v2lite/model-00002-of-00002.safetensors" >"$scratch/trunc/model-00002-of-00002.safetensors"
expect_rc 4 "truncated shard" "$dc" inspect "$scratch/trunc"
expect_stderr "model-00002-of-00002.safetensors: tensor '" "truncated shard names file and tensor"
expect_stderr "run past the data section" "truncated shard says why"
rm "$scratch/trunc/model-00002-of-00002.safetensors"
expect_rc 7 "index names a missing shard" "$dc" hash "$scratch/trunc"
expect_stderr "names shard model-00002-of-00002.safetensors, which does not exist" "missing shard message"
mkdir -p "$scratch/incons" && cp "$oracle/models/v2lite/"* "$scratch/incons/"
sed -i 's/"num_hidden_layers": 3/"num_hidden_layers": 4/' "$scratch/incons/config.json"
expect_rc 7 "inspect --check on a checkpoint missing a layer" "$dc" inspect "$scratch/incons" --check --no-tensors
check "the report lists the missing tensors" grep -q "missing      model.layers.3.self_attn.q_proj.weight" "$scratch/stdout"
sed -i 's/"model_type": "deepseek_v2"/"model_type": "mistral"/' "$scratch/incons/config.json"
expect_rc 6 "unsupported architecture" "$dc" inspect "$scratch/incons"
expect_stderr "unsupported architecture: model_type \"mistral\"" "unsupported architecture message"
expect_rc 2 "mkmodel unknown preset" "$dc" mkmodel "$scratch/none" --preset v9
check "no output for an unknown preset" [ ! -e "$scratch/none" ]
expect_rc 10 "mkmodel into an existing dir" "$dc" mkmodel "$scratch/t1" --preset v3-tiny
expect_stderr "already exists (use --force to overwrite)" "exists message"
expect_rc 0 "mkmodel --force" "$dc" mkmodel "$scratch/t1" --preset v3-tiny --force
expect_rc 3 "mkmodel under a missing parent" "$dc" mkmodel "$scratch/no/such/dir" --preset v3-tiny
check "nothing left behind" [ -z "$(ls "$scratch" | grep tmp-)" ] && [ ! -e "$scratch/no" ]
expect_rc 2 "mkmodel bad number" "$dc" mkmodel "$scratch/x" --preset v3-tiny --layers 1x
expect_stderr "--layers must be an integer" "bad number message"
finish
