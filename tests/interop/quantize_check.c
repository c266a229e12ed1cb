/* `deepcast quantize` against llama.cpp's own llama-quantize: libllama of node-llama-cpp 3.22.1 (the
 * prebuilt CPU binaries in tests/interop/node_modules, dlopen'ed; its llama_model_quantize is what
 * the llama-quantize tool calls, with the parameters the tool would set). For F32 GGUFs of
 *   tiny    a `deepcast mkmodel --preset v3-tiny` checkpoint (rows of 32..448: mostly fallbacks),
 *   oracle  the oracle's v3-bf16 checkpoint (given the v3-tiny tokenizer, as gguf_llama.mjs does),
 *   wide    tiny's metadata with rows widened to multiples of 256 (the K-quant paths proper),
 *   wide8   the same for an 8-expert v3-tiny (llama-quant.cpp's n_expert == 8 rules),
 *   dense   a synthetic 8-layer llama-architecture GGUF with GQA (the dense-model counters),
 *   qwen2, llama  deepcast's exports of the mkmodel presets qwen2-tiny (biases, tied embeddings) and
 *           llama-tiny (rope_freqs, permuted Q/K): the R1-distill architectures,
 * every file type deepcast writes is made by both; the outputs must have the same KVs, tensor
 * order, names, shapes and per-tensor types, and identical bytes (whole files compared). Then with
 * options (--pure, --tensor-type, --output-tensor-type, --token-embedding-type,
 * --leave-output-tensor), and with an importance matrix, GGUF and legacy .dat (the llama side gets
 * the data normalized as tools/quantize/quantize.cpp load_imatrix does, and its quantize.imatrix.*
 * KV overrides).
 * usage: quantize_check DEEPCAST INTEROP_DIR ORACLE_DIR SCRATCH_DIR; exits 77 (skipped) without
 * libllama. */
#include "dc_test.h"
#include "dc_ggml.h"
#include "dc_gguf.h"
#include "dc_io.h"

#include <dlfcn.h>
#include <glob.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "llama_quantize_api.h"

/* ---- the rest of libllama's C API used here ---- */
struct lq_imatrix { const char *name; const float *data; size_t size; };
struct lq_tt { const char *pattern; int type; };
struct lq_kvo {
    int tag; /* 0 int, 1 float, 2 bool, 3 str */
    char key[128];
    union { int64_t val_i64; double val_f64; bool val_bool; char val_str[128]; };
};
_Static_assert(sizeof(struct lq_kvo) == 264, "llama_model_kv_override");

static struct lq_params (*l_default)(void);
static uint32_t (*l_quantize)(const char *, const char *, const struct lq_params *);
static void (*l_backend_init)(void);
static void (*l_log_set)(void (*)(int, const char *, void *), void *);

static char last_log[4096];
static void quiet(int level, const char *text, void *ud)
{
    (void)ud;
    if (level == 4 /* GGML_LOG_LEVEL_ERROR */ && strlen(last_log) + strlen(text) < sizeof last_log - 1)
        strcat(last_log, text);
}

static const char *dc_bin, *scratch;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 255;
}

/* ---- deterministic data ---- */
static uint64_t rs;
static uint64_t rnext(void)
{
    uint64_t z = (rs += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double runif(void) { return (double)(rnext() >> 11) * 0x1p-53; }
static float rgauss(void)
{
    double u1 = runif(), u2 = runif();
    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}

static int64_t nrows(const int64_t ne[4]) { return ne[1] * ne[2] * ne[3]; }

/* Writes tensors with random F32 data (a gaussian of per-row scale, ~1% outliers) into w (opened). */
static bool fill_random(dc_ggufw *w, uint64_t seed)
{
    dc_err err;
    for (size_t i = 0; i < dc_ggufw_count(w); i++) {
        const dc_ggufw_tensor *t = dc_ggufw_get(w, i);
        int64_t ne0 = t->ne[0], nr = nrows(t->ne);
        float *row = malloc((size_t)ne0 * 4);
        rs = seed * 7919 + i;
        for (int64_t r = 0; r < nr; r++) {
            float sc = 0.02f * (float)(0.25 + runif());
            for (int64_t j = 0; j < ne0; j++)
                row[j] = sc * rgauss() * (rnext() % 100 == 0 ? 8.0f : 1.0f);
            if (t->n_dims == 1) /* norms: around 1 */
                for (int64_t j = 0; j < ne0; j++)
                    row[j] = 1.0f + row[j];
            if (dc_ggufw_write(w, i, (uint64_t)r * (uint64_t)ne0 * 4, row, (size_t)ne0 * 4, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                free(row);
                return false;
            }
        }
        free(row);
    }
    return true;
}

/* in's KVs, its tensors with rows widened to a multiple of 256 (attn_k_b kept, for a fallback) */
static bool widen(const char *in, const char *out)
{
    dc_gguf_file f;
    dc_err err;
    if (dc_gguf_open(in, &f, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return false;
    }
    dc_ggufw *w = dc_ggufw_new();
    bool ok = true;
    for (size_t i = 0; i < f.n_kv && ok; i++)
        ok = !dc_ggufw_kv_copy(w, &f.kv[i], &err);
    for (size_t i = 0; i < f.n_tensors && ok; i++) {
        const dc_gguf_tinfo *t = &f.tensors[i];
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        if (t->n_dims >= 2 && !strstr(t->name, "attn_k_b") && dc_str_ends_with(t->name, ".weight"))
            ne[0] = (ne[0] + 255) / 256 * 256;
        ok = !dc_ggufw_add(w, t->name, 0, t->n_dims, ne, NULL, &err);
    }
    ok = ok && !dc_ggufw_plan(w, 0, &err) && !dc_ggufw_open(w, out, true, &err) && fill_random(w, 11) &&
         !dc_ggufw_finish(w, &err);
    if (!ok)
        fprintf(stderr, "widen %s: %s\n", in, err.msg);
    dc_ggufw_free(w);
    dc_gguf_close(&f);
    return ok;
}

/* an 8-layer dense llama-architecture model with GQA 4 */
static bool dense_model(const char *out)
{
    dc_err err;
    dc_ggufw *w = dc_ggufw_new();
    const int L = 8, D = 256, F = 512, V = 1000, KV = 64;
    bool ok = !dc_ggufw_kv_str(w, "general.architecture", "llama", 5, &err) &&
              !dc_ggufw_kv_str(w, "general.name", "dense", 5, &err) &&
              !dc_ggufw_kv_u32(w, "llama.block_count", (uint32_t)L, &err) &&
              !dc_ggufw_kv_u32(w, "llama.context_length", 512, &err) &&
              !dc_ggufw_kv_u32(w, "llama.embedding_length", (uint32_t)D, &err) &&
              !dc_ggufw_kv_u32(w, "llama.feed_forward_length", (uint32_t)F, &err) &&
              !dc_ggufw_kv_u32(w, "llama.attention.head_count", 4, &err) &&
              !dc_ggufw_kv_u32(w, "llama.attention.head_count_kv", 1, &err) &&
              !dc_ggufw_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &err) &&
              !dc_ggufw_kv_u32(w, "llama.rope.dimension_count", 64, &err) &&
              !dc_ggufw_kv_u32(w, "general.file_type", 0, &err) &&
              !dc_ggufw_kv_u32(w, "general.quantization_version", 2, &err);
    struct { const char *n; int64_t a, b; } glob_t_[] = {{"token_embd.weight", D, V}, {"output_norm.weight", D, 1},
                                                        {"output.weight", D, V}};
    for (size_t i = 0; i < 3 && ok; i++) {
        int64_t ne[4] = {glob_t_[i].a, glob_t_[i].b, 1, 1};
        ok = !dc_ggufw_add(w, glob_t_[i].n, 0, glob_t_[i].b > 1 ? 2 : 1, ne, NULL, &err);
    }
    for (int l = 0; l < L && ok; l++) {
        struct { const char *n; int64_t a, b; } T[] = {
            {"attn_norm", D, 1}, {"attn_q", D, D}, {"attn_k", D, KV}, {"attn_v", D, KV}, {"attn_output", D, D},
            {"ffn_norm", D, 1}, {"ffn_gate", D, F}, {"ffn_up", D, F}, {"ffn_down", F, D}};
        for (size_t i = 0; i < sizeof T / sizeof T[0] && ok; i++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, T[i].n);
            int64_t ne[4] = {T[i].a, T[i].b, 1, 1};
            ok = !dc_ggufw_add(w, nm, 0, T[i].b > 1 ? 2 : 1, ne, NULL, &err);
        }
    }
    ok = ok && !dc_ggufw_plan(w, 0, &err) && !dc_ggufw_open(w, out, true, &err) && fill_random(w, 5) &&
         !dc_ggufw_finish(w, &err);
    if (!ok)
        fprintf(stderr, "dense model: %s\n", err.msg);
    dc_ggufw_free(w);
    return ok;
}

/* ---- importance matrices: synthetic sums and counts for every matrix of a model ---- */
typedef struct imx {
    char **names;
    float **sums, **counts, **norm; /* norm: what quantize.cpp hands llama_model_quantize */
    size_t *nval, *nmat;
    size_t n;
} imx;

static void imx_free(imx *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->names[i]);
        free(m->sums[i]);
        free(m->counts[i]);
        free(m->norm[i]);
    }
    free(m->names), free(m->sums), free(m->counts), free(m->norm), free(m->nval), free(m->nmat);
    memset(m, 0, sizeof *m);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void imx_make(const char *model, imx *m)
{
    dc_gguf_file f;
    dc_err err;
    memset(m, 0, sizeof *m);
    if (dc_gguf_open(model, &f, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    char **names = calloc(f.n_tensors, sizeof *names);
    size_t n = 0;
    for (size_t i = 0; i < f.n_tensors; i++) {
        const dc_gguf_tinfo *t = &f.tensors[i];
        if (t->ne[1] > 1 && dc_str_ends_with(t->name, ".weight") && !strstr(t->name, "_norm"))
            names[n++] = dc_strdup(t->name);
    }
    qsort(names, n, sizeof *names, cmp_str);
    m->names = names;
    m->n = n;
    m->sums = calloc(n, sizeof(float *));
    m->counts = calloc(n, sizeof(float *));
    m->norm = calloc(n, sizeof(float *));
    m->nval = calloc(n, sizeof(size_t));
    m->nmat = calloc(n, sizeof(size_t));
    rs = 4242;
    for (size_t i = 0; i < n; i++) {
        const dc_gguf_tinfo *t = dc_gguf_find_tensor(&f, names[i]);
        /* token_embd: a wrong size (llama-quantize then quantizes it without an imatrix) */
        size_t ne0 = (size_t)t->ne[0] + (strcmp(names[i], "token_embd.weight") ? 0 : 1), nmat = (size_t)t->ne[2];
        m->nval[i] = ne0 * nmat;
        m->nmat[i] = nmat;
        m->sums[i] = malloc(m->nval[i] * 4);
        m->counts[i] = malloc(nmat * 4);
        m->norm[i] = malloc(m->nval[i] * 4);
        for (size_t e = 0; e < nmat; e++) {
            float c = (e % 5 == 3) ? 0.0f : (float)(1 + rnext() % 300); /* some experts never routed */
            m->counts[i][e] = c;
            for (size_t j = 0; j < ne0; j++) {
                float mean = (float)(0.01 + runif() * runif() * 4.0);
                m->sums[i][e * ne0 + j] = mean * c;
                m->norm[i][e * ne0 + j] = c > 0 ? m->sums[i][e * ne0 + j] / c : 1.0f;
            }
        }
    }
    dc_gguf_close(&f);
}

static bool imx_write_gguf(const imx *m, const char *path)
{
    dc_err err;
    dc_ggufw *w = dc_ggufw_new();
    const char *ds[] = {"calib.txt"};
    size_t dl[] = {9};
    bool ok = !dc_ggufw_kv_str(w, "general.type", "imatrix", 7, &err) &&
              !dc_ggufw_kv_arr_str(w, "imatrix.datasets", ds, dl, 1, &err) &&
              !dc_ggufw_kv_u32(w, "imatrix.chunk_count", 7, &err) && !dc_ggufw_kv_u32(w, "imatrix.chunk_size", 512, &err);
    for (size_t i = 0; i < m->n && ok; i++) {
        char nm[96];
        int64_t ne[4] = {(int64_t)(m->nval[i] / m->nmat[i]), (int64_t)m->nmat[i], 1, 1};
        snprintf(nm, sizeof nm, "%s.in_sum2", m->names[i]);
        ok = !dc_ggufw_add(w, nm, 0, 2, ne, NULL, &err);
        int64_t nc[4] = {1, (int64_t)m->nmat[i], 1, 1};
        snprintf(nm, sizeof nm, "%s.counts", m->names[i]);
        ok = ok && !dc_ggufw_add(w, nm, 0, 2, nc, NULL, &err);
    }
    ok = ok && !dc_ggufw_plan(w, 0, &err) && !dc_ggufw_open(w, path, true, &err);
    for (size_t i = 0; i < m->n && ok; i++)
        ok = !dc_ggufw_write(w, 2 * i, 0, m->sums[i], m->nval[i] * 4, &err) &&
             !dc_ggufw_write(w, 2 * i + 1, 0, m->counts[i], m->nmat[i] * 4, &err);
    ok = ok && !dc_ggufw_finish(w, &err);
    if (!ok)
        fprintf(stderr, "imatrix %s: %s\n", path, err.msg);
    dc_ggufw_free(w);
    return ok;
}

/* an imatrix GGUF written by `deepcast imatrix`, read and normalized independently of deepcast's
 * loader: sums / (float)lround(count), 1 where the count is 0 */
static bool imx_load_gguf(const char *path, imx *m)
{
    dc_gguf_file f;
    dc_err err;
    memset(m, 0, sizeof *m);
    if (dc_gguf_open(path, &f, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return false;
    }
    m->names = calloc(f.n_tensors, sizeof(char *));
    m->norm = calloc(f.n_tensors, sizeof(float *));
    m->sums = calloc(f.n_tensors, sizeof(float *));
    m->counts = calloc(f.n_tensors, sizeof(float *));
    m->nval = calloc(f.n_tensors, sizeof(size_t));
    m->nmat = calloc(f.n_tensors, sizeof(size_t));
    for (size_t i = 0; i < f.n_tensors; i++) {
        const dc_gguf_tinfo *t = &f.tensors[i];
        size_t l = strlen(t->name);
        if (l < 9 || strcmp(t->name + l - 8, ".in_sum2"))
            continue;
        char cn[96];
        snprintf(cn, sizeof cn, "%.*s.counts", (int)(l - 8), t->name);
        const dc_gguf_tinfo *c = dc_gguf_find_tensor(&f, cn);
        if (!c)
            continue;
        size_t k = m->n++, nval = (size_t)(t->nbytes / 4), nc = (size_t)(c->nbytes / 4);
        m->names[k] = strndup(t->name, l - 8);
        m->nval[k] = nval;
        m->nmat[k] = nc;
        m->norm[k] = malloc(nval * 4);
        for (size_t j = 0; j < nval; j++) {
            float s, cnt;
            memcpy(&s, t->data + 4 * j, 4);
            memcpy(&cnt, c->data + 4 * (j / (nval / nc)), 4);
            float cr = (float)lroundf(cnt);
            m->norm[k][j] = cr > 0 ? s / cr : 1.0f;
        }
    }
    dc_gguf_close(&f);
    return m->n > 0;
}

/* legacy .dat: values mean * ncall (ncall 3); llama-quantize divides by ncall again */
static bool imx_write_dat(const imx *m, const char *path, imx *as_loaded)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    int32_t n = (int32_t)m->n, ncall = 3;
    fwrite(&n, 4, 1, f);
    as_loaded->norm = calloc(m->n, sizeof(float *));
    for (size_t i = 0; i < m->n; i++) {
        int32_t len = (int32_t)strlen(m->names[i]), nval = (int32_t)m->nval[i];
        fwrite(&len, 4, 1, f);
        fwrite(m->names[i], 1, (size_t)len, f);
        fwrite(&ncall, 4, 1, f);
        fwrite(&nval, 4, 1, f);
        as_loaded->norm[i] = malloc(m->nval[i] * 4);
        size_t per = m->nval[i] / m->nmat[i];
        for (size_t j = 0; j < m->nval[i]; j++) {
            float c = m->counts[i][j / per];
            float v = c > 0 ? (m->sums[i][j] / c) * (float)ncall : 1.0f * (float)ncall;
            fwrite(&v, 4, 1, f);
            as_loaded->norm[i][j] = v / (float)ncall;
        }
    }
    int32_t chunks = 5, dlen = 8;
    fwrite(&chunks, 4, 1, f);
    fwrite(&dlen, 4, 1, f);
    fwrite("calib.md", 1, 8, f);
    return fclose(f) == 0;
}

/* ---- comparison of two GGUFs ---- */
typedef struct cmpres {
    bool kvs, tensors, file;
    size_t n, same_bytes;
    char first_diff[1200];
} cmpres;

static cmpres compare(const char *a, const char *b)
{
    cmpres r = {0};
    dc_gguf_file fa, fb;
    dc_err err;
    if (dc_gguf_open(a, &fa, &err)) {
        snprintf(r.first_diff, sizeof r.first_diff, "%s", err.msg);
        return r;
    }
    if (dc_gguf_open(b, &fb, &err)) {
        snprintf(r.first_diff, sizeof r.first_diff, "%s", err.msg);
        dc_gguf_close(&fa);
        return r;
    }
    r.kvs = fa.n_kv == fb.n_kv;
    for (size_t i = 0; r.kvs && i < fa.n_kv; i++) {
        const dc_gguf_kv *x = &fa.kv[i], *y = &fb.kv[i];
        r.kvs = !strcmp(x->key, y->key) && x->type == y->type && x->arr_type == y->arr_type && x->n == y->n &&
                x->size == y->size && !memcmp(x->data, y->data, (size_t)x->size);
        if (!r.kvs)
            snprintf(r.first_diff, sizeof r.first_diff, "KV %zu: llama.cpp %s, deepcast %s", i, x->key, y->key);
    }
    if (fa.n_kv != fb.n_kv)
        snprintf(r.first_diff, sizeof r.first_diff, "%zu KVs vs %zu", fa.n_kv, fb.n_kv);
    r.tensors = fa.n_tensors == fb.n_tensors;
    r.n = fa.n_tensors;
    for (size_t i = 0; r.tensors && i < fa.n_tensors; i++) {
        const dc_gguf_tinfo *x = &fa.tensors[i], *y = &fb.tensors[i];
        bool same = !strcmp(x->name, y->name) && x->type == y->type && x->n_dims == y->n_dims &&
                    !memcmp(x->ne, y->ne, sizeof x->ne) && x->offset == y->offset;
        if (!same) {
            r.tensors = false;
            snprintf(r.first_diff, sizeof r.first_diff, "tensor %zu: llama.cpp %s %s, deepcast %s %s", i, x->name,
                     dc_ggml_type_name(x->type), y->name, dc_ggml_type_name(y->type));
            break;
        }
        if (x->nbytes == y->nbytes && !memcmp(x->data, y->data, (size_t)x->nbytes))
            r.same_bytes++;
        else if (!r.first_diff[0])
            snprintf(r.first_diff, sizeof r.first_diff, "tensor %s (%s): bytes differ", x->name, dc_ggml_type_name(x->type));
    }
    r.file = fa.size == fb.size && !memcmp(fa.buf, fb.buf, (size_t)fa.size);
    dc_gguf_close(&fa);
    dc_gguf_close(&fb);
    return r;
}

static const char *FTYPES[] = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L",
                               "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS", "TQ1_0", "TQ2_0",
                               "MXFP4_MOE", "F16", "BF16"};
static const int FTYPE_IDS[] = {7, 2, 3, 8, 9, 10, 21, 11, 12, 13, 14, 15, 16, 17, 18, 25, 30, 36, 37, 38, 1, 32};

typedef struct qcase {
    const char *model;     /* file name in scratch */
    const char *type;      /* deepcast's TYPE */
    int ftype;
    const char *dc_args;   /* extra deepcast options */
    struct lq_params *lp;  /* llama params (ftype / nthread set here) */
    const char *label;
} qcase;

static int n_files_identical, n_cases;

static void run_case(const qcase *c)
{
    char in[4096], ol[4200], od[4200];
    snprintf(in, sizeof in, "%s/%s", scratch, c->model);
    snprintf(ol, sizeof ol, "%s/out-llama.gguf", scratch);
    snprintf(od, sizeof od, "%s/out-dc.gguf", scratch);
    remove(ol);
    remove(od);
    struct lq_params p = c->lp ? *c->lp : l_default();
    p.ftype = c->ftype;
    p.nthread = 2;
    last_log[0] = 0;
    uint32_t lrc = l_quantize(in, ol, &p);
    int drc = sh("'%s' -q quantize '%s' '%s' %s %s --threads 2 --force 2>'%s/dc.err'", dc_bin, in, od, c->type,
                 c->dc_args ? c->dc_args : "", scratch);
    char what[512];
    snprintf(what, sizeof what, "%-7s %-6s %s", c->type, c->model, c->label ? c->label : "");
    n_cases++;
    if (lrc != 0) {
        /* llama.cpp refuses (e.g. Q2_K_S without an imatrix): deepcast must refuse too */
        char *msg = last_log;
        while (*msg == '\n' || *msg == '=' || *msg == ' ')
            msg++;
        char *nl = strchr(msg, '\n');
        if (nl)
            *nl = 0;
        CHECK_MSG(drc != 0, "%s: llama.cpp fails (%s) but deepcast succeeds", what, msg);
        printf("%s %s: both refuse (llama.cpp: %.100s)\n", drc ? "ok  " : "FAIL", what, msg);
        return;
    }
    if (drc != 0) {
        char *msg = NULL;
        size_t len;
        char ep[4200];
        snprintf(ep, sizeof ep, "%s/dc.err", scratch);
        dc_err e2;
        dc_read_file(ep, &msg, &len, 1 << 20, &e2);
        CHECK_MSG(0, "%s: deepcast quantize failed (%d): %s", what, drc, msg ? msg : "?");
        free(msg);
        return;
    }
    cmpres r = compare(ol, od);
    CHECK_MSG(r.kvs, "%s: KVs differ: %s", what, r.first_diff);
    CHECK_MSG(r.tensors, "%s: tensor list / types differ: %s", what, r.first_diff);
    CHECK_MSG(r.same_bytes == r.n, "%s: %zu of %zu tensors byte-identical; %s", what, r.same_bytes, r.n, r.first_diff);
    CHECK_MSG(r.file, "%s: files differ", what);
    n_files_identical += r.file;
    printf("%s %s: %zu tensors, KVs %s, types %s, %zu/%zu tensors byte-identical, file %s\n",
           r.file ? "ok  " : "FAIL", what, r.n, r.kvs ? "equal" : "DIFFER", r.tensors ? "equal" : "DIFFER", r.same_bytes,
           r.n, r.file ? "identical" : "DIFFERS");
}

static int ftype_id(const char *name)
{
    for (size_t i = 0; i < sizeof FTYPES / sizeof FTYPES[0]; i++)
        if (!strcmp(FTYPES[i], name))
            return FTYPE_IDS[i];
    return -1;
}

/* llama-side imatrix parameters and the KV overrides quantize.cpp adds */
typedef struct lq_im {
    struct lq_imatrix *im;
    struct lq_kvo kvo[5];
} lq_im;

static void lq_im_set(lq_im *L, const imx *m, float **norm, const char *file, const char *dataset, int chunks,
                      struct lq_params *p)
{
    L->im = calloc(m->n + 1, sizeof *L->im);
    for (size_t i = 0; i < m->n; i++)
        L->im[i] = (struct lq_imatrix){m->names[i], norm[i], m->nval[i]};
    memset(L->kvo, 0, sizeof L->kvo);
    int k = 0;
    L->kvo[k].tag = 3;
    snprintf(L->kvo[k].key, 128, "quantize.imatrix.file");
    snprintf(L->kvo[k++].val_str, 128, "%s", file);
    L->kvo[k].tag = 3;
    snprintf(L->kvo[k].key, 128, "quantize.imatrix.dataset");
    snprintf(L->kvo[k++].val_str, 128, "%s", dataset);
    L->kvo[k].tag = 0;
    snprintf(L->kvo[k].key, 128, "quantize.imatrix.entries_count");
    L->kvo[k++].val_i64 = (int64_t)m->n;
    L->kvo[k].tag = 0;
    snprintf(L->kvo[k].key, 128, "quantize.imatrix.chunks_count");
    L->kvo[k++].val_i64 = chunks;
    L->kvo[k].key[0] = 0;
    *p = l_default();
    p->imatrix = L->im;
    p->kv_overrides = L->kvo;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: quantize_check DEEPCAST INTEROP_DIR ORACLE_DIR SCRATCH_DIR\n");
        return 2;
    }
    dc_bin = argv[1];
    scratch = argv[4];
    char pat[4096];
    /* libllama.so, or libllama.vX.Y.Z.so as node-llama-cpp names it (not libllama-common.so) */
    snprintf(pat, sizeof pat, "%s/node_modules/@node-llama-cpp/linux-x64/bins/*/libllama.*so", argv[2]);
    glob_t gl;
    if (glob(pat, 0, NULL, &gl) != 0 || gl.gl_pathc == 0) {
        printf("SKIP: no %s (cd tests/interop && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci)\n", pat);
        return 77;
    }
    void *h = dlopen(gl.gl_pathv[0], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("SKIP: cannot load %s: %s\n", gl.gl_pathv[0], dlerror());
        globfree(&gl);
        return 77;
    }
    printf("llama: %s\n", gl.gl_pathv[0]);
    globfree(&gl);
#define SYM(v, name) (*(void **)&(v) = dlsym(h, name))
    if (!SYM(l_default, "llama_model_quantize_default_params") || !SYM(l_quantize, "llama_model_quantize") ||
        !SYM(l_backend_init, "llama_backend_init") || !SYM(l_log_set, "llama_log_set")) {
        printf("SKIP: symbol missing in libllama: %s\n", dlerror());
        return 77;
    }
    l_backend_init();
    l_log_set(quiet, NULL);
    dc_rm_rf(scratch);
    mkdir(scratch, 0755);
    dc_test_scratch(scratch);
    const char *S = scratch;

    /* ---- inputs ---- */
    bool ok = !sh("'%s' -q mkmodel '%s/tiny' --preset v3-tiny", dc_bin, S) &&
              !sh("'%s' -q convert '%s/tiny' '%s/tiny.gguf' --to gguf --type f32", dc_bin, S, S) &&
              !sh("cp -r '%s/models/v3-bf16' '%s/oracle' && chmod -R u+w '%s/oracle' && cp '%s/tiny/tokenizer.json' "
                  "'%s/tiny/tokenizer_config.json' '%s/oracle/'", argv[3], S, S, S, S, S) &&
              !sh("'%s' -q convert '%s/oracle' '%s/oracle.gguf' --to gguf --type f32", dc_bin, S, S) &&
              !sh("'%s' -q mkmodel '%s/tiny8' --preset v3-tiny --experts 8", dc_bin, S) &&
              !sh("'%s' -q convert '%s/tiny8' '%s/tiny8.gguf' --to gguf --type f32", dc_bin, S, S) &&
              !sh("'%s' -q mkmodel '%s/qwen2' --preset qwen2-tiny && '%s' -q convert '%s/qwen2' '%s/qwen2.gguf' --to gguf --type f32",
                  dc_bin, S, dc_bin, S, S) &&
              !sh("'%s' -q mkmodel '%s/llama' --preset llama-tiny && '%s' -q convert '%s/llama' '%s/llama.gguf' --to gguf --type f32",
                  dc_bin, S, dc_bin, S, S) &&
              !sh("'%s' -q mkmodel '%s/v32' --preset v32-tiny && '%s' -q convert '%s/v32' '%s/v32.gguf' --to gguf --type f32",
                  dc_bin, S, dc_bin, S, S);
    CHECK_MSG(ok, "making the input models");
    if (!ok)
        return dc_test_done();
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/tiny.gguf", S);
    snprintf(b, sizeof b, "%s/wide.gguf", S);
    CHECK(widen(a, b));
    snprintf(a, sizeof a, "%s/tiny8.gguf", S);
    snprintf(b, sizeof b, "%s/wide8.gguf", S);
    CHECK(widen(a, b));
    snprintf(a, sizeof a, "%s/dense.gguf", S);
    CHECK(dense_model(a));

    /* ---- every file type, every model ---- */
    const char *models[] = {"tiny.gguf", "oracle.gguf", "wide.gguf", "wide8.gguf", "dense.gguf", "qwen2.gguf", "llama.gguf",
                            "v32.gguf" /* deepseek32 (DeepSeek-V3.2): the indexer's tensors */};
    for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++)
        for (size_t i = 0; i < sizeof FTYPES / sizeof FTYPES[0]; i++) {
            qcase c = {models[mi], FTYPES[i], FTYPE_IDS[i], NULL, NULL, NULL};
            run_case(&c);
        }

    /* ---- options ---- */
    {
        struct lq_params p = l_default();
        p.pure = true;
        qcase c1 = {"wide.gguf", "Q4_K_M", 15, "--pure", &p, "--pure"};
        run_case(&c1);
        c1.model = "dense.gguf";
        run_case(&c1);
        p = l_default();
        p.quantize_output_tensor = false;
        qcase c2 = {"wide.gguf", "Q5_K_M", 17, "--leave-output-tensor", &p, "--leave-output-tensor"};
        run_case(&c2);
        p = l_default();
        p.output_tensor_type = 12 /* q4_K */;
        p.token_embedding_type = 8 /* q8_0 */;
        qcase c3 = {"wide.gguf", "Q3_K_M", 12, "--output-tensor-type q4_K --token-embedding-type Q8_0", &p,
                    "--output-tensor-type q4_K --token-embedding-type q8_0"};
        run_case(&c3);
        struct lq_tt tt[] = {{"ffn_down_exps", 14 /* q6_K */}, {"attn_.*_b\\.weight", 8}, {"blk\\.0\\.", 6}, {NULL, 39}};
        p = l_default();
        p.tt_overrides = tt;
        qcase c4 = {"wide.gguf", "Q4_K_S", 14,
                    "--tensor-type ffn_down_exps=q6_K --tensor-type 'attn_.*_b\\.weight=q8_0' --tensor-type 'blk\\.0\\.=q5_0'",
                    &p, "--tensor-type x3"};
        run_case(&c4);
        c4.model = "dense.gguf";
        run_case(&c4);
        /* --recipe deepseek == llama-quantize with its --tensor-type list (convert/dc_quantize.c) */
        struct lq_tt rec[] = {{"^blk\\.[0-9]+\\.attn_", 8}, {"_shexp\\.weight$", 8},
                              {"^blk\\.[0-9]+\\.ffn_(gate|up|down)\\.weight$", 8}, {"^blk\\.[0-9]+\\.nextn\\.", 8},
                              {NULL, 39}};
        p = l_default();
        p.tt_overrides = rec;
        qcase c7 = {"wide.gguf", "Q4_K_M", 15, "--recipe deepseek", &p, "--recipe deepseek"};
        run_case(&c7);
        c7.model = "tiny.gguf";
        run_case(&c7);
        /* requantizing a Q8_0 file (needs --allow-requantize in both) */
        snprintf(a, sizeof a, "%s/q8.gguf", S);
        struct lq_params q = l_default();
        q.ftype = 7;
        q.nthread = 2;
        snprintf(b, sizeof b, "%s/wide.gguf", S);
        CHECK(l_quantize(b, a, &q) == 0);
        qcase c5 = {"q8.gguf", "Q4_K_M", 15, NULL, NULL, "(Q8_0 input, no --allow-requantize)"};
        run_case(&c5);
        p = l_default();
        p.allow_requantize = true;
        qcase c6 = {"q8.gguf", "Q4_K_M", 15, "--allow-requantize", &p, "(Q8_0 input) --allow-requantize"};
        run_case(&c6);
    }

    /* ---- imatrix ---- */
    {
        const char *im_models[] = {"wide.gguf", "tiny.gguf", "dense.gguf"};
        for (size_t mi = 0; mi < 3; mi++) {
            imx m;
            char mp[4200], ip[4200], dp[4200];
            snprintf(mp, sizeof mp, "%s/%s", S, im_models[mi]);
            snprintf(ip, sizeof ip, "%s/imatrix-%zu.gguf", S, mi);
            snprintf(dp, sizeof dp, "%s/imatrix-%zu.dat", S, mi);
            imx_make(mp, &m);
            imx legacy = {0};
            CHECK(imx_write_gguf(&m, ip));
            CHECK(imx_write_dat(&m, dp, &legacy));
            static const char *IM_TYPES[] = {"Q4_K_M", "Q4_0", "Q5_0", "Q4_1", "Q5_1", "Q2_K", "Q2_K_S", "Q3_K_S", "Q5_K_S",
                                             "Q6_K", "IQ4_NL", "IQ4_XS", "MXFP4_MOE", "Q8_0", "TQ2_0"};
            for (size_t i = 0; i < sizeof IM_TYPES / sizeof IM_TYPES[0]; i++) {
                lq_im L;
                struct lq_params p;
                lq_im_set(&L, &m, m.norm, ip, "calib.txt", 7, &p);
                char args[4400];
                snprintf(args, sizeof args, "--imatrix '%s'", ip);
                qcase c = {im_models[mi], IM_TYPES[i], ftype_id(IM_TYPES[i]), args, &p, "--imatrix (GGUF)"};
                run_case(&c);
                free(L.im);
                if (i < 3 || mi == 0) { /* the legacy format */
                    lq_im_set(&L, &m, legacy.norm, dp, "calib.md", 5, &p);
                    snprintf(args, sizeof args, "--imatrix '%s'", dp);
                    qcase d = {im_models[mi], IM_TYPES[i], ftype_id(IM_TYPES[i]), args, &p, "--imatrix (legacy .dat)"};
                    run_case(&d);
                    free(L.im);
                }
            }
            for (size_t i = 0; i < m.n; i++)
                free(legacy.norm[i]);
            free(legacy.norm);
            imx_free(&m);
        }
    }
    /* ---- an importance matrix from `deepcast imatrix` (the oracle's calibration tokens) ---- */
    {
        char tok[4200], ip[4200];
        snprintf(tok, sizeof tok, "%s/golden/v3-bf16/gen200.tokens.json", argv[3]);
        snprintf(ip, sizeof ip, "%s/dc-imatrix.gguf", S);
        CHECK(!sh("'%s' -q imatrix '%s/oracle.gguf' --tokens '%s' --ctx 64 -o '%s'", dc_bin, S, tok, ip));
        imx m;
        if (imx_load_gguf(ip, &m)) {
            static const char *T[] = {"Q4_K_M", "Q4_0", "IQ4_XS", "Q2_K_S", "Q6_K"};
            for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
                lq_im L;
                struct lq_params p;
                lq_im_set(&L, &m, m.norm, ip, tok, 3, &p);
                char args[8600];
                snprintf(args, sizeof args, "--imatrix '%s'", ip);
                qcase c = {"oracle.gguf", T[i], ftype_id(T[i]), args, &p, "--imatrix (deepcast imatrix)"};
                run_case(&c);
                free(L.im);
            }
            imx_free(&m);
        } else
            CHECK_MSG(0, "cannot read %s", ip);
    }
    printf("%d of %d cases: files byte-identical with llama-quantize's\n", n_files_identical, n_cases);
    return dc_test_done();
}
