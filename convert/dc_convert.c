#define _GNU_SOURCE
#include "dc_convert.h"
#include "dc_par.h"
#include "dc_experts.h"
#include "dc_ckdir.h"
#include "dc_float.h"
#include "dc_fp8.h"
#include "dc_io.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void dc_convert_opts_init(dc_convert_opts *o)
{
    memset(o, 0, sizeof *o);
    o->target = DC_TARGET_BF16;
    o->block = 128;
    o->scale_mode = DC_FP8_SCALE_F32;
    o->deq_mode = -1;
}

static const char *TARGETS[] = {"bf16", "f16", "f32", "fp8"};

bool dc_target_parse(const char *s, dc_target *t)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, TARGETS[i])) {
            *t = (dc_target)i;
            return true;
        }
    return false;
}

const char *dc_target_name(dc_target t) { return TARGETS[t]; }

static dc_dtype target_dtype(dc_target t)
{
    return t == DC_TARGET_F16 ? DC_DT_F16 : t == DC_TARGET_F32 ? DC_DT_F32 : DC_DT_BF16;
}

static const char *target_torch_dtype(dc_target t)
{
    return t == DC_TARGET_F16 ? "float16" : t == DC_TARGET_F32 ? "float32" : "bfloat16";
}

static bool is_fp8(dc_dtype d) { return d == DC_DT_F8_E4M3 || d == DC_DT_F8_E5M2; }

/* ---- plan ---------------------------------------------------------------------------------- */

typedef enum op { OP_COPY, OP_DEQUANT, OP_QUANT } op;
static const char *OP_NAMES[] = {"copy", "dequant", "quant"};

/* A fused FP8 expert tensor (reshard --merge-experts: gate_up_proj [E, 2I, H] or down_proj
 * [E, H, I] with stacked scales) read as rows [E * R, C] through the per-expert views. */
typedef struct fused_src {
    dc_expert_slot *slots; /* [E][2] (gate, up) or [E] (down) */
    int64_t E, R, I;       /* experts, rows per expert, gate rows (gate_up) */
    int which;             /* 0 gate_up_proj, 1 down_proj */
} fused_src;

static dc_status fused_read(const dc_weight *w, int64_t r0, int64_t n, float *out, int mode, dc_err *err)
{
    const fused_src *f = w->read_ctx;
    dc_status st = DC_OK;
    for (int64_t r = r0; r < r0 + n && !st;) {
        int64_t e = r / f->R, rr = r % f->R, end = (e + 1) * f->R, row = rr;
        const dc_expert_slot *sl = &f->slots[f->which ? e : 2 * e];
        if (!f->which && rr >= f->I) {
            sl = &f->slots[2 * e + 1];
            row = rr - f->I;
        } else if (!f->which)
            end = e * f->R + f->I;
        int64_t k = (end < r0 + n ? end : r0 + n) - r;
        st = dc_weight_rows(&sl->w, row, k, out + (r - r0) * w->cols, mode, err);
        r += k;
    }
    return st;
}

typedef struct item {
    const dc_tensor *src;
    fused_src *fused; /* DEQUANT of a fused FP8 expert tensor, else NULL */
    dc_weight w;   /* for DEQUANT / QUANT */
    op op;
    dc_dtype out_dtype;
    size_t wi, si; /* writer indices of the tensor and (QUANT) its scale */
    int64_t rows, cols;
} item;

typedef struct unit {
    size_t item;
    uint64_t a, b; /* rows [a, b) or bytes [a, b) */
} unit;

static dc_status edit_config(cJSON *root, void *ctx, dc_err *err)
{
    const dc_convert_opts *o = ctx;
    cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization_config");
    if (o->target == DC_TARGET_FP8) {
        cJSON *q = cJSON_CreateObject();
        if (!q)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        cJSON_AddStringToObject(q, "activation_scheme", "dynamic");
        cJSON_AddStringToObject(q, "fmt", "e4m3");
        cJSON_AddStringToObject(q, "quant_method", "fp8");
        if (o->scale_mode == DC_FP8_SCALE_UE8M0)
            cJSON_AddStringToObject(q, "scale_fmt", "ue8m0");
        cJSON *bs = cJSON_AddArrayToObject(q, "weight_block_size");
        cJSON_AddItemToArray(bs, cJSON_CreateNumber(o->block));
        cJSON_AddItemToArray(bs, cJSON_CreateNumber(o->block));
        cJSON_AddItemToObject(root, "quantization_config", q);
    } else
        dc_json_set_string(root, "torch_dtype", target_torch_dtype(o->target));
    if (o->drop_mtp && cJSON_GetObjectItemCaseSensitive(root, "num_nextn_predict_layers"))
        dc_json_set_number(root, "num_nextn_predict_layers", 0);
    return DC_OK;
}

typedef struct plan {
    item *items;
    size_t n_items;
    dc_stw *w;
} plan;

/* A fused FP8 expert tensor: kept (FP8 target: the tensor and its stacked scale copied) or
 * dequantized expert by expert through dc_expert_weight_into's views. */
static dc_status fused_plan(const dc_ckpt *ck, const dc_tensor *t, int layer, int which, const dc_convert_opts *o,
                            item *it, dc_err *err)
{
    if (o->target == DC_TARGET_FP8)
        return DC_OK; /* OP_COPY; the scale follows */
    const dc_config *c = &ck->cfg;
    if (t->ndim != 3 || t->shape[0] != c->n_experts_routed)
        return dc_err_set(err, DC_ERR_MODEL, "%s: fused expert tensor %s is not [n_routed_experts = %d, rows, cols]",
                          dc_ckpt_file_name(ck, t), t->name, c->n_experts_routed);
    fused_src *f = calloc(1, sizeof *f);
    int per = which ? 1 : 2;
    if (f)
        f->slots = calloc((size_t)(t->shape[0] * per), sizeof *f->slots);
    if (!f || !f->slots) {
        free(f);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    it->fused = f;
    f->E = t->shape[0];
    f->R = t->shape[1];
    f->which = which;
    for (int64_t e = 0; e < f->E; e++)
        for (int k = 0; k < per; k++) {
            int w = which ? DC_EXPERT_DOWN : k ? DC_EXPERT_UP : DC_EXPERT_GATE;
            dc_status st = dc_expert_weight_into(ck, layer, (int)e, w, &f->slots[e * per + k], err);
            if (st)
                return st;
        }
    f->I = which ? f->R : f->slots[0].w.rows;
    memset(&it->w, 0, sizeof it->w);
    it->w.t = t;
    it->w.file_name = dc_ckpt_file_name(ck, t);
    it->w.rows = f->E * f->R;
    it->w.cols = t->shape[2];
    it->w.read_rows = fused_read;
    it->w.read_ctx = f;
    it->op = OP_DEQUANT;
    it->out_dtype = target_dtype(o->target);
    return DC_OK;
}

static void plan_items_free(plan *p)
{
    for (size_t i = 0; p->items && i <= p->n_items; i++) /* items has n_tensors + 1 entries */
        if (p->items[i].fused) {
            free(p->items[i].fused->slots);
            free(p->items[i].fused);
        }
    free(p->items);
}

static dc_status build_plan(const dc_ckpt *ck, const dc_convert_opts *o, plan *p, dc_convert_stats *stats,
                            dc_err *err)
{
    const dc_config *c = &ck->cfg;
    const dc_tensor **ord = dc_ckpt_storage_order(ck);
    p->items = calloc(ck->n_tensors + 1, sizeof *p->items);
    p->w = dc_stw_new();
    if (!ord || !p->items || !p->w) {
        free(ord);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    dc_status st = DC_OK;
    dc_stw_meta(p->w, "format", "pt", err);
    uint64_t max_in_shard = 0;
    for (int i = 0; i < ck->n_files; i++)
        if (ck->files[i].map.size > max_in_shard)
            max_in_shard = ck->files[i].map.size;
    for (size_t i = 0; i < ck->n_tensors && !st; i++) {
        const dc_tensor *t = ord[i];
        stats->bytes_in += t->nbytes;
        stats->n_tensors++;
        dc_name_info ni;
        bool known = dc_name_parse(c, t->name, &ni);
        if (o->drop_mtp && known && ni.is_mtp) {
            stats->n_dropped++;
            continue;
        }
        const char *file = dc_ckpt_file_name(ck, t);
        if (dc_str_ends_with(t->name, "_scale_inv")) {
            char wn[600];
            snprintf(wn, sizeof wn, "%.*s", (int)(strlen(t->name) - 10), t->name);
            const dc_tensor *wt = dc_ckpt_find(ck, wn);
            if (!wt)
                st = dc_err_set(err, DC_ERR_MODEL, "%s: scale tensor %s has no weight %s", file, t->name, wn);
            else if (!is_fp8(wt->dtype))
                st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s has dtype %s but also a block scale %s",
                                dc_ckpt_file_name(ck, wt), wn, dc_dtype_name(wt->dtype), t->name);
            else if (o->target != DC_TARGET_FP8) {
                stats->n_dropped++;
                continue; /* folded into its weight */
            }
            if (st)
                break;
            /* FP8 -> FP8: the scale is copied with its weight (below) */
            continue;
        }
        item *it = &p->items[p->n_items];
        it->src = t;
        it->rows = dc_tensor_rows(t);
        it->cols = dc_tensor_cols(t);
        it->out_dtype = t->dtype;
        it->op = OP_COPY;
        bool fp8_role = known && dc_role_is_fp8(ni.role) && t->ndim == 2;
        int fl, fwhich;
        bool fscale;
        bool fused = dc_fused_expert_name(t->name, &fl, &fwhich, &fscale) && !fscale;
        if (fused && !is_fp8(t->dtype) && o->target == DC_TARGET_FP8) {
            st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: fused expert tensor %s: --to fp8 quantizes per-expert tensors; "
                            "run 'deepcast reshard --split-experts' first", file, t->name);
            break;
        }
        if (fused && is_fp8(t->dtype)) {
            if ((st = fused_plan(ck, t, fl, fwhich, o, it, err)) != DC_OK)
                break;
        } else if (is_fp8(t->dtype)) {
            if ((st = dc_ckpt_weight(ck, t->name, &it->w, err)) != DC_OK)
                break;
            if (o->target != DC_TARGET_FP8) {
                it->op = OP_DEQUANT;
                it->out_dtype = target_dtype(o->target);
            }
        } else if (o->target == DC_TARGET_FP8 && fp8_role &&
                   (t->dtype == DC_DT_BF16 || t->dtype == DC_DT_F16 || t->dtype == DC_DT_F32)) {
            if ((st = dc_weight_init(&it->w, t, NULL, o->block, o->block, file, err)) != DC_OK)
                break;
            it->op = OP_QUANT;
            it->out_dtype = DC_DT_F8_E4M3;
        }
        if ((st = dc_stw_add(p->w, t->name, it->out_dtype, t->ndim, t->shape, &it->wi, err)) != DC_OK)
            break;
        char sn[600];
        snprintf(sn, sizeof sn, "%s_scale_inv", t->name);
        if (it->op == OP_QUANT) {
            int64_t ss[2] = {(it->rows + o->block - 1) / o->block, (it->cols + o->block - 1) / o->block};
            st = dc_stw_add(p->w, sn, o->scale_mode == DC_FP8_SCALE_BF16 ? DC_DT_BF16 : DC_DT_F32, 2, ss, &it->si, err);
        } else if (it->op == OP_COPY && is_fp8(t->dtype)) {
            /* FP8 kept as FP8: its scale follows it, unchanged */
            p->n_items++;
            item *sc = &p->items[p->n_items];
            memset(sc, 0, sizeof *sc);
            sc->src = it->w.t ? it->w.scale : dc_ckpt_find(ck, sn); /* fused: the stacked scale */
            if (!sc->src) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: FP8 tensor %s has no scale tensor %s", file, t->name, sn);
                break;
            }
            sc->op = OP_COPY;
            sc->out_dtype = sc->src->dtype;
            st = dc_stw_add(p->w, sn, sc->out_dtype, sc->src->ndim, sc->src->shape, &sc->wi, err);
        }
        if (it->op == OP_COPY)
            stats->n_copied++;
        else
            stats->n_converted++;
        p->n_items++;
    }
    free(ord);
    if (st)
        return st;
    uint64_t shard = o->max_shard_size ? o->max_shard_size : max_in_shard;
    if ((st = dc_stw_plan(p->w, shard, err)) != DC_OK)
        return st;
    stats->bytes_out = dc_stw_total_bytes(p->w);
    stats->n_shards = dc_stw_n_shards(p->w);
    return DC_OK;
}

static void print_plan(FILE *f, const plan *p, const dc_ckpt *ck, const dc_convert_stats *s)
{
    fprintf(f, "%-64s %-8s %-8s %-8s %-16s %14s  %s\n", "tensor", "op", "from", "to", "shape", "bytes", "shard");
    for (size_t i = 0; i < dc_stw_count(p->w); i++) {
        const dc_stw_tensor *t = dc_stw_get(p->w, i);
        const item *it = NULL;
        for (size_t k = 0; k < p->n_items && !it; k++)
            if (p->items[k].wi == i || (p->items[k].op == OP_QUANT && p->items[k].si == i))
                it = &p->items[k];
        char sb[64];
        const char *opn = it ? (it->op == OP_QUANT && it->si == i ? "scale" : OP_NAMES[it->op]) : "?";
        fprintf(f, "%-64s %-8s %-8s %-8s %-16s %14llu  %s\n", t->name, opn,
                it ? dc_dtype_name(it->src->dtype) : "-", dc_dtype_name(t->dtype),
                dc_shape_str(t->ndim, t->shape, sb, sizeof sb), (unsigned long long)t->nbytes,
                dc_stw_shard_name(p->w, t->shard));
    }
    char b1[32], b2[32];
    fprintf(f, "total: %zu tensors in (%s), %zu out (%s) in %d shard(s): %zu converted, %zu copied, %zu dropped\n",
            s->n_tensors, dc_fmt_bytes(s->bytes_in, b1, sizeof b1), dc_stw_count(p->w),
            dc_fmt_bytes(s->bytes_out, b2, sizeof b2), s->n_shards, s->n_converted, s->n_copied, s->n_dropped);
    (void)ck;
}

/* ---- execution ----------------------------------------------------------------------------- */

static dc_status run_unit(const plan *p, const unit *u, const dc_convert_opts *o, float **fbuf, uint8_t **obuf,
                          size_t *cap, dc_err *err)
{
    const item *it = &p->items[u->item];
    if (it->op == OP_COPY) {
        dc_status cs = dc_stw_write(p->w, it->wi, u->a, it->src->data + u->a, (size_t)(u->b - u->a), err);
        dc_map_release(it->src->data + u->a, (size_t)(u->b - u->a));
        return cs;
    }
    size_t row_bytes = (size_t)it->cols * (size_t)dc_dtype_size(it->src->dtype);
    const uint8_t *src_rows = it->src->data + u->a * row_bytes;
    size_t src_len = (size_t)(u->b - u->a) * row_bytes;
    int64_t nr = (int64_t)(u->b - u->a), cols = it->cols;
    size_t n = (size_t)(nr * cols);
    if (n > *cap) {
        free(*fbuf);
        free(*obuf);
        *fbuf = malloc(n * sizeof **fbuf);
        *obuf = malloc(n * 4 + 64);
        *cap = *fbuf && *obuf ? n : 0;
        if (!*cap)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory for %zu values of %s", n, it->src->name);
    }
    int esz = dc_dtype_size(it->out_dtype);
    if (it->op == OP_DEQUANT) {
        int mode = o->deq_mode >= 0 ? o->deq_mode : (o->target == DC_TARGET_BF16 ? DC_DEQ_BF16_ROUND : DC_DEQ_EXACT);
        dc_status st = dc_weight_rows(&it->w, (int64_t)u->a, nr, *fbuf, mode, err);
        if (st)
            return st;
        dc_map_release(src_rows, src_len);
        dc_dtype_from_f32(it->out_dtype, *fbuf, *obuf, (int64_t)n);
        return dc_stw_write(p->w, it->wi, u->a * (uint64_t)cols * (uint64_t)esz, *obuf, n * (size_t)esz, err);
    }
    /* OP_QUANT: one row block */
    dc_status st = dc_weight_rows(&it->w, (int64_t)u->a, nr, *fbuf, DC_DEQ_EXACT, err);
    if (st)
        return st;
    dc_map_release(src_rows, src_len);
    const int64_t bad = dc_first_nonfinite(*fbuf, n);
    if (bad >= 0)
        return dc_err_set(err, DC_ERR_INPUT, "tensor %s: non-finite value at row %lld, column %lld; cannot quantize",
                          it->src->name, (long long)(u->a + (uint64_t)bad / (uint64_t)cols), (long long)(bad % cols));
    int64_t ncb = (cols + o->block - 1) / o->block;
    float *scales = (float *)(void *)(*obuf + ((n + 15) & ~(size_t)15)); /* after the codes; fits */
    dc_fp8_quantize_row_block(*fbuf, nr, cols, o->block, o->scale_mode, *obuf, scales);
    st = dc_stw_write(p->w, it->wi, u->a * (uint64_t)cols, *obuf, n, err);
    if (st)
        return st;
    uint64_t rb = u->a / (uint64_t)o->block;
    if (o->scale_mode == DC_FP8_SCALE_BF16) {
        uint16_t *hs = (uint16_t *)(void *)*fbuf; /* the f32 rows are no longer needed */
        for (int64_t k = 0; k < ncb; k++)
            hs[k] = dc_f32_to_bf16(scales[k]);
        return dc_stw_write(p->w, it->si, rb * (uint64_t)ncb * 2, hs, (size_t)ncb * 2, err);
    }
    return dc_stw_write(p->w, it->si, rb * (uint64_t)ncb * 4, scales, (size_t)ncb * 4, err);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct crun {
    const plan *p;
    const dc_convert_opts *o;
    const unit *units;
} crun;

typedef struct cbuf {
    float *f;
    uint8_t *o;
    size_t cap;
} cbuf;

static dc_status crun_unit(void *ctx, size_t k, void *tls, dc_err *err)
{
    const crun *r = ctx;
    cbuf *b = tls;
    return run_unit(r->p, &r->units[k], r->o, &b->f, &b->o, &b->cap, err);
}

static void cbuf_free(void *tls)
{
    cbuf *b = tls;
    free(b->f);
    free(b->o);
}

/* bytes a unit wrote, for the progress line */
static uint64_t crun_bytes(void *ctx, size_t k)
{
    const crun *r = ctx;
    const unit *u = &r->units[k];
    const item *it = &r->p->items[u->item];
    return it->op == OP_COPY ? u->b - u->a : (u->b - u->a) * (uint64_t)it->cols * (uint64_t)dc_dtype_size(it->out_dtype);
}

static dc_status execute(const plan *p, const dc_convert_opts *o, dc_err *err)
{
    /* split into units: row blocks for transforms, 64 MB chunks for copies */
    size_t n_units = 0, cap = 0;
    unit *units = NULL;
    for (size_t i = 0; i < p->n_items; i++) {
        const item *it = &p->items[i];
        uint64_t total = it->op == OP_COPY ? it->src->nbytes : (uint64_t)it->rows;
        uint64_t step;
        if (it->op == OP_COPY)
            step = 64u << 20;
        else if (it->op == OP_QUANT)
            step = (uint64_t)o->block;
        else
            step = it->cols > 0 ? (uint64_t)(((8u << 20) / (uint64_t)it->cols) + 1) : 1;
        for (uint64_t a = 0; a < total || (total == 0 && a == 0); a += step) {
            if (!dc_grow((void **)&units, &cap, n_units + 1, sizeof *units)) {
                free(units);
                return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            }
            units[n_units++] = (unit){i, a, a + step < total ? a + step : total};
            if (total == 0)
                break;
        }
    }
    crun rc = {p, o, units};
    dc_par_job job = {n_units, crun_unit, &rc, sizeof(cbuf), cbuf_free, o->progress ? "convert:" : NULL, crun_bytes,
                      dc_stw_total_bytes(p->w)};
    dc_status st = dc_par_run(&job, err);
    free(units);
    return st;
}

dc_status dc_convert(const char *in_path, const char *out_dir, const dc_convert_opts *o, FILE *planf,
                     dc_convert_stats *stats, dc_err *err)
{
    memset(stats, 0, sizeof *stats);
    double t0 = now_s();
    if (o->block < 1 || o->block > 65536)
        return dc_err_set(err, DC_ERR_USAGE, "block size %d out of range", o->block);
    dc_ckpt *ck = NULL;
    dc_status st = dc_ckpt_open(in_path, &ck, err);
    if (st)
        return st;
    plan p = {0};
    dc_outdir od = {0};
    if ((st = dc_ckpt_require_config(ck, err)) != DC_OK)
        goto done;
    if (!dc_is_dir(in_path)) {
        st = dc_err_set(err, DC_ERR_USAGE, "%s: convert needs a checkpoint directory (config.json + shards)", in_path);
        goto done;
    }
    if (dc_path_within(ck->dir, out_dir)) {
        st = dc_err_set(err, DC_ERR_USAGE, "output %s is inside the input directory %s", out_dir, ck->dir);
        goto done;
    }
    if ((st = build_plan(ck, o, &p, stats, err)) != DC_OK)
        goto done;
    if (o->dry_run) {
        print_plan(planf ? planf : stdout, &p, ck, stats);
        goto done;
    }
    if ((st = dc_outdir_open(&od, out_dir, o->force, err)) != DC_OK)
        goto done;
    if ((st = dc_ckdir_write_config(ck->dir, od.tmp_path, edit_config, (void *)o, err)) != DC_OK ||
        (st = dc_ckdir_copy_aux(ck->dir, od.tmp_path, err)) ||
        (st = dc_stw_open(p.w, od.tmp_path, err)) != DC_OK || (st = execute(&p, o, err)) != DC_OK ||
        (st = dc_stw_finish(p.w, err)) != DC_OK) {
        dc_stw_abort(p.w);
        dc_outdir_abort(&od);
        goto done;
    }
    st = dc_outdir_commit(&od, err);
done:
    stats->seconds = now_s() - t0;
    dc_stw_free(p.w);
    plan_items_free(&p);
    dc_ckpt_close(ck);
    return st;
}
