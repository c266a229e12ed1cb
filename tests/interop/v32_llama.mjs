// DeepSeek-V3.2 (deepseek_v32, DeepSeek Sparse Attention) against the real llama.cpp (node-llama-cpp
// 3.22.1, prebuilt CPU binaries, whose deepseek32 architecture runs the lightning indexer):
// * `deepcast convert --to gguf` of the mkmodel presets v32-tiny (BF16) and v32-tiny-fp8 (the
//   release's FP8 layout with ue8m0 scales: the indexer's wq_b / wk are FP8, weights_proj BF16,
//   k_norm F32): llama.cpp loads the F32 GGUF as deepseek32, and its next-token log-probabilities
//   over 80 tokens match `deepcast logits` on the source checkpoint within 1e-3 (max over the whole
//   vocabulary). The indexer keeps index_topk = 16 keys per query, so 64 of the 80 positions
//   attend sparsely; the test also checks that this matters: the same weights with an index_topk
//   past the sequence (dense attention) move those positions' log-probabilities by more than 0.05
//   and leave the first 16 bit-identical;
// * `deepcast logits` on the GGUF (deepcast's deepseek32 import) equals the source bit for bit;
// * a Q8_0 GGUF (`deepcast quantize`): deepcast on it matches llama.cpp on its dequantized F32 twin
//   within 1e-3.
//
// Flash attention is off and the KV caches are F32 (lib.mjs sequenceLogits).
//
// usage: node v32_llama.mjs DEEPCAST SCRATCH_DIR
// Prints one line per check and "N passed, N failed"; exits 1 on failure, 77 (skipped) when
// node-llama-cpp is not installed.
import fs from "node:fs";
import path from "node:path";
import {checker, compare, fmt, loadNodeLlamaCpp, logitsSources, runner} from "./lib.mjs";

const [dc, scratch] = process.argv.slice(2);
if (!dc || !scratch) {
    console.error("usage: node v32_llama.mjs DEEPCAST SCRATCH_DIR");
    process.exit(2);
}
const {getLlama, LlamaLogLevel, readGgufFileInfo} = await loadNodeLlamaCpp();
const {check, finish} = checker(scratch);
const run = runner(dc);

fs.rmSync(scratch, {recursive: true, force: true});
fs.mkdirSync(scratch, {recursive: true});
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});

const {llamaLogits, dcLogits} = logitsSources(llama, run);
function maxDiff(a, b) {
    let m = 0;
    for (let i = 0; i < a.length; i++)
        m = Math.max(m, Math.abs(a[i] - b[i]));
    return m;
}

// 80 token ids from a fixed LCG (the vocabulary is 3000)
const toks = [];
for (let s = 12345, i = 0; i < 80; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    toks.push(s % 3000);
}
const tokFile = path.join(scratch, "tokens.json");
fs.writeFileSync(tokFile, JSON.stringify(toks));
const TOPK = 16, V = 3000;

for (const preset of ["v32-tiny", "v32-tiny-fp8"]) {
    const src = path.join(scratch, preset), gguf = src + ".gguf";
    run(["mkmodel", src, "--preset", preset]);
    const cfg = JSON.parse(fs.readFileSync(path.join(src, "config.json"), "utf8"));
    check(cfg.model_type === "deepseek_v32" && cfg.index_topk === TOPK,
          `${preset}: config.json model_type ${cfg.model_type}, index_topk ${cfg.index_topk}`);
    run(["convert", src, gguf, "--to", "gguf", "--type", "f32"]);
    const info = await readGgufFileInfo(gguf);
    const md = info.metadata;
    check(md.general.architecture === "deepseek32" && md.deepseek32?.attention?.indexer?.top_k === TOPK &&
          md.deepseek32.attention.indexer.head_count === cfg.index_n_heads &&
          md.deepseek32.attention.indexer.key_length === cfg.index_head_dim,
          `${preset}: GGUF architecture ${md.general.architecture}, indexer keys ${JSON.stringify(md.deepseek32?.attention?.indexer)}`);
    const proj = info.fullTensorInfo.find(t => t.name === "blk.1.indexer.proj.weight");
    check(proj && proj.ggmlType === 0, `${preset}: blk.1.indexer.proj.weight is F32 (ggml type ${proj?.ggmlType}), as the converter writes it`);

    const ours = dcLogits(src, tokFile, path.join(scratch, "dc.f32"));
    const ll = await llamaLogits(gguf, toks);
    check(ll.V === V, `${preset}: llama.cpp vocabulary ${ll.V}`);
    const r = compare(ours, ll.logits, V, toks);
    check(r.all < 1e-3 && r.top === 1, `${preset}: deepcast logits vs llama.cpp (deepseek32), 80 tokens: ${fmt(r)}`);
    const rs = compare(ours.subarray(TOPK * V), ll.logits.subarray(TOPK * V), V, toks.slice(TOPK));
    check(rs.all < 1e-3, `${preset}: the ${toks.length - TOPK} sparse positions alone: ${fmt(rs)}`);

    // dense attention on the same weights: index_topk past the sequence
    const dense = path.join(scratch, preset + "-dense");
    fs.cpSync(src, dense, {recursive: true});
    fs.writeFileSync(path.join(dense, "config.json"), JSON.stringify({...cfg, index_topk: 4096}, null, 2));
    const d = dcLogits(dense, tokFile, path.join(scratch, "dense.f32"));
    const head = maxDiff(ours.subarray(0, TOPK * V), d.subarray(0, TOPK * V));
    const rd = compare(ours.subarray(TOPK * V), d.subarray(TOPK * V), V, toks.slice(TOPK));
    check(head === 0 && rd.all > 0.05,
          `${preset}: vs dense attention: first ${TOPK} positions max |d logit| ${head}, the sparse ones ${fmt(rd)}`);

    const back = dcLogits(gguf, tokFile, path.join(scratch, "back.f32"));
    check(maxDiff(back, ours) === 0, `${preset}: deepcast logits on the GGUF (deepseek32 import) equal the source's: max |d| ${maxDiff(back, ours)}`);

    if (preset === "v32-tiny-fp8") {
        // Q8_0 (deepcast quantize): deepcast on the file vs llama.cpp on its dequantized F32 twin (the
        // same weight values; llama.cpp's own Q8_0 matmuls also round the activations to 8 bits,
        // which moves the indexer's top-k choices, see docs/v32.md)
        const q8 = src + "-q8.gguf", twin = src + "-q8-f32.gguf";
        run(["quantize", gguf, q8, "Q8_0"]);
        run(["quantize", q8, twin, "F32", "--allow-requantize"]);
        const a = dcLogits(q8, tokFile, path.join(scratch, "q8.f32"));
        const b = await llamaLogits(twin, toks);
        const rq = compare(a, b.logits, V, toks);
        check(rq.all < 1e-3, `${preset} Q8_0: deepcast on the file vs llama.cpp on its dequantized twin: ${fmt(rq)}`);
        console.log(`     (${preset} Q8_0 vs its source, deepcast: ${fmt(compare(a, ours, V, toks))}: routing and indexer ` +
                    `choices flip at near-ties on this random toy model)`);
    }
}

finish();
