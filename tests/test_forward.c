/* The reference forward pass against the oracle: DeepSeek's own model.py logits, NLL and routing
 * for every oracle checkpoint and sequence; bit-identical results for 1 and 2 threads; FP8
 * dequantisation modes; broken checkpoints; token files; the base-logits file and KLD. */
#include "dc_test.h"
#include "dc_forward.h"
#include "dc_io.h"
#include "dc_safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const char *VARIANTS[] = {"v3-bf16", "v3-fp8", "v3-fp8-ue8m0", "v2lite"};
static const char *SEQS[] = {"seq64", "gen200"};

/* Reads a binary golden file; *n = bytes. */
static void *slurp(const char *path, size_t *n)
{
    char *buf;
    dc_err e;
    if (dc_read_file(path, &buf, n, (uint64_t)1 << 31, &e) != DC_OK) {
        fprintf(stderr, "%s\n", e.msg);
        return NULL;
    }
    return buf;
}

/* A top-level number of a golden .json (which may hold Infinity, so no JSON parser). */
static double json_num(const char *path, const char *key)
{
    size_t n;
    char *s = slurp(path, &n);
    double v = NAN;
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = s ? strstr(s, pat) : NULL;
    if (at)
        v = strtod(at + strlen(pat), NULL);
    free(s);
    return v;
}

static dc_model *load(const char *variant, int deq_mode, dc_ckpt **ck)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/models/%s", DC_ORACLE, variant);
    dc_err err;
    *ck = NULL;
    if (dc_ckpt_open(path, ck, &err) != DC_OK) {
        fprintf(stderr, "open %s: %s\n", path, err.msg);
        return NULL;
    }
    dc_fwd_opts o;
    dc_fwd_opts_default(&o);
    o.deq_mode = deq_mode;
    dc_model *m = NULL;
    if (dc_model_load(*ck, &o, &m, &err) != DC_OK) {
        fprintf(stderr, "load %s: %s\n", path, err.msg);
        dc_ckpt_close(*ck);
        *ck = NULL;
    }
    return m;
}

static double mean_nll(const float *logits, const int32_t *tok, int64_t n, int64_t V)
{
    double s = 0;
    for (int64_t t = 0; t + 1 < n; t++)
        s += dc_logsumexp(logits + t * V, V) - logits[t * V + tok[t + 1]];
    return s / (double)(n - 1);
}

/* ---- golden comparison -------------------------------------------------------------------- */

static void test_golden(const char *variant, const char *seq)
{
    dc_ckpt *ck;
    dc_model *m = load(variant, DC_DEQ_BF16_ROUND, &ck);
    CHECK_MSG(m != NULL, "%s", variant);
    if (!m)
        return;
    char p[4096];
    size_t nb;
    snprintf(p, sizeof p, "%s/golden/%s/%s.tokens.i32", DC_ORACLE, variant, seq);
    int32_t *tok = slurp(p, &nb);
    snprintf(p, sizeof p, "%s/golden/%s/%s.logits.f32", DC_ORACLE, variant, seq);
    size_t nl;
    float *gold = slurp(p, &nl);
    snprintf(p, sizeof p, "%s/golden/%s/%s.routing_idx.i32", DC_ORACLE, variant, seq);
    size_t nr;
    int32_t *gidx = slurp(p, &nr);
    CHECK(tok && gold && gidx);
    if (!tok || !gold || !gidx)
        goto out;
    int64_t n = (int64_t)(nb / 4), V = dc_model_vocab(m), D = dc_model_hidden(m);
    CHECK(nl == (size_t)(n * V) * 4);
    const dc_config *c = dc_model_config(m);
    float *lg1 = malloc((size_t)(n * V) * 4), *lg2 = malloc((size_t)(n * V) * 4);
    float *hid = malloc((size_t)((c->n_layers + 2) * n * D) * 4);
    dc_routing r1, r2;
    dc_err err;

    /* 2 threads, with hidden states */
    omp_set_num_threads(2);
    dc_fwd_out o1 = {lg1, &r1, hid};
    CHECK_OK(dc_forward(m, tok, n, &o1, &err), &err);
    /* 1 thread */
    omp_set_num_threads(1);
    dc_fwd_out o2 = {lg2, &r2, NULL};
    CHECK_OK(dc_forward(m, tok, n, &o2, &err), &err);
    omp_set_num_threads(2);
    CHECK_MSG(!memcmp(lg1, lg2, (size_t)(n * V) * 4), "%s %s: logits differ between 1 and 2 threads", variant, seq);
    CHECK(!memcmp(r1.idx, r2.idx, (size_t)r1.n_layers * n * r1.top_k * 4));
    CHECK(!memcmp(r1.w, r2.w, (size_t)r1.n_layers * n * r1.top_k * 4));

    double maxd = 0;
    for (int64_t i = 0; i < n * V; i++) {
        double d = fabs((double)lg1[i] - gold[i]);
        if (!(d <= maxd))
            maxd = d;
    }
    snprintf(p, sizeof p, "%s/golden/%s/%s.json", DC_ORACLE, variant, seq);
    double gnll = json_num(p, "mean_nll");
    double nll = mean_nll(lg1, tok, n, V);
    CHECK_MSG(maxd <= 1e-4, "%s %s: max |d logits| = %.3g", variant, seq, maxd);
    CHECK_MSG(fabs(nll - gnll) <= 1e-5, "%s %s: mean NLL %.9f vs golden %.9f", variant, seq, nll, gnll);

    /* routing: identical expert sets per MoE layer and token */
    CHECK(nr == (size_t)r1.n_layers * n * r1.top_k * 4);
    int64_t diff_sets = 0;
    for (int64_t i = 0; nr == (size_t)r1.n_layers * n * r1.top_k * 4 && i < r1.n_layers * n; i++) {
        for (int a = 0; a < r1.top_k; a++) {
            bool found = false;
            for (int b = 0; b < r1.top_k && !found; b++)
                found = r1.idx[i * r1.top_k + a] == gidx[i * r1.top_k + b];
            if (!found) {
                diff_sets++;
                break;
            }
        }
    }
    CHECK_MSG(diff_sets == 0, "%s %s: %lld token-layers route to different experts", variant, seq,
              (long long)diff_sets);

    /* layer by layer (seq64 has the hidden states) */
    double hmax = 0;
    if (!strcmp(seq, "seq64")) {
        snprintf(p, sizeof p, "%s/golden/%s/seq64.hidden.f32", DC_ORACLE, variant);
        size_t nh;
        float *gh = slurp(p, &nh);
        CHECK(gh && nh == (size_t)((c->n_layers + 2) * n * D) * 4);
        for (int s = 0; gh && s < c->n_layers + 2; s++) {
            double md = 0;
            for (int64_t i = 0; i < n * D; i++) {
                double d = fabs((double)hid[s * n * D + i] - gh[s * n * D + i]);
                if (!(d <= md))
                    md = d;
            }
            if (md > hmax)
                hmax = md;
            CHECK_MSG(md <= 1e-4, "%s seq64 hidden stage %d: max |d| %.3g", variant, s, md);
        }
        free(gh);
    }
    /* the same pass one layer at a time (dc_fwd_state, GPTQ's collection): the same bytes per layer */
    {
        dc_fwd_state *fs = NULL;
        CHECK_OK(dc_fwd_state_new(m, tok, n, &fs, &err), &err);
        int same = fs && !memcmp(dc_fwd_state_hidden(fs), hid, (size_t)(n * D) * 4);
        for (int li = 0; fs && li < c->n_layers; li++) {
            CHECK_OK(dc_fwd_state_step(m, fs, &err), &err);
            same += !memcmp(dc_fwd_state_hidden(fs), hid + (int64_t)(li + 1) * n * D, (size_t)(n * D) * 4);
        }
        CHECK_MSG(same == c->n_layers + 1, "%s %s: layer-by-layer hidden states equal dc_forward's at %d of %d stages",
                  variant, seq, same, c->n_layers + 1);
        if (fs && !dc_model_has_mtp(m))
            CHECK(dc_fwd_state_step(m, fs, &err) == DC_ERR_INTERNAL); /* no layer left */
        dc_fwd_state_free(fs);
        int32_t bad = (int32_t)V;
        CHECK(dc_fwd_state_new(m, &bad, 1, &fs, &err) == DC_ERR_INPUT && !fs);
    }
    printf("%-13s %-6s  max|d logits| %.3g  |d mean NLL| %.3g  (NLL %.9f)  routing sets differ: %lld", variant,
           seq, maxd, fabs(nll - gnll), nll, (long long)diff_sets);
    if (!strcmp(seq, "seq64"))
        printf("  max|d hidden| %.3g", hmax);
    printf("\n");
    dc_routing_free(&r1);
    dc_routing_free(&r2);
    free(lg1);
    free(lg2);
    free(hid);
out:
    free(tok);
    free(gold);
    free(gidx);
    dc_model_free(m);
    dc_ckpt_close(ck);
}

/* ---- FP8: exact dequantisation differs from DeepSeek's bf16 rounding, but stays close -------- */

static void test_exact_fp8(const char *variant, bool expect_identical)
{
    dc_ckpt *ck1, *ck2;
    dc_model *a = load(variant, DC_DEQ_BF16_ROUND, &ck1), *b = load(variant, DC_DEQ_EXACT, &ck2);
    CHECK(a && b);
    if (!a || !b)
        goto out;
    char p[4096];
    size_t nb;
    snprintf(p, sizeof p, "%s/golden/%s/gen200.tokens.i32", DC_ORACLE, variant);
    int32_t *tok = slurp(p, &nb);
    int64_t n = (int64_t)(nb / 4), V = dc_model_vocab(a);
    float *la = malloc((size_t)(n * V) * 4), *lb = malloc((size_t)(n * V) * 4);
    dc_err err;
    dc_fwd_out oa = {la, NULL, NULL}, ob = {lb, NULL, NULL};
    CHECK_OK(dc_forward(a, tok, n, &oa, &err), &err);
    CHECK_OK(dc_forward(b, tok, n, &ob, &err), &err);
    double kld = 0, md = 0;
    for (int64_t t = 0; t < n; t++)
        kld += dc_kld_full(la + t * V, lb + t * V, V);
    kld /= (double)n;
    for (int64_t i = 0; i < n * V; i++)
        md = fmax(md, fabs((double)la[i] - lb[i]));
    if (expect_identical) {
        CHECK_MSG(!memcmp(la, lb, (size_t)(n * V) * 4), "%s: ue8m0 scales: exact and bf16-rounded differ", variant);
    } else {
        CHECK_MSG(md > 0, "%s: --exact-fp8 should change the logits", variant);
        CHECK_MSG(kld > 0 && kld < 1e-2, "%s: KLD(default || exact) = %g", variant, kld);
    }
    printf("%-13s exact-fp8 vs default: max|d| %.3g, mean KLD %.3g\n", variant, md, kld);
    free(tok);
    free(la);
    free(lb);
out:
    dc_model_free(a);
    dc_model_free(b);
    dc_ckpt_close(ck1);
    dc_ckpt_close(ck2);
}

/* ---- broken checkpoints ---------------------------------------------------------------------- */

/* Copies the oracle checkpoint variant into dir as one safetensors file, passing each tensor
 * through edit (which may drop it or change a scale's shape), plus its config.json. */
typedef enum { EDIT_NONE, EDIT_DROP, EDIT_SCALE_SHAPE } edit_kind;

static dc_status rewrite(const char *variant, const char *dir, edit_kind kind, const char *target, dc_err *err)
{
    char src[4096];
    snprintf(src, sizeof src, "%s/models/%s", DC_ORACLE, variant);
    dc_ckpt *ck;
    dc_status st = dc_ckpt_open(src, &ck, err);
    if (st)
        return st;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0) {
        dc_ckpt_close(ck);
        return dc_err_set(err, DC_ERR_IO, "cannot create %s", dir);
    }
    dc_stw *w = dc_stw_new();
    size_t *map = calloc(ck->n_tensors, sizeof *map);
    for (size_t i = 0; i < ck->n_tensors && !st; i++) {
        const dc_tensor *t = ck->tensors[i];
        int64_t shape[DC_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        map[i] = (size_t)-1;
        if (!strcmp(t->name, target) && kind == EDIT_DROP)
            continue;
        if (!strcmp(t->name, target) && kind == EDIT_SCALE_SHAPE)
            shape[1] -= 1; /* one column of blocks short (data truncated to match) */
        st = dc_stw_add(w, t->name, t->dtype, t->ndim, shape, &map[i], err);
    }
    if (!st)
        st = dc_stw_plan(w, 0, err);
    if (!st)
        st = dc_stw_open(w, dir, err);
    for (size_t i = 0; i < ck->n_tensors && !st; i++) {
        if (map[i] == (size_t)-1)
            continue;
        const dc_stw_tensor *o = dc_stw_get(w, map[i]);
        const dc_tensor *t = ck->tensors[i];
        if (o->nbytes == t->nbytes) {
            st = dc_stw_write(w, map[i], 0, t->data, t->nbytes, err);
        } else { /* the truncated scale: copy row by row */
            int64_t cols = o->shape[1], es = dc_dtype_size(t->dtype);
            for (int64_t r = 0; r < o->shape[0] && !st; r++)
                st = dc_stw_write(w, map[i], (uint64_t)(r * cols * es), t->data + r * t->shape[1] * es,
                                  (size_t)(cols * es), err);
        }
    }
    if (!st)
        st = dc_stw_finish(w, err);
    else
        dc_stw_abort(w);
    dc_stw_free(w);
    free(map);
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    char srccfg[4200];
    snprintf(srccfg, sizeof srccfg, "%s/config.json", src);
    if (!st)
        st = dc_copy_file(srccfg, cfg, err);
    dc_ckpt_close(ck);
    return st;
}

static dc_status try_load(const char *dir, dc_err *err)
{
    dc_ckpt *ck;
    dc_status st = dc_ckpt_open(dir, &ck, err);
    if (st)
        return st;
    dc_model *m = NULL;
    st = dc_model_load(ck, NULL, &m, err);
    dc_model_free(m);
    dc_ckpt_close(ck);
    return st;
}

static void test_broken(void)
{
    dc_err err;
    const char *base = dc_test_tmpdir("forward");
    char dir[4096];

    /* an unmodified rewrite loads and gives the golden logits' first row */
    snprintf(dir, sizeof dir, "%s/copy", base);
    CHECK_OK(rewrite("v3-fp8", dir, EDIT_NONE, "", &err), &err);
    CHECK_OK(try_load(dir, &err), &err);

    snprintf(dir, sizeof dir, "%s/missing", base);
    CHECK_OK(rewrite("v3-fp8", dir, EDIT_DROP, "model.layers.1.mlp.experts.7.up_proj.weight", &err), &err);
    dc_status st = try_load(dir, &err);
    CHECK_MSG(st == DC_ERR_MODEL && strstr(err.msg, "model.layers.1.mlp.experts.7.up_proj.weight"), "%d %s", st,
              err.msg);
    printf("missing tensor: %s\n", err.msg);

    snprintf(dir, sizeof dir, "%s/scale", base);
    CHECK_OK(rewrite("v3-fp8", dir, EDIT_SCALE_SHAPE, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv",
                     &err), &err);
    st = try_load(dir, &err);
    CHECK_MSG(st == DC_ERR_MODEL && strstr(err.msg, "kv_a_proj_with_mqa.weight_scale_inv"), "%d %s", st, err.msg);
    printf("mis-shaped scale: %s\n", err.msg);

    snprintf(dir, sizeof dir, "%s/noscale", base);
    CHECK_OK(rewrite("v3-fp8", dir, EDIT_DROP, "model.layers.2.self_attn.o_proj.weight_scale_inv", &err), &err);
    st = try_load(dir, &err);
    CHECK_MSG(st == DC_ERR_MODEL && strstr(err.msg, "o_proj"), "%d %s", st, err.msg);

    /* a config that does not match the tensors: v3 with q_lora_rank null expects q_proj */
    snprintf(dir, sizeof dir, "%s/config", base);
    CHECK_OK(rewrite("v3-bf16", dir, EDIT_NONE, "", &err), &err);
    char cfgp[4200];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    char *txt;
    size_t len;
    CHECK_OK(dc_read_file(cfgp, &txt, &len, 1 << 20, &err), &err);
    if (!dc_exists(cfgp))
        return;
    cJSON *j = cJSON_ParseWithLength(txt, len);
    free(txt);
    cJSON_ReplaceItemInObject(j, "hidden_size", cJSON_CreateNumber(256));
    txt = cJSON_Print(j);
    CHECK_OK(dc_write_file_atomic(cfgp, txt, strlen(txt), &err), &err);
    free(txt);
    st = try_load(dir, &err);
    CHECK_MSG(st == DC_ERR_MODEL && strstr(err.msg, "implies [3000x256]"), "%d %s", st, err.msg);
    printf("mis-shaped tensor: %s\n", err.msg);
    cJSON_ReplaceItemInObject(j, "hidden_size", cJSON_CreateNumber(320));
    cJSON_ReplaceItemInObject(j, "q_lora_rank", cJSON_CreateNull());
    txt = cJSON_Print(j);
    CHECK_OK(dc_write_file_atomic(cfgp, txt, strlen(txt), &err), &err);
    free(txt);
    cJSON_Delete(j);
    st = try_load(dir, &err);
    CHECK_MSG(st == DC_ERR_MODEL && strstr(err.msg, "q_proj.weight"), "%d %s", st, err.msg);
}

/* ---- token files, bad input ------------------------------------------------------------------ */

static void test_tokens(void)
{
    dc_err err;
    int32_t *ids;
    size_t n;
    CHECK_OK(dc_tokens_parse(" 1 2\n3\t40 ", strlen(" 1 2\n3\t40 "), "t", &ids, &n, &err), &err);
    CHECK(n == 4 && ids && ids[3] == 40);
    free(ids);
    CHECK_OK(dc_tokens_parse("[5, 6,7]\n", strlen("[5, 6,7]\n"), "t", &ids, &n, &err), &err);
    CHECK(n == 3 && ids && ids[0] == 5 && ids[2] == 7);
    free(ids);
    CHECK(dc_tokens_parse("", strlen(""), "t", &ids, &n, &err) == DC_ERR_INPUT);
    CHECK(dc_tokens_parse("  \n", strlen("  \n"), "t", &ids, &n, &err) == DC_ERR_INPUT);
    CHECK(dc_tokens_parse("[]", strlen("[]"), "t", &ids, &n, &err) == DC_ERR_INPUT);
    CHECK(dc_tokens_parse("1 2 x", strlen("1 2 x"), "t", &ids, &n, &err) == DC_ERR_INPUT && strstr(err.msg, "byte 4"));
    CHECK(dc_tokens_parse("1 2a", strlen("1 2a"), "t", &ids, &n, &err) == DC_ERR_INPUT);
    CHECK(dc_tokens_parse("[1, 2", strlen("[1, 2"), "t", &ids, &n, &err) == DC_ERR_INPUT);
    CHECK(dc_tokens_parse("[1,,2]", strlen("[1,,2]"), "t", &ids, &n, &err) == DC_ERR_INPUT);
    CHECK(dc_tokens_parse("-1", strlen("-1"), "t", &ids, &n, &err) == DC_ERR_INPUT);
    CHECK(dc_tokens_parse("99999999999", strlen("99999999999"), "t", &ids, &n, &err) == DC_ERR_INPUT);
    int32_t bad[3] = {1, 3000, 2};
    CHECK(dc_tokens_check(bad, 3, 3000, "f", &err) == DC_ERR_INPUT && strstr(err.msg, "3000"));

    dc_ckpt *ck;
    dc_model *m = load("v2lite", DC_DEQ_BF16_ROUND, &ck);
    CHECK(m != NULL);
    if (m) {
        float lg[3000];
        dc_fwd_out o = {lg, NULL, NULL};
        int32_t t1[2] = {5, 3000};
        CHECK(dc_forward(m, t1, 2, &o, &err) == DC_ERR_INPUT);
        CHECK(dc_forward(m, t1, 0, &o, &err) == DC_ERR_INPUT);
        /* a prefix gives the same logits as the full sequence at the same positions (causal) */
        int32_t t3[3] = {5, 17, 2999};
        float l3[9000];
        dc_fwd_out o3 = {l3, NULL, NULL};
        CHECK_OK(dc_forward(m, t3, 1, &o, &err), &err);
        CHECK_OK(dc_forward(m, t3, 3, &o3, &err), &err);
        double md = 0;
        for (int i = 0; i < 3000; i++)
            md = fmax(md, fabs((double)lg[i] - l3[i]));
        CHECK_MSG(md <= 1e-5, "causal prefix differs by %g", md);
        /* no cache: same bits */
        dc_model *m2;
        dc_fwd_opts op;
        dc_fwd_opts_default(&op);
        op.mem_budget = 0;
        CHECK_OK(dc_model_load(ck, &op, &m2, &err), &err);
        float l4[9000];
        dc_fwd_out o4 = {l4, NULL, NULL};
        CHECK_OK(dc_forward(m2, t3, 3, &o4, &err), &err);
        CHECK(!memcmp(l3, l4, sizeof l3));
        CHECK(dc_model_cached_bytes(m2) == 0 && dc_model_cached_bytes(m) > 0);
        dc_model_free(m2);
    }
    dc_model_free(m);
    dc_ckpt_close(ck);
}

/* ---- base-logits file and KLD helpers --------------------------------------------------------- */

static void test_base_file(void)
{
    dc_err err;
    dc_ckpt *ck;
    dc_model *m = load("v3-bf16", DC_DEQ_BF16_ROUND, &ck);
    CHECK(m != NULL);
    if (!m)
        return;
    char p[4096];
    size_t nb;
    snprintf(p, sizeof p, "%s/golden/v3-bf16/seq64.tokens.i32", DC_ORACLE);
    int32_t *tok = slurp(p, &nb);
    int64_t n = (int64_t)(nb / 4), V = dc_model_vocab(m);
    float *lg = malloc((size_t)(n * V) * 4);
    dc_fwd_out o = {lg, NULL, NULL};
    CHECK_OK(dc_forward(m, tok, n, &o, &err), &err);
    dc_chunking ch;
    CHECK_OK(dc_chunking_init(&ch, n, 0, false, -1, &err), &err);
    CHECK(ch.n_chunks == 1 && dc_chunking_scored(&ch, n) == n - 1);
    const char *dir = dc_test_tmpdir("forward_base");
    snprintf(p, sizeof p, "%s/base.dcbl", dir);
    dc_base_writer w;
    const int K = 16;
    int32_t ids[16];
    float lp[16];
    dc_topk_rec rec = {0, 0, ids, lp};
    CHECK_OK(dc_base_create(&w, p, false, K, V, tok, n, &ch, &err), &err);
    for (int64_t t = 0; t + 1 < n; t++) {
        dc_topk_from_logits(lg + t * V, V, K, tok[t + 1], &rec);
        CHECK(ids[0] == dc_argmax(lg + t * V, V));
        for (int j = 1; j < K; j++)
            CHECK(lp[j] <= lp[j - 1]);
        double mass = exp(rec.log_rest);
        for (int j = 0; j < K; j++)
            mass += exp(lp[j]);
        CHECK(fabs(mass - 1) < 1e-5);
        CHECK_OK(dc_base_append(&w, &rec, &err), &err);
    }
    CHECK(!dc_exists(p));
    CHECK_OK(dc_base_commit(&w, &err), &err);
    dc_base_file bf;
    CHECK_OK(dc_base_open(p, &bf, &err), &err);
    CHECK(bf.n_positions == n - 1 && bf.top_k == (uint32_t)K && bf.vocab == V);
    uint8_t *mark = calloc((size_t)V, 1);
    double ksum = 0;
    for (int64_t t = 0; t + 1 < n; t++) {
        dc_base_record(&bf, t, &rec);
        ksum += fabs(dc_kld_topk(&rec, K, lg + t * V, V, mark));
        CHECK(dc_kld_full(lg + t * V, lg + t * V, V) == 0);
    }
    CHECK_MSG(ksum == 0, "KLD of a model against its own saved base: %g", ksum);
    dc_base_close(&bf);

    /* corrupt copies are rejected */
    size_t fl;
    uint8_t *raw = slurp(p, &fl);
    char q[4200];
    snprintf(q, sizeof q, "%s/bad.dcbl", dir);
    raw[0] ^= 1;
    CHECK_OK(dc_write_file_atomic(q, raw, fl, &err), &err);
    CHECK(dc_base_open(q, &bf, &err) == DC_ERR_FORMAT);
    raw[0] ^= 1;
    raw[DC_BASE_HEADER_BYTES] ^= 1; /* a token: hash mismatch */
    CHECK_OK(dc_write_file_atomic(q, raw, fl, &err), &err);
    CHECK(dc_base_open(q, &bf, &err) == DC_ERR_FORMAT && strstr(err.msg, "hash"));
    raw[DC_BASE_HEADER_BYTES] ^= 1;
    CHECK_OK(dc_write_file_atomic(q, raw, fl - 4, &err), &err);
    CHECK(dc_base_open(q, &bf, &err) == DC_ERR_FORMAT);
    free(raw);

    /* llama.cpp chunking */
    CHECK(dc_chunking_init(&ch, 100, 64, true, 0, &err) == DC_ERR_INPUT);
    CHECK_OK(dc_chunking_init(&ch, 200, 64, true, 0, &err), &err);
    CHECK(ch.n_chunks == 3 && dc_chunking_scored(&ch, 200) == 3 * (64 - 1 - 32));
    CHECK_OK(dc_chunking_init(&ch, 200, 64, false, -1, &err), &err);
    CHECK(ch.n_chunks == 4 && dc_chunking_scored(&ch, 200) == 3 * 63 + 7);
    CHECK_OK(dc_chunking_init(&ch, 129, 64, false, -1, &err), &err);
    CHECK(ch.n_chunks == 2);
    float sv[5] = {1, 2, 3, 4, 5};
    CHECK(dc_percentile_sorted(sv, 5, 0.5) == 3 && dc_percentile_sorted(sv, 5, 0.125) == 1.5);
    free(mark);
    free(lg);
    free(tok);
    dc_model_free(m);
    dc_ckpt_close(ck);
}

int main(void)
{
    for (size_t v = 0; v < sizeof VARIANTS / sizeof *VARIANTS; v++)
        for (size_t s = 0; s < sizeof SEQS / sizeof *SEQS; s++)
            test_golden(VARIANTS[v], SEQS[s]);
    test_exact_fp8("v3-fp8", false);
    test_exact_fp8("v3-fp8-ue8m0", true);
    test_broken();
    test_tokens();
    test_base_file();
    return dc_test_done();
}
