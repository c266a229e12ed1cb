#include "dc_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *ROLE_NAMES[DC_ROLE_COUNT] = {
    "unknown", "embed", "lm_head", "final_norm", "attn_norm", "ffn_norm",
    "q_proj", "q_a_proj", "q_a_norm", "q_b_proj", "kv_a_proj", "kv_a_norm", "kv_b_proj", "o_proj",
    "mlp_gate", "mlp_up", "mlp_down", "router", "router_bias",
    "expert_gate", "expert_up", "expert_down", "shexp_gate", "shexp_up", "shexp_down",
    "mtp_embed", "mtp_enorm", "mtp_hnorm", "mtp_eh_proj", "mtp_head_norm", "mtp_head",
    "k_proj", "v_proj", "q_bias", "k_bias", "v_bias", "o_bias",
    "experts_gate_up", "experts_down",
    "indexer_wq_b", "indexer_wk", "indexer_k_norm", "indexer_k_norm_bias", "indexer_weights_proj",
};

const char *dc_role_name(dc_role r) { return (unsigned)r < DC_ROLE_COUNT ? ROLE_NAMES[r] : "unknown"; }

/* Layer-level suffixes (after "model.layers.N."), with the architectures that have them. */
enum { DS = 1, DENSE = 2, DSA = 4 /* deepseek_v32's indexer */ };
static const struct { const char *suffix; dc_role role; int archs; } LAYER_SUFFIX[] = {
    {"input_layernorm.weight", DC_ROLE_ATTN_NORM, DS | DENSE},
    {"post_attention_layernorm.weight", DC_ROLE_FFN_NORM, DS | DENSE},
    {"self_attn.q_proj.weight", DC_ROLE_Q_PROJ, DS | DENSE},
    {"self_attn.q_a_proj.weight", DC_ROLE_Q_A_PROJ, DS},
    {"self_attn.q_a_layernorm.weight", DC_ROLE_Q_A_NORM, DS},
    {"self_attn.q_b_proj.weight", DC_ROLE_Q_B_PROJ, DS},
    {"self_attn.kv_a_proj_with_mqa.weight", DC_ROLE_KV_A_PROJ, DS},
    {"self_attn.kv_a_layernorm.weight", DC_ROLE_KV_A_NORM, DS},
    {"self_attn.kv_b_proj.weight", DC_ROLE_KV_B_PROJ, DS},
    {"self_attn.o_proj.weight", DC_ROLE_O_PROJ, DS | DENSE},
    {"mlp.gate_proj.weight", DC_ROLE_MLP_GATE, DS | DENSE},
    {"mlp.up_proj.weight", DC_ROLE_MLP_UP, DS | DENSE},
    {"mlp.down_proj.weight", DC_ROLE_MLP_DOWN, DS | DENSE},
    {"mlp.gate.weight", DC_ROLE_ROUTER, DS},
    {"mlp.gate.e_score_correction_bias", DC_ROLE_ROUTER_BIAS, DS},
    {"mlp.shared_experts.gate_proj.weight", DC_ROLE_SHEXP_GATE, DS},
    {"mlp.shared_experts.up_proj.weight", DC_ROLE_SHEXP_UP, DS},
    {"mlp.shared_experts.down_proj.weight", DC_ROLE_SHEXP_DOWN, DS},
    {"embed_tokens.weight", DC_ROLE_MTP_EMBED, DS},
    {"enorm.weight", DC_ROLE_MTP_ENORM, DS},
    {"hnorm.weight", DC_ROLE_MTP_HNORM, DS},
    {"eh_proj.weight", DC_ROLE_MTP_EH_PROJ, DS},
    {"shared_head.norm.weight", DC_ROLE_MTP_HEAD_NORM, DS},
    {"shared_head.head.weight", DC_ROLE_MTP_HEAD, DS},
    {"self_attn.k_proj.weight", DC_ROLE_K_PROJ, DENSE},
    {"self_attn.v_proj.weight", DC_ROLE_V_PROJ, DENSE},
    {"self_attn.q_proj.bias", DC_ROLE_Q_BIAS, DENSE},
    {"self_attn.k_proj.bias", DC_ROLE_K_BIAS, DENSE},
    {"self_attn.v_proj.bias", DC_ROLE_V_BIAS, DENSE},
    {"self_attn.o_proj.bias", DC_ROLE_O_BIAS, DENSE},
    {"self_attn.indexer.wq_b.weight", DC_ROLE_IDX_WQ_B, DSA},
    {"self_attn.indexer.wk.weight", DC_ROLE_IDX_WK, DSA},
    {"self_attn.indexer.k_norm.weight", DC_ROLE_IDX_K_NORM, DSA},
    {"self_attn.indexer.k_norm.bias", DC_ROLE_IDX_K_NORM_BIAS, DSA},
    {"self_attn.indexer.weights_proj.weight", DC_ROLE_IDX_WEIGHTS_PROJ, DSA},
};
#define N_LAYER_SUFFIX (sizeof LAYER_SUFFIX / sizeof LAYER_SUFFIX[0])

bool dc_role_is_fp8(dc_role r)
{
    switch (r) {
    case DC_ROLE_Q_PROJ: case DC_ROLE_Q_A_PROJ: case DC_ROLE_Q_B_PROJ: case DC_ROLE_KV_A_PROJ:
    case DC_ROLE_KV_B_PROJ: case DC_ROLE_O_PROJ: case DC_ROLE_MLP_GATE: case DC_ROLE_MLP_UP:
    case DC_ROLE_MLP_DOWN: case DC_ROLE_EXP_GATE: case DC_ROLE_EXP_UP: case DC_ROLE_EXP_DOWN:
    case DC_ROLE_SHEXP_GATE: case DC_ROLE_SHEXP_UP: case DC_ROLE_SHEXP_DOWN:
    case DC_ROLE_K_PROJ: case DC_ROLE_V_PROJ:
    case DC_ROLE_EXPS_GATE_UP: case DC_ROLE_EXPS_DOWN:
    case DC_ROLE_IDX_WQ_B: case DC_ROLE_IDX_WK:
        return true;
    default:
        return false;
    }
}

static bool is_mtp_only(dc_role r) { return r >= DC_ROLE_MTP_EMBED && r <= DC_ROLE_MTP_HEAD; }

/* Parses a decimal index at *p; advances; rejects leading zeros and overflow. */
static bool parse_index(const char **p, int *out)
{
    const char *s = *p;
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
        return false;
    long v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > 1000000000)
            return false;
        s++;
    }
    *out = (int)v;
    *p = s;
    return true;
}

bool dc_name_parse(const dc_config *c, const char *name, dc_name_info *info)
{
    memset(info, 0, sizeof *info);
    info->layer = info->expert = -1;
    char buf[512];
    size_t len = strlen(name);
    if (len >= sizeof buf)
        return false;
    memcpy(buf, name, len + 1);
    const char *SC = "_scale_inv";
    if (dc_str_ends_with(buf, ".weight_scale_inv") || dc_str_ends_with(buf, ".experts.gate_up_proj_scale_inv") ||
        dc_str_ends_with(buf, ".experts.down_proj_scale_inv")) {
        buf[len - strlen(SC)] = 0;
        info->is_scale = true;
    }
    const char *n = buf;
    bool dense = dc_arch_dense(c->arch);
    int mask = dense ? DENSE : c->index_n_heads ? DS | DSA : DS;
    if (!strcmp(n, "model.embed_tokens.weight")) info->role = DC_ROLE_EMBED;
    else if (!strcmp(n, "lm_head.weight")) info->role = DC_ROLE_LM_HEAD;
    else if (!strcmp(n, "model.norm.weight")) info->role = DC_ROLE_FINAL_NORM;
    else if (!strncmp(n, "model.layers.", 13)) {
        const char *p = n + 13;
        if (!parse_index(&p, &info->layer) || *p != '.')
            return false;
        p++;
        if (dense && info->layer >= c->n_layers)
            return false;
        if (!dense && (!strcmp(p, "mlp.experts.gate_up_proj") || !strcmp(p, "mlp.experts.down_proj"))) {
            info->role = p[12] == 'g' ? DC_ROLE_EXPS_GATE_UP : DC_ROLE_EXPS_DOWN;
        } else if (!dense && !strncmp(p, "mlp.experts.", 12)) {
            const char *q = p + 12;
            if (!parse_index(&q, &info->expert) || *q != '.')
                return false;
            q++;
            if (!strcmp(q, "gate_proj.weight")) info->role = DC_ROLE_EXP_GATE;
            else if (!strcmp(q, "up_proj.weight")) info->role = DC_ROLE_EXP_UP;
            else if (!strcmp(q, "down_proj.weight")) info->role = DC_ROLE_EXP_DOWN;
            else return false;
        } else {
            for (size_t i = 0; i < N_LAYER_SUFFIX; i++)
                if ((LAYER_SUFFIX[i].archs & mask) && !strcmp(p, LAYER_SUFFIX[i].suffix)) {
                    info->role = LAYER_SUFFIX[i].role;
                    break;
                }
            if (!info->role)
                return false;
        }
        info->is_mtp = info->layer >= c->n_layers;
        if (is_mtp_only(info->role) && !info->is_mtp)
            return false;
    } else
        return false;
    if (info->is_scale && !dc_role_is_fp8(info->role))
        return false;
    return true;
}

void dc_name_build(const dc_name_info *info, char *buf, size_t cap)
{
    const char *sc = info->is_scale ? "_scale_inv" : "";
    switch (info->role) {
    case DC_ROLE_EMBED: snprintf(buf, cap, "model.embed_tokens.weight%s", sc); return;
    case DC_ROLE_LM_HEAD: snprintf(buf, cap, "lm_head.weight%s", sc); return;
    case DC_ROLE_FINAL_NORM: snprintf(buf, cap, "model.norm.weight%s", sc); return;
    case DC_ROLE_EXP_GATE: case DC_ROLE_EXP_UP: case DC_ROLE_EXP_DOWN:
        snprintf(buf, cap, "model.layers.%d.mlp.experts.%d.%s_proj.weight%s", info->layer, info->expert,
                 info->role == DC_ROLE_EXP_GATE ? "gate" : info->role == DC_ROLE_EXP_UP ? "up" : "down", sc);
        return;
    case DC_ROLE_EXPS_GATE_UP: case DC_ROLE_EXPS_DOWN:
        snprintf(buf, cap, "model.layers.%d.mlp.experts.%s%s", info->layer,
                 info->role == DC_ROLE_EXPS_GATE_UP ? "gate_up_proj" : "down_proj", sc);
        return;
    default:
        for (size_t i = 0; i < N_LAYER_SUFFIX; i++)
            if (LAYER_SUFFIX[i].role == info->role) {
                snprintf(buf, cap, "model.layers.%d.%s%s", info->layer, LAYER_SUFFIX[i].suffix, sc);
                return;
            }
        snprintf(buf, cap, "?");
    }
}

typedef struct elist {
    dc_expect *v;
    size_t n, cap;
    bool scales, fused;
    int br, bc;
    bool oom;
} elist;

static void push(elist *l, dc_role role, int layer, int expert, int ndim, int64_t d0, int64_t d1)
{
    if (l->oom)
        return;
    for (int k = 0; k < 2; k++) {
        bool fp8 = dc_role_is_fp8(role);
        if (k == 1 && !(fp8 && l->scales))
            break;
        if (!dc_grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v)) {
            l->oom = true;
            return;
        }
        dc_expect *e = &l->v[l->n];
        memset(e, 0, sizeof *e);
        e->info.role = role;
        e->info.layer = layer;
        e->info.expert = expert;
        e->info.is_scale = k == 1;
        e->fp8 = fp8 && k == 0;
        e->ndim = ndim;
        if (k == 0) {
            e->shape[0] = d0;
            e->shape[1] = d1;
        } else {
            e->shape[0] = (d0 + l->br - 1) / l->br;
            e->shape[1] = (d1 + l->bc - 1) / l->bc;
        }
        char buf[256];
        dc_name_build(&e->info, buf, sizeof buf);
        e->name = dc_strdup(buf);
        if (!e->name) {
            l->oom = true;
            return;
        }
        l->n++;
    }
}

/* A fused routed-expert tensor [E, d1, d2] (FP8 in the release) and its stacked scale: gate_up's
 * is gate's block rows then up's, [E, 2*ceil(I/br), ceil(H/bc)]. */
static void push_fused(elist *l, dc_role role, int layer, int64_t E, int64_t d1, int64_t d2)
{
    size_t n0 = l->n;
    push(l, role, layer, -1, 2, d1, d2);
    for (size_t k = n0; !l->oom && k < l->n; k++) {
        dc_expect *e = &l->v[k];
        e->ndim = 3;
        if (!e->info.is_scale) {
            e->shape[0] = E;
            e->shape[1] = d1;
            e->shape[2] = d2;
        } else {
            int64_t r = role == DC_ROLE_EXPS_GATE_UP ? 2 * ((d1 / 2 + l->br - 1) / l->br) : (d1 + l->br - 1) / l->br;
            e->shape[0] = E;
            e->shape[1] = r;
            e->shape[2] = (d2 + l->bc - 1) / l->bc;
        }
    }
}

/* A dense GQA decoder layer, in Hugging Face's state-dict order (weights, then their biases). */
static void push_dense_layer(elist *l, const dc_config *c, int i)
{
    int64_t H = c->hidden_size, q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    push(l, DC_ROLE_ATTN_NORM, i, -1, 1, H, 0);
    push(l, DC_ROLE_Q_PROJ, i, -1, 2, q, H);
    if (c->attn_qkv_bias)
        push(l, DC_ROLE_Q_BIAS, i, -1, 1, q, 0);
    push(l, DC_ROLE_K_PROJ, i, -1, 2, kv, H);
    if (c->attn_qkv_bias)
        push(l, DC_ROLE_K_BIAS, i, -1, 1, kv, 0);
    push(l, DC_ROLE_V_PROJ, i, -1, 2, kv, H);
    if (c->attn_qkv_bias)
        push(l, DC_ROLE_V_BIAS, i, -1, 1, kv, 0);
    push(l, DC_ROLE_O_PROJ, i, -1, 2, H, q);
    if (c->attn_o_bias)
        push(l, DC_ROLE_O_BIAS, i, -1, 1, H, 0);
    push(l, DC_ROLE_FFN_NORM, i, -1, 1, H, 0);
    push(l, DC_ROLE_MLP_GATE, i, -1, 2, c->intermediate_size, H);
    push(l, DC_ROLE_MLP_UP, i, -1, 2, c->intermediate_size, H);
    push(l, DC_ROLE_MLP_DOWN, i, -1, 2, H, c->intermediate_size);
}

static void push_layer(elist *l, const dc_config *c, int i)
{
    if (dc_arch_dense(c->arch)) {
        push_dense_layer(l, c, i);
        return;
    }
    int64_t H = c->hidden_size, nh = c->n_heads;
    int64_t qd = c->qk_nope_head_dim + c->qk_rope_head_dim;
    push(l, DC_ROLE_ATTN_NORM, i, -1, 1, H, 0);
    if (c->q_lora_rank) {
        push(l, DC_ROLE_Q_A_PROJ, i, -1, 2, c->q_lora_rank, H);
        push(l, DC_ROLE_Q_A_NORM, i, -1, 1, c->q_lora_rank, 0);
        push(l, DC_ROLE_Q_B_PROJ, i, -1, 2, nh * qd, c->q_lora_rank);
    } else {
        push(l, DC_ROLE_Q_PROJ, i, -1, 2, nh * qd, H);
    }
    push(l, DC_ROLE_KV_A_PROJ, i, -1, 2, c->kv_lora_rank + c->qk_rope_head_dim, H);
    push(l, DC_ROLE_KV_A_NORM, i, -1, 1, c->kv_lora_rank, 0);
    push(l, DC_ROLE_KV_B_PROJ, i, -1, 2, nh * (c->qk_nope_head_dim + c->v_head_dim), c->kv_lora_rank);
    push(l, DC_ROLE_O_PROJ, i, -1, 2, H, nh * c->v_head_dim);
    if (c->index_n_heads) {
        int64_t di = c->index_head_dim;
        push(l, DC_ROLE_IDX_WQ_B, i, -1, 2, (int64_t)c->index_n_heads * di, c->q_lora_rank);
        push(l, DC_ROLE_IDX_WK, i, -1, 2, di, H);
        push(l, DC_ROLE_IDX_K_NORM, i, -1, 1, di, 0);
        push(l, DC_ROLE_IDX_K_NORM_BIAS, i, -1, 1, di, 0);
        push(l, DC_ROLE_IDX_WEIGHTS_PROJ, i, -1, 2, c->index_n_heads, H);
    }
    push(l, DC_ROLE_FFN_NORM, i, -1, 1, H, 0);
    if (!dc_config_layer_is_moe(c, i)) {
        push(l, DC_ROLE_MLP_GATE, i, -1, 2, c->intermediate_size, H);
        push(l, DC_ROLE_MLP_UP, i, -1, 2, c->intermediate_size, H);
        push(l, DC_ROLE_MLP_DOWN, i, -1, 2, H, c->intermediate_size);
        return;
    }
    int64_t mi = c->moe_intermediate_size;
    push(l, DC_ROLE_ROUTER, i, -1, 2, c->n_experts_routed, H);
    if (c->has_router_bias)
        push(l, DC_ROLE_ROUTER_BIAS, i, -1, 1, c->n_experts_routed, 0);
    if (l->fused) {
        push_fused(l, DC_ROLE_EXPS_GATE_UP, i, c->n_experts_routed, 2 * mi, H);
        push_fused(l, DC_ROLE_EXPS_DOWN, i, c->n_experts_routed, H, mi);
    }
    for (int e = 0; !l->fused && e < c->n_experts_routed; e++) {
        push(l, DC_ROLE_EXP_GATE, i, e, 2, mi, H);
        push(l, DC_ROLE_EXP_UP, i, e, 2, mi, H);
        push(l, DC_ROLE_EXP_DOWN, i, e, 2, H, mi);
    }
    if (c->n_experts_shared) {
        int64_t si = mi * c->n_experts_shared;
        push(l, DC_ROLE_SHEXP_GATE, i, -1, 2, si, H);
        push(l, DC_ROLE_SHEXP_UP, i, -1, 2, si, H);
        push(l, DC_ROLE_SHEXP_DOWN, i, -1, 2, H, si);
    }
}

dc_status dc_expect_build(const dc_config *c, bool with_scales, dc_expect **list, size_t *n, dc_err *err)
{
    return dc_expect_build_fused(c, with_scales, false, list, n, err);
}

dc_status dc_expect_build_fused(const dc_config *c, bool with_scales, bool fused_experts, dc_expect **list, size_t *n,
                                dc_err *err)
{
    elist l = {0};
    l.scales = with_scales;
    l.fused = fused_experts;
    l.br = c->block_rows ? c->block_rows : 128;
    l.bc = c->block_cols ? c->block_cols : 128;
    int64_t H = c->hidden_size, V = c->vocab_size;
    push(&l, DC_ROLE_EMBED, -1, -1, 2, V, H);
    for (int i = 0; i < c->n_layers; i++)
        push_layer(&l, c, i);
    push(&l, DC_ROLE_FINAL_NORM, -1, -1, 1, H, 0);
    if (!c->tie_word_embeddings)
        push(&l, DC_ROLE_LM_HEAD, -1, -1, 2, V, H);
    for (int k = 0; k < c->n_mtp_layers; k++) {
        int i = c->n_layers + k;
        push(&l, DC_ROLE_MTP_EMBED, i, -1, 2, V, H);
        push(&l, DC_ROLE_MTP_ENORM, i, -1, 1, H, 0);
        push(&l, DC_ROLE_MTP_HNORM, i, -1, 1, H, 0);
        push(&l, DC_ROLE_MTP_EH_PROJ, i, -1, 2, H, 2 * H);
        push_layer(&l, c, i);
        push(&l, DC_ROLE_MTP_HEAD_NORM, i, -1, 1, H, 0);
        push(&l, DC_ROLE_MTP_HEAD, i, -1, 2, V, H);
    }
    for (size_t i = 0; i < l.n; i++)
        l.v[i].info.is_mtp = l.v[i].info.layer >= c->n_layers;
    if (l.oom) {
        dc_expect_free(l.v, l.n);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory building the expected tensor list");
    }
    *list = l.v;
    *n = l.n;
    return DC_OK;
}

void dc_expect_free(dc_expect *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i].name);
    free(list);
}
