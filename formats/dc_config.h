/* Model configuration: Hugging Face config.json -> validated struct, for the DeepSeek families
 * (MLA + MoE: deepseek_v3, deepseek_v2) and the dense GQA decoders of DeepSeek's distilled and
 * earlier models (qwen2: R1-Distill-Qwen; llama: R1-Distill-Llama, DeepSeek LLM). */
#ifndef DC_CONFIG_H
#define DC_CONFIG_H
#include "dc_common.h"

typedef enum dc_arch {
    DC_ARCH_UNKNOWN = 0,
    DC_ARCH_DEEPSEEK_V3, /* model_type deepseek_v3: V3, R1, V3.1; deepseek_v32 (V3.2): + index_n_heads */
    DC_ARCH_DEEPSEEK_V2, /* model_type deepseek_v2: V2, V2-Lite, V2.5 */
    DC_ARCH_QWEN2,       /* model_type qwen2: DeepSeek-R1-Distill-Qwen-1.5B/7B/14B/32B */
    DC_ARCH_LLAMA,       /* model_type llama: DeepSeek-R1-Distill-Llama-8B/70B, DeepSeek LLM 7B/67B */
} dc_arch;

/* A dense GQA decoder (qwen2, llama): no MLA, no experts, no MTP layers. */
bool dc_arch_dense(dc_arch a);

typedef enum dc_score_func { DC_SCORE_SOFTMAX = 0, DC_SCORE_SIGMOID = 1 } dc_score_func;
typedef enum dc_scale_fmt { DC_SCALE_F32 = 0, DC_SCALE_UE8M0 = 1 } dc_scale_fmt;

#define DC_MAX_ROPE_FACTORS 512

typedef struct dc_config {
    dc_arch arch;
    char model_type[32];
    char architecture[64];
    char torch_dtype[16];

    int64_t vocab_size;
    int64_t hidden_size;
    int64_t intermediate_size;     /* dense MLP */
    int64_t moe_intermediate_size; /* per routed expert */
    int n_layers;                  /* num_hidden_layers (MTP layers not included) */
    int n_mtp_layers;              /* num_nextn_predict_layers */
    int n_heads;
    int n_kv_heads;  /* DeepSeek: = n_heads; dense archs: num_key_value_heads (GQA) */
    int q_lora_rank; /* 0 = plain q_proj */
    int kv_lora_rank;
    int qk_nope_head_dim, qk_rope_head_dim, v_head_dim;

    int n_experts_routed;
    int n_experts_shared;
    int n_experts_per_tok;
    int n_group, topk_group;
    int first_k_dense_replace;
    int moe_layer_freq;
    double routed_scaling_factor;
    dc_score_func scoring_func;
    char topk_method[32];
    bool norm_topk_prob;
    bool has_router_bias; /* e_score_correction_bias present (topk_method noaux_tc) */

    /* DeepSeek-V3.2 (model_type deepseek_v32, arch DC_ARCH_DEEPSEEK_V3): the sparse-attention
     * indexer of every layer (MTP included). 0 = no indexer (V3). */
    int index_n_heads, index_head_dim, index_topk;

    /* dense GQA decoders (qwen2, llama). For these archs the DeepSeek fields above are filled so that
     * generic code stays valid: every layer dense (first_k_dense_replace = n_layers), no experts,
     * n_group = topk_group = 1, qk_rope_head_dim = v_head_dim = head_dim, qk_nope_head_dim = 0. */
    int head_dim;        /* head_dim, or hidden_size / num_attention_heads */
    bool attn_qkv_bias;  /* q/k/v_proj have biases: qwen2 always, llama iff attention_bias */
    bool attn_o_bias;    /* o_proj has a bias: llama iff attention_bias */
    int max_window_layers; /* qwen2 (sliding window off): kept for config.json round trips */

    double rope_theta;
    double rms_norm_eps; /* used by the dense archs; DeepSeek's model.py always uses 1e-6 */
    int64_t max_position_embeddings;
    bool rope_yarn;
    double rope_factor, rope_mscale, rope_mscale_all_dim, rope_beta_fast, rope_beta_slow;
    int64_t rope_original_max_pos;
    /* rope_scaling {"rope_type": "llama3"}: factor and original_max_position_embeddings above */
    bool rope_llama3;
    double rope_low_freq_factor, rope_high_freq_factor;
    /* llama GGUFs: llama.cpp's rope_freqs tensor (how convert_hf_to_gguf.py stores llama3 scaling):
     * the default inverse frequencies are divided by these head_dim / 2 values; 0 = none */
    int n_rope_freq_factors;
    float rope_freq_factors[DC_MAX_ROPE_FACTORS];

    int64_t bos_token_id, eos_token_id;
    bool tie_word_embeddings;

    /* quantization_config (the FP8 release) */
    bool quant_fp8;
    char quant_fmt[16];
    dc_scale_fmt scale_fmt;
    int block_rows, block_cols;
    char activation_scheme[32];
} dc_config;

/* Parses config.json text. path is used in messages. */
dc_status dc_config_parse(const char *json, size_t len, const char *path, dc_config *cfg, dc_err *err);
/* Loads dir/config.json. */
dc_status dc_config_load(const char *dir, dc_config *cfg, dc_err *err);
const char *dc_arch_name(dc_arch a);
/* config.json's model_type for a config: dc_arch_name, or deepseek_v32 for V3 with an indexer. */
const char *dc_config_model_type(const dc_config *c);
/* Layer i (< n_layers + n_mtp_layers) has a routed-expert MLP. */
bool dc_config_layer_is_moe(const dc_config *c, int layer);
/* Total parameters and parameters activated per token (main model, MTP layers excluded). */
void dc_config_param_counts(const dc_config *c, int64_t *total, int64_t *active, int64_t *mtp);



/* Serialises a config as a Hugging Face config.json (the release's field names and order).
 * Returns a malloc'd string, NULL on OOM. */
char *dc_config_to_json(const dc_config *c);
/* llama3 rope scaling as llama.cpp's rope_freqs divisors (conversion/llama.py
 * generate_extra_tensors, in float32 like its torch code): head_dim / 2 values into out. */
void dc_config_llama3_rope_factors(const dc_config *c, float *out);
#endif
