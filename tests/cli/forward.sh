#!/bin/bash
# deepcast logits / perplexity / kld from the command line on the oracle checkpoints: output size
# and values against DeepSeek's own logits, perplexity against the golden PPL, llama.cpp-style
# scoring recomputed from logits, KLD of a model with itself, the compact base-logits file, --text,
# and the exit codes of bad input (no partial output).
# Arguments: deepcast binary, tests source dir, scratch dir, oracle dir.
set -e
dc=$1; src=$2; scratch=$3; oracle=$4
rm -rf "$scratch"; mkdir -p "$scratch"
. "$src/cli_lib.bash"
set +e # checks record failures themselves

# --- logits --out: byte size and values against the golden logits ---------------------------
for v in v3-bf16 v3-fp8 v3-fp8-ue8m0 v2lite; do
    m="$oracle/models/$v"; g="$oracle/golden/$v"
    out="$scratch/$v.logits.f32"
    expect_rc 0 "logits $v" "$dc" logits "$m" --tokens "$g/gen200.tokens.json" --out "$out" --threads 2
    check "logits $v: size" [ "$(stat -c %s "$out")" -eq "$(stat -c %s "$g/gen200.logits.f32")" ]
    python3 - "$out" "$g/gen200.logits.f32" <<'PY' && ok || bad "logits $v: values differ from the golden by more than 1e-4"
import struct, sys
a = open(sys.argv[1], "rb").read(); b = open(sys.argv[2], "rb").read()
n = len(a) // 4
x = struct.unpack("<%df" % n, a); y = struct.unpack("<%df" % n, b)
d = max(abs(p - q) for p, q in zip(x, y))
assert d <= 1e-4, d
PY
    # perplexity --json equals the golden ppl (relative 1e-4)
    expect_rc 0 "perplexity --json $v" "$dc" perplexity "$m" --tokens "$g/gen200.tokens.json" --json
    python3 - "$scratch/stdout" "$g/gen200.json" <<'PY' && ok || bad "perplexity $v: ppl differs from the golden"
import json, re, sys
d = json.load(open(sys.argv[1]))
gold = float(re.search(r'"ppl":\s*([0-9.eE+-]+)', open(sys.argv[2]).read()).group(1))
assert abs(d["ppl"] - gold) <= 1e-4 * gold, (d["ppl"], gold)
assert d["n_scored"] == 199 and d["n_tokens"] == 200 and d["tokens_per_s"] > 0
assert set(d) >= {"ppl", "nll_mean", "n_scored", "n_tokens", "tokens_per_s"}
PY
done

# the same logits with 1 thread, and with the weight cache off: identical bytes
m="$oracle/models/v3-fp8"; g="$oracle/golden/v3-fp8"
tr ',[]' '   ' <"$g/gen200.tokens.json" >"$scratch/gen200.txt"   # whitespace-separated form
expect_rc 0 "logits whitespace tokens, 1 thread" "$dc" logits "$m" --tokens "$scratch/gen200.txt" --out "$scratch/t1.f32" --threads 1
check "1 thread == 2 threads" cmp -s "$scratch/t1.f32" "$scratch/v3-fp8.logits.f32"
expect_rc 0 "logits, no cache" "$dc" logits "$m" --tokens "$scratch/gen200.txt" --out "$scratch/nc.f32" --mem-budget 0
check "no cache: same bytes" cmp -s "$scratch/nc.f32" "$scratch/v3-fp8.logits.f32"
expect_rc 0 "logits --exact-fp8" "$dc" logits "$m" --tokens "$scratch/gen200.txt" --out "$scratch/ex.f32" --exact-fp8
check "--exact-fp8 changes FP8 logits" differ "$scratch/ex.f32" "$scratch/v3-fp8.logits.f32"
expect_rc 10 "logits: --out exists" "$dc" logits "$m" --tokens "$scratch/gen200.txt" --out "$scratch/ex.f32"
expect_rc 0 "logits: --force" "$dc" logits "$m" --tokens "$scratch/gen200.txt" --out "$scratch/ex.f32" --force

# --- perplexity: chunks and llama.cpp scoring, recomputed from logits ----------------------------
m="$oracle/models/v2lite"; g="$oracle/golden/v2lite"
expect_rc 0 "perplexity --ctx 64" "$dc" perplexity "$m" --tokens "$g/gen200.tokens.json" --ctx 64 --json --threads 2
cp "$scratch/stdout" "$scratch/ppl64.json"
expect_rc 0 "perplexity --llama-compat --ctx 64" "$dc" perplexity "$m" --tokens "$g/gen200.tokens.json" --ctx 64 --llama-compat --json
cp "$scratch/stdout" "$scratch/llama64.json"
# logits of each chunk, as llama.cpp evaluates them (first token replaced by BOS = 2998)
python3 - "$g/gen200.tokens.json" "$scratch" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
for c in range(len(t) // 64):
    ch = t[c * 64:(c + 1) * 64]
    open("%s/plain%d.json" % (sys.argv[2], c), "w").write(json.dumps(ch))
    open("%s/llama%d.json" % (sys.argv[2], c), "w").write(json.dumps([2998] + ch[1:]))
open("%s/plain3.json" % sys.argv[2], "w").write(json.dumps(t[192:]))
PY
for c in 0 1 2 3; do
    "$dc" logits "$m" --tokens "$scratch/plain$c.json" --out "$scratch/plain$c.f32" >/dev/null 2>&1 || bad "logits chunk $c"
    [ $c -lt 3 ] && { "$dc" logits "$m" --tokens "$scratch/llama$c.json" --out "$scratch/llama$c.f32" >/dev/null 2>&1 || bad "logits llama chunk $c"; }
done
python3 - "$g/gen200.tokens.json" "$scratch" <<'PY' && ok || bad "perplexity chunking / llama.cpp scoring disagree with a recomputation"
import json, math, struct, sys
t = json.load(open(sys.argv[1])); d = sys.argv[2]; V = 3000
def nlls(path, toks, first):
    b = open(path, "rb").read(); L = len(b) // (4 * V)
    out = []
    for j in range(first, L - 1):
        row = struct.unpack_from("<%df" % V, b, 4 * V * j)
        mx = max(row); lse = mx + math.log(sum(math.exp(x - mx) for x in row))
        out.append(lse - row[toks[j + 1]])
    return out
plain = []
for c in range(4):
    plain += nlls("%s/plain%d.f32" % (d, c), t[c * 64:(c + 1) * 64], 0)
llama = []
for c in range(3):
    llama += nlls("%s/llama%d.f32" % (d, c), t[c * 64:(c + 1) * 64], 32)
p = json.load(open(d + "/ppl64.json")); q = json.load(open(d + "/llama64.json"))
assert p["n_scored"] == len(plain) == 196 and p["n_chunks"] == 4, p
assert q["n_scored"] == len(llama) == 93 and q["n_chunks"] == 3, q
mp = sum(plain) / len(plain); ml = sum(llama) / len(llama)
assert abs(p["nll_mean"] - mp) < 1e-6, (p["nll_mean"], mp)
assert abs(q["nll_mean"] - ml) < 1e-6, (q["nll_mean"], ml)
var = sum(x * x for x in llama) / len(llama) - ml * ml
se = math.sqrt(var / (len(llama) - 1)) * math.exp(ml)
assert abs(q["ppl_stderr"] - se) < 1e-6 * se, (q["ppl_stderr"], se)
PY
expect_rc 0 "perplexity --threads 1" "$dc" perplexity "$m" --tokens "$g/gen200.tokens.json" --ctx 64 --json --threads 1
python3 - "$scratch/stdout" "$scratch/ppl64.json" <<'PY' && ok || bad "perplexity differs between 1 and 2 threads"
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert a["threads"] == 1 and a["nll_mean"] == b["nll_mean"] and a["ppl_stderr"] == b["ppl_stderr"], (a, b)
PY
expect_rc 0 "perplexity text output" "$dc" perplexity "$m" --tokens "$g/seq64.tokens.json"
check "prints PPL = x +/- y" grep -qE '^PPL = [0-9.]+ \+/- [0-9.]+$' "$scratch/stdout"
check "prints tokens/s" grep -q 'tokens/s' "$scratch/stdout"
expect_rc 8 "llama-compat with too few tokens" "$dc" perplexity "$m" --tokens "$g/gen200.tokens.json" --llama-compat
expect_stderr "1024" "llama-compat too few tokens names the need"

# --- kld -------------------------------------------------------------------------------------
m="$oracle/models/v3-fp8"; g="$oracle/golden/v3-fp8"
expect_rc 0 "kld M M" "$dc" kld "$m" "$m" --tokens "$g/gen200.tokens.json" --json
python3 - "$scratch/stdout" <<'PY' && ok || bad "kld M M is not 0 / 100%"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["kld_mean"] == 0 and d["kld_max"] == 0 and d["same_top_p"] == 100, d
assert d["n_positions"] == 199 and d["ppl_model"] == d["ppl_base"]
PY
expect_rc 0 "kld text report" "$dc" kld "$m" "$m" --tokens "$g/seq64.tokens.json" --exact-fp8
check "kld report has Same top p" grep -q '^Same top p' "$scratch/stdout"
check "kld report has Median KLD" grep -q '^Median  KLD' "$scratch/stdout"
expect_rc 0 "kld --exact-fp8 --json --save-base" "$dc" kld "$m" "$m" --tokens "$g/gen200.tokens.json" --exact-fp8 --json --save-base "$scratch/base.dcbl" --top-k 32
cp "$scratch/stdout" "$scratch/kld_full.json"
check "base file written" [ -s "$scratch/base.dcbl" ]
check "base file size: 72 + 4*200 + 199*(8+8*32)" [ "$(stat -c %s "$scratch/base.dcbl")" -eq $((72 + 800 + 199 * 264)) ]
expect_rc 0 "kld --base-logits (same model)" "$dc" kld --base-logits "$scratch/base.dcbl" "$m" --json
python3 - "$scratch/stdout" "$scratch/kld_full.json" <<'PY' && ok || bad "kld --base-logits against the same model"
import json, sys
d = json.load(open(sys.argv[1])); f = json.load(open(sys.argv[2]))
assert d["kld_mean"] == 0 and d["same_top_p"] == 100 and d["base_topk_approx"] is True, d
assert abs(d["ppl_base"] - f["ppl_base"]) < 1e-4 * f["ppl_base"]
PY
expect_rc 0 "kld --base-logits --exact-fp8" "$dc" kld --base-logits "$scratch/base.dcbl" "$m" --exact-fp8 --tokens "$g/gen200.tokens.json" --json
python3 - "$scratch/stdout" "$scratch/kld_full.json" <<'PY' && ok || bad "kld --base-logits vs the full KLD"
import json, sys
d = json.load(open(sys.argv[1])); f = json.load(open(sys.argv[2]))
assert 0 < d["kld_mean"] <= f["kld_mean"] * (1 + 1e-6), (d["kld_mean"], f["kld_mean"])
assert f["kld_mean"] < 1e-2 and d["same_top_p"] == f["same_top_p"]
assert abs(d["ppl_model"] - f["ppl_model"]) < 1e-9 * f["ppl_model"]
PY
expect_rc 8 "kld --base-logits with other tokens" "$dc" kld --base-logits "$scratch/base.dcbl" "$m" --tokens "$g/seq64.tokens.json"
expect_rc 2 "kld --base-logits with another --ctx" "$dc" kld --base-logits "$scratch/base.dcbl" "$m" --ctx 50
head -c 1000 "$scratch/base.dcbl" >"$scratch/trunc.dcbl"
expect_rc 4 "kld truncated base file" "$dc" kld --base-logits "$scratch/trunc.dcbl" "$m"
expect_rc 4 "kld base file that is not one" "$dc" kld --base-logits "$g/gen200.tokens.json" "$m"
expect_rc 0 "kld BASE --save-base only" "$dc" kld "$m" --save-base "$scratch/b2.dcbl" --tokens "$g/gen200.tokens.json" --top-k 8
check "save-only file size" [ "$(stat -c %s "$scratch/b2.dcbl")" -eq $((72 + 800 + 199 * 72)) ]
if "$dc" mkmodel "$scratch/v4k" --preset v3-tiny --vocab 4000 --no-tokenizer >/dev/null 2>&1; then
    expect_rc 8 "kld of models with different vocabularies" "$dc" kld "$m" "$scratch/v4k" --tokens "$g/seq64.tokens.json"
    expect_stderr "vocab" "different vocabularies message"
else
    bad "mkmodel --vocab 4000"
fi
m2="$oracle/models/v2lite"
expect_rc 0 "kld --llama-compat" "$dc" kld "$m2" "$m2" --tokens "$oracle/golden/v2lite/gen200.tokens.json" --llama-compat --ctx 64 --json
check "kld --llama-compat scores 93 positions" grep -q '"n_positions":93' "$scratch/stdout"

# --- --text (a synthetic checkpoint with a tokenizer) -----------------------------------------
if "$dc" mkmodel "$scratch/tiny" --preset v3-tiny >/dev/null 2>&1 && [ -f "$scratch/tiny/tokenizer.json" ]; then
    printf 'The quick brown fox jumps over the lazy dog. A second sentence, with numbers 12345.\n' >"$scratch/t.txt"
    expect_rc 0 "perplexity --text" "$dc" perplexity "$scratch/tiny" --text "$scratch/t.txt" --json
    python3 - "$scratch/stdout" <<'PY' && ok || bad "perplexity --text fields"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["n_tokens"] >= 10 and d["n_scored"] == d["n_tokens"] - 1 and d["ppl"] > 1
PY
    expect_rc 0 "kld --text" "$dc" kld "$scratch/tiny" "$scratch/tiny" --text "$scratch/t.txt" --json
    check "kld --text: 0" grep -q '"kld_mean":0,' "$scratch/stdout"
    : >"$scratch/short.txt" # BOS only
    expect_rc 8 "text with < 2 tokens" "$dc" perplexity "$scratch/tiny" --text "$scratch/short.txt"
    expect_stderr "at least 2" "short text message"
    expect_rc 0 "perplexity --text --tokenizer" "$dc" perplexity "$m" --text "$scratch/t.txt" --tokenizer "$scratch/tiny"
else
    bad "mkmodel --preset v3-tiny did not produce a checkpoint with a tokenizer"
fi
expect_rc 3 "--text without a tokenizer" "$dc" perplexity "$m" --text "$scratch/gen200.txt"

# --- bad input: exit codes, messages, no partial output -----------------------------------------
m="$oracle/models/v3-bf16"; g="$oracle/golden/v3-bf16"
echo "1 2 3000 4" >"$scratch/big.txt"
expect_rc 8 "token id >= vocab" "$dc" logits "$m" --tokens "$scratch/big.txt" --out "$scratch/o1"
expect_stderr "3000" "token id message names the id"
check "no partial --out" [ ! -e "$scratch/o1" ]
check "no temporary left" [ -z "$(ls "$scratch" | grep 'o1.tmp')" ]
: >"$scratch/empty.txt"
expect_rc 8 "empty token file" "$dc" logits "$m" --tokens "$scratch/empty.txt" --out "$scratch/o2"
expect_stderr "empty.txt" "empty token file message names the file"
echo "1 2 x3" >"$scratch/garbled.txt"
expect_rc 8 "garbled token file" "$dc" logits "$m" --tokens "$scratch/garbled.txt" --out "$scratch/o3"
echo "[1, 2," >"$scratch/garbled.json"
expect_rc 8 "garbled JSON token list" "$dc" perplexity "$m" --tokens "$scratch/garbled.json"
echo "7" >"$scratch/one.txt"
expect_rc 8 "one token cannot be scored" "$dc" perplexity "$m" --tokens "$scratch/one.txt"
expect_rc 3 "missing token file" "$dc" logits "$m" --tokens "$scratch/nope.txt" --out "$scratch/o4"
expect_rc 2 "logits without --out" "$dc" logits "$m" --tokens "$scratch/gen200.txt"
expect_rc 2 "logits unknown option" "$dc" logits "$m" --tokens "$scratch/gen200.txt" --out "$scratch/o5" --bogus
expect_rc 2 "perplexity --tokens and --text" "$dc" perplexity "$m" --tokens a --text b
expect_rc 2 "perplexity --ctx 1" "$dc" perplexity "$m" --tokens "$scratch/gen200.txt" --ctx 1
expect_rc 2 "kld with one model" "$dc" kld "$m" --tokens "$scratch/gen200.txt"
expect_rc 2 "kld --threads 0" "$dc" kld "$m" "$m" --tokens "$scratch/gen200.txt" --threads 0
for c in logits perplexity kld; do
    expect_rc 0 "$c --help" "$dc" $c --help
    check "$c --help prints usage" grep -q "usage: deepcast $c" "$scratch/stdout"
done
# a checkpoint whose tensors do not match its config: missing tensor (q_lora_rank null -> q_proj)
cp -r "$m" "$scratch/broken"
python3 - "$scratch/broken/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["q_lora_rank"] = None
json.dump(c, open(sys.argv[1], "w"))
PY
expect_rc 7 "missing tensor" "$dc" logits "$scratch/broken" --tokens "$scratch/gen200.txt" --out "$scratch/o6"
expect_stderr "q_proj.weight" "missing tensor message names it"
check "no partial --out (model error)" [ ! -e "$scratch/o6" ]
# mis-shaped tensors: config says a different hidden size
python3 - "$scratch/broken/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["q_lora_rank"] = 96; c["hidden_size"] = 256
json.dump(c, open(sys.argv[1], "w"))
PY
expect_rc 7 "mis-shaped tensor" "$dc" perplexity "$scratch/broken" --tokens "$scratch/gen200.txt"
expect_stderr "implies [3000x256]" "mis-shaped message names both shapes"
# scale shapes that do not match: FP8 checkpoint with another weight_block_size
cp -r "$oracle/models/v3-fp8" "$scratch/badscale"
python3 - "$scratch/badscale/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["quantization_config"]["weight_block_size"] = [64, 128]
json.dump(c, open(sys.argv[1], "w"))
PY
expect_rc 7 "mis-shaped scale" "$dc" kld "$scratch/badscale" "$scratch/badscale" --tokens "$scratch/gen200.txt"
expect_stderr "weight_scale_inv" "mis-shaped scale message names the scale"
mkdir -p "$scratch/noconfig" && cp "$oracle/models/v2lite/model-00001-of-00002.safetensors" "$scratch/noconfig/"
expect_rc 5 "no config.json" "$dc" logits "$scratch/noconfig/model-00001-of-00002.safetensors" --tokens "$scratch/gen200.txt" --out "$scratch/o7"

finish
