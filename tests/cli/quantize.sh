#!/bin/bash
# deepcast quantize and imatrix: the plan (--dry-run), a Hugging Face input == its F32 GGUF, the same
# bytes for any thread count, options, every file type read back by hash / inspect / logits / kld,
# importance matrices (GGUF and legacy .dat) made and used, bad input (exit codes, messages, no
# output left behind). Byte-exactness against llama.cpp itself: tests/interop/quantize_check.c.
dc=$1; src=$2; scratch=$3; oracle=$4
rm -rf "$scratch"; mkdir -p "$scratch"
. "$src/cli_lib.bash"
O="$oracle/models"; G="$oracle/golden"
T="$G/v3-bf16/gen200.tokens.json"
py() { python3 "$@"; }
# gguf_kv FILE KEY: "type value" of a scalar KV
gguf_kv() {
    py - "$1" "$2" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
ver, nt, nkv = struct.unpack_from("<IQQ", b, 4)
pos = 24
SZ = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
NM = {0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32", 7: "bool", 8: "str", 10: "u64", 11: "i64", 12: "f64"}
def val(t):
    global pos
    if t == 8:
        n, = struct.unpack_from("<Q", b, pos); s = b[pos + 8:pos + 8 + n].decode(); pos += 8 + n; return s
    f = "<" + SZ[t]; v, = struct.unpack_from(f, b, pos); pos += struct.calcsize(f); return v
keys = []
for _ in range(nkv):
    n, = struct.unpack_from("<Q", b, pos); k = b[pos + 8:pos + 8 + n].decode(); pos += 8 + n
    t, = struct.unpack_from("<I", b, pos); pos += 4
    if t == 9:
        et, cnt = struct.unpack_from("<IQ", b, pos); pos += 12
        v = [val(et) for _ in range(cnt)]; ty = "arr"
    else:
        v = val(t); ty = NM[t]
    keys.append(k)
    if k == sys.argv[2]:
        print(ty, v)
if sys.argv[2] == "@keys":
    print(" ".join(keys))
PY
}

expect_rc 0 "mkmodel v3-tiny" "$dc" mkmodel "$scratch/tiny" --preset v3-tiny
expect_rc 0 "tiny -> F32 GGUF" "$dc" convert "$scratch/tiny" "$scratch/tiny.gguf" --to gguf --type f32
expect_rc 0 "oracle -> F32 GGUF" "$dc" convert "$O/v3-bf16" "$scratch/or.gguf" --to gguf --type f32

# ---- the plan ----
expect_rc 0 "dry run" "$dc" quantize "$scratch/tiny.gguf" "$scratch/dry.gguf" Q4_K_M --dry-run
check "dry run writes nothing" [ ! -e "$scratch/dry.gguf" ]
check "dry run: output.weight Q8_0 (rows of 320 are not a multiple of 256)" grep -q "^output.weight .* f32 *q8_0 " "$scratch/stdout"
check "dry run: norms stay F32" grep -q "^blk.0.attn_norm.weight .* f32 *f32 " "$scratch/stdout"
check "dry run: router stays F32" grep -q "^blk.1.ffn_gate_inp.weight .* f32 *f32 " "$scratch/stdout"
check "dry run: fallback noted" grep -q "^blk.1.ffn_gate_exps.weight .*q5_0 .*ncols 320 not divisible by 256 (q4_K) -> q5_0" "$scratch/stdout"
check "dry run: llama.cpp's tensor order (non-blk first, then by layer and name)" \
    [ "$(grep -E '^(output|token_embd|blk)' "$scratch/stdout" | head -4 | cut -d' ' -f1 | tr '\n' ' ')" = "output.weight output_norm.weight token_embd.weight blk.0.attn_k_b.weight " ]
check "dry run: totals and bits per weight" grep -q "^quant size: .* MiB (6.16 BPW), Q4_K_M, 76 tensors, 50 quantized, 26 copied, 49 fallback" "$scratch/stdout"
expect_rc 0 "dry run without OUT" "$dc" quantize "$scratch/tiny.gguf" Q8_0 --dry-run
check "Q8_0 plan" grep -q "^token_embd.weight .* f32 *q8_0 " "$scratch/stdout"
expect_rc 0 "--pure" "$dc" quantize "$scratch/tiny.gguf" Q6_K --dry-run --pure
check "--pure: output.weight takes the default type too (then falls back)" grep -q "^output.weight .* f32 *q8_0 .*ncols 320 not divisible by 256 (q6_K)" "$scratch/stdout"
expect_rc 0 "--tensor-type" "$dc" quantize "$scratch/tiny.gguf" Q4_0 --dry-run --tensor-type 'ffn_down_exps=q8_0' --tensor-type 'attn_.*_b=F16' --output-tensor-type Q5_1 --token-embedding-type bf16
check "--tensor-type ffn_down_exps=q8_0" grep -q "^blk.1.ffn_down_exps.weight .* f32 *q8_0 .*--tensor-type ffn_down_exps" "$scratch/stdout"
check "--tensor-type regex" grep -q "^blk.2.attn_v_b.weight .* f32 *f16 " "$scratch/stdout"
check "--output-tensor-type" grep -q "^output.weight .* f32 *q5_1 " "$scratch/stdout"
check "--token-embedding-type" grep -q "^token_embd.weight .* f32 *bf16 " "$scratch/stdout"
expect_rc 0 "--recipe deepseek" "$dc" quantize "$scratch/tiny.gguf" Q4_K_M --dry-run --recipe deepseek --tensor-type 'attn_q_b=q5_0'
check "recipe: attention q8_0" grep -q "^blk.2.attn_kv_a_mqa.weight .* f32 *q8_0 .*--tensor-type ^blk" "$scratch/stdout"
check "recipe: shared experts q8_0" grep -q "^blk.1.ffn_up_shexp.weight .* f32 *q8_0 " "$scratch/stdout"
check "recipe: routed experts by the file type" grep -q "^blk.1.ffn_up_exps.weight .* f32 *q5_0 .*(q4_K)" "$scratch/stdout"
check "recipe: an explicit --tensor-type wins" grep -q "^blk.0.attn_q_b.weight .* f32 *q5_0 .*--tensor-type attn_q_b" "$scratch/stdout"
expect_rc 2 "unknown recipe" "$dc" quantize "$scratch/tiny.gguf" Q4_K_M --dry-run --recipe qwen
expect_rc 0 "--leave-output-tensor" "$dc" quantize "$scratch/tiny.gguf" Q5_0 --dry-run --leave-output-tensor
check "output.weight kept" grep -q "^output.weight .* f32 *f32 " "$scratch/stdout"
expect_rc 0 "MXFP4_MOE" "$dc" quantize "$scratch/tiny.gguf" mxfp4_moe --dry-run
check "MXFP4_MOE: experts mxfp4" grep -q "^blk.1.ffn_up_exps.weight .* f32 *mxfp4 " "$scratch/stdout"
check "MXFP4_MOE: 2-D tensors q8_0" grep -q "^blk.1.ffn_up_shexp.weight .* f32 *q8_0 " "$scratch/stdout"

# ---- Hugging Face input in one pass == F32 GGUF input; thread counts ----
expect_rc 0 "quantize F32 GGUF" "$dc" quantize "$scratch/tiny.gguf" "$scratch/a.gguf" Q4_K_M --threads 1
expect_stderr "76 tensors, 50 quantized, 26 copied" "summary line"
expect_rc 0 "quantize the HF checkpoint directly" "$dc" quantize "$scratch/tiny" "$scratch/b.gguf" Q4_K_M --threads 2
check "HF input == its F32 GGUF, byte for byte" cmp -s "$scratch/a.gguf" "$scratch/b.gguf"
check "general.file_type 15, after quantization_version (llama-quantize appends both)" \
    [ "$(gguf_kv "$scratch/a.gguf" @keys | tr ' ' '\n' | grep -n 'general.quantization_version\|general.file_type' | cut -d: -f2 | tr '\n' ' ')" = "general.quantization_version general.file_type " ]
check "file type value" [ "$(gguf_kv "$scratch/a.gguf" general.file_type)" = "u32 15" ]
expect_rc 0 "FP8 checkpoint directly" "$dc" quantize "$O/v3-fp8" "$scratch/f1.gguf" Q8_0 --drop-mtp
expect_rc 0 "FP8 -> F32 GGUF" "$dc" convert "$O/v3-fp8" "$scratch/f32.gguf" --type f32 --drop-mtp
expect_rc 0 "FP8 F32 GGUF -> Q8_0" "$dc" quantize "$scratch/f32.gguf" "$scratch/f2.gguf" Q8_0
check "FP8 input in one pass == via F32 GGUF (--drop-mtp)" cmp -s "$scratch/f1.gguf" "$scratch/f2.gguf"
expect_rc 0 "threads 1" "$dc" quantize "$scratch/or.gguf" "$scratch/t1.gguf" IQ4_XS --threads 1
expect_rc 0 "threads 3" "$dc" quantize "$scratch/or.gguf" "$scratch/t3.gguf" IQ4_XS --threads 3
check "identical bytes for 1 and 3 threads" cmp -s "$scratch/t1.gguf" "$scratch/t3.gguf"
expect_rc 0 "requantize with --allow-requantize" "$dc" quantize "$scratch/a.gguf" "$scratch/rq.gguf" Q8_0 --allow-requantize

# ---- every file type: read back by hash, inspect, logits, kld ----
expect_rc 0 "F32 logits" "$dc" logits "$scratch/or.gguf" --tokens "$G/v3-bf16/seq64.tokens.json" --out "$scratch/f32.logits"
for t in Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q2_K_S Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS TQ1_0 TQ2_0 MXFP4_MOE; do
    expect_rc 0 "quantize $t" "$dc" quantize "$scratch/or.gguf" "$scratch/q.gguf" $t --force
    expect_rc 0 "hash $t" "$dc" hash "$scratch/q.gguf"
    expect_rc 0 "inspect --check $t" "$dc" inspect "$scratch/q.gguf" --check --no-tensors
    expect_rc 0 "kld $t" "$dc" kld "$scratch/or.gguf" "$scratch/q.gguf" --tokens "$G/v3-bf16/seq64.tokens.json" --json
    check "kld $t: finite and < 0.3 (the oracle's random weights make top-1 agreement a coin toss)" py -c "
import json; d = json.load(open('$scratch/stdout'))
assert 0 <= d['kld_mean'] < 0.3, d"
done
expect_rc 0 "hash lists every block type" "$dc" hash "$scratch/t1.gguf"
check "IQ4_XS file holds iq4_nl fallbacks" grep -q " IQ4_NL " "$scratch/stdout"
# the K-quants proper need rows of 256: the real V3 layer dims (v3-layer preset, 1 layer, 4 experts) would be
# too big for a unit test; tests/interop/quantize_check.c widens rows instead and compares with llama.cpp

# ---- importance matrices ----
expect_rc 0 "imatrix (GGUF)" "$dc" imatrix "$scratch/or.gguf" --tokens "$T" --ctx 64 -o "$scratch/im.gguf" --threads 1
expect_stderr "35 matrices over 3 chunks of 64 tokens" "imatrix summary"
expect_rc 0 "imatrix, 3 threads" "$dc" imatrix "$scratch/or.gguf" --tokens "$T" --ctx 64 -o "$scratch/im3.gguf" --threads 3
check "imatrix identical for 1 and 3 threads" cmp -s "$scratch/im.gguf" "$scratch/im3.gguf"
expect_rc 0 "imatrix of a safetensors checkpoint" "$dc" imatrix "$scratch/tiny" --tokens "$T" --ctx 64 -o "$scratch/im-st.gguf"
expect_rc 0 "imatrix of its F32 GGUF" "$dc" imatrix "$scratch/tiny.gguf" --tokens "$T" --ctx 64 -o "$scratch/im-gg.gguf"
check "same imatrix from safetensors and from the F32 GGUF" cmp -s "$scratch/im-gg.gguf" "$scratch/im-st.gguf"
expect_rc 0 "hash imatrix" "$dc" hash "$scratch/im.gguf"
check "experts: sums per expert" grep -q "^blk.1.ffn_gate_exps.weight.in_sum2 F32 16x320 " "$scratch/stdout"
check "experts: a count per expert" grep -q "^blk.1.ffn_down_exps.weight.counts F32 16x1 " "$scratch/stdout"
check "attn_k_b: per-head nope queries (6 heads x 32)" grep -q "^blk.0.attn_k_b.weight.in_sum2 F32 192 " "$scratch/stdout"
check "attn_v_b: per-head latent outputs (6 heads x 64)" grep -q "^blk.0.attn_v_b.weight.in_sum2 F32 384 " "$scratch/stdout"
check "no MTP layer, no output.weight" [ -z "$(grep '^blk.3.\|^output' "$scratch/stdout")" ]
check "imatrix keys" [ "$(gguf_kv "$scratch/im.gguf" @keys)" = "general.type imatrix.datasets imatrix.chunk_count imatrix.chunk_size" ]
check "chunk count and size" [ "$(gguf_kv "$scratch/im.gguf" imatrix.chunk_count) $(gguf_kv "$scratch/im.gguf" imatrix.chunk_size)" = "u32 3 u32 64" ]
expect_rc 0 "imatrix counts" py - "$scratch/im.gguf" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
ver, nt, nkv = struct.unpack_from("<IQQ", b, 4)
pos = 24
def skip(t):
    global pos
    if t == 8:
        n, = struct.unpack_from("<Q", b, pos); pos += 8 + n; return
    pos += {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}[t]
for _ in range(nkv):
    n, = struct.unpack_from("<Q", b, pos); pos += 8 + n
    t, = struct.unpack_from("<I", b, pos); pos += 4
    if t == 9:
        et, cnt = struct.unpack_from("<IQ", b, pos); pos += 12
        for _ in range(cnt): skip(et)
    else: skip(t)
infos = []
for _ in range(nt):
    n, = struct.unpack_from("<Q", b, pos); name = b[pos + 8:pos + 8 + n].decode(); pos += 8 + n
    nd, = struct.unpack_from("<I", b, pos); pos += 4
    ne = struct.unpack_from("<%dq" % nd, b, pos); pos += 8 * nd
    ty, off = struct.unpack_from("<IQ", b, pos); pos += 12
    infos.append((name, ne, off))
data = (pos + 31) // 32 * 32
def arr(name):
    for nm, ne, off in infos:
        if nm == name:
            k = 1
            for x in ne: k *= x
            return struct.unpack_from("<%df" % k, b, data + off)
c = arr("blk.1.ffn_gate_exps.weight.counts")
assert sum(c) == 3 * 64 * 4, c
assert arr("blk.1.ffn_down_exps.weight.counts") == c
assert arr("blk.0.attn_q_a.weight.counts") == (192.0,)
assert arr("blk.0.attn_q_a.weight.in_sum2") == arr("blk.0.attn_kv_a_mqa.weight.in_sum2")  # same input
assert min(arr("blk.1.ffn_down_exps.weight.in_sum2")) >= 0
PY
expect_rc 0 "imatrix (legacy .dat)" "$dc" imatrix "$scratch/or.gguf" --tokens "$T" --ctx 64 -o "$scratch/im.dat" --output-format dat
expect_rc 0 "quantize with the GGUF imatrix" "$dc" quantize "$scratch/or.gguf" "$scratch/qi.gguf" Q4_K_M --imatrix "$scratch/im.gguf"
expect_stderr "35 entries, used for 33 tensors" "imatrix use"
check "quantize.imatrix.file" [ "$(gguf_kv "$scratch/qi.gguf" quantize.imatrix.file)" = "str $scratch/im.gguf" ]
check "quantize.imatrix.dataset" [ "$(gguf_kv "$scratch/qi.gguf" quantize.imatrix.dataset)" = "str $T" ]
check "quantize.imatrix.entries_count" [ "$(gguf_kv "$scratch/qi.gguf" quantize.imatrix.entries_count)" = "u32 35" ]
check "quantize.imatrix.chunks_count" [ "$(gguf_kv "$scratch/qi.gguf" quantize.imatrix.chunks_count)" = "u32 3" ]
expect_rc 0 "quantize without" "$dc" quantize "$scratch/or.gguf" "$scratch/qn.gguf" Q4_K_M
check "the imatrix changes the bytes" differ "$scratch/qi.gguf" "$scratch/qn.gguf"
expect_rc 0 "quantize with the .dat imatrix" "$dc" quantize "$scratch/or.gguf" "$scratch/qd.gguf" Q4_K_M --imatrix "$scratch/im.dat"
expect_rc 0 "hash .dat" "$dc" hash "$scratch/qd.gguf"; cp "$scratch/stdout" "$scratch/qd.hash"
expect_rc 0 "hash gguf" "$dc" hash "$scratch/qi.gguf"
check "the .dat imatrix quantizes like the GGUF one (all experts were routed to)" diff -q "$scratch/stdout" "$scratch/qd.hash"

# ---- bad input ----
noout() { [ ! -e "$scratch/out.gguf" ] && [ -z "$(ls "$scratch" | grep '\.tmp-')" ]; }
expect_rc 2 "unknown file type" "$dc" quantize "$scratch/or.gguf" "$scratch/out.gguf" Q4_K_X
expect_stderr "unknown file type 'Q4_K_X'" "file type message"
expect_rc 2 "missing TYPE" "$dc" quantize "$scratch/or.gguf" "$scratch/out.gguf"
expect_rc 10 "output exists" "$dc" quantize "$scratch/or.gguf" "$scratch/a.gguf" Q8_0
expect_rc 2 "requantizing needs --allow-requantize" "$dc" quantize "$scratch/a.gguf" "$scratch/out.gguf" Q8_0
expect_stderr "is already q5_0: requantizing is disabled" "requantize message"
expect_rc 2 "bad --tensor-type" "$dc" quantize "$scratch/or.gguf" "$scratch/out.gguf" Q8_0 --tensor-type attn_q
expect_rc 2 "bad regex" "$dc" quantize "$scratch/or.gguf" "$scratch/out.gguf" Q8_0 --tensor-type '(=q8_0'
expect_rc 6 "a type without a quantizer" "$dc" quantize "$scratch/or.gguf" "$scratch/out.gguf" Q8_0 --token-embedding-type iq2_xs
expect_stderr "type iq2_xs has no quantizer in deepcast" "unsupported type message"
expect_rc 2 "explicit type that does not fit the rows" "$dc" quantize "$scratch/or.gguf" "$scratch/out.gguf" Q8_0 --output-tensor-type q4_K
expect_stderr "tensor output.weight: rows of 320 values are not a whole number of q4_K blocks" "row size message"
printf 'garbage' >"$scratch/bad.imatrix"
expect_rc 4 "malformed imatrix" "$dc" quantize "$scratch/or.gguf" "$scratch/out.gguf" Q4_K_M --imatrix "$scratch/bad.imatrix"
head -c 2000 "$scratch/im.dat" >"$scratch/trunc.dat"
expect_rc 4 "truncated legacy imatrix" "$dc" quantize "$scratch/or.gguf" "$scratch/out.gguf" Q4_K_M --imatrix "$scratch/trunc.dat"
expect_stderr "trunc.dat: legacy imatrix entry" "truncated imatrix message"
expect_rc 4 "a GGUF that is no imatrix" "$dc" quantize "$scratch/or.gguf" "$scratch/out.gguf" Q4_K_M --imatrix "$scratch/a.gguf"
expect_stderr "missing imatrix metadata" "not-an-imatrix message"
expect_rc 0 "imatrix of another model" "$dc" imatrix "$O/v2lite" --tokens "$G/v2lite/gen200.tokens.json" --ctx 64 -o "$scratch/v2.imatrix"
expect_rc 7 "imatrix sizes that do not fit" "$dc" quantize "$scratch/or.gguf" "$scratch/out.gguf" Q4_K_M --imatrix "$scratch/v2.imatrix"
expect_stderr "imatrix size" "imatrix size message"
check "no output after failures" noout
expect_rc 8 "imatrix: too few tokens for --ctx" "$dc" imatrix "$scratch/or.gguf" --tokens "$T" --ctx 512 -o "$scratch/x.gguf"
expect_stderr "needs at least 1024 tokens" "too few tokens message"
expect_rc 10 "imatrix output exists" "$dc" imatrix "$scratch/or.gguf" --tokens "$T" --ctx 64 -o "$scratch/im.gguf"
expect_rc 2 "same input and output" "$dc" quantize "$scratch/or.gguf" "$scratch/or.gguf" Q8_0 --force
# a NaN and an infinity in the weights (HF input): exit 8 naming tensor, row and column, no output
cp -r "$O/v3-bf16" "$scratch/nan" && chmod -R u+w "$scratch/nan"
py - "$scratch/nan" <<'PY'
import glob, json, struct, sys
for f in sorted(glob.glob(sys.argv[1] + "/*.safetensors")):
    b = bytearray(open(f, "rb").read())
    n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); base = 8 + n
    k = "model.layers.1.mlp.experts.3.down_proj.weight"
    if k in h:
        a = h[k]["data_offsets"][0]; cols = h[k]["shape"][1]
        p = base + a + 2 * (5 * cols + 17); b[p:p + 2] = b"\xc0\x7f"   # row 5, column 17: NaN (bf16)
        p = base + a + 2 * (9 * cols + 2); b[p:p + 2] = b"\x80\x7f"    # row 9, column 2: +inf
        open(f, "wb").write(b)
PY
for ty in Q8_0 Q4_K_M; do
    expect_rc 8 "quantize $ty: a NaN in the weights" "$dc" quantize "$scratch/nan" "$scratch/nan.gguf" $ty
    expect_stderr "tensor blk.1.ffn_down_exps.weight: non-finite value at row 965 (expert 3, its row 5), column 17" "the NaN is located"
    check "no output after a NaN" [ ! -e "$scratch/nan.gguf" ]
done
finish
