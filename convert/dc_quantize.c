#define _GNU_SOURCE
#include "dc_quantize.h"
#include "dc_par.h"
#include "dc_ckpt.h"
#include "dc_float.h"
#include "dc_ggml.h"
#include "dc_ggml_blocks.h"
#include "dc_gguf.h"
#include "dc_gguf_export.h"
#include "dc_io.h"
#include "dc_quants.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define GGML_QNT_VERSION 2
#define ALIGN 32

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ============================================================================================
 * File types (tools/quantize/quantize.cpp QUANT_OPTIONS, llama_ftype_get_default_type)
 * ============================================================================================ */

typedef struct ftype_row {
    const char *name;
    int ftype;
    int def; /* ggml type of llama_ftype_get_default_type */
} ftype_row;

static const ftype_row FTYPES[] = {
    {"Q4_0", DC_FTYPE_Q4_0, DC_GGML_Q4_0},       {"Q4_1", DC_FTYPE_Q4_1, DC_GGML_Q4_1},
    {"MXFP4_MOE", DC_FTYPE_MXFP4_MOE, DC_GGML_MXFP4}, {"Q5_0", DC_FTYPE_Q5_0, DC_GGML_Q5_0},
    {"Q5_1", DC_FTYPE_Q5_1, DC_GGML_Q5_1},       {"TQ1_0", DC_FTYPE_TQ1_0, DC_GGML_TQ1_0},
    {"TQ2_0", DC_FTYPE_TQ2_0, DC_GGML_TQ2_0},    {"Q2_K", DC_FTYPE_Q2_K, DC_GGML_Q2_K},
    {"Q2_K_S", DC_FTYPE_Q2_K_S, DC_GGML_Q2_K},   {"Q3_K", DC_FTYPE_Q3_K_M, DC_GGML_Q3_K},
    {"Q3_K_S", DC_FTYPE_Q3_K_S, DC_GGML_Q3_K},   {"Q3_K_M", DC_FTYPE_Q3_K_M, DC_GGML_Q3_K},
    {"Q3_K_L", DC_FTYPE_Q3_K_L, DC_GGML_Q3_K},   {"IQ4_NL", DC_FTYPE_IQ4_NL, DC_GGML_IQ4_NL},
    {"IQ4_XS", DC_FTYPE_IQ4_XS, DC_GGML_IQ4_XS}, {"Q4_K", DC_FTYPE_Q4_K_M, DC_GGML_Q4_K},
    {"Q4_K_S", DC_FTYPE_Q4_K_S, DC_GGML_Q4_K},   {"Q4_K_M", DC_FTYPE_Q4_K_M, DC_GGML_Q4_K},
    {"Q5_K", DC_FTYPE_Q5_K_M, DC_GGML_Q5_K},     {"Q5_K_S", DC_FTYPE_Q5_K_S, DC_GGML_Q5_K},
    {"Q5_K_M", DC_FTYPE_Q5_K_M, DC_GGML_Q5_K},   {"Q6_K", DC_FTYPE_Q6_K, DC_GGML_Q6_K},
    {"Q8_0", DC_FTYPE_Q8_0, DC_GGML_Q8_0},       {"F16", DC_FTYPE_F16, DC_GGML_F16},
    {"BF16", DC_FTYPE_BF16, DC_GGML_BF16},       {"F32", DC_FTYPE_ALL_F32, DC_GGML_F32},
};
#define N_FTYPES (sizeof FTYPES / sizeof FTYPES[0])

bool dc_ftype_parse(const char *s, int *ftype, const char **name)
{
    for (size_t i = 0; i < N_FTYPES; i++)
        if (!strcasecmp(s, FTYPES[i].name)) {
            *ftype = FTYPES[i].ftype;
            if (name)
                *name = FTYPES[i].name;
            return true;
        }
    /* a number: the first option with that ftype (quantize.cpp try_parse_ftype) */
    char *end;
    long v = strtol(s, &end, 10);
    if (*s && !*end)
        for (size_t i = 0; i < N_FTYPES; i++)
            if (FTYPES[i].ftype == v) {
                *ftype = FTYPES[i].ftype;
                if (name)
                    *name = FTYPES[i].name;
                return true;
            }
    return false;
}

static const ftype_row *ftype_row_of(int ftype)
{
    for (size_t i = 0; i < N_FTYPES; i++)
        if (FTYPES[i].ftype == ftype && strcmp(FTYPES[i].name, "Q3_K") && strcmp(FTYPES[i].name, "Q4_K") &&
            strcmp(FTYPES[i].name, "Q5_K"))
            return &FTYPES[i];
    return NULL;
}

const char *dc_ftype_name(int ftype)
{
    const ftype_row *r = ftype_row_of(ftype);
    return r ? r->name : "?";
}

const char *dc_ftype_names(void)
{
    return "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q2_K_S, Q3_K_S, Q3_K_M (Q3_K), Q3_K_L, Q4_K_S, Q4_K_M (Q4_K), "
           "Q5_K_S, Q5_K_M (Q5_K), Q6_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0, MXFP4_MOE, F16, BF16, F32";
}

int dc_ggml_type_parse(const char *s)
{
    for (int i = 0; i < DC_GGML_TYPE_COUNT; i++) {
        const char *n = dc_ggml_type_name((uint32_t)i);
        if (strcmp(n, "?") && !strcasecmp(n, s))
            return i;
    }
    return -1;
}

static const dc_tensor_type_opt RECIPE_DEEPSEEK[] = {
    {"^blk\\.[0-9]+\\.attn_", DC_GGML_Q8_0},
    {"_shexp\\.weight$", DC_GGML_Q8_0},
    {"^blk\\.[0-9]+\\.ffn_(gate|up|down)\\.weight$", DC_GGML_Q8_0},
    {"^blk\\.[0-9]+\\.nextn\\.", DC_GGML_Q8_0},
};

const dc_tensor_type_opt *dc_quantize_recipe(const char *name, size_t *n)
{
    if (name && !strcmp(name, "deepseek")) {
        *n = sizeof RECIPE_DEEPSEEK / sizeof RECIPE_DEEPSEEK[0];
        return RECIPE_DEEPSEEK;
    }
    *n = 0;
    return NULL;
}

/* ggml_is_quantized: the block types */
static bool is_quantized(int ggml_type)
{
    dc_dtype d = dc_ggml_dtype((uint32_t)ggml_type);
    return d != DC_DT_INVALID && dc_dtype_is_block(d);
}

static int blck_size(int ggml_type) { return dc_dtype_block(dc_ggml_dtype((uint32_t)ggml_type)); }

/* types deepcast can produce */
static bool can_write(int ggml_type)
{
    return ggml_type == DC_GGML_F32 || ggml_type == DC_GGML_F16 || ggml_type == DC_GGML_BF16 ||
           (dc_qtype_by_id(ggml_type) && ggml_type != DC_GGML_Q8_K);
}

/* ============================================================================================
 * Per-tensor type choice: src/llama-quant.cpp, transliterated
 * ============================================================================================ */

typedef enum cat {
    CAT_TOKEN_EMBD, CAT_ATTN_Q, CAT_ATTN_V, CAT_ATTN_K, CAT_ATTN_QKV, CAT_ATTN_KV_B, CAT_ATTN_OUTPUT,
    CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN, CAT_OUTPUT, CAT_OTHER
} cat;

static bool is_token_embd(const char *n) { return !strcmp(n, "token_embd.weight") || !strcmp(n, "per_layer_token_embd.weight"); }

static cat get_category(const char *n)
{
    if (!strcmp(n, "output.weight")) return CAT_OUTPUT;
    if (is_token_embd(n)) return CAT_TOKEN_EMBD;
    if (strstr(n, "attn_qkv.weight")) return CAT_ATTN_QKV;
    if (strstr(n, "attn_kv_b.weight")) return CAT_ATTN_KV_B;
    if (strstr(n, "attn_v.weight")) return CAT_ATTN_V;
    if (strstr(n, "attn_k.weight")) return CAT_ATTN_K;
    if (strstr(n, "attn_q.weight")) return CAT_ATTN_Q;
    if (strstr(n, "attn_output.weight")) return CAT_ATTN_OUTPUT;
    if (strstr(n, "ffn_up")) return CAT_FFN_UP;
    if (strstr(n, "ffn_gate")) return CAT_FFN_GATE;
    if (strstr(n, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

static bool cat_is_attn_v(cat c) { return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B; }

/* the model's hparams the rules read (llama_model::load_hparams) */
typedef struct qmodel {
    char arch[64];
    int n_expert;
    int n_head, n_head_kv; /* of layer 0 */
    int n_layer_all;       /* block_count */
    bool is_70b;           /* LLM_TYPE_70B: llama, 80 layers, n_head != n_head_kv */
} qmodel;

static int n_gqa(const qmodel *m) { return m->n_head_kv ? m->n_head / m->n_head_kv : 0; }

typedef struct qstate {
    const qmodel *m;
    const dc_quantize_opts *o;
    int default_type;
    int n_attention_wv, n_ffn_down, n_ffn_gate, n_ffn_up;
    int i_attention_wv, i_ffn_down, i_ffn_gate, i_ffn_up;
    int n_fallback;
    bool has_imatrix, has_tied_embeddings;
    pcre2_code **re; /* compiled --tensor-type patterns */
} qstate;

/* ggml_n_dims: 1 + the index of the last dimension > 1 */
static int ggml_n_dims(const int64_t ne[4])
{
    for (int i = 3; i >= 1; i--)
        if (ne[i] > 1)
            return i + 1;
    return 1;
}

static bool has(const char *n, const char *s) { return strstr(n, s) != NULL; }

/* tensor_allows_quantization */
static bool allows_quantization(const dc_quantize_opts *o, const char *name, const int64_t ne[4])
{
    if (ggml_n_dims(ne) < 2)
        return false;
    size_t l = strlen(name);
    bool q = l >= 6 && !strcmp(name + l - 6, "weight");
    q &= !has(name, "_norm.weight");
    q &= !o->leave_output_tensor || strcmp(name, "output.weight") != 0;
    q &= !has(name, "ffn_gate_inp.weight");
    q &= !has(name, "ffn_gate_tid2eid.weight");
    q &= !has(name, "altup") && !has(name, "laurel");
    q &= !has(name, "per_layer_model_proj");
    q &= strcmp(name, "position_embd.weight") != 0 && strcmp(name, "token_types.weight") != 0;
    q &= !has(name, "ssm_conv1d") && !has(name, "shortconv.conv.weight");
    q &= !has(name, "indexer.k_proj.weight") && !has(name, "indexer.q_proj.weight");
    static const char *RWKV[] = {"time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
                                 "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
                                 "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight",
                                 "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
                                 "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight"};
    for (size_t i = 0; i < sizeof RWKV / sizeof RWKV[0]; i++)
        q &= !has(name, RWKV[i]);
    q &= !has(name, "attn_rel_b.weight");
    static const char *MM[] = {".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
                               ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd"};
    for (size_t i = 0; i < sizeof MM / sizeof MM[0]; i++)
        q &= !has(name, MM[i]);
    return q;
}

/* sscanf(name, "blk.%d.", &layer) == 1 */
static bool blk_layer(const char *name, int *layer)
{
    if (strncmp(name, "blk.", 4))
        return false;
    const char *p = name + 4;
    while (isspace((unsigned char)*p))
        p++;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p)
        return false;
    *layer = (int)v; /* %d of an out-of-range number is undefined; names never have one */
    return true;
}

static bool use_more_bits(int i_layer, int n_layers)
{
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

/* layer_info: the layer of an FFN tensor (from its name when the model has experts) */
static dc_status layer_info(const qstate *qs, int i_counter, int n_counter, const char *name, int *i_layer, int *n_layer,
                            dc_err *err)
{
    *i_layer = i_counter;
    *n_layer = n_counter;
    int n_expert = qs->m->n_expert > 1 ? qs->m->n_expert : 1;
    if (n_expert > 1) {
        if (!blk_layer(name, i_layer))
            return dc_err_set(err, DC_ERR_MODEL, "failed to determine the layer of tensor %s (llama-quantize needs blk.N. "
                              "in the names of a model with experts)", name);
        if (*i_layer < 0 || *i_layer >= n_counter)
            return dc_err_set(err, DC_ERR_MODEL, "bad layer %d for tensor %s: must be in [0, %d) (block_count)", *i_layer,
                              name, n_counter);
    }
    return DC_OK;
}

enum { T_Q4_0 = DC_GGML_Q4_0, T_Q4_1 = DC_GGML_Q4_1, T_Q5_0 = DC_GGML_Q5_0, T_Q5_1 = DC_GGML_Q5_1,
       T_Q8_0 = DC_GGML_Q8_0, T_Q2_K = DC_GGML_Q2_K, T_Q3_K = DC_GGML_Q3_K, T_Q4_K = DC_GGML_Q4_K,
       T_Q5_K = DC_GGML_Q5_K, T_Q6_K = DC_GGML_Q6_K, T_IQ4_NL = DC_GGML_IQ4_NL, T_F16 = DC_GGML_F16,
       T_MXFP4 = DC_GGML_MXFP4 };

/* tensor_type_fallback */
static dc_status type_fallback(qstate *qs, const char *name, int64_t ncols, int target, int *out, char *note, size_t ncap,
                               dc_err *err)
{
    *out = target;
    int qk = blck_size(target);
    if (ncols % qk == 0)
        return DC_OK;
    qs->n_fallback++;
    int r;
    switch (target) {
    case DC_GGML_IQ1_S: case DC_GGML_IQ1_M: case DC_GGML_IQ2_XXS: case DC_GGML_IQ2_XS: case DC_GGML_IQ2_S:
    case DC_GGML_IQ3_XXS: case DC_GGML_IQ3_S: case DC_GGML_IQ4_XS: r = T_IQ4_NL; break;
    case DC_GGML_Q2_0: case DC_GGML_Q2_K: case DC_GGML_Q3_K: case DC_GGML_TQ1_0: case DC_GGML_TQ2_0: r = T_Q4_0; break;
    case DC_GGML_Q4_K: r = T_Q5_0; break;
    case DC_GGML_Q5_K: r = T_Q5_1; break;
    case DC_GGML_Q6_K: r = T_Q8_0; break;
    default:
        if (qk <= 32) {
            r = target;
            break;
        }
        return dc_err_set(err, DC_ERR_UNSUPPORTED, "tensor %s: no tensor type fallback is defined for type %s", name,
                          dc_ggml_type_name((uint32_t)target));
    }
    bool f16 = ncols % blck_size(r) != 0;
    if (f16)
        r = T_F16;
    snprintf(note, ncap, "ncols %lld not divisible by %d (%s) -> %s%s", (long long)ncols, qk,
             dc_ggml_type_name((uint32_t)target), dc_ggml_type_name((uint32_t)r), f16 ? " (unusual shape)" : "");
    *out = r;
    return DC_OK;
}

/* llama_tensor_get_type_impl */
static dc_status get_type_impl(qstate *qs, int new_type, const char *name, const int64_t ne[4], int ftype, cat category,
                               int *out, dc_err *err)
{
    const qmodel *m = qs->m;
    const bool falcon = !strcmp(m->arch, "falcon");
    dc_status st;
    if (category == CAT_OUTPUT || (qs->has_tied_embeddings && category == CAT_TOKEN_EMBD)) {
        if (qs->o->output_tensor_type >= 0) {
            new_type = qs->o->output_tensor_type;
        } else {
            const int64_t nx = ne[0];
            const int qk_k = blck_size(new_type);
            if (ftype == DC_FTYPE_MXFP4_MOE)
                new_type = T_Q8_0;
            else if (falcon || nx % qk_k != 0)
                new_type = T_Q8_0;
            /* IQ1/IQ2 file types (not written by deepcast) would take Q5_K here */
            else if (new_type != T_Q8_0)
                new_type = T_Q6_K;
        }
    } else if (ftype == DC_FTYPE_MXFP4_MOE) {
        const bool bailing = !strcmp(m->arch, "bailingmoe3");
        const bool bailing_expert = bailing && (category == CAT_FFN_UP || category == CAT_FFN_GATE || category == CAT_FFN_DOWN);
        new_type = ne[2] > 1 && (!bailing || bailing_expert) ? T_MXFP4 : T_Q8_0;
    } else if (category == CAT_TOKEN_EMBD) {
        if (qs->o->token_embedding_type >= 0)
            new_type = qs->o->token_embedding_type;
        else if (ftype == DC_FTYPE_TQ1_0 || ftype == DC_FTYPE_TQ2_0)
            new_type = T_Q4_K;
    } else if (cat_is_attn_v(category)) {
        if (ftype == DC_FTYPE_Q2_K)
            new_type = n_gqa(m) >= 4 ? T_Q4_K : T_Q3_K;
        else if (ftype == DC_FTYPE_Q2_K_S && n_gqa(m) >= 4)
            new_type = T_Q4_K;
        else if (ftype == DC_FTYPE_Q3_K_M)
            new_type = qs->i_attention_wv < 2 ? T_Q5_K : T_Q4_K;
        else if (ftype == DC_FTYPE_Q3_K_L)
            new_type = T_Q5_K;
        else if ((ftype == DC_FTYPE_IQ4_NL || ftype == DC_FTYPE_IQ4_XS) && n_gqa(m) >= 4)
            new_type = T_Q5_K;
        else if ((ftype == DC_FTYPE_Q4_K_M || ftype == DC_FTYPE_Q5_K_M) && use_more_bits(qs->i_attention_wv, qs->n_attention_wv))
            new_type = T_Q6_K;
        else if (ftype == DC_FTYPE_Q4_K_S && qs->i_attention_wv < 4)
            new_type = T_Q5_K;
        if (m->is_70b && (new_type == T_Q3_K || new_type == T_Q4_K))
            new_type = T_Q5_K;
        if (m->n_expert == 8)
            new_type = T_Q8_0;
        ++qs->i_attention_wv;
    } else if (category == CAT_ATTN_K) {
        if (m->n_expert == 8)
            new_type = T_Q8_0;
    } else if (category == CAT_ATTN_Q) {
        /* IQ3 file types only */
    } else if (category == CAT_FFN_DOWN) {
        int i_layer, n_layer;
        if ((st = layer_info(qs, qs->i_ffn_down, qs->n_ffn_down, name, &i_layer, &n_layer, err)))
            return st;
        if (ftype == DC_FTYPE_Q2_K)
            new_type = T_Q3_K;
        else if (ftype == DC_FTYPE_Q2_K_S) {
            if (i_layer < n_layer / 8)
                new_type = T_Q4_K;
        } else if (ftype == DC_FTYPE_Q3_K_M) {
            new_type = i_layer < n_layer / 16 ? T_Q5_K : !falcon || use_more_bits(i_layer, n_layer) ? T_Q4_K : T_Q3_K;
        } else if (ftype == DC_FTYPE_Q3_K_L) {
            new_type = falcon ? T_Q4_K : T_Q5_K;
        } else if (ftype == DC_FTYPE_Q4_K_M) {
            if (falcon)
                new_type = i_layer < n_layer / 16 ? T_Q6_K : use_more_bits(i_layer, n_layer) ? T_Q5_K : T_Q4_K;
            else if (use_more_bits(i_layer, n_layer))
                new_type = T_Q6_K;
        } else if (i_layer < n_layer / 8 && (ftype == DC_FTYPE_IQ4_NL || ftype == DC_FTYPE_IQ4_XS) && !qs->has_imatrix) {
            new_type = T_Q5_K;
        } else if (ftype == DC_FTYPE_Q5_K_M && use_more_bits(i_layer, n_layer)) {
            new_type = T_Q6_K;
        } else if (ftype == DC_FTYPE_Q4_K_S && !falcon && i_layer < n_layer / 8) {
            new_type = T_Q5_K;
        } else if ((ftype == DC_FTYPE_Q4_0 || ftype == DC_FTYPE_Q5_0) && qs->has_imatrix && i_layer < n_layer / 8) {
            new_type = ftype == DC_FTYPE_Q4_0 ? T_Q4_1 : T_Q5_1;
        }
        ++qs->i_ffn_down;
    } else if (category == CAT_ATTN_OUTPUT) {
        if (!falcon) {
            if (m->n_expert == 8) {
                if (ftype == DC_FTYPE_Q2_K || ftype == DC_FTYPE_Q3_K_S || ftype == DC_FTYPE_Q3_K_M ||
                    ftype == DC_FTYPE_IQ4_NL || ftype == DC_FTYPE_Q4_K_S || ftype == DC_FTYPE_Q4_K_M ||
                    ftype == DC_FTYPE_IQ4_XS)
                    new_type = T_Q5_K;
            } else {
                if (ftype == DC_FTYPE_Q2_K) new_type = T_Q3_K;
                else if (ftype == DC_FTYPE_Q3_K_M) new_type = T_Q4_K;
                else if (ftype == DC_FTYPE_Q3_K_L) new_type = T_Q5_K;
            }
        } else {
            if (ftype == DC_FTYPE_Q3_K_L)
                new_type = T_Q4_K;
        }
    } else if (category == CAT_ATTN_QKV) {
        if (ftype == DC_FTYPE_Q3_K_M || ftype == DC_FTYPE_Q3_K_L)
            new_type = T_Q4_K;
        else if (ftype == DC_FTYPE_Q4_K_M)
            new_type = T_Q5_K;
        else if (ftype == DC_FTYPE_Q5_K_M)
            new_type = T_Q6_K;
    } else if (category == CAT_FFN_GATE || category == CAT_FFN_UP) {
        int i_layer, n_layer;
        int *ic = category == CAT_FFN_GATE ? &qs->i_ffn_gate : &qs->i_ffn_up;
        if ((st = layer_info(qs, *ic, category == CAT_FFN_GATE ? qs->n_ffn_gate : qs->n_ffn_up, name, &i_layer, &n_layer,
                             err)))
            return st;
        /* IQ3_XS only */
        ++*ic;
    }
    *out = new_type;
    return DC_OK;
}

static bool re_search(pcre2_code *re, const char *s)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md)
        return false;
    int rc = pcre2_match(re, (PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

/* llama_tensor_get_type (called only for tensors that allow quantization) */
static dc_status get_type(qstate *qs, const char *name, const int64_t ne[4], cat category, int *out, char *note,
                          size_t ncap, dc_err *err)
{
    const dc_quantize_opts *o = qs->o;
    note[0] = 0;
    if (o->token_embedding_type >= 0 && category == CAT_TOKEN_EMBD) {
        bool named = false;
        if (!strcmp(name, "per_layer_token_embd.weight"))
            for (size_t i = 0; i < o->n_tt && !named; i++)
                named = re_search(qs->re[i], name);
        if (!named) {
            *out = o->token_embedding_type;
            return DC_OK;
        }
    }
    if (o->output_tensor_type >= 0 && category == CAT_OUTPUT) {
        *out = o->output_tensor_type;
        return DC_OK;
    }
    int new_type = qs->default_type;
    if (is_quantized(qs->default_type)) {
        bool manual = false;
        for (size_t i = 0; i < o->n_tt; i++)
            if (re_search(qs->re[i], name)) {
                new_type = o->tt[i].type;
                manual = true;
                snprintf(note, ncap, "--tensor-type %s", o->tt[i].pattern);
                break;
            }
        dc_status st;
        if (!manual && !o->pure && (st = get_type_impl(qs, new_type, name, ne, o->ftype, category, &new_type, err)))
            return st;
        char fb[160] = "";
        if ((st = type_fallback(qs, name, ne[0], new_type, &new_type, fb, sizeof fb, err)))
            return st;
        if (fb[0])
            snprintf(note, ncap, "%s", fb);
    }
    *out = new_type;
    return DC_OK;
}

/* tensor_requires_imatrix */
static bool requires_imatrix(const char *name, int dst, int ftype)
{
    if (is_token_embd(name) || !strcmp(name, "output.weight"))
        return false;
    switch (dst) {
    case DC_GGML_IQ3_XXS: case DC_GGML_IQ2_XXS: case DC_GGML_IQ2_XS: case DC_GGML_IQ2_S: case DC_GGML_IQ1_M:
    case DC_GGML_IQ1_S: return true;
    case DC_GGML_Q2_K: return ftype == DC_FTYPE_Q2_K_S;
    default: return false;
    }
}

/* ============================================================================================
 * Importance matrices
 * ============================================================================================ */

void dc_imatrix_free(dc_imatrix *im)
{
    for (size_t i = 0; i < im->n; i++) {
        free(im->e[i].name);
        free(im->e[i].values);
    }
    free(im->e);
    free(im->dataset);
    memset(im, 0, sizeof *im);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const dc_imatrix_entry *)a)->name, ((const dc_imatrix_entry *)b)->name);
}

const dc_imatrix_entry *dc_imatrix_find(const dc_imatrix *im, const char *name)
{
    dc_imatrix_entry key = {.name = (char *)name};
    return im->n ? bsearch(&key, im->e, im->n, sizeof *im->e, cmp_entry) : NULL;
}

static dc_status add_entry(dc_imatrix *im, size_t *cap, const char *name, size_t nlen, size_t n, dc_err *err)
{
    if (!dc_grow((void **)&im->e, cap, im->n + 1, sizeof *im->e))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    dc_imatrix_entry *e = &im->e[im->n];
    e->name = strndup(name, nlen);
    e->values = calloc(n ? n : 1, sizeof *e->values);
    e->n = n;
    if (!e->name || !e->values) {
        free(e->name);
        free(e->values);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    im->n++;
    return DC_OK;
}

/* common_imatrix_load_legacy + quantize.cpp load_imatrix's normalization */
static dc_status load_legacy(const char *path, const uint8_t *b, uint64_t size, dc_imatrix *im, dc_err *err)
{
    uint64_t pos = 0;
    size_t cap = 0;
#define RD32(v, what)                                                                                            \
    do {                                                                                                         \
        if (size - pos < 4)                                                                                      \
            return dc_err_set(err, DC_ERR_FORMAT, "%s: legacy imatrix truncated reading %s at offset %llu", path, \
                              what, (unsigned long long)pos);                                                    \
        memcpy(&(v), b + pos, 4);                                                                                \
        pos += 4;                                                                                                \
    } while (0)
    int32_t n_entries;
    RD32(n_entries, "the entry count");
    if (n_entries < 1)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: not a GGUF and, as a legacy imatrix, has no entries (%d)", path, n_entries);
    for (int32_t i = 0; i < n_entries; i++) {
        int32_t len, ncall, nval;
        RD32(len, "a name length");
        if (len < 0 || (uint64_t)len > size - pos)
            return dc_err_set(err, DC_ERR_FORMAT, "%s: legacy imatrix entry %d: name length %d runs past the end (%llu bytes)",
                              path, i, len, (unsigned long long)size);
        const char *name = (const char *)b + pos;
        pos += (uint64_t)len;
        RD32(ncall, "a call count");
        RD32(nval, "a value count");
        size_t nl = strnlen(name, (size_t)len); /* the name is read as a C string */
        if (nval < 1 || (uint64_t)nval > (size - pos) / 4)
            return dc_err_set(err, DC_ERR_FORMAT, "%s: legacy imatrix entry %d (%.*s): %d values do not fit in the file", path,
                              i, (int)nl, name, nval);
        const dc_imatrix_entry *dup = NULL;
        for (size_t k = 0; k < im->n && !dup; k++)
            if (strlen(im->e[k].name) == nl && !memcmp(im->e[k].name, name, nl))
                dup = &im->e[k];
        dc_status st;
        if (dup) { /* std::map: the later entry replaces the earlier one */
            size_t k = (size_t)(dup - im->e);
            free(im->e[k].values);
            im->e[k].values = calloc((size_t)nval, sizeof(float));
            im->e[k].n = (size_t)nval;
            if (!im->e[k].values)
                return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        } else if ((st = add_entry(im, &cap, name, nl, (size_t)nval, err)))
            return st;
        dc_imatrix_entry *e = dup ? &im->e[dup - im->e] : &im->e[im->n - 1];
        const int64_t nc = ncall;
        for (int32_t j = 0; j < nval; j++) {
            float v;
            memcpy(&v, b + pos + 4 * (uint64_t)j, 4);
            e->values[j] = nc > 0 ? v / (float)nc : v;
        }
        pos += 4 * (uint64_t)nval;
    }
    if (pos < size) {
        int32_t n_calls = 0, len = 0;
        if (size - pos >= 4) {
            memcpy(&n_calls, b + pos, 4);
            pos += 4;
            im->chunk_count = n_calls;
            if (size - pos >= 4) {
                memcpy(&len, b + pos, 4);
                pos += 4;
                if (len > 0 && (uint64_t)len <= size - pos) {
                    im->dataset = strndup((const char *)b + pos, (size_t)len);
                    if (!im->dataset)
                        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                }
            }
        } else
            im->chunk_count = 0;
    }
    im->legacy = true;
#undef RD32
    return DC_OK;
}

static dc_status load_gguf(const char *path, dc_imatrix *im, dc_err *err)
{
    dc_gguf_file f;
    dc_status st = dc_gguf_open(path, &f, err);
    if (st)
        return st;
    size_t cap = 0;
    if (f.n_tensors < 1) {
        st = dc_err_set(err, DC_ERR_FORMAT, "%s: imatrix GGUF has no tensors", path);
        goto done;
    }
    const dc_gguf_kv *ds = dc_gguf_find(&f, "imatrix.datasets");
    const dc_gguf_kv *cc = dc_gguf_find(&f, "imatrix.chunk_count");
    const dc_gguf_kv *cs = dc_gguf_find(&f, "imatrix.chunk_size");
    if (!ds || !cc || !cs) {
        st = dc_err_set(err, DC_ERR_FORMAT, "%s: missing imatrix metadata (imatrix.datasets, imatrix.chunk_count, "
                        "imatrix.chunk_size)", path);
        goto done;
    }
    uint32_t u;
    if (!dc_gguf_get_u32(&f, "imatrix.chunk_count", &u) || !dc_gguf_get_u32(&f, "imatrix.chunk_size", &u)) {
        st = dc_err_set(err, DC_ERR_FORMAT, "%s: imatrix.chunk_count / imatrix.chunk_size must be u32", path);
        goto done;
    }
    dc_gguf_get_u32(&f, "imatrix.chunk_count", &u);
    im->chunk_count = (int32_t)u;
    if (ds->type == DC_GGUF_ARRAY && ds->arr_type == DC_GGUF_STRING && ds->n > 0) {
        const char *s;
        uint64_t l;
        if (dc_gguf_arr_str(ds, 0, &s, &l) && !(im->dataset = strndup(s, (size_t)l))) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    /* pair NAME.in_sum2 with NAME.counts (std::map: by name) */
    for (size_t i = 0; i < f.n_tensors && !st; i++) {
        const dc_gguf_tinfo *t = &f.tensors[i];
        size_t l = strlen(t->name);
        if (l <= 8 || strcmp(t->name + l - 8, ".in_sum2"))
            continue;
        char cname[DC_GGUF_MAX_NAME + 8];
        snprintf(cname, sizeof cname, "%.*s.counts", (int)(l - 8), t->name);
        const dc_gguf_tinfo *c = dc_gguf_find_tensor(&f, cname);
        if (!c) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: mismatched sums and counts for %.*s", path, (int)(l - 8), t->name);
            break;
        }
        if (t->type != 0 || c->type != 0) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: sums and counts for %.*s must be F32", path, (int)(l - 8), t->name);
            break;
        }
        uint64_t nval = t->nbytes / 4, ncounts = c->nbytes / 4;
        if ((st = add_entry(im, &cap, t->name, l - 8, (size_t)nval, err)))
            break;
        dc_imatrix_entry *e = &im->e[im->n - 1];
        const int64_t ne0 = ncounts ? (int64_t)(nval / ncounts) : 0;
        for (uint64_t j = 0; j < ncounts; j++) {
            float cf;
            memcpy(&cf, c->data + 4 * j, 4);
            const int64_t count = (int64_t)lroundf(cf);
            const float count_f = (float)count;
            for (int64_t k = 0; k < ne0; k++) {
                float v;
                memcpy(&v, t->data + 4 * ((uint64_t)j * (uint64_t)ne0 + (uint64_t)k), 4);
                e->values[(uint64_t)j * (uint64_t)ne0 + (uint64_t)k] = count_f > 0.0f ? v / count_f : 1.0f;
            }
        }
    }
    for (size_t i = 0; i < f.n_tensors && !st; i++) { /* a counts tensor without sums */
        const dc_gguf_tinfo *t = &f.tensors[i];
        size_t l = strlen(t->name);
        if (l <= 7 || strcmp(t->name + l - 7, ".counts"))
            continue;
        char sname[DC_GGUF_MAX_NAME + 8];
        snprintf(sname, sizeof sname, "%.*s.in_sum2", (int)(l - 7), t->name);
        if (!dc_gguf_find_tensor(&f, sname))
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: mismatched sums and counts for %.*s", path, (int)(l - 7), t->name);
    }
done:
    dc_gguf_close(&f);
    return st;
}

dc_status dc_imatrix_load(const char *path, dc_imatrix *im, dc_err *err)
{
    memset(im, 0, sizeof *im);
    dc_map m;
    dc_status st = dc_map_open(path, &m, err);
    if (st)
        return st;
    bool gguf = m.size >= 4 && !memcmp(m.data, "GGUF", 4);
    if (!gguf)
        st = load_legacy(path, m.data, m.size, im, err);
    dc_map_close(&m);
    if (gguf)
        st = load_gguf(path, im, err);
    if (!st && im->n == 0)
        st = dc_err_set(err, DC_ERR_FORMAT, "%s: no imatrix entries", path);
    if (!st) {
        qsort(im->e, im->n, sizeof *im->e, cmp_entry);
        for (size_t i = 0; i < im->n && !st; i++)
            for (size_t j = 0; j < im->e[i].n; j++)
                if (!isfinite(im->e[i].values[j])) {
                    st = dc_err_set(err, DC_ERR_INPUT, "%s: imatrix entry %s contains a non-finite value at %zu", path,
                                    im->e[i].name, j);
                    break;
                }
    }
    if (st)
        dc_imatrix_free(im);
    return st;
}

/* ============================================================================================
 * Plan
 * ============================================================================================ */

typedef struct qtensor {
    const char *name;
    int64_t ne[4];
    int src_type;           /* ggml type of the input (F32 for a Hugging Face input) */
    int dst_type;
    bool allows;            /* tensor_allows_quantization */
    bool quantize;          /* dst != src: decode, quantize; else copy */
    bool req_imatrix;
    const dc_gguf_tinfo *gt; /* GGUF input: the stored tensor */
    size_t si;              /* Hugging Face input: index in the dc_gguf_src */
    const float *imat;      /* ne[0] * ne[2] values, or NULL */
    char note[192];
    size_t wi;
    uint64_t src_bytes, dst_bytes;
} qtensor;

typedef struct qplan {
    qtensor *t;
    size_t n;
    dc_gguf_file *files; /* GGUF input (all splits) */
    int n_files;
    dc_gguf_src *src; /* Hugging Face input */
    dc_ggufw *w;
    dc_imatrix im;
    qmodel m;
    qstate qs;
} qplan;

static uint64_t row_bytes(int type, int64_t ne0)
{
    uint64_t n = 0;
    dc_dtype_nbytes(dc_ggml_dtype((uint32_t)type), (uint64_t)ne0, &n);
    return n;
}

static int64_t n_rows(const int64_t ne[4]) { return ne[1] * ne[2] * ne[3]; }

/* llama_model_loader's weights_map order: the layer of "blk.N." (-1 without), then the name */
static int cmp_qtensor(const void *a, const void *b)
{
    const qtensor *x = a, *y = b;
    int lx = -1, ly = -1;
    blk_layer(x->name, &lx);
    blk_layer(y->name, &ly);
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return strcmp(x->name, y->name);
}

static bool u32_or_arr0(const dc_gguf_file *f, const char *key, int *v)
{
    const dc_gguf_kv *kv = dc_gguf_find(f, key);
    if (!kv)
        return false;
    dc_gguf_type t = kv->arr_type;
    if (kv->type == DC_GGUF_ARRAY && kv->n == 0)
        return false;
    const uint8_t *d = kv->data;
    switch (t) {
    case DC_GGUF_U32: { uint32_t u; memcpy(&u, d, 4); *v = (int)u; return true; }
    case DC_GGUF_I32: { int32_t u; memcpy(&u, d, 4); *v = u; return true; }
    case DC_GGUF_U16: { uint16_t u; memcpy(&u, d, 2); *v = u; return true; }
    case DC_GGUF_U8: *v = d[0]; return true;
    case DC_GGUF_U64: { uint64_t u; memcpy(&u, d, 8); *v = (int)u; return true; }
    case DC_GGUF_I64: { int64_t u; memcpy(&u, d, 8); *v = (int)u; return true; }
    default: return false;
    }
}

static dc_status model_from_gguf(const dc_gguf_file *f, qmodel *m, dc_err *err)
{
    const char *a;
    uint64_t al;
    if (!dc_gguf_get_str(f, "general.architecture", &a, &al) || al >= sizeof m->arch)
        return dc_err_set(err, DC_ERR_MODEL, "%s: no general.architecture", f->path);
    memcpy(m->arch, a, al);
    m->arch[al] = 0;
    char key[128];
    snprintf(key, sizeof key, "%s.block_count", m->arch);
    if (!u32_or_arr0(f, key, &m->n_layer_all) || m->n_layer_all <= 0)
        return dc_err_set(err, DC_ERR_MODEL, "%s: no %s", f->path, key);
    snprintf(key, sizeof key, "%s.expert_count", m->arch);
    if (!u32_or_arr0(f, key, &m->n_expert))
        m->n_expert = 0;
    snprintf(key, sizeof key, "%s.attention.head_count", m->arch);
    if (!u32_or_arr0(f, key, &m->n_head))
        m->n_head = 0;
    snprintf(key, sizeof key, "%s.attention.head_count_kv", m->arch);
    if (!u32_or_arr0(f, key, &m->n_head_kv))
        m->n_head_kv = m->n_head;
    m->is_70b = !strcmp(m->arch, "llama") && m->n_layer_all == 80 && m->n_head != m->n_head_kv;
    return DC_OK;
}

static void plan_free(qplan *p)
{
    free(p->t);
    if (p->qs.re) {
        for (size_t i = 0; i < p->qs.o->n_tt; i++)
            if (p->qs.re[i])
                pcre2_code_free(p->qs.re[i]);
        free(p->qs.re);
    }
    dc_ggufw_free(p->w);
    dc_imatrix_free(&p->im);
    dc_gguf_src_close(p->src);
    dc_gguf_close_all(p->files, p->n_files);
    memset(p, 0, sizeof *p);
}

static bool is_gguf_path(const char *in)
{
    if (dc_is_dir(in))
        return false;
    if (dc_str_ends_with(in, ".gguf"))
        return true;
    FILE *f = fopen(in, "rb");
    char mg[4] = {0};
    bool g = f && fread(mg, 1, 4, f) == 4 && !memcmp(mg, "GGUF", 4);
    if (f)
        fclose(f);
    return g;
}

/* The tensors, their types and the output's KVs. */
static dc_status build(const char *in, const dc_quantize_opts *o, qplan *p, dc_quantize_stats *s, dc_err *err)
{
    dc_status st;
    const ftype_row *fr = ftype_row_of(o->ftype);
    if (!fr)
        return dc_err_set(err, DC_ERR_USAGE, "file type %d is not one deepcast writes (%s)", o->ftype, dc_ftype_names());
    p->qs.m = &p->m;
    p->qs.o = o;
    p->qs.default_type = fr->def;
    /* --tensor-type patterns */
    if (o->n_tt) {
        p->qs.re = calloc(o->n_tt, sizeof *p->qs.re);
        if (!p->qs.re)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < o->n_tt; i++) {
            int ec;
            PCRE2_SIZE eo;
            p->qs.re[i] = pcre2_compile((PCRE2_SPTR)o->tt[i].pattern, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
            if (!p->qs.re[i]) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(ec, msg, sizeof msg);
                return dc_err_set(err, DC_ERR_USAGE, "--tensor-type %s: bad regular expression at %zu: %s", o->tt[i].pattern,
                                  (size_t)eo, (const char *)msg);
            }
        }
    }
    /* the input */
    if (is_gguf_path(in)) {
        if ((st = dc_gguf_open_all(in, &p->files, &p->n_files, err)))
            return st;
        if ((st = model_from_gguf(&p->files[0], &p->m, err)))
            return st;
        for (int k = 0; k < p->n_files; k++)
            p->n += p->files[k].n_tensors;
        if (!(p->t = calloc(p->n ? p->n : 1, sizeof *p->t)))
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        size_t i = 0;
        for (int k = 0; k < p->n_files; k++)
            for (size_t j = 0; j < p->files[k].n_tensors; j++, i++) {
                const dc_gguf_tinfo *t = &p->files[k].tensors[j];
                qtensor *q = &p->t[i];
                q->name = t->name;
                q->gt = t;
                for (int d = 0; d < 4; d++)
                    q->ne[d] = t->ne[d];
                q->src_type = (int)t->type;
                q->src_bytes = t->nbytes;
            }
    } else {
        if ((st = dc_gguf_src_open(in, o->drop_mtp, &p->src, err)))
            return st;
        const dc_ckpt *ck = dc_gguf_src_ckpt(p->src);
        const dc_config *c = &ck->cfg;
        bool dense = dc_arch_dense(c->arch);
        snprintf(p->m.arch, sizeof p->m.arch, "%s", dc_gguf_arch_name(c));
        p->m.n_layer_all = c->n_layers + dc_gguf_src_n_mtp(p->src);
        p->m.n_expert = dense ? 0 : c->n_experts_routed;
        p->m.n_head = c->n_heads;
        p->m.n_head_kv = dense ? c->n_kv_heads : 1; /* deepseek2's MLA: head_count_kv 1 */
        p->m.is_70b = c->arch == DC_ARCH_LLAMA && p->m.n_layer_all == 80 && p->m.n_head != p->m.n_head_kv;
        p->n = dc_gguf_src_count(p->src);
        if (!(p->t = calloc(p->n ? p->n : 1, sizeof *p->t)))
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < p->n; i++) {
            dc_gguf_src_info info;
            dc_gguf_src_tensor(p->src, i, &info);
            qtensor *q = &p->t[i];
            q->name = info.name;
            q->si = i;
            for (int j = 0; j < 4; j++)
                q->ne[j] = info.ne[j];
            q->src_type = DC_GGML_F32;
            q->src_bytes = row_bytes(DC_GGML_F32, q->ne[0]) * (uint64_t)n_rows(q->ne);
        }
    }
    qsort(p->t, p->n, sizeof *p->t, cmp_qtensor);
    for (size_t i = 1; i < p->n; i++)
        if (!strcmp(p->t[i].name, p->t[i - 1].name))
            return dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s appears twice", in, p->t[i].name);
    /* imatrix */
    if (o->imatrix) {
        if ((st = dc_imatrix_load(o->imatrix, &p->im, err)))
            return st;
        p->qs.has_imatrix = true;
        s->n_imatrix_entries = p->im.n;
    }
    /* counters (init_quantize_state_counters) */
    p->qs.has_tied_embeddings = true;
    for (size_t i = 0; i < p->n; i++) {
        cat c = get_category(p->t[i].name);
        if (cat_is_attn_v(c))
            p->qs.n_attention_wv++;
        if (c == CAT_OUTPUT)
            p->qs.has_tied_embeddings = false;
    }
    p->qs.n_ffn_down = p->qs.n_ffn_gate = p->qs.n_ffn_up = p->m.n_layer_all;
    /* per-tensor types, in order */
    for (size_t i = 0; i < p->n; i++) {
        qtensor *q = &p->t[i];
        s->n_elements += (uint64_t)(q->ne[0] * n_rows(q->ne));
        s->bytes_in += q->src_bytes;
        q->allows = allows_quantization(o, q->name, q->ne);
        q->dst_type = q->src_type;
        if (q->allows) {
            int nf = p->qs.n_fallback;
            if ((st = get_type(&p->qs, q->name, q->ne, get_category(q->name), &q->dst_type, q->note, sizeof q->note, err)))
                return st;
            if (p->qs.n_fallback > nf)
                s->n_fallback++;
        }
        q->req_imatrix = requires_imatrix(q->name, q->dst_type, o->ftype);
        q->quantize = q->dst_type != q->src_type;
        if (!q->quantize)
            continue;
        if (!can_write(q->dst_type) && !o->dry_run)
            return dc_err_set(err, DC_ERR_UNSUPPORTED, "tensor %s: type %s has no quantizer in deepcast (it writes F32, F16, BF16, "
                              "Q4_0..Q8_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0, MXFP4)", q->name,
                              dc_ggml_type_name((uint32_t)q->dst_type));
        if (q->ne[0] % blck_size(q->dst_type))
            return dc_err_set(err, DC_ERR_USAGE, "tensor %s: rows of %lld values are not a whole number of %s blocks (%d)",
                              q->name, (long long)q->ne[0], dc_ggml_type_name((uint32_t)q->dst_type), blck_size(q->dst_type));
        if (is_quantized(q->src_type) && !o->allow_requantize && !o->dry_run)
            return dc_err_set(err, DC_ERR_USAGE, "tensor %s is already %s: requantizing is disabled (--allow-requantize "
                              "enables it, at a loss of quality)", q->name, dc_ggml_type_name((uint32_t)q->src_type));
        if (!q->gt && !p->src)
            return dc_err_set(err, DC_ERR_INTERNAL, "tensor %s has no source", q->name);
        if (q->gt && !dc_ggml_can_decode(q->gt->dtype) && !o->dry_run)
            return dc_err_set(err, DC_ERR_UNSUPPORTED, "tensor %s: type %s cannot be decoded by deepcast", q->name,
                              dc_dtype_name(q->gt->dtype));
        if (o->imatrix) {
            const dc_imatrix_entry *e = dc_imatrix_find(&p->im, q->name);
            if (e) {
                if (e->n == (size_t)(q->ne[0] * q->ne[2])) {
                    q->imat = e->values;
                    s->n_imatrix_used++;
                } else if (!is_token_embd(q->name))
                    return dc_err_set(err, DC_ERR_MODEL, "%s: imatrix size %zu is different from tensor size %lld for %s",
                                      o->imatrix, e->n, (long long)(q->ne[0] * q->ne[2]), q->name);
            }
        }
        if (!q->imat && q->req_imatrix && !o->dry_run)
            return dc_err_set(err, DC_ERR_USAGE, "tensor %s: %s in a %s file needs an importance matrix (--imatrix)", q->name,
                              dc_ggml_type_name((uint32_t)q->dst_type), dc_ftype_name(o->ftype));
    }
    for (size_t i = 0; i < p->n; i++) {
        qtensor *q = &p->t[i];
        q->dst_bytes = row_bytes(q->dst_type, q->ne[0]) * (uint64_t)n_rows(q->ne);
    }
    return DC_OK;
}

/* The output's KVs: the input's (general.quantization_version, general.file_type, the split keys
 * and the keys set below dropped), then general.quantization_version, general.file_type and the
 * imatrix keys, as gguf_set_kv + gguf_set_val_* (remove, then append) leave them. */
static dc_status write_kvs(qplan *p, const dc_quantize_opts *o, dc_err *err)
{
    static const char *SET[] = {"general.quantization_version", "general.file_type", "split.no", "split.count",
                                "split.tensors.count", "quantize.imatrix.file", "quantize.imatrix.dataset",
                                "quantize.imatrix.entries_count", "quantize.imatrix.chunks_count"};
    dc_status st = DC_OK;
    if (p->files) {
        const dc_gguf_file *f = &p->files[0];
        for (size_t i = 0; i < f->n_kv && !st; i++) {
            const dc_gguf_kv *kv = &f->kv[i];
            bool skip = false;
            for (size_t k = 0; k < sizeof SET / sizeof SET[0]; k++)
                skip |= !strcmp(kv->key, SET[k]);
            if (!strcmp(kv->key, "general.alignment")) {
                uint32_t a = 0;
                if (!dc_gguf_get_u32(f, "general.alignment", &a) || a != ALIGN)
                    return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: general.alignment %u: llama-quantize writes 32-byte "
                                      "alignment, so only 32 is carried over", f->path, a);
            }
            if (!skip)
                st = dc_ggufw_kv_copy(p->w, kv, err);
        }
    } else {
        bool tok;
        st = dc_gguf_src_kvs(p->src, p->w, &tok, err);
    }
    if (!st)
        st = dc_ggufw_kv_u32(p->w, "general.quantization_version", GGML_QNT_VERSION, err);
    if (!st)
        st = dc_ggufw_kv_u32(p->w, "general.file_type", (uint32_t)o->ftype, err);
    if (!st && o->imatrix) {
        /* quantize.cpp: kv overrides, strings cut at 127 bytes, counts as u32 */
        st = dc_ggufw_kv_str(p->w, "quantize.imatrix.file", o->imatrix, strnlen(o->imatrix, 127), err);
        if (!st && p->im.dataset)
            st = dc_ggufw_kv_str(p->w, "quantize.imatrix.dataset", p->im.dataset, strnlen(p->im.dataset, 127), err);
        if (!st)
            st = dc_ggufw_kv_u32(p->w, "quantize.imatrix.entries_count", (uint32_t)p->im.n, err);
        if (!st && p->im.chunk_count > 0)
            st = dc_ggufw_kv_u32(p->w, "quantize.imatrix.chunks_count", (uint32_t)p->im.chunk_count, err);
    }
    return st;
}

/* ============================================================================================
 * Execution
 * ============================================================================================ */

typedef struct unit {
    size_t t;
    int64_t a, b; /* rows [a, b); never across an i2 slice (an expert, a head) */
} unit;

typedef struct bufs {
    float *f, *scratch;
    uint8_t *o;
    size_t cap, scap, cap_o; /* cap: values of f; cap_o: bytes of o */
} bufs;

/* ggml_validate_row_data: no infinite or NaN scale (or value) in the output */
static bool f16_bad(uint16_t h) { return (h & 0x7c00u) == 0x7c00u; }

static int64_t validate(int type, const uint8_t *d, int64_t nblocks)
{
#define VD(T, EXPR)                                                                        \
    for (int64_t i = 0; i < nblocks; i++) {                                                \
        T b;                                                                               \
        memcpy(&b, d + (size_t)i * sizeof b, sizeof b);                                    \
        if (EXPR)                                                                          \
            return i;                                                                      \
    }                                                                                      \
    return -1;
    switch (type) {
    case DC_GGML_F32: for (int64_t i = 0; i < nblocks; i++) { float v; memcpy(&v, d + 4 * i, 4); if (!isfinite(v)) return i; } return -1;
    case DC_GGML_F16: for (int64_t i = 0; i < nblocks; i++) { uint16_t v; memcpy(&v, d + 2 * i, 2); if (f16_bad(v)) return i; } return -1;
    case DC_GGML_BF16: for (int64_t i = 0; i < nblocks; i++) { uint16_t v; memcpy(&v, d + 2 * i, 2); if ((v & 0x7fffu) >= 0x7f80u) return i; } return -1;
    case DC_GGML_Q4_0: VD(dc_block_q4_0, f16_bad(b.d))
    case DC_GGML_Q4_1: VD(dc_block_q4_1, f16_bad(b.d) || f16_bad(b.m))
    case DC_GGML_Q5_0: VD(dc_block_q5_0, f16_bad(b.d))
    case DC_GGML_Q5_1: VD(dc_block_q5_1, f16_bad(b.d) || f16_bad(b.m))
    case DC_GGML_Q8_0: VD(dc_block_q8_0, f16_bad(b.d))
    case DC_GGML_MXFP4: VD(dc_block_mxfp4, b.e == 0xff)
    case DC_GGML_Q2_K: VD(dc_block_q2_K, f16_bad(b.d) || f16_bad(b.dmin))
    case DC_GGML_Q3_K: VD(dc_block_q3_K, f16_bad(b.d))
    case DC_GGML_Q4_K: VD(dc_block_q4_K, f16_bad(b.d) || f16_bad(b.dmin))
    case DC_GGML_Q5_K: VD(dc_block_q5_K, f16_bad(b.d) || f16_bad(b.dmin))
    case DC_GGML_Q6_K: VD(dc_block_q6_K, f16_bad(b.d))
    case DC_GGML_TQ1_0: VD(dc_block_tq1_0, f16_bad(b.d))
    case DC_GGML_TQ2_0: VD(dc_block_tq2_0, f16_bad(b.d))
    case DC_GGML_IQ4_NL: VD(dc_block_iq4_nl, f16_bad(b.d))
    case DC_GGML_IQ4_XS: VD(dc_block_iq4_xs, f16_bad(b.d))
    default: return -1;
    }
#undef VD
}

static dc_status read_rows(const qplan *p, const qtensor *q, int64_t a, int64_t n, float *out, bufs *b, dc_err *err)
{
    if (p->src)
        return dc_gguf_src_rows(p->src, q->si, a, n, out, &b->scratch, &b->scap, err);
    const uint64_t rb = row_bytes(q->src_type, q->ne[0]);
    const uint8_t *src = q->gt->data + (uint64_t)a * rb;
    if (!dc_ggml_decode(q->gt->dtype, src, out, n * q->ne[0]))
        return dc_err_set(err, DC_ERR_UNSUPPORTED, "tensor %s: no decoder for %s", q->name, dc_dtype_name(q->gt->dtype));
    return DC_OK;
}

/* Drops the input pages of rows [a, a+n) once a unit is done (per batch, the kernel's fault-around
 * would map released pages back as the next batch faults in). */
static void release_rows(const qplan *p, const qtensor *q, int64_t a, int64_t n)
{
    if (p->src) {
        dc_gguf_src_release(p->src, q->si, a, n);
        return;
    }
    const uint64_t rb = row_bytes(q->src_type, q->ne[0]);
    dc_map_release(q->gt->data + (uint64_t)a * rb, (size_t)(rb * (uint64_t)n));
}

static dc_status run_unit(const qplan *p, const unit *u, bufs *b, dc_err *err)
{
    const qtensor *q = &p->t[u->t];
    const int64_t nr = u->b - u->a, ne0 = q->ne[0];
    const uint64_t rb_dst = row_bytes(q->dst_type, ne0);
    if (!q->quantize && p->files) { /* copy the stored bytes */
        const uint8_t *src = q->gt->data + (uint64_t)u->a * rb_dst;
        dc_status st = dc_ggufw_write(p->w, q->wi, (uint64_t)u->a * rb_dst, src, (size_t)(rb_dst * (uint64_t)nr), err);
        dc_map_release(src, (size_t)(rb_dst * (uint64_t)nr));
        return st;
    }
    /* rows are read, checked and encoded in batches of about 16 K values (64 KB of f32, cache-sized:
     * each pass over the values stays in L2), into the unit's output buffer */
    const size_t n = (size_t)(nr * ne0);
    const int64_t sub = ne0 >= 16384 ? 1 : 16384 / (ne0 > 0 ? ne0 : 1);
    const size_t nf = (size_t)((sub < nr ? sub : nr) * ne0);
    if (nf > b->cap || n * 4 + 64 > b->cap_o) {
        if (nf > b->cap) {
            free(b->f);
            b->f = malloc(nf * sizeof *b->f);
            b->cap = b->f ? nf : 0;
        }
        if (n * 4 + 64 > b->cap_o) {
            free(b->o);
            b->o = malloc(n * 4 + 64);
            b->cap_o = b->o ? n * 4 + 64 : 0;
        }
        if (!b->cap || !b->cap_o)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory for %zu values of %s", n, q->name);
    }
    const float *im = q->imat ? q->imat + (u->a / q->ne[1]) * ne0 : NULL;
    const dc_qtype_traits *t = q->dst_type == DC_GGML_F32 || q->dst_type == DC_GGML_F16 || q->dst_type == DC_GGML_BF16
                                   ? NULL
                                   : dc_qtype_by_id(q->dst_type);
    for (int64_t r0 = 0; r0 < nr; r0 += sub) {
        const int64_t rn = nr - r0 < sub ? nr - r0 : sub;
        const size_t m = (size_t)(rn * ne0);
        uint8_t *o = b->o + (uint64_t)r0 * rb_dst;
        dc_status st = read_rows(p, q, u->a + r0, rn, b->f, b, err);
        if (st)
            return st;
        const int64_t bad = dc_first_nonfinite(b->f, m);
        if (bad >= 0) {
            const int64_t row = u->a + r0 + bad / ne0, per = q->ne[1] > 0 ? q->ne[1] : 1;
            char where[64] = "";
            if (q->ne[2] > 1) /* stacked experts: which one */
                snprintf(where, sizeof where, " (expert %lld, its row %lld)", (long long)(row / per), (long long)(row % per));
            return dc_err_set(err, DC_ERR_INPUT, "tensor %s: non-finite value at row %lld%s, column %lld; cannot quantize to %s",
                              q->name, (long long)row, where, (long long)(bad % ne0), dc_ggml_type_name((uint32_t)q->dst_type));
        }
        switch (q->dst_type) {
        case DC_GGML_F32: memcpy(o, b->f, m * 4); break;
        case DC_GGML_F16:
            for (size_t i = 0; i < m; i++) {
                uint16_t h = dc_quants_f32_to_f16(b->f[i]);
                memcpy(o + 2 * i, &h, 2);
            }
            break;
        case DC_GGML_BF16:
            for (size_t i = 0; i < m; i++) { /* ggml_compute_fp32_to_bf16 (inputs are finite) */
                uint32_t x = dc_f32_bits(b->f[i]);
                uint16_t h = (uint16_t)((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
                memcpy(o + 2 * i, &h, 2);
            }
            break;
        default:
            if (!t || t->quantize_imatrix(b->f, o, rn, ne0, im) != (size_t)(rb_dst * (uint64_t)rn))
                return dc_err_set(err, DC_ERR_INTERNAL, "tensor %s: quantizing to %s failed", q->name,
                                  dc_ggml_type_name((uint32_t)q->dst_type));
        }
    }
    release_rows(p, q, u->a, nr);
    const int bs = blck_size(q->dst_type);
    const int64_t nblocks = (int64_t)n / bs, bad = validate(q->dst_type, b->o, nblocks);
    if (bad >= 0) {
        const int64_t per_row = ne0 / bs;
        return dc_err_set(err, DC_ERR_INPUT,
                          "tensor %s: quantized to %s, block %lld of row %lld has an infinite or NaN scale (values too large "
                          "for its f16 scale); llama-quantize rejects such data too",
                          q->name, dc_ggml_type_name((uint32_t)q->dst_type), (long long)(bad % per_row),
                          (long long)(u->a + bad / per_row));
    }
    return dc_ggufw_write(p->w, q->wi, (uint64_t)u->a * rb_dst, b->o, (size_t)(rb_dst * (uint64_t)nr), err);
}

typedef struct qrun {
    const qplan *p;
    const unit *units;
} qrun;

static dc_status qrun_unit(void *ctx, size_t k, void *tls, dc_err *err)
{
    const qrun *r = ctx;
    return run_unit(r->p, &r->units[k], tls, err);
}

static void bufs_free(void *tls)
{
    bufs *b = tls;
    free(b->f);
    free(b->o);
    free(b->scratch);
}

static dc_status execute(const qplan *p, const dc_quantize_opts *o, dc_err *err)
{
    size_t nu = 0, cap = 0;
    unit *units = NULL;
    for (size_t i = 0; i < p->n; i++) {
        const qtensor *q = &p->t[i];
        const int64_t rows = n_rows(q->ne), seg = q->ne[1] > 0 ? q->ne[1] : 1;
        /* about 1 M values (4 MB of f32) a unit: the K-quant searches run at 20-150 MB/s a thread */
        int64_t step = q->ne[0] > 0 ? (int64_t)((1u << 20) / (uint64_t)q->ne[0]) : 1;
        if (!q->quantize)
            step *= 16;
        if (step < 1)
            step = 1;
        for (int64_t s0 = 0; s0 < rows; s0 += seg) {
            int64_t s1 = s0 + seg < rows ? s0 + seg : rows;
            for (int64_t a = s0; a < s1; a += step) {
                if (!dc_grow((void **)&units, &cap, nu + 1, sizeof *units)) {
                    free(units);
                    return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                }
                units[nu++] = (unit){i, a, a + step < s1 ? a + step : s1};
            }
        }
    }
    qrun rc = {p, units};
    dc_par_job job = {nu, qrun_unit, &rc, sizeof(bufs), bufs_free, o->progress ? "quantize:" : NULL, NULL, 0};
    dc_status st = dc_par_run(&job, err);
    free(units);
    return st;
}

static void print_plan(FILE *f, const qplan *p, const dc_quantize_opts *o, const dc_quantize_stats *s)
{
    fprintf(f, "%-40s %-22s %-6s %-6s %10s %10s  %s\n", "tensor", "ne (ggml order)", "from", "to", "MiB in", "MiB out", "note");
    bool need_imatrix = false;
    for (size_t i = 0; i < p->n; i++) {
        const qtensor *q = &p->t[i];
        char ne[80];
        int nd = ggml_n_dims(q->ne), k = snprintf(ne, sizeof ne, "%lld", (long long)q->ne[0]);
        for (int j = 1; j < nd; j++)
            k += snprintf(ne + k, sizeof ne - (size_t)k, ",%lld", (long long)q->ne[j]);
        char note[256];
        snprintf(note, sizeof note, "%s%s%s%s", q->note, q->imat ? (q->note[0] ? ", imatrix" : "imatrix") : "",
                 q->req_imatrix && !q->imat && q->quantize ? (q->note[0] || q->imat ? ", " : "") : "",
                 q->req_imatrix && !q->imat && q->quantize ? "needs an imatrix" : "");
        need_imatrix |= q->req_imatrix && !q->imat && q->quantize;
        fprintf(f, "%-40s %-22s %-6s %-6s %10.3f %10.3f  %s\n", q->name, ne, dc_ggml_type_name((uint32_t)q->src_type),
                dc_ggml_type_name((uint32_t)q->dst_type), (double)q->src_bytes / 1048576.0, (double)q->dst_bytes / 1048576.0,
                note);
    }
    double el = s->n_elements ? (double)s->n_elements : 1;
    fprintf(f, "model size: %.2f MiB (%.2f BPW)\n", (double)s->bytes_in / 1048576.0, (double)s->bytes_in * 8.0 / el);
    fprintf(f, "quant size: %.2f MiB (%.2f BPW), %s, %zu tensors, %zu quantized, %zu copied, %zu fallback(s), file %llu bytes\n",
            (double)s->bytes_out / 1048576.0, (double)s->bytes_out * 8.0 / el, dc_ftype_name(o->ftype), s->n_tensors,
            s->n_quantized, s->n_copied, s->n_fallback, (unsigned long long)s->file_bytes);
    if (need_imatrix && !o->imatrix)
        fprintf(f, "warning: this quantization needs an importance matrix (--imatrix) for the tensors marked above\n");
}

void dc_quantize_opts_init(dc_quantize_opts *o)
{
    memset(o, 0, sizeof *o);
    o->ftype = DC_FTYPE_Q8_0;
    o->output_tensor_type = -1;
    o->token_embedding_type = -1;
}

static bool same_file(const char *a, const char *b)
{
    char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
    bool same = ra && rb && !strcmp(ra, rb);
    free(ra);
    free(rb);
    return same;
}

dc_status dc_quantize(const char *in, const char *out, const dc_quantize_opts *o, FILE *planf, dc_quantize_stats *s,
                      dc_err *err)
{
    memset(s, 0, sizeof *s);
    double t0 = now_s();
    qplan p = {0};
    bool opened = false;
    dc_status st;
    if (!o->dry_run && same_file(in, out)) {
        st = dc_err_set(err, DC_ERR_USAGE, "input and output are the same file: %s", in);
        goto done;
    }
    if ((st = build(in, o, &p, s, err)))
        goto done;
    if (!(p.w = dc_ggufw_new())) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = write_kvs(&p, o, err)))
        goto done;
    for (size_t i = 0; i < p.n; i++) {
        qtensor *q = &p.t[i];
        if ((st = dc_ggufw_add(p.w, q->name, (uint32_t)q->dst_type, (uint32_t)ggml_n_dims(q->ne), q->ne, &q->wi, err)))
            goto done;
        s->n_tensors++;
        if (q->quantize)
            s->n_quantized++;
        else
            s->n_copied++;
        s->bytes_out += q->dst_bytes;
    }
    if ((st = dc_ggufw_plan(p.w, 0, err)))
        goto done;
    s->file_bytes = dc_ggufw_split_size(p.w, 0);
    if (p.qs.n_fallback)
        dc_log(o->dry_run ? 2 : 1, "quantize: %zu of %zu tensor(s) required fallback quantization (rows not a whole "
                                   "number of blocks; --dry-run lists them)\n", s->n_fallback, s->n_tensors);
    if (o->dry_run) {
        print_plan(planf ? planf : stdout, &p, o, s);
        goto done;
    }
    if ((st = dc_ggufw_open(p.w, out, o->force, err)))
        goto done;
    opened = true;
    if ((st = execute(&p, o, err)))
        goto done;
    st = dc_ggufw_finish(p.w, err);
    opened = false;
done:
    if (opened)
        dc_ggufw_abort(p.w);
    s->seconds = now_s() - t0;
    plan_free(&p);
    return st;
}
