#define _GNU_SOURCE
#include "dc_gguf_export.h"
#include "dc_par.h"
#include "dc_experts.h"
#include "dc_float.h"
#include "dc_ggml.h"
#include "dc_gguf.h"
#include "dc_io.h"
#include "dc_q8_0.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* gguf-py constants (gguf-py/gguf/constants.py) */
enum { FTYPE_ALL_F32 = 0, FTYPE_MOSTLY_F16 = 1, FTYPE_MOSTLY_Q8_0 = 7, FTYPE_MOSTLY_BF16 = 32 };
enum { GATING_SOFTMAX = 1, GATING_SIGMOID = 2 };
enum { TOK_NORMAL = 1, TOK_CONTROL = 3, TOK_USER_DEFINED = 4, TOK_UNUSED = 5 };
#define GGML_QUANT_VERSION 2

static const char *OUT_NAMES[] = {"auto", "f32", "f16", "bf16", "q8_0"};

void dc_gguf_export_opts_init(dc_gguf_export_opts *o)
{
    memset(o, 0, sizeof *o);
    o->type = DC_GGUF_OUT_AUTO;
}

bool dc_gguf_out_parse(const char *s, dc_gguf_out *t)
{
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, OUT_NAMES[i])) {
            *t = (dc_gguf_out)i;
            return true;
        }
    return false;
}

const char *dc_gguf_out_name(dc_gguf_out t) { return (unsigned)t < 5 ? OUT_NAMES[t] : "?"; }

static dc_dtype out_dtype(dc_gguf_out t)
{
    switch (t) {
    case DC_GGUF_OUT_F32: return DC_DT_F32;
    case DC_GGUF_OUT_BF16: return DC_DT_BF16;
    case DC_GGUF_OUT_Q8_0: return DC_DT_Q8_0;
    default: return DC_DT_F16;
    }
}

static uint32_t out_ftype(dc_gguf_out t)
{
    switch (t) {
    case DC_GGUF_OUT_F32: return FTYPE_ALL_F32;
    case DC_GGUF_OUT_BF16: return FTYPE_MOSTLY_BF16;
    case DC_GGUF_OUT_Q8_0: return FTYPE_MOSTLY_Q8_0;
    default: return FTYPE_MOSTLY_F16;
    }
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ============================================================================================
 * Plan
 * ============================================================================================ */

typedef enum kind { K_DIRECT, K_STACK, K_KB, K_VB, K_PERM, K_CONST } kind;
static const char *KIND_NAMES[] = {"convert", "stack", "k_b", "v_b", "permute", "make"};

typedef struct item {
    char name[DC_GGUF_MAX_NAME];
    kind kind;
    dc_weight w;        /* DIRECT, KB, VB: the source */
    dc_weight *ew;      /* STACK: one per expert */
    dc_expert_slot *slots; /* STACK from fused experts: the views ew[] point into (never moved) */
    int64_t n_e;
    const char *src;    /* source name, for the plan */
    dc_dtype src_dt;
    dc_dtype dt;        /* output */
    uint32_t n_dims;
    int64_t ne[4];
    int64_t rows, cols; /* output 2-D view: cols = ne[0] */
    int64_t H, dn, dv, c; /* KB / VB; PERM: H heads of dn rows (values for a 1-D bias) */
    float *vals;          /* CONST: ne[0] values */
    size_t wi;
    int order_layer;    /* -1 embeddings, n for layers, INT_MAX final */
    int order_role;
} item;

typedef struct plan {
    item *items;
    size_t n, cap;
    dc_ggufw *w;
    dc_gguf_out type;
    int n_mtp;
    const char *arch; /* general.architecture: deepseek2, deepseek32, qwen2 or llama */
} plan;

static void plan_free(plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->items[i].ew);
        free(p->items[i].slots);
        free(p->items[i].vals);
    }
    free(p->items);
    dc_ggufw_free(p->w);
    memset(p, 0, sizeof *p);
}

static item *new_item(plan *p, dc_err *err)
{
    if (!dc_grow((void **)&p->items, &p->cap, p->n + 1, sizeof *p->items)) {
        dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        return NULL;
    }
    item *it = &p->items[p->n++];
    memset(it, 0, sizeof *it);
    return it;
}

/* The converter's per-tensor type rule (conversion/base.py prepare_tensors): 1-D tensors, norms
 * ("_norm.weight"), the router (ffn_gate_inp) and anything not ending in ".weight" are F32;
 * everything else takes the output type, except that Q8_0 falls back to F16 when a row is not a
 * whole number of 32-value blocks (gguf.quants QuantError). */
static dc_dtype type_rule(const char *gname, uint32_t n_dims, int64_t ne0, dc_dtype want)
{
    if (n_dims <= 1 || dc_str_ends_with(gname, "_norm.weight") || !dc_str_ends_with(gname, ".weight") ||
        strstr(gname, ".ffn_gate_inp.") || strstr(gname, ".indexer.proj.")) /* "DSA indexer weights should be F32" */
        return DC_DT_F32;
    if (want == DC_DT_Q8_0 && ne0 % DC_QK8_0)
        return DC_DT_F16;
    return want;
}

static void set_shape(item *it, const dc_tensor *t)
{
    it->n_dims = (uint32_t)(t->ndim ? t->ndim : 1);
    for (int j = 0; j < 4; j++)
        it->ne[j] = 1;
    for (int j = 0; j < t->ndim; j++)
        it->ne[j] = t->shape[t->ndim - 1 - j];
}

static void finish_item(item *it, dc_dtype want)
{
    it->dt = type_rule(it->name, it->n_dims, it->ne[0], want);
    it->cols = it->ne[0];
    it->rows = it->ne[1] * it->ne[2] * it->ne[3];
}

static int role_rank(dc_role r)
{
    /* within a layer: llama.cpp's order of creation, roughly */
    static const dc_role ORDER[] = {
        DC_ROLE_ATTN_NORM, DC_ROLE_Q_A_PROJ, DC_ROLE_Q_A_NORM, DC_ROLE_Q_B_PROJ, DC_ROLE_Q_PROJ, DC_ROLE_Q_BIAS, DC_ROLE_K_PROJ,
        DC_ROLE_K_BIAS, DC_ROLE_V_PROJ, DC_ROLE_V_BIAS, DC_ROLE_KV_A_PROJ, DC_ROLE_KV_A_NORM, DC_ROLE_KV_B_PROJ,
        DC_ROLE_O_PROJ, DC_ROLE_O_BIAS, DC_ROLE_FFN_NORM, DC_ROLE_IDX_K_NORM, DC_ROLE_IDX_K_NORM_BIAS,
        DC_ROLE_IDX_WEIGHTS_PROJ, DC_ROLE_IDX_WK, DC_ROLE_IDX_WQ_B, DC_ROLE_MLP_GATE, DC_ROLE_MLP_UP,
        DC_ROLE_MLP_DOWN, DC_ROLE_ROUTER, DC_ROLE_ROUTER_BIAS, DC_ROLE_EXP_GATE, DC_ROLE_EXP_UP, DC_ROLE_EXP_DOWN,
        DC_ROLE_SHEXP_GATE, DC_ROLE_SHEXP_UP, DC_ROLE_SHEXP_DOWN, DC_ROLE_MTP_EH_PROJ, DC_ROLE_MTP_ENORM,
        DC_ROLE_MTP_HNORM, DC_ROLE_MTP_EMBED, DC_ROLE_MTP_HEAD, DC_ROLE_MTP_HEAD_NORM};
    for (size_t i = 0; i < sizeof ORDER / sizeof ORDER[0]; i++)
        if (ORDER[i] == r)
            return (int)i * 2;
    return 1000;
}

static int cmp_item(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->order_layer != y->order_layer)
        return x->order_layer < y->order_layer ? -1 : 1;
    if (x->order_role != y->order_role)
        return x->order_role < y->order_role ? -1 : 1;
    return strcmp(x->name, y->name);
}

static bool is_fp8(dc_dtype d) { return d == DC_DT_F8_E4M3 || d == DC_DT_F8_E5M2; }

static int cmp_file_offset(const void *x, const void *y)
{
    const dc_tensor *a = *(const dc_tensor *const *)x, *b = *(const dc_tensor *const *)y;
    if (a->file != b->file)
        return a->file < b->file ? -1 : 1;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/* --type auto: like convert_hf_to_gguf.py, the first tensor of 2 or more dims (in file order)
 * decides: BF16 -> bf16, F16 -> f16; FP8 counts as BF16 (DeepSeek dequantizes it to bf16). */
static dc_gguf_out auto_type(const dc_ckpt *ck)
{
    const dc_tensor **ord = malloc((ck->n_tensors + 1) * sizeof *ord);
    dc_gguf_out r = DC_GGUF_OUT_F16;
    if (!ord)
        return r;
    memcpy(ord, ck->tensors, ck->n_tensors * sizeof *ord);
    qsort(ord, ck->n_tensors, sizeof *ord, cmp_file_offset);
    for (size_t i = 0; i < ck->n_tensors; i++) {
        if (ord[i]->ndim < 2 || dc_str_ends_with(ord[i]->name, "_scale_inv"))
            continue;
        if (ord[i]->dtype == DC_DT_BF16 || is_fp8(ord[i]->dtype)) {
            r = DC_GGUF_OUT_BF16;
            break;
        }
        if (ord[i]->dtype == DC_DT_F16)
            break;
    }
    free(ord);
    return r;
}

const char *dc_gguf_arch_name(const dc_config *c)
{
    return c->arch == DC_ARCH_QWEN2 ? "qwen2" : c->arch == DC_ARCH_LLAMA ? "llama"
           : c->index_n_heads ? "deepseek32" : "deepseek2";
}

/* GGUF row of HF row r of a q/k projection permuted for llama.cpp (LlamaModel.permute): in each
 * head of hd rows, HF row a*hd/2 + i becomes row 2i + a. */
static int64_t perm_row(int64_t r, int64_t hd)
{
    int64_t h = r / hd, j = r % hd, half = hd / 2;
    return h * hd + 2 * (j % half) + j / half;
}

static dc_status build_plan(const dc_ckpt *ck, const dc_gguf_export_opts *o, plan *p, dc_gguf_export_stats *s,
                            dc_err *err)
{
    const dc_config *c = &ck->cfg;
    dc_dtype want = out_dtype(p->type);
    dc_status st = DC_OK;
    p->arch = dc_gguf_arch_name(c);
    if (c->arch == DC_ARCH_QWEN2 && (c->n_heads * c->head_dim != c->hidden_size))
        return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: llama.cpp's qwen2 needs num_attention_heads x head_dim (%d x %d) = "
                          "hidden_size (%lld)", ck->path, c->n_heads, c->head_dim, (long long)c->hidden_size);
    if (c->rope_llama3) { /* LlamaModel.generate_extra_tensors: the llama3 scaling as frequency divisors */
        item *it = new_item(p, err);
        if (!it)
            return DC_ERR_NOMEM;
        it->kind = K_CONST;
        snprintf(it->name, sizeof it->name, "rope_freqs.weight");
        it->src = "(rope_scaling llama3)";
        it->src_dt = DC_DT_F32;
        it->n_dims = 1;
        it->ne[0] = c->head_dim / 2;
        it->ne[1] = it->ne[2] = it->ne[3] = 1;
        it->order_layer = -2;
        if (!(it->vals = malloc((size_t)it->ne[0] * sizeof *it->vals + 1)))
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        dc_config_llama3_rope_factors(c, it->vals);
        finish_item(it, want);
    }
    /* MTP layers: kept when every one of them is present (its eh_proj), unless --drop-mtp */
    int present = 0;
    for (int k = 0; k < c->n_mtp_layers; k++) {
        char nm[96];
        snprintf(nm, sizeof nm, "model.layers.%d.eh_proj.weight", c->n_layers + k);
        present += dc_ckpt_find(ck, nm) != NULL;
    }
    bool keep_mtp = !o->drop_mtp && c->n_mtp_layers > 0 && present == c->n_mtp_layers;
    if (!o->drop_mtp && c->n_mtp_layers > 0 && present < c->n_mtp_layers)
        dc_log(1, "convert: warning: num_nextn_predict_layers is %d but %d MTP layer(s) are in the checkpoint; "
                  "writing the model without them\n", c->n_mtp_layers, present);
    p->n_mtp = keep_mtp ? c->n_mtp_layers : 0;
    /* experts per (layer, role) */
    int n_all = c->n_layers + c->n_mtp_layers;
    size_t *exp_item = calloc((size_t)n_all * 3 + 1, sizeof *exp_item); /* index + 1 (items move as they grow) */
    if (!exp_item)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < ck->n_tensors && !st; i++) {
        const dc_tensor *t = ck->tensors[i];
        s->n_tensors_in++;
        s->bytes_in += t->nbytes;
        int fl, fwhich;
        bool fscale;
        if (dc_fused_expert_name(t->name, &fl, &fwhich, &fscale)) {
            /* fused experts (reshard --merge-experts): gate_up_proj gives ffn_gate_exps and
             * ffn_up_exps, down_proj ffn_down_exps; each expert read through its 2-D view */
            if (fscale)
                continue;
            if (fl < 0 || fl >= n_all || c->n_experts_routed < 1) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s: layer %d is outside the config (%d layers, %d routed experts)",
                                dc_ckpt_file_name(ck, t), t->name, fl, n_all, c->n_experts_routed);
                break;
            }
            if (fl >= c->n_layers && !keep_mtp)
                continue; /* a dropped MTP layer */
            for (int k = fwhich ? 2 : 0; k < (fwhich ? 3 : 2) && !st; k++) {
                if (exp_item[fl * 3 + k]) {
                    st = dc_err_set(err, DC_ERR_MODEL, "%s: layer %d has both fused and per-expert routed experts",
                                    dc_ckpt_file_name(ck, t), fl);
                    break;
                }
                item *it = new_item(p, err);
                if (!it) {
                    st = DC_ERR_NOMEM;
                    break;
                }
                it->kind = K_STACK;
                it->n_e = c->n_experts_routed;
                it->ew = calloc((size_t)it->n_e, sizeof *it->ew);
                it->slots = calloc((size_t)it->n_e, sizeof *it->slots);
                if (!it->ew || !it->slots) {
                    st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                    break;
                }
                static const char *NM[3] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
                static const dc_role RL[3] = {DC_ROLE_EXP_GATE, DC_ROLE_EXP_UP, DC_ROLE_EXP_DOWN};
                snprintf(it->name, sizeof it->name, "blk.%d.%s.weight", fl, NM[k]);
                it->order_layer = fl;
                it->order_role = role_rank(RL[k]);
                exp_item[fl * 3 + k] = p->n;
                for (int64_t e = 0; e < it->n_e && !st; e++) {
                    st = dc_expert_weight_into(ck, fl, (int)e, k == 0 ? DC_EXPERT_GATE : k == 1 ? DC_EXPERT_UP : DC_EXPERT_DOWN,
                                               &it->slots[e], err);
                    if (!st)
                        it->ew[e] = it->slots[e].w;
                }
            }
            if (st)
                break;
            continue;
        }
        dc_name_info ni;
        bool known = dc_name_parse(c, t->name, &ni);
        if (known && ni.is_scale)
            continue; /* folded into its weight by dc_ckpt_weight */
        if (dc_str_ends_with(t->name, ".rotary_emb.inv_freq"))
            continue; /* the converter drops these */
        if (!known) {
            st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: tensor %s has no %s GGUF name", dc_ckpt_file_name(ck, t),
                            t->name, p->arch);
            break;
        }
        if (ni.is_mtp && !keep_mtp)
            continue;
        if (ni.role == DC_ROLE_LM_HEAD && c->tie_word_embeddings)
            continue; /* the converter skips a tied lm_head */
        if (ni.role == DC_ROLE_EXP_GATE || ni.role == DC_ROLE_EXP_UP || ni.role == DC_ROLE_EXP_DOWN) {
            int k = ni.role == DC_ROLE_EXP_GATE ? 0 : ni.role == DC_ROLE_EXP_UP ? 1 : 2;
            if (ni.layer >= n_all || ni.expert >= c->n_experts_routed) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s: expert %d of layer %d is outside the config (%d experts, %d layers)",
                                dc_ckpt_file_name(ck, t), t->name, ni.expert, ni.layer, c->n_experts_routed, n_all);
                break;
            }
            item *it = exp_item[ni.layer * 3 + k] ? &p->items[exp_item[ni.layer * 3 + k] - 1] : NULL;
            if (it && it->slots) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: layer %d has both fused and per-expert routed experts",
                                dc_ckpt_file_name(ck, t), ni.layer);
                break;
            }
            if (!it) {
                if (!(it = new_item(p, err))) {
                    st = DC_ERR_NOMEM;
                    break;
                }
                it->kind = K_STACK;
                it->n_e = c->n_experts_routed;
                it->ew = calloc((size_t)it->n_e, sizeof *it->ew);
                if (!it->ew) {
                    st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                    break;
                }
                static const char *NM[3] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
                snprintf(it->name, sizeof it->name, "blk.%d.%s.weight", ni.layer, NM[k]);
                it->order_layer = ni.layer;
                it->order_role = role_rank(ni.role);
                exp_item[ni.layer * 3 + k] = p->n;
            }
            if ((st = dc_ckpt_weight(ck, t->name, &it->ew[ni.expert], err)))
                break;
            continue;
        }
        if (ni.role == DC_ROLE_KV_B_PROJ) {
            /* split into attn_k_b (transposed per head) and attn_v_b, as the converter does;
             * attn_kv_b itself is not written (llama.cpp's MLA loader does not accept it) */
            int64_t H = c->n_heads, dn = c->qk_nope_head_dim, dv = c->v_head_dim, kc = c->kv_lora_rank;
            if (t->ndim != 2 || t->shape[0] != H * (dn + dv) || t->shape[1] != kc) {
                char sb[64];
                st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s has shape %s; expected %lldx%lld (heads x (nope + v), kv_lora_rank)",
                                dc_ckpt_file_name(ck, t), t->name, dc_shape_str(t->ndim, t->shape, sb, sizeof sb),
                                (long long)(H * (dn + dv)), (long long)kc);
                break;
            }
            for (int half = 0; half < 2 && !st; half++) {
                item *it = new_item(p, err);
                if (!it) {
                    st = DC_ERR_NOMEM;
                    break;
                }
                it->kind = half ? K_VB : K_KB;
                if ((st = dc_ckpt_weight(ck, t->name, &it->w, err)))
                    break;
                it->H = H, it->dn = dn, it->dv = dv, it->c = kc;
                it->src = t->name;
                it->src_dt = t->dtype;
                snprintf(it->name, sizeof it->name, "blk.%d.%s.weight", ni.layer, half ? "attn_v_b" : "attn_k_b");
                it->n_dims = 3;
                it->ne[0] = half ? kc : dn;
                it->ne[1] = half ? dv : kc;
                it->ne[2] = H;
                it->ne[3] = 1;
                it->order_layer = ni.layer;
                it->order_role = role_rank(ni.role) + half;
                finish_item(it, want);
            }
            continue;
        }
        item *it = new_item(p, err);
        if (!it) {
            st = DC_ERR_NOMEM;
            break;
        }
        it->kind = K_DIRECT;
        if (!dc_gguf_hf_to_name(t->name, it->name, sizeof it->name)) {
            st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: tensor %s has no %s GGUF name", dc_ckpt_file_name(ck, t),
                            t->name, p->arch);
            break;
        }
        if ((st = dc_ckpt_weight(ck, t->name, &it->w, err)))
            break;
        it->src = t->name;
        it->src_dt = t->dtype;
        set_shape(it, t);
        if (c->arch == DC_ARCH_LLAMA && (ni.role == DC_ROLE_Q_PROJ || ni.role == DC_ROLE_K_PROJ ||
                                         ni.role == DC_ROLE_Q_BIAS || ni.role == DC_ROLE_K_BIAS)) {
            /* LlamaModel.permute: llama.cpp's llama rotates interleaved pairs (rope type NORM), so
             * each head's rows [0, hd/2) and [hd/2, hd) are interleaved */
            it->kind = K_PERM;
            it->H = ni.role == DC_ROLE_Q_PROJ || ni.role == DC_ROLE_Q_BIAS ? c->n_heads : c->n_kv_heads;
            it->dn = c->head_dim;
            if (t->shape[0] != it->H * it->dn || it->dn % 2) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s has %lld rows; expected %lld heads x head_dim %lld",
                                dc_ckpt_file_name(ck, t), t->name, (long long)t->shape[0], (long long)it->H, (long long)it->dn);
                break;
            }
        }
        it->order_layer = ni.layer < 0 ? (ni.role == DC_ROLE_EMBED ? -1 : 1 << 30) : ni.layer;
        it->order_role = ni.role == DC_ROLE_LM_HEAD ? 1 : role_rank(ni.role);
        finish_item(it, want);
    }
    /* stacked experts: every expert present, all the same shape and readable */
    for (int k = 0; k < n_all * 3 && !st; k++) {
        if (!exp_item[k])
            continue;
        item *it = &p->items[exp_item[k] - 1];
        for (int64_t e = 0; e < it->n_e && !st; e++) {
            const dc_weight *w = &it->ew[e];
            if (!w->t) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: missing tensor model.layers.%d.mlp.experts.%lld.%s_proj.weight "
                                "(%s stacks all %lld experts)", ck->path, k / 3, (long long)e,
                                k % 3 == 0 ? "gate" : k % 3 == 1 ? "up" : "down", it->name, (long long)it->n_e);
            } else if (w->rows != it->ew[0].rows || w->cols != it->ew[0].cols) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s is %lldx%lld but expert 0 is %lldx%lld", ck->path, w->t->name,
                                (long long)w->rows, (long long)w->cols, (long long)it->ew[0].rows, (long long)it->ew[0].cols);
            }
        }
        if (st)
            break;
        it->src = it->ew[0].t->name;
        it->src_dt = it->ew[0].t->dtype;
        it->n_dims = 3;
        it->ne[0] = it->ew[0].cols;
        it->ne[1] = it->ew[0].rows;
        it->ne[2] = it->n_e;
        it->ne[3] = 1;
        finish_item(it, want);
    }
    free(exp_item);
    if (st)
        return st;
    qsort(p->items, p->n, sizeof *p->items, cmp_item);
    return DC_OK;
}

/* ============================================================================================
 * Metadata
 * ============================================================================================ */

static const cJSON *jget(const cJSON *o, const char *k) { return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL; }
static bool jnum(const cJSON *o, const char *k, double *v)
{
    const cJSON *x = jget(o, k);
    if (!cJSON_IsNumber(x))
        return false;
    *v = x->valuedouble;
    return true;
}

static dc_status read_json(const char *dir, const char *name, cJSON **out, bool required, dc_err *err)
{
    *out = NULL;
    char *p = dc_path_join(dir, name);
    if (!p)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    if (!dc_exists(p)) {
        dc_status st = required ? dc_err_set(err, DC_ERR_CONFIG, "%s: missing", p) : DC_OK;
        free(p);
        return st;
    }
    char *buf;
    size_t len;
    dc_status st = dc_read_file(p, &buf, &len, 1u << 30, err);
    if (!st) {
        *out = cJSON_ParseWithLength(buf, len);
        free(buf);
        if (!*out)
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: not valid JSON", p);
    }
    free(p);
    return st;
}

/* gguf.size_label / model_weight_count_rounded_notation (gguf-py/gguf/utility.py) */
static void size_label(const plan *p, char *buf, size_t cap)
{
    int64_t total = 0, shared = 0, expert = 0, expert_sum = 0, n_exp_t = 0;
    for (size_t i = 0; i < p->n; i++) {
        const item *it = &p->items[i];
        int64_t size = it->ne[0] * it->ne[1] * it->ne[2] * it->ne[3];
        if (strstr(it->name, "_exps.") && it->n_dims >= 3) {
            int64_t ec = it->ne[2];
            expert += size / ec;
            expert_sum += ec;
            n_exp_t++;
        } else
            shared += size;
        total += size;
    }
    int64_t ecount = n_exp_t ? expert_sum / n_exp_t : 0;
    double n = (double)(ecount > 0 ? shared + expert : total);
    double scaled;
    const char *suffix;
    if (n > 1e12) scaled = n * 1e-12, suffix = "T";
    else if (n > 1e9) scaled = n * 1e-9, suffix = "B";
    else if (n > 1e6) scaled = n * 1e-6, suffix = "M";
    else scaled = n * 1e-3, suffix = "K";
    char r[64];
    snprintf(r, sizeof r, "%.0f", nearbyint(scaled)); /* Python round(): half to even */
    const char *d = r;
    while (*d == '0')
        d++;
    int fix = 2 - (int)strlen(d);
    if (fix < 0)
        fix = 0;
    if (ecount > 0)
        snprintf(buf, cap, "%lldx%.*f%s", (long long)ecount, fix, scaled, suffix);
    else
        snprintf(buf, cap, "%.*f%s", fix, scaled, suffix);
}

#define CK(x) do { if ((st = (x)) != DC_OK) goto done; } while (0)

/* qwen2 / llama: TextModel.set_gguf_parameters (+ LlamaModel's vocab_size and rope.dimension_count).
 * llama3 rope scaling is the rope_freqs tensor, not a key. */
static dc_status write_dense_kvs(dc_ggufw *w, const dc_config *c, const cJSON *cfg, const plan *p, bool quant_keys,
                                 dc_err *err)
{
    dc_status st = DC_OK;
    char key[96];
#define AK(s) (snprintf(key, sizeof key, "%s.%s", p->arch, s), key)
    double v;
    CK(dc_ggufw_kv_u32(w, AK("block_count"), (uint32_t)c->n_layers, err));
    if (jnum(cfg, "max_position_embeddings", &v))
        CK(dc_ggufw_kv_u32(w, AK("context_length"), (uint32_t)v, err));
    CK(dc_ggufw_kv_u32(w, AK("embedding_length"), (uint32_t)c->hidden_size, err));
    CK(dc_ggufw_kv_u32(w, AK("feed_forward_length"), (uint32_t)c->intermediate_size, err));
    CK(dc_ggufw_kv_u32(w, AK("attention.head_count"), (uint32_t)c->n_heads, err));
    CK(dc_ggufw_kv_u32(w, AK("attention.head_count_kv"), (uint32_t)c->n_kv_heads, err));
    CK(dc_ggufw_kv_f32(w, AK("rope.freq_base"), (float)c->rope_theta, err));
    CK(dc_ggufw_kv_f32(w, AK("attention.layer_norm_rms_epsilon"), (float)c->rms_norm_eps, err));
    if (jget(cfg, "head_dim")) {
        CK(dc_ggufw_kv_u32(w, AK("attention.key_length"), (uint32_t)c->head_dim, err));
        CK(dc_ggufw_kv_u32(w, AK("attention.value_length"), (uint32_t)c->head_dim, err));
    }
    if (quant_keys)
        CK(dc_ggufw_kv_u32(w, "general.file_type", out_ftype(p->type), err));
    if (c->arch == DC_ARCH_LLAMA) {
        CK(dc_ggufw_kv_u32(w, AK("vocab_size"), (uint32_t)c->vocab_size, err));
        CK(dc_ggufw_kv_u32(w, AK("rope.dimension_count"), (uint32_t)c->head_dim, err));
    }
    if (quant_keys)
        CK(dc_ggufw_kv_u32(w, "general.quantization_version", GGML_QUANT_VERSION, err));
#undef AK
done:
    return st;
}

/* quant_keys: write general.file_type and general.quantization_version (false for `deepcast quantize`,
 * which appends them after all other keys, as llama-quantize does) */
static dc_status write_model_kvs(dc_ggufw *w, const dc_ckpt *ck, const cJSON *cfg, const plan *p, const char *name,
                                 bool quant_keys, dc_err *err)
{
    const dc_config *c = &ck->cfg;
    dc_status st = DC_OK;
    char label[64];
    size_label(p, label, sizeof label);
    CK(dc_ggufw_kv_str(w, "general.architecture", p->arch, strlen(p->arch), err));
    CK(dc_ggufw_kv_str(w, "general.type", "model", 5, err));
    if (name[0])
        CK(dc_ggufw_kv_str(w, "general.name", name, strlen(name), err));
    CK(dc_ggufw_kv_str(w, "general.size_label", label, strlen(label), err));
    if (dc_arch_dense(c->arch)) {
        st = write_dense_kvs(w, c, cfg, p, quant_keys, err);
        goto done;
    }
    /* TextModel.set_gguf_parameters; keys under the architecture (deepseek2 or deepseek32) */
    char kb[128];
#define AK(sfx) (snprintf(kb, sizeof kb, "%s.%s", p->arch, sfx), kb)
    CK(dc_ggufw_kv_u32(w, AK("block_count"), (uint32_t)(c->n_layers + p->n_mtp), err));
    double v;
    if (jnum(cfg, "max_position_embeddings", &v))
        CK(dc_ggufw_kv_u32(w, AK("context_length"), (uint32_t)v, err));
    CK(dc_ggufw_kv_u32(w, AK("embedding_length"), (uint32_t)c->hidden_size, err));
    CK(dc_ggufw_kv_u32(w, AK("feed_forward_length"), (uint32_t)c->intermediate_size, err));
    CK(dc_ggufw_kv_u32(w, AK("attention.head_count"), (uint32_t)c->n_heads, err));
    /* MLA is stored as MQA: one KV head (DeepseekV2Model sets num_key_value_heads = 1) */
    CK(dc_ggufw_kv_u32(w, AK("attention.head_count_kv"), 1, err));
    const cJSON *rs = jget(cfg, "rope_scaling");
    if (cJSON_IsObject(rs)) {
        const cJSON *ty = jget(rs, "rope_type");
        if (!cJSON_IsString(ty))
            ty = jget(rs, "type");
        double f;
        if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "yarn") && jnum(rs, "factor", &f)) {
            CK(dc_ggufw_kv_str(w, AK("rope.scaling.type"), "yarn", 4, err));
            CK(dc_ggufw_kv_f32(w, AK("rope.scaling.factor"), (float)f, err));
            if (jnum(rs, "original_max_position_embeddings", &v))
                CK(dc_ggufw_kv_u32(w, AK("rope.scaling.original_context_length"), (uint32_t)v, err));
            if (jnum(rs, "extrapolation_factor", &v))
                CK(dc_ggufw_kv_f32(w, AK("rope.scaling.yarn_ext_factor"), (float)v, err));
            if (jnum(rs, "attention_factor", &v) || jnum(rs, "attn_factor", &v))
                CK(dc_ggufw_kv_f32(w, AK("rope.scaling.yarn_attn_factor"), (float)v, err));
            if (jnum(rs, "beta_fast", &v))
                CK(dc_ggufw_kv_f32(w, AK("rope.scaling.yarn_beta_fast"), (float)v, err));
            if (jnum(rs, "beta_slow", &v))
                CK(dc_ggufw_kv_f32(w, AK("rope.scaling.yarn_beta_slow"), (float)v, err));
        }
    }
    if (jnum(cfg, "rope_theta", &v))
        CK(dc_ggufw_kv_f32(w, AK("rope.freq_base"), (float)v, err));
    CK(dc_ggufw_kv_f32(w, AK("attention.layer_norm_rms_epsilon"), jnum(cfg, "rms_norm_eps", &v) ? (float)v : 1e-6f, err));
    CK(dc_ggufw_kv_u32(w, AK("expert_count"), (uint32_t)c->n_experts_routed, err));
    CK(dc_ggufw_kv_u32(w, AK("expert_used_count"), (uint32_t)c->n_experts_per_tok, err));
    if (jnum(cfg, "n_group", &v))
        CK(dc_ggufw_kv_u32(w, AK("expert_group_count"), (uint32_t)v, err));
    if (jnum(cfg, "topk_group", &v))
        CK(dc_ggufw_kv_u32(w, AK("expert_group_used_count"), (uint32_t)v, err));
    if (cJSON_IsString(jget(cfg, "scoring_func")))
        CK(dc_ggufw_kv_u32(w, AK("expert_gating_func"),
                           c->scoring_func == DC_SCORE_SIGMOID ? GATING_SIGMOID : GATING_SOFTMAX, err));
    if (quant_keys)
        CK(dc_ggufw_kv_u32(w, "general.file_type", out_ftype(p->type), err));
    /* DeepseekV2Model.set_gguf_parameters */
    CK(dc_ggufw_kv_u32(w, AK("leading_dense_block_count"), (uint32_t)c->first_k_dense_replace, err));
    CK(dc_ggufw_kv_u32(w, AK("vocab_size"), (uint32_t)c->vocab_size, err));
    /* The converter writes q_lora_rank only when it is set; llama.cpp then requires it unless the
     * model has 26/27 layers ("lite"). A q_lora-less model of another depth therefore gets an
     * explicit 0 (plain attn_q), which llama.cpp loads the same way. */
    if (c->q_lora_rank > 0 || (c->n_layers != 27 && c->n_layers != 26))
        CK(dc_ggufw_kv_u32(w, AK("attention.q_lora_rank"), (uint32_t)c->q_lora_rank, err));
    CK(dc_ggufw_kv_u32(w, AK("attention.kv_lora_rank"), (uint32_t)c->kv_lora_rank, err));
    CK(dc_ggufw_kv_u32(w, AK("attention.key_length"), (uint32_t)(c->kv_lora_rank + c->qk_rope_head_dim), err));
    CK(dc_ggufw_kv_u32(w, AK("attention.value_length"), (uint32_t)c->kv_lora_rank, err));
    CK(dc_ggufw_kv_u32(w, AK("attention.key_length_mla"), (uint32_t)(c->qk_nope_head_dim + c->qk_rope_head_dim), err));
    CK(dc_ggufw_kv_u32(w, AK("attention.value_length_mla"), (uint32_t)c->v_head_dim, err));
    CK(dc_ggufw_kv_u32(w, AK("expert_feed_forward_length"), (uint32_t)c->moe_intermediate_size, err));
    CK(dc_ggufw_kv_u32(w, AK("expert_shared_count"), (uint32_t)c->n_experts_shared, err));
    if (jnum(cfg, "routed_scaling_factor", &v))
        CK(dc_ggufw_kv_f32(w, AK("expert_weights_scale"), (float)v, err));
    if (c->norm_topk_prob)
        CK(dc_ggufw_kv_bool(w, AK("expert_weights_norm"), true, err));
    CK(dc_ggufw_kv_u32(w, AK("rope.dimension_count"), (uint32_t)c->qk_rope_head_dim, err));
    if (cJSON_IsObject(rs) && jnum(rs, "mscale_all_dim", &v))
        /* [TAG_DEEPSEEK2_YARN_LOG_MUL_FIX]: llama.cpp divides it by 0.1 again */
        CK(dc_ggufw_kv_f32(w, AK("rope.scaling.yarn_log_multiplier"), (float)(0.1 * v), err));
    if (p->n_mtp > 0)
        CK(dc_ggufw_kv_u32(w, AK("nextn_predict_layers"), (uint32_t)p->n_mtp, err));
    if (c->index_n_heads) { /* DeepseekV32Model.set_gguf_parameters */
        CK(dc_ggufw_kv_u32(w, AK("attention.indexer.head_count"), (uint32_t)c->index_n_heads, err));
        CK(dc_ggufw_kv_u32(w, AK("attention.indexer.key_length"), (uint32_t)c->index_head_dim, err));
        CK(dc_ggufw_kv_u32(w, AK("attention.indexer.top_k"), (uint32_t)c->index_topk, err));
    }
    if (quant_keys)
        CK(dc_ggufw_kv_u32(w, "general.quantization_version", GGML_QUANT_VERSION, err));
#undef AK
done:
    return st;
}

/* ---- tokenizer ---------------------------------------------------------------------------- */

typedef struct tokvocab {
    char **tok;    /* [n] */
    size_t *len;
    int32_t *type;
    size_t n;
    char **merges;
    size_t *mlen;
    size_t n_merges;
} tokvocab;

static void tokvocab_free(tokvocab *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->tok[i]);
    free(v->tok);
    free(v->len);
    free(v->type);
    for (size_t i = 0; i < v->n_merges; i++)
        free(v->merges[i]);
    free(v->merges);
    free(v->mlen);
    memset(v, 0, sizeof *v);
}

/* conversion/base.py does_token_look_special */
static bool looks_special(const char *s)
{
    size_t l = strlen(s);
    if (!strcmp(s, "<pad>") || !strcmp(s, "<mask>") || !strcmp(s, "<2mass>") || !strcmp(s, "[@BOS@]"))
        return true;
    if (l >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + l - 2, "|>"))
        return true;
    const char *fl = "<\xef\xbd\x9c", *fr = "\xef\xbd\x9c>"; /* <｜ ｜> */
    if (l >= 8 && !strncmp(s, fl, 4) && !strcmp(s + l - 4, fr))
        return true;
    return l >= 8 && !strncmp(s, "<unused", 7) && s[l - 1] == '>';
}

/* Replaces U+2581 (▁) by a space, in place. */
static void unspace(char *s)
{
    char *o = s;
    for (char *p = s; *p;) {
        if ((unsigned char)p[0] == 0xe2 && (unsigned char)p[1] == 0x96 && (unsigned char)p[2] == 0x81) {
            *o++ = ' ';
            p += 3;
        } else
            *o++ = *p++;
    }
    *o = 0;
}

/* The content of a tokenizer_config.json special token entry (a string or {"content": ...}). */
static const char *tc_content(const cJSON *e)
{
    if (cJSON_IsString(e))
        return e->valuestring;
    const cJSON *c = jget(e, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

typedef struct special {
    const char *typ, *key, *add_key;
    int64_t id;
    int order;      /* when it was first set */
    int add;        /* -1 unset, 0/1 */
    int add_order;
} special;

static dc_status write_tokenizer(dc_ggufw *w, const dc_ckpt *ck, const cJSON *cfg, dc_gguf_export_stats *stats,
                                 dc_err *err)
{
    const char *dir = ck->dir;
    cJSON *tj = NULL, *tc = NULL;
    tokvocab v = {0};
    dc_status st = read_json(dir, "tokenizer.json", &tj, false, err);
    if (st)
        return st;
    if (!tj) {
        dc_log(1, "convert: warning: %s has no tokenizer.json; writing tokenizer.ggml.model = none (llama.cpp loads "
                  "the model but cannot tokenize text; score token ids)\n", dir);
        stats->tokenizer = false;
        return dc_ggufw_kv_str(w, "tokenizer.ggml.model", "none", 4, err);
    }
    stats->tokenizer = true;
    CK(read_json(dir, "tokenizer_config.json", &tc, false, err));
    const dc_config *c = &ck->cfg;
    const cJSON *model = jget(tj, "model");
    const cJSON *vocab = jget(model, "vocab");
    const cJSON *type = jget(model, "type");
    if (!cJSON_IsObject(vocab) || (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE")))) {
        st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s/tokenizer.json: not a BPE tokenizer with a vocab object", dir);
        goto done;
    }
    v.n = (size_t)c->vocab_size;
    v.tok = calloc(v.n, sizeof *v.tok);
    v.len = calloc(v.n, sizeof *v.len);
    v.type = calloc(v.n, sizeof *v.type);
    if (!v.tok || !v.len || !v.type) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble != floor(e->valuedouble)) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s/tokenizer.json: vocab entry \"%.60s\" has no integer id", dir, e->string);
            goto done;
        }
        if (e->valuedouble >= (double)v.n) {
            st = dc_err_set(err, DC_ERR_MODEL, "%s/tokenizer.json: token \"%.60s\" has id %.0f, outside vocab_size %zu", dir,
                            e->string, e->valuedouble, v.n);
            goto done;
        }
        size_t id = (size_t)e->valuedouble;
        free(v.tok[id]);
        if (!(v.tok[id] = dc_strdup(e->string))) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        v.type[id] = TOK_NORMAL;
    }
    const cJSON *added = jget(tj, "added_tokens");
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = jget(e, "id"), *content = jget(e, "content"), *special_ = jget(e, "special");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content))
            continue;
        if (id->valuedouble < 0 || id->valuedouble >= (double)v.n) {
            st = dc_err_set(err, DC_ERR_MODEL, "%s/tokenizer.json: added token \"%.60s\" has id %.0f, outside vocab_size %zu",
                            dir, content->valuestring, id->valuedouble, v.n);
            goto done;
        }
        size_t i = (size_t)id->valuedouble;
        free(v.tok[i]);
        if (!(v.tok[i] = dc_strdup(content->valuestring))) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (cJSON_IsTrue(special_) || looks_special(v.tok[i]))
            v.type[i] = TOK_CONTROL;
        else {
            unspace(v.tok[i]);
            v.type[i] = TOK_USER_DEFINED;
        }
    }
    for (size_t i = 0; i < v.n; i++) {
        if (!v.tok[i]) {
            char b[32];
            snprintf(b, sizeof b, "[PAD%zu]", i);
            if (!(v.tok[i] = dc_strdup(b))) {
                st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                goto done;
            }
            v.type[i] = TOK_UNUSED;
        }
        v.len[i] = strlen(v.tok[i]);
    }
    /* merges: "a b" strings, or [a, b] pairs joined by a space with spaces inside written as
     * U+0120 (gguf-py SpecialVocab) */
    const cJSON *merges = jget(model, "merges");
    int nm = cJSON_IsArray(merges) ? cJSON_GetArraySize(merges) : 0;
    if (nm > 0) {
        v.merges = calloc((size_t)nm, sizeof *v.merges);
        v.mlen = calloc((size_t)nm, sizeof *v.mlen);
        if (!v.merges || !v.mlen) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        cJSON_ArrayForEach(e, merges) {
            char *m = NULL;
            if (cJSON_IsString(e))
                m = dc_strdup(e->valuestring);
            else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                     cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
                const char *a = cJSON_GetArrayItem(e, 0)->valuestring, *b = cJSON_GetArrayItem(e, 1)->valuestring;
                size_t cap = 2 * (strlen(a) + strlen(b)) + 2, o = 0;
                m = malloc(cap);
                for (int part = 0; m && part < 2; part++) {
                    if (part)
                        m[o++] = ' ';
                    for (const char *q = part ? b : a; *q; q++) {
                        if (*q == ' ') {
                            m[o++] = (char)0xc4;
                            m[o++] = (char)0xa0;
                        } else
                            m[o++] = *q;
                    }
                }
                if (m)
                    m[o] = 0;
            } else {
                st = dc_err_set(err, DC_ERR_FORMAT, "%s/tokenizer.json: merge %zu is neither \"a b\" nor [a, b]", dir, v.n_merges);
                goto done;
            }
            if (!m) {
                st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                goto done;
            }
            v.mlen[v.n_merges] = strlen(m);
            v.merges[v.n_merges++] = m;
        }
    }
    /* pre-tokenizer: llama.cpp names it by the hash of a test text's tokens
     * (convert_hf_to_gguf_update.py); deepcast recognizes the pre-tokenizers of DeepSeek's models
     * by their (first) Split pattern: deepseek-v3 (V3/R1/V3.1: \p{N}{1,3}, CJK, ...), deepseek-llm
     * (V2/V2-Lite, DeepSeek LLM: [\r\n], letters, ...), and the GPT-4-style pattern of Llama 3
     * (R1-Distill-Llama: digits in runs of up to 3, llama-bpe) and of Qwen2 (R1-Distill-Qwen: single
     * digits, deepseek-r1-qwen). Otherwise the architecture decides, with a warning. */
    const char *pre = c->arch == DC_ARCH_DEEPSEEK_V3 ? "deepseek-v3"
                      : c->arch == DC_ARCH_QWEN2     ? "deepseek-r1-qwen"
                      : c->arch == DC_ARCH_LLAMA     ? "llama-bpe"
                                                     : "deepseek-llm";
    static const char *GPT4_HEAD = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|";
    static const char *GPT4_TAIL = "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    {
        const cJSON *pt = jget(tj, "pre_tokenizer"), *first = NULL;
        const cJSON *seq = jget(pt, "pretokenizers");
        const cJSON *s0 = cJSON_IsArray(seq) ? cJSON_GetArrayItem(seq, 0) : pt;
        const cJSON *pat = jget(jget(s0, "pattern"), "Regex");
        if (cJSON_IsString(jget(s0, "type")) && !strcmp(jget(s0, "type")->valuestring, "Split") && cJSON_IsString(pat))
            first = pat;
        size_t hl = strlen(GPT4_HEAD);
        const char *mid = first && !strncmp(first->valuestring, GPT4_HEAD, hl) ? first->valuestring + hl : NULL;
        if (first && !strcmp(first->valuestring, "\\p{N}{1,3}"))
            pre = "deepseek-v3";
        else if (first && !strcmp(first->valuestring, "[\r\n]"))
            pre = "deepseek-llm";
        else if (mid && !strncmp(mid, "\\p{N}{1,3}", 10) && !strcmp(mid + 10, GPT4_TAIL))
            pre = "llama-bpe";
        else if (mid && !strncmp(mid, "\\p{N}", 5) && !strcmp(mid + 5, GPT4_TAIL))
            pre = "deepseek-r1-qwen";
        else
            dc_log(1, "convert: warning: %s/tokenizer.json: pre-tokenizer not recognized; writing tokenizer.ggml.pre = %s "
                      "(from model_type %s)\n", dir, pre, c->model_type);
    }
    CK(dc_ggufw_kv_str(w, "tokenizer.ggml.model", "gpt2", 4, err));
    CK(dc_ggufw_kv_str(w, "tokenizer.ggml.pre", pre, strlen(pre), err));
    CK(dc_ggufw_kv_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tok, v.len, v.n, err));
    CK(dc_ggufw_kv_arr(w, "tokenizer.ggml.token_type", DC_GGUF_I32, v.type, v.n, err));
    if (v.n_merges)
        CK(dc_ggufw_kv_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v.merges, v.mlen, v.n_merges, err));
    else
        dc_log(1, "convert: warning: %s/tokenizer.json has no merges\n", dir);

    /* special tokens and add_*_token (gguf-py SpecialVocab) */
    special sp[] = {
        {"bos", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.add_bos_token", -1, 0, -1, 0},
        {"eos", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_eos_token", -1, 0, -1, 0},
        {"unk", "tokenizer.ggml.unknown_token_id", NULL, -1, 0, -1, 0},
        {"sep", "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.add_sep_token", -1, 0, -1, 0},
        {"pad", "tokenizer.ggml.padding_token_id", NULL, -1, 0, -1, 0},
        {"cls", NULL, NULL, -1, 0, -1, 0},
        {"mask", "tokenizer.ggml.mask_token_id", NULL, -1, 0, -1, 0},
    };
    const int NS = (int)(sizeof sp / sizeof sp[0]);
    int order = 0, add_order = 0;
    /* TemplateProcessing: a leading special token that is bos adds bos; a trailing one that is
     * eos adds eos (the simple single-sequence templates) */
    const char *tc_bos = tc_content(jget(tc, "bos_token")), *tc_eos = tc_content(jget(tc, "eos_token"));
    const cJSON *pp = jget(tj, "post_processor");
    const cJSON *procs = jget(pp, "processors");
    const cJSON *proc;
    for (int pi = 0; pp && (proc = cJSON_IsArray(procs) ? cJSON_GetArrayItem(procs, pi) : (pi ? NULL : pp)); pi++) {
        const cJSON *ty = jget(proc, "type");
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "TemplateProcessing"))
            continue;
        const cJSON *single = jget(proc, "single");
        int ns = cJSON_IsArray(single) ? cJSON_GetArraySize(single) : 0;
        if (ns < 2)
            continue;
        const cJSON *f = jget(jget(cJSON_GetArrayItem(single, 0), "SpecialToken"), "id");
        const cJSON *l = jget(jget(cJSON_GetArrayItem(single, ns - 1), "SpecialToken"), "id");
        if (cJSON_IsString(f)) {
            sp[0].add = tc_bos && !strcmp(f->valuestring, tc_bos);
            sp[0].add_order = add_order++;
        }
        if (cJSON_IsString(l)) {
            sp[1].add = tc_eos && !strcmp(l->valuestring, tc_eos);
            sp[1].add_order = add_order++;
        }
    }
    for (int k = 0; k < NS && tc; k++) {
        char key[32];
        snprintf(key, sizeof key, "add_%s_token", sp[k].typ);
        const cJSON *a = jget(tc, key);
        if (cJSON_IsBool(a)) {
            if (sp[k].add < 0)
                sp[k].add_order = add_order++;
            sp[k].add = cJSON_IsTrue(a);
        }
        snprintf(key, sizeof key, "%s_token", sp[k].typ);
        const char *content = tc_content(jget(tc, key));
        if (!content)
            continue;
        cJSON_ArrayForEach(e, added) {
            const cJSON *cn = jget(e, "content"), *id = jget(e, "id");
            if (cJSON_IsString(cn) && cJSON_IsNumber(id) && !strcmp(cn->valuestring, content)) {
                if (sp[k].id < 0) {
                    sp[k].id = (int64_t)id->valuedouble;
                    sp[k].order = order++;
                }
                break;
            }
        }
    }
    for (int k = 0; k < NS; k++) {
        char key[32];
        snprintf(key, sizeof key, "%s_token_id", sp[k].typ);
        const cJSON *id = jget(cfg, key);
        if (sp[k].id < 0 && cJSON_IsNumber(id) && id->valuedouble >= 0) {
            sp[k].id = (int64_t)id->valuedouble;
            sp[k].order = order++;
        }
    }
    for (int o = 0; o < order; o++)
        for (int k = 0; k < NS; k++)
            if (sp[k].id >= 0 && sp[k].order == o && sp[k].key) {
                if (sp[k].id >= (int64_t)v.n) {
                    dc_log(1, "convert: warning: %s token id %lld is outside the vocabulary (%zu); not written\n", sp[k].typ,
                           (long long)sp[k].id, v.n);
                    continue;
                }
                CK(dc_ggufw_kv_u32(w, sp[k].key, (uint32_t)sp[k].id, err));
            }
    for (int o = 0; o < add_order; o++)
        for (int k = 0; k < NS; k++)
            if (sp[k].add >= 0 && sp[k].add_order == o && sp[k].add_key)
                CK(dc_ggufw_kv_bool(w, sp[k].add_key, sp[k].add != 0, err));
    /* chat template: tokenizer_config.json, else chat_template.jinja / chat_template.json */
    if (tc) {
        const cJSON *ct = jget(tc, "chat_template");
        char *alt = NULL;
        if (!ct) {
            char *p = dc_path_join(dir, "chat_template.jinja");
            size_t len;
            dc_err e2;
            if (p && dc_exists(p) && dc_read_file(p, &alt, &len, 1u << 26, &e2) == DC_OK)
                ct = NULL;
            free(p);
            if (!alt) {
                cJSON *cj = NULL;
                if (read_json(dir, "chat_template.json", &cj, false, &e2) == DC_OK && cj) {
                    const cJSON *x = jget(cj, "chat_template");
                    if (cJSON_IsString(x))
                        alt = dc_strdup(x->valuestring);
                }
                cJSON_Delete(cj);
            }
        }
        if (cJSON_IsArray(ct)) {
            const cJSON *t;
            cJSON_ArrayForEach(t, ct) {
                const cJSON *nm2 = jget(t, "name"), *tpl = jget(t, "template");
                if (cJSON_IsString(nm2) && !strcmp(nm2->valuestring, "default") && cJSON_IsString(tpl))
                    ct = tpl;
            }
            if (cJSON_IsArray(ct))
                ct = NULL;
            dc_log(1, "convert: warning: only the default of several chat templates is written\n");
        }
        if (cJSON_IsString(ct))
            st = dc_ggufw_kv_str(w, "tokenizer.chat_template", ct->valuestring, strlen(ct->valuestring), err);
        else if (alt)
            st = dc_ggufw_kv_str(w, "tokenizer.chat_template", alt, strlen(alt), err);
        free(alt);
    }
done:
    tokvocab_free(&v);
    cJSON_Delete(tj);
    cJSON_Delete(tc);
    return st;
}

/* ============================================================================================
 * Execution
 * ============================================================================================ */

typedef struct unit {
    size_t item;
    int64_t a, b; /* output rows [a, b) */
} unit;

static uint64_t row_bytes(dc_dtype dt, int64_t cols)
{
    uint64_t n = 0;
    dc_dtype_nbytes(dt, (uint64_t)cols, &n);
    return n;
}

typedef struct bufs {
    float *f, *g;
    uint8_t *o;
    size_t cap, gcap;
} bufs;

/* Rows [a, b) of item it's output 2-D view (ne[0] values each) as f32, read from the source:
 * any range (a unit of the export never crosses an expert or a head; dc_gguf_src_rows callers may).
 * *scratch (grown as needed) holds one head of kv_b for attn_k_b. Thread-safe. */
static dc_status item_rows(const item *it, int64_t a, int64_t b, float *out, float **scratch, size_t *scap,
                           bool release, dc_err *err)
{
    const int64_t cols = it->cols;
    dc_status st = DC_OK;
    switch (it->kind) {
    case K_DIRECT:
        st = dc_weight_rows(&it->w, a, b - a, out, DC_DEQ_BF16_ROUND, err);
        if (!st && release)
            dc_weight_release(&it->w, a, b - a);
        break;
    case K_STACK: {
        const int64_t R = it->ne[1];
        for (int64_t r = a; r < b && !st;) {
            int64_t e = r / R, n = ((e + 1) * R < b ? (e + 1) * R : b) - r;
            st = dc_weight_rows(&it->ew[e], r - e * R, n, out + (r - a) * cols, DC_DEQ_BF16_ROUND, err);
            if (!st && release)
                dc_weight_release(&it->ew[e], r - e * R, n);
            r += n;
        }
        break;
    }
    case K_KB: { /* output rows (h, x) x < c: k_b[h][x][j] = kv_b[h*(dn+dv) + j][x] */
        size_t need = (size_t)(it->dn * it->c);
        if (need > *scap) {
            free(*scratch);
            *scratch = malloc(need * sizeof **scratch);
            *scap = *scratch ? need : 0;
            if (!*scratch)
                return dc_err_set(err, DC_ERR_NOMEM, "out of memory for %zu values of %s", need, it->name);
        }
        float *g = *scratch;
        for (int64_t r = a; r < b && !st;) {
            int64_t h = r / it->c, hi = ((h + 1) * it->c < b ? (h + 1) * it->c : b);
            st = dc_weight_rows(&it->w, h * (it->dn + it->dv), it->dn, g, DC_DEQ_BF16_ROUND, err);
            for (int64_t x = r - h * it->c; !st && x < hi - h * it->c; x++)
                for (int64_t j = 0; j < it->dn; j++)
                    out[(h * it->c + x - a) * it->dn + j] = g[j * it->c + x];
            r = hi;
        }
        break;
    }
    case K_PERM: {
        if (it->n_dims == 1) { /* a bias: one row, the values permuted */
            size_t need = (size_t)cols;
            if (need > *scap) {
                free(*scratch);
                *scratch = malloc(need * sizeof **scratch);
                *scap = *scratch ? need : 0;
                if (!*scratch)
                    return dc_err_set(err, DC_ERR_NOMEM, "out of memory for %zu values of %s", need, it->name);
            }
            st = dc_weight_rows(&it->w, 0, 1, *scratch, DC_DEQ_BF16_ROUND, err);
            for (int64_t j = 0; !st && j < cols; j++)
                out[perm_row(j, it->dn)] = (*scratch)[j];
            break;
        }
        /* output row r is HF row s with perm_row(s) = r: r = h*hd + 2i + a -> s = h*hd + a*hd/2 + i */
        for (int64_t r = a; r < b && !st; r++) {
            int64_t h = r / it->dn, j = r % it->dn, s = h * it->dn + (j % 2) * (it->dn / 2) + j / 2;
            st = dc_weight_rows(&it->w, s, 1, out + (r - a) * cols, DC_DEQ_BF16_ROUND, err);
        }
        if (!st && b == it->rows)
            dc_weight_release(&it->w, 0, it->rows);
        break;
    }
    case K_CONST:
        memcpy(out, it->vals + a * cols, (size_t)((b - a) * cols) * sizeof *out);
        break;
    case K_VB: /* output rows (h, j) j < dv: kv_b[h*(dn+dv) + dn + j] */
        for (int64_t r = a; r < b && !st;) {
            int64_t h = r / it->dv, hi = ((h + 1) * it->dv < b ? (h + 1) * it->dv : b);
            st = dc_weight_rows(&it->w, h * (it->dn + it->dv) + it->dn + (r - h * it->dv), hi - r, out + (r - a) * cols,
                                DC_DEQ_BF16_ROUND, err);
            if (!st) /* k_b and v_b both read kv_b: release after the v half (written after k in every head) */
                dc_weight_release(&it->w, h * (it->dn + it->dv), it->dn + it->dv);
            r = hi;
        }
        break;
    }
    return st;
}

static dc_status run_unit(const plan *p, const unit *u, bufs *b, dc_err *err)
{
    const item *it = &p->items[u->item];
    int64_t nr = u->b - u->a, cols = it->cols;
    size_t n = (size_t)(nr * cols);
    if (n > b->cap) {
        free(b->f);
        free(b->o);
        b->f = malloc(n * sizeof *b->f);
        b->o = malloc(n * 4 + 64);
        b->cap = b->f && b->o ? n : 0;
        if (!b->cap)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory for %zu values of %s", n, it->name);
    }
    dc_status st = item_rows(it, u->a, u->b, b->f, &b->g, &b->gcap, true, err);
    if (st)
        return st;
    uint64_t rb = row_bytes(it->dt, cols);
    switch (it->dt) {
    case DC_DT_F32: memcpy(b->o, b->f, n * 4); break;
    case DC_DT_Q8_0: {
        const int64_t i = dc_first_nonfinite(b->f, n);
        if (i >= 0)
            return dc_err_set(err, DC_ERR_INPUT, "tensor %s (from %s): non-finite value at row %lld, column %lld; cannot quantize to Q8_0",
                              it->name, it->src, (long long)(u->a + i / cols), (long long)(i % cols));
        for (int64_t r = 0; r < nr; r++)
            dc_q8_0_quantize_row(b->f + r * cols, b->o + (uint64_t)r * rb, cols);
        break;
    }
    default: dc_dtype_from_f32(it->dt, b->f, b->o, (int64_t)n); break;
    }
    return dc_ggufw_write(p->w, it->wi, (uint64_t)u->a * rb, b->o, (size_t)((uint64_t)nr * rb), err);
}

typedef struct xrun {
    const plan *p;
    const unit *units;
} xrun;

static dc_status xrun_unit(void *ctx, size_t k, void *tls, dc_err *err)
{
    const xrun *r = ctx;
    return run_unit(r->p, &r->units[k], tls, err);
}

static void bufs_free(void *tls)
{
    bufs *b = tls;
    free(b->f);
    free(b->g);
    free(b->o);
}

static dc_status execute(const plan *p, const dc_gguf_export_opts *o, dc_err *err)
{
    size_t n_units = 0, cap = 0;
    unit *units = NULL;
    for (size_t i = 0; i < p->n; i++) {
        const item *it = &p->items[i];
        int64_t step, seg; /* rows per unit; units never cross a segment (an expert, a head) */
        if (it->kind == K_KB)
            step = seg = it->c;
        else if (it->kind == K_VB)
            step = seg = it->dv;
        else {
            step = it->cols > 0 ? (int64_t)((8u << 20) / (uint64_t)it->cols) + 1 : 1;
            seg = it->kind == K_STACK ? it->ne[1] : it->rows;
        }
        if (seg <= 0)
            seg = 1;
        for (int64_t s0 = 0; s0 < it->rows; s0 += seg) {
            int64_t s1 = s0 + seg < it->rows ? s0 + seg : it->rows;
            for (int64_t a = s0; a < s1; a += step) {
                if (!dc_grow((void **)&units, &cap, n_units + 1, sizeof *units)) {
                    free(units);
                    return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                }
                units[n_units++] = (unit){i, a, a + step < s1 ? a + step : s1};
            }
        }
    }
    xrun rc = {p, units};
    dc_par_job job = {n_units, xrun_unit, &rc, sizeof(bufs), bufs_free, o->progress ? "convert:" : NULL, NULL, 0};
    dc_status st = dc_par_run(&job, err);
    free(units);
    return st;
}

static void print_plan(FILE *f, const plan *p, const dc_gguf_export_stats *s, const char *out)
{
    fprintf(f, "%-36s %-8s %-8s %-6s %-20s %14s  %s\n", "tensor", "op", "from", "to", "ne (ggml order)", "bytes", "file");
    int ns = dc_ggufw_n_splits(p->w);
    for (size_t i = 0; i < p->n; i++) {
        const item *it = &p->items[i];
        const dc_ggufw_tensor *t = dc_ggufw_get(p->w, it->wi);
        char ne[80];
        int o = snprintf(ne, sizeof ne, "%lld", (long long)it->ne[0]);
        for (uint32_t j = 1; j < it->n_dims; j++)
            o += snprintf(ne + o, sizeof ne - (size_t)o, ",%lld", (long long)it->ne[j]);
        char *fn = dc_ggufw_split_path(out, t->split, ns);
        fprintf(f, "%-36s %-8s %-8s %-6s %-20s %14llu  %s\n", it->name, KIND_NAMES[it->kind], dc_dtype_name(it->src_dt),
                dc_dtype_name(it->dt), ne, (unsigned long long)t->nbytes, fn ? dc_path_base(fn) : "?");
        free(fn);
    }
    char b1[32], b2[32];
    fprintf(f, "total: %zu tensors in (%s), %zu out (%s, %s) in %d file(s), %d MTP layer(s)\n", s->n_tensors_in,
            dc_fmt_bytes(s->bytes_in, b1, sizeof b1), p->n, dc_fmt_bytes(s->bytes_out, b2, sizeof b2),
            dc_gguf_out_name(p->type), ns, p->n_mtp);
}

/* general.name: the input directory's name (base.py prepare_metadata's fallback) */
static bool model_name(const char *in_dir, char *name, size_t cap)
{
    char *d = dc_strdup(in_dir);
    if (!d)
        return false;
    size_t l = strlen(d);
    while (l > 1 && d[l - 1] == '/')
        d[--l] = 0;
    snprintf(name, cap, "%s", dc_path_base(d));
    free(d);
    return true;
}

dc_status dc_gguf_export(const char *in_dir, const char *out_path, const dc_gguf_export_opts *o, FILE *planf,
                         dc_gguf_export_stats *stats, dc_err *err)
{
    memset(stats, 0, sizeof *stats);
    double t0 = now_s();
    dc_ckpt *ck = NULL;
    cJSON *cfg = NULL;
    plan p = {0};
    bool opened = false;
    dc_status st = dc_ckpt_open(in_dir, &ck, err);
    if (st)
        return st;
    if (!dc_is_dir(in_dir) || ck->gguf) {
        st = dc_err_set(err, DC_ERR_USAGE, "%s: --to gguf needs a checkpoint directory (config.json + safetensors)", in_dir);
        goto done;
    }
    if ((st = dc_ckpt_require_config(ck, err)) || (st = read_json(ck->dir, "config.json", &cfg, true, err)))
        goto done;
    p.type = o->type == DC_GGUF_OUT_AUTO ? auto_type(ck) : o->type;
    stats->type = p.type;
    if (!(p.w = dc_ggufw_new())) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = build_plan(ck, o, &p, stats, err)))
        goto done;
    /* metadata, then the tensors in plan order */
    char name[256];
    if (!model_name(in_dir, name, sizeof name)) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = write_model_kvs(p.w, ck, cfg, &p, name, true, err)) || (st = write_tokenizer(p.w, ck, cfg, stats, err)))
        goto done;
    for (size_t i = 0; i < p.n; i++) {
        item *it = &p.items[i];
        int gt = dc_ggml_from_dtype(it->dt);
        if ((st = dc_ggufw_add(p.w, it->name, (uint32_t)gt, it->n_dims, it->ne, &it->wi, err)))
            goto done;
    }
    if ((st = dc_ggufw_plan(p.w, o->split_max_size, err)))
        goto done;
    stats->n_tensors_out = p.n;
    stats->n_splits = dc_ggufw_n_splits(p.w);
    stats->n_mtp_layers = p.n_mtp;
    for (int s = 0; s < stats->n_splits; s++)
        stats->bytes_out += dc_ggufw_split_size(p.w, s);
    if (o->dry_run) {
        print_plan(planf ? planf : stdout, &p, stats, out_path);
        goto done;
    }
    if ((st = dc_ggufw_open(p.w, out_path, o->force, err)))
        goto done;
    opened = true;
    if ((st = execute(&p, o, err)))
        goto done;
    st = dc_ggufw_finish(p.w, err);
    opened = false;
done:
    if (opened)
        dc_ggufw_abort(p.w);
    stats->seconds = now_s() - t0;
    plan_free(&p);
    cJSON_Delete(cfg);
    dc_ckpt_close(ck);
    return st;
}

/* ============================================================================================
 * The export as a tensor source (dc_gguf_src, for `deepcast quantize`)
 * ============================================================================================ */

struct dc_gguf_src {
    dc_ckpt *ck;
    cJSON *cfg;
    plan p;
    char name[256];
    dc_gguf_export_stats stats;
};

void dc_gguf_src_close(dc_gguf_src *s)
{
    if (!s)
        return;
    plan_free(&s->p);
    cJSON_Delete(s->cfg);
    dc_ckpt_close(s->ck);
    free(s);
}

dc_status dc_gguf_src_open(const char *in_dir, bool drop_mtp, dc_gguf_src **out, dc_err *err)
{
    *out = NULL;
    dc_gguf_src *s = calloc(1, sizeof *s);
    if (!s)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    dc_gguf_export_opts o;
    dc_gguf_export_opts_init(&o);
    o.type = DC_GGUF_OUT_F32;
    o.drop_mtp = drop_mtp;
    dc_status st = dc_ckpt_open(in_dir, &s->ck, err);
    if (!st && (!dc_is_dir(in_dir) || s->ck->gguf))
        st = dc_err_set(err, DC_ERR_USAGE, "%s: not a Hugging Face checkpoint directory (config.json + safetensors)", in_dir);
    if (!st)
        st = dc_ckpt_require_config(s->ck, err);
    if (!st)
        st = read_json(s->ck->dir, "config.json", &s->cfg, true, err);
    if (!st) {
        s->p.type = DC_GGUF_OUT_F32;
        s->stats.type = DC_GGUF_OUT_F32;
        st = build_plan(s->ck, &o, &s->p, &s->stats, err);
    }
    if (!st && !model_name(in_dir, s->name, sizeof s->name))
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    if (st) {
        dc_gguf_src_close(s);
        return st;
    }
    s->stats.n_tensors_out = s->p.n;
    s->stats.n_mtp_layers = s->p.n_mtp;
    *out = s;
    return DC_OK;
}

size_t dc_gguf_src_count(const dc_gguf_src *s) { return s->p.n; }

void dc_gguf_src_tensor(const dc_gguf_src *s, size_t i, dc_gguf_src_info *info)
{
    const item *it = &s->p.items[i];
    info->name = it->name;
    info->n_dims = it->n_dims;
    for (int j = 0; j < 4; j++)
        info->ne[j] = it->ne[j];
    info->src_name = it->src;
    info->src_dtype = it->src_dt;
}

const dc_ckpt *dc_gguf_src_ckpt(const dc_gguf_src *s) { return s->ck; }
int dc_gguf_src_n_mtp(const dc_gguf_src *s) { return s->p.n_mtp; }
uint64_t dc_gguf_src_bytes_in(const dc_gguf_src *s) { return s->stats.bytes_in; }

dc_status dc_gguf_src_kvs(dc_gguf_src *s, dc_ggufw *w, bool *tokenizer, dc_err *err)
{
    dc_status st = write_model_kvs(w, s->ck, s->cfg, &s->p, s->name, false, err);
    if (!st)
        st = write_tokenizer(w, s->ck, s->cfg, &s->stats, err);
    if (tokenizer)
        *tokenizer = s->stats.tokenizer;
    return st;
}

dc_status dc_gguf_src_rows(const dc_gguf_src *s, size_t i, int64_t r0, int64_t n, float *out, float **scratch,
                           size_t *scratch_cap, dc_err *err)
{
    const item *it = &s->p.items[i];
    if (r0 < 0 || n < 0 || r0 + n > it->rows)
        return dc_err_set(err, DC_ERR_INTERNAL, "tensor %s: rows [%lld, %lld) out of range (%lld rows)", it->name,
                          (long long)r0, (long long)(r0 + n), (long long)it->rows);
    return item_rows(it, r0, r0 + n, out, scratch, scratch_cap, false, err);
}

void dc_gguf_src_release(const dc_gguf_src *s, size_t i, int64_t r0, int64_t n)
{
    const item *it = &s->p.items[i];
    if (r0 < 0 || n <= 0 || r0 + n > it->rows)
        return;
    if (it->kind == K_DIRECT)
        dc_weight_release(&it->w, r0, n);
    else if (it->kind == K_STACK) {
        const int64_t R = it->ne[1];
        for (int64_t r = r0; r < r0 + n;) {
            int64_t e = r / R, m = ((e + 1) * R < r0 + n ? (e + 1) * R : r0 + n) - r;
            dc_weight_release(&it->ew[e], r - e * R, m);
            r += m;
        }
    }
}
