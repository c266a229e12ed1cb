// deepcast's GGUF export against the real llama.cpp (node-llama-cpp 3.22.1, prebuilt CPU
// binaries, never rebuilt): the oracle checkpoints converted with `deepcast convert --to gguf`
// are loaded by llama.cpp, which scores the oracle's token sequences; its next-token
// log-probabilities must match the goldens made with DeepSeek's own code (log-softmax of
// golden/<variant>/seq64.logits.f32) within 1e-3, for BF16 and FP8 sources, V3 and V2-Lite, with and
// without the MTP layer, and for a split GGUF. `deepcast logits` on the same GGUF must agree too.
// Quantized outputs (BF16, Q8_0) are compared by KL divergence and top-1 agreement. Finally
// llama.cpp's tokenizer, loaded from the GGUF of a `deepcast mkmodel --preset v3-tiny`
// checkpoint, must tokenize test texts exactly like `deepcast tokenize`.
//
// usage: node gguf_llama.mjs DEEPCAST ORACLE_DIR SCRATCH_DIR
// Prints one line per check and "N passed, N failed"; exits 1 on failure, 77 (skipped) when
// node-llama-cpp is not installed (cd tests/interop && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci).
import fs from "node:fs";
import path from "node:path";
import {checker, compare, fmt, loadNodeLlamaCpp, oracleTokenizers, readF32, runner, sequenceLogits} from "./lib.mjs";

const [dc, oracle, scratch] = process.argv.slice(2);
if (!dc || !oracle || !scratch) {
    console.error("usage: node gguf_llama.mjs DEEPCAST ORACLE_DIR SCRATCH_DIR");
    process.exit(2);
}
const nlc = await loadNodeLlamaCpp();
const {getLlama, LlamaLogLevel} = nlc;

const {check, finish} = checker(scratch);
const run = runner(dc);

fs.rmSync(scratch, {recursive: true, force: true});
fs.mkdirSync(scratch, {recursive: true});
const G = path.join(oracle, "golden");
const withTokenizer = oracleTokenizers(run, oracle, scratch);
const src = {
    "v3-bf16": withTokenizer("v3-bf16", "tok-v3"),
    "v3-fp8": withTokenizer("v3-fp8", "tok-v3"),
    "v2lite": withTokenizer("v2lite", "tok-v2"),
};


const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});

async function llamaLogits(gguf, toks) {
    const model = await llama.loadModel({modelPath: gguf});
    const V = model.tokens.vocabularySize ?? model.fileInsights?.vocabularySize;
    const r = await sequenceLogits(model, toks);
    await model.dispose();
    return {...r, vocab: V};
}

const cases = [
    {name: "v3-bf16 F32 (MTP kept)", variant: "v3-bf16", args: ["--type", "f32"]},
    {name: "v3-bf16 F32 --drop-mtp", variant: "v3-bf16", args: ["--type", "f32", "--drop-mtp"]},
    {name: "v3-bf16 F32 split in 7", variant: "v3-bf16", args: ["--type", "f32", "--split-max-size", "10M"], split: 7},
    {name: "v3-fp8 F32 (FP8 source, MTP kept)", variant: "v3-fp8", args: ["--type", "f32"]},
    {name: "v3-fp8 F32 --drop-mtp", variant: "v3-fp8", args: ["--type", "f32", "--drop-mtp"]},
    {name: "v2lite F32 (BF16 source)", variant: "v2lite", args: ["--type", "f32"]},
    {name: "v3-bf16 BF16", variant: "v3-bf16", args: ["--type", "bf16"], quant: {kl: 1e-3, top: 0.95}},
    {name: "v3-bf16 Q8_0", variant: "v3-bf16", args: ["--type", "q8_0"], quant: {kl: 2e-2, top: 0.9}},
];
let k = 0;
for (const c of cases) {
    const dir = path.join(scratch, `case${k++}`);
    fs.mkdirSync(dir);
    run(["convert", src[c.variant], path.join(dir, "m.gguf"), "--to", "gguf", ...c.args]);
    const gguf = c.split ? path.join(dir, `m-00001-of-${String(c.split).padStart(5, "0")}.gguf`) : path.join(dir, "m.gguf");
    if (c.split)
        check(fs.readdirSync(dir).length === c.split && fs.existsSync(gguf), `${c.name}: ${c.split} split files`);
    const gv = c.variant === "v2lite" ? "v2lite" : c.variant;
    const toks = JSON.parse(fs.readFileSync(path.join(G, gv, "seq64.tokens.json"), "utf8"));
    const gold = readF32(path.join(G, gv, "seq64.logits.f32"));
    const V = gold.length / toks.length;
    let r;
    try {
        r = await llamaLogits(gguf, toks);
    } catch (e) {
        check(false, `${c.name}: llama.cpp loads and evaluates the GGUF: ${e.message}`);
        continue;
    }
    check(r.V === V, `${c.name}: llama.cpp vocabulary ${r.V} == ${V}`);
    const lg = compare(gold, r.logits, V, toks);
    // deepcast's own forward pass on the same GGUF
    const tokFile = path.join(dir, "tokens.json"), out = path.join(dir, "dc.logits");
    fs.writeFileSync(tokFile, JSON.stringify(toks));
    run(["logits", gguf, "--tokens", tokFile, "--out", out]);
    const dcl = readF32(out);
    const dg = compare(gold, dcl, V, toks), dl = compare(dcl, r.logits, V, toks);
    if (!c.quant) {
        check(lg.next < 1e-3 && lg.all < 1e-3, `${c.name}: llama.cpp vs golden: ${fmt(lg)}`);
        check(dg.next < 1e-3 && dg.all < 1e-3, `${c.name}: deepcast logits vs golden: ${fmt(dg)}`);
        check(dl.next < 1e-3 && dl.all < 1e-3, `${c.name}: deepcast logits vs llama.cpp: ${fmt(dl)}`);
    } else {
        check(lg.kl < c.quant.kl && lg.top >= c.quant.top, `${c.name}: llama.cpp vs golden: ${fmt(lg)}`);
        check(dg.kl < c.quant.kl && dg.top >= c.quant.top, `${c.name}: deepcast logits vs golden: ${fmt(dg)}`);
        check(dl.kl < c.quant.kl && dl.top >= c.quant.top, `${c.name}: deepcast logits vs llama.cpp: ${fmt(dl)}`);
    }
}

// ---- tokenizer: llama.cpp (from the GGUF) vs deepcast tokenize (from tokenizer.json) ----
{
    const dir = path.join(scratch, "tok");
    run(["mkmodel", dir, "--preset", "v3-tiny"]);
    const gguf = path.join(scratch, "tok.gguf");
    run(["convert", dir, gguf, "--to", "gguf", "--type", "q8_0"]);
    const model = await llama.loadModel({modelPath: gguf});
    const texts = [
        "Hello world, this is 123 tokens. The quick brown fox jumps over 45678 lazy dogs!\n",
        "  Indented   code: def f(x): return x*2  # comment\n\n\tTabs\tand \"quotes\" 'single' don't won't I'm.",
        "中文字符 and ひらがな カタカナ, émigré naïve café — 🦙🦙 3.14159 ------====== ......!!!!!!",
        "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3",
        "<｜begin▁of▁sentence｜>User: hi<｜end▁of▁sentence｜>",
    ];
    let i = 0;
    for (const t of texts) {
        const f = path.join(scratch, `text${i}.txt`);
        fs.writeFileSync(f, t);
        const want = JSON.parse(run(["tokenize", dir, "--text", f, "--json", "--no-special"])).ids;
        const special = t.includes("<｜");
        const got = Array.from(model.tokenize(t, special));
        const same = want.length === got.length && want.every((v, j) => v === got[j]);
        check(same, `tokenize text ${i}${special ? " (special tokens)" : ""}: ${got.length} tokens` +
            (same ? "" : `\n  llama.cpp ${JSON.stringify(got)}\n  deepcast  ${JSON.stringify(want)}`));
        i++;
    }
    const f = path.join(scratch, "text0.txt");
    const withBos = JSON.parse(run(["tokenize", dir, "--text", f, "--json"])).ids;
    check(model.tokens.bos === withBos[0] && model.tokens.eos === 1, `BOS ${model.tokens.bos} / EOS ${model.tokens.eos} as in tokenizer_config.json`);
    await model.dispose();
}

finish();
