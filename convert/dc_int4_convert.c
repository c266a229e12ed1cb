#define _GNU_SOURCE
#include "dc_int4_convert.h"
#include "dc_int4_x8.h"
#include "dc_quants.h"
#include "dc_par.h"
#include "dc_ckdir.h"
#include "dc_float.h"
#include "dc_fp8.h"
#include "dc_gptq.h"
#include "dc_io.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ================================================================================================
 * options
 * ================================================================================================ */

void dc_int4_opts_init(dc_int4_opts *o)
{
    memset(o, 0, sizeof *o);
    o->layout = DC_I4_CT;
    o->float_dtype = DC_DT_BF16;
    o->sym = -1;
    o->scope = DC_I4_SCOPE_AUTO;
    o->keep = DC_I4_KEEP_AUTO;
    o->clip = true;
    o->gptq_damp = 0.01;
}

static const struct { const char *name; dc_i4_layout l; } TARGETS[] = {
    {"w4a16", DC_I4_CT}, {"gptq", DC_I4_GPTQ}, {"awq", DC_I4_AWQ}, {"nvfp4", DC_I4_NVFP4}, {"mxfp4", DC_I4_MXFP4},
};

bool dc_int4_target_parse(const char *s, dc_i4_layout *l)
{
    for (size_t i = 0; i < sizeof TARGETS / sizeof TARGETS[0]; i++)
        if (!strcmp(s, TARGETS[i].name)) {
            *l = TARGETS[i].l;
            return true;
        }
    return false;
}

const char *dc_int4_target_name(dc_i4_layout l)
{
    for (size_t i = 0; i < sizeof TARGETS / sizeof TARGETS[0]; i++)
        if (TARGETS[i].l == l)
            return TARGETS[i].name;
    return "float";
}

/* ================================================================================================
 * group quantizers
 * ================================================================================================ */

static float round_to(dc_dtype d, float v)
{
    switch (d) {
    case DC_DT_BF16: return dc_round_bf16(v);
    case DC_DT_F16: return dc_f16_to_f32(dc_f32_to_f16(v));
    default: return v;
    }
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* codes of x at scale s and zero z (when codes is not NULL); returns the weighted squared error */
static double int_err(const float *x, const float *imp, int n, float s, int z, double bound, uint8_t *codes)
{
    return dc_quants_simd_enabled() ? dc_i4x8_int_err(x, imp, n, s, z, bound, codes)
                                    : dc_i4_int_err_ref(x, imp, n, s, z, bound, codes);
}

void dc_i4_quant_int(const float *x, const float *imp, int n, bool sym, bool clip, dc_dtype sdt, uint8_t *codes,
                     float *scale, uint8_t *zero)
{
    float mn = 0, mx = 0;
    for (int i = 0; i < n; i++) {
        mn = x[i] < mn ? x[i] : mn;
        mx = x[i] > mx ? x[i] : mx;
    }
    float amax = -mn > mx ? -mn : mx;
    float best_s = 0;
    int best_z = 8;
    double best = INFINITY;
    if (amax > 0) {
        int nc = clip ? (sym ? 26 : 21) : 1;
        for (int c = 0; c < nc; c++) {
            double p = clip ? ((sym ? 110 : 100) - 2 * c) / 100.0 : 1.0;
            float s;
            int z = 8;
            if (sym)
                s = round_to(sdt, (float)(p * (double)amax / 7.5));
            else {
                float lo = (float)(p * (double)mn), hi = (float)(p * (double)mx);
                s = round_to(sdt, (hi - lo) / 15.0f);
                if (s > 0 && isfinite(s))
                    z = clampi((int)nearbyintf(-lo / s), 0, 15);
            }
            if (!(s > 0) || !isfinite(s))
                continue;
            double e = int_err(x, imp, n, s, z, best, NULL);
            if (e < best) {
                best = e;
                best_s = s;
                best_z = z;
            }
        }
    }
    if (!(best_s > 0)) { /* an all-zero group (or scales that underflow the storage type) */
        *scale = round_to(sdt, 1.0f);
        *zero = 8;
        for (int i = 0; i < n; i++)
            codes[i] = 8;
        return;
    }
    int_err(x, imp, n, best_s, best_z, INFINITY, codes);
    *scale = best_s;
    *zero = (uint8_t)best_z;
}

float dc_i4_nvfp4_global(float amax) { return amax > 0 && isfinite(amax) ? amax / 2688.0f : 1.0f; }

static double fp4_err(const float *x, const float *imp, int n, float div, float mul1, float mul2, double bound,
                      uint8_t *codes)
{
    return dc_quants_simd_enabled() ? dc_i4x8_fp4_err(x, imp, n, div, mul1, mul2, bound, codes)
                                    : dc_i4_fp4_err_ref(x, imp, n, div, mul1, mul2, bound, codes);
}

static double mx_err(const float *x, const float *imp, int n, int e, double bound, uint8_t *codes)
{
    const float up = ldexpf(1.0f, 127 - e), down = ldexpf(1.0f, e - 127); /* exact: e in [0, 254] */
    return dc_quants_simd_enabled() ? dc_i4x8_mx_err(x, imp, n, up, down, bound, codes)
                                    : dc_i4_mx_err_ref(x, imp, n, up, down, bound, codes);
}

uint8_t dc_i4_quant_nvfp4(const float *x, const float *imp, int n, float ws2, bool clip, uint8_t *codes)
{
    float amax = 0;
    for (int i = 0; i < n; i++)
        amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    if (!(amax > 0)) {
        memset(codes, 0, (size_t)n);
        return dc_f32_to_e4m3(1.0f);
    }
    const float *tab = dc_e4m3_table();
    const float d6 = 6.0f * ws2;
    int best_c = -1, prev = -1;
    double best = INFINITY;
    for (int c = 0; c < (clip ? 26 : 1); c++) {
        float v = clip && c != 5 ? (float)((110 - 2 * c) / 100.0 * (double)amax) : amax; /* c = 5: p = 1 */
        int sc = dc_f32_to_e4m3(v / d6) & 0x7f;
        if (sc == 0)
            sc = 1; /* below the smallest e4m3 step: its smallest subnormal */
        if (sc == prev)
            continue;
        prev = sc;
        double e = fp4_err(x, imp, n, tab[sc] * ws2, tab[sc], ws2, best, NULL);
        if (e < best) {
            best = e;
            best_c = sc;
        }
    }
    fp4_err(x, imp, n, tab[best_c] * ws2, tab[best_c], ws2, INFINITY, codes);
    return (uint8_t)best_c;
}

uint8_t dc_i4_quant_mxfp4(const float *x, const float *imp, int n, bool clip, uint8_t *codes)
{
    float amax = 0;
    for (int i = 0; i < n; i++)
        amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    if (!(amax > 0)) {
        memset(codes, 0, (size_t)n);
        return 127;
    }
    int ef = dc_e8m0_mx_floor(amax);
    int cand[4] = {dc_e8m0_mx_ct(amax), ef, ef + 1, ef - 1}, nc = clip ? 4 : 1, best_e = cand[0];
    double best = INFINITY;
    for (int c = 0; c < nc; c++) {
        int e = cand[c];
        bool dup = e < 0 || e > 254;
        for (int j = 0; j < c; j++)
            dup |= cand[j] == e;
        if (dup)
            continue;
        double err = mx_err(x, imp, n, e, best, NULL);
        if (err < best) {
            best = err;
            best_e = e;
        }
    }
    mx_err(x, imp, n, best_e, INFINITY, codes);
    return (uint8_t)best_e;
}

/* ================================================================================================
 * plan
 * ================================================================================================ */

typedef enum op { OP_COPY, OP_DEQ, OP_FP8, OP_I4, OP_CONST } op;
static const char *OP_NAMES[] = {"copy", "dequant", "fp8", "int4", "const"};

/* projection categories: their storage decides the runtime configs */
enum { CAT_ATTN, CAT_DENSE, CAT_SHARED, CAT_EXPERTS, CAT_N };
enum { ST_I4 = 1, ST_FP8 = 2, ST_HI = 4 };
static const char *CAT_NAMES[CAT_N] = {"attention projections", "dense MLP", "shared experts", "routed experts"};

typedef struct item {
    const dc_tensor *src; /* the input tensor (Hugging Face view) */
    dc_weight w;
    op op;
    dc_dtype out_dtype;
    size_t wi[4];         /* output tensors: COPY/DEQ/CONST [0]; FP8 weight, scale; I4 by layout */
    int nw;
    int64_t rows, cols;   /* N, K */
    int64_t group, G;
    uint8_t *cbuf;        /* CONST bytes */
    size_t clen;
    float *imp;           /* importance of the K input columns, or NULL */
    const double *gptq_u; /* GPTQ: the K x K upper Cholesky factor of the damped inverse Hessian (not owned) */
    float amax, ws2;      /* NVFP4 */
    int64_t ws2_item;     /* NVFP4: the weight_scale_2 item, -1 otherwise */
    int cat, layer;       /* projection category (-1 otherwise) and layer */
    dc_role role;
    bool fp8_in;          /* the input tensor is FP8 (COPY of FP8: its scale follows) */
    uint8_t *asm_buf;     /* GPTQ / AWQ: the packed tensors being assembled */
    int64_t asm_left;     /* its units not yet done */
} item;

typedef struct plan {
    item *items;
    size_t n_items, cap;
    dc_stw *w;
    int64_t *owner;       /* output tensor -> item */
    const char **what;    /* output tensor -> short description */
    int storage[CAT_N];   /* ST_* bits seen per category */
    dc_dtype hi_dtype;    /* the model's float type (scales of compressed-tensors, kept tensors) */
    dc_i4_layout layout;
    int group;
    bool sym;
    bool any_fp8_out;
    bool has_indexer;     /* DeepSeek-V3.2: self_attn.indexer.* (weights_proj ignored by the config) */
    bool dense_layer[1024];
    int n_layers_total;
} plan;

static item *new_item(plan *p, dc_err *err)
{
    if (!dc_grow((void **)&p->items, &p->cap, p->n_items + 1, sizeof *p->items)) {
        dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        return NULL;
    }
    item *it = &p->items[p->n_items++];
    memset(it, 0, sizeof *it);
    it->ws2_item = -1;
    it->cat = -1;
    it->layer = -1;
    return it;
}

static dc_status add_out(plan *p, item *it, const char *name, dc_dtype dt, int ndim, const int64_t *shape,
                         const char *what, dc_err *err)
{
    size_t wi;
    dc_status st = dc_stw_add(p->w, name, dt, ndim, shape, &wi, err);
    if (st)
        return st;
    it->wi[it->nw++] = wi;
    size_t cap = dc_stw_count(p->w);
    int64_t *no = realloc(p->owner, cap * sizeof *no);
    const char **nwh = no ? realloc(p->what, cap * sizeof *nwh) : NULL;
    if (no)
        p->owner = no;
    if (!no || !nwh)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    p->what = nwh;
    p->owner[wi] = it - p->items;
    p->what[wi] = what;
    return DC_OK;
}

static dc_status add_const(plan *p, const char *name, dc_dtype dt, int ndim, const int64_t *shape, const void *bytes,
                           size_t len, const char *what, int64_t *idx, dc_err *err)
{
    item *it = new_item(p, err);
    if (!it)
        return DC_ERR_NOMEM;
    it->op = OP_CONST;
    it->out_dtype = dt;
    it->cbuf = malloc(len ? len : 1);
    it->clen = len;
    if (!it->cbuf)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    if (bytes)
        memcpy(it->cbuf, bytes, len);
    else
        memset(it->cbuf, 0, len);
    if (idx)
        *idx = (int64_t)(p->n_items - 1);
    return add_out(p, it, name, dt, ndim, shape, what, err);
}

static int cat_of(dc_role r)
{
    switch (r) {
    case DC_ROLE_Q_PROJ: case DC_ROLE_Q_A_PROJ: case DC_ROLE_Q_B_PROJ: case DC_ROLE_KV_A_PROJ:
    case DC_ROLE_KV_B_PROJ: case DC_ROLE_O_PROJ: case DC_ROLE_K_PROJ: case DC_ROLE_V_PROJ:
    case DC_ROLE_IDX_WQ_B: case DC_ROLE_IDX_WK: /* V3.2's indexer: Linear modules of self_attn */
        return CAT_ATTN;
    case DC_ROLE_MLP_GATE: case DC_ROLE_MLP_UP: case DC_ROLE_MLP_DOWN:
        return CAT_DENSE;
    case DC_ROLE_SHEXP_GATE: case DC_ROLE_SHEXP_UP: case DC_ROLE_SHEXP_DOWN:
        return CAT_SHARED;
    case DC_ROLE_EXP_GATE: case DC_ROLE_EXP_UP: case DC_ROLE_EXP_DOWN:
        return CAT_EXPERTS;
    default:
        return -1;
    }
}

static bool in_scope(dc_i4_scope s, int cat)
{
    return cat == CAT_EXPERTS || (s >= DC_I4_SCOPE_MLP && (cat == CAT_DENSE || cat == CAT_SHARED)) ||
           (s == DC_I4_SCOPE_ALL && cat == CAT_ATTN);
}

static bool is_fp8(dc_dtype d) { return d == DC_DT_F8_E4M3 || d == DC_DT_F8_E5M2; }
static bool layout_holds_fp8(dc_i4_layout l) { return l == DC_I4_CT || l == DC_I4_MXFP4; }

static int cmp_file_offset(const void *x, const void *y)
{
    const dc_tensor *a = *(const dc_tensor *const *)x, *b = *(const dc_tensor *const *)y;
    if (a->file != b->file)
        return a->file < b->file ? -1 : 1;
    if (a->offset != b->offset)
        return a->offset < b->offset ? -1 : 1;
    return strcmp(a->name, b->name);
}

static dc_dtype hi_dtype_of(const dc_config *c)
{
    if (!strcmp(c->torch_dtype, "float16"))
        return DC_DT_F16;
    if (!strcmp(c->torch_dtype, "float32"))
        return DC_DT_F32;
    return DC_DT_BF16;
}

static dc_status plan_i4(plan *p, const dc_ckpt *ck, const dc_int4_opts *o, const dc_i4_imatrix *im, item *it,
                         const char *name, dc_int4_stats *stats, dc_err *err)
{
    const char *fn = dc_ckpt_file_name(ck, it->src);
    int64_t N = it->rows, K = it->cols;
    size_t pl = strlen(name);
    if (pl < 7 || strcmp(name + pl - 7, ".weight"))
        return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: cannot quantize %s: not a .weight", fn, name);
    pl -= 7;
    dc_i4_layout L = p->layout;
    if ((L == DC_I4_GPTQ && K % 8) || ((L == DC_I4_NVFP4 || L == DC_I4_MXFP4) && K % 2))
        return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: %s [%lld, %lld]: %s packs %s input columns per word; K is not a multiple",
                          fn, name, (long long)N, (long long)K, dc_i4_layout_name(L), L == DC_I4_GPTQ ? "8" : "2");
    if ((L == DC_I4_GPTQ || L == DC_I4_AWQ) && N % 8)
        return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: %s [%lld, %lld]: %s packs 8 output rows per zero-point word; N is not a multiple of 8",
                          fn, name, (long long)N, (long long)K, dc_i4_layout_name(L));
    it->op = OP_I4;
    it->group = p->group;
    it->G = (K + p->group - 1) / p->group;
    if (K % p->group)
        stats->n_partial++;
    dc_status st;
    if (im && (st = dc_i4_imatrix_get(im, name, K, &it->imp, err)))
        return dc_err_prefix(err, "--imatrix %s", o->imatrix);
    if (it->imp)
        stats->n_imatrix++;
    if (o->gptq_factor) {
        if ((st = o->gptq_factor(o->gptq_ud, name, K, o->gptq_damp, &it->gptq_u, err)))
            return st;
        stats->n_gptq += it->gptq_u != NULL;
    }
    char nm[1100];
    int64_t G = it->G;
#define OUT(suffix, dt, nd, what, ...)                                                                  \
    do {                                                                                                \
        int64_t sh_[] = {__VA_ARGS__};                                                                 \
        snprintf(nm, sizeof nm, "%.*s%s", (int)pl, name, suffix);                                     \
        if ((st = add_out(p, it, nm, dt, nd, sh_, what, err)))                                          \
            return st;                                                                                  \
    } while (0)
    switch (L) {
    case DC_I4_CT: {
        OUT(".weight_packed", DC_DT_I32, 2, "int4 codes", N, (K + 7) / 8);
        OUT(".weight_scale", p->hi_dtype, 2, "scales", N, G);
        int64_t shape[1] = {2}, v[2] = {N, K};
        snprintf(nm, sizeof nm, "%.*s.weight_shape", (int)pl, name);
        if ((st = add_const(p, nm, DC_DT_I64, 1, shape, v, sizeof v, "shape", NULL, err)))
            return st;
        it = &p->items[p->n_items - 2]; /* add_const may have moved the array */
        if (!p->sym)
            OUT(".weight_zero_point", DC_DT_I32, 2, "zero points", (N + 7) / 8, G);
        break;
    }
    case DC_I4_GPTQ: {
        OUT(".qweight", DC_DT_I32, 2, "int4 codes", K / 8, N);
        OUT(".qzeros", DC_DT_I32, 2, "zeros (v1)", G, (N + 7) / 8);
        OUT(".scales", DC_DT_F16, 2, "scales", G, N);
        int32_t *gi = malloc((size_t)K * sizeof *gi);
        if (!gi)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        for (int64_t k = 0; k < K; k++)
            gi[k] = (int32_t)(k / p->group);
        int64_t shape[1] = {K};
        snprintf(nm, sizeof nm, "%.*s.g_idx", (int)pl, name);
        st = add_const(p, nm, DC_DT_I32, 1, shape, gi, (size_t)K * 4, "g_idx", NULL, err);
        free(gi);
        if (st)
            return st;
        break;
    }
    case DC_I4_AWQ:
        OUT(".qweight", DC_DT_I32, 2, "int4 codes (AWQ order)", K, N / 8);
        OUT(".qzeros", DC_DT_I32, 2, "zeros (AWQ order)", G, N / 8);
        OUT(".scales", DC_DT_F16, 2, "scales", G, N);
        break;
    case DC_I4_NVFP4: {
        OUT(".weight", DC_DT_U8, 2, "e2m1 codes", N, K / 2);
        OUT(".weight_scale", DC_DT_F8_E4M3, 2, "e4m3 scales", N, G);
        size_t self = (size_t)(it - p->items);
        float one = 1.0f;
        int64_t ws2i;
        snprintf(nm, sizeof nm, "%.*s.weight_scale_2", (int)pl, name);
        if ((st = add_const(p, nm, DC_DT_F32, 0, NULL, &one, 4, "global scale", &ws2i, err)))
            return st;
        snprintf(nm, sizeof nm, "%.*s.input_scale", (int)pl, name);
        if ((st = add_const(p, nm, DC_DT_F32, 0, NULL, &one, 4, "input scale (uncalibrated)", NULL, err)))
            return st;
        p->items[self].ws2_item = ws2i;
        break;
    }
    case DC_I4_MXFP4:
        OUT(".weight_packed", DC_DT_U8, 2, "e2m1 codes", N, K / 2);
        OUT(".weight_scale", DC_DT_U8, 2, "e8m0 scales", N, G);
        break;
    default:
        return dc_err_set(err, DC_ERR_INTERNAL, "layout %d", (int)L);
    }
#undef OUT
    stats->n_quantized++;
    return DC_OK;
}

static dc_status build_plan(const dc_ckpt *ck, const dc_int4_opts *o, const dc_i4_imatrix *im, plan *p,
                            dc_int4_stats *stats, dc_err *err)
{
    const dc_config *c = &ck->cfg;
    const dc_i4_scope scope = o->scope != DC_I4_SCOPE_AUTO ? o->scope
                              : dc_arch_dense(c->arch) ? DC_I4_SCOPE_ALL : DC_I4_SCOPE_EXPERTS;
    const dc_tensor **ord = malloc((ck->n_tensors + 1) * sizeof *ord);
    p->w = dc_stw_new();
    if (!ord || !p->w) {
        free(ord);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    memcpy(ord, ck->tensors, ck->n_tensors * sizeof *ord);
    qsort(ord, ck->n_tensors, sizeof *ord, cmp_file_offset);
    dc_status st = dc_stw_meta(p->w, "format", "pt", err);
    uint64_t max_in_shard = 0;
    for (int i = 0; i < ck->n_files; i++)
        if (ck->files[i].map.size > max_in_shard)
            max_in_shard = ck->files[i].map.size;
    for (size_t i = 0; i < ck->n_tensors && !st; i++) {
        const dc_tensor *t = ord[i];
        const char *fn = dc_ckpt_file_name(ck, t);
        stats->bytes_in += t->nbytes;
        stats->n_tensors++;
        dc_name_info ni;
        bool known = dc_name_parse(c, t->name, &ni);
        if (o->drop_mtp && known && ni.is_mtp) {
            stats->n_dropped++;
            continue;
        }
        if (dc_str_ends_with(t->name, "_scale_inv")) {
            char wn[1024];
            snprintf(wn, sizeof wn, "%.*s", (int)(strlen(t->name) - 10), t->name);
            const dc_tensor *wt = dc_ckpt_find(ck, wn);
            if (!wt)
                st = dc_err_set(err, DC_ERR_MODEL, "%s: scale tensor %s has no weight %s", fn, t->name, wn);
            else if (!is_fp8(wt->dtype) || dc_int4_ckpt_matrix(ck, wt))
                st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s has dtype %s but also a block scale %s",
                                dc_ckpt_file_name(ck, wt), wn, dc_dtype_name(wt->dtype), t->name);
            continue; /* travels with its weight */
        }
        bool virt = dc_int4_ckpt_matrix(ck, t) != NULL;
        bool fp8 = !virt && is_fp8(t->dtype);
        bool proj = known && dc_role_is_fp8(ni.role) && t->ndim == 2;
        int cat = proj ? cat_of(ni.role) : -1;
        item *it = new_item(p, err);
        if (!it) {
            st = DC_ERR_NOMEM;
            break;
        }
        it->src = t;
        it->rows = dc_tensor_rows(t);
        it->cols = dc_tensor_cols(t);
        it->out_dtype = t->dtype;
        it->op = OP_COPY;
        it->cat = cat;
        it->role = known ? ni.role : DC_ROLE_UNKNOWN;
        it->layer = known ? ni.layer : -1;
        it->fp8_in = fp8;
        if (virt || fp8) {
            if ((st = dc_ckpt_weight(ck, t->name, &it->w, err)))
                break;
        } else if (t->dtype == DC_DT_BF16 || t->dtype == DC_DT_F16 || t->dtype == DC_DT_F32) {
            if ((st = dc_weight_init(&it->w, t, NULL, 128, 128, fn, err)))
                break;
        }
        if (known && (ni.role == DC_ROLE_EXPS_GATE_UP || ni.role == DC_ROLE_EXPS_DOWN) && p->layout != DC_I4_NONE) {
            st = dc_err_set(err, DC_ERR_UNSUPPORTED,
                            "%s: %s holds all experts of a layer (fused); split them first with deepcast reshard --split-experts",
                            fn, t->name);
            break;
        }
        int store = 0;
        if (p->layout == DC_I4_NONE) {
            if (virt || fp8) {
                it->op = OP_DEQ;
                it->out_dtype = o->float_dtype;
            }
        } else {
            bool floaty = virt || fp8 || t->dtype == DC_DT_BF16 || t->dtype == DC_DT_F16 || t->dtype == DC_DT_F32;
            if (proj && cat >= 0 && in_scope(scope, cat) && floaty) {
                if ((st = plan_i4(p, ck, o, im, it, t->name, stats, err)))
                    break;
                it = &p->items[p->n_items - 1];
                while (it->op != OP_I4) /* the consts added after it */
                    it--;
                store = ST_I4;
            } else if (proj && floaty) {
                bool want_fp8 = o->keep == DC_I4_KEEP_FP8 || (o->keep == DC_I4_KEEP_AUTO && fp8 && layout_holds_fp8(p->layout));
                if (want_fp8) {
                    it->op = fp8 ? OP_COPY : OP_FP8;
                    it->out_dtype = fp8 ? t->dtype : DC_DT_F8_E4M3;
                    store = ST_FP8;
                } else {
                    if (virt || fp8) {
                        it->op = OP_DEQ;
                        it->out_dtype = p->hi_dtype;
                    }
                    store = ST_HI;
                }
            } else if (virt || fp8) {
                it->op = OP_DEQ;
                it->out_dtype = p->hi_dtype;
            }
        }
        if (cat >= 0 && store)
            p->storage[cat] |= store;
        if (it->op == OP_I4)
            continue; /* its outputs are planned */
        const char *what = it->op == OP_COPY ? "copy" : it->op == OP_DEQ ? "dequantized" : "fp8 e4m3";
        if ((st = add_out(p, it, t->name, it->out_dtype, t->ndim, t->shape, what, err)))
            break;
        if (is_fp8(it->out_dtype)) { /* its block scale: compressed-tensors' name */
            p->any_fp8_out = true;
            size_t pl = strlen(t->name);
            if (pl < 7 || strcmp(t->name + pl - 7, ".weight")) {
                st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: FP8 tensor %s is not a .weight", fn, t->name);
                break;
            }
            char sn[1100];
            snprintf(sn, sizeof sn, "%.*s.weight_scale", (int)(pl - 7), t->name);
            if (it->op == OP_COPY) {
                const dc_tensor *s = it->w.scale;
                if ((st = add_out(p, it, sn, s->dtype, s->ndim, s->shape, "fp8 block scales (copy)", err)))
                    break;
            } else {
                int64_t ss[2] = {(it->rows + 127) / 128, (it->cols + 127) / 128};
                if ((st = add_out(p, it, sn, DC_DT_F32, 2, ss, "fp8 block scales", err)))
                    break;
            }
            stats->n_fp8++;
        } else if (it->op == OP_DEQ)
            stats->n_dequant++;
        else
            stats->n_copied++;
    }
    free(ord);
    if (st)
        return st;
    if (p->layout != DC_I4_NONE && stats->n_quantized == 0)
        return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: --scope %s selects no projection of this model%s", ck->path,
                          scope == DC_I4_SCOPE_EXPERTS ? "experts" : scope == DC_I4_SCOPE_MLP ? "mlp" : "all",
                          scope == DC_I4_SCOPE_EXPERTS ? " (it has no routed experts; try --scope mlp or all)" : "");
    for (int k = 0; k < CAT_N; k++)
        if (p->storage[k] & (p->storage[k] - 1))
            return dc_err_set(err, DC_ERR_UNSUPPORTED,
                              "%s: the %s would be stored in more than one way (some FP8, some not); use --keep-attention bf16",
                              ck->path, CAT_NAMES[k]);
    uint64_t shard = o->max_shard_size ? o->max_shard_size : max_in_shard;
    if ((st = dc_stw_plan(p->w, shard, err)))
        return st;
    stats->bytes_out = dc_stw_total_bytes(p->w);
    stats->n_shards = dc_stw_n_shards(p->w);
    return DC_OK;
}

static void print_plan(FILE *f, const plan *p, const dc_int4_stats *s)
{
    fprintf(f, "%-64s %-8s %-8s %-8s %-16s %14s  %s\n", "tensor", "op", "from", "to", "shape", "bytes", "shard");
    for (size_t i = 0; i < dc_stw_count(p->w); i++) {
        const dc_stw_tensor *t = dc_stw_get(p->w, i);
        const item *it = &p->items[p->owner[i]];
        char sb[64];
        fprintf(f, "%-64s %-8s %-8s %-8s %-16s %14llu  %s  (%s)\n", t->name, OP_NAMES[it->op],
                it->src ? dc_dtype_name(it->src->dtype) : "-", dc_dtype_name(t->dtype),
                dc_shape_str(t->ndim, t->shape, sb, sizeof sb), (unsigned long long)t->nbytes,
                dc_stw_shard_name(p->w, t->shard), p->what[i]);
    }
    char b1[32], b2[32];
    fprintf(f,
            "total: %zu tensors in (%s), %zu out (%s) in %d shard(s): %zu quantized to 4 bits (%zu with an imatrix entry, "
            "%zu with a partial last group), %zu FP8, %zu dequantized, %zu copied, %zu dropped\n",
            s->n_tensors, dc_fmt_bytes(s->bytes_in, b1, sizeof b1), dc_stw_count(p->w),
            dc_fmt_bytes(s->bytes_out, b2, sizeof b2), s->n_shards, s->n_quantized, s->n_imatrix, s->n_partial, s->n_fp8,
            s->n_dequant, s->n_copied, s->n_dropped);
}

/* ================================================================================================
 * runtime configs
 * ================================================================================================ */

/* module-name patterns of each category, per config dialect */
static const char *CT_RE[CAT_N] = {
    "re:.*self_attn\\.(q_proj|k_proj|v_proj|q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj|indexer\\.wq_b|indexer\\.wk)$",
    "re:.*mlp\\.(gate|up|down)_proj$",
    "re:.*mlp\\.shared_experts\\.(gate|up|down)_proj$",
    "re:.*mlp\\.experts\\.\\d+\\.(gate|up|down)_proj$",
};

static cJSON *str_array(const char *const *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

static cJSON *ct_int4_args(const plan *p, const dc_int4_opts *o)
{
    cJSON *w = cJSON_CreateObject();
    bool mx = p->layout == DC_I4_MXFP4;
    cJSON_AddNumberToObject(w, "num_bits", 4);
    cJSON_AddStringToObject(w, "type", mx ? "float" : "int");
    cJSON_AddBoolToObject(w, "symmetric", p->sym);
    cJSON_AddNumberToObject(w, "group_size", p->group);
    cJSON_AddStringToObject(w, "strategy", "group");
    cJSON_AddNullToObject(w, "block_structure");
    cJSON_AddBoolToObject(w, "dynamic", false);
    cJSON_AddNullToObject(w, "actorder");
    if (mx)
        cJSON_AddStringToObject(w, "scale_dtype", "torch.uint8");
    else
        cJSON_AddNullToObject(w, "scale_dtype");
    if (p->sym)
        cJSON_AddNullToObject(w, "zp_dtype");
    else
        cJSON_AddStringToObject(w, "zp_dtype", "torch.int8");
    cJSON_AddStringToObject(w, "observer", o->clip ? "mse" : "minmax");
    cJSON_AddItemToObject(w, "observer_kwargs", cJSON_CreateObject());
    return w;
}

static cJSON *ct_fp8_group(const plan *p)
{
    cJSON *g = cJSON_CreateObject(), *t = cJSON_AddArrayToObject(g, "targets");
    for (int k = 0; k < CAT_N; k++)
        if (p->storage[k] & ST_FP8)
            cJSON_AddItemToArray(t, cJSON_CreateString(CT_RE[k]));
    cJSON *w = cJSON_AddObjectToObject(g, "weights");
    cJSON_AddNumberToObject(w, "num_bits", 8);
    cJSON_AddStringToObject(w, "type", "float");
    cJSON_AddBoolToObject(w, "symmetric", true);
    cJSON_AddNullToObject(w, "group_size");
    cJSON_AddStringToObject(w, "strategy", "block");
    cJSON *bs = cJSON_AddArrayToObject(w, "block_structure");
    cJSON_AddItemToArray(bs, cJSON_CreateNumber(128));
    cJSON_AddItemToArray(bs, cJSON_CreateNumber(128));
    cJSON_AddBoolToObject(w, "dynamic", false);
    cJSON_AddNullToObject(w, "actorder");
    cJSON_AddStringToObject(w, "observer", "minmax");
    cJSON_AddItemToObject(w, "observer_kwargs", cJSON_CreateObject());
    cJSON *a = cJSON_AddObjectToObject(g, "input_activations");
    cJSON_AddNumberToObject(a, "num_bits", 8);
    cJSON_AddStringToObject(a, "type", "float");
    cJSON_AddBoolToObject(a, "symmetric", true);
    cJSON_AddNumberToObject(a, "group_size", 128);
    cJSON_AddStringToObject(a, "strategy", "group");
    cJSON_AddNullToObject(a, "block_structure");
    cJSON_AddBoolToObject(a, "dynamic", true);
    cJSON_AddNullToObject(a, "actorder");
    cJSON_AddNullToObject(a, "observer");
    cJSON_AddItemToObject(a, "observer_kwargs", cJSON_CreateObject());
    cJSON_AddNullToObject(g, "output_activations");
    cJSON_AddStringToObject(g, "format", "float-quantized");
    return g;
}

/* the dense layers' prefixes, "model.layers.N.mlp." (AWQ substrings / ModelOpt wildcards) */
static void dense_prefixes(const plan *p, cJSON *arr, const char *fmt)
{
    char b[96];
    for (int i = 0; i < p->n_layers_total && i < 1024; i++)
        if (p->dense_layer[i]) {
            snprintf(b, sizeof b, fmt, i);
            cJSON_AddItemToArray(arr, cJSON_CreateString(b));
        }
}

static cJSON *quant_config(const plan *p, const dc_int4_opts *o)
{
    cJSON *q = cJSON_CreateObject();
    if (!q)
        return NULL;
    bool hi[CAT_N];
    for (int k = 0; k < CAT_N; k++)
        hi[k] = (p->storage[k] & ST_HI) != 0;
    switch (p->layout) {
    case DC_I4_CT:
    case DC_I4_MXFP4: {
        const char *fmt4 = p->layout == DC_I4_MXFP4 ? "mxfp4-pack-quantized" : "pack-quantized";
        cJSON_AddStringToObject(q, "quant_method", "compressed-tensors");
        cJSON_AddStringToObject(q, "format", p->any_fp8_out ? "mixed-precision" : fmt4);
        cJSON_AddStringToObject(q, "quantization_status", "compressed");
        cJSON *groups = cJSON_AddObjectToObject(q, "config_groups");
        cJSON *g0 = cJSON_AddObjectToObject(groups, "group_0");
        const char *lin = "Linear";
        cJSON_AddItemToObject(g0, "targets", str_array(&lin, 1));
        cJSON_AddItemToObject(g0, "weights", ct_int4_args(p, o));
        cJSON_AddNullToObject(g0, "input_activations");
        cJSON_AddNullToObject(g0, "output_activations");
        cJSON_AddStringToObject(g0, "format", fmt4);
        if (p->any_fp8_out)
            cJSON_AddItemToObject(groups, "group_1", ct_fp8_group(p));
        const char *always[] = {"lm_head", "re:.*mlp\\.gate$", "re:.*eh_proj$", "re:.*shared_head\\.head$",
                                "re:.*self_attn\\.indexer\\.weights_proj$" /* V3.2: kept BF16 */};
        cJSON *ig = str_array(always, p->has_indexer ? 5 : 4);
        for (int k = 0; k < CAT_N; k++)
            if (hi[k])
                cJSON_AddItemToArray(ig, cJSON_CreateString(CT_RE[k]));
        cJSON_AddItemToObject(q, "ignore", ig);
        cJSON_AddNullToObject(q, "kv_cache_scheme");
        cJSON_AddItemToObject(q, "sparsity_config", cJSON_CreateObject());
        break;
    }
    case DC_I4_GPTQ: {
        cJSON_AddStringToObject(q, "quant_method", "gptq");
        cJSON_AddNumberToObject(q, "bits", 4);
        cJSON_AddNumberToObject(q, "group_size", p->group);
        cJSON_AddBoolToObject(q, "desc_act", false);
        cJSON_AddBoolToObject(q, "sym", true);
        cJSON_AddBoolToObject(q, "static_groups", false);
        cJSON_AddBoolToObject(q, "true_sequential", true);
        cJSON_AddBoolToObject(q, "lm_head", false);
        cJSON_AddStringToObject(q, "checkpoint_format", "gptq");
        cJSON *dyn = cJSON_CreateObject();
        if (hi[CAT_ATTN])
            cJSON_AddItemToObject(dyn, "-:.*\\.self_attn\\..*", cJSON_CreateObject());
        if (hi[CAT_SHARED])
            cJSON_AddItemToObject(dyn, "-:.*\\.mlp\\.shared_experts\\..*", cJSON_CreateObject());
        if (hi[CAT_DENSE])
            for (int i = 0; i < p->n_layers_total && i < 1024; i++)
                if (p->dense_layer[i]) {
                    char b[96];
                    snprintf(b, sizeof b, "-:model\\.layers\\.%d\\.mlp\\..*", i);
                    cJSON_AddItemToObject(dyn, b, cJSON_CreateObject());
                }
        if (cJSON_GetArraySize(dyn))
            cJSON_AddItemToObject(q, "dynamic", dyn);
        else
            cJSON_Delete(dyn);
        break;
    }
    case DC_I4_AWQ: {
        cJSON_AddStringToObject(q, "quant_method", "awq");
        cJSON_AddNumberToObject(q, "bits", 4);
        cJSON_AddNumberToObject(q, "group_size", p->group);
        cJSON_AddBoolToObject(q, "zero_point", true);
        cJSON_AddStringToObject(q, "version", "gemm");
        cJSON *m = cJSON_CreateArray();
        if (hi[CAT_ATTN])
            cJSON_AddItemToArray(m, cJSON_CreateString("self_attn"));
        if (hi[CAT_SHARED])
            cJSON_AddItemToArray(m, cJSON_CreateString("shared_experts"));
        if (hi[CAT_DENSE])
            dense_prefixes(p, m, "model.layers.%d.mlp.");
        if (cJSON_GetArraySize(m))
            cJSON_AddItemToObject(q, "modules_to_not_convert", m);
        else {
            cJSON_Delete(m);
            cJSON_AddNullToObject(q, "modules_to_not_convert");
        }
        break;
    }
    case DC_I4_NVFP4: {
        cJSON_AddStringToObject(q, "quant_method", "modelopt");
        cJSON_AddStringToObject(q, "quant_algo", "NVFP4");
        cJSON_AddNumberToObject(q, "group_size", 16);
        cJSON_AddNullToObject(q, "kv_cache_scheme");
        const char *always[] = {"lm_head", "*mlp.gate", "*eh_proj*", "*shared_head*"};
        cJSON *ig = str_array(always, 4);
        if (hi[CAT_ATTN])
            cJSON_AddItemToArray(ig, cJSON_CreateString("*self_attn*"));
        if (hi[CAT_SHARED])
            cJSON_AddItemToArray(ig, cJSON_CreateString("*shared_experts*"));
        if (hi[CAT_DENSE])
            dense_prefixes(p, ig, "model.layers.%d.mlp.*");
        cJSON_AddItemToObject(q, "ignore", ig);
        break;
    }
    default:
        break;
    }
    return q;
}

typedef struct cfg_ctx {
    const plan *p;
    const dc_int4_opts *o;
} cfg_ctx;

static dc_status edit_config(cJSON *root, void *ctx, dc_err *err)
{
    const cfg_ctx *c = ctx;
    cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization_config");
    if (c->p->layout == DC_I4_NONE) {
        dc_json_set_string(root, "torch_dtype", c->o->float_dtype == DC_DT_F16 ? "float16"
                                                : c->o->float_dtype == DC_DT_F32 ? "float32" : "bfloat16");
    } else {
        cJSON *q = quant_config(c->p, c->o);
        if (!q)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        cJSON_AddItemToObject(root, "quantization_config", q);
    }
    if (c->o->drop_mtp && cJSON_GetObjectItemCaseSensitive(root, "num_nextn_predict_layers"))
        dc_json_set_number(root, "num_nextn_predict_layers", 0);
    return DC_OK;
}

/* ModelOpt's hf_quant_config.json (the legacy file vLLM and SGLang also read). */
static dc_status write_hf_quant_config(const plan *p, const char *dir, dc_err *err)
{
    cJSON *root = cJSON_CreateObject(), *prod = cJSON_AddObjectToObject(root, "producer");
    cJSON_AddStringToObject(prod, "name", "deepcast");
    cJSON_AddStringToObject(prod, "version", "1");
    cJSON *q = cJSON_AddObjectToObject(root, "quantization");
    cJSON_AddStringToObject(q, "quant_algo", "NVFP4");
    cJSON_AddNullToObject(q, "kv_cache_quant_algo");
    cJSON_AddNumberToObject(q, "group_size", 16);
    cJSON *qc = quant_config(p, NULL);
    cJSON *ig = qc ? cJSON_DetachItemFromObjectCaseSensitive(qc, "ignore") : NULL;
    cJSON_Delete(qc);
    cJSON_AddItemToObject(q, "exclude_modules", ig ? ig : cJSON_CreateArray());
    char *text = cJSON_Print(root), *path = dc_path_join(dir, "hf_quant_config.json");
    cJSON_Delete(root);
    dc_status st;
    if (!text || !path)
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    else {
        size_t l = strlen(text);
        text[l] = '\n';
        st = dc_write_file_atomic(path, text, l + 1, err);
    }
    free(text);
    free(path);
    return st;
}

/* ================================================================================================
 * compatibility rules of the runtimes (docs/int4.md)
 * ================================================================================================ */

typedef struct rule {
    const char *text;
    size_t n;
    char example[200];
} rule;

static void rule_hit(rule *r, const item *it)
{
    if (!r->n++)
        snprintf(r->example, sizeof r->example, "%s [%lld, %lld]", it->src->name, (long long)it->rows,
                 (long long)it->cols);
}

static size_t compat_report(FILE *f, const plan *p, const dc_config *c, const dc_int4_opts *o)
{
    if (o->runtime == DC_I4_RT_NONE || p->layout == DC_I4_NONE)
        return 0;
    bool vllm = o->runtime == DC_I4_RT_VLLM;
    bool intl = p->layout == DC_I4_CT || p->layout == DC_I4_GPTQ || p->layout == DC_I4_AWQ;
    enum { R_GROUP, R_TILE, R_MOE, R_FUSED, R_SGL, R_NVFP4, R_N };
    rule r[R_N] = {
        {"K % group_size == 0 (every runtime: no partial last group)", 0, ""},
        {"dense linears: N % 64 == 0 and K % 128 == 0 (Marlin thread tiles; recent vLLM pads them)", 0, ""},
        {"routed experts: hidden_size % 128 == 0 and moe_intermediate_size % max(64, group_size) == 0 (fused MoE Marlin)", 0, ""},
        {"fused modules have equal schemes: gate_proj + up_proj, q_a_proj + kv_a_proj_with_mqa, all experts of a layer", 0, ""},
        {"q_a_proj, kv_a_proj_with_mqa and kv_b_proj stay BF16 or FP8 (SGLang's MLA reads them directly)", 0, ""},
        {"NVFP4 W4A4 kernels need compute capability 10.0 (Blackwell); others run the Marlin W4A16 path", 0, ""},
    };
    /* per layer: the op of gate/up, q_a/kv_a, experts */
    for (size_t i = 0; i < p->n_items; i++) {
        const item *it = &p->items[i];
        if (!it->src || it->cat < 0)
            continue;
        if (it->op == OP_I4) {
            if (it->cols % it->group)
                rule_hit(&r[R_GROUP], it);
            if (intl || p->layout == DC_I4_MXFP4 || p->layout == DC_I4_NVFP4) {
                if (it->cat == CAT_EXPERTS) {
                    int64_t I = c->moe_intermediate_size, g = it->group > 64 ? it->group : 64;
                    if (c->hidden_size % 128 || I % g)
                        rule_hit(&r[R_MOE], it);
                } else if (it->rows % 64 || it->cols % 128)
                    rule_hit(&r[R_TILE], it);
            }
            if (!vllm && (it->role == DC_ROLE_Q_A_PROJ || it->role == DC_ROLE_KV_A_PROJ || it->role == DC_ROLE_KV_B_PROJ))
                rule_hit(&r[R_SGL], it);
        }
        /* fused partners: same op (and so the same scheme) in the same layer */
        dc_role partner = it->role == DC_ROLE_MLP_GATE ? DC_ROLE_MLP_UP : it->role == DC_ROLE_SHEXP_GATE ? DC_ROLE_SHEXP_UP
                          : it->role == DC_ROLE_Q_A_PROJ ? DC_ROLE_KV_A_PROJ : it->role == DC_ROLE_EXP_GATE ? DC_ROLE_EXP_UP
                          : DC_ROLE_UNKNOWN;
        for (size_t j = 0; partner != DC_ROLE_UNKNOWN && j < p->n_items; j++) {
            const item *b = &p->items[j];
            if (b->src && b->layer == it->layer && (b->role == partner || (it->role == DC_ROLE_EXP_GATE &&
                                                                          (b->role == DC_ROLE_EXP_DOWN || b->role == DC_ROLE_EXP_GATE))) &&
                (b->op != it->op || (b->op == OP_I4 && b->group != it->group)))
                rule_hit(&r[R_FUSED], it);
        }
    }
    if (p->layout == DC_I4_NVFP4)
        r[R_NVFP4].n = 0; /* a note, not a failure */
    const char *lay = dc_int4_target_name(p->layout);
    fprintf(f, "compatibility with %s (%s, group %d, %s):\n", vllm ? "vLLM" : "SGLang", lay, p->group,
            p->sym ? "symmetric" : "asymmetric");
    size_t bad = 0;
    for (int k = 0; k < R_N; k++) {
        if (k == R_SGL && vllm)
            continue;
        if (k == R_NVFP4) {
            if (p->layout == DC_I4_NVFP4)
                fprintf(f, "  note  %s; input_scale is 1.0 (not calibrated: activation amax assumed <= 2688)\n", r[k].text);
            continue;
        }
        if (k == R_TILE && !(intl || p->layout == DC_I4_MXFP4 || p->layout == DC_I4_NVFP4))
            continue;
        if (r[k].n) {
            bad++;
            fprintf(f, "  FAIL  %s: %zu tensor(s), e.g. %s\n", r[k].text, r[k].n, r[k].example);
        } else
            fprintf(f, "  ok    %s\n", r[k].text);
    }
    if (p->layout == DC_I4_GPTQ)
        fprintf(f, "  ok    GPTQ Marlin: symmetric, desc_act false (as written)\n");
    if (p->layout == DC_I4_AWQ)
        fprintf(f, "  ok    AWQ: N %% 8 == 0 (checked when planning)\n");
    fprintf(f, "compatibility: %zu problem(s)\n", bad);
    return bad;
}

/* ================================================================================================
 * execution
 * ================================================================================================ */

typedef struct unit {
    size_t item;
    uint64_t a, b; /* rows [a, b) or bytes [a, b) */
} unit;

typedef struct tbuf {
    float *f;     /* rows as f32 */
    uint8_t *q;   /* codes */
    float *s;     /* scales */
    uint8_t *z;   /* zero points / 8-bit scales */
    uint8_t *o;   /* packed output */
    uint8_t *o2;  /* packed scales / zeros */
    size_t cap_f, cap_g;
} tbuf;

static void tbuf_free(tbuf *b)
{
    free(b->f);
    free(b->q);
    free(b->s);
    free(b->z);
    free(b->o);
    free(b->o2);
    memset(b, 0, sizeof *b);
}

static bool tbuf_need(tbuf *b, size_t nf, size_t ng)
{
    if (nf > b->cap_f) {
        free(b->f);
        free(b->q);
        free(b->o);
        b->f = malloc(nf * sizeof *b->f);
        b->q = malloc(nf + 64);
        b->o = malloc(nf * 4 + 64); /* fp8 codes + scales, or packed words */
        b->cap_f = b->f && b->q && b->o ? nf : 0;
        if (!b->cap_f)
            return false;
    }
    if (ng > b->cap_g) {
        free(b->s);
        free(b->z);
        free(b->o2);
        b->s = malloc(ng * sizeof *b->s);
        b->z = malloc(ng + 64);
        b->o2 = malloc(ng * 4 + 64);
        b->cap_g = b->s && b->z && b->o2 ? ng : 0;
        if (!b->cap_g)
            return false;
    }
    return true;
}

static int read_mode(const plan *p, const item *it)
{
    if (p->layout == DC_I4_NONE)
        return it->out_dtype == DC_DT_BF16 ? DC_DEQ_BF16_ROUND : DC_DEQ_EXACT;
    return DC_DEQ_BF16_ROUND; /* the bf16 model (DeepSeek's fp8_cast_bf16 for FP8 inputs) */
}

static dc_status check_finite(const item *it, const float *f, uint64_t a, size_t n, int64_t cols, dc_err *err)
{
    const int64_t i = dc_first_nonfinite(f, n);
    if (i >= 0)
        return dc_err_set(err, DC_ERR_INPUT, "tensor %s: non-finite value at row %lld, column %lld; cannot quantize",
                          it->src->name, (long long)(a + (uint64_t)i / (uint64_t)cols), (long long)(i % cols));
    return DC_OK;
}

static dc_status amax_unit(const plan *p, const unit *u, tbuf *b, float *out, dc_err *err)
{
    const item *it = &p->items[u->item];
    int64_t nr = (int64_t)(u->b - u->a), K = it->cols;
    if (!tbuf_need(b, (size_t)(nr * K), 1))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory for %lld values of %s", (long long)(nr * K), it->src->name);
    dc_status st = dc_weight_rows(&it->w, (int64_t)u->a, nr, b->f, read_mode(p, it), err);
    dc_weight_release(&it->w, (int64_t)u->a, nr);
    if (st || (st = check_finite(it, b->f, u->a, (size_t)(nr * K), K, err)))
        return st;
    float m = 0;
    for (int64_t i = 0; i < nr * K; i++)
        m = fabsf(b->f[i]) > m ? fabsf(b->f[i]) : m;
    *out = m;
    return DC_OK;
}

static dc_status write_scales_hi(const plan *p, size_t wi, const float *s, size_t n, uint64_t off_elems, dc_dtype dt,
                                 uint8_t *tmp, dc_err *err)
{
    (void)p;
    if (dt == DC_DT_F32)
        return dc_stw_write(p->w, wi, off_elems * 4, s, n * 4, err);
    dc_dtype_from_f32(dt, s, tmp, (int64_t)n);
    return dc_stw_write(p->w, wi, off_elems * 2, tmp, n * 2, err);
}

static dc_status i4_pack(const plan *p, const item *it, const unit *u, tbuf *b, dc_err *err);

/* GPTQ: group g of a row starts: its scale from the row's current values w[k0..k0+kn) */
static void gptq_group(dc_i4_layout L, const double *w, int64_t k0, int64_t kn, const float *imp, bool sym, bool clip,
                       dc_dtype sdt, float ws2, float *cur, uint8_t *q, float *s, uint8_t *z)
{
    const float *ig = imp ? imp + k0 : NULL;
    for (int64_t k = 0; k < kn; k++)
        cur[k] = (float)w[k0 + k];
    if (L == DC_I4_NVFP4 || L == DC_I4_MXFP4) {
        *s = 0; /* FP4: the scale code is in *z */
        *z = L == DC_I4_NVFP4 ? dc_i4_quant_nvfp4(cur, ig, (int)kn, ws2, clip, q + k0)
                              : dc_i4_quant_mxfp4(cur, ig, (int)kn, clip, q + k0);
    } else {
        dc_i4_quant_int(cur, ig, (int)kn, sym, clip, sdt, q + k0, s, z);
    }
}

/* GPTQ: column i of a row, in its group's scale (s, z): the code (into *q) and the dequantized
 * value, with the same rounding as the group quantizers */
static inline float gptq_code(dc_i4_layout L, double wi, float s, int z, float ws2, uint8_t *q)
{
    const float v = (float)wi;
    if (L == DC_I4_NVFP4) {
        const float e4 = dc_e4m3_table()[z];
        *q = dc_e2m1_encode(v / (e4 * ws2));
        return (dc_e2m1_decode(*q) * e4) * ws2;
    }
    if (L == DC_I4_MXFP4) {
        *q = dc_e2m1_encode(ldexpf(v, 127 - z));
        return ldexpf(dc_e2m1_decode(*q), z - 127);
    }
    int c = clampi((int)nearbyintf(v / s) + z, 0, 15);
    *q = (uint8_t)c;
    return (float)(c - z) * s;
}

void dc_i4_gptq_row(dc_i4_layout L, const float *x, int64_t K, int64_t grp, const float *imp, const double *U,
                    bool sym, bool clip, dc_dtype sdt, float ws2, double *w, float *cur, uint8_t *q, float *s,
                    uint8_t *z)
{
    const int64_t G = (K + grp - 1) / grp;
    for (int64_t k = 0; k < K; k++)
        w[k] = x[k];
    for (int64_t g = 0; g < G; g++) {
        const int64_t k0 = g * grp, kn = K - k0 < grp ? K - k0 : grp;
        gptq_group(L, w, k0, kn, imp, sym, clip, sdt, ws2, cur, q, &s[g], &z[g]);
        for (int64_t i = k0; i < k0 + kn; i++)
            dc_gptq_update(w, U, K, i, gptq_code(L, w[i], s[g], z[g], ws2, &q[i]));
    }
}

/* w[r][j] -= e[r] * u[j] for r < nr, j in [j0, K): the rows' compensation by one row of U (each
 * element's product rounded, then subtracted: dc_gptq_update's operations) */
__attribute__((target_clones("avx2", "default"))) static void gptq_update_rows(double *w, int64_t K, int nr,
                                                                              const double *e, const double *u,
                                                                              int64_t j0)
{
    for (int r = 0; r < nr; r++) {
        double *wr = w + r * K;
        const double er = e[r];
#pragma omp simd
        for (int64_t j = j0; j < K; j++)
            wr[j] -= er * u[j];
    }
}

void dc_i4_gptq_rows(dc_i4_layout L, const float *x, int64_t n, int64_t K, int64_t grp, const float *imp,
                     const double *U, bool sym, bool clip, dc_dtype sdt, float ws2, double *w, float *cur, uint8_t *q,
                     float *s, uint8_t *z)
{
    const int64_t G = (K + grp - 1) / grp;
    for (int64_t r0 = 0; r0 < n; r0 += DC_GPTQ_RB) {
        const int nr = (int)(n - r0 < DC_GPTQ_RB ? n - r0 : DC_GPTQ_RB);
        for (int64_t k = 0; k < nr * K; k++)
            w[k] = x[r0 * K + k];
        for (int64_t g = 0; g < G; g++) {
            const int64_t k0 = g * grp, kn = K - k0 < grp ? K - k0 : grp;
            for (int r = 0; r < nr; r++)
                gptq_group(L, w + r * K, k0, kn, imp, sym, clip, sdt, ws2, cur, q + (r0 + r) * K,
                           &s[(r0 + r) * G + g], &z[(r0 + r) * G + g]);
            for (int64_t i = k0; i < k0 + kn; i++) {
                const double *ui = U + i * K;
                double e[DC_GPTQ_RB];
                for (int r = 0; r < nr; r++) {
                    const int64_t rg = (r0 + r) * G + g;
                    const double wi = w[r * K + i];
                    e[r] = (wi - gptq_code(L, wi, s[rg], z[rg], ws2, &q[(r0 + r) * K + i])) / ui[i];
                }
                gptq_update_rows(w, K, nr, e, ui, i + 1);
            }
        }
    }
}


/* GPTQ over the unit's rows (b->f) into b->q, b->s, b->z. */
static bool gptq_rows(const plan *p, const item *it, const dc_int4_opts *o, int64_t nr, tbuf *b)
{
    const int64_t K = it->cols;
    double *w = malloc((size_t)(DC_GPTQ_RB * K) * sizeof *w);
    float *cur = malloc((size_t)it->group * sizeof *cur);
    if (!w || !cur) {
        free(w);
        free(cur);
        return false;
    }
    const dc_dtype sdt = p->layout == DC_I4_CT ? p->hi_dtype : DC_DT_F16;
    dc_i4_gptq_rows(p->layout, b->f, nr, K, it->group, it->imp, it->gptq_u, p->sym, o->clip, sdt, it->ws2, w, cur, b->q,
                    b->s, b->z);
    free(w);
    free(cur);
    return true;
}

static dc_status i4_unit(const plan *p, const unit *u, const dc_int4_opts *o, tbuf *b, dc_err *err)
{
    const item *it = &p->items[u->item];
    const int64_t K = it->cols, G = it->G, grp = it->group, a = (int64_t)u->a;
    const int64_t nr = (int64_t)(u->b - u->a);
    if (!tbuf_need(b, (size_t)(nr * K), (size_t)(nr * G)))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory for %lld values of %s", (long long)(nr * K), it->src->name);
    dc_status st = dc_weight_rows(&it->w, a, nr, b->f, read_mode(p, it), err);
    dc_weight_release(&it->w, a, nr);
    if (st || (st = check_finite(it, b->f, u->a, (size_t)(nr * K), K, err)))
        return st;
    const dc_i4_layout L = p->layout;
    const dc_dtype sdt = L == DC_I4_CT ? p->hi_dtype : DC_DT_F16;
    const float ws2 = it->ws2;
    if (it->gptq_u)
        return gptq_rows(p, it, o, nr, b) ? i4_pack(p, it, u, b, err)
                                          : dc_err_set(err, DC_ERR_NOMEM, "out of memory (GPTQ row of %s)", it->src->name);
    for (int64_t r = 0; r < nr; r++)
        for (int64_t g = 0; g < G; g++) {
            int64_t k0 = g * grp, kn = K - k0 < grp ? K - k0 : grp;
            const float *x = b->f + r * K + k0;
            const float *imp = it->imp ? it->imp + k0 : NULL;
            uint8_t *q = b->q + r * K + k0;
            if (L == DC_I4_NVFP4)
                b->z[r * G + g] = dc_i4_quant_nvfp4(x, imp, (int)kn, ws2, o->clip, q);
            else if (L == DC_I4_MXFP4)
                b->z[r * G + g] = dc_i4_quant_mxfp4(x, imp, (int)kn, o->clip, q);
            else
                dc_i4_quant_int(x, imp, (int)kn, p->sym, o->clip, sdt, q, &b->s[r * G + g], &b->z[r * G + g]);
        }
    return i4_pack(p, it, u, b, err);
}

/* Packs and writes the codes, scales and zeros of a unit's rows (b->q, b->s, b->z). */
static dc_status i4_pack(const plan *p, const item *it, const unit *u, tbuf *b, dc_err *err)
{
    const int64_t N = it->rows, K = it->cols, G = it->G, a = (int64_t)u->a;
    const int64_t nr = (int64_t)(u->b - u->a);
    const dc_i4_layout L = p->layout;
    dc_status st;
    uint32_t *w32 = (uint32_t *)(void *)b->o, *z32 = (uint32_t *)(void *)b->o2;
    switch (L) {
    case DC_I4_CT: {
        int64_t Kw = (K + 7) / 8;
        dc_i4_pack_ct(b->q, nr, K, w32);
        if ((st = dc_stw_write(p->w, it->wi[0], (uint64_t)(a * Kw * 4), w32, (size_t)(nr * Kw * 4), err)) ||
            (st = write_scales_hi(p, it->wi[1], b->s, (size_t)(nr * G), (uint64_t)(a * G), p->hi_dtype, b->o, err)))
            return st;
        if (!p->sym) {
            dc_i4_pack_zeros_ct(b->z, nr, G, z32);
            st = dc_stw_write(p->w, it->wi[2], (uint64_t)(a / 8 * G * 4), z32, (size_t)((nr + 7) / 8 * G * 4), err);
        }
        return st;
    }
    case DC_I4_GPTQ:
    case DC_I4_AWQ: {
        /* qweight, qzeros and scales are [K-ish][N]: a block of rows is a strided piece of each. The
         * tensor's three outputs are assembled in memory (N*K/2 + small bytes, an eighth of its f32
         * size) and written whole by the unit that completes it. */
        bool awq = L == DC_I4_AWQ;
        item *mit = &p->items[u->item];
        int64_t Nw = (N + 7) / 8, nw = (nr + 7) / 8;
        size_t qb = (size_t)(N * K / 2), zb = (size_t)(G * Nw * 4), sb = (size_t)(G * N * 2);
        bool oom = false;
#pragma omp critical(dc_int4_asm)
        {
            if (!mit->asm_buf && !(mit->asm_buf = calloc(1, qb + zb + sb)))
                oom = true;
        }
        if (oom)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory for the %zu packed bytes of %s", qb + zb + sb,
                              it->src->name);
        uint8_t *qd = mit->asm_buf, *zd = qd + qb, *sd = zd + zb;
        if (awq) { /* [K][N/8]: a run of nr/8 words per input column */
            dc_i4_pack_awq(b->q, nr, K, w32);
            for (int64_t k = 0; k < K; k++)
                memcpy(qd + (k * Nw + a / 8) * 4, w32 + k * nw, (size_t)(nw * 4));
            dc_i4_pack_zeros_awq(b->z, nr, G, z32);
        } else { /* [K/8][N]: a run of nr words per 8 input columns */
            dc_i4_pack_gptq(b->q, nr, K, w32);
            for (int64_t w = 0; w < K / 8; w++)
                memcpy(qd + (w * N + a) * 4, w32 + w * nr, (size_t)(nr * 4));
            dc_i4_pack_zeros_gptq(b->z, nr, G, 1, z32);
        }
        for (int64_t g = 0; g < G; g++) {
            memcpy(zd + (g * Nw + a / 8) * 4, z32 + g * nw, (size_t)(nw * 4));
            for (int64_t r = 0; r < nr; r++) { /* scales [G][N] F16 */
                uint16_t h = dc_f32_to_f16(b->s[r * G + g]);
                memcpy(sd + (g * N + a + r) * 2, &h, 2);
            }
        }
        int64_t left;
#pragma omp critical(dc_int4_asm)
        left = --mit->asm_left;
        if (left)
            return DC_OK;
        if (!(st = dc_stw_write(p->w, it->wi[0], 0, qd, qb, err)) && !(st = dc_stw_write(p->w, it->wi[1], 0, zd, zb, err)))
            st = dc_stw_write(p->w, it->wi[2], 0, sd, sb, err);
        free(mit->asm_buf);
        mit->asm_buf = NULL;
        return st;
    }
    case DC_I4_NVFP4:
    case DC_I4_MXFP4:
        dc_fp4_pack(b->q, nr, K, b->o);
        if ((st = dc_stw_write(p->w, it->wi[0], (uint64_t)(a * (K / 2)), b->o, (size_t)(nr * (K / 2)), err)))
            return st;
        return dc_stw_write(p->w, it->wi[1], (uint64_t)(a * G), b->z, (size_t)(nr * G), err);
    default:
        return dc_err_set(err, DC_ERR_INTERNAL, "layout %d", (int)L);
    }
}

static dc_status run_unit(const plan *p, const unit *u, const dc_int4_opts *o, tbuf *b, dc_err *err)
{
    const item *it = &p->items[u->item];
    switch (it->op) {
    case OP_CONST:
        return dc_stw_write(p->w, it->wi[0], 0, it->cbuf, it->clen, err);
    case OP_COPY: {
        if (!it->src->data)
            return dc_err_set(err, DC_ERR_INTERNAL, "tensor %s has no stored bytes", it->src->name);
        dc_status st;
        if (u->a == 0 && it->nw > 1) { /* an FP8 weight kept as is: its scale follows */
            const dc_tensor *s = it->w.scale;
            if ((st = dc_stw_write(p->w, it->wi[1], 0, s->data, (size_t)s->nbytes, err)))
                return st;
        }
        st = dc_stw_write(p->w, it->wi[0], u->a, it->src->data + u->a, (size_t)(u->b - u->a), err);
        dc_map_release(it->src->data + u->a, (size_t)(u->b - u->a));
        return st;
    }
    case OP_I4:
        return i4_unit(p, u, o, b, err);
    default:
        break;
    }
    int64_t nr = (int64_t)(u->b - u->a), cols = it->cols;
    size_t n = (size_t)(nr * cols);
    if (!tbuf_need(b, n, 1))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory for %zu values of %s", n, it->src->name);
    dc_status st = dc_weight_rows(&it->w, (int64_t)u->a, nr, b->f, read_mode(p, it), err);
    dc_weight_release(&it->w, (int64_t)u->a, nr);
    if (st)
        return st;
    if (it->op == OP_DEQ) {
        int esz = dc_dtype_size(it->out_dtype);
        dc_dtype_from_f32(it->out_dtype, b->f, b->o, (int64_t)n);
        return dc_stw_write(p->w, it->wi[0], u->a * (uint64_t)cols * (uint64_t)esz, b->o, n * (size_t)esz, err);
    }
    /* OP_FP8: one 128-row block, DeepSeek's FP8 block layout */
    if ((st = check_finite(it, b->f, u->a, n, cols, err)))
        return st;
    int64_t ncb = (cols + 127) / 128;
    float *scales = (float *)(void *)(b->o + ((n + 15) & ~(size_t)15));
    dc_fp8_quantize_row_block(b->f, nr, cols, 128, DC_FP8_SCALE_F32, b->o, scales);
    if ((st = dc_stw_write(p->w, it->wi[0], u->a * (uint64_t)cols, b->o, n, err)))
        return st;
    return dc_stw_write(p->w, it->wi[1], u->a / 128 * (uint64_t)ncb * 4, scales, (size_t)ncb * 4, err);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* rows per unit of a quantized tensor: about 1 MiB of f32, a multiple of 8 */
static uint64_t i4_rows(const item *it)
{
    uint64_t r = ((uint64_t)(1u << 18) / (uint64_t)(it->cols > 0 ? it->cols : 1)) & ~(uint64_t)7;
    const uint64_t lo = it->gptq_u ? DC_GPTQ_RB : 8; /* GPTQ: at least one full block of rows */
    return r < lo ? lo : r;
}

static dc_status make_units(plan *p, bool amax_pass, unit **out, size_t *n_out, dc_err *err)
{
    size_t n = 0, cap = 0;
    unit *u = NULL;
    for (size_t i = 0; i < p->n_items; i++) {
        const item *it = &p->items[i];
        if (amax_pass && !(it->op == OP_I4 && p->layout == DC_I4_NVFP4))
            continue;
        uint64_t total, step;
        switch (it->op) {
        case OP_COPY: total = it->src->nbytes; step = 64u << 20; break;
        case OP_CONST: total = 1; step = 1; break;
        case OP_FP8: total = (uint64_t)it->rows; step = 128; break;
        case OP_I4: total = (uint64_t)it->rows; step = i4_rows(it); break;
        default: total = (uint64_t)it->rows; step = it->cols > 0 ? ((8u << 20) / (uint64_t)it->cols) + 1 : 1; break;
        }
        for (uint64_t a = 0; a < total || (total == 0 && a == 0); a += step) {
            if (!dc_grow((void **)&u, &cap, n + 1, sizeof *u)) {
                free(u);
                return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            }
            u[n++] = (unit){i, a, a + step < total ? a + step : total};
            if (!amax_pass && it->op == OP_I4)
                p->items[i].asm_left++;
            if (total == 0)
                break;
        }
    }
    *out = u;
    *n_out = n;
    return DC_OK;
}

typedef struct i4run {
    const plan *p;
    const dc_int4_opts *o;
    const unit *units;
    float *amax; /* the amax pass: one value per unit */
} i4run;

static dc_status i4run_unit(void *ctx, size_t k, void *tls, dc_err *err)
{
    const i4run *r = ctx;
    return r->amax ? amax_unit(r->p, &r->units[k], tls, &r->amax[k], err) : run_unit(r->p, &r->units[k], r->o, tls, err);
}

static void tbuf_release(void *tls) { tbuf_free(tls); }

static dc_status run_units(const plan *p, const dc_int4_opts *o, const unit *units, size_t n_units, float *amax,
                           const char *what, dc_err *err)
{
    i4run rc = {p, o, units, amax};
    char label[64];
    snprintf(label, sizeof label, "convert: %s", what);
    dc_par_job job = {n_units, i4run_unit, &rc, sizeof(tbuf), tbuf_release, o->progress ? label : NULL, NULL, 0};
    return dc_par_run(&job, err);
}

static dc_status execute(plan *p, const dc_int4_opts *o, dc_err *err)
{
    unit *units = NULL;
    size_t n = 0;
    dc_status st;
    if (p->layout == DC_I4_NVFP4) { /* pass 1: each tensor's amax -> weight_scale_2 */
        if ((st = make_units(p, true, &units, &n, err)))
            return st;
        float *am = calloc(n + 1, sizeof *am);
        if (!am) {
            free(units);
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        }
        st = run_units(p, o, units, n, am, "amax", err);
        for (size_t k = 0; k < n && !st; k++) {
            item *it = &p->items[units[k].item];
            it->amax = am[k] > it->amax ? am[k] : it->amax;
        }
        free(am);
        free(units);
        if (st)
            return st;
        for (size_t i = 0; i < p->n_items; i++) {
            item *it = &p->items[i];
            if (it->op != OP_I4)
                continue;
            it->ws2 = dc_i4_nvfp4_global(it->amax);
            memcpy(p->items[it->ws2_item].cbuf, &it->ws2, 4);
        }
    }
    if ((st = make_units(p, false, &units, &n, err)))
        return st;
    st = run_units(p, o, units, n, NULL, "quantize", err);
    free(units);
    return st;
}

/* Is the output directory inside the input directory (or the same)? */
static bool out_inside_in(const char *in_dir, const char *out)
{
    char in_real[PATH_MAX], parent_real[PATH_MAX];
    if (!realpath(in_dir, in_real))
        return false;
    char *copy = dc_strdup(out);
    if (!copy)
        return false;
    size_t l = strlen(copy);
    while (l > 1 && copy[l - 1] == '/')
        copy[--l] = 0;
    char *slash = strrchr(copy, '/');
    const char *parent = slash ? (slash == copy ? "/" : (*slash = 0, copy)) : ".";
    bool r = false;
    if (realpath(parent, parent_real)) {
        char full[PATH_MAX + 256];
        snprintf(full, sizeof full, "%s/%s", parent_real, dc_path_base(out));
        size_t n = strlen(in_real);
        r = !strcmp(full, in_real) || (!strncmp(full, in_real, n) && full[n] == '/');
    }
    free(copy);
    return r;
}

static void plan_free(plan *p)
{
    for (size_t i = 0; i < p->n_items; i++) {
        free(p->items[i].asm_buf);
        free(p->items[i].cbuf);
        free(p->items[i].imp);
    }
    free(p->items);
    free(p->owner);
    free(p->what);
    dc_stw_free(p->w);
}

dc_status dc_int4_convert(const char *in_path, const char *out_dir, const dc_int4_opts *o, FILE *planf,
                          dc_int4_stats *stats, dc_err *err)
{
    memset(stats, 0, sizeof *stats);
    double t0 = now_s();
    plan p;
    memset(&p, 0, sizeof p);
    p.layout = o->layout;
    bool fp4 = o->layout == DC_I4_NVFP4 || o->layout == DC_I4_MXFP4;
    p.group = o->group ? o->group : o->layout == DC_I4_NVFP4 ? 16 : o->layout == DC_I4_MXFP4 ? 32 : 128;
    p.sym = o->sym == -1 ? o->layout != DC_I4_AWQ : o->sym == 1;
    if (o->layout != DC_I4_NONE) {
        if (fp4 && p.group != (o->layout == DC_I4_NVFP4 ? 16 : 32))
            return dc_err_set(err, DC_ERR_USAGE, "--to %s has a fixed group size of %d", dc_int4_target_name(o->layout),
                              o->layout == DC_I4_NVFP4 ? 16 : 32);
        if (!fp4 && p.group != 32 && p.group != 64 && p.group != 128)
            return dc_err_set(err, DC_ERR_USAGE, "--group-size must be 32, 64 or 128, got %d", p.group);
        if (!p.sym && (fp4 || o->layout == DC_I4_GPTQ))
            return dc_err_set(err, DC_ERR_USAGE, "--to %s is symmetric only (--asym applies to w4a16 and awq)",
                              dc_int4_target_name(o->layout));
        if (o->keep == DC_I4_KEEP_FP8 && !layout_holds_fp8(o->layout))
            return dc_err_set(err, DC_ERR_USAGE,
                              "--to %s cannot hold FP8 weights next to its 4-bit ones; use --keep-attention bf16 "
                              "(compressed-tensors layouts, w4a16 and mxfp4, can)", dc_int4_target_name(o->layout));
    }
    dc_ckpt *ck = NULL;
    dc_i4_imatrix *im = NULL;
    dc_status st = dc_ckpt_open(in_path, &ck, err);
    if (st)
        return st;
    dc_outdir od = {0};
    if ((st = dc_ckpt_require_config(ck, err)))
        goto done;
    if (!dc_is_dir(in_path)) {
        st = dc_err_set(err, DC_ERR_USAGE, "%s: convert needs a checkpoint directory (config.json + shards)", in_path);
        goto done;
    }
    if (o->layout == DC_I4_NONE && !ck->int4) {
        st = dc_err_set(err, DC_ERR_INTERNAL, "%s: not a 4-bit checkpoint", in_path);
        goto done;
    }
    if (out_inside_in(ck->dir, out_dir)) {
        st = dc_err_set(err, DC_ERR_USAGE, "output %s is inside the input directory %s", out_dir, ck->dir);
        goto done;
    }
    if (o->imatrix && o->layout != DC_I4_NONE && (st = dc_i4_imatrix_load(o->imatrix, &im, err)))
        goto done;
    p.hi_dtype = hi_dtype_of(&ck->cfg);
    p.n_layers_total = ck->cfg.n_layers + ck->cfg.n_mtp_layers;
    p.has_indexer = ck->cfg.index_n_heads > 0;
    for (int i = 0; i < p.n_layers_total && i < 1024; i++)
        p.dense_layer[i] = !dc_config_layer_is_moe(&ck->cfg, i);
    if ((st = build_plan(ck, o, im, &p, stats, err)))
        goto done;
    if (o->dry_run) {
        FILE *f = planf ? planf : stdout;
        print_plan(f, &p, stats);
        stats->n_compat = compat_report(f, &p, &ck->cfg, o);
        goto done;
    }
    stats->n_compat = compat_report(stderr, &p, &ck->cfg, o);
    cfg_ctx cc = {&p, o};
    if ((st = dc_outdir_open(&od, out_dir, o->force, err)))
        goto done;
    if ((st = dc_ckdir_write_config(ck->dir, od.tmp_path, edit_config, &cc, err)) ||
        (st = dc_ckdir_copy_aux(ck->dir, od.tmp_path, err))) {
        dc_outdir_abort(&od);
        goto done;
    }
    /* a runtime's side config of the input layout must not describe the output */
    const char *stale[] = {"hf_quant_config.json", "quantize_config.json", "quant_config.json"};
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++) {
        char *sp = dc_path_join(od.tmp_path, stale[i]);
        if (sp)
            unlink(sp);
        free(sp);
    }
    if ((o->layout == DC_I4_NVFP4 && (st = write_hf_quant_config(&p, od.tmp_path, err))) ||
        (st = dc_stw_open(p.w, od.tmp_path, err)) || (st = execute(&p, o, err)) || (st = dc_stw_finish(p.w, err))) {
        dc_stw_abort(p.w);
        dc_outdir_abort(&od);
        goto done;
    }
    st = dc_outdir_commit(&od, err);
done:
    stats->seconds = now_s() - t0;
    plan_free(&p);
    dc_i4_imatrix_free(im);
    dc_ckpt_close(ck);
    return st;
}
