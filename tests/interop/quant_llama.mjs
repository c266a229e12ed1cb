// `deepcast quantize` output against the real llama.cpp (node-llama-cpp 3.22.1, prebuilt CPU
// binaries, never rebuilt): for the oracle V3 (FP8 source) and V2-Lite checkpoints and a
// `deepcast mkmodel --preset v3-tiny` checkpoint, `deepcast convert --to gguf --type f32` makes an
// F32 GGUF, `deepcast quantize` turns it into Q4_K_M and Q2_K (with and without an importance
// matrix from `deepcast imatrix`; the files are byte-identical to llama-quantize's, see
// interop_quantize_check), llama.cpp loads each file and scores the oracle's seq64 and gen200
// token sequences, and `deepcast logits` scores the same file.
//
// Log-probabilities (next token, and every token of the vocabulary) must agree within 2e-3 with
// llama.cpp evaluating the same weight values: the quantized file's "dequantized twin" (`deepcast
// quantize Q.gguf T.gguf F32 --allow-requantize`), run through llama.cpp's F32 kernels (measured:
// ~4e-6). llama.cpp on the quantized file itself cannot meet 2e-3, whoever computes the reference:
// its CPU matmul quantizes the activations to the weight type's vec_dot_type (q8_0 for
// q4_0/q5_0/q8_0 weights, q8_K for k-quants; f16/bf16 for F16/BF16 weights), which is exact to
// ~1e-8 on ggml's own vec_dot but ~1e-3 (relative to |w||x|) off the f32 dot product. These small
// random models amplify that to 0.05-0.3 in log-probability (up to ~3 where V3's expert routing
// flips), the same distance as between llama.cpp's own results for the quantized file and its
// dequantized twin (F16 weights: ~3e-3, BF16: ~3e-2). So that comparison is printed and bounded
// relative to the quantization's own effect (KL < 1/4 of quantized-vs-F32's, top-1 >= 85%).
// Beyond that: the files must really hold the file type's tensor types (`deepcast inspect --json`,
// cross-checked with node-llama-cpp's own GGUF reader), an imatrix must change the bytes, the
// quantized log-probabilities must differ from the F32 file's (a no-op quantizer would pass the
// agreement checks) while staying close to them, Q2_K further than Q4_K_M.
//
// Only V2-Lite (hidden size 256) gets k-quant tensors: every matrix of the V3 checkpoints has a
// row length (320, 192, 96, 160, ...) that is not a multiple of 256, so llama-quantize's fallback
// rules give q5_0/q8_0 (Q4_K_M) and q4_0/q8_0 (Q2_K) there, and the test checks exactly that.
//
// usage: node quant_llama.mjs DEEPCAST ORACLE_DIR SCRATCH_DIR
// Prints one line per check and "N passed, N failed"; exits 1 on failure, 77 (skipped) when
// node-llama-cpp is not installed (cd tests/interop && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci).
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import {checker, compare, fmt, loadNodeLlamaCpp, oracleTokenizers, readF32, runner, sequenceLogits} from "./lib.mjs";

const [dc, oracle, scratch] = process.argv.slice(2);
if (!dc || !oracle || !scratch) {
    console.error("usage: node quant_llama.mjs DEEPCAST ORACLE_DIR SCRATCH_DIR");
    process.exit(2);
}
const nlc = await loadNodeLlamaCpp();
const {getLlama, LlamaLogLevel, readGgufFileInfo, GgmlType} = nlc;

const {check, finish} = checker(scratch);
const run = runner(dc);

fs.rmSync(scratch, {recursive: true, force: true});
fs.mkdirSync(scratch, {recursive: true});
const G = path.join(oracle, "golden");
const withTokenizer = oracleTokenizers(run, oracle, scratch);

const sha = f => crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex");

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});

async function llamaLogits(gguf, seqs) { // one model load, one fresh context per sequence
    const model = await llama.loadModel({modelPath: gguf});
    const out = [];
    try {
        for (const toks of seqs) {
            out.push(await sequenceLogits(model, toks));
        }
    } finally {
        await model.dispose();
    }
    return out;
}
function dcLogits(gguf, toks, dir, tag) {
    const tokFile = path.join(dir, `${tag}.tokens.json`), out = path.join(dir, `${tag}.logits`);
    fs.writeFileSync(tokFile, JSON.stringify(toks));
    run(["logits", gguf, "--tokens", tokFile, "--out", out, "--force"]);
    return readF32(out);
}
// tensor types: deepcast inspect (bytes per dtype) and node-llama-cpp's GGUF parser (tensor count per type)
function dcTypes(gguf) {
    return JSON.parse(run(["inspect", gguf, "--json", "--no-tensors"])).bytes_by_dtype;
}
async function nlcTypes(gguf) {
    const info = await readGgufFileInfo(gguf, {readTensorInfo: true});
    const n = {};
    for (const t of info.fullTensorInfo ?? info.tensorInfo) {
        const k = GgmlType[t.ggmlType] ?? String(t.ggmlType);
        n[k] = (n[k] ?? 0) + 1;
    }
    return n;
}

const models = [
    {name: "v3-fp8", dir: withTokenizer("v3-fp8", "tok-v3"), golden: "v3-fp8",
        types: {Q4_K_M: ["Q5_0", "Q8_0"], Q2_K: ["Q4_0", "Q8_0"]}},
    {name: "v2lite", dir: withTokenizer("v2lite", "tok-v2"), golden: "v2lite",
        types: {Q4_K_M: ["Q4_K", "Q6_K", "Q5_0", "Q8_0"], Q2_K: ["Q2_K", "Q3_K", "Q6_K", "Q4_0"]}},
    {name: "v3-tiny (mkmodel)", dir: path.join(scratch, "tok-v3"), golden: "v3-fp8",
        types: {Q4_K_M: ["Q5_0", "Q8_0"], Q2_K: ["Q4_0", "Q8_0"]}},
];
const ftypes = ["Q4_K_M", "Q2_K"];
const TOL = 2e-3;
const worst = {};

let k = 0;
for (const m of models) {
    const dir = path.join(scratch, `m${k++}`);
    fs.mkdirSync(dir);
    const f32 = path.join(dir, "f32.gguf");
    run(["convert", m.dir, f32, "--to", "gguf", "--type", "f32"]);
    const seqs = {};
    for (const s of ["seq64", "gen200"])
        seqs[s] = JSON.parse(fs.readFileSync(path.join(G, m.golden, `${s}.tokens.json`), "utf8"));
    const names = Object.keys(seqs), lists = Object.values(seqs);
    // imatrix from gen200 in chunks of 64 (3 chunks)
    const im = path.join(dir, "imatrix.gguf");
    run(["imatrix", f32, "--tokens", path.join(G, m.golden, "gen200.tokens.json"), "-o", im, "--ctx", "64"]);
    let ref;
    try {
        ref = await llamaLogits(f32, lists);
    } catch (e) {
        check(false, `${m.name} F32: llama.cpp loads and evaluates the GGUF: ${e.message}`);
        continue;
    }
    const f32Types = dcTypes(f32);
    check(Object.keys(f32Types).every(t => t === "F32"), `${m.name} F32: all tensors F32 (${JSON.stringify(f32Types)})`);
    names.forEach((s, i) => {
        const d = compare(dcLogits(f32, lists[i], dir, `f32-${s}`), ref[i].logits, ref[i].V, lists[i]);
        check(d.next < TOL && d.all < TOL, `${m.name} F32 ${s}: deepcast logits vs llama.cpp: ${fmt(d)}`);
    });
    const klByType = {};
    for (const ft of ftypes) {
        const plain = path.join(dir, `${ft}.gguf`);
        for (const withIm of [false, true]) {
            const name = `${m.name} ${ft}${withIm ? " --imatrix" : ""}`, tag = `${ft}${withIm ? "-im" : ""}`;
            const q = path.join(dir, `${tag}.gguf`), deq = path.join(dir, `${tag}-deq.gguf`);
            run(["quantize", f32, q, ft, ...(withIm ? ["--imatrix", im] : [])]);
            if (withIm)
                check(sha(q) !== sha(plain), `${name}: the importance matrix changes the file`);
            // the file type's tensor types, and nothing left F32 but vectors and the router
            const types = dcTypes(q), nt = await nlcTypes(q);
            const want = m.types[ft];
            const got = Object.keys(types).sort();
            const sameSet = JSON.stringify(got) === JSON.stringify([...want, "F32"].sort());
            const agree = JSON.stringify(Object.keys(nt).sort()) === JSON.stringify(got);
            const f32Bytes = types.F32 ?? 0, total = Object.values(types).reduce((a, b) => a + b, 0);
            check(sameSet && agree && f32Bytes < 0.05 * total,
                `${name}: tensor types ${got.join(" ")} (want ${want.join(" ")} + F32 vectors; ` +
                `node-llama-cpp reads ${JSON.stringify(nt)}; F32 ${(100 * f32Bytes / total).toFixed(1)}% of bytes)`);
            // the dequantized twin: an F32 GGUF holding exactly the values the quantized blocks decode to
            run(["quantize", q, deq, "F32", "--allow-requantize"]);
            const dt = dcTypes(deq);
            check(Object.keys(dt).every(t => t === "F32") && sha(deq) !== sha(f32), `${name}: dequantized F32 twin (${JSON.stringify(dt)}, differs from the F32 source)`);
            let lq, ld;
            try {
                lq = await llamaLogits(q, lists);
                ld = await llamaLogits(deq, lists);
            } catch (e) {
                check(false, `${name}: llama.cpp loads and evaluates the GGUFs: ${e.message}`);
                continue;
            }
            names.forEach((s, i) => {
                const toks = lists[i], V = lq[i].V;
                const dcl = dcLogits(q, toks, dir, `${tag}-${s}`);
                check(dcl.length === toks.length * V && ld[i].V === V,
                    `${name} ${s}: deepcast logits [${toks.length}][${dcl.length / toks.length}], llama.cpp vocabulary ${V}`);
                // 1. the acceptance tolerance, on the same weight values: llama.cpp's F32 kernels
                const dd = compare(dcl, ld[i].logits, V, toks);
                check(dd.next < TOL && dd.all < TOL, `${name} ${s}: deepcast logits vs llama.cpp on the dequantized twin: ${fmt(dd)}`);
                // 2. llama.cpp on the quantized file itself: its CPU dot products quantize the
                //    activations (q8_0 for q4_0/q5_0/q8_0 weights, q8_K for k-quants), which moves
                //    these small random models' log-probs by ~0.1 (see the header); bounded relative
                //    to the quantization's own effect instead of by 2e-3
                const dl = compare(dcl, lq[i].logits, V, toks), self = compare(ld[i].logits, lq[i].logits, V, toks);
                const qf = compare(ref[i].logits, lq[i].logits, V, toks);
                check(dl.kl < 0.25 * qf.kl && dl.top >= 0.85,
                    `${name} ${s}: deepcast logits vs llama.cpp on the quantized file: ${fmt(dl)} ` +
                    `(llama.cpp quantized vs its dequantized twin: next ${self.next.toExponential(2)}, all ${self.all.toExponential(2)}; ` +
                    `KL < 1/4 of quantization's ${qf.kl.toExponential(2)}, top-1 >= 85%)`);
                worst[name] = worst[name] ?? {twin: 0, direct: 0};
                worst[name].twin = Math.max(worst[name].twin, dd.next, dd.all);
                worst[name].direct = Math.max(worst[name].direct, dl.next, dl.all);
                // 3. quantization did something, and nothing absurd (llama.cpp, vs the F32 file)
                const lim = ft === "Q2_K" ? 1.0 : 0.1;
                check(qf.all > 1e-2 && qf.kl < lim, `${name} ${s}: quantized vs F32 (llama.cpp): ${fmt(qf)} (KL < ${lim})`);
                if (!withIm)
                    (klByType[s] ??= {})[ft] = qf.kl;
            });
        }
    }
    for (const s of names)
        check(klByType[s].Q2_K > klByType[s].Q4_K_M,
            `${m.name} ${s}: Q2_K is further from F32 than Q4_K_M (KL ${klByType[s].Q2_K.toExponential(2)} > ${klByType[s].Q4_K_M.toExponential(2)})`);
}

console.log("worst |d logprob| of deepcast logits vs llama.cpp (dequantized twin / quantized file):\n" +
    Object.entries(worst).map(([n, v]) => `  ${n}: ${v.twin.toExponential(2)} / ${v.direct.toExponential(2)}`).join("\n"));
finish();
