#!/bin/bash
# deepcast convert --to w4a16|gptq|awq|nvfp4|mxfp4 (docs/int4.md): every layout from the oracle's
# v3-bf16 and v3-fp8; the configs read back and checked for every key a loader checks, with each
# Linear module resolved to its scheme the way vLLM does (ignore / targets / dynamic / exclude) and
# its tensors' names, dtypes and shapes checked; an independent Python decoder of each layout
# against deepcast's reader (convert --to f32); --to bf16 back (identical logits); thread-count
# independence; KLD against the BF16 source (the clip search beats plain RTN); the imatrix path;
# --dry-run --target; malformed inputs and checkpoints.
dc=$1; src=$2; scratch=$3; oracle=$4
rm -rf "$scratch"; mkdir -p "$scratch"
. "$src/cli_lib.bash"
O="$oracle/models"; G="$oracle/golden"
T="$G/v3-bf16/gen200.tokens.json"
py() { python3 "$@"; }

# ---- every layout, default options, from BF16 and from FP8 -------------------------------------
for L in w4a16 gptq awq nvfp4 mxfp4; do
    expect_rc 0 "v3-bf16 -> $L" "$dc" convert "$O/v3-bf16" "$scratch/$L" --to $L
    expect_rc 0 "inspect --check $L" "$dc" inspect "$scratch/$L" --check --no-tensors
done
expect_rc 0 "v3-bf16 -> w4a16 asym g32 scope all" "$dc" convert "$O/v3-bf16" "$scratch/w4a16-asym" --to w4a16 --asym --group-size 32 --scope all
expect_rc 0 "v3-fp8 -> w4a16 scope mlp (FP8 attention kept: mixed-precision)" "$dc" convert "$O/v3-fp8" "$scratch/fp8-w4a16" --to w4a16 --scope mlp
expect_rc 0 "v3-fp8 -> mxfp4 (FP8 kept)" "$dc" convert "$O/v3-fp8" "$scratch/fp8-mxfp4" --to mxfp4
expect_rc 0 "v3-fp8 -> gptq (FP8 dequantized to BF16)" "$dc" convert "$O/v3-fp8" "$scratch/fp8-gptq" --to gptq --group-size 64
expect_rc 0 "v3-bf16 -> w4a16 --keep-attention fp8" "$dc" convert "$O/v3-bf16" "$scratch/w4a16-kfp8" --to w4a16 --keep-attention fp8
expect_rc 0 "v3-fp8 -> nvfp4 scope all" "$dc" convert "$O/v3-fp8" "$scratch/fp8-nvfp4" --to nvfp4 --scope all
expect_rc 0 "v2lite -> awq scope all" "$dc" convert "$O/v2lite" "$scratch/v2-awq" --to awq --scope all --group-size 64
for d in w4a16-asym fp8-w4a16 fp8-mxfp4 fp8-gptq w4a16-kfp8 fp8-nvfp4 v2-awq; do
    expect_rc 0 "inspect --check $d" "$dc" inspect "$scratch/$d" --check --no-tensors
done

# ---- configs and tensors as the loaders see them, and an independent decoder -----------------------
for d in w4a16 gptq awq nvfp4 mxfp4 w4a16-asym fp8-w4a16 fp8-mxfp4 fp8-gptq w4a16-kfp8 fp8-nvfp4; do
    rm -rf "$scratch/f32"
    "$dc" convert "$scratch/$d" "$scratch/f32" --to f32 2>/dev/null
    py - "$scratch/$d" "$scratch/f32" "$O/v3-bf16" <<'PY' && ok || bad "$d: config / tensors / decoding"
import array, fnmatch, glob, json, math, os, re, struct, sys
d, f32dir, srcdir = sys.argv[1:4]
def load(path):
    out = {}
    for fn in sorted(glob.glob(path + "/*.safetensors")):
        with open(fn, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); data = f.read()
        for k, v in h.items():
            if k != "__metadata__":
                b, e = v["data_offsets"]; out[k] = (v["dtype"], v["shape"], data[b:e])
    return out
T, F, S = load(d), load(f32dir), load(srcdir)
cfg = json.load(open(d + "/config.json"))
q = cfg["quantization_config"]
method = q["quant_method"]
# every Linear of the model (the source's 2-D weights but the embeddings)
linears = sorted(k[:-7] for k, v in S.items() if k.endswith(".weight") and len(v[1]) == 2 and "embed_tokens" not in k)
never = lambda m: m == "lm_head" or m.endswith(".mlp.gate") or m.endswith("eh_proj") or m.endswith("shared_head.head")
def ct_match(pats, m):
    return any((p[3:] and re.match(p[3:], m)) if p.startswith("re:") else p == m for p in pats)
scheme = {}
if method == "compressed-tensors":
    groups = q["config_groups"]
    assert q["quantization_status"] == "compressed"
    g0 = groups["group_0"]; w = g0["weights"]
    assert g0["targets"] == ["Linear"] and g0["input_activations"] is None and w["strategy"] == "group"
    assert w["num_bits"] == 4 and w["dynamic"] is False and w["actorder"] is None
    fmt4 = g0["format"]
    if w["type"] == "int":
        assert fmt4 == "pack-quantized" and w["group_size"] in (32, 64, 128)
        assert (w["zp_dtype"] is None) == w["symmetric"]
    else:
        assert fmt4 == "mxfp4-pack-quantized" and w["type"] == "float" and w["group_size"] == 32 and w["symmetric"]
        assert w["scale_dtype"] == "torch.uint8"
    fp8 = groups.get("group_1")
    assert q["format"] == ("mixed-precision" if fp8 else fmt4), q["format"]
    if fp8:
        fw, fa = fp8["weights"], fp8["input_activations"]
        assert fp8["format"] == "float-quantized" and fw["type"] == "float" and fw["num_bits"] == 8
        assert fw["strategy"] == "block" and fw["block_structure"] == [128, 128] and fw["symmetric"] and not fw["dynamic"]
        assert fa["type"] == "float" and fa["num_bits"] == 8 and fa["strategy"] == "group" and fa["group_size"] == 128 and fa["dynamic"] is True
    assert "lm_head" in q["ignore"] and "re:.*mlp\\.gate$" in q["ignore"]
    for m in linears:   # vLLM: ignore first, then names (exact / re:), then the class "Linear"
        scheme[m] = "bf16" if ct_match(q["ignore"], m) else "fp8" if fp8 and ct_match(fp8["targets"], m) else fmt4
        assert not (never(m) and scheme[m] != "bf16"), m
    group, sym = w["group_size"], w["symmetric"]
elif method == "gptq":
    assert q["bits"] == 4 and q["desc_act"] is False and q["sym"] is True and q["checkpoint_format"] == "gptq"
    assert q["lm_head"] is False and q["group_size"] in (32, 64, 128)
    neg = [p[2:] for p in q.get("dynamic", {}) if p.startswith("-:")]
    for m in linears:
        scheme[m] = "bf16" if never(m) or any(re.match(p, m) for p in neg) else "gptq"
    group, sym = q["group_size"], True
elif method == "awq":
    assert q["bits"] == 4 and q["zero_point"] is True and q["version"] == "gemm" and q["group_size"] in (32, 64, 128)
    skip = q["modules_to_not_convert"] or []
    for m in linears:
        scheme[m] = "bf16" if never(m) or any(s in m for s in skip) else "awq"
    group, sym = q["group_size"], False
elif method == "modelopt":
    hq = json.load(open(d + "/hf_quant_config.json"))["quantization"]
    assert hq["quant_algo"] == "NVFP4" and hq["group_size"] == 16 and q["quant_algo"] == "NVFP4" and q["group_size"] == 16
    assert hq["exclude_modules"] == q["ignore"]
    for m in linears:
        scheme[m] = "bf16" if any(fnmatch.fnmatch(m, p) or (("*" not in p) and p in m) for p in hq["exclude_modules"]) else "nvfp4"
    group, sym = 16, True
else:
    raise SystemExit("unknown quant_method " + method)
# tensors of each module, as the scheme's loader creates them
u32 = lambda b: array.array("I", b)
def h2f(dt, b):
    a = array.array("H", b)
    if dt == "BF16":
        return [struct.unpack("<f", struct.pack("<I", h << 16))[0] for h in a]
    return [struct.unpack("<e", struct.pack("<H", h))[0] for h in a]
def e4m3(v):
    e, m = (v >> 3) & 15, v & 7
    x = m / 8 * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7)
    return -x if v & 0x80 else x
E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
e2m1 = lambda c: -E2M1[c & 7] if c & 8 else E2M1[c & 7]
f32r = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
AWQ = [0, 2, 4, 6, 1, 3, 5, 7]
counts = {}
decoded = 0
for m in linears:
    N, K = S[m + ".weight"][1]
    G = (K + group - 1) // group
    s = scheme[m]
    counts[s] = counts.get(s, 0) + 1
    def need(suffix, dtype, shape):
        t = T.get(m + suffix)
        assert t and t[0] == dtype and t[1] == shape, (m + suffix, t[:2] if t else None, dtype, shape)
        return t[2]
    if s == "bf16":
        need(".weight", "BF16", [N, K]); continue
    if s == "fp8":
        need(".weight", "F8_E4M3", [N, K]); need(".weight_scale", "F32", [(N + 127) // 128, (K + 127) // 128]); continue
    if s == "pack-quantized":
        wp = u32(need(".weight_packed", "I32", [N, (K + 7) // 8])); sc = h2f("BF16", need(".weight_scale", "BF16", [N, G]))
        assert list(struct.unpack("<2q", need(".weight_shape", "I64", [2]))) == [N, K]
        zp = None if sym else u32(need(".weight_zero_point", "I32", [(N + 7) // 8, G]))
        assert (m + ".weight_zero_point" in T) == (not sym)
        Kw = (K + 7) // 8
        val = lambda n, k: ((wp[n * Kw + k // 8] >> 4 * (k % 8) & 15) - (8 if zp is None else zp[(n // 8) * G + k // group] >> 4 * (n % 8) & 15)) * sc[n * G + k // group]
    elif s == "gptq":
        qw = u32(need(".qweight", "I32", [K // 8, N])); qz = u32(need(".qzeros", "I32", [G, N // 8]))
        sc = h2f("F16", need(".scales", "F16", [G, N])); gi = array.array("i", need(".g_idx", "I32", [K]))
        assert list(gi) == [k // group for k in range(K)]
        assert all(z == 0x77777777 for z in qz)   # v1: symmetric zero 8 stored as 7
        val = lambda n, k: ((qw[(k // 8) * N + n] >> 4 * (k % 8) & 15) - ((qz[gi[k] * (N // 8) + n // 8] >> 4 * (n % 8) & 15) + 1)) * sc[gi[k] * N + n]
    elif s == "awq":
        qw = u32(need(".qweight", "I32", [K, N // 8])); qz = u32(need(".qzeros", "I32", [G, N // 8]))
        sc = h2f("F16", need(".scales", "F16", [G, N]))
        sh = lambda n: 4 * AWQ.index(n % 8)
        val = lambda n, k: ((qw[k * (N // 8) + n // 8] >> sh(n) & 15) - (qz[(k // group) * (N // 8) + n // 8] >> sh(n) & 15)) * sc[(k // group) * N + n]
    elif s == "nvfp4":
        wq = need(".weight", "U8", [N, K // 2]); ws = need(".weight_scale", "F8_E4M3", [N, G])
        ws2 = struct.unpack("<f", need(".weight_scale_2", "F32", []))[0]
        assert struct.unpack("<f", need(".input_scale", "F32", []))[0] == 1.0
        val = lambda n, k: f32r(e2m1(wq[n * (K // 2) + k // 2] >> 4 * (k % 2) & 15) * e4m3(ws[n * G + k // 16]) * ws2)
    elif s == "mxfp4-pack-quantized":
        wq = need(".weight_packed", "U8", [N, K // 2]); ws = need(".weight_scale", "U8", [N, G])
        val = lambda n, k: e2m1(wq[n * (K // 2) + k // 2] >> 4 * (k % 2) & 15) * 2.0 ** (ws[n * G + k // 32] - 127)
    else:
        raise SystemExit("scheme " + s)
    if decoded < 3 or m.endswith("kv_b_proj"):   # a few full matrices against deepcast's reader
        ref = array.array("f", F[m + ".weight"][2])
        bad = sum(1 for n in range(N) for k in range(K) if val(n, k) != ref[n * K + k])
        assert bad == 0, (m, bad, N * K)
        decoded += 1
print(f"{os.path.basename(d)}: {method} group {group} sym {sym}: {counts}; {decoded} matrices decoded bit for bit", file=sys.stderr)
assert decoded >= 3
PY
done

# ---- back to bf16: the same weights, identical logits; the runtime side files go away -------------
for d in w4a16 gptq nvfp4 fp8-w4a16; do
    expect_rc 0 "$d -> bf16" "$dc" convert "$scratch/$d" "$scratch/$d-bf16" --to bf16
    "$dc" logits "$scratch/$d" --tokens "$T" --out "$scratch/a.f32" 2>/dev/null
    "$dc" logits "$scratch/$d-bf16" --tokens "$T" --out "$scratch/b.f32" 2>/dev/null
    check "$d and its bf16 dequantization: identical logits" cmp -s "$scratch/a.f32" "$scratch/b.f32"
    check "$d -> bf16: no quantization_config, no hf_quant_config.json" py -c "import json,os,sys; c=json.load(open('$scratch/$d-bf16/config.json')); sys.exit('quantization_config' in c or c['torch_dtype']!='bfloat16' or os.path.exists('$scratch/$d-bf16/hf_quant_config.json'))"
    expect_rc 0 "inspect --check $d-bf16" "$dc" inspect "$scratch/$d-bf16" --check --no-tensors
done
check "nvfp4 writes hf_quant_config.json" [ -f "$scratch/nvfp4/hf_quant_config.json" ]
expect_rc 0 "hash reads the stored tensors" "$dc" hash "$scratch/gptq"
check "hash lists qweight / qzeros / scales / g_idx" grep -q "model.layers.1.mlp.experts.0.down_proj.qweight I32 20x320" "$scratch/stdout"
expect_rc 0 "v2lite awq -> bf16" "$dc" convert "$scratch/v2-awq" "$scratch/v2-awq-bf16" --to bf16
"$dc" logits "$scratch/v2-awq" --tokens "$G/v2lite/seq64.tokens.json" --out "$scratch/a.f32" 2>/dev/null
"$dc" logits "$scratch/v2-awq-bf16" --tokens "$G/v2lite/seq64.tokens.json" --out "$scratch/b.f32" 2>/dev/null
check "v2lite awq and its bf16 dequantization: identical logits" cmp -s "$scratch/a.f32" "$scratch/b.f32"

# ---- the thread count does not change a byte ----------------------------------------------------
for L in gptq nvfp4; do
    expect_rc 0 "$L threads 1" "$dc" convert "$O/v3-fp8" "$scratch/t1-$L" --to $L --scope all --threads 1
    expect_rc 0 "$L threads 2" "$dc" convert "$O/v3-fp8" "$scratch/t2-$L" --to $L --scope all --threads 2
    check "$L: identical bytes for --threads 1 and 2" diff -r "$scratch/t1-$L" "$scratch/t2-$L"
done

# ---- KLD against the BF16 source on gen200 ----------------------------------------------------------
kld() { "$dc" kld "$O/v3-bf16" "$1" --tokens "$T" --json 2>/dev/null | py -c "import json,sys; d=json.load(sys.stdin); print(d['kld_mean'], d['same_top_p'])"; }
expect_rc 0 "w4a16 g128 plain RTN" "$dc" convert "$O/v3-bf16" "$scratch/rtn" --to w4a16 --no-clip
read k_rtn t_rtn <<<"$(kld "$scratch/rtn")"
read k_clip t_clip <<<"$(kld "$scratch/w4a16")"
echo "KLD w4a16 g128: RTN $k_rtn (top-1 $t_rtn%), RTN + clip search $k_clip (top-1 $t_clip%)" >&2
check "the clip search beats plain RTN (w4a16 g128)" py -c "import sys; sys.exit(not (0 < $k_clip < $k_rtn))"
for L in gptq awq nvfp4 mxfp4; do
    read k t <<<"$(kld "$scratch/$L")"
    echo "KLD $L (defaults): $k (top-1 $t%)" >&2
    check "$L: small KLD, top-1 mostly kept" py -c "import sys; sys.exit(not (0 < $k < 0.05 and $t > 75))"
done

# ---- importance matrix -------------------------------------------------------------------------------
expect_rc 2 "--imatrix needs a 4-bit target" "$dc" convert "$O/v3-bf16" "$scratch/out" --to bf16 --imatrix x.gguf
expect_rc 3 "--imatrix: missing file" "$dc" convert "$O/v3-bf16" "$scratch/out" --to w4a16 --imatrix "$scratch/none.gguf"
check "no output after a missing imatrix" [ ! -e "$scratch/out" ]
if "$dc" imatrix --help >/dev/null 2>&1; then
    # calibration: the two other gen200 sequences (held out from the evaluation sequence)
    py -c "import json; a=json.load(open('$G/v3-fp8/gen200.tokens.json')); b=json.load(open('$G/v3-fp8-ue8m0/gen200.tokens.json')); json.dump(a+b, open('$scratch/calib.json','w'))"
    expect_rc 0 "deepcast imatrix" "$dc" imatrix "$O/v3-bf16" --tokens "$scratch/calib.json" -o "$scratch/im.gguf" --ctx 100
    expect_rc 0 "w4a16 --imatrix" "$dc" convert "$O/v3-bf16" "$scratch/w4-im" --to w4a16 --imatrix "$scratch/im.gguf"
    # llama-imatrix (and deepcast imatrix) do not run the MTP layer: its 48 experts have no entry
    check "every routed expert of the main layers had an imatrix entry" grep -q "144 quantized to 4 bits (96 with imatrix entries, 0 with GPTQ Hessians)" "$scratch/stderr"
    read k_im t_im <<<"$(kld "$scratch/w4-im")"
    echo "KLD w4a16 g128 with the imatrix: $k_im (top-1 $t_im%)" >&2
    check "imatrix-weighted clip search: small KLD" py -c "import sys; sys.exit(not (0 < $k_im < 0.05))"
    expect_rc 0 "mismatched imatrix (v2lite's for a V3 model)" "$dc" imatrix "$O/v2lite" --tokens "$G/v2lite/gen200.tokens.json" -o "$scratch/im2.gguf" --ctx 100
    expect_rc 7 "imatrix of another model" "$dc" convert "$O/v3-bf16" "$scratch/out" --to w4a16 --imatrix "$scratch/im2.gguf"
    expect_stderr "imatrix entry blk.1.ffn_" "imatrix width message"

    # RTN vs clip search vs imatrix on a model with outlier channels: the oracle's random weights give
    # nearly isotropic activations, where a diagonal importance has nothing to weight (docs/int4.md);
    # real LLMs have a few input channels of much larger magnitude. Here 6% of the channels of every
    # input_layernorm / post_attention_layernorm weight are scaled by 8 (fixed seed), and the three
    # algorithms are compared by KLD against that model, also over the positions whose expert routing
    # is unchanged (kld_mean_routing_stable), which removes most of the noise of routing flips.
    cp -r "$O/v3-bf16" "$scratch/outl" && chmod -R u+w "$scratch/outl"
    py - "$scratch/outl" <<'PY'
import glob, json, random, struct, sys
r = random.Random(7)
for f in sorted(glob.glob(sys.argv[1] + "/*.safetensors")):
    b = bytearray(open(f, "rb").read())
    n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); base = 8 + n
    for k in sorted(h):
        if k.endswith(("input_layernorm.weight", "post_attention_layernorm.weight")):
            a, e = h[k]["data_offsets"]
            for i in range(base + a, base + e, 2):
                if r.random() < 0.06:
                    x = struct.unpack("<f", b"\0\0" + bytes(b[i:i + 2]))[0] * 8
                    b[i:i + 2] = struct.pack("<f", x)[2:]
    open(f, "wb").write(b)
PY
    expect_rc 0 "imatrix of the outlier model" "$dc" imatrix "$scratch/outl" --tokens "$scratch/calib.json" -o "$scratch/imo.gguf" --ctx 100
    kld2() { "$dc" kld "$scratch/outl" "$1" --tokens "$T" --json 2>/dev/null | py -c "import json,sys; d=json.load(sys.stdin); print(d['kld_mean'], d['kld_mean_routing_stable'])"; }
    for sc in experts all; do
        expect_rc 0 "outliers, $sc: RTN" "$dc" convert "$scratch/outl" "$scratch/o-rtn" --to w4a16 --group-size 32 --scope $sc --no-clip --force
        expect_rc 0 "outliers, $sc: clip" "$dc" convert "$scratch/outl" "$scratch/o-clip" --to w4a16 --group-size 32 --scope $sc --force
        expect_rc 0 "outliers, $sc: imatrix" "$dc" convert "$scratch/outl" "$scratch/o-im" --to w4a16 --group-size 32 --scope $sc --imatrix "$scratch/imo.gguf" --force
        read m_rtn s_rtn <<<"$(kld2 "$scratch/o-rtn")"
        read m_clip s_clip <<<"$(kld2 "$scratch/o-clip")"
        read m_im s_im <<<"$(kld2 "$scratch/o-im")"
        echo "outlier model, w4a16 g32 --scope $sc: KLD (mean / routing-stable) RTN $m_rtn / $s_rtn, clip $m_clip / $s_clip, imatrix $m_im / $s_im" >&2
        # measured: experts 0.079/0.031, 0.060/0.025, 0.048/0.018; all 0.51/0.21, 0.47/0.18, 0.37/0.14
        check "outliers, $sc: imatrix < clip < RTN (routing-stable KLD)" py -c "import sys; sys.exit(not (0 < $s_im < 0.9 * $s_clip and $s_clip < 0.95 * $s_rtn))"
        check "outliers, $sc: imatrix < clip < RTN (mean KLD)" py -c "import sys; sys.exit(not (0 < $m_im < $m_clip < $m_rtn))"
    done
    rm -rf "$scratch/outl" "$scratch/o-rtn" "$scratch/o-clip" "$scratch/o-im"
else
    echo "note: no 'deepcast imatrix' in this build; the imatrix comparison is skipped" >&2
fi

# ---- GPTQ (--gptq): Hessians from the forward pass over calibration tokens ----------------------------------
# Calibration: 8000 tokens drawn uniformly from the vocabulary (an LCG, fixed seed): the oracle's
# weights are random, so any token is as typical as another, and GPTQ needs many more tokens than
# the input width (each routed expert sees about a quarter of them; 400 tokens overfit, docs/int4.md).
py "$src/calib_tokens.py" 8000 3000 12345 "$scratch/rand8k.json"
expect_rc 2 "--gptq without calibration data" "$dc" convert "$O/v3-bf16" "$scratch/out" --to w4a16 --gptq
expect_rc 2 "--calib-tokens without --gptq" "$dc" convert "$O/v3-bf16" "$scratch/out" --to w4a16 --calib-tokens "$scratch/rand8k.json"
expect_rc 2 "--gptq with two calibration inputs" "$dc" convert "$O/v3-bf16" "$scratch/out" --to w4a16 --gptq --calib-tokens "$scratch/rand8k.json" --calib-text x.txt
expect_rc 2 "--gptq needs a 4-bit target" "$dc" convert "$O/v3-bf16" "$scratch/out" --to bf16 --gptq --calib-tokens "$scratch/rand8k.json"
expect_rc 2 "--gptq-damp out of range" "$dc" convert "$O/v3-bf16" "$scratch/out" --to w4a16 --gptq --calib-tokens "$scratch/rand8k.json" --gptq-damp -1
expect_rc 3 "--gptq: missing calibration file" "$dc" convert "$O/v3-bf16" "$scratch/out" --to w4a16 --gptq --calib-tokens "$scratch/none.json"
expect_stderr "none.json" "the missing calibration file is named"
check "no output after a failed calibration" [ ! -e "$scratch/out" ]
echo '[1, 2, 99999]' > "$scratch/badtok.json"
expect_rc 8 "--gptq: calibration token outside the vocabulary" "$dc" convert "$O/v3-bf16" "$scratch/out" --to w4a16 --gptq --calib-tokens "$scratch/badtok.json"
expect_stderr "99999" "the bad token is named"
check "no output after a bad calibration token" [ ! -e "$scratch/out" ]
expect_rc 9 "--gptq: Hessians over --gptq-max-memory" "$dc" convert "$O/v3-bf16" "$scratch/out" --to w4a16 --gptq --calib-tokens "$scratch/rand8k.json" --gptq-max-memory 10MB
expect_stderr "more than the limit" "the memory limit is explained"
check "no output after the memory limit" [ ! -e "$scratch/out" ]
expect_rc 0 "gptq: default scope" "$dc" convert "$O/v3-bf16" "$scratch/gq" --to w4a16 --gptq --calib-tokens "$scratch/rand8k.json" --calib-ctx 200 --force
check "GPTQ Hessians for every routed expert, the MTP layer's included" grep -q "144 quantized to 4 bits (0 with imatrix entries, 144 with GPTQ Hessians)" "$scratch/stderr"
check "96 distinct inputs (gate and up share one)" grep -q "gptq: 96 input Hessians" "$scratch/stderr"
# layer by layer: the limit holds one layer's Hessians (the MoE layers' ~16 MB), not all (49 MB)
expect_rc 0 "gptq: --gptq-max-memory 20MB (one layer's Hessians; all of them need 49 MB)" "$dc" convert "$O/v3-bf16" "$scratch/gqcap" --to w4a16 --gptq --calib-tokens "$scratch/rand8k.json" --calib-ctx 200 --gptq-max-memory 20MB
check "gptq: the same bytes under the per-layer limit" diff -r "$scratch/gq" "$scratch/gqcap"
check "gptq: no spill file left beside the output" sh -c "! ls -a '$scratch' | grep -q gptq-spill"
expect_rc 0 "gptq: --scope all g32, 1 thread" "$dc" convert "$O/v3-bf16" "$scratch/gq1" --to w4a16 --scope all --group-size 32 --gptq --calib-tokens "$scratch/rand8k.json" --calib-ctx 200 --threads 1 --force
expect_rc 0 "gptq: --scope all g32, 2 threads" "$dc" convert "$O/v3-bf16" "$scratch/gq2" --to w4a16 --scope all --group-size 32 --gptq --calib-tokens "$scratch/rand8k.json" --calib-ctx 200 --threads 2 --force
check "gptq: identical bytes for 1 and 2 threads" diff -r "$scratch/gq1" "$scratch/gq2"
expect_rc 0 "clip: --scope all g32" "$dc" convert "$O/v3-bf16" "$scratch/gc" --to w4a16 --scope all --group-size 32 --force
expect_rc 0 "gptq layout, nvfp4 and mxfp4 with --gptq" sh -c "'$dc' convert '$O/v3-bf16' '$scratch/gql' --to gptq --gptq --calib-tokens '$scratch/rand8k.json' --force && '$dc' convert '$O/v3-bf16' '$scratch/gqn' --to nvfp4 --gptq --calib-tokens '$scratch/rand8k.json' --force && '$dc' convert '$O/v3-bf16' '$scratch/gqm' --to mxfp4 --gptq --calib-tokens '$scratch/rand8k.json' --force"
kld3() { "$dc" kld "$O/v3-bf16" "$1" --tokens "$T" --json 2>/dev/null | py -c "import json,sys; d=json.load(sys.stdin); print(d['kld_mean'], d['kld_mean_routing_stable'])"; }
read m_c s_c <<<"$(kld3 "$scratch/w4a16")"
read m_g s_g <<<"$(kld3 "$scratch/gq")"
read m_ca s_ca <<<"$(kld3 "$scratch/gc")"
read m_ga s_ga <<<"$(kld3 "$scratch/gq1")"
echo "gptq vs clip, KLD (mean / routing-stable): default g128 $m_g / $s_g vs $m_c / $s_c; --scope all g32 $m_ga / $s_ga vs $m_ca / $s_ca" >&2
# measured: default g128 0.0097 / 0.0065 vs 0.0114 / 0.0069; all g32 0.058 / 0.033 vs 0.069 / 0.036
check "gptq beats the clip search (default scope, routing-stable KLD)" py -c "import sys; sys.exit(not (0 < $s_g < $s_c))"
check "gptq beats the clip search (--scope all g32, mean and routing-stable KLD)" py -c "import sys; sys.exit(not (0 < $m_ga < 0.95 * $m_ca and 0 < $s_ga < 0.95 * $s_ca))"
rm -rf "$scratch/gq" "$scratch/gq1" "$scratch/gq2" "$scratch/gc" "$scratch/gql" "$scratch/gqn" "$scratch/gqm"

# ---- dry run and runtime rules ---------------------------------------------------------------------------
rm -rf "$scratch/dry"
expect_rc 0 "--dry-run --target vllm" "$dc" convert "$O/v3-bf16" "$scratch/dry" --to w4a16 --dry-run --target vllm
check "dry run writes nothing" [ ! -e "$scratch/dry" ]
check "dry run lists the packed tensors" grep -q "model.layers.1.mlp.experts.0.down_proj.weight_packed .*int4 .*BF16 .*I32 .*320x20" "$scratch/stdout"
check "dry run: partial groups reported" grep -q "FAIL  K % group_size == 0 .*144 tensor" "$scratch/stdout"
check "dry run: MoE Marlin rule" grep -q "FAIL  routed experts: hidden_size % 128 == 0" "$scratch/stdout"
check "dry run: fused modules ok" grep -q "ok    fused modules have equal schemes" "$scratch/stdout"
expect_rc 0 "--dry-run g32 --target vllm" "$dc" convert "$O/v3-bf16" "$scratch/dry" --to w4a16 --group-size 32 --dry-run --target vllm
check "g32 divides every K" grep -q "ok    K % group_size == 0" "$scratch/stdout"
expect_rc 0 "--dry-run --scope all --target sglang" "$dc" convert "$O/v3-bf16" "$scratch/dry" --to awq --scope all --dry-run --target sglang
check "sglang: MLA projections must stay BF16/FP8" grep -q "FAIL  q_a_proj, kv_a_proj_with_mqa and kv_b_proj stay BF16 or FP8" "$scratch/stdout"
expect_rc 0 "--dry-run --target sglang (experts)" "$dc" convert "$O/v3-bf16" "$scratch/dry" --to nvfp4 --dry-run --target sglang
check "sglang experts-only: MLA ok" grep -q "ok    q_a_proj, kv_a_proj_with_mqa" "$scratch/stdout"
check "nvfp4 note on input_scale" grep -q "input_scale is 1.0" "$scratch/stdout"
check "dry run (sglang) writes nothing" [ ! -e "$scratch/dry" ]

# ---- usage and unsupported inputs --------------------------------------------------------------------------
expect_rc 2 "gptq --asym" "$dc" convert "$O/v3-bf16" "$scratch/out" --to gptq --asym
expect_stderr "symmetric only" "gptq asym message"
expect_rc 2 "nvfp4 --group-size 32" "$dc" convert "$O/v3-bf16" "$scratch/out" --to nvfp4 --group-size 32
expect_rc 2 "group size 48" "$dc" convert "$O/v3-bf16" "$scratch/out" --to w4a16 --group-size 48
expect_rc 2 "gptq --keep-attention fp8" "$dc" convert "$O/v3-bf16" "$scratch/out" --to gptq --keep-attention fp8
expect_rc 2 "bad --scope" "$dc" convert "$O/v3-bf16" "$scratch/out" --to w4a16 --scope heads
expect_rc 2 "bad --target" "$dc" convert "$O/v3-bf16" "$scratch/out" --to w4a16 --target tgi
expect_rc 2 "--sym without a 4-bit target" "$dc" convert "$O/v3-bf16" "$scratch/out" --to bf16 --sym
expect_rc 6 "4-bit input --to fp8" "$dc" convert "$scratch/w4a16" "$scratch/out" --to fp8
expect_rc 0 "fused experts" "$dc" reshard "$O/v3-bf16" "$scratch/fused" --merge-experts
expect_rc 6 "fused experts -> w4a16" "$dc" convert "$scratch/fused" "$scratch/out" --to w4a16
expect_stderr "split them first" "fused experts message"
expect_rc 0 "mkmodel qwen2-tiny" "$dc" mkmodel "$scratch/qwen" --preset qwen2-tiny
expect_rc 6 "dense model, --scope experts" "$dc" convert "$scratch/qwen" "$scratch/out" --to w4a16 --scope experts
expect_stderr "no routed experts" "dense scope message"
expect_rc 0 "dense model, --scope all" "$dc" convert "$scratch/qwen" "$scratch/qwen-w4" --to w4a16 --scope all --group-size 32
expect_rc 0 "inspect --check qwen2 w4a16" "$dc" inspect "$scratch/qwen-w4" --check --no-tensors
check "no output left behind" [ ! -e "$scratch/out" ]
expect_rc 10 "output exists" "$dc" convert "$O/v3-bf16" "$scratch/w4a16" --to w4a16

# ---- malformed 4-bit checkpoints: refused when opened, with the tensor named ------------------------------
mk() { rm -rf "$scratch/bad"; cp -r "$scratch/$1" "$scratch/bad"; }
E=model.layers.1.mlp.experts.0.down_proj
mk w4a16; py "$src/st_edit.py" "$scratch/bad" drop $E.weight_scale
expect_rc 7 "w4a16 without a weight_scale" "$dc" inspect "$scratch/bad"
expect_stderr "packed weight $E.weight_packed has no $E.weight_scale" "missing scale message"
mk w4a16; py "$src/st_edit.py" "$scratch/bad" reshape $E.weight_scale 160x4
expect_rc 7 "w4a16 scale of the wrong shape" "$dc" inspect "$scratch/bad"
expect_stderr "scale $E.weight_scale has 4 columns for K = 160; the config's group sizes (128) give none" "scale shape message"
mk w4a16; py "$src/st_edit.py" "$scratch/bad" reshape $E.weight_shape 1x2
expect_rc 7 "w4a16 weight_shape of the wrong dtype" "$dc" logits "$scratch/bad" --tokens "$T" --out "$scratch/x.f32"
expect_stderr "needs $E.weight_shape (I64 [2])" "weight_shape message"
mk gptq; py "$src/st_edit.py" "$scratch/bad" drop $E.qzeros
expect_rc 7 "gptq without qzeros" "$dc" hash "$scratch/bad"
expect_stderr "GPTQ weight $E.qweight has no qzeros" "qzeros message"
mk gptq; py - "$scratch/bad" $E.g_idx <<'PY'
import glob, json, struct, sys
for fn in glob.glob(sys.argv[1] + "/*.safetensors"):
    b = bytearray(open(fn, "rb").read()); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    if sys.argv[2] in h:
        o = 8 + n + h[sys.argv[2]]["data_offsets"][0] + 4 * 7
        b[o:o + 4] = struct.pack("<i", 9)
        open(fn, "wb").write(b)
PY
expect_rc 7 "gptq g_idx out of range" "$dc" inspect "$scratch/bad"
expect_stderr "g_idx $E.g_idx[7] = 9; there are 2 groups" "g_idx message"
mk nvfp4; py "$src/st_edit.py" "$scratch/bad" drop $E.weight_scale_2
expect_rc 7 "nvfp4 without weight_scale_2" "$dc" inspect "$scratch/bad"
expect_stderr "NVFP4 weight $E.weight has no global scale (weight_scale_2)" "global scale message"
mk mxfp4; py "$src/st_edit.py" "$scratch/bad" dtype $E.weight_packed I8
expect_rc 6 "mxfp4 packed weight of another dtype" "$dc" inspect "$scratch/bad"
mk awq; py -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c['quantization_config']['version']='gemv'; json.dump(c, open(p,'w'))" "$scratch/bad/config.json"
expect_rc 6 "awq gemv" "$dc" inspect "$scratch/bad"
expect_stderr "AWQ version \"gemv\"" "awq version message"
finish
