#include "dc_config.h"
#include "dc_io.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *dc_arch_name(dc_arch a)
{
    switch (a) {
    case DC_ARCH_DEEPSEEK_V3: return "deepseek_v3";
    case DC_ARCH_DEEPSEEK_V2: return "deepseek_v2";
    case DC_ARCH_QWEN2: return "qwen2";
    case DC_ARCH_LLAMA: return "llama";
    default: return "unknown";
    }
}

const char *dc_config_model_type(const dc_config *c)
{
    return c->arch == DC_ARCH_DEEPSEEK_V3 && c->index_n_heads ? "deepseek_v32" : dc_arch_name(c->arch);
}

bool dc_arch_dense(dc_arch a) { return a == DC_ARCH_QWEN2 || a == DC_ARCH_LLAMA; }

typedef struct jctx {
    const cJSON *root;
    const char *path;
    dc_err *err;
    dc_status st;
} jctx;

static const cJSON *jget(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* Integer field: required unless def_ok; range [lo, hi]. */
static int64_t jint(jctx *c, const cJSON *o, const char *k, bool required, int64_t def, int64_t lo, int64_t hi)
{
    if (c->st)
        return def;
    const cJSON *v = jget(o, k);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            c->st = dc_err_set(c->err, DC_ERR_CONFIG, "%s: missing required field \"%s\"", c->path, k);
        return def;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble)) {
        c->st = dc_err_set(c->err, DC_ERR_CONFIG, "%s: field \"%s\" must be an integer", c->path, k);
        return def;
    }
    double d = v->valuedouble;
    if (d < (double)lo || d > (double)hi) {
        c->st = dc_err_set(c->err, DC_ERR_CONFIG, "%s: field \"%s\" = %.0f is out of range [%lld, %lld]", c->path, k,
                           d, (long long)lo, (long long)hi);
        return def;
    }
    return (int64_t)d;
}

static double jnum(jctx *c, const cJSON *o, const char *k, bool required, double def, double lo, double hi)
{
    if (c->st)
        return def;
    const cJSON *v = jget(o, k);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            c->st = dc_err_set(c->err, DC_ERR_CONFIG, "%s: missing required field \"%s\"", c->path, k);
        return def;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
        c->st = dc_err_set(c->err, DC_ERR_CONFIG, "%s: field \"%s\" must be a number in [%g, %g]", c->path, k, lo, hi);
        return def;
    }
    return v->valuedouble;
}

static void jstr(jctx *c, const cJSON *o, const char *k, char *dst, size_t cap, const char *def)
{
    snprintf(dst, cap, "%s", def);
    if (c->st)
        return;
    const cJSON *v = jget(o, k);
    if (!v || cJSON_IsNull(v))
        return;
    if (!cJSON_IsString(v)) {
        c->st = dc_err_set(c->err, DC_ERR_CONFIG, "%s: field \"%s\" must be a string", c->path, k);
        return;
    }
    if (strlen(v->valuestring) >= cap) {
        c->st = dc_err_set(c->err, DC_ERR_CONFIG, "%s: field \"%s\" is too long", c->path, k);
        return;
    }
    snprintf(dst, cap, "%s", v->valuestring);
}

static bool jbool(jctx *c, const cJSON *o, const char *k, bool def)
{
    if (c->st)
        return def;
    const cJSON *v = jget(o, k);
    if (!v || cJSON_IsNull(v))
        return def;
    if (!cJSON_IsBool(v)) {
        c->st = dc_err_set(c->err, DC_ERR_CONFIG, "%s: field \"%s\" must be true or false", c->path, k);
        return def;
    }
    return cJSON_IsTrue(v);
}

#define BIG ((int64_t)1 << 40)

/* quantization_config (the FP8 release layout), shared by every architecture. */
static dc_status parse_quant(jctx *c, const cJSON *root, dc_config *cfg)
{
    dc_err *err = c->err;
    const char *path = c->path;
    const cJSON *qc = jget(root, "quantization_config");
    if (qc && !cJSON_IsNull(qc)) {
        char method[32];
        jstr(c, qc, "quant_method", method, sizeof method, "");
        if (c->st)
            return c->st;
        if (strcmp(method, "fp8")) {
            c->st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: unsupported quantization_config.quant_method \"%s\" (fp8)",
                              path, method);
            return c->st;
        }
        cfg->quant_fp8 = true;
        jstr(c, qc, "fmt", cfg->quant_fmt, sizeof cfg->quant_fmt, "e4m3");
        jstr(c, qc, "activation_scheme", cfg->activation_scheme, sizeof cfg->activation_scheme, "dynamic");
        char scf[16];
        jstr(c, qc, "scale_fmt", scf, sizeof scf, "");
        if (c->st)
            return c->st;
        if (strcmp(cfg->quant_fmt, "e4m3")) {
            c->st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: unsupported quantization_config.fmt \"%s\" (e4m3)", path,
                              cfg->quant_fmt);
            return c->st;
        }
        if (!scf[0] || !strcmp(scf, "f32") || !strcmp(scf, "float32"))
            cfg->scale_fmt = DC_SCALE_F32;
        else if (!strcmp(scf, "ue8m0"))
            cfg->scale_fmt = DC_SCALE_UE8M0;
        else {
            c->st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: unknown quantization_config.scale_fmt \"%s\" (ue8m0)", path,
                              scf);
            return c->st;
        }
        cfg->block_rows = cfg->block_cols = 128;
        const cJSON *bs = jget(qc, "weight_block_size");
        if (bs) {
            if (!cJSON_IsArray(bs) || cJSON_GetArraySize(bs) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(bs, 0)) ||
                !cJSON_IsNumber(cJSON_GetArrayItem(bs, 1))) {
                c->st = dc_err_set(err, DC_ERR_CONFIG, "%s: quantization_config.weight_block_size must be [rows, cols]",
                                  path);
                return c->st;
            }
            double r = cJSON_GetArrayItem(bs, 0)->valuedouble, k = cJSON_GetArrayItem(bs, 1)->valuedouble;
            if (r < 1 || r > 65536 || k < 1 || k > 65536 || r != floor(r) || k != floor(k)) {
                c->st = dc_err_set(err, DC_ERR_CONFIG, "%s: quantization_config.weight_block_size [%g, %g] is invalid",
                                  path, r, k);
                return c->st;
            }
            cfg->block_rows = (int)r;
            cfg->block_cols = (int)k;
        }
    }

    return c->st;
}

/* Integer or list of integers (eos_token_id of some Llama configs): the first one. */
static int64_t jint_or_first(jctx *c, const cJSON *o, const char *k, int64_t def, int64_t lo, int64_t hi)
{
    const cJSON *v = jget(o, k);
    if (c->st || !cJSON_IsArray(v))
        return jint(c, o, k, false, def, lo, hi);
    if (cJSON_GetArraySize(v) == 0)
        return def;
    const cJSON *f = cJSON_GetArrayItem(v, 0);
    if (!cJSON_IsNumber(f) || f->valuedouble != floor(f->valuedouble) || f->valuedouble < (double)lo ||
        f->valuedouble > (double)hi) {
        c->st = dc_err_set(c->err, DC_ERR_CONFIG, "%s: field \"%s\" must be an integer or a list of integers", c->path,
                           k);
        return def;
    }
    return (int64_t)f->valuedouble;
}

/* The dense GQA decoders: Hugging Face's Qwen2Config / LlamaConfig fields and defaults. */
static dc_status parse_dense(jctx *c, const cJSON *root, dc_config *cfg)
{
    dc_err *err = c->err;
    const char *path = c->path;
    bool qwen = cfg->arch == DC_ARCH_QWEN2;
    jstr(c, root, "torch_dtype", cfg->torch_dtype, sizeof cfg->torch_dtype, "bfloat16");
    cfg->vocab_size = jint(c, root, "vocab_size", true, 0, 1, BIG);
    cfg->hidden_size = jint(c, root, "hidden_size", true, 0, 1, 1 << 20);
    cfg->intermediate_size = jint(c, root, "intermediate_size", true, 0, 1, 1 << 22);
    cfg->n_layers = (int)jint(c, root, "num_hidden_layers", true, 0, 1, 100000);
    cfg->n_heads = (int)jint(c, root, "num_attention_heads", true, 0, 1, 1 << 16);
    cfg->n_kv_heads = (int)jint(c, root, "num_key_value_heads", false, cfg->n_heads, 1, 1 << 16);
    int64_t hd = jint(c, root, "head_dim", false, 0, 1, 1 << 16);
    cfg->rope_theta = jnum(c, root, "rope_theta", false, 10000.0, 1e-6, 1e12);
    cfg->rms_norm_eps = jnum(c, root, "rms_norm_eps", false, 1e-6, 0, 1);
    cfg->max_position_embeddings = jint(c, root, "max_position_embeddings", false, qwen ? 32768 : 2048, 1, BIG);
    cfg->bos_token_id = jint_or_first(c, root, "bos_token_id", -1, -1, BIG);
    cfg->eos_token_id = jint_or_first(c, root, "eos_token_id", -1, -1, BIG);
    cfg->tie_word_embeddings = jbool(c, root, "tie_word_embeddings", false);
    bool attention_bias = jbool(c, root, "attention_bias", false);
    bool mlp_bias = jbool(c, root, "mlp_bias", false);
    bool sliding = jbool(c, root, "use_sliding_window", false);
    cfg->max_window_layers = (int)jint(c, root, "max_window_layers", false, 0, 0, 100000);
    double partial = jnum(c, root, "partial_rotary_factor", false, 1.0, 0, 1);
    char act[32];
    jstr(c, root, "hidden_act", act, sizeof act, "silu");
    if (c->st)
        return c->st;
    if (strcmp(act, "silu"))
        return c->st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: unsupported hidden_act \"%s\" for %s (silu)", path,
                                  act, cfg->model_type);
    if (mlp_bias)
        return c->st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: mlp_bias true is not supported (no MLP biases)", path);
    if (sliding)
        return c->st = dc_err_set(err, DC_ERR_UNSUPPORTED,
                                  "%s: use_sliding_window true is not supported (full causal attention only; the "
                                  "DeepSeek distills have it false)", path);
    if (partial != 1.0)
        return c->st = dc_err_set(err, DC_ERR_UNSUPPORTED,
                                  "%s: partial_rotary_factor %g is not supported (RoPE over the whole head)", path,
                                  partial);
    if (cfg->n_heads % cfg->n_kv_heads)
        return c->st = dc_err_set(err, DC_ERR_CONFIG,
                                  "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", path,
                                  cfg->n_heads, cfg->n_kv_heads);
    if (!hd) {
        if (cfg->hidden_size % cfg->n_heads)
            return c->st = dc_err_set(err, DC_ERR_CONFIG,
                                      "%s: hidden_size %lld is not a multiple of num_attention_heads %d (and no head_dim)",
                                      path, (long long)cfg->hidden_size, cfg->n_heads);
        hd = cfg->hidden_size / cfg->n_heads;
    }
    if (hd % 2)
        return c->st = dc_err_set(err, DC_ERR_CONFIG, "%s: head_dim %lld must be even (RoPE rotates pairs)", path,
                                  (long long)hd);
    cfg->head_dim = (int)hd;
    cfg->attn_qkv_bias = qwen || attention_bias; /* Qwen2Attention: q/k/v bias=True, o_proj bias=False */
    cfg->attn_o_bias = !qwen && attention_bias;
    if (cfg->bos_token_id >= cfg->vocab_size || cfg->eos_token_id >= cfg->vocab_size)
        return c->st = dc_err_set(err, DC_ERR_CONFIG, "%s: bos_token_id %lld / eos_token_id %lld out of vocab_size %lld",
                                  path, (long long)cfg->bos_token_id, (long long)cfg->eos_token_id,
                                  (long long)cfg->vocab_size);

    /* rope_scaling: null / "default", or "llama3" (transformers' _compute_llama3_parameters) */
    const cJSON *rs = jget(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        if (!cJSON_IsObject(rs))
            return c->st = dc_err_set(err, DC_ERR_CONFIG, "%s: rope_scaling must be an object or null", path);
        char type[32];
        jstr(c, rs, "rope_type", type, sizeof type, ""); /* transformers: rope_type first, then type */
        if (!type[0])
            jstr(c, rs, "type", type, sizeof type, "");
        if (c->st)
            return c->st;
        if (!strcmp(type, "llama3")) {
            cfg->rope_llama3 = true;
            cfg->rope_factor = jnum(c, rs, "factor", true, 1, 1e-6, 1e6);
            cfg->rope_low_freq_factor = jnum(c, rs, "low_freq_factor", true, 1, 1e-6, 1e6);
            cfg->rope_high_freq_factor = jnum(c, rs, "high_freq_factor", true, 4, 1e-6, 1e6);
            cfg->rope_original_max_pos = jint(c, rs, "original_max_position_embeddings", true, 8192, 1, BIG);
            if (c->st)
                return c->st;
            if (!(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor))
                return c->st = dc_err_set(err, DC_ERR_CONFIG,
                                          "%s: rope_scaling high_freq_factor %g must exceed low_freq_factor %g", path,
                                          cfg->rope_high_freq_factor, cfg->rope_low_freq_factor);
        } else if (strcmp(type, "default")) {
            return c->st = dc_err_set(err, DC_ERR_UNSUPPORTED,
                                      "%s: unsupported rope_scaling type \"%s\" for %s (supported: llama3, or none)",
                                      path, type[0] ? type : "(missing)", cfg->model_type);
        }
    }

    /* the DeepSeek fields, filled so that generic code (names, counts, inspect) stays valid */
    cfg->moe_intermediate_size = 0;
    cfg->first_k_dense_replace = cfg->n_layers;
    cfg->moe_layer_freq = 1;
    cfg->n_group = cfg->topk_group = 1;
    cfg->routed_scaling_factor = 1.0;
    cfg->scoring_func = DC_SCORE_SOFTMAX;
    cfg->qk_nope_head_dim = 0;
    cfg->qk_rope_head_dim = cfg->v_head_dim = cfg->head_dim;
    return parse_quant(c, root, cfg);
}

dc_status dc_config_parse(const char *json, size_t len, const char *path, dc_config *cfg, dc_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return dc_err_set(err, DC_ERR_CONFIG, "%s: not a JSON object", path);
    }
    jctx c = {root, path, err, DC_OK};
    jstr(&c, root, "model_type", cfg->model_type, sizeof cfg->model_type, "");
    const cJSON *archs = jget(root, "architectures");
    if (cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        snprintf(cfg->architecture, sizeof cfg->architecture, "%s", cJSON_GetArrayItem(archs, 0)->valuestring);
    if (c.st)
        goto done;
    bool v32 = !strcmp(cfg->model_type, "deepseek_v32");
    if (!strcmp(cfg->model_type, "deepseek_v3") || v32)
        cfg->arch = DC_ARCH_DEEPSEEK_V3;
    else if (!strcmp(cfg->model_type, "deepseek_v2"))
        cfg->arch = DC_ARCH_DEEPSEEK_V2;
    else if (!strcmp(cfg->model_type, "qwen2"))
        cfg->arch = DC_ARCH_QWEN2;
    else if (!strcmp(cfg->model_type, "llama"))
        cfg->arch = DC_ARCH_LLAMA;
    else {
        c.st = dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: unsupported architecture: model_type \"%s\"%s%s%s (supported: deepseek_v3, deepseek_v32, deepseek_v2, qwen2, llama)",
                          path, cfg->model_type[0] ? cfg->model_type : "(missing)",
                          cfg->architecture[0] ? ", architectures [\"" : "", cfg->architecture,
                          cfg->architecture[0] ? "\"]" : "");
        goto done;
    }
    if (dc_arch_dense(cfg->arch)) {
        parse_dense(&c, root, cfg);
        goto done;
    }
    jstr(&c, root, "torch_dtype", cfg->torch_dtype, sizeof cfg->torch_dtype, "bfloat16");
    cfg->vocab_size = jint(&c, root, "vocab_size", true, 0, 1, BIG);
    cfg->hidden_size = jint(&c, root, "hidden_size", true, 0, 1, 1 << 20);
    cfg->intermediate_size = jint(&c, root, "intermediate_size", true, 0, 1, 1 << 22);
    cfg->moe_intermediate_size = jint(&c, root, "moe_intermediate_size", true, 0, 1, 1 << 22);
    cfg->n_layers = (int)jint(&c, root, "num_hidden_layers", true, 0, 1, 100000);
    cfg->n_mtp_layers = (int)jint(&c, root, "num_nextn_predict_layers", false, 0, 0, 64);
    cfg->n_heads = (int)jint(&c, root, "num_attention_heads", true, 0, 1, 1 << 16);
    cfg->n_kv_heads = (int)jint(&c, root, "num_key_value_heads", false, cfg->n_heads, 1, 1 << 16);
    cfg->q_lora_rank = (int)jint(&c, root, "q_lora_rank", false, 0, 0, 1 << 20);
    cfg->kv_lora_rank = (int)jint(&c, root, "kv_lora_rank", true, 0, 1, 1 << 20);
    cfg->qk_nope_head_dim = (int)jint(&c, root, "qk_nope_head_dim", true, 0, 0, 1 << 16);
    cfg->qk_rope_head_dim = (int)jint(&c, root, "qk_rope_head_dim", true, 0, 2, 1 << 16);
    cfg->v_head_dim = (int)jint(&c, root, "v_head_dim", true, 0, 1, 1 << 16);
    cfg->n_experts_routed = (int)jint(&c, root, "n_routed_experts", true, 0, 1, 1 << 20);
    cfg->n_experts_shared = (int)jint(&c, root, "n_shared_experts", false, 0, 0, 1 << 10);
    cfg->n_experts_per_tok = (int)jint(&c, root, "num_experts_per_tok", true, 0, 1, 1 << 20);
    cfg->n_group = (int)jint(&c, root, "n_group", false, 1, 1, 1 << 20);
    cfg->topk_group = (int)jint(&c, root, "topk_group", false, 1, 1, 1 << 20);
    cfg->first_k_dense_replace = (int)jint(&c, root, "first_k_dense_replace", false, 0, 0, 100000);
    cfg->moe_layer_freq = (int)jint(&c, root, "moe_layer_freq", false, 1, 1, 100000);
    cfg->routed_scaling_factor = jnum(&c, root, "routed_scaling_factor", false, 1.0, 0, 1e6);
    char sf[32];
    jstr(&c, root, "scoring_func", sf, sizeof sf, "softmax");
    jstr(&c, root, "topk_method", cfg->topk_method, sizeof cfg->topk_method,
         cfg->arch == DC_ARCH_DEEPSEEK_V3 ? "noaux_tc" : "greedy");
    cfg->norm_topk_prob = jbool(&c, root, "norm_topk_prob", false);
    cfg->rope_theta = jnum(&c, root, "rope_theta", false, 10000.0, 1e-6, 1e12);
    cfg->rms_norm_eps = jnum(&c, root, "rms_norm_eps", false, 1e-6, 0, 1);
    cfg->max_position_embeddings = jint(&c, root, "max_position_embeddings", false, 4096, 1, BIG);
    cfg->bos_token_id = jint(&c, root, "bos_token_id", false, -1, -1, BIG);
    cfg->eos_token_id = jint(&c, root, "eos_token_id", false, -1, -1, BIG);
    cfg->tie_word_embeddings = jbool(&c, root, "tie_word_embeddings", false);
    if (v32) {
        cfg->index_n_heads = (int)jint(&c, root, "index_n_heads", true, 0, 1, 1 << 16);
        cfg->index_head_dim = (int)jint(&c, root, "index_head_dim", true, 0, 2, 1 << 16);
        cfg->index_topk = (int)jint(&c, root, "index_topk", true, 0, 1, 1 << 30);
    }
    if (c.st)
        goto done;

    if (!strcmp(sf, "softmax"))
        cfg->scoring_func = DC_SCORE_SOFTMAX;
    else if (!strcmp(sf, "sigmoid"))
        cfg->scoring_func = DC_SCORE_SIGMOID;
    else {
        c.st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: unsupported scoring_func \"%s\" (softmax or sigmoid)", path, sf);
        goto done;
    }
    if (strcmp(cfg->topk_method, "noaux_tc") && strcmp(cfg->topk_method, "greedy") &&
        strcmp(cfg->topk_method, "group_limited_greedy")) {
        c.st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: unsupported topk_method \"%s\"", path, cfg->topk_method);
        goto done;
    }
    cfg->has_router_bias = !strcmp(cfg->topk_method, "noaux_tc");

    const cJSON *rs = jget(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        if (!cJSON_IsObject(rs)) {
            c.st = dc_err_set(err, DC_ERR_CONFIG, "%s: rope_scaling must be an object or null", path);
            goto done;
        }
        char type[32];
        jstr(&c, rs, "type", type, sizeof type, "");
        if (!type[0])
            jstr(&c, rs, "rope_type", type, sizeof type, "");
        if (c.st)
            goto done;
        if (strcmp(type, "yarn")) {
            c.st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: unsupported rope_scaling type \"%s\" (yarn)", path, type);
            goto done;
        }
        cfg->rope_yarn = true;
        cfg->rope_factor = jnum(&c, rs, "factor", true, 1, 1e-6, 1e6);
        cfg->rope_original_max_pos = jint(&c, rs, "original_max_position_embeddings", false, 4096, 1, BIG);
        cfg->rope_beta_fast = jnum(&c, rs, "beta_fast", false, 32, 0, 1e6);
        cfg->rope_beta_slow = jnum(&c, rs, "beta_slow", false, 1, 0, 1e6);
        cfg->rope_mscale = jnum(&c, rs, "mscale", false, 1, 0, 1e6);
        cfg->rope_mscale_all_dim = jnum(&c, rs, "mscale_all_dim", false, 0, 0, 1e6);
    }

    if ((c.st = parse_quant(&c, root, cfg)) != DC_OK)
        goto done;

    /* consistency */
    if (cfg->n_experts_per_tok > cfg->n_experts_routed)
        c.st = dc_err_set(err, DC_ERR_CONFIG, "%s: num_experts_per_tok %d exceeds n_routed_experts %d", path,
                          cfg->n_experts_per_tok, cfg->n_experts_routed);
    else if (cfg->n_experts_routed % cfg->n_group)
        c.st = dc_err_set(err, DC_ERR_CONFIG, "%s: n_routed_experts %d is not divisible by n_group %d", path,
                          cfg->n_experts_routed, cfg->n_group);
    else if (cfg->topk_group > cfg->n_group)
        c.st = dc_err_set(err, DC_ERR_CONFIG, "%s: topk_group %d exceeds n_group %d", path, cfg->topk_group,
                          cfg->n_group);
    else if ((int64_t)cfg->topk_group * (cfg->n_experts_routed / cfg->n_group) < cfg->n_experts_per_tok)
        c.st = dc_err_set(err, DC_ERR_CONFIG,
                          "%s: topk_group %d groups of %d experts cannot supply num_experts_per_tok %d", path,
                          cfg->topk_group, cfg->n_experts_routed / cfg->n_group, cfg->n_experts_per_tok);
    else if (cfg->qk_rope_head_dim % 2)
        c.st = dc_err_set(err, DC_ERR_CONFIG, "%s: qk_rope_head_dim %d must be even", path, cfg->qk_rope_head_dim);
    else if (cfg->first_k_dense_replace > cfg->n_layers)
        c.st = dc_err_set(err, DC_ERR_CONFIG, "%s: first_k_dense_replace %d exceeds num_hidden_layers %d", path,
                          cfg->first_k_dense_replace, cfg->n_layers);
    else if (cfg->bos_token_id >= cfg->vocab_size || cfg->eos_token_id >= cfg->vocab_size)
        c.st = dc_err_set(err, DC_ERR_CONFIG, "%s: bos_token_id %lld / eos_token_id %lld out of vocab_size %lld", path,
                          (long long)cfg->bos_token_id, (long long)cfg->eos_token_id, (long long)cfg->vocab_size);
    else if (cfg->n_kv_heads != cfg->n_heads)
        c.st = dc_err_set(err, DC_ERR_CONFIG, "%s: num_key_value_heads %d differs from num_attention_heads %d (MLA has none)",
                          path, cfg->n_kv_heads, cfg->n_heads);
    else if (v32 && (cfg->index_head_dim < cfg->qk_rope_head_dim || cfg->index_head_dim % 2))
        c.st = dc_err_set(err, DC_ERR_CONFIG, "%s: index_head_dim %d must be even and at least qk_rope_head_dim %d "
                          "(the indexer's heads start with the rotary part)", path, cfg->index_head_dim, cfg->qk_rope_head_dim);
    else if (v32 && !cfg->q_lora_rank)
        c.st = dc_err_set(err, DC_ERR_CONFIG, "%s: deepseek_v32 needs q_lora_rank (the indexer's queries come from the "
                          "query latent)", path);
done:
    cJSON_Delete(root);
    return c.st;
}

dc_status dc_config_load(const char *dir, dc_config *cfg, dc_err *err)
{
    char *p = dc_path_join(dir, "config.json");
    if (!p)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    char *buf;
    size_t len;
    dc_status s = dc_read_file(p, &buf, &len, 16u << 20, err);
    if (s == DC_OK) {
        s = dc_config_parse(buf, len, p, cfg, err);
        free(buf);
    } else if (s == DC_ERR_IO) {
        s = dc_err_set(err, DC_ERR_CONFIG, "%s: missing or unreadable config.json", p);
    }
    free(p);
    return s;
}

bool dc_config_layer_is_moe(const dc_config *c, int layer)
{
    if (dc_arch_dense(c->arch))
        return false;
    if (layer >= c->n_layers)
        return true; /* MTP layers are MoE decoder layers */
    return layer >= c->first_k_dense_replace && layer % c->moe_layer_freq == 0;
}

static int64_t attn_params(const dc_config *c)
{
    int64_t H = c->hidden_size, nh = c->n_heads, qd = c->qk_nope_head_dim + c->qk_rope_head_dim;
    int64_t p = 2 * H; /* input + post-attention norms */
    if (c->q_lora_rank)
        p += (int64_t)c->q_lora_rank * H + c->q_lora_rank + nh * qd * c->q_lora_rank;
    else
        p += nh * qd * H;
    p += (int64_t)(c->kv_lora_rank + c->qk_rope_head_dim) * H + c->kv_lora_rank;
    p += nh * (c->qk_nope_head_dim + c->v_head_dim) * (int64_t)c->kv_lora_rank;
    p += H * nh * c->v_head_dim;
    if (c->index_n_heads) /* V3.2 indexer: wq_b, wk, k_norm (weight, bias), weights_proj */
        p += (int64_t)c->index_n_heads * c->index_head_dim * c->q_lora_rank + (int64_t)c->index_head_dim * H +
             2 * c->index_head_dim + (int64_t)c->index_n_heads * H;
    return p;
}

/* One layer of a dense GQA decoder: norms, q/k/v/o (+ biases), SwiGLU MLP. */
static int64_t dense_layer_params(const dc_config *c)
{
    int64_t H = c->hidden_size, q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t p = 2 * H + q * H + 2 * kv * H + H * q + 3 * H * c->intermediate_size;
    if (c->attn_qkv_bias)
        p += q + 2 * kv;
    if (c->attn_o_bias)
        p += H;
    return p;
}

void dc_config_param_counts(const dc_config *c, int64_t *total, int64_t *active, int64_t *mtp)
{
    if (dc_arch_dense(c->arch)) {
        int64_t t = c->vocab_size * c->hidden_size * (c->tie_word_embeddings ? 1 : 2) + c->hidden_size +
                    (int64_t)c->n_layers * dense_layer_params(c);
        if (total) *total = t;
        if (active) *active = t;
        if (mtp) *mtp = 0;
        return;
    }
    int64_t H = c->hidden_size, V = c->vocab_size;
    int64_t expert = 3 * H * c->moe_intermediate_size;
    int64_t moe_common = (int64_t)c->n_experts_routed * H + (c->has_router_bias ? c->n_experts_routed : 0) +
                         (int64_t)c->n_experts_shared * expert;
    int64_t t = V * H * (c->tie_word_embeddings ? 1 : 2) + H, a = t;
    for (int i = 0; i < c->n_layers; i++) {
        int64_t at = attn_params(c);
        t += at;
        a += at;
        if (dc_config_layer_is_moe(c, i)) {
            t += moe_common + (int64_t)c->n_experts_routed * expert;
            a += moe_common + (int64_t)c->n_experts_per_tok * expert;
        } else {
            t += 3 * H * c->intermediate_size;
            a += 3 * H * c->intermediate_size;
        }
    }
    int64_t m = 0;
    for (int k = 0; k < c->n_mtp_layers; k++)
        m += attn_params(c) + moe_common + (int64_t)c->n_experts_routed * expert + 2 * V * H + 3 * H + 2 * H * H;
    if (total) *total = t;
    if (active) *active = a;
    if (mtp) *mtp = m;
}

static void add_quant(cJSON *o, const dc_config *c)
{
    if (!c->quant_fp8)
        return;
    cJSON *q = cJSON_AddObjectToObject(o, "quantization_config");
    cJSON_AddStringToObject(q, "activation_scheme", c->activation_scheme[0] ? c->activation_scheme : "dynamic");
    cJSON_AddStringToObject(q, "fmt", "e4m3");
    cJSON_AddStringToObject(q, "quant_method", "fp8");
    if (c->scale_fmt == DC_SCALE_UE8M0)
        cJSON_AddStringToObject(q, "scale_fmt", "ue8m0");
    cJSON *bs = cJSON_AddArrayToObject(q, "weight_block_size");
    cJSON_AddItemToArray(bs, cJSON_CreateNumber(c->block_rows ? c->block_rows : 128));
    cJSON_AddItemToArray(bs, cJSON_CreateNumber(c->block_cols ? c->block_cols : 128));
}

/* config.json of a dense GQA decoder, with the field names and order of the DeepSeek-R1-Distill
 * releases (Qwen2Config / LlamaConfig as saved by transformers). */
static char *dense_to_json(const dc_config *c)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    bool qwen = c->arch == DC_ARCH_QWEN2;
    cJSON *a = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(a, cJSON_CreateString(c->architecture[0] ? c->architecture
                                               : qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
    if (!qwen)
        cJSON_AddBoolToObject(o, "attention_bias", c->attn_qkv_bias);
    cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
    cJSON_AddNumberToObject(o, "bos_token_id", (double)c->bos_token_id);
    cJSON_AddNumberToObject(o, "eos_token_id", (double)c->eos_token_id);
    if (!qwen || (int64_t)c->head_dim * c->n_heads != c->hidden_size)
        cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddNumberToObject(o, "hidden_size", (double)c->hidden_size);
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    cJSON_AddNumberToObject(o, "intermediate_size", (double)c->intermediate_size);
    cJSON_AddNumberToObject(o, "max_position_embeddings", (double)c->max_position_embeddings);
    if (qwen)
        cJSON_AddNumberToObject(o, "max_window_layers", c->max_window_layers ? c->max_window_layers : c->n_layers);
    else
        cJSON_AddFalseToObject(o, "mlp_bias");
    cJSON_AddStringToObject(o, "model_type", dc_arch_name(c->arch));
    cJSON_AddNumberToObject(o, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->n_kv_heads);
    if (!qwen)
        cJSON_AddNumberToObject(o, "pretraining_tp", 1);
    add_quant(o, c);
    cJSON_AddNumberToObject(o, "rms_norm_eps", c->rms_norm_eps);
    if (c->rope_llama3) {
        cJSON *r = cJSON_AddObjectToObject(o, "rope_scaling");
        cJSON_AddNumberToObject(r, "factor", c->rope_factor);
        cJSON_AddNumberToObject(r, "high_freq_factor", c->rope_high_freq_factor);
        cJSON_AddNumberToObject(r, "low_freq_factor", c->rope_low_freq_factor);
        cJSON_AddNumberToObject(r, "original_max_position_embeddings", (double)c->rope_original_max_pos);
        cJSON_AddStringToObject(r, "rope_type", "llama3");
    } else
        cJSON_AddNullToObject(o, "rope_scaling");
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    if (qwen)
        cJSON_AddNullToObject(o, "sliding_window");
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddStringToObject(o, "torch_dtype", c->torch_dtype[0] ? c->torch_dtype : "bfloat16");
    cJSON_AddStringToObject(o, "transformers_version", qwen ? "4.44.0" : "4.43.0.dev0");
    cJSON_AddTrueToObject(o, "use_cache");
    if (qwen) {
        cJSON_AddFalseToObject(o, "use_mrope");
        cJSON_AddFalseToObject(o, "use_sliding_window");
    }
    cJSON_AddNumberToObject(o, "vocab_size", (double)c->vocab_size);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

void dc_config_llama3_rope_factors(const dc_config *c, float *out)
{
    const int dim = c->head_dim, half = dim / 2;
    const float base = (float)c->rope_theta, factor = (float)c->rope_factor, lo = (float)c->rope_low_freq_factor;
    const float old_ctx = (float)c->rope_original_max_pos;
    const float low_wl = (float)((double)c->rope_original_max_pos / c->rope_low_freq_factor);
    const float high_wl = (float)((double)c->rope_original_max_pos / c->rope_high_freq_factor);
    const float span = (float)(c->rope_high_freq_factor - c->rope_low_freq_factor);
    const float two_pi = (float)(2.0 * M_PI);
    for (int i = 0; i < half; i++) {
        float freq = 1.0f / powf(base, (float)(2 * i) / (float)dim);
        float wavelen = (1.0f / freq) * two_pi;
        if (wavelen < high_wl)
            out[i] = 1.0f;
        else if (wavelen > low_wl)
            out[i] = factor;
        else {
            float smooth = ((1.0f / wavelen) * old_ctx - lo) / span;
            out[i] = 1.0f / ((1.0f - smooth) / factor + smooth);
        }
    }
}

char *dc_config_to_json(const dc_config *c)
{
    if (dc_arch_dense(c->arch))
        return dense_to_json(c);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    bool v3 = c->arch == DC_ARCH_DEEPSEEK_V3, v32 = v3 && c->index_n_heads;
    cJSON *a = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(a, cJSON_CreateString(c->architecture[0] ? c->architecture
                                               : v32 ? "DeepseekV32ForCausalLM"
                                               : v3  ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"));
    cJSON_AddFalseToObject(o, "attention_bias");
    cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
    if (!v32) { /* V3.2 ships no modeling code */
        cJSON *am = cJSON_AddObjectToObject(o, "auto_map");
        cJSON_AddStringToObject(am, "AutoConfig", v3 ? "configuration_deepseek.DeepseekV3Config" : "configuration_deepseek.DeepseekV2Config");
        cJSON_AddStringToObject(am, "AutoModel", v3 ? "modeling_deepseek.DeepseekV3Model" : "modeling_deepseek.DeepseekV2Model");
        cJSON_AddStringToObject(am, "AutoModelForCausalLM",
                                v3 ? "modeling_deepseek.DeepseekV3ForCausalLM" : "modeling_deepseek.DeepseekV2ForCausalLM");
    }
    if (!v3)
        cJSON_AddNumberToObject(o, "aux_loss_alpha", 0.001);
    cJSON_AddNumberToObject(o, "bos_token_id", (double)c->bos_token_id);
    cJSON_AddNumberToObject(o, "eos_token_id", (double)c->eos_token_id);
    cJSON_AddNumberToObject(o, "ep_size", 1);
    cJSON_AddNumberToObject(o, "first_k_dense_replace", c->first_k_dense_replace);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddNumberToObject(o, "hidden_size", (double)c->hidden_size);
    if (v32) {
        cJSON_AddNumberToObject(o, "index_head_dim", c->index_head_dim);
        cJSON_AddNumberToObject(o, "index_n_heads", c->index_n_heads);
        cJSON_AddNumberToObject(o, "index_topk", c->index_topk);
    }
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    cJSON_AddNumberToObject(o, "intermediate_size", (double)c->intermediate_size);
    cJSON_AddNumberToObject(o, "kv_lora_rank", c->kv_lora_rank);
    cJSON_AddNumberToObject(o, "max_position_embeddings", (double)c->max_position_embeddings);
    cJSON_AddStringToObject(o, "model_type", dc_config_model_type(c));
    cJSON_AddNumberToObject(o, "moe_intermediate_size", (double)c->moe_intermediate_size);
    cJSON_AddNumberToObject(o, "moe_layer_freq", c->moe_layer_freq);
    cJSON_AddNumberToObject(o, "n_group", c->n_group);
    cJSON_AddNumberToObject(o, "n_routed_experts", c->n_experts_routed);
    cJSON_AddNumberToObject(o, "n_shared_experts", c->n_experts_shared);
    cJSON_AddBoolToObject(o, "norm_topk_prob", c->norm_topk_prob);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(o, "num_experts_per_tok", c->n_experts_per_tok);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->n_kv_heads);
    if (v3 || c->n_mtp_layers)
        cJSON_AddNumberToObject(o, "num_nextn_predict_layers", c->n_mtp_layers);
    if (!v3)
        cJSON_AddNumberToObject(o, "pretraining_tp", 1);
    if (c->q_lora_rank)
        cJSON_AddNumberToObject(o, "q_lora_rank", c->q_lora_rank);
    else
        cJSON_AddNullToObject(o, "q_lora_rank");
    cJSON_AddNumberToObject(o, "qk_nope_head_dim", c->qk_nope_head_dim);
    cJSON_AddNumberToObject(o, "qk_rope_head_dim", c->qk_rope_head_dim);
    add_quant(o, c);
    cJSON_AddNumberToObject(o, "rms_norm_eps", c->rms_norm_eps);
    if (c->rope_yarn) {
        cJSON *r = cJSON_AddObjectToObject(o, "rope_scaling");
        cJSON_AddNumberToObject(r, "beta_fast", c->rope_beta_fast);
        cJSON_AddNumberToObject(r, "beta_slow", c->rope_beta_slow);
        cJSON_AddNumberToObject(r, "factor", c->rope_factor);
        cJSON_AddNumberToObject(r, "mscale", c->rope_mscale);
        cJSON_AddNumberToObject(r, "mscale_all_dim", c->rope_mscale_all_dim);
        cJSON_AddNumberToObject(r, "original_max_position_embeddings", (double)c->rope_original_max_pos);
        cJSON_AddStringToObject(r, "type", "yarn");
    } else
        cJSON_AddNullToObject(o, "rope_scaling");
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(o, "routed_scaling_factor", c->routed_scaling_factor);
    cJSON_AddStringToObject(o, "scoring_func", c->scoring_func == DC_SCORE_SIGMOID ? "sigmoid" : "softmax");
    if (!v3)
        cJSON_AddTrueToObject(o, "seq_aux");
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddNumberToObject(o, "topk_group", c->topk_group);
    cJSON_AddStringToObject(o, "topk_method", c->topk_method);
    cJSON_AddStringToObject(o, "torch_dtype", c->torch_dtype[0] ? c->torch_dtype : "bfloat16");
    cJSON_AddStringToObject(o, "transformers_version", v3 ? "4.46.3" : "4.33.1");
    cJSON_AddTrueToObject(o, "use_cache");
    cJSON_AddNumberToObject(o, "v_head_dim", c->v_head_dim);
    cJSON_AddNumberToObject(o, "vocab_size", (double)c->vocab_size);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}
