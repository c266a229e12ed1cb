#include "dc_prune.h"
#include "dc_ckdir.h"
#include "dc_float.h"
#include "dc_fp8.h"
#include "dc_io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void dc_prune_opts_init(dc_prune_opts *o)
{
    memset(o, 0, sizeof *o);
    o->holdout = 0.25;
    dc_fwd_opts_default(&o->fwd);
}

/* ---- selection ----------------------------------------------------------------------------- */

typedef struct selection {
    int n_moe, E, K;
    int mtp_layer;      /* the MTP layer's index when it is evaluated (and pruned), else -1 */
    const int *layers;  /* [n_moe] layer index (the model's list) */
    double *freq, *wsum; /* [n_moe][E] routing statistics */
    int32_t *newid;     /* [n_moe][E] new index, -1 if removed */
    int32_t *into;      /* [n_moe][E] merge target (old id) of a removed expert, -1 otherwise */
} selection;

static void sel_free(selection *s)
{
    free(s->freq);
    free(s->wsum);
    free(s->newid);
    free(s->into);
}

static int moe_slot(const selection *s, int layer)
{
    for (int i = 0; i < s->n_moe; i++)
        if (s->layers[i] == layer)
            return i;
    return -1;
}

static dc_status calibrate(dc_model *m, const int32_t *ids, int64_t n, int64_t ctx, selection *s, dc_err *err)
{
    dc_chunking ch;
    dc_status st = dc_chunking_init(&ch, n, ctx ? ctx : n, false, -1, err);
    for (int64_t c = 0; !st && c < ch.n_chunks; c++) {
        int64_t start, len, first;
        dc_chunk_range(&ch, n, c, &start, &len, &first);
        dc_routing *r = NULL;
        dc_fwd_out out = {NULL, NULL, NULL};
        out.routing = (dc_routing *)&r; /* sentinel: filled by dc_forward */
        dc_routing rt = {0};
        out.routing = &rt;
        if ((st = dc_forward(m, ids + start, len, &out, err)) != DC_OK)
            break;
        for (int l = 0; l < rt.n_layers; l++)
            for (int64_t t = 0; t < rt.n_tokens; t++)
                for (int k = 0; k < rt.top_k; k++) {
                    size_t at = ((size_t)l * (size_t)rt.n_tokens + (size_t)t) * (size_t)rt.top_k + (size_t)k;
                    int32_t e = rt.idx[at];
                    if (e < 0)
                        continue; /* the MTP layer at the last token */
                    s->freq[(size_t)l * s->E + e] += 1;
                    s->wsum[(size_t)l * s->E + e] += rt.w[at];
                }
        free(rt.layer);
        free(rt.idx);
        free(rt.w);
    }
    return st;
}

typedef struct rank_item {
    double imp;
    int id;
} rank_item;

static int cmp_rank(const void *a, const void *b)
{
    const rank_item *x = a, *y = b;
    if (x->imp != y->imp)
        return x->imp > y->imp ? -1 : 1;
    return x->id - y->id;
}

/* Keeps the K/n_group most important experts of every group; returns the kept routing mass. */
static double choose(const dc_config *c, selection *s, bool by_freq)
{
    int per = s->K / c->n_group, gsize = s->E / c->n_group;
    double kept = 0, total = 0;
    rank_item *r = malloc((size_t)gsize * sizeof *r);
    for (int l = 0; l < s->n_moe && r; l++) {
        const double *imp = by_freq ? s->freq + (size_t)l * s->E : s->wsum + (size_t)l * s->E;
        int32_t *nid = s->newid + (size_t)l * s->E;
        for (int e = 0; e < s->E; e++) {
            nid[e] = -1;
            total += s->wsum[(size_t)l * s->E + e];
        }
        for (int g = 0; g < c->n_group; g++) {
            for (int i = 0; i < gsize; i++)
                r[i] = (rank_item){imp[g * gsize + i], g * gsize + i};
            qsort(r, (size_t)gsize, sizeof *r, cmp_rank);
            for (int i = 0; i < per; i++)
                nid[r[i].id] = 0; /* mark kept */
        }
        int next = 0;
        for (int e = 0; e < s->E; e++)
            if (nid[e] == 0) {
                nid[e] = next++;
                kept += s->wsum[(size_t)l * s->E + e];
            }
    }
    free(r);
    return total > 0 ? kept / total : 0;
}

/* f32 rows [r0, r0+n) of expert e's projection p (0 gate, 1 up, 2 down) in layer L. */
static dc_status expert_rows(const dc_ckpt *ck, int L, int e, int p, int64_t r0, int64_t n, float *out, dc_err *err)
{
    dc_name_info ni = {p == 0 ? DC_ROLE_EXP_GATE : p == 1 ? DC_ROLE_EXP_UP : DC_ROLE_EXP_DOWN, L, e, false, false};
    char name[256];
    dc_name_build(&ni, name, sizeof name);
    dc_weight w;
    dc_status st = dc_ckpt_weight(ck, name, &w, err);
    return st ? st : dc_weight_rows(&w, r0, n, out, DC_DEQ_EXACT, err);
}

/* Merge targets: the kept expert of the same group with the largest cosine similarity. */
static dc_status merge_targets(const dc_ckpt *ck, const dc_config *c, selection *s, dc_err *err)
{
    int64_t H = c->hidden_size, I = c->moe_intermediate_size;
    int gsize = s->E / c->n_group;
    float *a = malloc((size_t)(I > H ? I : H) * sizeof *a), *b = malloc((size_t)(I > H ? I : H) * sizeof *b);
    double *dots = calloc((size_t)s->E * (size_t)s->E, sizeof *dots), *norm = calloc((size_t)s->E, sizeof *norm);
    dc_status st = DC_OK;
    if (!a || !b || !dots || !norm) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int l = 0; l < s->n_moe && !st; l++) {
        int L = s->layers[l];
        const int32_t *nid = s->newid + (size_t)l * s->E;
        int32_t *into = s->into + (size_t)l * s->E;
        memset(dots, 0, (size_t)s->E * (size_t)s->E * sizeof *dots);
        memset(norm, 0, (size_t)s->E * sizeof *norm);
        for (int p = 0; p < 3 && !st; p++) {
            int64_t rows = p == 2 ? H : I, cols = p == 2 ? I : H;
            for (int64_t r = 0; r < rows && !st; r++)
                for (int e = 0; e < s->E && !st; e++) {
                    if ((st = expert_rows(ck, L, e, p, r, 1, a, err)))
                        break;
                    double nn = 0;
                    for (int64_t k = 0; k < cols; k++)
                        nn += (double)a[k] * a[k];
                    norm[e] += nn;
                    if (nid[e] >= 0)
                        continue;
                    int g = e / gsize;
                    for (int k2 = g * gsize; k2 < (g + 1) * gsize && !st; k2++) {
                        if (nid[k2] < 0)
                            continue;
                        if ((st = expert_rows(ck, L, k2, p, r, 1, b, err)))
                            break;
                        double d = 0;
                        for (int64_t k = 0; k < cols; k++)
                            d += (double)a[k] * b[k];
                        dots[(size_t)e * s->E + k2] += d;
                    }
                }
        }
        for (int e = 0; e < s->E; e++) {
            into[e] = -1;
            if (nid[e] >= 0)
                continue;
            int g = e / gsize;
            double best = -2;
            for (int k2 = g * gsize; k2 < (g + 1) * gsize; k2++) {
                if (nid[k2] < 0)
                    continue;
                double cs = dots[(size_t)e * s->E + k2] / (sqrt(norm[e] * norm[k2]) + 1e-30);
                if (cs > best) {
                    best = cs;
                    into[e] = k2;
                }
            }
        }
    }
done:
    free(a);
    free(b);
    free(dots);
    free(norm);
    return st;
}

/* ---- writing ------------------------------------------------------------------------------- */

typedef enum pop { P_COPY, P_ROWS, P_MERGE } pop;

typedef struct pitem {
    const dc_tensor *src;
    pop op;
    int slot, L, expert, proj; /* P_ROWS (router rows) and P_MERGE */
    size_t wi, si;             /* writer indices; si for a merged FP8 weight's scale */
    bool has_scale;
} pitem;

static dc_status edit_config(cJSON *root, void *ctx, dc_err *err)
{
    const selection *s = ctx;
    dc_json_set_number(root, "n_routed_experts", s->K);
    if (s->mtp_layer < 0 && cJSON_GetObjectItemCaseSensitive(root, "num_nextn_predict_layers"))
        dc_json_set_number(root, "num_nextn_predict_layers", 0);
    (void)err;
    return DC_OK;
}

static dc_status run_merge(const dc_ckpt *ck, const dc_config *c, const selection *s, dc_stw *w, const pitem *it,
                           dc_err *err)
{
    int l = it->slot, E = s->E;
    const int32_t *into = s->into + (size_t)l * E;
    const double *freq = s->freq + (size_t)l * E;
    int64_t H = c->hidden_size, I = c->moe_intermediate_size;
    int64_t rows = it->proj == 2 ? H : I, cols = it->proj == 2 ? I : H;
    int br = c->block_rows ? c->block_rows : 128, bc = c->block_cols ? c->block_cols : 128;
    dc_dtype dt = it->src->dtype;
    bool fp8 = dt == DC_DT_F8_E4M3;
    float *acc = malloc((size_t)(br * cols) * sizeof *acc), *tmp = malloc((size_t)(br * cols) * sizeof *tmp);
    uint8_t *out = malloc((size_t)(br * cols) * 4 + 64);
    float *scales = malloc((size_t)((cols + bc - 1) / bc + 1) * sizeof *scales);
    dc_status st = DC_OK;
    if (!acc || !tmp || !out || !scales) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory merging %s", it->src->name);
        goto done;
    }
    for (int64_t r0 = 0; r0 < rows && !st; r0 += br) {
        int64_t nr = rows - r0 < br ? rows - r0 : br;
        size_t n = (size_t)(nr * cols);
        double wk = freq[it->expert] + 1, wt = wk; /* +1: experts never chosen still count */
        if ((st = expert_rows(ck, it->L, it->expert, it->proj, r0, nr, acc, err)))
            break;
        for (size_t i = 0; i < n; i++)
            acc[i] *= (float)wk;
        for (int e = 0; e < E && !st; e++) {
            if (into[e] != it->expert)
                continue;
            double we = freq[e] + 1;
            wt += we;
            if ((st = expert_rows(ck, it->L, e, it->proj, r0, nr, tmp, err)))
                break;
            for (size_t i = 0; i < n; i++)
                acc[i] += (float)we * tmp[i];
        }
        for (size_t i = 0; !st && i < n; i++)
            acc[i] = (float)(acc[i] / wt);
        if (st)
            break;
        if (fp8) {
            int64_t ncb = (cols + bc - 1) / bc;
            dc_fp8_quantize_row_block(acc, nr, cols, bc, c->scale_fmt == DC_SCALE_UE8M0 ? DC_FP8_SCALE_UE8M0
                                                                                       : DC_FP8_SCALE_F32,
                                      out, scales);
            st = dc_stw_write(w, it->wi, (uint64_t)(r0 * cols), out, n, err);
            if (!st)
                st = dc_stw_write(w, it->si, (uint64_t)(r0 / br * ncb) * 4, scales, (size_t)ncb * 4, err);
        } else {
            int esz = dc_dtype_size(dt);
            if (!dc_dtype_from_f32(dt, acc, out, (int64_t)n)) {
                st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: cannot write merged experts as %s", it->src->name,
                                dc_dtype_name(dt));
                break;
            }
            st = dc_stw_write(w, it->wi, (uint64_t)(r0 * cols) * (uint64_t)esz, out, n * (size_t)esz, err);
        }
    }
done:
    free(acc);
    free(tmp);
    free(out);
    free(scales);
    return st;
}

static dc_status write_variant(const dc_ckpt *ck, const selection *s, bool merge, const char *dir, dc_err *err)
{
    const dc_config *c = &ck->cfg;
    const dc_tensor **ord = dc_ckpt_storage_order(ck);
    pitem *items = calloc(ck->n_tensors + 1, sizeof *items);
    dc_stw *w = dc_stw_new();
    size_t ni = 0;
    dc_status st = DC_OK;
    if (!ord || !items || !w) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    dc_stw_meta(w, "format", "pt", err);
    for (size_t i = 0; i < ck->n_tensors && !st; i++) {
        const dc_tensor *t = ord[i];
        dc_name_info info;
        bool known = dc_name_parse(c, t->name, &info);
        if (known && info.is_mtp && info.layer != s->mtp_layer)
            continue; /* an MTP layer that was not evaluated cannot be pruned: dropped */
        int slot = known ? moe_slot(s, info.layer) : -1;
        pitem *it = &items[ni];
        it->src = t;
        it->op = P_COPY;
        it->slot = slot;
        if (slot >= 0 && (info.role == DC_ROLE_EXP_GATE || info.role == DC_ROLE_EXP_UP || info.role == DC_ROLE_EXP_DOWN)) {
            if (info.is_scale)
                continue; /* handled with its weight */
            int32_t nid = s->newid[(size_t)slot * s->E + info.expert];
            if (nid < 0)
                continue;
            bool merged = false;
            for (int e = 0; merge && e < s->E; e++)
                merged |= s->into[(size_t)slot * s->E + e] == info.expert;
            dc_name_info ren = info;
            ren.expert = nid;
            char name[256], sname[300];
            dc_name_build(&ren, name, sizeof name);
            it->op = merged ? P_MERGE : P_COPY;
            it->L = info.layer;
            it->expert = info.expert;
            it->proj = info.role == DC_ROLE_EXP_GATE ? 0 : info.role == DC_ROLE_EXP_UP ? 1 : 2;
            if ((st = dc_stw_add(w, name, t->dtype, t->ndim, t->shape, &it->wi, err)))
                break;
            ni++;
            char src_sname[300];
            snprintf(src_sname, sizeof src_sname, "%s_scale_inv", t->name);
            const dc_tensor *sc = dc_ckpt_find(ck, src_sname);
            if (sc) {
                snprintf(sname, sizeof sname, "%s_scale_inv", name);
                if (merged) {
                    it->has_scale = true;
                    st = dc_stw_add(w, sname, DC_DT_F32, sc->ndim, sc->shape, &it->si, err);
                } else {
                    pitem *si = &items[ni++];
                    si->src = sc;
                    si->op = P_COPY;
                    si->slot = -1;
                    st = dc_stw_add(w, sname, sc->dtype, sc->ndim, sc->shape, &si->wi, err);
                }
            }
            continue;
        }
        if (slot >= 0 && (info.role == DC_ROLE_ROUTER || info.role == DC_ROLE_ROUTER_BIAS)) {
            int64_t shape[2] = {s->K, t->ndim == 2 ? t->shape[1] : 0};
            it->op = P_ROWS;
            st = dc_stw_add(w, t->name, t->dtype, t->ndim, shape, &it->wi, err);
            ni++;
            continue;
        }
        st = dc_stw_add(w, t->name, t->dtype, t->ndim, t->shape, &it->wi, err);
        ni++;
    }
    if (st || (st = dc_stw_plan(w, 0, err)) || (st = dc_stw_open(w, dir, err)))
        goto done;
    volatile int failed = 0;
    dc_err first = {0};
#pragma omp parallel for schedule(dynamic, 1)
    for (long k = 0; k < (long)ni; k++) {
        if (failed)
            continue;
        const pitem *it = &items[k];
        dc_err le = {0};
        dc_status ls = DC_OK;
        if (it->op == P_COPY)
            ls = dc_stw_write(w, it->wi, 0, it->src->data, (size_t)it->src->nbytes, &le);
        else if (it->op == P_ROWS) {
            size_t row = (size_t)(dc_tensor_cols(it->src) * dc_dtype_size(it->src->dtype));
            if (it->src->ndim == 1)
                row = (size_t)dc_dtype_size(it->src->dtype);
            const int32_t *nid = s->newid + (size_t)it->slot * s->E;
            for (int e = 0; e < s->E && !ls; e++)
                if (nid[e] >= 0)
                    ls = dc_stw_write(w, it->wi, (uint64_t)nid[e] * row, it->src->data + (size_t)e * row, row, &le);
        } else
            ls = run_merge(ck, c, s, w, it, &le);
        if (ls) {
#pragma omp critical(dc_prune_err)
            if (!failed) {
                failed = 1;
                first = le;
            }
        }
    }
    if (failed) {
        if (err)
            *err = first;
        st = first.code ? first.code : DC_ERR_IO;
        goto done;
    }
    if ((st = dc_stw_finish(w, err)) != DC_OK)
        goto done;
    if ((st = dc_ckdir_write_config(ck->dir, dir, edit_config, (void *)s, err)) != DC_OK)
        goto done;
    st = dc_ckdir_copy_aux(ck->dir, dir, err);
done:
    if (st && w)
        dc_stw_abort(w);
    dc_stw_free(w);
    free(items);
    free(ord);
    return st;
}

/* ---- evaluation ---------------------------------------------------------------------------- */

static dc_status eval_kld(dc_model *base, const char *path, const dc_fwd_opts *fo, const int32_t *ids, int64_t n,
                          int64_t ctx, dc_prune_report *rep, double *kld, dc_err *err)
{
    dc_ckpt *ck = NULL;
    dc_model *m = NULL;
    float *bl = NULL, *ml = NULL;
    dc_status st = dc_fwd_open(path, fo, &ck, &m, err);
    dc_chunking ch;
    if (!st)
        st = dc_chunking_init(&ch, n, ctx ? ctx : n, false, -1, err);
    int64_t V = m ? dc_model_vocab(m) : 0;
    if (!st && V != dc_model_vocab(base))
        st = dc_err_set(err, DC_ERR_INTERNAL, "pruned model has another vocabulary");
    if (!st) {
        bl = dc_malloc((size_t)ch.ctx * (size_t)V * sizeof(float), err);
        ml = dc_malloc((size_t)ch.ctx * (size_t)V * sizeof(float), err);
        if (!bl || !ml)
            st = DC_ERR_NOMEM;
    }
    dc_nll_acc nb = {0}, nm = {0};
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t c = 0; !st && c < ch.n_chunks; c++) {
        int64_t start, len, first;
        dc_chunk_range(&ch, n, c, &start, &len, &first);
        if ((st = dc_fwd_chunk(base, ids, n, &ch, c, bl, err)) || (st = dc_fwd_chunk(m, ids, n, &ch, c, ml, err)))
            break;
        for (int64_t j = first; j < len - 1; j++) {
            int32_t tgt = ids[start + j + 1];
            const float *b = bl + j * V, *q = ml + j * V;
            sum += dc_kld_full(b, q, V);
            dc_nll_add(&nb, dc_logsumexp(b, V) - (double)b[tgt]);
            dc_nll_add(&nm, dc_logsumexp(q, V) - (double)q[tgt]);
            cnt++;
        }
    }
    if (!st) {
        *kld = cnt ? sum / (double)cnt : 0;
        rep->n_scored = cnt;
        rep->ppl_base = dc_nll_ppl(&nb, NULL);
        rep->ppl_model = dc_nll_ppl(&nm, NULL);
    }
    free(bl);
    free(ml);
    dc_fwd_close(ck, m);
    return st;
}

/* ---- driver -------------------------------------------------------------------------------- */

dc_status dc_prune_experts(const char *in, const char *out, const dc_prune_opts *o, FILE *log,
                           dc_prune_report *rep, dc_err *err)
{
    memset(rep, 0, sizeof *rep);
    dc_ckpt *ck = NULL;
    dc_model *m = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    selection s = {0};
    s.mtp_layer = -1;
    dc_outdir od = {0}, dd = {0};
    dc_fwd_opts fo = o->fwd;
    fo.mtp = true; /* the MTP layer's routing is recorded too, so it is pruned and kept */
    dc_status st = dc_fwd_open(in, &fo, &ck, &m, err);
    if (st)
        return st;
    const dc_config *c = &ck->cfg;
    s.E = c->n_experts_routed;
    s.K = o->keep;
    s.n_moe = dc_model_moe_layers(m, &s.layers);
    s.mtp_layer = s.n_moe > 0 && s.layers[s.n_moe - 1] >= c->n_layers ? s.layers[s.n_moe - 1] : -1;
    if (!dc_is_dir(in)) {
        st = dc_err_set(err, DC_ERR_USAGE, "%s: prune-experts needs a checkpoint directory", in);
        goto done;
    }
    if (s.n_moe == 0) {
        st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: %s model without routed experts: nothing to prune", in,
                        dc_arch_name(c->arch));
        goto done;
    }
    if (s.K < 1 || s.K >= s.E) {
        st = dc_err_set(err, DC_ERR_USAGE, "--keep %d: must be between 1 and n_routed_experts - 1 = %d", s.K, s.E - 1);
        goto done;
    }
    if (s.K % c->n_group) {
        st = dc_err_set(err, DC_ERR_USAGE,
                        "--keep %d: must be a multiple of n_group %d (the same number of experts is kept in every "
                        "group, so group-limited routing keeps its meaning)", s.K, c->n_group);
        goto done;
    }
    if (s.K < c->n_experts_per_tok || c->topk_group * (s.K / c->n_group) < c->n_experts_per_tok) {
        st = dc_err_set(err, DC_ERR_USAGE,
                        "--keep %d: topk_group %d groups of %d kept experts cannot supply num_experts_per_tok %d",
                        s.K, c->topk_group, s.K / c->n_group, c->n_experts_per_tok);
        goto done;
    }
    for (size_t i = 0; i < ck->n_tensors; i++)
        if (strstr(ck->tensors[i]->name, ".mlp.experts.gate_up_proj")) {
            st = dc_err_set(err, DC_ERR_UNSUPPORTED,
                            "%s: fused expert tensors; run 'deepcast reshard --split-experts' first", in);
            goto done;
        }
    int32_t bos;
    if ((st = dc_fwd_input(o->tokens_path, o->text_path, o->tok_dir ? o->tok_dir : ck->dir, c->bos_token_id, &ids,
                           &n, &bos, err)))
        goto done;
    int64_t n_hold = (int64_t)llround((double)n * o->holdout);
    if (n_hold < 2)
        n_hold = 2;
    int64_t n_cal = (int64_t)n - n_hold;
    if (n_cal < 2) {
        st = dc_err_set(err, DC_ERR_INPUT, "%zu tokens are too few: need at least 2 for calibration and 2 held out", n);
        goto done;
    }
    rep->n_calib = n_cal;
    rep->n_holdout = n_hold;
    size_t ne = (size_t)s.n_moe * (size_t)s.E;
    s.freq = calloc(ne + 1, sizeof *s.freq);
    s.wsum = calloc(ne + 1, sizeof *s.wsum);
    s.newid = calloc(ne + 1, sizeof *s.newid);
    s.into = malloc((ne + 1) * sizeof *s.into);
    if (!s.freq || !s.wsum || !s.newid || !s.into) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    memset(s.into, 0xff, (ne + 1) * sizeof *s.into);
    if ((st = calibrate(m, ids, n_cal, o->ctx, &s, err)))
        goto done;
    rep->n_layers = s.n_moe;
    rep->kept_mass = choose(c, &s, o->by_freq);
    if (o->merge && (st = merge_targets(ck, c, &s, err)))
        goto done;
    if (log) {
        fprintf(log, "prune-experts: %d -> %d experts in %d MoE layers (%d per group of %d); calibration %lld tokens, "
                     "held out %lld\n", s.E, s.K, s.n_moe, s.K / c->n_group, s.E / c->n_group, (long long)n_cal,
                (long long)n_hold);
        for (int l = 0; l < s.n_moe; l++) {
            fprintf(log, "  layer %d keeps", s.layers[l]);
            for (int e = 0; e < s.E; e++)
                if (s.newid[(size_t)l * s.E + e] >= 0)
                    fprintf(log, " %d", e);
            if (o->merge) {
                fprintf(log, "; merges");
                for (int e = 0; e < s.E; e++)
                    if (s.into[(size_t)l * s.E + e] >= 0)
                        fprintf(log, " %d->%d", e, s.into[(size_t)l * s.E + e]);
            }
            fprintf(log, "\n");
        }
        if (s.mtp_layer >= 0)
            fprintf(log, "  kept routing weight: %.1f%%; the MTP layer (%d) is pruned by its own routing statistics and kept\n",
                    100 * rep->kept_mass, s.mtp_layer);
        else
            fprintf(log, "  kept routing weight: %.1f%%; %s\n", 100 * rep->kept_mass,
                    c->n_mtp_layers ? "MTP layers are dropped (not in the checkpoint, or not evaluated)" : "no MTP layer");
    }
    if (o->save_holdout) {
        size_t cap = (size_t)n_hold * 12 + 4, len = 0;
        char *buf = malloc(cap);
        if (!buf) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        len += (size_t)snprintf(buf + len, cap - len, "[");
        for (int64_t i = 0; i < n_hold; i++)
            len += (size_t)snprintf(buf + len, cap - len, i ? ",%d" : "%d", ids[n_cal + i]);
        len += (size_t)snprintf(buf + len, cap - len, "]\n");
        st = dc_write_file_atomic(o->save_holdout, buf, len, err);
        free(buf);
        if (st)
            goto done;
    }
    if (o->dry_run)
        goto done;
    if ((st = dc_outdir_open(&od, out, o->force, err)))
        goto done;
    if ((st = write_variant(ck, &s, o->merge, od.tmp_path, err)) ||
        (st = eval_kld(m, od.tmp_path, &o->fwd, ids + n_cal, n_hold, o->ctx, rep, &rep->kld, err))) {
        dc_outdir_abort(&od);
        goto done;
    }
    if (o->merge) { /* the plain drop variant, for comparison */
        char *dpath = malloc(strlen(out) + 16);
        if (!dpath) {
            dc_outdir_abort(&od);
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        sprintf(dpath, "%s.drop", out);
        dc_prune_report r2 = *rep;
        if (!(st = dc_outdir_open(&dd, dpath, true, err))) {
            st = write_variant(ck, &s, false, dd.tmp_path, err);
            if (!st)
                st = eval_kld(m, dd.tmp_path, &o->fwd, ids + n_cal, n_hold, o->ctx, &r2, &rep->kld_drop, err);
            dc_outdir_abort(&dd);
        }
        free(dpath);
        if (st) {
            dc_outdir_abort(&od);
            goto done;
        }
    }
    st = dc_outdir_commit(&od, err);
done:
    sel_free(&s);
    free(ids);
    dc_fwd_close(ck, m);
    return st;
}
