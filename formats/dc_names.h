/* Tensor naming: Hugging Face names of the DeepSeek families (and of the dense Qwen2 / Llama
 * decoders of the distills) -> roles, and the full expected tensor set (names, shapes, which are
 * FP8 in the release layout) of a config. */
#ifndef DC_NAMES_H
#define DC_NAMES_H
#include "dc_config.h"
#include "dc_tensor.h"

typedef enum dc_role {
    DC_ROLE_UNKNOWN = 0,
    DC_ROLE_EMBED, DC_ROLE_LM_HEAD, DC_ROLE_FINAL_NORM,
    DC_ROLE_ATTN_NORM, DC_ROLE_FFN_NORM,
    DC_ROLE_Q_PROJ, DC_ROLE_Q_A_PROJ, DC_ROLE_Q_A_NORM, DC_ROLE_Q_B_PROJ,
    DC_ROLE_KV_A_PROJ, DC_ROLE_KV_A_NORM, DC_ROLE_KV_B_PROJ, DC_ROLE_O_PROJ,
    DC_ROLE_MLP_GATE, DC_ROLE_MLP_UP, DC_ROLE_MLP_DOWN,          /* dense layer MLP */
    DC_ROLE_ROUTER, DC_ROLE_ROUTER_BIAS,
    DC_ROLE_EXP_GATE, DC_ROLE_EXP_UP, DC_ROLE_EXP_DOWN,          /* routed expert e */
    DC_ROLE_SHEXP_GATE, DC_ROLE_SHEXP_UP, DC_ROLE_SHEXP_DOWN,    /* shared experts */
    DC_ROLE_MTP_EMBED, DC_ROLE_MTP_ENORM, DC_ROLE_MTP_HNORM, DC_ROLE_MTP_EH_PROJ,
    DC_ROLE_MTP_HEAD_NORM, DC_ROLE_MTP_HEAD,
    /* dense GQA decoders (qwen2, llama): separate k/v projections and the attention biases */
    DC_ROLE_K_PROJ, DC_ROLE_V_PROJ,
    DC_ROLE_Q_BIAS, DC_ROLE_K_BIAS, DC_ROLE_V_BIAS, DC_ROLE_O_BIAS,
    /* all routed experts of a layer fused (deepcast reshard --merge-experts): [E, 2I, H], [E, H, I] */
    DC_ROLE_EXPS_GATE_UP, DC_ROLE_EXPS_DOWN,
    /* DeepSeek-V3.2's sparse-attention indexer (self_attn.indexer.*): wq_b [Hi*Di, q_lora] and wk
     * [Di, H] (FP8 in the release), k_norm weight / bias [Di] (a LayerNorm), weights_proj [Hi, H] (BF16) */
    DC_ROLE_IDX_WQ_B, DC_ROLE_IDX_WK, DC_ROLE_IDX_K_NORM, DC_ROLE_IDX_K_NORM_BIAS, DC_ROLE_IDX_WEIGHTS_PROJ,
    DC_ROLE_COUNT
} dc_role;

typedef struct dc_name_info {
    dc_role role;
    int layer;     /* -1 for model-level tensors */
    int expert;    /* -1 unless a routed expert */
    bool is_scale; /* the FP8 block scale (weight_scale_inv) of the role's weight */
    bool is_mtp;   /* layer >= n_layers */
} dc_name_info;

const char *dc_role_name(dc_role r);
/* Parses an HF tensor name. Returns false for names outside the architecture's table (the
 * DeepSeek table for deepseek_v3 / deepseek_v2 / no config; the dense table for qwen2 / llama,
 * whose layer index must also be < num_hidden_layers). */
bool dc_name_parse(const dc_config *c, const char *name, dc_name_info *info);
/* Builds the HF name of a role (is_scale appends _scale_inv). */
void dc_name_build(const dc_name_info *info, char *buf, size_t cap);
/* Is this role's weight stored as FP8 (with a block scale) in the FP8 release? (For the dense
 * archs: q/k/v/o and the MLP projections; never biases, norms, embeddings or lm_head.) */
bool dc_role_is_fp8(dc_role r);

typedef struct dc_expect {
    char *name;
    dc_name_info info;
    int ndim;
    int64_t shape[3];
    bool fp8; /* F8_E4M3 in the FP8 release (then a weight_scale_inv follows it in the list) */
} dc_expect;

/* The full expected tensor set of a config, in a canonical order (by layer, then role), MTP
 * layers included. with_scales adds weight_scale_inv entries after FP8 weights. */
dc_status dc_expect_build(const dc_config *c, bool with_scales, dc_expect **list, size_t *n, dc_err *err);
/* The same with the routed experts of every MoE layer fused (model.layers.L.mlp.experts.gate_up_proj
 * [E, 2I, H] and down_proj [E, H, I]; scales [E, 2*ceil(I/br), ceil(H/bc)] and [E, ceil(H/br), ceil(I/bc)]),
 * the layout `deepcast reshard --merge-experts` writes. */
dc_status dc_expect_build_fused(const dc_config *c, bool with_scales, bool fused_experts, dc_expect **list, size_t *n,
                                dc_err *err);
void dc_expect_free(dc_expect *list, size_t n);

#endif
