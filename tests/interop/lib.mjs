// Shared helpers of the interop tests (gguf_llama.mjs, quant_llama.mjs, distill_llama.mjs).
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import path from "node:path";

// node-llama-cpp, or exit 77 (ctest's "skipped") when it is not installed.
export async function loadNodeLlamaCpp() {
    try {
        return await import("node-llama-cpp");
    } catch (e) {
        console.log(`SKIP: node-llama-cpp is not installed here (${e.code ?? e.message})`);
        process.exit(77);
    }
}

// check(ok, what) prints one line per check; finish() prints the totals, removes the scratch
// directory (kept with DC_KEEP_TMP=1: the suite's tests together write several GB) and exits (1 on
// failure).
export function checker(scratch) {
    let passed = 0, failed = 0;
    return {
        check(ok, what) {
            if (ok) passed++;
            else failed++;
            console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
        },
        finish() {
            console.log(`${passed} passed, ${failed} failed`);
            if (scratch && process.env.DC_KEEP_TMP !== "1")
                fs.rmSync(scratch, {recursive: true, force: true});
            process.exit(failed ? 1 : 0);
        },
    };
}

export function readF32(file) {
    const b = fs.readFileSync(file);
    return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

export function logSoftmax(row) {
    let m = -Infinity;
    for (const x of row) m = Math.max(m, x);
    let s = 0;
    for (const x of row) s += Math.exp(x - m);
    const l = m + Math.log(s);
    return Float64Array.from(row, x => x - l);
}

// a, b: flat logits [L][V] for the token sequence toks. next: max |d log p| of the next token; all:
// over the whole vocabulary; kl: mean KL(a || b); top: fraction of positions with the same argmax.
export function compare(a, b, V, toks) {
    let next = 0, all = 0, kl = 0, top = 0;
    const L = toks.length;
    for (let i = 0; i < L; i++) {
        const p = logSoftmax(a.subarray(i * V, (i + 1) * V)), q = logSoftmax(b.subarray(i * V, (i + 1) * V));
        let ap = 0, aq = 0;
        for (let k = 0; k < V; k++) {
            all = Math.max(all, Math.abs(p[k] - q[k]));
            kl += Math.exp(p[k]) * (p[k] - q[k]);
            if (p[k] > p[ap]) ap = k;
            if (q[k] > q[aq]) aq = k;
        }
        top += ap === aq;
        if (i + 1 < L) next = Math.max(next, Math.abs(p[toks[i + 1]] - q[toks[i + 1]]));
    }
    return {next, all, kl: kl / L, top: top / L};
}

export const fmt = r => `max|d logprob| next-token ${r.next.toExponential(2)}, all tokens ${r.all.toExponential(2)}, ` +
    `mean KL ${r.kl.toExponential(2)}, top-1 ${(100 * r.top).toFixed(1)}%`;

// run(args): `deepcast -q ARGS`, its stdout.
export function runner(dc) {
    return (args, opts = {}) => execFileSync(dc, ["-q", ...args], {encoding: "utf8", maxBuffer: 1 << 28, ...opts});
}

// The oracle checkpoints have no tokenizer files, and node-llama-cpp cannot load a model whose
// tokenizer.ggml.model is "none" (it tokenizes while loading). The mkmodel presets' tokenizers have
// the oracle's vocabulary size (3000) and BOS/EOS ids: makes scratch/tok-v3 and scratch/tok-v2 (v3-tiny,
// v2-lite-tiny) and returns withTokenizer(variant, "tok-v3" | "tok-v2"): a writable copy of the oracle
// checkpoint in scratch with that tokenizer.
export function oracleTokenizers(run, oracle, scratch) {
    run(["mkmodel", path.join(scratch, "tok-v3"), "--preset", "v3-tiny"]);
    run(["mkmodel", path.join(scratch, "tok-v2"), "--preset", "v2-lite-tiny"]);
    return (variant, tok) => {
        const dst = path.join(scratch, variant);
        fs.cpSync(path.join(oracle, "models", variant), dst, {recursive: true});
        for (const f of fs.readdirSync(dst))
            fs.chmodSync(path.join(dst, f), 0o644);
        for (const f of ["tokenizer.json", "tokenizer_config.json"])
            fs.copyFileSync(path.join(scratch, tok, f), path.join(dst, f));
        return dst;
    };
}

// Next-token logits of llama.cpp for every position of toks, from a fresh context of a loaded model:
// {logits: Float32Array [L][V] (-Infinity where llama.cpp gives none), V}. An F32 KV cache (the
// default F16 cache alone moves log-probabilities by ~1e-3); extra: more context options (e.g.
// flashAttention: false).
export async function sequenceLogits(model, toks, extra = {}) {
    const size = toks.length <= 256 ? 256 : 512;
    const ctx = await model.createContext({
        contextSize: size, batchSize: size, sequences: 1,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", ...extra,
    });
    const res = await ctx.getSequence().controlledEvaluate(toks.map(t => [t, {generateNext: {logits: true}}]));
    const V = res[0].next.logits.size;
    const out = new Float32Array(toks.length * V).fill(-Infinity);
    for (let i = 0; i < toks.length; i++)
        for (const [t, v] of res[i].next.logits)
            out[i * V + t] = v;
    await ctx.dispose();
    return {logits: out, V};
}

// The two logits sources of an interop test: llamaLogits(gguf, toks) loads a GGUF in llama.cpp (flash
// attention off) and returns sequenceLogits' {logits, V}; dcLogits(model, tokFile, out) runs
// `deepcast logits` (overwriting out) and returns its Float32Array [L][V].
export function logitsSources(llama, run) {
    return {
        async llamaLogits(gguf, toks) {
            const model = await llama.loadModel({modelPath: gguf});
            const r = await sequenceLogits(model, toks, {flashAttention: false});
            await model.dispose();
            return r;
        },
        dcLogits(model, tokFile, out) {
            run(["logits", model, "--tokens", tokFile, "--out", out, "--force"]);
            return readF32(out);
        },
    };
}
