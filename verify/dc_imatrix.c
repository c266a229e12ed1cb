#include "dc_imatrix.h"
#include "dc_gguf.h"
#include "dc_io.h"
#include "dc_strmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char name[DC_GGUF_MAX_NAME];
    int64_t cols, n_mat, n_counts; /* n_counts: n_mat for experts, else 1 (shared by all n_mat rows) */
    float *sums;     /* [n_mat][cols] */
    int64_t *counts; /* [n_counts] */
} entry;

struct dc_imatrix_acc {
    entry *e;
    size_t n, cap;
    dc_strmap by_name; /* keys point into e[i].name: rebuilt when e moves */
    int64_t n_experts;
    bool process_output;
    dc_status st;
    dc_err err;
};

dc_status dc_imatrix_acc_new(const dc_model *m, bool process_output, dc_imatrix_acc **out, dc_err *err)
{
    dc_imatrix_acc *a = dc_calloc(1, sizeof *a, err);
    if (!a)
        return DC_ERR_NOMEM;
    a->n_experts = dc_model_config(m)->n_experts_routed;
    a->process_output = process_output;
    *out = a;
    return DC_OK;
}

void dc_imatrix_acc_free(dc_imatrix_acc *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->e[i].sums);
        free(a->e[i].counts);
    }
    free(a->e);
    dc_strmap_free(&a->by_name);
    free(a);
}

size_t dc_imatrix_acc_count(const dc_imatrix_acc *a) { return a->n; }

dc_status dc_imatrix_acc_status(const dc_imatrix_acc *a, dc_err *err)
{
    if (a->st && err)
        *err = a->err;
    return a->st;
}

/* The GGUF name llama.cpp gives the weight of an activation site (deepseek2 and llama names). */
static bool site_name(const dc_act *x, char *buf, size_t cap)
{
    static const struct { int role; const char *name; } T[] = {
        {DC_ROLE_Q_PROJ, "attn_q"},          {DC_ROLE_Q_A_PROJ, "attn_q_a"},   {DC_ROLE_Q_B_PROJ, "attn_q_b"},
        {DC_ROLE_KV_A_PROJ, "attn_kv_a_mqa"}, {DC_ROLE_O_PROJ, "attn_output"}, {DC_ROLE_K_PROJ, "attn_k"},
        {DC_ROLE_V_PROJ, "attn_v"},          {DC_ROLE_MLP_GATE, "ffn_gate"},  {DC_ROLE_MLP_UP, "ffn_up"},
        {DC_ROLE_MLP_DOWN, "ffn_down"},      {DC_ROLE_ROUTER, "ffn_gate_inp"}, {DC_ROLE_EXP_GATE, "ffn_gate_exps"},
        {DC_ROLE_EXP_UP, "ffn_up_exps"},     {DC_ROLE_EXP_DOWN, "ffn_down_exps"}, {DC_ROLE_SHEXP_GATE, "ffn_gate_shexp"},
        {DC_ROLE_SHEXP_UP, "ffn_up_shexp"},  {DC_ROLE_SHEXP_DOWN, "ffn_down_shexp"}, {DC_ACT_K_B, "attn_k_b"},
        {DC_ACT_V_B, "attn_v_b"},
    };
    if (x->role == DC_ROLE_LM_HEAD) {
        snprintf(buf, cap, "output.weight");
        return true;
    }
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (T[i].role == x->role && x->layer >= 0) {
            snprintf(buf, cap, "blk.%d.%s.weight", x->layer, T[i].name);
            return true;
        }
    return false; /* kv_b_proj: llama.cpp's MLA graph multiplies by attn_k_b / attn_v_b instead */
}

static void fail(dc_imatrix_acc *a, dc_status st, const char *fmt, const char *s)
{
    if (a->st)
        return;
    a->st = st;
    a->err.code = st;
    snprintf(a->err.msg, sizeof a->err.msg, fmt, s);
}

static entry *get_entry(dc_imatrix_acc *a, const char *name, int64_t cols, int64_t n_mat, int64_t n_counts)
{
    int64_t idx;
    if (dc_strmap_get(&a->by_name, name, &idx)) {
        entry *e = &a->e[idx];
        if (e->cols != cols || e->n_mat != n_mat) {
            fail(a, DC_ERR_INTERNAL, "imatrix: inconsistent sizes for %s", name);
            return NULL;
        }
        return e;
    }
    entry *old = a->e;
    if (!dc_grow((void **)&a->e, &a->cap, a->n + 1, sizeof *a->e)) {
        fail(a, DC_ERR_NOMEM, "imatrix: out of memory (%s)", name);
        return NULL;
    }
    if (a->e != old) { /* the map's keys pointed into the old array */
        dc_strmap_free(&a->by_name);
        memset(&a->by_name, 0, sizeof a->by_name);
        for (size_t i = 0; i < a->n; i++)
            if (dc_strmap_put(&a->by_name, a->e[i].name, (int64_t)i) < 0) {
                fail(a, DC_ERR_NOMEM, "imatrix: out of memory (%s)", name);
                return NULL;
            }
    }
    entry *e = &a->e[a->n];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->cols = cols;
    e->n_mat = n_mat;
    e->n_counts = n_counts;
    e->sums = calloc((size_t)(cols * n_mat), sizeof *e->sums);
    e->counts = calloc((size_t)n_counts, sizeof *e->counts);
    if (!e->sums || !e->counts || dc_strmap_put(&a->by_name, e->name, (int64_t)a->n) < 0) {
        free(e->sums);
        free(e->counts);
        fail(a, DC_ERR_NOMEM, "imatrix: out of memory (%s)", name);
        return NULL;
    }
    a->n++;
    return e;
}

void dc_imatrix_hook(void *ud, const dc_act *x)
{
    dc_imatrix_acc *a = ud;
    if (a->st)
        return;
    if (x->role == DC_ROLE_LM_HEAD && !a->process_output)
        return;
    char name[DC_GGUF_MAX_NAME];
    if (!site_name(x, name, sizeof name))
        return;
    const bool expert = x->role == DC_ROLE_EXP_GATE || x->role == DC_ROLE_EXP_UP || x->role == DC_ROLE_EXP_DOWN;
    if (!expert && x->n < 16) /* llama-imatrix ignores small batches of plain products */
        return;
    if (expert && (x->expert < 0 || x->expert >= a->n_experts)) {
        fail(a, DC_ERR_INTERNAL, "imatrix: expert index out of range for %s", name);
        return;
    }
    entry *e = get_entry(a, name, x->cols, expert ? a->n_experts : x->n_mat, expert ? a->n_experts : 1);
    if (!e)
        return;
    /* sums[h][j] += x[t][h][j]^2 over the tokens in order, as llama's collector does (float);
     * each column summed by one thread: the same result for any thread count */
    const int64_t n_mat = expert ? 1 : x->n_mat, cols = x->cols;
    float *base = e->sums + (expert ? x->expert * cols : 0);
#pragma omp parallel for schedule(static) if (n_mat * cols * x->n >= (1 << 16))
    for (int64_t hj = 0; hj < n_mat * cols; hj++) {
        const int64_t h = hj / cols, j = hj % cols;
        float acc = base[hj];
        const float *p = x->x + h * x->hs + j;
        for (int64_t t = 0; t < x->n; t++) {
            const float v = p[t * x->ld];
            acc += v * v;
        }
        base[hj] = acc;
    }
    if (expert)
        e->counts[x->expert] += x->n;
    else
        e->counts[0] += x->n; /* one count per dense tensor (n_mat rows of sums share it) */
}

static int cmp_entry(const void *p, const void *q) { return strcmp(((const entry *)p)->name, ((const entry *)q)->name); }

static int ggml_n_dims2(int64_t ne1) { return ne1 > 1 ? 2 : 1; }

static dc_status write_gguf(const entry *es, size_t n, const char *path, const char *dataset, int32_t chunk_count,
                            int32_t chunk_size, bool force, dc_err *err)
{
    dc_ggufw *w = dc_ggufw_new();
    if (!w)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    const char *ds[1] = {dataset};
    size_t dl[1] = {dataset ? strlen(dataset) : 0};
    dc_status st = dc_ggufw_kv_str(w, "general.type", "imatrix", 7, err);
    if (!st)
        st = dc_ggufw_kv_arr_str(w, "imatrix.datasets", ds, dl, dataset ? 1 : 0, err);
    if (!st)
        st = dc_ggufw_kv_u32(w, "imatrix.chunk_count", (uint32_t)chunk_count, err);
    if (!st)
        st = dc_ggufw_kv_u32(w, "imatrix.chunk_size", (uint32_t)chunk_size, err);
    /* NAME.in_sum2 {nval / n_counts, n_counts}, NAME.counts {1, n_counts} */
    for (size_t i = 0; i < n && !st; i++) {
        const entry *e = &es[i];
        char nm[DC_GGUF_MAX_NAME + 16];
        int64_t ne[4] = {e->cols * e->n_mat / e->n_counts, e->n_counts, 1, 1};
        snprintf(nm, sizeof nm, "%s.in_sum2", e->name);
        st = dc_ggufw_add(w, nm, 0, (uint32_t)ggml_n_dims2(ne[1]), ne, NULL, err);
        int64_t nc[4] = {1, e->n_counts, 1, 1};
        snprintf(nm, sizeof nm, "%s.counts", e->name);
        if (!st)
            st = dc_ggufw_add(w, nm, 0, (uint32_t)ggml_n_dims2(nc[1]), nc, NULL, err);
    }
    bool opened = false;
    if (!st)
        st = dc_ggufw_plan(w, 0, err);
    if (!st && !(st = dc_ggufw_open(w, path, force, err)))
        opened = true;
    for (size_t i = 0; i < n && !st; i++) {
        const entry *e = &es[i];
        st = dc_ggufw_write(w, 2 * i, 0, e->sums, (size_t)(e->cols * e->n_mat) * sizeof(float), err);
        for (int64_t j = 0; j < e->n_counts && !st; j++) {
            float c = (float)e->counts[j];
            st = dc_ggufw_write(w, 2 * i + 1, (uint64_t)j * 4, &c, 4, err);
        }
    }
    if (!st && opened) {
        st = dc_ggufw_finish(w, err);
        opened = false;
    }
    if (opened)
        dc_ggufw_abort(w);
    dc_ggufw_free(w);
    return st;
}

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} buf;

static void put(buf *b, const void *src, size_t n)
{
    if (b->oom || !dc_grow((void **)&b->p, &b->cap, b->n + n, 1)) {
        b->oom = true;
        return;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_i32(buf *b, int32_t v) { put(b, &v, 4); }

/* IMatrixCollector::save_imatrix_legacy */
static dc_status write_dat(const entry *es, size_t n, const char *path, const char *dataset, int32_t chunk_count,
                           int32_t chunk_size, bool force, dc_err *err)
{
    if (!force && dc_exists(path))
        return dc_err_set(err, DC_ERR_EXISTS, "%s: already exists (use --force to overwrite)", path);
    buf b = {0};
    int32_t n_entries = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t zeros = 0;
        for (int64_t j = 0; j < es[i].n_counts; j++)
            zeros += es[i].counts[j] == 0;
        n_entries += zeros < es[i].n_counts;
    }
    put_i32(&b, n_entries);
    for (size_t i = 0; i < n; i++) {
        const entry *e = &es[i];
        int64_t zeros = 0, mx = 0;
        for (int64_t j = 0; j < e->n_counts; j++) {
            zeros += e->counts[j] == 0;
            mx = e->counts[j] > mx ? e->counts[j] : mx;
        }
        if (zeros == e->n_counts)
            continue; /* "has no data - skipping" */
        put_i32(&b, (int32_t)strlen(e->name));
        put(&b, e->name, strlen(e->name));
        const int32_t ncall = (int32_t)((mx + (chunk_size - 1)) / chunk_size);
        put_i32(&b, ncall);
        const int32_t nval = (int32_t)(e->cols * e->n_mat), per = nval / (int32_t)e->n_counts;
        put_i32(&b, nval);
        for (int32_t k = 0; k < nval; k++) {
            float count = (float)e->counts[k / per], value = e->sums[k];
            if (count == 0.0f) {
                value = 1.0f;
                count = 1.0f;
            }
            float v = (value / count) * (float)ncall;
            put(&b, &v, 4);
        }
    }
    put_i32(&b, chunk_count);
    put_i32(&b, dataset ? (int32_t)strlen(dataset) : 0);
    if (dataset)
        put(&b, dataset, strlen(dataset));
    dc_status st = b.oom ? dc_err_set(err, DC_ERR_NOMEM, "out of memory") : dc_write_file_atomic(path, b.p, b.n, err);
    free(b.p);
    return st;
}

dc_status dc_imatrix_write(const dc_imatrix_acc *a, const char *path, bool legacy, const char *dataset,
                           int32_t chunk_count, int32_t chunk_size, bool force, dc_err *err)
{
    if (a->st) {
        if (err)
            *err = a->err;
        return a->st;
    }
    entry *es = malloc((a->n ? a->n : 1) * sizeof *es);
    if (!es)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    memcpy(es, a->e, a->n * sizeof *es);
    qsort(es, a->n, sizeof *es, cmp_entry); /* "deterministic tensor name order" */
    dc_status st = legacy ? write_dat(es, a->n, path, dataset, chunk_count, chunk_size, force, err)
                          : write_gguf(es, a->n, path, dataset, chunk_count, chunk_size, force, err);
    free(es);
    return st;
}
