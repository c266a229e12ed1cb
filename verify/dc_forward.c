/* The reference forward pass of DeepSeek V3 / V2 in float32 (see dc_forward.h, docs/forward.md),
 * and of the dense GQA decoders of the distills (Qwen2, Llama: docs/distills.md).
 *
 * Notation (NOTES.md): L tokens, D hidden, H heads, dn / dr / dv = qk_nope / qk_rope / v head dims,
 * dq = dn + dr, c = kv_lora_rank, qr = q_lora_rank, E routed experts, K experts per token,
 * mi = moe_intermediate_size, I = intermediate_size (dense MLP), V vocab.
 *
 * Per layer (pre-norm residual, model.py's Block):
 *     x = x + attn(attn_norm(x));  x = x + ffn(ffn_norm(x))
 * attn is MLA computed in the "naive" form (per-head keys from kv_b); ffn is a SiLU-gated MLP for
 * dense layers and shared-experts + routed experts for MoE layers. For qwen2 / llama, attn is
 * grouped-query attention (q/k/v/o projections with optional biases, NeoX "rotate_half" RoPE over
 * the whole head, optionally llama3-scaled) and every layer has the SiLU-gated MLP; RMSNorm uses
 * the config's rms_norm_eps (DeepSeek's model.py always uses 1e-6).
 *
 * Determinism: every output element is produced by exactly one thread with a summation order that
 * depends only on the shapes, so results are bit-identical for any OpenMP thread count, and (no
 * FMA contraction, fixed vector width) for the SSE and AVX2 code paths alike. */
#include "dc_forward.h"
#include "dc_experts.h"
#include "dc_float.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================================================
 * Kernels: fixed-order f32 dot products
 * ================================================================================================
 * dot(a, b, n) is defined as: eight lane accumulators over the first n - n % 8 elements (lane j
 * sums elements i with i % 8 == j, in order; each step rounds the product, then the sum), a fixed
 * pairwise reduction of the lanes, then the remaining elements added in order. Every kernel below
 * computes exactly this for each of its outputs, whatever the tile shape or instruction set. */

typedef float v8f __attribute__((vector_size(32)));
#pragma GCC diagnostic ignored "-Wpsabi" /* the helpers below are always inlined */

static inline __attribute__((always_inline)) v8f ld8(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) float hsum8(v8f a) { return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7])); }

static inline __attribute__((always_inline)) float dot1(const float *a, const float *b, int64_t n)
{
    v8f acc = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        acc += ld8(a + i) * ld8(b + i);
    float s = hsum8(acc);
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define DC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DC_CLONES
#endif

/* y[t * ldy + r] = dot(x[t], w[r]) for t < n, r < nr. x: [n][k], w: [nr][k] (rows of a weight). */
DC_CLONES
static void mm_tile(const float *x, int64_t n, int64_t k, const float *w, int64_t nr, float *y, int64_t ldy)
{
    int64_t k8 = k - k % 8;
    int64_t t = 0;
    for (; t + 4 <= n; t += 4) {
        const float *x0 = x + t * k, *x1 = x0 + k, *x2 = x1 + k, *x3 = x2 + k;
        int64_t r = 0;
        for (; r + 2 <= nr; r += 2) {
            const float *w0 = w + r * k, *w1 = w0 + k;
            v8f a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
            for (int64_t i = 0; i < k8; i += 8) {
                v8f b0 = ld8(w0 + i), b1 = ld8(w1 + i);
                v8f c0 = ld8(x0 + i), c1 = ld8(x1 + i), c2 = ld8(x2 + i), c3 = ld8(x3 + i);
                a00 += c0 * b0; a01 += c0 * b1;
                a10 += c1 * b0; a11 += c1 * b1;
                a20 += c2 * b0; a21 += c2 * b1;
                a30 += c3 * b0; a31 += c3 * b1;
            }
            float s00 = hsum8(a00), s01 = hsum8(a01), s10 = hsum8(a10), s11 = hsum8(a11);
            float s20 = hsum8(a20), s21 = hsum8(a21), s30 = hsum8(a30), s31 = hsum8(a31);
            for (int64_t i = k8; i < k; i++) {
                s00 += x0[i] * w0[i]; s01 += x0[i] * w1[i];
                s10 += x1[i] * w0[i]; s11 += x1[i] * w1[i];
                s20 += x2[i] * w0[i]; s21 += x2[i] * w1[i];
                s30 += x3[i] * w0[i]; s31 += x3[i] * w1[i];
            }
            y[(t + 0) * ldy + r] = s00; y[(t + 0) * ldy + r + 1] = s01;
            y[(t + 1) * ldy + r] = s10; y[(t + 1) * ldy + r + 1] = s11;
            y[(t + 2) * ldy + r] = s20; y[(t + 2) * ldy + r + 1] = s21;
            y[(t + 3) * ldy + r] = s30; y[(t + 3) * ldy + r + 1] = s31;
        }
        for (; r < nr; r++)
            for (int j = 0; j < 4; j++)
                y[(t + j) * ldy + r] = dot1(x + (t + j) * k, w + r * k, k);
    }
    for (; t < n; t++)
        for (int64_t r = 0; r < nr; r++)
            y[t * ldy + r] = dot1(x + t * k, w + r * k, k);
}

/* ================================================================================================
 * Model
 * ================================================================================================ */

/* A 2-D weight [rows, cols] read through dc_weight_rows, optionally cached as f32. */
typedef struct mat {
    dc_weight w;
    float *cache; /* [rows][cols] f32 when cached */
    dc_name_info site; /* role, layer, expert (for the activation hook) */
} mat;

typedef struct layer {
    float *attn_norm;  /* input_layernorm            [D] */
    float *ffn_norm;   /* post_attention_layernorm   [D] */
    float *q_a_norm;   /* q_a_layernorm              [qr]   (q_lora_rank > 0) */
    float *kv_a_norm;  /* kv_a_layernorm             [c] */
    mat wq;            /* q_proj                     [H*dq, D]  (q_lora_rank == 0) */
    mat wq_a;          /* q_a_proj                   [qr, D] */
    mat wq_b;          /* q_b_proj                   [H*dq, qr] */
    mat wkv_a;         /* kv_a_proj_with_mqa         [c+dr, D] */
    mat wkv_b;         /* kv_b_proj                  [H*(dn+dv), c] */
    mat wo;            /* o_proj                     [D, H*dv]  (dense archs: [D, H*hd]) */
    mat wk, wv;        /* dense archs: k_proj, v_proj [KVH*hd, D] */
    /* DeepSeek-V3.2's indexer (self_attn.indexer.*) */
    mat iwq_b;         /* wq_b                       [iH*iD, qr] */
    mat iwk;           /* wk                         [iD, D] */
    mat iwp;           /* weights_proj               [iH, D] */
    float *ik_norm, *ik_norm_b; /* k_norm weight, bias [iD] */
    float *bq, *bk, *bv, *bo; /* dense archs: q/k/v/o_proj biases, or NULL */
    bool moe;
    bool has_mlp;      /* dense MLP, or shared experts present */
    mat w1, w3, w2;    /* gate_proj [F, D], up_proj [F, D], down_proj [D, F]; F = I (dense) or
                        * n_shared * mi (shared experts, one fused MLP) */
    mat router;        /* mlp.gate.weight            [E, D] */
    float *router_bias;/* e_score_correction_bias    [E] F32, or NULL */
    mat *ew1, *ew3, *ew2; /* experts.e.{gate,up,down}_proj  [mi, D], [mi, D], [D, mi] */
    dc_expert_slot *eslots; /* fused experts (reshard --merge-experts): [E][3] views backing ew* */
} layer;

struct dc_model {
    const dc_ckpt *ck;
    dc_config cfg;
    dc_fwd_opts opts;
    int64_t D, V, H, dn, dr, dv, dq, c, qr, E, K, mi, I, ffn_max;
    int n_layers;
    bool dense;         /* qwen2 / llama: GQA decoder (dn = 0, dr = dv = dq = hd) */
    int64_t KVH, hd;    /* dense archs: key/value heads, head dim */
    int64_t iH, iD, itopk; /* V3.2 indexer: heads, head dim, keys kept per query (0: no indexer) */
    float eps;          /* RMSNorm epsilon: 1e-6 for DeepSeek (model.py), rms_norm_eps otherwise */
    mat embed;          /* model.embed_tokens.weight  [V, D] (rows looked up, never cached) */
    int n_mtp;          /* 1 when the MTP layer is loaded (opts.mtp): layers[n_layers] is its block */
    mat mtp_eh;         /* eh_proj [D, 2D] */
    mat mtp_embed;      /* its embed_tokens [V, D] */
    float *mtp_enorm, *mtp_hnorm; /* [D] */
    mat head;           /* lm_head.weight             [V, D] (embed when tied) */
    float *final_norm;  /* model.norm.weight          [D] */
    layer *layers;
    int n_moe, *moe_layers;
    bool any_bias;
    bool yarn;
    float softmax_scale;
    float *freqs;       /* [dr/2] RoPE inverse frequencies (YaRN-corrected when active) */
    uint64_t cached;
    dc_act_hook hook;   /* dc_model_set_act_hook */
    void *hook_ud;
};

void dc_model_set_act_hook(dc_model *m, dc_act_hook hook, void *ud)
{
    m->hook = hook;
    m->hook_ud = ud;
}

static void act(const dc_model *m, int role, int li, int expert, const float *x, int64_t n, int64_t n_mat, int64_t cols,
                int64_t ld, int64_t hs)
{
    dc_act a = {role, li, expert, x, n, n_mat, cols, ld, hs};
    m->hook(m->hook_ud, &a);
}

void dc_fwd_opts_default(dc_fwd_opts *o)
{
    memset(o, 0, sizeof *o);
    o->deq_mode = DC_DEQ_BF16_ROUND;
    o->max_seq_len = 16384;
    o->mem_budget = DC_FWD_DEFAULT_MEM_BUDGET;
}

const dc_config *dc_model_config(const dc_model *m) { return &m->cfg; }
int64_t dc_model_vocab(const dc_model *m) { return m->V; }
int64_t dc_model_hidden(const dc_model *m) { return m->D; }
bool dc_model_has_router_bias(const dc_model *m) { return m->any_bias; }
float dc_model_softmax_scale(const dc_model *m) { return m->softmax_scale; }
const float *dc_model_rope_freqs(const dc_model *m) { return m->freqs; }
uint64_t dc_model_cached_bytes(const dc_model *m) { return m->cached; }
int dc_model_moe_layers(const dc_model *m, const int **layers)
{
    if (layers)
        *layers = m->moe_layers;
    return m->n_moe;
}

static void mat_free(mat *w)
{
    free(w->cache);
    w->cache = NULL;
}

void dc_model_free(dc_model *m)
{
    if (!m)
        return;
    for (int i = 0; m->layers && i < m->n_layers + m->n_mtp; i++) {
        layer *l = &m->layers[i];
        free(l->attn_norm); free(l->ffn_norm); free(l->q_a_norm); free(l->kv_a_norm); free(l->router_bias);
        free(l->bq); free(l->bk); free(l->bv); free(l->bo); mat_free(&l->wk); mat_free(&l->wv);
        free(l->ik_norm); free(l->ik_norm_b); mat_free(&l->iwq_b); mat_free(&l->iwk); mat_free(&l->iwp);
        mat_free(&l->wq); mat_free(&l->wq_a); mat_free(&l->wq_b); mat_free(&l->wkv_a); mat_free(&l->wkv_b);
        mat_free(&l->wo); mat_free(&l->w1); mat_free(&l->w2); mat_free(&l->w3); mat_free(&l->router);
        for (int64_t e = 0; l->ew1 && e < m->E; e++) {
            mat_free(&l->ew1[e]); mat_free(&l->ew2[e]); mat_free(&l->ew3[e]);
        }
        free(l->ew1); free(l->ew2); free(l->ew3); free(l->eslots);
    }
    free(m->layers);
    mat_free(&m->head);
    mat_free(&m->embed);
    mat_free(&m->mtp_eh);
    mat_free(&m->mtp_embed);
    free(m->mtp_enorm);
    free(m->mtp_hnorm);
    free(m->final_norm);
    free(m->moe_layers);
    free(m->freqs);
    free(m);
}

/* Reads a whole (small) tensor as f32: norms and the router bias. */
static dc_status read_vec(const dc_weight *w, float **out, dc_err *err)
{
    uint64_t n;
    if (!dc_mul_u64((uint64_t)w->rows, (uint64_t)w->cols, &n))
        return dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s is too large", w->file_name, w->t->name);
    *out = dc_malloc(n ? n * sizeof(float) : 1, err);
    if (!*out)
        return DC_ERR_NOMEM;
    return dc_weight_rows(w, 0, w->rows, *out, DC_DEQ_BF16_ROUND, err);
}

/* ---- RoPE / YaRN tables (NOTES.md 3.1, 3.2) -------------------------------------------------- */

/* The dense archs: transformers' default inverse frequencies over the whole head, optionally
 * llama3-scaled (modeling_rope_utils._compute_default_rope_parameters / _compute_llama3_parameters),
 * with the same float32 operations: Tensor.__rtruediv__ is reciprocal() * scalar, and python
 * scalars meet float32 tensors as float32. The softmax scale is head_dim^-0.5. */
static void rope_init_dense(dc_model *m)
{
    const dc_config *c = &m->cfg;
    int64_t dim = m->hd, half = dim / 2;
    float base = (float)c->rope_theta;
    for (int64_t i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)dim;
        m->freqs[i] = 1.0f / powf(base, e);
    }
    if (c->n_rope_freq_factors == half) { /* a llama GGUF's rope_freqs: llama.cpp divides the angle by them */
        for (int64_t i = 0; i < half; i++)
            m->freqs[i] /= c->rope_freq_factors[i];
    } else if (c->rope_llama3) {
        float factor = (float)c->rope_factor, lo = (float)c->rope_low_freq_factor;
        float old_ctx = (float)c->rope_original_max_pos;
        float low_wl = (float)((double)c->rope_original_max_pos / c->rope_low_freq_factor);
        float high_wl = (float)((double)c->rope_original_max_pos / c->rope_high_freq_factor);
        float span = (float)(c->rope_high_freq_factor - c->rope_low_freq_factor);
        float two_pi = (float)(2.0 * M_PI);
        for (int64_t i = 0; i < half; i++) {
            float f = m->freqs[i];
            float wavelen = (1.0f / f) * two_pi;
            float fl = wavelen > low_wl ? f / factor : f; /* low frequencies: divided by factor */
            if (!(wavelen < high_wl) && !(wavelen > low_wl)) { /* medium: smooth interpolation */
                float smooth = ((1.0f / wavelen) * old_ctx - lo) / span;
                fl = (1.0f - smooth) * fl / factor + smooth * fl;
            }
            m->freqs[i] = fl;
        }
    }
    m->softmax_scale = (float)(1.0 / sqrt((double)m->hd));
}

static dc_status rope_init(dc_model *m, dc_err *err)
{
    const dc_config *c = &m->cfg;
    int64_t dr = m->dr, half = dr / 2;
    m->freqs = dc_malloc((size_t)(half ? half : 1) * sizeof(float), err);
    if (!m->freqs)
        return DC_ERR_NOMEM;
    if (m->dense) {
        rope_init_dense(m);
        return DC_OK;
    }
    m->yarn = c->rope_yarn && m->opts.max_seq_len > c->rope_original_max_pos;
    float base = (float)c->rope_theta;
    for (int64_t i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)dr;  /* arange(0, dr, 2, float32) / dr */
        m->freqs[i] = 1.0f / powf(base, e);
    }
    double scale = 1.0 / sqrt((double)m->dq);
    if (m->yarn) {
        /* correction range: dims whose wavelength is between beta_fast and beta_slow rotations of
         * the original context. */
        double lb = 2.0 * log(c->rope_theta), orig = (double)c->rope_original_max_pos;
        double lo = floor((double)dr * log(orig / (c->rope_beta_fast * 2.0 * M_PI)) / lb);
        double hi = ceil((double)dr * log(orig / (c->rope_beta_slow * 2.0 * M_PI)) / lb);
        if (lo < 0)
            lo = 0;
        if (hi > (double)(dr - 1))
            hi = (double)(dr - 1);
        if (lo == hi)
            hi += 0.001;
        float flo = (float)lo, span = (float)(hi - lo), factor = (float)c->rope_factor;
        for (int64_t i = 0; i < half; i++) {
            float ramp = ((float)i - flo) / span;
            ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
            float smooth = 1.0f - ramp; /* model.py blends with smooth = 1 - ramp */
            m->freqs[i] = m->freqs[i] / factor * (1.0f - smooth) + m->freqs[i] * smooth;
        }
        double ms = 0.1 * c->rope_mscale_all_dim * log(c->rope_factor) + 1.0;
        scale *= ms * ms;
    }
    m->softmax_scale = (float)scale;
    return DC_OK;
}

/* ---- loading and validation ------------------------------------------------------------------ */

static dc_status shape_error(const dc_ckpt *ck, const dc_tensor *t, const dc_expect *e, const dc_config *c,
                             dc_err *err)
{
    char got[64], want[64];
    if (dc_arch_dense(c->arch))
        return dc_err_set(err, DC_ERR_MODEL,
                          "%s: tensor %s (in %s) has shape [%s], but config.json (hidden_size %lld, heads %d, "
                          "key_value heads %d, head_dim %d, intermediate_size %lld, vocab %lld) implies [%s]",
                          ck->path, t->name, dc_ckpt_file_name(ck, t), dc_shape_str(t->ndim, t->shape, got, sizeof got),
                          (long long)c->hidden_size, c->n_heads, c->n_kv_heads, c->head_dim,
                          (long long)c->intermediate_size, (long long)c->vocab_size,
                          dc_shape_str(e->ndim, e->shape, want, sizeof want));
    if (e->info.role >= DC_ROLE_IDX_WQ_B && e->info.role <= DC_ROLE_IDX_WEIGHTS_PROJ)
        return dc_err_set(err, DC_ERR_MODEL,
                          "%s: tensor %s (in %s) has shape [%s], but config.json (index_n_heads %d, index_head_dim %d, "
                          "q_lora_rank %d, hidden_size %lld) implies [%s]",
                          ck->path, t->name, dc_ckpt_file_name(ck, t), dc_shape_str(t->ndim, t->shape, got, sizeof got),
                          c->index_n_heads, c->index_head_dim, c->q_lora_rank, (long long)c->hidden_size,
                          dc_shape_str(e->ndim, e->shape, want, sizeof want));
    return dc_err_set(err, DC_ERR_MODEL,
                      "%s: tensor %s (in %s) has shape [%s], but config.json (hidden_size %lld, heads %d, "
                      "q_lora_rank %d, kv_lora_rank %d, qk dims %d/%d, v_head_dim %d, experts %d, vocab %lld) "
                      "implies [%s]",
                      ck->path, t->name, dc_ckpt_file_name(ck, t), dc_shape_str(t->ndim, t->shape, got, sizeof got),
                      (long long)c->hidden_size, c->n_heads, c->q_lora_rank, c->kv_lora_rank, c->qk_nope_head_dim,
                      c->qk_rope_head_dim, c->v_head_dim, c->n_experts_routed, (long long)c->vocab_size,
                      dc_shape_str(e->ndim, e->shape, want, sizeof want));
}

/* Where a tensor of the expected list goes. Returns the mat slot, or sets *vec for vectors. */
static mat *slot_for(dc_model *m, const dc_name_info *ni, float ***vec)
{
    *vec = NULL;
    if (ni->layer < 0) {
        switch (ni->role) {
        case DC_ROLE_EMBED: return &m->embed;
        case DC_ROLE_LM_HEAD: return &m->head;
        case DC_ROLE_FINAL_NORM: *vec = &m->final_norm; return NULL;
        default: return NULL;
        }
    }
    switch (ni->role) {
    case DC_ROLE_MTP_EH_PROJ: return &m->mtp_eh;
    case DC_ROLE_MTP_EMBED: return &m->mtp_embed;
    case DC_ROLE_MTP_ENORM: *vec = &m->mtp_enorm; return NULL;
    case DC_ROLE_MTP_HNORM: *vec = &m->mtp_hnorm; return NULL;
    case DC_ROLE_MTP_HEAD: case DC_ROLE_MTP_HEAD_NORM: return NULL; /* only the routing is used */
    default: break;
    }
    layer *l = &m->layers[ni->layer];
    switch (ni->role) {
    case DC_ROLE_ATTN_NORM: *vec = &l->attn_norm; return NULL;
    case DC_ROLE_FFN_NORM: *vec = &l->ffn_norm; return NULL;
    case DC_ROLE_Q_A_NORM: *vec = &l->q_a_norm; return NULL;
    case DC_ROLE_KV_A_NORM: *vec = &l->kv_a_norm; return NULL;
    case DC_ROLE_ROUTER_BIAS: *vec = &l->router_bias; return NULL;
    case DC_ROLE_Q_BIAS: *vec = &l->bq; return NULL;
    case DC_ROLE_K_BIAS: *vec = &l->bk; return NULL;
    case DC_ROLE_V_BIAS: *vec = &l->bv; return NULL;
    case DC_ROLE_O_BIAS: *vec = &l->bo; return NULL;
    case DC_ROLE_K_PROJ: return &l->wk;
    case DC_ROLE_V_PROJ: return &l->wv;
    case DC_ROLE_Q_PROJ: return &l->wq;
    case DC_ROLE_Q_A_PROJ: return &l->wq_a;
    case DC_ROLE_Q_B_PROJ: return &l->wq_b;
    case DC_ROLE_KV_A_PROJ: return &l->wkv_a;
    case DC_ROLE_KV_B_PROJ: return &l->wkv_b;
    case DC_ROLE_O_PROJ: return &l->wo;
    case DC_ROLE_MLP_GATE: case DC_ROLE_SHEXP_GATE: l->has_mlp = true; return &l->w1;
    case DC_ROLE_MLP_UP: case DC_ROLE_SHEXP_UP: return &l->w3;
    case DC_ROLE_MLP_DOWN: case DC_ROLE_SHEXP_DOWN: return &l->w2;
    case DC_ROLE_ROUTER: return &l->router;
    case DC_ROLE_IDX_WQ_B: return &l->iwq_b;
    case DC_ROLE_IDX_WK: return &l->iwk;
    case DC_ROLE_IDX_WEIGHTS_PROJ: return &l->iwp;
    case DC_ROLE_IDX_K_NORM: *vec = &l->ik_norm; return NULL;
    case DC_ROLE_IDX_K_NORM_BIAS: *vec = &l->ik_norm_b; return NULL;
    case DC_ROLE_EXP_GATE: return &l->ew1[ni->expert];
    case DC_ROLE_EXP_UP: return &l->ew3[ni->expert];
    case DC_ROLE_EXP_DOWN: return &l->ew2[ni->expert];
    default: return NULL;
    }
}

dc_status dc_model_load(const dc_ckpt *ck, const dc_fwd_opts *opts, dc_model **out, dc_err *err)
{
    *out = NULL;
    dc_status st = dc_ckpt_require_config(ck, err);
    if (st)
        return st;
    dc_model *m = dc_calloc(1, sizeof *m, err);
    if (!m)
        return DC_ERR_NOMEM;
    m->ck = ck;
    m->cfg = ck->cfg;
    if (opts)
        m->opts = *opts;
    else
        dc_fwd_opts_default(&m->opts);
    if (m->opts.max_seq_len <= 0)
        m->opts.max_seq_len = 16384;
    const dc_config *c = &m->cfg;
    m->D = c->hidden_size;
    m->V = c->vocab_size;
    m->H = c->n_heads;
    m->dn = c->qk_nope_head_dim;
    m->dr = c->qk_rope_head_dim;
    m->dv = c->v_head_dim;
    m->dq = m->dn + m->dr;
    m->c = c->kv_lora_rank;
    m->qr = c->q_lora_rank;
    m->E = c->n_experts_routed;
    m->K = c->n_experts_per_tok;
    m->mi = c->moe_intermediate_size;
    m->I = c->intermediate_size;
    m->n_layers = c->n_layers;
    m->iH = c->index_n_heads;
    m->iD = c->index_head_dim;
    m->itopk = c->index_topk;
    m->ffn_max = m->mi;
    m->eps = 1e-6f; /* model.py ignores rms_norm_eps */
    if (dc_arch_dense(c->arch)) {
        /* GQA decoder: the MLA dims are reused for the scratch layout (q [n][H*hd], keys [n][H*hd]
         * (KVH*hd used), values in kvb [n][H*hd] (KVH*hd used), o [n][H*hd]) */
        m->dense = true;
        m->KVH = c->n_kv_heads;
        m->hd = c->head_dim;
        m->dn = 0;
        m->dr = m->dv = m->dq = m->hd;
        m->c = m->qr = 0;
        m->E = m->K = m->mi = 0;
        m->ffn_max = 0;
        m->eps = (float)c->rms_norm_eps;
    }
    dc_expect *ex = NULL;
    size_t n_ex = 0;

    if (m->opts.mtp && !m->dense && c->n_mtp_layers == 1) { /* DeepSeek-V3's layout; more are not run */
        char nm[96];
        snprintf(nm, sizeof nm, "model.layers.%d.eh_proj.weight", c->n_layers);
        m->n_mtp = dc_ckpt_find(ck, nm) ? 1 : 0;
    }
    m->layers = dc_calloc((size_t)(m->n_layers + m->n_mtp), sizeof *m->layers, err);
    m->moe_layers = dc_calloc((size_t)(m->n_layers + m->n_mtp), sizeof *m->moe_layers, err);
    if (!m->layers || !m->moe_layers) {
        st = DC_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < m->n_layers + m->n_mtp; i++) {
        layer *l = &m->layers[i];
        l->moe = dc_config_layer_is_moe(c, i);
        if (l->moe) {
            m->moe_layers[m->n_moe++] = i;
            l->ew1 = dc_calloc((size_t)m->E, sizeof(mat), err);
            l->ew2 = dc_calloc((size_t)m->E, sizeof(mat), err);
            l->ew3 = dc_calloc((size_t)m->E, sizeof(mat), err);
            if (!l->ew1 || !l->ew2 || !l->ew3) {
                st = DC_ERR_NOMEM;
                goto fail;
            }
            int64_t si = (int64_t)c->n_experts_shared * m->mi;
            if (si > m->ffn_max)
                m->ffn_max = si;
        } else if (m->I > m->ffn_max) {
            m->ffn_max = m->I;
        }
    }

    /* Every tensor the config implies (MTP layers excluded): present, right shape, readable. */
    if ((st = dc_expect_build(c, false, &ex, &n_ex, err)) != DC_OK)
        goto fail;
    for (size_t i = 0; i < n_ex; i++) {
        const dc_expect *e = &ex[i];
        if (e->info.is_mtp && (!m->n_mtp || e->info.layer != m->n_layers || e->info.role == DC_ROLE_MTP_HEAD ||
                               e->info.role == DC_ROLE_MTP_HEAD_NORM))
            continue;
        if ((e->info.role == DC_ROLE_EXP_GATE || e->info.role == DC_ROLE_EXP_UP || e->info.role == DC_ROLE_EXP_DOWN) &&
            !dc_ckpt_find(ck, e->name) && dc_ckpt_layer_has_fused_experts(ck, e->info.layer)) {
            /* fused layout: a view of this expert inside the stacked tensor */
            layer *l = &m->layers[e->info.layer];
            if (!l->eslots && !(l->eslots = dc_calloc((size_t)m->E * 3, sizeof *l->eslots, err))) {
                st = DC_ERR_NOMEM;
                goto fail;
            }
            int which = e->info.role == DC_ROLE_EXP_GATE ? DC_EXPERT_GATE
                        : e->info.role == DC_ROLE_EXP_UP ? DC_EXPERT_UP : DC_EXPERT_DOWN;
            dc_expert_slot *sl = &l->eslots[e->info.expert * 3 + which];
            if ((st = dc_expert_weight_into(ck, e->info.layer, e->info.expert, which, sl, err)) != DC_OK)
                goto fail;
            if (sl->w.rows != e->shape[0] || sl->w.cols != e->shape[1]) {
                char want[64];
                st = dc_err_set(err, DC_ERR_MODEL, "%s: expert %d of layer %d in the fused tensors is %lldx%lld, "
                                "config.json implies [%s]", ck->path, e->info.expert, e->info.layer,
                                (long long)sl->w.rows, (long long)sl->w.cols,
                                dc_shape_str(e->ndim, e->shape, want, sizeof want));
                goto fail;
            }
            float **vec;
            mat *slot = slot_for(m, &e->info, &vec);
            slot->w = sl->w; /* points into sl, which lives as long as the model */
            slot->site = e->info;
            continue;
        }
        const dc_tensor *t = dc_ckpt_find(ck, e->name);
        if (!t) {
            char want[64];
            st = dc_err_set(err, DC_ERR_MODEL, "%s: missing tensor %s (expected shape [%s]%s)", ck->path, e->name,
                            dc_shape_str(e->ndim, e->shape, want, sizeof want),
                            e->info.role == DC_ROLE_ROUTER_BIAS ? "; topk_method noaux_tc needs a router bias" : "");
            goto fail;
        }
        bool ok = t->ndim == e->ndim;
        for (int k = 0; ok && k < e->ndim; k++)
            ok = t->shape[k] == e->shape[k];
        if (!ok) {
            st = shape_error(ck, t, e, c, err);
            goto fail;
        }
        dc_weight w;
        if ((st = dc_ckpt_weight(ck, e->name, &w, err)) != DC_OK) {
            dc_err_prefix(err, "%s", ck->path);
            goto fail;
        }
        float **vec;
        mat *slot = slot_for(m, &e->info, &vec);
        if (slot) {
            slot->w = w;
            slot->site = e->info;
        }
        else if (vec) {
            if ((st = read_vec(&w, vec, err)) != DC_OK)
                goto fail;
        }
    }
    /* The oracle's rule: a router bias is used iff the checkpoint has one (even when topk_method
     * does not ask for it). */
    for (int i = 0; i < m->n_layers + m->n_mtp; i++) {
        layer *l = &m->layers[i];
        if (l->moe && !l->router_bias) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.mlp.gate.e_score_correction_bias", i);
            const dc_tensor *t = dc_ckpt_find(ck, name);
            if (t) {
                if (t->ndim != 1 || t->shape[0] != m->E) {
                    char got[64];
                    st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s has shape [%s]; n_routed_experts is %lld",
                                    ck->path, name, dc_shape_str(t->ndim, t->shape, got, sizeof got), (long long)m->E);
                    goto fail;
                }
                dc_weight w;
                if ((st = dc_ckpt_weight(ck, name, &w, err)) != DC_OK || (st = read_vec(&w, &l->router_bias, err)) != DC_OK)
                    goto fail;
            }
        }
        if (l->router_bias)
            m->any_bias = true;
    }
    if (c->tie_word_embeddings) {
        m->head.w = m->embed.w;
        m->head.site = (dc_name_info){.role = DC_ROLE_LM_HEAD, .layer = -1, .expert = -1};
    }
    dc_expect_free(ex, n_ex);
    ex = NULL;
    if ((st = rope_init(m, err)) != DC_OK)
        goto fail;
    *out = m;
    return DC_OK;
fail:
    dc_expect_free(ex, n_ex);
    dc_model_free(m);
    return st;
}

/* ================================================================================================
 * Building blocks
 * ================================================================================================ */

/* Work (multiply-adds or elements) below which a loop runs on the calling thread: tiny loops cost
 * more in fork/join than they save. Only the thread count changes, never the arithmetic. */
#define PAR_MIN ((int64_t)1 << 16)

/* First error raised inside a parallel region. */
typedef struct par_err {
    dc_status st;
    dc_err err;
} par_err;

static void par_fail(par_err *pe, dc_status st, const dc_err *e)
{
#pragma omp critical(dc_fwd_err)
    {
        if (!pe->st) {
            pe->st = st;
            pe->err = *e;
        }
    }
}

/* Dequantises the whole weight into the cache if the memory budget allows. */
static dc_status mat_try_cache(dc_model *m, mat *w, dc_err *err)
{
    if (w->cache || m->opts.mem_budget == 0)
        return DC_OK;
    uint64_t n, bytes;
    if (!dc_mul_u64((uint64_t)w->w.rows, (uint64_t)w->w.cols, &n) || !dc_mul_u64(n, sizeof(float), &bytes))
        return DC_OK;
    if (m->cached + bytes > m->opts.mem_budget)
        return DC_OK;
    float *buf = malloc(bytes ? bytes : 1);
    if (!buf)
        return DC_OK; /* the cache is optional */
    int64_t rows = w->w.rows, blk = 64;
    par_err pe = {0};
#pragma omp parallel for schedule(static) if (rows * w->w.cols >= PAR_MIN)
    for (int64_t r0 = 0; r0 < rows; r0 += blk) {
        dc_err e;
        int64_t nr = rows - r0 < blk ? rows - r0 : blk;
        dc_status s = dc_weight_rows(&w->w, r0, nr, buf + r0 * w->w.cols, m->opts.deq_mode, &e);
        if (s)
            par_fail(&pe, s, &e);
    }
    if (pe.st) {
        free(buf);
        *err = pe.err;
        return pe.st;
    }
    w->cache = buf;
    m->cached += bytes;
    return DC_OK;
}

/* y[n][rows] = x[n][cols] . W^T: every output is dot(x[t], W[r]). The weight is read from the
 * cache, or dequantised block by block into per-thread scratch. */
static dc_status matmul(dc_model *m, mat *W, const float *x, int64_t n, float *y, dc_err *err)
{
    dc_status st = mat_try_cache(m, W, err);
    if (st)
        return st;
    int64_t rows = W->w.rows, cols = W->w.cols;
    if (n == 0 || rows == 0)
        return DC_OK;
    if (m->hook)
        act(m, W->site.role, W->site.layer, W->site.expert, x, n, 1, cols, cols, 0);
    if (W->cache) {
        const int64_t rb = 16;
        int64_t nb = (rows + rb - 1) / rb;
#pragma omp parallel for schedule(static) if (n * rows * cols >= PAR_MIN)
        for (int64_t b = 0; b < nb; b++) {
            int64_t r0 = b * rb, nr = rows - r0 < rb ? rows - r0 : rb;
            mm_tile(x, n, cols, W->cache + r0 * cols, nr, y + r0, rows);
        }
        return DC_OK;
    }
    /* rows per block: about 256 KiB of f32 weights, an even count (the tile is 2 rows wide) */
    int64_t rb = (256 * 1024 / 4) / (cols ? cols : 1);
    rb = rb < 2 ? 2 : rb > 64 ? 64 : rb & ~(int64_t)1;
    int64_t nb = (rows + rb - 1) / rb;
    par_err pe = {0};
#pragma omp parallel if ((n + 1) * rows * cols >= PAR_MIN)
    {
        float *buf = malloc((size_t)(rb * cols) * sizeof(float));
        if (!buf) {
            dc_err e;
            dc_err_set(&e, DC_ERR_NOMEM, "out of memory dequantising %s", W->w.t->name);
            par_fail(&pe, DC_ERR_NOMEM, &e);
        }
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nb; b++) {
            if (!buf)
                continue;
            int64_t r0 = b * rb, nr = rows - r0 < rb ? rows - r0 : rb;
            dc_err e;
            dc_status s = dc_weight_rows(&W->w, r0, nr, buf, m->opts.deq_mode, &e);
            if (s) {
                par_fail(&pe, s, &e);
                continue;
            }
            mm_tile(x, n, cols, buf, nr, y + r0, rows);
        }
        free(buf);
    }
    if (pe.st) {
        *err = pe.err;
        return pe.st;
    }
    return DC_OK;
}

/* RMSNorm: y = (x * rsqrt(mean(x^2) + eps)) * w, rows of width d with stride ld. eps is always
 * 1e-6 for DeepSeek (NOTES.md 2), the config's rms_norm_eps for the dense archs. */
static void rmsnorm(const float *x, int64_t ldx, const float *w, int64_t n, int64_t d, float *y, int64_t ldy,
                    float eps)
{
#pragma omp parallel for schedule(static) if (n * d >= PAR_MIN)
    for (int64_t t = 0; t < n; t++) {
        const float *xr = x + t * ldx;
        float *yr = y + t * ldy;
        double ss = 0;
        for (int64_t i = 0; i < d; i++)
            ss += (double)xr[i] * xr[i];
        float ms = (float)(ss / (double)d);
        float r = 1.0f / sqrtf(ms + eps);
        for (int64_t i = 0; i < d; i++)
            yr[i] = (xr[i] * r) * w[i];
    }
}

static inline float silu(float v) { return v / (1.0f + expf(-v)); }

/* h1 = silu(h1) * h3, elementwise over n values */
static void swiglu(float *h1, const float *h3, int64_t n)
{
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        h1[i] = silu(h1[i]) * h3[i];
}

/* Rotates interleaved pairs (x[2i], x[2i+1]) by angle[i]: complex multiply by cos + j sin. */
static inline void rope_apply(float *x, const float *cs, const float *sn, int64_t half)
{
    for (int64_t i = 0; i < half; i++) {
        float a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * cs[i] - b * sn[i];
        x[2 * i + 1] = a * sn[i] + b * cs[i];
    }
}

/* ================================================================================================
 * Forward pass
 * ================================================================================================ */

/* Scratch for one forward call over n tokens (all row-major [n][...]). */
typedef struct ws {
    float *x;     /* residual stream       [n][D] */
    float *xn;    /* normed input          [n][D] */
    float *qa;    /* q_a_proj output       [n][qr] */
    float *q;     /* queries               [n][H][dq] (nope | rope) */
    float *kv;    /* kv_a_proj output      [n][c+dr] (latent | shared rope key) */
    float *kvn;   /* normed latent         [n][c] */
    float *kvb;   /* kv_b_proj output      [n][H][dn+dv] (k_nope | v) */
    float *k;     /* keys                  [n][H][dq] (k_nope | rope key) */
    float *o;     /* attention output      [n][H][dv] */
    float *f;     /* block output          [n][D] (o_proj / MLP / MoE) */
    float *y;     /* routed-expert sum     [n][D] */
    float *h1;    /* gate activations      [n][ffn_max] */
    float *h3;    /* up activations        [n][ffn_max] */
    float *xe;    /* tokens of one expert  [n][D] */
    float *oe;    /* one expert's output   [n][D] */
    float *rs;    /* router logits         [n][E] */
    float *cs, *sn; /* RoPE cos / sin      [n][dr/2] */
    int32_t *ridx;  /* routing             [n][K] */
    float *rw;      /* routing weights     [n][K] */
    int64_t *etok;  /* per expert: (token * K + slot) entries, grouped by expert [n*K] */
    int64_t *ecnt;  /* [E + 1] offsets */
} ws;

static void ws_free(ws *w)
{
    free(w->x); free(w->xn); free(w->qa); free(w->q); free(w->kv); free(w->kvn); free(w->kvb); free(w->k);
    free(w->o); free(w->f); free(w->y); free(w->h1); free(w->h3); free(w->xe); free(w->oe); free(w->rs);
    free(w->cs); free(w->sn); free(w->ridx); free(w->rw); free(w->etok); free(w->ecnt);
}

static float *falloc(int64_t n, int64_t d, bool *ok)
{
    uint64_t e, b;
    if (!dc_mul_u64((uint64_t)n, (uint64_t)(d ? d : 1), &e) || !dc_mul_u64(e, sizeof(float), &b) ||
        b > (uint64_t)SIZE_MAX) {
        *ok = false;
        return NULL;
    }
    float *p = malloc((size_t)b);
    if (!p)
        *ok = false;
    return p;
}

static dc_status ws_alloc(const dc_model *m, int64_t n, ws *w, dc_err *err)
{
    memset(w, 0, sizeof *w);
    bool ok = true;
    w->x = falloc(n, m->D, &ok);
    w->xn = falloc(n, m->D, &ok);
    w->qa = falloc(n, m->qr, &ok);
    w->q = falloc(n, m->H * m->dq, &ok);
    w->kv = falloc(n, m->c + m->dr, &ok);
    w->kvn = falloc(n, m->c, &ok);
    w->kvb = falloc(n, m->H * (m->dn + m->dv), &ok);
    w->k = falloc(n, m->H * m->dq, &ok);
    w->o = falloc(n, m->H * m->dv, &ok);
    w->f = falloc(n, m->D, &ok);
    w->h1 = falloc(n, m->ffn_max, &ok);
    w->h3 = falloc(n, m->ffn_max, &ok);
    w->cs = falloc(n, m->dr / 2, &ok);
    w->sn = falloc(n, m->dr / 2, &ok);
    if (m->n_moe) {
        w->y = falloc(n, m->D, &ok);
        w->xe = falloc(n, m->D, &ok);
        w->oe = falloc(n, m->D, &ok);
        w->rs = falloc(n, m->E, &ok);
        w->rw = falloc(n, m->K, &ok);
        w->ridx = (int32_t *)falloc(n, m->K, &ok);
        w->etok = ok ? malloc((size_t)(n * m->K) * sizeof(int64_t)) : NULL;
        w->ecnt = ok ? malloc((size_t)(m->E + 1) * sizeof(int64_t)) : NULL;
        ok = ok && w->etok && w->ecnt;
    }
    if (!ok) {
        ws_free(w);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory: forward-pass buffers for %lld tokens (hidden %lld, "
                          "%lld heads)", (long long)n, (long long)m->D, (long long)m->H);
    }
    return DC_OK;
}

/* ---- DeepSeek-V3.2's sparse-attention indexer (docs/v32.md) ----------------------------------- */

/* NeoX RoPE ("rotate_half") of the first 2*half dims: x[i] and x[i + half] rotated by angle[i]. */
static inline void rope_neox(float *x, const float *cs, const float *sn, int64_t half);

typedef struct iscore {
    float v;
    int32_t t;
} iscore;

/* Descending score, then ascending position: the selection does not depend on the sort. */
static int iscore_cmp(const void *a, const void *b)
{
    const iscore *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return (x->t > y->t) - (x->t < y->t);
}

/* Which keys each query attends to: sel is a bitmap [n][ceil(n/8)], bit t of row s set when key t
 * is among the itopk best-scoring of keys 0..s. The score of key t for query s is
 *   sum_h relu(q_h(s) . k(t)) * w_h(s) / sqrt(iH * iD)
 * with q = wq_b(q latent) [iH][iD], k = LayerNorm(wk(x)) [iD] (weight, bias, eps 1e-6), both with
 * the MLA's rotary frequencies applied NeoX-style to their first dr dims, and w = weights_proj(x).
 * (DeepSeek's inference code also applies an orthonormal Hadamard transform to q and k, which
 * leaves the dot products unchanged, and rounds q and k to FP8 for its kernel; this is the
 * float32 computation, as llama.cpp's.) Queries s < itopk keep every key and are not scored. */
static dc_status indexer_select(dc_model *m, layer *l, ws *w, int64_t n, uint8_t *sel, dc_err *err)
{
    const int64_t iH = m->iH, iD = m->iD, half = m->dr / 2, nb = (n + 7) / 8, topk = m->itopk;
    dc_status st;
    bool ok = true;
    float *iq = falloc(n, iH * iD, &ok), *ik = falloc(n, iD, &ok), *iw = falloc(n, iH, &ok);
    if (!ok) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory: indexer buffers for %lld tokens", (long long)n);
        goto done;
    }
    if ((st = matmul(m, &l->iwq_b, w->qa, n, iq, err)) || (st = matmul(m, &l->iwk, w->xn, n, ik, err)) ||
        (st = matmul(m, &l->iwp, w->xn, n, iw, err)))
        goto done;
    const float wscale = (float)(1.0 / sqrt((double)(iH * iD)));
#pragma omp parallel for schedule(static) if (n * iH * iD >= PAR_MIN)
    for (int64_t t = 0; t < n; t++) {
        float *k = ik + t * iD;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < iD; i++)
            mean += k[i];
        mean /= (double)iD;
        for (int64_t i = 0; i < iD; i++)
            var += ((double)k[i] - mean) * ((double)k[i] - mean);
        float mu = (float)mean, r = 1.0f / sqrtf((float)(var / (double)iD) + 1e-6f);
        for (int64_t i = 0; i < iD; i++)
            k[i] = (k[i] - mu) * r * l->ik_norm[i] + l->ik_norm_b[i];
        rope_neox(k, w->cs + t * half, w->sn + t * half, half);
        for (int64_t h = 0; h < iH; h++)
            rope_neox(iq + (t * iH + h) * iD, w->cs + t * half, w->sn + t * half, half);
        for (int64_t h = 0; h < iH; h++)
            iw[t * iH + h] *= wscale;
    }
    memset(sel, 0, (size_t)(n * nb));
    par_err pe = {0};
#pragma omp parallel if (n * n * iH * iD / 2 >= PAR_MIN)
    {
        iscore *sc = malloc((size_t)n * sizeof *sc);
        if (!sc) {
            dc_err e;
            dc_err_set(&e, DC_ERR_NOMEM, "out of memory (indexer scores)");
            par_fail(&pe, DC_ERR_NOMEM, &e);
        }
#pragma omp for schedule(dynamic, 4)
        for (int64_t s = 0; s < n; s++) {
            if (!sc)
                continue;
            uint8_t *row = sel + s * nb;
            if (s < topk) { /* every key 0..s */
                for (int64_t t = 0; t <= s; t++)
                    row[t >> 3] |= (uint8_t)(1u << (t & 7));
                continue;
            }
            const float *qs = iq + s * iH * iD, *ws_ = iw + s * iH;
            for (int64_t t = 0; t <= s; t++) {
                const float *kt = ik + t * iD;
                float v = 0.0f;
                for (int64_t h = 0; h < iH; h++) {
                    float d = dot1(qs + h * iD, kt, iD);
                    v += (d > 0.0f ? d : 0.0f) * ws_[h];
                }
                sc[t] = (iscore){v == v ? v : -INFINITY, (int32_t)t}; /* NaN (bad weights): ranked last */
            }
            qsort(sc, (size_t)(s + 1), sizeof *sc, iscore_cmp);
            for (int64_t j = 0; j < topk; j++)
                row[sc[j].t >> 3] |= (uint8_t)(1u << (sc[j].t & 7));
        }
        free(sc);
    }
    if (pe.st) {
        *err = pe.err;
        st = pe.st;
    }
done:
    free(iq);
    free(ik);
    free(iw);
    return st;
}

/* ---- MLA attention (NOTES.md 3) -------------------------------------------------------------- */

static dc_status attention(dc_model *m, layer *l, ws *w, int64_t n, dc_err *err)
{
    int64_t H = m->H, dn = m->dn, dr = m->dr, dv = m->dv, dq = m->dq, c = m->c, half = dr / 2;
    int64_t dkv = dn + dv;
    dc_status st;
    /* queries: q = wq(x)  or  wq_b(q_norm(wq_a(x)))   -> [n][H][dq] */
    if (m->qr) {
        if ((st = matmul(m, &l->wq_a, w->xn, n, w->qa, err)))
            return st;
        rmsnorm(w->qa, m->qr, l->q_a_norm, n, m->qr, w->qa, m->qr, m->eps);
        if ((st = matmul(m, &l->wq_b, w->qa, n, w->q, err)))
            return st;
    } else if ((st = matmul(m, &l->wq, w->xn, n, w->q, err))) {
        return st;
    }
    if (m->hook) /* llama.cpp's attn_k_b input: the nope part of each head's query */
        act(m, DC_ACT_K_B, (int)(l - m->layers), -1, w->q, n, H, dn, H * dq, dq);
    /* latent and shared rope key: kv = wkv_a(x) -> [n][c + dr] */
    if ((st = matmul(m, &l->wkv_a, w->xn, n, w->kv, err)))
        return st;
    rmsnorm(w->kv, c + dr, l->kv_a_norm, n, c, w->kvn, c, m->eps);
    /* per-head keys and values: kvb = wkv_b(kv_norm(latent)) -> [n][H][dn + dv] */
    if ((st = matmul(m, &l->wkv_b, w->kvn, n, w->kvb, err)))
        return st;
    /* RoPE on the rope parts; assemble keys [n][H][dn | dr] with the one shared rope key */
#pragma omp parallel for schedule(static) if (n * H * dq >= PAR_MIN)
    for (int64_t t = 0; t < n; t++) {
        float *kpe = w->kv + t * (c + dr) + c;
        rope_apply(kpe, w->cs + t * half, w->sn + t * half, half);
        for (int64_t h = 0; h < H; h++) {
            rope_apply(w->q + (t * H + h) * dq + dn, w->cs + t * half, w->sn + t * half, half);
            float *kr = w->k + (t * H + h) * dq;
            memcpy(kr, w->kvb + (t * H + h) * dkv, (size_t)dn * sizeof(float));
            memcpy(kr + dn, kpe, (size_t)dr * sizeof(float));
        }
    }
    /* V3.2: the keys each query may attend to (all of them while n <= index_topk); SEL(row, t): key t
     * is kept (always without a map) */
#define SEL(row, t) (!(row) || ((row)[(t) >> 3] >> ((t) & 7) & 1))
    uint8_t *sel = NULL;
    const int64_t nb = (n + 7) / 8;
    if (m->iH && n > m->itopk) {
        if (!(sel = dc_malloc((size_t)(n * nb), err)))
            return DC_ERR_NOMEM;
        if ((st = indexer_select(m, l, w, n, sel, err))) {
            free(sel);
            return st;
        }
    }
    /* scores s[t] = (q_s . k_t) * scale for t <= s (and t selected); p = softmax; o = sum_t p[t] v_t */
    float scale = m->softmax_scale;
    par_err pe = {0};
    /* with a hook: also lat = sum_t p[t] kvn_t [n][H][c], llama.cpp's attn_v_b input */
    float *lat = m->hook ? malloc((size_t)(n * H * c) * sizeof(float)) : NULL;
    if (m->hook && !lat) {
        free(sel);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory (latent attention outputs)");
    }
#pragma omp parallel if (n * n * H * (dq + dv) / 2 >= PAR_MIN)
    {
        float *p = malloc((size_t)n * sizeof(float));
        if (!p) {
            dc_err e;
            dc_err_set(&e, DC_ERR_NOMEM, "out of memory (attention scores)");
            par_fail(&pe, DC_ERR_NOMEM, &e);
        }
#pragma omp for schedule(dynamic, 8)
        for (int64_t i = 0; i < n * H; i++) {
            if (!p)
                continue;
            int64_t s = i / H, h = i % H;
            const float *qv = w->q + (s * H + h) * dq;
            float mx = -INFINITY;
            const uint8_t *srow = sel ? sel + s * nb : NULL;
            for (int64_t t = 0; t <= s; t++) {
                if (!SEL(srow, t)) {
                    p[t] = -INFINITY; /* exp gives 0: the key is left out */
                    continue;
                }
                p[t] = dot1(qv, w->k + (t * H + h) * dq, dq) * scale;
                if (p[t] > mx)
                    mx = p[t];
            }
            double sum = 0;
            for (int64_t t = 0; t <= s; t++) {
                p[t] = expf(p[t] - mx);
                sum += p[t];
            }
            float inv = (float)(1.0 / sum);
            float *ov = w->o + (s * H + h) * dv;
            for (int64_t d = 0; d < dv; d++)
                ov[d] = 0.0f;
            for (int64_t t = 0; t <= s; t++) {
                if (!SEL(srow, t))
                    continue; /* a weight of 0: skipping it leaves the same sums */
                float pt = p[t] * inv;
                const float *vv = w->kvb + (t * H + h) * dkv + dn;
                for (int64_t d = 0; d < dv; d++)
                    ov[d] += pt * vv[d];
            }
            if (lat) {
                float *lv = lat + (s * H + h) * c;
                for (int64_t d = 0; d < c; d++)
                    lv[d] = 0.0f;
                for (int64_t t = 0; t <= s; t++) {
                    if (!SEL(srow, t))
                        continue;
                    float pt = p[t] * inv;
                    const float *kv = w->kvn + t * c;
                    for (int64_t d = 0; d < c; d++)
                        lv[d] += pt * kv[d];
                }
            }
        }
        free(p);
    }
    free(sel);
    if (pe.st) {
        free(lat);
        *err = pe.err;
        return pe.st;
    }
    if (lat) {
        act(m, DC_ACT_V_B, (int)(l - m->layers), -1, lat, n, H, c, H * c, c);
        free(lat);
    }
    /* out = wo(o) -> [n][D] */
    return matmul(m, &l->wo, w->o, n, w->f, err);
}
#undef SEL

/* ---- grouped-query attention of the dense archs (transformers' Qwen2Attention / LlamaAttention) -- */

/* y[t][r] += b[r] */
static void add_bias(float *y, const float *b, int64_t n, int64_t d)
{
    if (!b)
        return;
#pragma omp parallel for schedule(static) if (n * d >= PAR_MIN)
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = 0; r < d; r++)
            y[t * d + r] += b[r];
}

/* NeoX RoPE ("rotate_half"): x[i] and x[i + half] are rotated by angle[i],
 * x * cos + rotate_half(x) * sin with rotate_half(x) = (-x2, x1). */
static inline void rope_neox(float *x, const float *cs, const float *sn, int64_t half)
{
    for (int64_t i = 0; i < half; i++) {
        float a = x[i], b = x[i + half];
        x[i] = a * cs[i] - b * sn[i];
        x[i + half] = b * cs[i] + a * sn[i];
    }
}

static dc_status attention_gqa(dc_model *m, layer *l, ws *w, int64_t n, dc_err *err)
{
    int64_t H = m->H, KVH = m->KVH, hd = m->hd, half = hd / 2, rep = H / KVH;
    int64_t dq = H * hd, dkv = KVH * hd;
    float *q = w->q, *k = w->k, *v = w->kvb; /* [n][H*hd], [n][KVH*hd], [n][KVH*hd] */
    dc_status st;
    if ((st = matmul(m, &l->wq, w->xn, n, q, err)) || (st = matmul(m, &l->wk, w->xn, n, k, err)) ||
        (st = matmul(m, &l->wv, w->xn, n, v, err)))
        return st;
    add_bias(q, l->bq, n, dq);
    add_bias(k, l->bk, n, dkv);
    add_bias(v, l->bv, n, dkv);
#pragma omp parallel for schedule(static) if (n * (H + KVH) * hd >= PAR_MIN)
    for (int64_t t = 0; t < n; t++) {
        for (int64_t h = 0; h < H; h++)
            rope_neox(q + t * dq + h * hd, w->cs + t * half, w->sn + t * half, half);
        for (int64_t h = 0; h < KVH; h++)
            rope_neox(k + t * dkv + h * hd, w->cs + t * half, w->sn + t * half, half);
    }
    /* query head h reads key/value head h / rep (transformers' repeat_kv) */
    float scale = m->softmax_scale;
    par_err pe = {0};
#pragma omp parallel if (n * n * H * hd >= PAR_MIN)
    {
        float *p = malloc((size_t)n * sizeof(float));
        if (!p) {
            dc_err e;
            dc_err_set(&e, DC_ERR_NOMEM, "out of memory (attention scores)");
            par_fail(&pe, DC_ERR_NOMEM, &e);
        }
#pragma omp for schedule(dynamic, 8)
        for (int64_t i = 0; i < n * H; i++) {
            if (!p)
                continue;
            int64_t s = i / H, h = i % H, g = h / rep;
            const float *qv = q + s * dq + h * hd;
            float mx = -INFINITY;
            for (int64_t t = 0; t <= s; t++) {
                p[t] = dot1(qv, k + t * dkv + g * hd, hd) * scale;
                if (p[t] > mx)
                    mx = p[t];
            }
            double sum = 0;
            for (int64_t t = 0; t <= s; t++) {
                p[t] = expf(p[t] - mx);
                sum += p[t];
            }
            float inv = (float)(1.0 / sum);
            float *ov = w->o + s * dq + h * hd;
            for (int64_t d = 0; d < hd; d++)
                ov[d] = 0.0f;
            for (int64_t t = 0; t <= s; t++) {
                float pt = p[t] * inv;
                const float *vv = v + t * dkv + g * hd;
                for (int64_t d = 0; d < hd; d++)
                    ov[d] += pt * vv[d];
            }
        }
        free(p);
    }
    if (pe.st) {
        *err = pe.err;
        return pe.st;
    }
    if ((st = matmul(m, &l->wo, w->o, n, w->f, err)))
        return st;
    add_bias(w->f, l->bo, n, m->D);
    return DC_OK;
}

/* ---- SiLU-gated MLP: out = w2(silu(w1 x) * w3 x) --------------------------------------------- */

static dc_status mlp(dc_model *m, mat *w1, mat *w3, mat *w2, const float *x, int64_t n, ws *w, float *out,
                     dc_err *err)
{
    dc_status st;
    int64_t F = w1->w.rows;
    if ((st = matmul(m, w1, x, n, w->h1, err)) || (st = matmul(m, w3, x, n, w->h3, err)))
        return st;
    swiglu(w->h1, w->h3, n * F);
    return matmul(m, w2, w->h1, n, out, err);
}

/* ---- router (NOTES.md 4) --------------------------------------------------------------------- */

/* Picks the k largest of v[0..n) (descending; ties to the lower index) into idx. */
static void topk_desc(const float *v, int64_t n, int64_t k, int32_t *idx)
{
    for (int64_t j = 0; j < k; j++) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++) {
            bool taken = false;
            for (int64_t q = 0; q < j && !taken; q++)
                taken = idx[q] == i;
            if (taken)
                continue;
            if (best < 0 || v[i] > v[best] || (isnan(v[best]) && !isnan(v[i])))
                best = i;
        }
        idx[j] = (int32_t)best;
    }
}

static void route_token(const dc_model *m, const layer *l, float *s, int32_t *idx, float *wt, float *sel,
                        float *gs, int32_t *gi)
{
    const dc_config *c = &m->cfg;
    int64_t E = m->E, K = m->K;
    if (c->scoring_func == DC_SCORE_SOFTMAX) {
        float mx = -INFINITY;
        for (int64_t e = 0; e < E; e++)
            mx = s[e] > mx ? s[e] : mx;
        double sum = 0;
        for (int64_t e = 0; e < E; e++) {
            s[e] = expf(s[e] - mx);
            sum += s[e];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t e = 0; e < E; e++)
            s[e] *= inv;
    } else {
        for (int64_t e = 0; e < E; e++)
            s[e] = 1.0f / (1.0f + expf(-s[e]));
    }
    /* selection scores: biased (selection only) */
    for (int64_t e = 0; e < E; e++)
        sel[e] = l->router_bias ? s[e] + l->router_bias[e] : s[e];
    int64_t G = c->n_group;
    if (G > 1) {
        int64_t gsz = E / G;
        for (int64_t g = 0; g < G; g++) {
            const float *v = sel + g * gsz;
            if (l->router_bias) { /* sum of the two best */
                int32_t t2[2];
                topk_desc(v, gsz, gsz >= 2 ? 2 : 1, t2);
                gs[g] = gsz >= 2 ? v[t2[0]] + v[t2[1]] : v[t2[0]];
            } else {              /* max */
                float mx = v[0];
                for (int64_t i = 1; i < gsz; i++)
                    mx = v[i] > mx ? v[i] : mx;
                gs[g] = mx;
            }
        }
        topk_desc(gs, G, c->topk_group, gi);
        for (int64_t g = 0; g < G; g++) {
            bool keep = false;
            for (int q = 0; q < c->topk_group && !keep; q++)
                keep = gi[q] == g;
            if (!keep)
                for (int64_t i = 0; i < gsz; i++)
                    sel[g * gsz + i] = -INFINITY;
        }
    }
    topk_desc(sel, E, K, idx);
    for (int64_t j = 0; j < K; j++)
        wt[j] = s[idx[j]]; /* unbiased scores */
    if (c->scoring_func == DC_SCORE_SIGMOID) {
        float sum = 0;
        for (int64_t j = 0; j < K; j++)
            sum += wt[j];
        for (int64_t j = 0; j < K; j++)
            wt[j] /= sum;
    }
    float rsf = (float)c->routed_scaling_factor;
    for (int64_t j = 0; j < K; j++)
        wt[j] *= rsf;
}

/* ---- MoE: y = sum_{e chosen} w_e * expert_e(x) + shared(x) ------------------------------------ */

static dc_status moe(dc_model *m, layer *l, ws *w, int64_t n, dc_err *err)
{
    int64_t E = m->E, K = m->K, D = m->D;
    dc_status st;
    if ((st = matmul(m, &l->router, w->xn, n, w->rs, err)))
        return st;
    par_err pe = {0};
#pragma omp parallel if (n * E * 8 >= PAR_MIN)
    {
        float *sel = malloc((size_t)E * sizeof(float));
        float *gs = malloc((size_t)(m->cfg.n_group + 1) * sizeof(float));
        int32_t *gi = malloc((size_t)(m->cfg.n_group + 1) * sizeof(int32_t));
        if (!sel || !gs || !gi) {
            dc_err e;
            dc_err_set(&e, DC_ERR_NOMEM, "out of memory (router)");
            par_fail(&pe, DC_ERR_NOMEM, &e);
        }
#pragma omp for schedule(static)
        for (int64_t t = 0; t < n; t++)
            if (sel && gs && gi)
                route_token(m, l, w->rs + t * E, w->ridx + t * K, w->rw + t * K, sel, gs, gi);
        free(sel);
        free(gs);
        free(gi);
    }
    if (pe.st) {
        *err = pe.err;
        return pe.st;
    }
    /* group (token, slot) pairs by expert, tokens ascending */
    memset(w->ecnt, 0, (size_t)(E + 1) * sizeof(int64_t));
    for (int64_t i = 0; i < n * K; i++)
        w->ecnt[w->ridx[i] + 1]++;
    for (int64_t e = 0; e < E; e++)
        w->ecnt[e + 1] += w->ecnt[e];
    {
        int64_t *fill = calloc((size_t)E, sizeof(int64_t));
        if (!fill)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory (expert lists)");
        for (int64_t i = 0; i < n * K; i++) {
            int64_t e = w->ridx[i];
            w->etok[w->ecnt[e] + fill[e]++] = i;
        }
        free(fill);
    }
    /* routed experts, in expert-id order (model.py's loop): y[tok] += expert(x[tok]) * weight */
    memset(w->y, 0, (size_t)(n * D) * sizeof(float));
    for (int64_t e = 0; e < E; e++) {
        int64_t b = w->ecnt[e], ne = w->ecnt[e + 1] - b;
        if (!ne)
            continue;
        for (int64_t j = 0; j < ne; j++)
            memcpy(w->xe + j * D, w->xn + (w->etok[b + j] / K) * D, (size_t)D * sizeof(float));
        if ((st = mlp(m, &l->ew1[e], &l->ew3[e], &l->ew2[e], w->xe, ne, w, w->oe, err)))
            return st;
#pragma omp parallel for schedule(static) if (ne * D >= PAR_MIN)
        for (int64_t j = 0; j < ne; j++) {
            int64_t slot = w->etok[b + j];
            float wt = w->rw[slot];
            float *yr = w->y + (slot / K) * D;
            const float *orow = w->oe + j * D;
            for (int64_t d = 0; d < D; d++)
                yr[d] += orow[d] * wt;
        }
    }
    /* shared experts: one MLP of width n_shared * mi; out = y + z */
    if (l->has_mlp) {
        if ((st = mlp(m, &l->w1, &l->w3, &l->w2, w->xn, n, w, w->f, err)))
            return st;
#pragma omp parallel for schedule(static) if (n * D >= PAR_MIN)
        for (int64_t i = 0; i < n * D; i++)
            w->f[i] = w->y[i] + w->f[i];
    } else {
        memcpy(w->f, w->y, (size_t)(n * D) * sizeof(float));
    }
    return DC_OK;
}

static void add_inplace(float *x, const float *f, int64_t n)
{
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        x[i] = x[i] + f[i];
}

void dc_routing_free(dc_routing *r)
{
    if (!r)
        return;
    free(r->layer);
    free(r->idx);
    free(r->w);
    memset(r, 0, sizeof *r);
}

/* The MTP module (DeepSeek-V3 technical report 2.2; vLLM's / SGLang's DeepSeek MTP layers): at
 * position i < n-1 it combines the main model's final (normed) hidden state h_i, found in w->xn, with
 * the embedding of token i+1: x = eh_proj([enorm(emb(t_{i+1})); hnorm(h_i)]), then one transformer
 * block (MLA + MoE) over positions 0..n-2. Only its routing is recorded (the last routed layer of rt;
 * token n-1 gets ids -1); its head is not evaluated. */
static dc_status mtp_block(dc_model *m, const int32_t *tokens, int64_t n, ws *w, dc_routing *rt, dc_err *err)
{
    const int64_t D = m->D, K = m->K, n2 = n - 1;
    const int slot = m->n_moe - 1;
    layer *l = &m->layers[m->n_layers];
    int32_t *ridx = rt->idx + (int64_t)slot * n * K;
    float *rw = rt->w + (int64_t)slot * n * K;
    for (int64_t k = 0; k < n * K; k++) {
        ridx[k] = -1;
        rw[k] = 0;
    }
    if (n2 < 1 || !l->moe)
        return DC_OK;
    float *cat = dc_malloc((size_t)(n2 * 2 * D) * sizeof *cat, err), *e = dc_malloc((size_t)D * sizeof *e, err);
    if (!cat || !e) {
        free(cat);
        free(e);
        return DC_ERR_NOMEM;
    }
    const mat *emb = m->mtp_embed.w.t ? &m->mtp_embed : &m->embed;
    dc_status st = DC_OK;
    for (int64_t i = 0; i < n2 && !st; i++) {
        st = dc_weight_rows(&emb->w, tokens[i + 1], 1, e, m->opts.deq_mode, err);
        if (!st) {
            rmsnorm(e, D, m->mtp_enorm, 1, D, cat + i * 2 * D, 2 * D, m->eps);
            rmsnorm(w->xn + i * D, D, m->mtp_hnorm, 1, D, cat + i * 2 * D + D, 2 * D, m->eps);
        }
    }
    free(e);
    if (!st)
        st = matmul(m, &m->mtp_eh, cat, n2, w->x, err);
    free(cat);
    if (st)
        return st;
    rmsnorm(w->x, D, l->attn_norm, n2, D, w->xn, D, m->eps);
    if ((st = attention(m, l, w, n2, err)))
        goto fail;
    add_inplace(w->x, w->f, n2 * D);
    rmsnorm(w->x, D, l->ffn_norm, n2, D, w->xn, D, m->eps);
    if ((st = moe(m, l, w, n2, err)))
        goto fail;
    memcpy(ridx, w->ridx, (size_t)(n2 * K) * sizeof(int32_t));
    memcpy(rw, w->rw, (size_t)(n2 * K) * sizeof(float));
    return DC_OK;
fail:
    dc_err_prefix(err, "MTP layer %d", m->n_layers);
    return st;
}

/* RoPE angles for positions 0..n-1: float32(t) * freq[i], in float32 */
static void rope_tables(const dc_model *m, ws *w, int64_t n)
{
    const int64_t half = m->dr / 2;
#pragma omp parallel for schedule(static) if (n * half >= PAR_MIN / 16)
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < half; i++) {
            float a = (float)t * m->freqs[i];
            w->cs[t * half + i] = cosf(a);
            w->sn[t * half + i] = sinf(a);
        }
}

/* embeddings: plain row lookup into w->x */
static dc_status embed_rows(dc_model *m, const int32_t *tokens, int64_t n, ws *w, dc_err *err)
{
    const int64_t D = m->D;
    par_err pe = {0};
#pragma omp parallel for schedule(static) if (n * D >= PAR_MIN)
    for (int64_t t = 0; t < n; t++) {
        dc_err e;
        dc_status s = dc_weight_rows(&m->embed.w, tokens[t], 1, w->x + t * D, m->opts.deq_mode, &e);
        if (s)
            par_fail(&pe, s, &e);
    }
    if (pe.st)
        *err = pe.err;
    return pe.st;
}

/* One decoder layer on w->x in place (routing, for a MoE layer, left in w->ridx / w->rw). */
static dc_status run_layer(dc_model *m, int li, ws *w, int64_t n, dc_err *err)
{
    const int64_t D = m->D;
    layer *l = &m->layers[li];
    dc_status st;
    /* x = x + attn(attn_norm(x)) */
    rmsnorm(w->x, D, l->attn_norm, n, D, w->xn, D, m->eps);
    if ((st = m->dense ? attention_gqa(m, l, w, n, err) : attention(m, l, w, n, err)))
        goto fail;
    add_inplace(w->x, w->f, n * D);
    /* x = x + ffn(ffn_norm(x)) */
    rmsnorm(w->x, D, l->ffn_norm, n, D, w->xn, D, m->eps);
    if (l->moe)
        st = moe(m, l, w, n, err);
    else
        st = mlp(m, &l->w1, &l->w3, &l->w2, w->xn, n, w, w->f, err);
    if (st)
        goto fail;
    add_inplace(w->x, w->f, n * D);
    return DC_OK;
fail:
    dc_err_prefix(err, "layer %d", li);
    return st;
}

static dc_status routing_alloc(const dc_model *m, int64_t n, dc_routing *rt, dc_err *err)
{
    const int64_t K = m->K;
    memset(rt, 0, sizeof *rt);
    rt->n_layers = m->n_moe;
    rt->n_tokens = n;
    rt->top_k = (int)K;
    rt->layer = malloc((size_t)(m->n_moe ? m->n_moe : 1) * sizeof(int));
    rt->idx = malloc((size_t)(m->n_moe ? m->n_moe * n * K : 1) * sizeof(int32_t));
    rt->w = malloc((size_t)(m->n_moe ? m->n_moe * n * K : 1) * sizeof(float));
    if (!rt->layer || !rt->idx || !rt->w) {
        dc_routing_free(rt);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory (routing record)");
    }
    memcpy(rt->layer, m->moe_layers, (size_t)m->n_moe * sizeof(int));
    return DC_OK;
}

static dc_status check_tokens(const dc_model *m, const int32_t *tokens, int64_t n, dc_err *err)
{
    if (n <= 0)
        return dc_err_set(err, DC_ERR_INPUT, "forward: no tokens");
    for (int64_t t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= m->V)
            return dc_err_set(err, DC_ERR_INPUT, "forward: token %d at position %lld is outside the vocabulary "
                              "[0, %lld)", tokens[t], (long long)t, (long long)m->V);
    return DC_OK;
}

dc_status dc_forward(dc_model *m, const int32_t *tokens, int64_t n, dc_fwd_out *out, dc_err *err)
{
    dc_status st = check_tokens(m, tokens, n, err);
    if (st)
        return st;
    int64_t D = m->D, K = m->K;
    ws w;
    st = ws_alloc(m, n, &w, err);
    if (st)
        return st;
    dc_routing *rt = out ? out->routing : NULL;
    if (rt && (st = routing_alloc(m, n, rt, err))) {
        ws_free(&w);
        return st;
    }
    float *hid = out ? out->hidden : NULL;
    int64_t stage = n * D;
    rope_tables(m, &w, n);
    if ((st = embed_rows(m, tokens, n, &w, err)))
        goto done;
    if (hid)
        memcpy(hid, w.x, (size_t)stage * sizeof(float));

    int moe_i = 0;
    for (int li = 0; li < m->n_layers; li++) {
        if ((st = run_layer(m, li, &w, n, err)))
            goto done;
        if (m->layers[li].moe) {
            if (rt) {
                memcpy(rt->idx + moe_i * n * K, w.ridx, (size_t)(n * K) * sizeof(int32_t));
                memcpy(rt->w + moe_i * n * K, w.rw, (size_t)(n * K) * sizeof(float));
            }
            moe_i++;
        }
        if (hid)
            memcpy(hid + (int64_t)(li + 1) * stage, w.x, (size_t)stage * sizeof(float));
    }
    /* logits = head(norm(x)) */
    rmsnorm(w.x, D, m->final_norm, n, D, w.xn, D, m->eps);
    if (hid)
        memcpy(hid + (int64_t)(m->n_layers + 1) * stage, w.xn, (size_t)stage * sizeof(float));
    if (out && out->logits && (st = matmul(m, &m->head, w.xn, n, out->logits, err)))
        goto done;
    if (m->n_mtp && rt)
        st = mtp_block(m, tokens, n, &w, rt, err);
done:
    ws_free(&w);
    if (st && rt)
        dc_routing_free(rt);
    return st;
}

/* ---- layer by layer ------------------------------------------------------------------------ */

struct dc_fwd_state {
    int32_t *tokens;
    int64_t n;
    float *x;   /* [n][D]: the residual stream after the layers run so far */
    int next;   /* the next layer to run; n_layers: the MTP layer (if any) */
};

int dc_model_n_layers(const dc_model *m) { return m->n_layers; }
const float *dc_fwd_state_hidden(const dc_fwd_state *s) { return s->x; }
bool dc_model_has_mtp(const dc_model *m) { return m->n_mtp > 0; }

void dc_fwd_state_free(dc_fwd_state *s)
{
    if (!s)
        return;
    free(s->tokens);
    free(s->x);
    free(s);
}

dc_status dc_fwd_state_new(dc_model *m, const int32_t *tokens, int64_t n, dc_fwd_state **out, dc_err *err)
{
    *out = NULL;
    dc_status st = check_tokens(m, tokens, n, err);
    if (st)
        return st;
    dc_fwd_state *s = dc_calloc(1, sizeof *s, err);
    if (!s)
        return DC_ERR_NOMEM;
    bool ok = true;
    s->n = n;
    s->tokens = malloc((size_t)n * sizeof *s->tokens);
    s->x = falloc(n, m->D, &ok);
    if (!s->tokens || !ok) {
        dc_fwd_state_free(s);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory: hidden state of %lld tokens", (long long)n);
    }
    memcpy(s->tokens, tokens, (size_t)n * sizeof *s->tokens);
    ws w = {0};
    w.x = s->x;
    st = embed_rows(m, tokens, n, &w, err);
    if (st) {
        dc_fwd_state_free(s);
        return st;
    }
    *out = s;
    return DC_OK;
}

dc_status dc_fwd_state_step(dc_model *m, dc_fwd_state *s, dc_err *err)
{
    const int64_t n = s->n, D = m->D;
    if (s->next > m->n_layers || (s->next == m->n_layers && !m->n_mtp))
        return dc_err_set(err, DC_ERR_INTERNAL, "forward: no layer %d to run", s->next);
    ws w;
    dc_status st = ws_alloc(m, n, &w, err);
    if (st)
        return st;
    rope_tables(m, &w, n);
    memcpy(w.x, s->x, (size_t)(n * D) * sizeof(float));
    if (s->next < m->n_layers) {
        if (!(st = run_layer(m, s->next, &w, n, err)))
            memcpy(s->x, w.x, (size_t)(n * D) * sizeof(float));
    } else { /* the MTP layer reads the final norm of the main model's output */
        dc_routing rt;
        rmsnorm(w.x, D, m->final_norm, n, D, w.xn, D, m->eps);
        if (!(st = routing_alloc(m, n, &rt, err))) {
            st = mtp_block(m, s->tokens, n, &w, &rt, err);
            dc_routing_free(&rt);
        }
    }
    ws_free(&w);
    if (!st)
        s->next++;
    return st;
}
