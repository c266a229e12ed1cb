#define _GNU_SOURCE
#include "dc_reshard.h"
#include "dc_par.h"
#include "dc_ckdir.h"
#include "dc_io.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One work unit: at most this many bytes of one output tensor (the gather buffer per thread). */
#define UNIT_BYTES ((uint64_t)16 << 20)

void dc_reshard_opts_init(dc_reshard_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mode = DC_RESHARD_SHARDS;
    o->mp = 1;
}

const char *dc_reshard_mode_name(dc_reshard_mode m)
{
    switch (m) {
    case DC_RESHARD_SHARDS: return "max-shard-size";
    case DC_RESHARD_MERGE_EXPERTS: return "merge-experts";
    case DC_RESHARD_SPLIT_EXPERTS: return "split-experts";
    case DC_RESHARD_MP: return "mp";
    case DC_RESHARD_FROM_MP: return "from-mp";
    }
    return "?";
}

static bool is_fp8(dc_dtype d) { return d == DC_DT_F8_E4M3 || d == DC_DT_F8_E5M2; }
static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Parses a decimal index at *p (no sign, no leading zeros, <= 1e9); advances *p. */
static bool parse_idx(const char **p, long *out)
{
    const char *s = *p;
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
        return false;
    long v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > 1000000000L)
            return false;
        s++;
    }
    *out = v;
    *p = s;
    return true;
}

/* The layer index of model.layers.N.*, -1 for other names. */
static long tensor_layer(const char *name)
{
    long l;
    const char *q = name;
    if (strncmp(q, "model.layers.", 13))
        return -1;
    q += 13;
    return parse_idx(&q, &l) && *q == '.' ? l : -1;
}

/* ---- tensor names -------------------------------------------------------------------------- */

/* model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight[_scale_inv] */
static bool parse_expert_name(const char *name, long *layer, long *expert, int *which, bool *is_scale)
{
    const char *p = name;
    if (strncmp(p, "model.layers.", 13))
        return false;
    p += 13;
    if (!parse_idx(&p, layer) || strncmp(p, ".mlp.experts.", 13))
        return false;
    p += 13;
    if (!parse_idx(&p, expert) || *p != '.')
        return false;
    p++;
    static const char *W[3] = {"gate_proj.weight", "up_proj.weight", "down_proj.weight"};
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(W[k]);
        if (!strncmp(p, W[k], n)) {
            if (!strcmp(p + n, ""))
                *is_scale = false;
            else if (!strcmp(p + n, "_scale_inv"))
                *is_scale = true;
            else
                return false;
            *which = k;
            return true;
        }
    }
    return false;
}

static const char *PROJ[3] = {"gate", "up", "down"};

/* Natural order: digit runs compare as numbers (experts.2 < experts.10). */
static int natcmp(const char *a, const char *b)
{
    const char *a0 = a, *b0 = b;
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            while (*a == '0' && a[1] >= '0' && a[1] <= '9')
                a++;
            while (*b == '0' && b[1] >= '0' && b[1] <= '9')
                b++;
            size_t la = 0, lb = 0;
            while (a[la] >= '0' && a[la] <= '9')
                la++;
            while (b[lb] >= '0' && b[lb] <= '9')
                lb++;
            if (la != lb)
                return la < lb ? -1 : 1;
            int c = memcmp(a, b, la);
            if (c)
                return c;
            a += la;
            b += lb;
        } else if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        else {
            a++;
            b++;
        }
    }
    if (*a || *b)
        return *a ? 1 : -1;
    return strcmp(a0, b0);
}

/* Output order: embeddings, layers 0..L (MTP layers last among them), final norm, lm_head, the rest. */
static void order_key(const char *n, int *grp, long *layer)
{
    const char *s = n;
    if (!strncmp(s, "model.", 6))
        s += 6;
    *layer = -1;
    if (!strncmp(s, "embed", 5))
        *grp = 0;
    else if (!strncmp(s, "layers.", 7)) {
        const char *p = s + 7;
        *grp = parse_idx(&p, layer) && *p == '.' ? 1 : 4;
    } else if (!strncmp(s, "norm.", 5))
        *grp = 2;
    else if (!strncmp(n, "lm_head.", 8) || !strncmp(n, "head.", 5))
        *grp = 3;
    else
        *grp = 4;
}

/* ---- convert.py's names (NOTES.md section 7) ------------------------------------------------- */

static const struct {
    const char *key, *new_key;
    int dim; /* -1: replicated */
} MP_MAP[] = {
    {"embed_tokens", "embed", 0},
    {"input_layernorm", "attn_norm", -1},
    {"post_attention_layernorm", "ffn_norm", -1},
    {"q_proj", "wq", 0},
    {"q_a_proj", "wq_a", -1},
    {"q_a_layernorm", "q_norm", -1},
    {"q_b_proj", "wq_b", 0},
    {"kv_a_proj_with_mqa", "wkv_a", -1},
    {"kv_a_layernorm", "kv_norm", -1},
    {"kv_b_proj", "wkv_b", 0},
    {"o_proj", "wo", 1},
    {"gate", "gate", -1},
    {"gate_proj", "w1", 0},
    {"down_proj", "w2", 1},
    {"up_proj", "w3", 0},
    {"norm", "norm", -1},
    {"lm_head", "head", 0},
    {"scale", "scale", -1},
    /* DeepSeek-V3.2's convert.py: the indexer is replicated on every rank */
    {"wq_b", "wq_b", -1},
    {"wk", "wk", -1},
    {"k_norm", "k_norm", -1},
    {"weights_proj", "weights_proj", -1},
};
#define N_MP_MAP (sizeof MP_MAP / sizeof MP_MAP[0])

/* Python's str.replace: every non-overlapping occurrence, left to right. malloc'd. */
static char *replace_all(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = s; (p = strstr(p, from)); p += fl)
        n++;
    size_t len = strlen(s) + n * tl + 1;
    char *out = malloc(len), *o = out;
    if (!out)
        return NULL;
    const char *p = s, *q;
    while ((q = strstr(p, from))) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, tl);
        o += tl;
        p = q + fl;
    }
    strcpy(o, p);
    return out;
}

/* Component k from the end (1 = the last) of a dotted name, as [*b, *e). */
static bool component_from_end(const char *s, int k, const char **b, const char **e)
{
    const char *end = s + strlen(s);
    for (int i = 1;; i++) {
        const char *beg = end;
        while (beg > s && beg[-1] != '.')
            beg--;
        if (i == k) {
            *b = beg;
            *e = end;
            return true;
        }
        if (beg == s)
            return false;
        end = beg - 1;
    }
}

typedef struct mp_info {
    char *name;  /* DeepSeek name (malloc'd) */
    int dim;     /* split dim, -1 replicated */
    bool routed; /* a routed expert: whole, on one rank */
    long expert;
} mp_info;

/* HF name -> convert.py's name, split dim and expert, exactly as convert.py computes them. */
static dc_status mp_map_name(const char *hf, mp_info *mi, dc_err *err)
{
    memset(mi, 0, sizeof *mi);
    mi->dim = -1;
    mi->expert = -1;
    const char *s = !strncmp(hf, "model.", 6) ? hf + 6 : hf;
    static const char *REP[4][2] = {
        {"self_attn", "attn"}, {"mlp", "ffn"}, {"weight_scale_inv", "scale"}, {"e_score_correction_bias", "bias"}};
    char *n = dc_strdup(s);
    for (int i = 0; n && i < 4; i++) {
        char *m = replace_all(n, REP[i][0], REP[i][1]);
        free(n);
        n = m;
    }
    if (!n)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    /* key = name.split(".")[-2] */
    const char *kb, *ke;
    if (!component_from_end(n, 2, &kb, &ke)) {
        free(n);
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "tensor %s: no module name (convert.py maps name.split('.')[-2]); not a DeepSeek HF checkpoint tensor",
                          hf);
    }
    char key[128];
    size_t kl = (size_t)(ke - kb);
    if (kl >= sizeof key)
        kl = sizeof key - 1;
    memcpy(key, kb, kl);
    key[kl] = 0;
    size_t mk = N_MP_MAP;
    for (size_t i = 0; i < N_MP_MAP; i++)
        if (!strcmp(key, MP_MAP[i].key))
            mk = i;
    if (mk == N_MP_MAP) {
        free(n);
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "tensor %s: module '%s' is not in convert.py's name mapping (embed_tokens, *_proj, *norm, gate, "
                          "lm_head, ...)",
                          hf, key);
    }
    char *m = replace_all(n, key, MP_MAP[mk].new_key);
    free(n);
    if (!m)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    mi->name = m;
    mi->dim = MP_MAP[mk].dim;
    if (strstr(m, "experts") && !strstr(m, "shared_experts")) {
        /* idx = int(name.split(".")[-3]) */
        const char *ib, *ie;
        long idx = 0;
        bool ok = component_from_end(m, 3, &ib, &ie) && ie > ib && ie - ib <= 9;
        for (const char *q = ib; ok && q < ie; q++) {
            ok = *q >= '0' && *q <= '9';
            idx = idx * 10 + (*q - '0');
        }
        if (!ok) {
            dc_status st = dc_err_set(err, DC_ERR_UNSUPPORTED,
                                      "tensor %s: a routed expert tensor without an expert index where convert.py reads "
                                      "it (name.split('.')[-3])",
                                      hf);
            free(m);
            mi->name = NULL;
            return st;
        }
        mi->routed = true;
        mi->expert = idx;
    }
    return DC_OK;
}

/* DeepSeek name -> HF name (component by component), checked by mapping it forward again. */
static dc_status mp_unmap_name(const char *ds, char **hf, dc_err *err)
{
    static const char *INV[][2] = {
        {"embed", "embed_tokens"}, {"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"},
        {"wq", "q_proj"}, {"wq_a", "q_a_proj"}, {"q_norm", "q_a_layernorm"}, {"wq_b", "q_b_proj"},
        {"wkv_a", "kv_a_proj_with_mqa"}, {"kv_norm", "kv_a_layernorm"}, {"wkv_b", "kv_b_proj"}, {"wo", "o_proj"},
        {"w1", "gate_proj"}, {"w2", "down_proj"}, {"w3", "up_proj"}, {"head", "lm_head"}, {"attn", "self_attn"},
        {"ffn", "mlp"},
    };
    *hf = NULL;
    size_t cap = strlen(ds) * 3 + 64;
    char *out = malloc(cap);
    char *tmp = dc_strdup(ds);
    if (!out || !tmp) {
        free(out);
        free(tmp);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    out[0] = 0;
    if (strncmp(ds, "head.", 5))
        strcat(out, "model.");
    char *save = NULL;
    bool first = true, indexer = false; /* V3.2's indexer keeps its module names (wq_b, wk, k_norm.bias) */
    for (char *c = strtok_r(tmp, ".", &save); c; c = strtok_r(NULL, ".", &save)) {
        const char *r = c;
        bool is_last = !save || !*save;
        for (size_t i = 0; !indexer && i < sizeof INV / sizeof INV[0]; i++)
            if (!strcmp(c, INV[i][0]))
                r = INV[i][1];
        if (is_last && !strcmp(c, "scale"))
            r = "weight_scale_inv";
        if (is_last && !indexer && !strcmp(c, "bias"))
            r = "e_score_correction_bias";
        if (!strcmp(c, "indexer"))
            indexer = true;
        if (!first)
            strcat(out, ".");
        strcat(out, r);
        first = false;
    }
    free(tmp);
    mp_info mi;
    dc_status st = mp_map_name(out, &mi, err);
    if (st == DC_OK && strcmp(mi.name, ds))
        st = DC_ERR_UNSUPPORTED;
    if (st) {
        free(mi.name);
        dc_status r = dc_err_set(err, DC_ERR_UNSUPPORTED,
                                 "tensor %s is not a name convert.py writes (no HF name maps to it)", ds);
        free(out);
        return r;
    }
    free(mi.name);
    *hf = out;
    return DC_OK;
}

/* ---- plan ---------------------------------------------------------------------------------- */

/* count runs of len bytes: from src->data + src_off + k * src_stride to dst_off + k * dst_stride
 * of the output tensor */
typedef struct seg {
    const dc_tensor *src;
    uint64_t src_off, src_stride, dst_off, dst_stride, len, count;
} seg;

typedef struct otensor {
    char *name;
    dc_dtype dtype;
    int ndim;
    int64_t shape[DC_MAX_DIMS];
    uint64_t nbytes;
    size_t seg0, nseg;
    const char *op;
    const char *src_name; /* first source (for the plan) */
    const char *src_file;
    int n_src;
    int file;  /* output file */
    size_t wi; /* index in that file's writer */
    int grp;
    long layer;
} otensor;

typedef struct ofile {
    char *name;
    dc_stw *w;
    char *part_dir;
} ofile;

typedef struct plan {
    otensor *t;
    size_t n, cap;
    seg *s;
    size_t ns, cap_s;
    ofile *f;
    int nf;
    bool hf;        /* HF shards (+ index); else convert.py's rank files */
    const char *in_desc;
} plan;

static void plan_free(plan *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->t[i].name);
    free(p->t);
    free(p->s);
    for (int i = 0; i < p->nf; i++) {
        dc_stw_free(p->f[i].w);
        free(p->f[i].name);
        free(p->f[i].part_dir);
    }
    free(p->f);
    memset(p, 0, sizeof *p);
}

static dc_status add_out(plan *p, const char *name, dc_dtype dt, int ndim, const int64_t *shape, const char *op,
                         const dc_tensor *first_src, const char *src_file, int n_src, int file, dc_err *err)
{
    if (ndim < 0 || ndim > DC_MAX_DIMS)
        return dc_err_set(err, DC_ERR_INTERNAL, "tensor %s: %d dims", name, ndim);
    if (!dc_grow((void **)&p->t, &p->cap, p->n + 1, sizeof *p->t))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    otensor *o = &p->t[p->n];
    memset(o, 0, sizeof *o);
    uint64_t nb = (uint64_t)dc_dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || !dc_mul_u64(nb, (uint64_t)shape[i], &nb))
            return dc_err_set(err, DC_ERR_MODEL, "tensor %s: shape overflows", name);
        o->shape[i] = shape[i];
    }
    o->name = dc_strdup(name);
    if (!o->name)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    o->dtype = dt;
    o->ndim = ndim;
    o->nbytes = nb;
    o->seg0 = p->ns;
    o->op = op;
    o->src_name = first_src ? first_src->name : "";
    o->src_file = src_file ? src_file : "";
    o->n_src = n_src;
    o->file = file;
    order_key(o->name, &o->grp, &o->layer);
    p->n++;
    return DC_OK;
}

/* Adds a segment to the last output tensor; checks both byte ranges. */
static dc_status add_seg(plan *p, const dc_tensor *src, uint64_t src_off, uint64_t src_stride, uint64_t dst_off,
                         uint64_t dst_stride, uint64_t len, uint64_t count, dc_err *err)
{
    otensor *o = &p->t[p->n - 1];
    if (count == 0 || len == 0)
        return DC_OK;
    uint64_t se, de;
    bool ok = dc_mul_u64(count - 1, src_stride, &se) && dc_add_u64(se, src_off, &se) && dc_add_u64(se, len, &se) &&
              dc_mul_u64(count - 1, dst_stride, &de) && dc_add_u64(de, dst_off, &de) && dc_add_u64(de, len, &de);
    if (!ok || se > src->nbytes || de > o->nbytes || (count > 1 && (src_stride < len || dst_stride < len)))
        return dc_err_set(err, DC_ERR_INTERNAL, "plan for %s: a copy from %s falls outside a tensor", o->name, src->name);
    if (!dc_grow((void **)&p->s, &p->cap_s, p->ns + 1, sizeof *p->s))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    p->s[p->ns++] = (seg){src, src_off, src_stride, dst_off, dst_stride, len, count};
    o->nseg++;
    return DC_OK;
}

static dc_status add_copy(plan *p, const dc_tensor *t, const char *name, const char *file_name, int file, dc_err *err)
{
    dc_status st = add_out(p, name ? name : t->name, t->dtype, t->ndim, t->shape, "copy", t, file_name, 1, file, err);
    return st ? st : add_seg(p, t, 0, 0, 0, 0, t->nbytes, 1, err);
}

/* Bytes of dims [d+1, ndim) and the product of dims [0, d). */
static void dim_split(const dc_tensor *t, int d, uint64_t *outer, uint64_t *inner)
{
    uint64_t o = 1, in = (uint64_t)dc_dtype_size(t->dtype);
    for (int i = 0; i < d; i++)
        o *= (uint64_t)t->shape[i];
    for (int i = d + 1; i < t->ndim; i++)
        in *= (uint64_t)t->shape[i];
    *outer = o;
    *inner = in;
}

/* ---- input: the checkpoint's config and block size ------------------------------------------ */

typedef struct input {
    dc_ckpt *ck;            /* all modes but from-mp */
    dc_st_file *ranks;      /* from-mp */
    int n_ranks;
    dc_config cfg;
    char *config_src;       /* the config.json to copy */
    char *dir;
    uint64_t max_file;
    int br, bc;
} input;

static const char *src_file(const input *in, const dc_tensor *t)
{
    if (in->ck)
        return dc_ckpt_file_name(in->ck, t);
    return dc_path_base(in->ranks[t->file].path);
}

/* ---- merge / split experts ------------------------------------------------------------------- */

typedef struct eitem {
    long layer, expert;
    int which;
    bool scale;
    const dc_tensor *t;
} eitem;

static int cmp_eitem(const void *x, const void *y)
{
    const eitem *a = x, *b = y;
    if (a->layer != b->layer)
        return a->layer < b->layer ? -1 : 1;
    if (a->expert != b->expert)
        return a->expert < b->expert ? -1 : 1;
    if (a->which != b->which)
        return a->which < b->which ? -1 : 1;
    return (int)a->scale - (int)b->scale;
}

static bool same_shape2(const dc_tensor *t, int64_t d0, int64_t d1)
{
    return t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1;
}

/* One layer's experts (items [a, b) of the sorted list) -> the fused tensors. */
static dc_status merge_layer(plan *p, const input *in, const eitem *it, size_t a, size_t b, dc_err *err)
{
    const dc_config *c = &in->cfg;
    long L = it[a].layer;
    int E = c->n_experts_routed;
    size_t n = (size_t)E * 3;
    const dc_tensor **w = calloc(n ? n : 1, sizeof *w), **s = calloc(n ? n : 1, sizeof *s);
    dc_status st = DC_OK;
    char b1[64], b2[64];
    if (!w || !s) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = a; i < b; i++) {
        if (it[i].expert >= E) {
            st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s: expert %ld, but the config has n_routed_experts %d",
                            src_file(in, it[i].t), it[i].t->name, it[i].expert, E);
            goto done;
        }
        (it[i].scale ? s : w)[it[i].expert * 3 + it[i].which] = it[i].t;
    }
    for (int e = 0; e < E; e++)
        for (int k = 0; k < 3; k++) {
            const dc_tensor *t = w[e * 3 + k];
            if (!t) {
                st = dc_err_set(err, DC_ERR_MODEL,
                                "layer %ld: expert %d has no %s_proj (model.layers.%ld.mlp.experts.%d.%s_proj.weight is "
                                "missing; n_routed_experts %d); cannot merge",
                                L, e, PROJ[k], L, e, PROJ[k], E);
                goto done;
            }
            const dc_tensor *sc = s[e * 3 + k];
            if (!is_fp8(t->dtype) && sc) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s has dtype %s but also a block scale %s",
                                src_file(in, t), t->name, dc_dtype_name(t->dtype), sc->name);
                goto done;
            }
            dc_weight wt;
            if ((st = dc_weight_init(&wt, t, sc, in->br, in->bc, src_file(in, t), err)) != DC_OK)
                goto done;
        }
    /* every expert like expert 0 */
    const dc_tensor *g0 = w[0], *d0 = w[2];
    if (g0->ndim != 2 || d0->ndim != 2) {
        st = dc_err_set(err, DC_ERR_MODEL, "%s: expert tensor %s has %d dims; expected 2", src_file(in, g0), g0->name,
                        g0->ndim);
        goto done;
    }
    int64_t I = g0->shape[0], H = g0->shape[1];
    for (int e = 0; e < E; e++)
        for (int k = 0; k < 3; k++) {
            const dc_tensor *t = w[e * 3 + k], *sc = s[e * 3 + k], *ref = k == 2 ? d0 : g0;
            int64_t r = k == 2 ? H : I, cc = k == 2 ? I : H;
            if (!same_shape2(t, r, cc) || t->dtype != g0->dtype) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: %s is %s %s; expected %s %lldx%lld like %s", src_file(in, t),
                                t->name, dc_dtype_name(t->dtype), dc_shape_str(t->ndim, t->shape, b1, sizeof b1),
                                dc_dtype_name(g0->dtype), (long long)r, (long long)cc, ref->name);
                goto done;
            }
            const dc_tensor *sref = s[k == 2 ? 2 : 0];
            if (sc && sc->dtype != sref->dtype) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: scale %s is %s but %s is %s; cannot stack them", src_file(in, sc),
                                sc->name, dc_dtype_name(sc->dtype), sref->name, dc_dtype_name(sref->dtype));
                goto done;
            }
        }
    (void)b2;
    char name[256];
    uint64_t gb = g0->nbytes, db = d0->nbytes;
    const char *f0 = src_file(in, g0);
    snprintf(name, sizeof name, "model.layers.%ld.mlp.experts.gate_up_proj", L);
    int64_t gsh[3] = {E, 2 * I, H};
    if ((st = add_out(p, name, g0->dtype, 3, gsh, "stack", g0, f0, 2 * E, 0, err)) != DC_OK)
        goto done;
    for (int e = 0; e < E && !st; e++) {
        st = add_seg(p, w[e * 3 + 0], 0, 0, (uint64_t)e * 2 * gb, 0, gb, 1, err);
        if (!st)
            st = add_seg(p, w[e * 3 + 1], 0, 0, (uint64_t)e * 2 * gb + gb, 0, gb, 1, err);
    }
    if (st)
        goto done;
    if (s[0]) {
        const dc_tensor *s0 = s[0];
        uint64_t sb = s0->nbytes;
        snprintf(name, sizeof name, "model.layers.%ld.mlp.experts.gate_up_proj_scale_inv", L);
        int64_t ssh[3] = {E, 2 * s0->shape[0], s0->shape[1]};
        if ((st = add_out(p, name, s0->dtype, 3, ssh, "stack", s0, src_file(in, s0), 2 * E, 0, err)) != DC_OK)
            goto done;
        for (int e = 0; e < E && !st; e++) {
            st = add_seg(p, s[e * 3 + 0], 0, 0, (uint64_t)e * 2 * sb, 0, sb, 1, err);
            if (!st)
                st = add_seg(p, s[e * 3 + 1], 0, 0, (uint64_t)e * 2 * sb + sb, 0, sb, 1, err);
        }
        if (st)
            goto done;
    }
    snprintf(name, sizeof name, "model.layers.%ld.mlp.experts.down_proj", L);
    int64_t dsh[3] = {E, H, I};
    if ((st = add_out(p, name, d0->dtype, 3, dsh, "stack", d0, src_file(in, d0), E, 0, err)) != DC_OK)
        goto done;
    for (int e = 0; e < E && !st; e++)
        st = add_seg(p, w[e * 3 + 2], 0, 0, (uint64_t)e * db, 0, db, 1, err);
    if (st)
        goto done;
    if (s[2]) {
        const dc_tensor *s0 = s[2];
        uint64_t sb = s0->nbytes;
        snprintf(name, sizeof name, "model.layers.%ld.mlp.experts.down_proj_scale_inv", L);
        int64_t ssh[3] = {E, s0->shape[0], s0->shape[1]};
        if ((st = add_out(p, name, s0->dtype, 3, ssh, "stack", s0, src_file(in, s0), E, 0, err)) != DC_OK)
            goto done;
        for (int e = 0; e < E && !st; e++)
            st = add_seg(p, s[e * 3 + 2], 0, 0, (uint64_t)e * sb, 0, sb, 1, err);
    }
done:
    free(w);
    free(s);
    return st;
}

static dc_status plan_merge(plan *p, const input *in, dc_reshard_stats *stats, dc_err *err)
{
    const dc_ckpt *ck = in->ck;
    eitem *it = malloc((ck->n_tensors + 1) * sizeof *it);
    size_t n = 0;
    if (!it)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    dc_status st = DC_OK;
    for (size_t i = 0; i < ck->n_tensors && !st; i++) {
        const dc_tensor *t = ck->tensors[i];
        eitem e;
        if (dc_fused_expert_name(t->name, NULL, NULL, NULL))
            st = dc_err_set(err, DC_ERR_UNSUPPORTED,
                            "%s: tensor %s: the input already stores its experts fused; nothing to merge",
                            dc_ckpt_file_name(ck, t), t->name);
        else if (parse_expert_name(t->name, &e.layer, &e.expert, &e.which, &e.scale)) {
            e.t = t;
            it[n++] = e;
        } else
            st = add_copy(p, t, NULL, dc_ckpt_file_name(ck, t), 0, err);
    }
    if (!st && n == 0)
        st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: no routed expert tensors (model.layers.L.mlp.experts.E.*) to merge",
                        ck->path);
    if (!st)
        qsort(it, n, sizeof *it, cmp_eitem);
    /* a MoE layer that is present but has no experts at all */
    const dc_config *c = &in->cfg;
    for (int L = 0; !st && L < c->n_layers + c->n_mtp_layers; L++) {
        if (!dc_config_layer_is_moe(c, L))
            continue;
        bool present = false, has = false;
        for (size_t i = 0; i < ck->n_tensors && !present; i++)
            present = tensor_layer(ck->tensors[i]->name) == L;
        for (size_t i = 0; i < n && !has; i++)
            has = it[i].layer == L;
        if (present && !has)
            st = dc_err_set(err, DC_ERR_MODEL,
                            "%s: layer %d is a MoE layer but has no routed experts (model.layers.%d.mlp.experts.0.gate_proj.weight "
                            "is missing); cannot merge",
                            ck->path, L, L);
    }
    if (!st) {
        for (size_t a = 0, b; a < n && !st; a = b) {
            for (b = a; b < n && it[b].layer == it[a].layer; b++)
                ;
            st = merge_layer(p, in, it, a, b, err);
        }
    }
    free(it);
    (void)stats;
    return st;
}

typedef struct fitem {
    long layer;
    const dc_tensor *t[2], *s[2]; /* gate_up, down and their scales */
} fitem;

static int cmp_long(const void *x, const void *y)
{
    long a = *(const long *)x, b = *(const long *)y;
    return a < b ? -1 : a > b;
}

static dc_status split_layer(plan *p, const input *in, long L, dc_err *err)
{
    const dc_ckpt *ck = in->ck;
    const dc_config *c = &in->cfg;
    char n[2][128], sn[2][160], b1[64], b2[64];
    const dc_tensor *t[2], *s[2];
    for (int k = 0; k < 2; k++) {
        snprintf(n[k], sizeof n[k], "model.layers.%ld.mlp.experts.%s", L, k ? "down_proj" : "gate_up_proj");
        snprintf(sn[k], sizeof sn[k], "model.layers.%ld.mlp.experts.%s_scale_inv", L, k ? "down_proj" : "gate_up_proj");
        t[k] = dc_ckpt_find(ck, n[k]);
        s[k] = dc_ckpt_find(ck, sn[k]);
    }
    for (int k = 0; k < 2; k++) {
        if (!t[k])
            return dc_err_set(err, DC_ERR_MODEL, "%s: layer %ld has %s but no %s; cannot split", ck->path, L,
                              t[1 - k] ? t[1 - k]->name : sn[1 - k], n[k]);
        if (t[k]->ndim != 3)
            return dc_err_set(err, DC_ERR_MODEL, "%s: fused expert tensor %s has shape %s; expected 3 dims [E, rows, cols]",
                              dc_ckpt_file_name(ck, t[k]), n[k], dc_shape_str(t[k]->ndim, t[k]->shape, b1, sizeof b1));
        if (is_fp8(t[k]->dtype) && !s[k])
            return dc_err_set(err, DC_ERR_MODEL, "%s: FP8 tensor %s has no scale tensor %s", dc_ckpt_file_name(ck, t[k]),
                              n[k], sn[k]);
        if (!is_fp8(t[k]->dtype) && s[k])
            return dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s has dtype %s but also a block scale %s",
                              dc_ckpt_file_name(ck, t[k]), n[k], dc_dtype_name(t[k]->dtype), sn[k]);
    }
    int64_t E = t[0]->shape[0], I2 = t[0]->shape[1], H = t[0]->shape[2], I = I2 / 2;
    if (E != c->n_experts_routed)
        return dc_err_set(err, DC_ERR_MODEL, "%s: %s holds %lld experts, but the config has n_routed_experts %d",
                          dc_ckpt_file_name(ck, t[0]), n[0], (long long)E, c->n_experts_routed);
    if (I2 % 2)
        return dc_err_set(err, DC_ERR_MODEL, "%s: %s has %lld rows per expert, not gate + up of equal size",
                          dc_ckpt_file_name(ck, t[0]), n[0], (long long)I2);
    if (t[1]->shape[0] != E || t[1]->shape[1] != H || t[1]->shape[2] != I || t[1]->dtype != t[0]->dtype)
        return dc_err_set(err, DC_ERR_MODEL, "%s: %s is %s %s; with %s %s it should be %s %lldx%lldx%lld",
                          dc_ckpt_file_name(ck, t[1]), n[1], dc_dtype_name(t[1]->dtype),
                          dc_shape_str(3, t[1]->shape, b1, sizeof b1), n[0], dc_shape_str(3, t[0]->shape, b2, sizeof b2),
                          dc_dtype_name(t[0]->dtype), (long long)E, (long long)H, (long long)I);
    int64_t srow[2] = {cdiv(I, in->br), cdiv(H, in->br)}, scol[2] = {cdiv(H, in->bc), cdiv(I, in->bc)};
    if (s[0]) {
        for (int k = 0; k < 2; k++) {
            int64_t want1 = k ? srow[1] : 2 * srow[0];
            if (s[k]->dtype != DC_DT_F32 && s[k]->dtype != DC_DT_BF16 && s[k]->dtype != DC_DT_F8_E8M0)
                return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: scale %s has dtype %s; expected F32, BF16 or F8_E8M0",
                                  dc_ckpt_file_name(ck, s[k]), sn[k], dc_dtype_name(s[k]->dtype));
            if (s[k]->ndim == 3 && s[k]->shape[0] == E && k == 0 && s[k]->shape[1] == cdiv(2 * I, in->br) &&
                s[k]->shape[1] != want1 && s[k]->shape[2] == scol[0])
                return dc_err_set(err, DC_ERR_UNSUPPORTED,
                                  "%s: scale %s is %s: one block grid over gate and up together (I = %lld is not a "
                                  "multiple of %d, so blocks straddle gate and up); it cannot be split into per-expert "
                                  "scales exactly",
                                  dc_ckpt_file_name(ck, s[k]), sn[k], dc_shape_str(3, s[k]->shape, b1, sizeof b1),
                                  (long long)I, in->br);
            if (s[k]->ndim != 3 || s[k]->shape[0] != E || s[k]->shape[1] != want1 || s[k]->shape[2] != scol[k])
                return dc_err_set(err, DC_ERR_MODEL,
                                  "%s: scale %s has shape %s; %s %s with %dx%d blocks needs %lldx%lldx%lld",
                                  dc_ckpt_file_name(ck, s[k]), sn[k], dc_shape_str(s[k]->ndim, s[k]->shape, b1, sizeof b1),
                                  n[k], dc_shape_str(3, t[k]->shape, b2, sizeof b2), in->br, in->bc, (long long)E,
                                  (long long)want1, (long long)scol[k]);
        }
    }
    uint64_t esz = (uint64_t)dc_dtype_size(t[0]->dtype);
    uint64_t pb = (uint64_t)I * (uint64_t)H * esz; /* one projection of one expert */
    for (int64_t e = 0; e < E; e++)
        for (int k = 0; k < 3; k++) {
            char on[256];
            const dc_tensor *src = t[k == 2];
            uint64_t off = k == 2 ? (uint64_t)e * pb : (uint64_t)e * 2 * pb + (uint64_t)k * pb;
            int64_t sh[2] = {k == 2 ? H : I, k == 2 ? I : H};
            snprintf(on, sizeof on, "model.layers.%ld.mlp.experts.%lld.%s_proj.weight", L, (long long)e, PROJ[k]);
            dc_status st = add_out(p, on, src->dtype, 2, sh, "slice", src, dc_ckpt_file_name(ck, src), 1, 0, err);
            if (!st)
                st = add_seg(p, src, off, 0, 0, 0, pb, 1, err);
            if (st)
                return st;
            if (!s[0])
                continue;
            const dc_tensor *ss = s[k == 2];
            int kk = k == 2;
            uint64_t sesz = (uint64_t)dc_dtype_size(ss->dtype);
            uint64_t sb = (uint64_t)srow[kk] * (uint64_t)scol[kk] * sesz;
            uint64_t soff = k == 2 ? (uint64_t)e * sb : (uint64_t)e * 2 * sb + (uint64_t)k * sb;
            int64_t ssh[2] = {srow[kk], scol[kk]};
            strcat(on, "_scale_inv");
            st = add_out(p, on, ss->dtype, 2, ssh, "slice", ss, dc_ckpt_file_name(ck, ss), 1, 0, err);
            if (!st)
                st = add_seg(p, ss, soff, 0, 0, 0, sb, 1, err);
            if (st)
                return st;
        }
    return DC_OK;
}

static dc_status plan_split(plan *p, const input *in, dc_reshard_stats *stats, dc_err *err)
{
    const dc_ckpt *ck = in->ck;
    long *layers = malloc((ck->n_tensors + 1) * sizeof *layers);
    size_t nl = 0;
    if (!layers)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    dc_status st = DC_OK;
    for (size_t i = 0; i < ck->n_tensors; i++) {
        int L, w;
        bool sc;
        if (dc_fused_expert_name(ck->tensors[i]->name, &L, &w, &sc))
            layers[nl++] = L;
    }
    if (nl == 0)
        st = dc_err_set(err, DC_ERR_UNSUPPORTED,
                        "%s: no fused expert tensors (model.layers.L.mlp.experts.gate_up_proj / down_proj) to split",
                        ck->path);
    qsort(layers, nl, sizeof *layers, cmp_long);
    for (size_t i = 0; i < ck->n_tensors && !st; i++) {
        const dc_tensor *t = ck->tensors[i];
        eitem e;
        if (dc_fused_expert_name(t->name, NULL, NULL, NULL))
            continue;
        if (parse_expert_name(t->name, &e.layer, &e.expert, &e.which, &e.scale) &&
            bsearch(&e.layer, layers, nl, sizeof *layers, cmp_long))
            st = dc_err_set(err, DC_ERR_MODEL,
                            "%s: layer %ld has both fused experts and the per-expert tensor %s; cannot split",
                            dc_ckpt_file_name(ck, t), e.layer, t->name);
        else
            st = add_copy(p, t, NULL, dc_ckpt_file_name(ck, t), 0, err);
    }
    for (size_t i = 0; i < nl && !st; i++)
        if (i == 0 || layers[i] != layers[i - 1])
            st = split_layer(p, in, layers[i], err);
    free(layers);
    (void)stats;
    return st;
}

static dc_status plan_shards(plan *p, const input *in, dc_err *err)
{
    dc_status st = DC_OK;
    for (size_t i = 0; i < in->ck->n_tensors && !st; i++)
        st = add_copy(p, in->ck->tensors[i], NULL, dc_ckpt_file_name(in->ck, in->ck->tensors[i]), 0, err);
    return st;
}

/* ---- model parallel (convert.py) ------------------------------------------------------------ */

/* Can FP8 weight t (with a block scale) be split n ways on dim d at block boundaries? */
static dc_status check_fp8_split(const input *in, const dc_tensor *t, int d, int n, dc_err *err)
{
    if (n == 1 || !is_fp8(t->dtype) || t->ndim != 2)
        return DC_OK;
    int blk = d == 0 ? in->br : in->bc;
    int64_t part = t->shape[d] / n;
    if (part % blk)
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: FP8 weight %s [%lld, %lld]: each of the %d ranks gets %lld %s on dim %d, not a multiple of "
                          "the %d-wide scale block, so its weight_scale_inv cannot be split with it",
                          src_file(in, t), t->name, (long long)t->shape[0], (long long)t->shape[1], n, (long long)part,
                          d == 0 ? "rows" : "columns", d, blk);
    return DC_OK;
}

static dc_status plan_mp(plan *p, const input *in, int N, dc_reshard_stats *stats, dc_err *err)
{
    const dc_ckpt *ck = in->ck;
    const dc_config *c = &in->cfg;
    int E = c->n_experts_routed;
    if (E > 0 && E % N)
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: n_routed_experts %d is not divisible by --mp %d (convert.py gives each rank E / mp experts)",
                          ck->path, E, N);
    int n_local = E / N;
    dc_status st = DC_OK;
    /* every routed expert of the main layers present (convert.py would silently drop a missing one) */
    for (int L = 0; L < c->n_layers && !st; L++) {
        if (!dc_config_layer_is_moe(c, L))
            continue;
        for (int e = 0; e < E && !st; e++)
            for (int k = 0; k < 3 && !st; k++) {
                char n[256];
                snprintf(n, sizeof n, "model.layers.%d.mlp.experts.%d.%s_proj.weight", L, e, PROJ[k]);
                if (!dc_ckpt_find(ck, n)) {
                    char f[256];
                    snprintf(f, sizeof f, "model.layers.%d.mlp.experts.gate_up_proj", L);
                    if (dc_ckpt_find(ck, f))
                        st = dc_err_set(err, DC_ERR_UNSUPPORTED,
                                        "%s: layer %d stores its experts fused (%s); run 'deepcast reshard "
                                        "--split-experts' first",
                                        ck->path, L, f);
                    else
                        st = dc_err_set(err, DC_ERR_MODEL, "%s: missing routed expert tensor %s (n_routed_experts %d)",
                                        ck->path, n, E);
                }
            }
    }
    for (size_t i = 0; i < ck->n_tensors && !st; i++) {
        const dc_tensor *t = ck->tensors[i];
        const char *fn = dc_ckpt_file_name(ck, t);
        if (tensor_layer(t->name) >= c->n_layers) {
            stats->n_dropped++; /* the MTP layers: convert.py drops them */
            continue;
        }
        int fl, fw;
        bool fs;
        if (dc_fused_expert_name(t->name, &fl, &fw, &fs)) {
            st = dc_err_set(err, DC_ERR_UNSUPPORTED,
                            "%s: tensor %s: fused experts are not convert.py's input layout; run 'deepcast reshard "
                            "--split-experts' first",
                            fn, t->name);
            break;
        }
        mp_info mi;
        if ((st = mp_map_name(t->name, &mi, err)) != DC_OK)
            break;
        if (mi.routed) {
            if (mi.expert >= E)
                st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s: expert %ld, but the config has n_routed_experts %d", fn,
                                t->name, mi.expert, E);
            else
                st = add_copy(p, t, mi.name, fn, (int)(mi.expert / n_local), err);
        } else if (mi.dim < 0) {
            for (int r = 0; r < N && !st; r++)
                st = add_copy(p, t, mi.name, fn, r, err);
        } else {
            int d = mi.dim;
            char b1[64];
            if (t->ndim <= d)
                st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s has shape %s; convert.py splits it on dim %d", fn,
                                t->name, dc_shape_str(t->ndim, t->shape, b1, sizeof b1), d);
            else if (t->shape[d] % N)
                st = dc_err_set(err, DC_ERR_UNSUPPORTED,
                                "%s: tensor %s [%s]: dim %d (%lld) is not divisible by --mp %d (convert.py splits %s on "
                                "dim %d)",
                                fn, t->name, dc_shape_str(t->ndim, t->shape, b1, sizeof b1), d, (long long)t->shape[d], N,
                                mi.name, d);
            else
                st = check_fp8_split(in, t, d, N, err);
            uint64_t outer, inner;
            dim_split(t, d, &outer, &inner);
            int64_t sh[DC_MAX_DIMS];
            memcpy(sh, t->shape, sizeof sh);
            if (!st)
                sh[d] = t->shape[d] / N;
            uint64_t run = (uint64_t)sh[d] * inner;
            for (int r = 0; r < N && !st; r++) {
                st = add_out(p, mi.name, t->dtype, t->ndim, sh, "split", t, fn, 1, r, err);
                if (!st)
                    st = add_seg(p, t, (uint64_t)r * run, (uint64_t)t->shape[d] * inner, 0, run, run, outer, err);
            }
        }
        free(mi.name);
    }
    return st;
}

/* ---- from model parallel -------------------------------------------------------------------- */

typedef struct group {
    char *hf;
    mp_info mi;
    const dc_tensor **r; /* per rank */
} group;

static dc_status plan_from_mp(plan *p, const input *in, dc_err *err)
{
    const dc_config *c = &in->cfg;
    int N = in->n_ranks, E = c->n_experts_routed;
    if (E > 0 && E % N)
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: n_routed_experts %d is not divisible by the %d ranks; not convert.py's output for this config",
                          in->dir, E, N);
    int n_local = E / N;
    group *g = NULL;
    size_t ng = 0, cap = 0;
    dc_strmap by = {0};
    dc_status st = DC_OK;
    char b1[64], b2[64];
    for (int r = 0; r < N && !st; r++) {
        const dc_st_file *f = &in->ranks[r];
        for (size_t i = 0; i < f->n_tensors && !st; i++) {
            const dc_tensor *t = &f->tensors[i];
            char *hf;
            if ((st = mp_unmap_name(t->name, &hf, err)) != DC_OK) {
                dc_err_prefix(err, "%s", dc_path_base(f->path));
                break;
            }
            int64_t gi;
            if (!dc_strmap_get(&by, hf, &gi)) {
                if (!dc_grow((void **)&g, &cap, ng + 1, sizeof *g)) {
                    free(hf);
                    st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                    break;
                }
                memset(&g[ng], 0, sizeof g[ng]);
                g[ng].hf = hf;
                g[ng].r = calloc((size_t)N, sizeof *g[ng].r);
                if (!g[ng].r || (st = mp_map_name(hf, &g[ng].mi, err)) != DC_OK) {
                    if (!st)
                        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                    ng++;
                    break;
                }
                gi = (int64_t)ng++;
                if (dc_strmap_put(&by, g[gi].hf, gi) < 0) {
                    st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                    break;
                }
            } else
                free(hf);
            g[gi].r[r] = t;
        }
    }
    /* each HF tensor from its ranks */
    for (size_t i = 0; i < ng && !st; i++) {
        group *G = &g[i];
        const dc_tensor *t0 = NULL;
        int have = 0, first = -1;
        for (int r = 0; r < N; r++)
            if (G->r[r]) {
                have++;
                if (first < 0)
                    first = r;
            }
        t0 = G->r[first];
        const char *fn = dc_path_base(in->ranks[first].path);
        long layer = tensor_layer(G->hf);
        if (layer >= c->n_layers) {
            st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s belongs to layer %ld, but the config has num_hidden_layers %d",
                            fn, t0->name, layer, c->n_layers);
            break;
        }
        if (G->mi.routed) {
            int want = n_local ? (int)(G->mi.expert / n_local) : -1;
            if (G->mi.expert >= E)
                st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s: expert %ld, but the config has n_routed_experts %d", fn,
                                t0->name, G->mi.expert, E);
            else if (have != 1 || !G->r[want])
                st = dc_err_set(err, DC_ERR_MODEL,
                                "%s: routed expert tensor %s is in %d rank file(s), first %s; convert.py puts expert %ld "
                                "in rank %d only",
                                in->dir, t0->name, have, fn, G->mi.expert, want);
            else
                st = add_copy(p, t0, G->hf, fn, 0, err);
            continue;
        }
        if (have != N) {
            int miss = 0;
            while (G->r[miss])
                miss++;
            st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s is in %s but missing from %s (every rank holds it)", in->dir,
                            t0->name, fn, dc_path_base(in->ranks[miss].path));
            break;
        }
        for (int r = 1; r < N && !st; r++)
            if (G->r[r]->dtype != t0->dtype || G->r[r]->ndim != t0->ndim ||
                memcmp(G->r[r]->shape, t0->shape, sizeof(int64_t) * (size_t)t0->ndim))
                st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s is %s %s in %s but %s %s in %s", in->dir, t0->name,
                                dc_dtype_name(t0->dtype), dc_shape_str(t0->ndim, t0->shape, b1, sizeof b1), fn,
                                dc_dtype_name(G->r[r]->dtype), dc_shape_str(G->r[r]->ndim, G->r[r]->shape, b2, sizeof b2),
                                dc_path_base(in->ranks[r].path));
        if (st)
            break;
        if (G->mi.dim < 0) {
            st = add_copy(p, t0, G->hf, fn, 0, err);
            continue;
        }
        int d = G->mi.dim;
        if (t0->ndim <= d) {
            st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s has shape %s; convert.py splits it on dim %d", fn, t0->name,
                            dc_shape_str(t0->ndim, t0->shape, b1, sizeof b1), d);
            break;
        }
        int64_t sh[DC_MAX_DIMS];
        memcpy(sh, t0->shape, sizeof sh);
        if (__builtin_mul_overflow(sh[d], (int64_t)N, &sh[d])) {
            st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s: shape overflows", fn, t0->name);
            break;
        }
        uint64_t outer, inner;
        dim_split(t0, d, &outer, &inner);
        uint64_t run = (uint64_t)t0->shape[d] * inner;
        st = add_out(p, G->hf, t0->dtype, t0->ndim, sh, "concat", t0, fn, N, 0, err);
        for (int r = 0; r < N && !st; r++)
            st = add_seg(p, G->r[r], 0, run, (uint64_t)r * run, run * (uint64_t)N, run, outer, err);
    }
    /* every routed expert present */
    for (int L = 0; L < c->n_layers && !st; L++) {
        if (!dc_config_layer_is_moe(c, L))
            continue;
        for (int e = 0; e < E && !st; e++)
            for (int k = 0; k < 3 && !st; k++) {
                char n[256];
                snprintf(n, sizeof n, "model.layers.%d.mlp.experts.%d.%s_proj.weight", L, e, PROJ[k]);
                if (!dc_strmap_get(&by, n, NULL))
                    st = dc_err_set(err, DC_ERR_MODEL,
                                    "%s: no rank file holds layers.%d.ffn.experts.%d.w%d.weight (%s; n_routed_experts %d, "
                                    "expected in model%d-mp%d.safetensors)",
                                    in->dir, L, e, k == 0 ? 1 : k == 1 ? 3 : 2, n, E, n_local ? e / n_local : 0, N);
            }
    }
    dc_strmap_free(&by);
    for (size_t i = 0; i < ng; i++) {
        free(g[i].hf);
        free(g[i].mi.name);
        free(g[i].r);
    }
    free(g);
    return st;
}

/* ---- output files ---------------------------------------------------------------------------- */

static int cmp_otensor(const void *x, const void *y)
{
    const otensor *a = x, *b = y;
    if (a->file != b->file)
        return a->file < b->file ? -1 : 1;
    if (a->grp != b->grp)
        return a->grp < b->grp ? -1 : 1;
    if (a->layer != b->layer)
        return a->layer < b->layer ? -1 : 1;
    return natcmp(a->name, b->name);
}

static bool is_scale_of(const char *s, const char *w)
{
    size_t n = strlen(w);
    return !strncmp(s, w, n) && !strcmp(s + n, "_scale_inv");
}

/* HF outputs: shards of at most max bytes, each holding whole layers where one fits. */
static void pack_shards(plan *p, uint64_t max, int *n_files)
{
    int f = 0;
    uint64_t cur = 0;
    size_t in_cur = 0;
    for (size_t i = 0, j; i < p->n; i = j) {
        uint64_t gsz = 0;
        for (j = i; j < p->n && p->t[j].grp == p->t[i].grp && p->t[j].layer == p->t[i].layer; j++)
            gsz += p->t[j].nbytes;
        if (max && in_cur && gsz <= max && cur + gsz > max) {
            f++;
            cur = 0;
            in_cur = 0;
        }
        for (size_t k = i; k < j;) {
            size_t cnt = k + 1 < j && is_scale_of(p->t[k + 1].name, p->t[k].name) ? 2 : 1;
            uint64_t a = p->t[k].nbytes + (cnt == 2 ? p->t[k + 1].nbytes : 0);
            if (max && in_cur && cur + a > max) {
                f++;
                cur = 0;
                in_cur = 0;
            }
            for (size_t m = 0; m < cnt; m++)
                p->t[k + m].file = f;
            cur += a;
            in_cur += cnt;
            k += cnt;
        }
    }
    *n_files = p->n ? f + 1 : 1;
}

static dc_status make_files(plan *p, int nf, int mp, dc_err *err)
{
    p->f = calloc((size_t)nf, sizeof *p->f);
    if (!p->f)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    p->nf = nf;
    for (int i = 0; i < nf; i++) {
        char buf[96];
        if (!p->hf)
            snprintf(buf, sizeof buf, "model%d-mp%d.safetensors", i, mp);
        else if (nf == 1)
            snprintf(buf, sizeof buf, "model.safetensors");
        else
            snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", i + 1, nf);
        p->f[i].name = dc_strdup(buf);
        p->f[i].w = dc_stw_new();
        if (!p->f[i].name || !p->f[i].w)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        dc_status st = dc_stw_meta(p->f[i].w, "format", "pt", err);
        if (st)
            return st;
    }
    for (size_t i = 0; i < p->n; i++) {
        otensor *o = &p->t[i];
        dc_status st = dc_stw_add(p->f[o->file].w, o->name, o->dtype, o->ndim, o->shape, &o->wi, err);
        if (st)
            return st;
        uint64_t covered = 0;
        for (size_t k = o->seg0; k < o->seg0 + o->nseg; k++)
            covered += p->s[k].len * p->s[k].count;
        if (covered != o->nbytes)
            return dc_err_set(err, DC_ERR_INTERNAL, "plan for %s covers %llu of its %llu bytes", o->name,
                              (unsigned long long)covered, (unsigned long long)o->nbytes);
    }
    for (int i = 0; i < nf; i++) {
        dc_status st = dc_stw_plan(p->f[i].w, 0, err);
        if (st)
            return st;
    }
    /* one name per file */
    for (int fi = 0; fi < nf; fi++) {
        dc_strmap seen = {0};
        const dc_stw *w = p->f[fi].w;
        dc_status st = DC_OK;
        for (size_t i = 0; i < dc_stw_count(w) && !st; i++) {
            int r = dc_strmap_put(&seen, dc_stw_get(w, i)->name, 0);
            if (r < 0)
                st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            else if (r == 0)
                st = dc_err_set(err, DC_ERR_MODEL, "two input tensors map to the output tensor %s in %s",
                                dc_stw_get(w, i)->name, p->f[fi].name);
        }
        dc_strmap_free(&seen);
        if (st)
            return st;
    }
    return DC_OK;
}

static void print_plan(FILE *f, const plan *p, const dc_reshard_stats *s)
{
    fprintf(f, "%-60s %-6s %-8s %-16s %12s  %-34s %s\n", "tensor", "op", "dtype", "shape", "bytes", "file", "from");
    for (size_t i = 0; i < p->n; i++) {
        const otensor *o = &p->t[i];
        char sb[64];
        fprintf(f, "%-60s %-6s %-8s %-16s %12llu  %-34s ", o->name, o->op, dc_dtype_name(o->dtype),
                dc_shape_str(o->ndim, o->shape, sb, sizeof sb), (unsigned long long)o->nbytes, p->f[o->file].name);
        if (o->n_src > 1)
            fprintf(f, "%d tensors: %s (%s), ...\n", o->n_src, o->src_name, o->src_file);
        else
            fprintf(f, "%s (%s)\n", o->src_name, o->src_file);
    }
    char b1[32], b2[32];
    fprintf(f, "total: %zu tensors in (%s), %zu out (%s) in %d file(s), %zu dropped\n", s->n_in,
            dc_fmt_bytes(s->bytes_in, b1, sizeof b1), s->n_out, dc_fmt_bytes(s->bytes_out, b2, sizeof b2), s->n_files,
            s->n_dropped);
}

/* ---- execution ------------------------------------------------------------------------------- */

typedef struct unit {
    size_t ot;
    uint64_t a, b;
} unit;

static dc_status run_unit(const plan *p, const unit *u, uint8_t **buf, size_t *cap, dc_err *err)
{
    const otensor *o = &p->t[u->ot];
    uint64_t a = u->a, b = u->b;
    /* pass 0 counts the pieces (one piece covering the unit: write straight from the mapping),
     * pass 1 gathers them */
    size_t pieces = 0;
    const uint8_t *direct = NULL;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (pieces == 1 && direct)
                break;
            size_t need = (size_t)(b - a);
            if (need > *cap) {
                free(*buf);
                *buf = malloc(need);
                *cap = *buf ? need : 0;
                if (!*buf)
                    return dc_err_set(err, DC_ERR_NOMEM, "out of memory for %zu bytes of %s", need, o->name);
            }
        }
        for (size_t si = o->seg0; si < o->seg0 + o->nseg; si++) {
            const seg *s = &p->s[si];
            if (s->dst_off >= b)
                continue;
            uint64_t k0 = 0, k1 = s->count;
            if (s->count > 1) {
                uint64_t ds = s->dst_stride;
                if (a >= s->dst_off + s->len)
                    k0 = (a - s->dst_off - s->len) / ds + 1;
                uint64_t kb = (b - s->dst_off - 1) / ds + 1;
                if (kb < k1)
                    k1 = kb;
            } else if (s->dst_off + s->len <= a)
                continue;
            for (uint64_t k = k0; k < k1; k++) {
                uint64_t d0 = s->dst_off + k * s->dst_stride;
                uint64_t x0 = d0 > a ? d0 : a, x1 = d0 + s->len < b ? d0 + s->len : b;
                if (x1 <= x0)
                    continue;
                const uint8_t *src = s->src->data + s->src_off + k * s->src_stride + (x0 - d0);
                if (pass == 0) {
                    pieces++;
                    direct = x0 == a && x1 == b ? src : NULL;
                } else
                    memcpy(*buf + (x0 - a), src, (size_t)(x1 - x0));
            }
        }
    }
    dc_status st = dc_stw_write(p->f[o->file].w, o->wi, a, pieces == 1 && direct ? direct : *buf, (size_t)(b - a), err);
    /* release the input pages this unit consumed */
    for (size_t si = o->seg0; si < o->seg0 + o->nseg; si++) {
        const seg *s = &p->s[si];
        if (s->dst_off >= b)
            continue;
        uint64_t k0 = 0, k1 = s->count;
        if (s->count > 1) {
            if (a >= s->dst_off + s->len)
                k0 = (a - s->dst_off - s->len) / s->dst_stride + 1;
            uint64_t kb = (b - s->dst_off - 1) / s->dst_stride + 1;
            if (kb < k1)
                k1 = kb;
        } else if (s->dst_off + s->len <= a)
            continue;
        if (k1 <= k0)
            continue;
        uint64_t d0 = s->dst_off + k0 * s->dst_stride, d1 = s->dst_off + (k1 - 1) * s->dst_stride;
        uint64_t lo = s->src_off + k0 * s->src_stride + (a > d0 ? a - d0 : 0);
        uint64_t hi = s->src_off + (k1 - 1) * s->src_stride + (d1 + s->len > b ? b - d1 : s->len);
        if (hi > lo)
            dc_map_release(s->src->data + lo, (size_t)(hi - lo));
    }
    return st;
}

typedef struct rrun {
    const plan *p;
    const unit *units;
} rrun;

typedef struct rbuf {
    uint8_t *buf;
    size_t cap;
} rbuf;

static dc_status rrun_unit(void *ctx, size_t k, void *tls, dc_err *err)
{
    const rrun *r = ctx;
    rbuf *b = tls;
    return run_unit(r->p, &r->units[k], &b->buf, &b->cap, err);
}

static void rbuf_free(void *tls) { free(((rbuf *)tls)->buf); }

static dc_status execute(const plan *p, bool progress, dc_err *err)
{
    size_t n_units = 0, cap = 0;
    unit *units = NULL;
    /* DC_RESHARD_UNIT_BYTES (tests only): a smaller unit, so that units cut runs and segments */
    uint64_t unit_bytes = UNIT_BYTES;
    const char *ub = getenv("DC_RESHARD_UNIT_BYTES");
    if (ub && atoll(ub) > 0 && (uint64_t)atoll(ub) < UNIT_BYTES)
        unit_bytes = (uint64_t)atoll(ub);
    for (size_t i = 0; i < p->n; i++) {
        uint64_t total = p->t[i].nbytes, step = unit_bytes;
        /* a strided read (a dim-1 split) maps the whole source span it crosses: keep that span
         * within UNIT_BYTES too, so resident memory does not grow with the tensor */
        for (size_t k = p->t[i].seg0; k < p->t[i].seg0 + p->t[i].nseg; k++) {
            const seg *s = &p->s[k];
            if (s->count > 1 && s->src_stride > s->len) {
                uint64_t cand = unit_bytes / s->src_stride * s->len;
                if (cand < s->len)
                    cand = s->len;
                if (cand < step)
                    step = cand;
            }
        }
        for (uint64_t a = 0; a < total; a += step) {
            if (!dc_grow((void **)&units, &cap, n_units + 1, sizeof *units)) {
                free(units);
                return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            }
            units[n_units++] = (unit){i, a, a + step < total ? a + step : total};
        }
    }
    rrun rc = {p, units};
    dc_par_job job = {n_units, rrun_unit, &rc, sizeof(rbuf), rbuf_free, progress ? "reshard:" : NULL, NULL, 0};
    dc_status st = dc_par_run(&job, err);
    free(units);
    return st;
}

/* ---- config, aux files, index ---------------------------------------------------------------- */

/* Copies config.json; zero_mtp sets num_nextn_predict_layers to 0 (the MTP layers are not there). */
static dc_status write_config(const char *src, const char *dst, bool zero_mtp, dc_err *err)
{
    char *buf = NULL, *out = NULL;
    size_t len;
    dc_status st = dc_read_file(src, &buf, &len, 16u << 20, err);
    if (st)
        return st;
    cJSON *root = zero_mtp ? cJSON_ParseWithLength(buf, len) : NULL;
    const cJSON *mtp = root ? cJSON_GetObjectItemCaseSensitive(root, "num_nextn_predict_layers") : NULL;
    if (zero_mtp && !root)
        st = dc_err_set(err, DC_ERR_CONFIG, "%s: not a JSON object", src);
    else if (!mtp || (cJSON_IsNumber(mtp) && mtp->valuedouble == 0))
        st = dc_write_file_atomic(dst, buf, len, err);
    else {
        cJSON_ReplaceItemInObjectCaseSensitive(root, "num_nextn_predict_layers", cJSON_CreateNumber(0));
        out = cJSON_Print(root);
        if (!out)
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        else {
            size_t ol = strlen(out);
            out[ol] = '\n';
            st = dc_write_file_atomic(dst, out, ol + 1, err);
        }
    }
    cJSON_Delete(root);
    free(buf);
    free(out);
    return st;
}

/* Copies tokenizer, generation config and other small files (token_only: names containing
 * "token", as convert.py copies them). */
static dc_status copy_aux(const char *in_dir, const char *out_dir, bool token_only, dc_err *err)
{
    DIR *d = opendir(in_dir);
    if (!d)
        return dc_err_set(err, DC_ERR_IO, "%s: cannot list directory: %s", in_dir, strerror(errno));
    dc_status st = DC_OK;
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        const char *n = e->d_name;
        if (n[0] == '.' || dc_str_ends_with(n, ".safetensors") || !strcmp(n, "model.safetensors.index.json") ||
            !strcmp(n, "config.json") || strstr(n, ".tmp-") || (token_only && !strstr(n, "token")))
            continue;
        char *sp = dc_path_join(in_dir, n), *dp = dc_path_join(out_dir, n);
        struct stat sb;
        if (!sp || !dp)
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        else if (stat(sp, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size < (1 << 30))
            st = dc_copy_file(sp, dp, err);
        free(sp);
        free(dp);
    }
    closedir(d);
    return st;
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static dc_status write_index(const plan *p, const char *dir, dc_err *err)
{
    const char **names = malloc((p->n + 1) * sizeof *names);
    const char **files = malloc((p->n + 1) * sizeof *files);
    cJSON *root = cJSON_CreateObject();
    cJSON *md = root ? cJSON_AddObjectToObject(root, "metadata") : NULL;
    cJSON *wm = root ? cJSON_AddObjectToObject(root, "weight_map") : NULL;
    dc_status st = DC_OK;
    char *s = NULL, *path = NULL;
    if (!names || !files || !md || !wm) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    uint64_t total = 0;
    dc_strmap fidx = {0};
    for (size_t i = 0; i < p->n; i++) {
        names[i] = p->t[i].name;
        total += p->t[i].nbytes;
        if (dc_strmap_put(&fidx, p->t[i].name, p->t[i].file) < 0) {
            dc_strmap_free(&fidx);
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    qsort(names, p->n, sizeof *names, cmp_cstr);
    cJSON_AddNumberToObject(md, "total_size", (double)total);
    for (size_t i = 0; i < p->n; i++) {
        int64_t f = 0;
        dc_strmap_get(&fidx, names[i], &f);
        cJSON_AddStringToObject(wm, names[i], p->f[f].name);
    }
    dc_strmap_free(&fidx);
    s = cJSON_Print(root);
    path = dc_path_join(dir, "model.safetensors.index.json");
    if (!s || !path) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t sl = strlen(s);
    s[sl] = '\n';
    st = dc_write_file_atomic(path, s, sl + 1, err);
done:
    free(names);
    free(files);
    free(s);
    free(path);
    cJSON_Delete(root);
    return st;
}

/* ---- inputs ---------------------------------------------------------------------------------- */

static void input_close(input *in)
{
    dc_ckpt_close(in->ck);
    for (int i = 0; i < in->n_ranks; i++)
        dc_st_close(&in->ranks[i]);
    free(in->ranks);
    free(in->config_src);
    free(in->dir);
    memset(in, 0, sizeof *in);
}

static dc_status open_mp_dir(input *in, const char *path, const dc_reshard_opts *o, dc_err *err)
{
    if (!dc_exists(path))
        return dc_err_set(err, DC_ERR_IO, "%s: no such directory", path);
    if (!dc_is_dir(path))
        return dc_err_set(err, DC_ERR_USAGE, "%s: --from-mp needs a directory of model{i}-mp{N}.safetensors files", path);
    in->dir = dc_strdup(path);
    if (!in->dir)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    DIR *d = opendir(path);
    if (!d)
        return dc_err_set(err, DC_ERR_IO, "%s: cannot list directory: %s", path, strerror(errno));
    int N = 0;
    dc_status st = DC_OK;
    char **names = NULL;
    size_t nn = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) && !st) {
        if (e->d_name[0] == '.' || !dc_str_ends_with(e->d_name, ".safetensors"))
            continue;
        if (!dc_grow((void **)&names, &cap, nn + 1, sizeof *names) || !(names[nn] = dc_strdup(e->d_name)))
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        else
            nn++;
    }
    closedir(d);
    if (!st && nn == 0)
        st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: no model{i}-mp{N}.safetensors files (DeepSeek's convert.py output)",
                        path);
    if (!st)
        qsort(names, nn, sizeof *names, cmp_cstr);
    for (size_t i = 0; i < nn && !st; i++) {
        int r, m, used = 0;
        char chk[96];
        if (sscanf(names[i], "model%d-mp%d.safetensors%n", &r, &m, &used) != 2 || names[i][used] || m < 1 || r < 0 ||
            r >= m || (snprintf(chk, sizeof chk, "model%d-mp%d.safetensors", r, m), strcmp(chk, names[i])))
            st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: %s is not a model{i}-mp{N}.safetensors rank file", path,
                            names[i]);
        else if (N && m != N)
            st = dc_err_set(err, DC_ERR_MODEL, "%s: rank files of different splits: %s and mp%d", path, names[i], N);
        else
            N = m;
    }
    if (!st) {
        in->ranks = calloc((size_t)N, sizeof *in->ranks);
        if (!in->ranks)
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    for (int r = 0; r < N && !st; r++) {
        char fn[96];
        snprintf(fn, sizeof fn, "model%d-mp%d.safetensors", r, N);
        char *fp = dc_path_join(path, fn);
        if (!fp)
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        else if (!dc_exists(fp))
            st = dc_err_set(err, DC_ERR_MODEL, "%s: missing %s (an mp%d split has ranks 0..%d)", path, fn, N, N - 1);
        else if ((st = dc_st_open(fp, r, &in->ranks[r], err)) == DC_OK) {
            in->n_ranks++;
            if (in->ranks[r].map.size > in->max_file)
                in->max_file = in->ranks[r].map.size;
        }
        free(fp);
    }
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    if (st)
        return st;
    /* the config */
    in->config_src = o->config_path ? dc_strdup(o->config_path) : dc_path_join(path, "config.json");
    if (!in->config_src)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    if (!dc_exists(in->config_src))
        return dc_err_set(err, DC_ERR_CONFIG,
                          "%s: no config.json; --from-mp needs the original model's config (--config FILE)",
                          o->config_path ? o->config_path : path);
    char *buf;
    size_t len;
    if ((st = dc_read_file(in->config_src, &buf, &len, 16u << 20, err)) != DC_OK)
        return st;
    st = dc_config_parse(buf, len, in->config_src, &in->cfg, err);
    free(buf);
    return st;
}

static dc_status open_input(input *in, const char *path, const dc_reshard_opts *o, dc_err *err)
{
    memset(in, 0, sizeof *in);
    dc_status st;
    if (o->mode == DC_RESHARD_FROM_MP)
        st = open_mp_dir(in, path, o, err);
    else {
        if ((st = dc_ckpt_open(path, &in->ck, err)) != DC_OK)
            return st;
        if ((st = dc_ckpt_require_config(in->ck, err)) != DC_OK)
            return st;
        if (!dc_is_dir(path))
            return dc_err_set(err, DC_ERR_USAGE, "%s: reshard needs a checkpoint directory (config.json + shards)", path);
        in->cfg = in->ck->cfg;
        in->dir = dc_strdup(in->ck->dir);
        in->config_src = dc_path_join(in->ck->dir, "config.json");
        if (!in->dir || !in->config_src)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        for (int i = 0; i < in->ck->n_files; i++)
            if (in->ck->files[i].map.size > in->max_file)
                in->max_file = in->ck->files[i].map.size;
    }
    if (st)
        return st;
    in->br = in->cfg.block_rows > 0 ? in->cfg.block_rows : 128;
    in->bc = in->cfg.block_cols > 0 ? in->cfg.block_cols : 128;
    return DC_OK;
}

/* ---- driver ---------------------------------------------------------------------------------- */

static dc_status write_all(plan *p, const input *in, const dc_reshard_opts *o, const char *dir, dc_err *err)
{
    dc_status st = DC_OK;
    for (int i = 0; i < p->nf && !st; i++) {
        char sub[32];
        snprintf(sub, sizeof sub, ".part-%d", i);
        p->f[i].part_dir = dc_path_join(dir, sub);
        if (!p->f[i].part_dir)
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        else if (mkdir(p->f[i].part_dir, 0755) != 0)
            st = dc_err_set(err, DC_ERR_IO, "%s: cannot create directory: %s", p->f[i].part_dir, strerror(errno));
        else
            st = dc_stw_open(p->f[i].w, p->f[i].part_dir, err);
    }
    if (!st)
        st = execute(p, o->progress, err);
    for (int i = 0; i < p->nf && !st; i++) {
        if ((st = dc_stw_finish(p->f[i].w, err)) != DC_OK)
            break;
        char *from = dc_path_join(p->f[i].part_dir, "model.safetensors"), *to = dc_path_join(dir, p->f[i].name);
        if (!from || !to)
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        else if (rename(from, to) != 0 || rmdir(p->f[i].part_dir) != 0)
            st = dc_err_set(err, DC_ERR_IO, "%s: cannot move into place: %s", to, strerror(errno));
        free(from);
        free(to);
    }
    if (!st && p->hf && p->nf > 1)
        st = write_index(p, dir, err);
    if (!st) {
        char *cd = dc_path_join(dir, "config.json");
        bool zero_mtp = o->mode == DC_RESHARD_MP || o->mode == DC_RESHARD_FROM_MP;
        st = cd ? write_config(in->config_src, cd, zero_mtp, err) : dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        free(cd);
    }
    if (!st)
        st = copy_aux(in->dir, dir, o->mode == DC_RESHARD_MP, err);
    if (st)
        for (int i = 0; i < p->nf; i++)
            dc_stw_abort(p->f[i].w);
    return st;
}

dc_status dc_reshard(const char *in_path, const char *out_dir, const dc_reshard_opts *o, FILE *planf,
                     dc_reshard_stats *stats, dc_err *err)
{
    memset(stats, 0, sizeof *stats);
    double t0 = now_s();
    if (o->mode == DC_RESHARD_MP && (o->mp < 1 || o->mp > 65536))
        return dc_err_set(err, DC_ERR_USAGE, "--mp %d out of range", o->mp);
    if (o->mode == DC_RESHARD_SHARDS && !o->max_shard_size)
        return dc_err_set(err, DC_ERR_USAGE, "re-sharding needs --max-shard-size");
    input in;
    plan p = {0};
    dc_outdir od = {0};
    dc_status st = open_input(&in, in_path, o, err);
    if (st)
        goto done;
    if (dc_path_within(in.dir, out_dir)) {
        st = dc_err_set(err, DC_ERR_USAGE, "output %s is inside the input directory %s", out_dir, in.dir);
        goto done;
    }
    p.hf = o->mode != DC_RESHARD_MP;
    switch (o->mode) {
    case DC_RESHARD_SHARDS: st = plan_shards(&p, &in, err); break;
    case DC_RESHARD_MERGE_EXPERTS: st = plan_merge(&p, &in, stats, err); break;
    case DC_RESHARD_SPLIT_EXPERTS: st = plan_split(&p, &in, stats, err); break;
    case DC_RESHARD_MP: st = plan_mp(&p, &in, o->mp, stats, err); break;
    case DC_RESHARD_FROM_MP: st = plan_from_mp(&p, &in, err); break;
    }
    if (st)
        goto done;
    if (in.ck) {
        stats->n_in = in.ck->n_tensors;
        for (size_t i = 0; i < in.ck->n_tensors; i++)
            stats->bytes_in += in.ck->tensors[i]->nbytes;
    } else
        for (int r = 0; r < in.n_ranks; r++) {
            stats->n_in += in.ranks[r].n_tensors;
            for (size_t i = 0; i < in.ranks[r].n_tensors; i++)
                stats->bytes_in += in.ranks[r].tensors[i].nbytes;
        }
    qsort(p.t, p.n, sizeof *p.t, cmp_otensor);
    int nf = o->mode == DC_RESHARD_MP ? o->mp : 1;
    if (p.hf)
        pack_shards(&p, o->max_shard_size ? o->max_shard_size : in.max_file, &nf);
    if ((st = make_files(&p, nf, o->mp, err)) != DC_OK)
        goto done;
    stats->n_out = p.n;
    stats->n_files = p.nf;
    for (size_t i = 0; i < p.n; i++)
        stats->bytes_out += p.t[i].nbytes;
    if (o->dry_run) {
        print_plan(planf ? planf : stdout, &p, stats);
        goto done;
    }
    if ((st = dc_outdir_open(&od, out_dir, o->force, err)) != DC_OK)
        goto done;
    if ((st = write_all(&p, &in, o, od.tmp_path, err)) != DC_OK) {
        dc_outdir_abort(&od);
        goto done;
    }
    st = dc_outdir_commit(&od, err);
done:
    stats->seconds = now_s() - t0;
    plan_free(&p);
    input_close(&in);
    return st;
}
