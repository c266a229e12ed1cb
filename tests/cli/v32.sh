#!/bin/bash
# DeepSeek-V3.2 (model_type deepseek_v32, docs/v32.md) through the tools: the v32-tiny presets (BF16,
# and FP8 with ue8m0 scales as released), inspect (text, --json, --check), convert FP8 <-> BF16 with
# the indexer's wq_b / wk (FP8) and weights_proj / k_norm (kept), the sparse attention in `logits`
# (the first index_topk positions equal dense attention bit for bit, later ones differ; thread-count
# independence), reshard --mp / --from-mp (convert.py's names for the indexer), GGUF (deepseek32)
# export and read-back, int4, and malformed configs / tensors. llama.cpp's agreement is in
# tests/interop/v32_llama.mjs.
dc=$1; src=$2; scratch=$3
rm -rf "$scratch"; mkdir -p "$scratch"
. "$src/cli_lib.bash"
py() { python3 "$@"; }
S=$scratch
python3 -c "import json, random; r = random.Random(7); print(json.dumps([r.randrange(3000) for _ in range(48)]))" >"$S/t.json"
python3 -c "import json, random; r = random.Random(7); print(json.dumps([r.randrange(3000) for _ in range(16)]))" >"$S/t16.json"

expect_rc 0 "mkmodel v32-tiny" "$dc" mkmodel "$S/b" --preset v32-tiny
expect_rc 0 "mkmodel v32-tiny-fp8" "$dc" mkmodel "$S/f" --preset v32-tiny-fp8
for m in b f; do
    expect_rc 0 "inspect --check $m" "$dc" inspect "$S/$m" --check --no-tensors
    check "inspect $m: sparse attention line" grep -q "^sparse attn    indexer: 8 heads of 128, top 16 keys per query" "$S/stdout"
done
expect_rc 0 "inspect --json" "$dc" inspect "$S/f" --json
py - "$S/stdout" "$S/f" <<'PY' && ok || bad "inspect --json / config.json / tensor dtypes of v32-tiny-fp8"
import json, struct, sys, glob, os
d = json.load(open(sys.argv[1]))
assert d["arch"] == "deepseek_v32" and d["index_n_heads"] == 8 and d["index_head_dim"] == 128 and d["index_topk"] == 16, d
c = json.load(open(os.path.join(sys.argv[2], "config.json")))
assert c["model_type"] == "deepseek_v32" and c["architectures"] == ["DeepseekV32ForCausalLM"], c
assert c["quantization_config"]["scale_fmt"] == "ue8m0" and "auto_map" not in c, c
dt = {}
for f in glob.glob(os.path.join(sys.argv[2], "*.safetensors")):
    b = open(f, "rb").read(8); n = struct.unpack("<Q", b)[0]
    h = json.loads(open(f, "rb").read(8 + n)[8:])
    for k, v in h.items():
        if ".indexer." in k:
            dt[k] = (v["dtype"], v["shape"])
L = "model.layers.1.self_attn.indexer."
want = {"wq_b.weight": ("F8_E4M3", [1024, 96]), "wq_b.weight_scale_inv": ("F32", [8, 1]),
        "wk.weight": ("F8_E4M3", [128, 320]), "wk.weight_scale_inv": ("F32", [1, 3]),
        "k_norm.weight": ("F32", [128]), "k_norm.bias": ("F32", [128]), "weights_proj.weight": ("BF16", [8, 320])}
for k, v in want.items():
    assert dt[L + k] == v, (k, dt.get(L + k), v)
# every layer has one, the MTP layer (3) included
assert sum(1 for k in dt if k.endswith("wq_b.weight")) == 4, sorted(dt)
PY

# ---- convert FP8 <-> BF16 -----------------------------------------------------------------------
expect_rc 0 "fp8 -> bf16" "$dc" convert "$S/f" "$S/fb" --to bf16
expect_rc 0 "inspect --check fp8 -> bf16" "$dc" inspect "$S/fb" --check
check "bf16: indexer wq_b dequantized to BF16" grep -q "model.layers.1.self_attn.indexer.wq_b.weight  *BF16  *1024x96" "$S/stdout"
check "bf16: no indexer scale left" bash -c "! grep -q 'indexer.*scale_inv' '$S/stdout'"
check "bf16: k_norm stays F32" grep -q "model.layers.1.self_attn.indexer.k_norm.bias  *F32" "$S/stdout"
expect_rc 0 "bf16 -> fp8 (ue8m0 scales, as released)" "$dc" convert "$S/fb" "$S/fbf" --to fp8 --scale-format ue8m0
expect_rc 0 "hash fp8" "$dc" hash "$S/f"
grep indexer "$S/stdout" | grep -v weights_proj >"$S/h1"
expect_rc 0 "hash fp8 -> bf16 -> fp8" "$dc" hash "$S/fbf"
grep indexer "$S/stdout" | grep -v weights_proj >"$S/h2"
check "fp8 -> bf16 -> fp8: the indexer's FP8 weights and scales come back byte for byte" cmp -s "$S/h1" "$S/h2"
check "the hash lists the indexer (4 layers x 7 tensors)" test "$(wc -l <"$S/h1")" -eq 24

# ---- sparse attention -------------------------------------------------------------------------------
expect_rc 0 "logits v32 (48 tokens)" "$dc" logits "$S/b" --tokens "$S/t.json" --out "$S/a.f32"
OMP_NUM_THREADS=1 expect_rc 0 "logits v32, 1 thread" "$dc" logits "$S/b" --tokens "$S/t.json" --out "$S/a1.f32"
check "logits: the same bytes on 1 and 2 threads" cmp -s "$S/a.f32" "$S/a1.f32"
cp -r "$S/b" "$S/dense"
py -c "import json, sys; p = sys.argv[1]; c = json.load(open(p)); c['index_topk'] = 4096; json.dump(c, open(p, 'w'))" "$S/dense/config.json"
expect_rc 0 "logits, index_topk past the sequence" "$dc" logits "$S/dense" --tokens "$S/t.json" --out "$S/d.f32"
py - "$S/a.f32" "$S/d.f32" <<'PY' && ok || bad "sparse vs dense attention"
import array, sys
a = array.array("f", open(sys.argv[1], "rb").read()); d = array.array("f", open(sys.argv[2], "rb").read())
V = 3000
head = max(abs(x - y) for x, y in zip(a[:16 * V], d[:16 * V]))
tail = max(abs(x - y) for x, y in zip(a[16 * V:], d[16 * V:]))
print(f"v32-tiny, 48 tokens: first 16 positions vs dense {head}, later ones {tail:.3g}", file=sys.stderr)
assert head == 0 and tail > 0.05, (head, tail)
PY
# a V3 checkpoint of the same weights (no indexer): dense attention, equal on 16 tokens
cp -r "$S/b" "$S/v3"
py -c "
import json, sys; p = sys.argv[1]; c = json.load(open(p))
c['model_type'] = 'deepseek_v3'; c['architectures'] = ['DeepseekV3ForCausalLM']
for k in ('index_n_heads', 'index_head_dim', 'index_topk'): del c[k]
json.dump(c, open(p, 'w'))" "$S/v3/config.json"
expect_rc 0 "logits v32, 16 tokens" "$dc" logits "$S/b" --tokens "$S/t16.json" --out "$S/s16.f32"
expect_rc 0 "logits as deepseek_v3, 16 tokens" "$dc" logits "$S/v3" --tokens "$S/t16.json" --out "$S/v16.f32"
check "up to index_topk tokens V3.2 is V3's dense attention, bit for bit" cmp -s "$S/s16.f32" "$S/v16.f32"
expect_rc 7 "inspect --check as deepseek_v3" "$dc" inspect "$S/v3" --check --no-tensors
check "a V3 config flags the indexer's tensors as unexpected" grep -q "indexer.wq_b.weight: not part of this architecture" "$S/stdout"

# ---- reshard --mp (DeepSeek-V3.2's convert.py: the indexer replicated) -------------------------------
expect_rc 0 "reshard --mp 2" "$dc" reshard "$S/b" "$S/mp" --mp 2
py - "$S/mp" <<'PY' && ok || bad "--mp 2: the indexer under convert.py's names, whole on both ranks"
import json, struct, sys, os
for r in range(2):
    f = os.path.join(sys.argv[1], f"model{r}-mp2.safetensors")
    n = struct.unpack("<Q", open(f, "rb").read(8))[0]
    h = json.loads(open(f, "rb").read(8 + n)[8:])
    for k, shape in {"wq_b.weight": [1024, 96], "wk.weight": [128, 320], "k_norm.weight": [128], "k_norm.bias": [128],
                     "weights_proj.weight": [8, 320]}.items():
        assert h["layers.2.attn.indexer." + k]["shape"] == shape, (r, k, h.get("layers.2.attn.indexer." + k))
    assert h["layers.2.attn.wq_b.weight"]["shape"] == [144, 96], h["layers.2.attn.wq_b.weight"]  # MLA's q_b_proj: 3 of 6 heads
PY
expect_rc 0 "reshard --from-mp" "$dc" reshard "$S/mp" "$S/back" --from-mp
"$dc" hash "$S/b" | grep -v 'layers\.3\.' >"$S/hb"
"$dc" hash "$S/back" >"$S/hback"
check "--mp 2 then --from-mp: every tensor (MTP layer aside, as convert.py) bit-identical" cmp -s "$S/hb" "$S/hback"

# ---- GGUF (llama.cpp's deepseek32) -------------------------------------------------------------------
expect_rc 0 "convert --to gguf" "$dc" convert "$S/f" "$S/f.gguf" --to gguf --type bf16
expect_rc 0 "inspect the GGUF" "$dc" inspect "$S/f.gguf" --check --no-tensors
check "GGUF read back as deepseek_v32" grep -q "^architecture   deepseek_v32" "$S/stdout"
check "GGUF: the indexer's parameters read back" grep -q "top 16 keys per query" "$S/stdout"
expect_rc 0 "logits on the GGUF" "$dc" logits "$S/f.gguf" --tokens "$S/t.json" --out "$S/g.f32"

# ---- 4-bit: the indexer's wq_b / wk are attention Linear modules; weights_proj stays BF16 --------------
for sc in experts all; do
    expect_rc 0 "--to w4a16 --scope $sc" "$dc" convert "$S/f" "$S/w4-$sc" --to w4a16 --scope $sc
    expect_rc 0 "inspect --check w4a16 --scope $sc" "$dc" inspect "$S/w4-$sc" --check --no-tensors
    expect_rc 0 "logits on w4a16 --scope $sc" "$dc" logits "$S/w4-$sc" --tokens "$S/t.json" --out "$S/w4-$sc.f32"
done
py - "$S/w4-experts" "$S/w4-all" <<'PY' && ok || bad "w4a16 of V3.2: indexer storage and the config's schemes"
import json, re, struct, sys, glob, os
def load(d):
    h = {}
    for f in glob.glob(os.path.join(d, "*.safetensors")):
        n = struct.unpack("<Q", open(f, "rb").read(8))[0]
        h.update(json.loads(open(f, "rb").read(8 + n)[8:]))
    return h, json.load(open(os.path.join(d, "config.json")))["quantization_config"]
def scheme(q, module):  # vLLM's compressed-tensors matching: ignore, then name targets, then "Linear"
    if any(re.fullmatch(p[3:], module) if p.startswith("re:") else p == module for p in q["ignore"]):
        return "ignore"
    for v in q["config_groups"].values():
        if any(t.startswith("re:") and re.fullmatch(t[3:], module) for t in v["targets"]):
            return v["format"]
    for v in q["config_groups"].values():
        if "Linear" in v["targets"]:
            return v["format"]
    return None
L = "model.layers.1.self_attn.indexer."
h, q = load(sys.argv[1])   # default scope: attention (and the indexer) kept FP8
assert h[L + "wq_b.weight"]["dtype"] == "F8_E4M3" and h[L + "wk.weight"]["dtype"] == "F8_E4M3", h[L + "wq_b.weight"]
assert scheme(q, L + "wq_b") == "float-quantized" and scheme(q, L + "wk") == "float-quantized", q
assert h[L + "weights_proj.weight"]["dtype"] == "BF16" and scheme(q, L + "weights_proj") == "ignore", q
h, q = load(sys.argv[2])   # --scope all: 4-bit like the attention
assert h[L + "wq_b.weight_packed"]["dtype"] == "I32" and scheme(q, L + "wq_b") == "pack-quantized", q
assert h[L + "weights_proj.weight"]["dtype"] == "BF16" and scheme(q, L + "weights_proj") == "ignore", q
assert h[L + "k_norm.bias"]["dtype"] == "F32", h[L + "k_norm.bias"]
PY

# ---- malformed ----------------------------------------------------------------------------------------
mkbad() { rm -rf "$S/bad"; cp -r "$S/b" "$S/bad"; py -c "import json, sys; p = sys.argv[1]; c = json.load(open(p)); $1; json.dump(c, open(p, 'w'))" "$S/bad/config.json"; }
mkbad "c['index_head_dim'] = 8"
expect_rc 5 "index_head_dim below qk_rope_head_dim" "$dc" inspect "$S/bad"
expect_stderr "index_head_dim 8 must be even and at least qk_rope_head_dim 16" "index_head_dim error names the numbers"
mkbad "del c['index_topk']"
expect_rc 5 "index_topk missing" "$dc" logits "$S/bad" --tokens "$S/t.json" --out "$S/x.f32"
expect_stderr "index_topk" "the missing key is named"
mkbad "c['index_n_heads'] = 4"
expect_rc 7 "index_n_heads 4 against tensors of 8 heads: inspect --check" "$dc" inspect "$S/bad" --check --no-tensors
check "inspect --check reports the indexer's shapes" grep -q "indexer.wq_b.weight.*1024x96.*512x96" "$S/stdout"
expect_rc 7 "logits refuses the mismatched indexer" "$dc" logits "$S/bad" --tokens "$S/t.json" --out "$S/x.f32"
expect_stderr "self_attn.indexer.wq_b.weight" "the shape error names the tensor"
expect_stderr "index_n_heads 4, index_head_dim 128" "the shape error names the indexer's dimensions"
check "no partial logits file" test ! -e "$S/x.f32"

finish
