#include "dc_hessian.h"
#include "dc_gptq.h"
#include "dc_names.h"
#include "dc_strmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct entry {
    char key[48];  /* "group:layer:expert" */
    int64_t cols, count;
    double *h;     /* [cols][cols]; the upper triangle is accumulated, mirrored by dc_hessian_find */
    bool mirrored;
    double *u;     /* GPTQ's factor (dc_hessian_factor), computed once with dampening u_damp */
    double u_damp;
    bool u_done;
    /* spilled (dc_hessian_spill): h freed, U at byte off of the spill file (none when u_null) */
    bool spilled, u_null;
    uint64_t off;
    int role, layer, expert; /* for messages */
    /* the rows last accumulated, and the roles that have multiplied them since: another matrix of
     * the group on the same rows adds nothing (q_a, q_b, kv_a: kv_a's rows are q_a's) */
    const float *last_x;
    int64_t last_n, last_ld;
    uint64_t roles_seen;
} entry;

struct dc_hessian_acc {
    dc_config cfg;
    uint64_t mask, max_bytes, bytes;
    entry **e;     /* pointers: the map's keys stay valid when the array grows */
    size_t n, cap;
    dc_strmap by_key;
    dc_status st;
    dc_err err;
    int layer;          /* collect only this layer's inputs; -1: every layer */
    uint64_t spill_end; /* bytes written to the spill file */
    const uint8_t *map; /* the spill file, mapped by dc_hessian_spill_map */
    size_t map_len;
};

/* Matrices multiplying the same input share a group (the role of the first of them). */
static int input_group(int role)
{
    switch (role) {
    case DC_ROLE_MLP_UP: return DC_ROLE_MLP_GATE;
    case DC_ROLE_EXP_UP: return DC_ROLE_EXP_GATE;
    case DC_ROLE_SHEXP_UP: return DC_ROLE_SHEXP_GATE;
    case DC_ROLE_Q_A_PROJ:
    case DC_ROLE_KV_A_PROJ:
    case DC_ROLE_K_PROJ:
    case DC_ROLE_V_PROJ: return DC_ROLE_Q_PROJ;
    default: return role;
    }
}

dc_status dc_hessian_acc_new(const dc_model *m, uint64_t role_mask, uint64_t max_bytes, dc_hessian_acc **out,
                             dc_err *err)
{
    dc_hessian_acc *a = dc_calloc(1, sizeof *a, err);
    if (!a)
        return DC_ERR_NOMEM;
    a->cfg = *dc_model_config(m);
    a->mask = role_mask;
    a->max_bytes = max_bytes;
    a->layer = -1;
    *out = a;
    return DC_OK;
}

void dc_hessian_acc_free(dc_hessian_acc *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->e[i]->h);
        free(a->e[i]->u);
        free(a->e[i]);
    }
    free(a->e);
    dc_strmap_free(&a->by_key);
    if (a->map)
        munmap((void *)a->map, a->map_len);
    free(a);
}

void dc_hessian_acc_set_layer(dc_hessian_acc *a, int layer) { a->layer = layer; }
uint64_t dc_hessian_spill_bytes(const dc_hessian_acc *a) { return a->spill_end; }

size_t dc_hessian_acc_count(const dc_hessian_acc *a) { return a->n; }
uint64_t dc_hessian_acc_bytes(const dc_hessian_acc *a) { return a->bytes; }

dc_status dc_hessian_acc_status(const dc_hessian_acc *a, dc_err *err)
{
    if (a->st && err)
        *err = a->err;
    return a->st;
}

static void key_of(char *buf, size_t cap, int group, int layer, int expert)
{
    snprintf(buf, cap, "%d:%d:%d", group, layer, expert);
}

static entry *lookup(const dc_hessian_acc *a, const char *key)
{
    int64_t i;
    return dc_strmap_get(&a->by_key, key, &i) ? a->e[i] : NULL;
}

static entry *get_entry(dc_hessian_acc *a, const dc_act *x, int group)
{
    char key[48];
    key_of(key, sizeof key, group, x->layer, x->expert);
    entry *e = lookup(a, key);
    if (e) {
        if (e->cols != x->cols) {
            a->st = dc_err_set(&a->err, DC_ERR_INTERNAL, "gptq: inconsistent input sizes for %s (layer %d): %lld and %lld",
                               dc_role_name((dc_role)x->role), x->layer, (long long)e->cols, (long long)x->cols);
            return NULL;
        }
        return e;
    }
    uint64_t need = (uint64_t)x->cols * (uint64_t)x->cols * sizeof(double);
    if (a->max_bytes && a->bytes + need > a->max_bytes) {
        char b1[32], b2[32];
        size_t live = 0;
        for (size_t i = 0; i < a->n; i++)
            live += !a->e[i]->spilled;
        a->st = dc_err_set(&a->err, DC_ERR_NOMEM,
                           "gptq: the Hessians of layer %d need more than the limit of %s (%zu inputs so far, %s; the "
                           "next, %s, is %lld x %lld): the collection holds one layer's Hessians at a time; raise "
                           "--gptq-max-memory if the machine has the memory, or use the default clip search or --imatrix",
                           x->layer, dc_fmt_bytes(a->max_bytes, b1, sizeof b1), live, dc_fmt_bytes(a->bytes, b2, sizeof b2),
                           dc_role_name((dc_role)x->role), (long long)x->cols, (long long)x->cols);
        return NULL;
    }
    if (!dc_grow((void **)&a->e, &a->cap, a->n + 1, sizeof *a->e) || !(e = calloc(1, sizeof *e)) ||
        !(e->h = calloc((size_t)(x->cols * x->cols), sizeof *e->h))) {
        if (e)
            free(e);
        a->st = dc_err_set(&a->err, DC_ERR_NOMEM, "gptq: out of memory for a %lld x %lld Hessian (%s of layer %d)",
                           (long long)x->cols, (long long)x->cols, dc_role_name((dc_role)x->role), x->layer);
        return NULL;
    }
    memcpy(e->key, key, sizeof key);
    e->cols = x->cols;
    e->role = group;
    e->layer = x->layer;
    e->expert = x->expert;
    if (dc_strmap_put(&a->by_key, e->key, (int64_t)a->n) < 0) {
        free(e->h);
        free(e);
        a->st = dc_err_set(&a->err, DC_ERR_NOMEM, "gptq: out of memory");
        return NULL;
    }
    a->e[a->n++] = e;
    a->bytes += need;
    return e;
}

void dc_hessian_hook(void *ud, const dc_act *x)
{
    dc_hessian_acc *a = ud;
    if (a->st || x->role < 0 || x->role >= DC_ROLE_COUNT || x->n_mat != 1 || x->n <= 0 ||
        !(a->mask >> x->role & 1) || (a->layer >= 0 && x->layer != a->layer))
        return;
    entry *e = get_entry(a, x, input_group(x->role));
    if (!e)
        return;
    if (e->spilled) {
        a->st = dc_err_set(&a->err, DC_ERR_INTERNAL, "gptq: %s of layer %d seen again after its layer was spilled",
                           dc_role_name((dc_role)x->role), x->layer);
        return;
    }
    const uint64_t bit = 1ull << x->role;
    if (!(e->roles_seen & bit) && e->last_x == x->x && e->last_n == x->n && e->last_ld == x->ld && e->count > 0) {
        e->roles_seen |= bit; /* the second matrix of the group on the rows just accumulated */
        return;
    }
    e->roles_seen = bit;
    e->last_x = x->x;
    e->last_n = x->n;
    e->last_ld = x->ld;
    /* h[i][j] += x[t][i] * x[t][j] for j >= i, over t in order; row i by one thread */
    const int64_t K = x->cols, n = x->n, ld = x->ld;
    const float *X = x->x;
    double *H = e->h;
#pragma omp parallel for schedule(dynamic, 4) if (n * K * K >= (1 << 18))
    for (int64_t i = 0; i < K; i++) {
        double *hi = H + i * K;
        for (int64_t t = 0; t < n; t++) {
            const float *xt = X + t * ld;
            const double xi = xt[i];
            if (xi == 0)
                continue;
            for (int64_t j = i; j < K; j++)
                hi[j] += xi * (double)xt[j];
        }
    }
    e->count += n;
    e->mirrored = false;
    free(e->u); /* a factor of the old sums is stale */
    e->u = NULL;
    e->u_done = false;
}

/* Fills the lower triangle from the accumulated upper one (once after each accumulation). */
static void mirror(entry *e)
{
    if (e->mirrored)
        return;
    const int64_t K = e->cols;
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < i; j++)
            e->h[i * K + j] = e->h[j * K + i];
    e->mirrored = true;
}

/* The entry of the weight with this HF name, NULL if none (or of another width, or empty). */
static entry *find_entry(const dc_hessian_acc *a, const char *name, int64_t K)
{
    dc_name_info info;
    if (!dc_name_parse(&a->cfg, name, &info) || info.is_scale)
        return NULL;
    char key[48];
    key_of(key, sizeof key, input_group(info.role), info.layer, info.expert);
    entry *e = lookup(a, key);
    return e && e->cols == K && e->count > 0 ? e : NULL;
}

/* GPTQ's factor of an entry's Hessian with dampening damp into e->u (NULL: nothing to weight),
 * unless it is there already; what names the matrix in messages */
static dc_status factor(entry *e, double damp, const char *what, dc_err *err)
{
    if (e->u_done && e->u_damp == damp)
        return DC_OK;
    mirror(e);
    free(e->u);
    e->u = NULL;
    e->u_done = false;
    double used;
    dc_status st = dc_gptq_prepare(e->h, e->cols, damp, what, &e->u, &used, err);
    if (st)
        return st;
    if (e->u && used != damp)
        dc_log(2, "gptq: %s: dampening raised to %g\n", what, used);
    e->u_damp = damp;
    e->u_done = true;
    return DC_OK;
}

dc_status dc_hessian_factor(dc_hessian_acc *a, const char *name, int64_t K, double damp, const double **U,
                            dc_err *err)
{
    *U = NULL;
    entry *e = find_entry(a, name, K);
    if (!e)
        return DC_OK;
    if (e->spilled) {
        if (damp != e->u_damp || (!e->u_null && !a->map))
            return dc_err_set(err, DC_ERR_INTERNAL, "gptq: %s: the spilled factor was made with dampening %g, not %g%s",
                              name, e->u_damp, damp, a->map ? "" : " (or the spill file is not mapped)");
        *U = e->u_null ? NULL : (const double *)(const void *)(a->map + e->off);
        return DC_OK;
    }
    dc_status st = factor(e, damp, name, err);
    *U = e->u;
    return st;
}

const double *dc_hessian_find(const dc_hessian_acc *a, const char *name, int64_t K, int64_t *count)
{
    *count = 0;
    entry *e = find_entry(a, name, K);
    if (!e || e->spilled)
        return NULL;
    mirror(e);
    *count = e->count;
    return e->h;
}

static dc_status write_all(int fd, const void *p, size_t n, uint64_t off, dc_err *err)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = pwrite(fd, b, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return dc_err_set(err, DC_ERR_IO, "gptq: writing the spill file: %s", w < 0 ? strerror(errno) : "no progress");
        b += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return DC_OK;
}

dc_status dc_hessian_spill(dc_hessian_acc *a, int fd, double damp, dc_err *err)
{
    if (a->st) {
        *err = a->err;
        return a->st;
    }
    if (a->map)
        return dc_err_set(err, DC_ERR_INTERNAL, "gptq: spill after the spill file was mapped");
    for (size_t i = 0; i < a->n; i++) {
        entry *e = a->e[i];
        if (e->spilled || !e->h)
            continue;
        const int64_t K = e->cols;
        char what[96];
        if (e->expert >= 0)
            snprintf(what, sizeof what, "layer %d expert %d %s input", e->layer, e->expert, dc_role_name((dc_role)e->role));
        else
            snprintf(what, sizeof what, "layer %d %s input", e->layer, dc_role_name((dc_role)e->role));
        dc_status st = e->count > 0 ? factor(e, damp, what, err) : DC_OK;
        const double *u = e->count > 0 ? e->u : NULL;
        if (!st && u)
            st = write_all(fd, u, (size_t)(K * K) * sizeof *u, a->spill_end, err);
        if (st)
            return st;
        e->off = a->spill_end;
        e->u_null = !u;
        if (u)
            a->spill_end += (uint64_t)(K * K) * sizeof *u;
        free(e->u);
        e->u = NULL;
        free(e->h);
        e->h = NULL;
        e->spilled = true;
        e->u_damp = damp;
        a->bytes -= (uint64_t)(K * K) * sizeof(double);
    }
    return DC_OK;
}

dc_status dc_hessian_spill_map(dc_hessian_acc *a, int fd, dc_err *err)
{
    if (a->map || !a->spill_end)
        return DC_OK;
    void *p = mmap(NULL, (size_t)a->spill_end, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return dc_err_set(err, DC_ERR_IO, "gptq: mapping the spill file (%llu bytes): %s", (unsigned long long)a->spill_end,
                          strerror(errno));
    a->map = p;
    a->map_len = (size_t)a->spill_end;
    return DC_OK;
}
