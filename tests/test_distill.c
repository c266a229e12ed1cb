/* The dense distill architectures (qwen2: DeepSeek-R1-Distill-Qwen, llama: R1-Distill-Llama and
 * DeepSeek LLM): config.json parsing of the real release configs and of bad ones, the tensor-name
 * table, the mkmodel presets, and the float32 forward pass against an independent float64
 * reference written here from Hugging Face transformers' Qwen2 / Llama modeling code (biases, tied
 * embeddings, GQA, llama3 rope scaling past original_max_position_embeddings, head_dim !=
 * hidden / heads, FP8 weights), with bit-identical logits for 1 and 2 threads. */
#include "dc_test.h"
#include "dc_forward.h"
#include "dc_io.h"
#include "dc_mkmodel.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================================================
 * config.json
 * ================================================================================================ */

/* deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B (docs/distills.md) */
static const char *QWEN_1_5B =
    "{\"architectures\":[\"Qwen2ForCausalLM\"],\"attention_dropout\":0.0,\"bos_token_id\":151643,"
    "\"eos_token_id\":151643,\"hidden_act\":\"silu\",\"hidden_size\":1536,\"initializer_range\":0.02,"
    "\"intermediate_size\":8960,\"max_position_embeddings\":131072,\"max_window_layers\":21,\"model_type\":\"qwen2\","
    "\"num_attention_heads\":12,\"num_hidden_layers\":28,\"num_key_value_heads\":2,\"rms_norm_eps\":1e-06,"
    "\"rope_scaling\":null,\"rope_theta\":10000,\"sliding_window\":null,\"tie_word_embeddings\":false,"
    "\"torch_dtype\":\"bfloat16\",\"transformers_version\":\"4.44.0\",\"use_cache\":true,\"use_mrope\":false,"
    "\"use_sliding_window\":false,\"vocab_size\":151936}";

/* deepseek-ai/DeepSeek-R1-Distill-Llama-8B */
static const char *LLAMA_8B =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,\"attention_dropout\":0.0,"
    "\"bos_token_id\":128000,\"eos_token_id\":128001,\"hidden_act\":\"silu\",\"hidden_size\":4096,"
    "\"initializer_range\":0.02,\"intermediate_size\":14336,\"max_position_embeddings\":131072,\"mlp_bias\":false,"
    "\"model_type\":\"llama\",\"num_attention_heads\":32,\"num_hidden_layers\":32,\"num_key_value_heads\":8,"
    "\"pretraining_tp\":1,\"rms_norm_eps\":1e-05,\"rope_scaling\":{\"factor\":8.0,\"high_freq_factor\":4.0,"
    "\"low_freq_factor\":1.0,\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},"
    "\"rope_theta\":500000.0,\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\","
    "\"transformers_version\":\"4.43.0.dev0\",\"use_cache\":true,\"vocab_size\":128256}";

/* deepseek-ai/deepseek-llm-7b-base (MHA, no rope scaling) */
static const char *DSLLM_7B =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,\"bos_token_id\":100000,"
    "\"eos_token_id\":100001,\"hidden_act\":\"silu\",\"hidden_size\":4096,\"initializer_range\":0.02,"
    "\"intermediate_size\":11008,\"max_position_embeddings\":4096,\"model_type\":\"llama\",\"num_attention_heads\":32,"
    "\"num_hidden_layers\":30,\"num_key_value_heads\":32,\"pretraining_tp\":1,\"rms_norm_eps\":1e-06,"
    "\"rope_scaling\":null,\"rope_theta\":10000.0,\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\","
    "\"transformers_version\":\"4.33.1\",\"use_cache\":true,\"vocab_size\":102400}";

static void test_real_configs(void)
{
    dc_config c;
    dc_err err;
    int64_t total, active, mtp;
    CHECK_OK(dc_config_parse(QWEN_1_5B, strlen(QWEN_1_5B), "qwen.json", &c, &err), &err);
    CHECK(c.arch == DC_ARCH_QWEN2 && dc_arch_dense(c.arch) && !strcmp(dc_arch_name(c.arch), "qwen2"));
    CHECK(c.n_heads == 12 && c.n_kv_heads == 2 && c.head_dim == 128 && c.n_layers == 28);
    CHECK(c.attn_qkv_bias && !c.attn_o_bias && !c.tie_word_embeddings && !c.rope_llama3 && !c.rope_yarn);
    CHECK(c.rms_norm_eps == 1e-6 && c.rope_theta == 10000 && c.bos_token_id == 151643);
    CHECK(c.first_k_dense_replace == 28 && c.n_experts_routed == 0 && c.n_mtp_layers == 0 && c.max_window_layers == 21);
    dc_config_param_counts(&c, &total, &active, &mtp);
    CHECK_MSG(total == 1777088000 && active == total && mtp == 0, "qwen 1.5B params %lld", (long long)total);

    CHECK_OK(dc_config_parse(LLAMA_8B, strlen(LLAMA_8B), "llama.json", &c, &err), &err);
    CHECK(c.arch == DC_ARCH_LLAMA && c.n_heads == 32 && c.n_kv_heads == 8 && c.head_dim == 128);
    CHECK(!c.attn_qkv_bias && !c.attn_o_bias && c.rms_norm_eps == 1e-5 && c.rope_theta == 500000);
    CHECK(c.rope_llama3 && c.rope_factor == 8 && c.rope_low_freq_factor == 1 && c.rope_high_freq_factor == 4 &&
          c.rope_original_max_pos == 8192);
    dc_config_param_counts(&c, &total, &active, &mtp);
    CHECK_MSG(total == 8030261248LL, "llama 8B params %lld", (long long)total);

    CHECK_OK(dc_config_parse(DSLLM_7B, strlen(DSLLM_7B), "dsllm.json", &c, &err), &err);
    CHECK(c.arch == DC_ARCH_LLAMA && c.n_kv_heads == 32 && !c.rope_llama3 && c.rms_norm_eps == 1e-6);
    dc_config_param_counts(&c, &total, &active, &mtp);
    CHECK_MSG(total == 6910365696LL, "deepseek-llm 7B params %lld", (long long)total);
}

/* LLAMA_8B with one top-level field replaced or added ("key": value). */
static char *llama_with(const char *key, const char *value)
{
    char *s = malloc(strlen(LLAMA_8B) + strlen(key) + (value ? strlen(value) : 0) + 16);
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(LLAMA_8B, pat);
    if (!at) { /* add it in front */
        sprintf(s, "{%s%s,%s", pat, value, LLAMA_8B + 1);
        return s;
    }
    const char *v = at + strlen(pat), *end = v;
    int depth = 0;
    while (*end && (depth || (*end != ',' && *end != '}'))) {
        if (*end == '{' || *end == '[') depth++;
        if (*end == '}' || *end == ']') depth--;
        end++;
    }
    sprintf(s, "%.*s%s%s", (int)(v - LLAMA_8B), LLAMA_8B, value, end);
    return s;
}

typedef struct cfg_case {
    const char *what, *key, *value;
    dc_status code;
    const char *msg;
} cfg_case;

static const cfg_case CFG_CASES[] = {
    {"valid", "x", "1", DC_OK, ""},
    {"eos list (R1-Distill-Llama-70B)", "eos_token_id", "[128001,128008,128009]", DC_OK, ""},
    {"rope_scaling null", "rope_scaling", "null", DC_OK, ""},
    {"rope_scaling default", "rope_scaling", "{\"rope_type\":\"default\"}", DC_OK, ""},
    {"yarn", "rope_scaling", "{\"rope_type\":\"yarn\",\"factor\":4.0}", DC_ERR_UNSUPPORTED,
     "unsupported rope_scaling type \"yarn\" for llama"},
    {"linear (old \"type\" key)", "rope_scaling", "{\"type\":\"linear\",\"factor\":4.0}", DC_ERR_UNSUPPORTED,
     "unsupported rope_scaling type \"linear\""},
    {"dynamic", "rope_scaling", "{\"rope_type\":\"dynamic\",\"factor\":2.0}", DC_ERR_UNSUPPORTED,
     "unsupported rope_scaling type \"dynamic\""},
    {"llama3 without low_freq_factor", "rope_scaling",
     "{\"rope_type\":\"llama3\",\"factor\":8.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}",
     DC_ERR_CONFIG, "missing required field \"low_freq_factor\""},
    {"llama3 high <= low", "rope_scaling",
     "{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":4.0,\"high_freq_factor\":4.0,"
     "\"original_max_position_embeddings\":8192}", DC_ERR_CONFIG, "high_freq_factor 4 must exceed low_freq_factor 4"},
    {"heads not a multiple of kv heads", "num_key_value_heads", "5", DC_ERR_CONFIG,
     "num_attention_heads 32 is not a multiple of num_key_value_heads 5"},
    {"odd head_dim", "head_dim", "127", DC_ERR_CONFIG, "head_dim 127 must be even"},
    {"gelu", "hidden_act", "\"gelu\"", DC_ERR_UNSUPPORTED, "unsupported hidden_act \"gelu\""},
    {"mlp_bias", "mlp_bias", "true", DC_ERR_UNSUPPORTED, "mlp_bias true is not supported"},
    {"sliding window", "use_sliding_window", "true", DC_ERR_UNSUPPORTED, "use_sliding_window true is not supported"},
    {"partial rotary", "partial_rotary_factor", "0.5", DC_ERR_UNSUPPORTED, "partial_rotary_factor 0.5"},
    {"missing hidden_size", "hidden_size", "null", DC_ERR_CONFIG, "missing required field \"hidden_size\""},
    {"bos outside vocab", "bos_token_id", "128256", DC_ERR_CONFIG, "out of vocab_size 128256"},
    {"eos list of strings", "eos_token_id", "[\"x\"]", DC_ERR_CONFIG, "must be an integer or a list of integers"},
    {"fp8 block quantization", "quantization_config",
     "{\"quant_method\":\"fp8\",\"fmt\":\"e4m3\",\"weight_block_size\":[128,128]}", DC_OK, ""},
    {"other quantization", "quantization_config", "{\"quant_method\":\"awq\"}", DC_ERR_UNSUPPORTED,
     "unsupported quantization_config.quant_method \"awq\""},
};

static void test_config_errors(void)
{
    for (size_t i = 0; i < sizeof CFG_CASES / sizeof CFG_CASES[0]; i++) {
        const cfg_case *c = &CFG_CASES[i];
        char *js = llama_with(c->key, c->value);
        dc_config cfg;
        dc_err err = {0};
        dc_status st = dc_config_parse(js, strlen(js), "cfg.json", &cfg, &err);
        CHECK_MSG(st == c->code, "%s: status %d, expected %d (%s)", c->what, (int)st, (int)c->code, err.msg);
        CHECK_MSG(st == DC_OK || (strstr(err.msg, c->msg) && strstr(err.msg, "cfg.json")), "%s: message '%s'",
                  c->what, err.msg);
        if (!strcmp(c->key, "eos_token_id") && st == DC_OK)
            CHECK(cfg.eos_token_id == 128001);
        if (!strcmp(c->key, "quantization_config") && st == DC_OK)
            CHECK(cfg.quant_fp8 && cfg.block_rows == 128);
        free(js);
    }
    /* qwen2: q/k/v biases whatever attention_bias says; llama: attention_bias -> q/k/v/o biases */
    dc_config cfg;
    dc_err err;
    char *js = llama_with("attention_bias", "true");
    CHECK_OK(dc_config_parse(js, strlen(js), "b.json", &cfg, &err), &err);
    CHECK(cfg.attn_qkv_bias && cfg.attn_o_bias);
    free(js);
    const char *q = "{\"model_type\":\"qwen2\",\"vocab_size\":100,\"hidden_size\":64,\"intermediate_size\":128,"
                    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4}}";
    CHECK(dc_config_parse(q, strlen(q), "q.json", &cfg, &err) == DC_ERR_UNSUPPORTED &&
          strstr(err.msg, "\"yarn\" for qwen2"));
    const char *q2 = "{\"model_type\":\"qwen2\",\"vocab_size\":100,\"hidden_size\":64,\"intermediate_size\":128,"
                     "\"num_hidden_layers\":2,\"num_attention_heads\":4}";
    CHECK_OK(dc_config_parse(q2, strlen(q2), "q2.json", &cfg, &err), &err);
    CHECK(cfg.n_kv_heads == 4 && cfg.head_dim == 16 && cfg.attn_qkv_bias && !cfg.attn_o_bias &&
          cfg.rms_norm_eps == 1e-6 && cfg.max_position_embeddings == 32768);
    const char *q3 = "{\"model_type\":\"qwen2\",\"vocab_size\":100,\"hidden_size\":66,\"intermediate_size\":128,"
                     "\"num_hidden_layers\":2,\"num_attention_heads\":4}";
    CHECK(dc_config_parse(q3, strlen(q3), "q3.json", &cfg, &err) == DC_ERR_CONFIG &&
          strstr(err.msg, "hidden_size 66 is not a multiple of num_attention_heads 4"));
}

/* The presets serialise to config.json and parse back to the same config. */
static void test_presets_roundtrip(void)
{
    const char *presets[] = {"qwen2-tiny", "llama-tiny"};
    for (int p = 0; p < 2; p++) {
        for (int fp8 = 0; fp8 < 2; fp8++) {
            dc_mk_opts o;
            dc_mk_opts_init(&o);
            o.preset = presets[p];
            o.fp8 = fp8;
            dc_config a, b;
            dc_err err;
            CHECK_OK(dc_mk_config(&o, &a, &err), &err);
            char *js = dc_config_to_json(&a);
            CHECK(js != NULL);
            CHECK_OK(dc_config_parse(js, strlen(js), "rt.json", &b, &err), &err);
            CHECK_MSG(!memcmp(&a, &b, sizeof a), "%s fp8=%d: config does not round-trip through config.json",
                      presets[p], fp8);
            CHECK(a.quant_fp8 == (fp8 == 1));
            free(js);
        }
        dc_mk_opts o;
        dc_mk_opts_init(&o);
        o.preset = presets[p];
        o.experts = 4;
        dc_config a;
        dc_err err;
        CHECK(dc_mk_config(&o, &a, &err) == DC_ERR_USAGE && strstr(err.msg, "dense model"));
    }
}

/* ================================================================================================
 * tensor names
 * ================================================================================================ */

static void test_names(void)
{
    dc_mk_opts o;
    dc_mk_opts_init(&o);
    dc_config q, l, v3;
    dc_err err;
    o.preset = "qwen2-tiny";
    CHECK_OK(dc_mk_config(&o, &q, &err), &err);
    o.preset = "llama-tiny";
    CHECK_OK(dc_mk_config(&o, &l, &err), &err);
    o.preset = "v3-tiny";
    CHECK_OK(dc_mk_config(&o, &v3, &err), &err);
    const dc_config *cfgs[2] = {&q, &l};
    for (int k = 0; k < 2; k++) {
        const dc_config *c = cfgs[k];
        dc_expect *ex;
        size_t n;
        CHECK_OK(dc_expect_build(c, true, &ex, &n, &err), &err);
        /* embed + per layer (2 norms, q/k/v/o, 3 MLP, biases) + final norm + lm_head unless tied;
         * with scales: one per FP8 projection (q/k/v/o/gate/up/down) */
        size_t per = 2 + 4 + 3 + (c->attn_qkv_bias ? 3 : 0) + (c->attn_o_bias ? 1 : 0);
        size_t want = 1 + (size_t)c->n_layers * (per + 7) + 1 + (c->tie_word_embeddings ? 0 : 1);
        CHECK_MSG(n == want, "%s: %zu expected tensors, want %zu", dc_arch_name(c->arch), n, want);
        size_t n_fp8 = 0, n_bias = 0;
        for (size_t i = 0; i < n; i++) {
            dc_name_info ni;
            bool ok = dc_name_parse(c, ex[i].name, &ni);
            CHECK_MSG(ok && ni.role == ex[i].info.role && ni.layer == ex[i].info.layer &&
                      ni.is_scale == ex[i].info.is_scale && !ni.is_mtp, "%s does not parse back", ex[i].name);
            n_fp8 += ex[i].fp8;
            if (strstr(ex[i].name, ".bias")) {
                n_bias++;
                CHECK(!ex[i].fp8 && ex[i].ndim == 1 && !dc_role_is_fp8(ex[i].info.role));
            }
            if (ex[i].info.role == DC_ROLE_K_PROJ && !ex[i].info.is_scale)
                CHECK(ex[i].shape[0] == (int64_t)c->n_kv_heads * c->head_dim && ex[i].shape[1] == c->hidden_size);
        }
        CHECK(n_fp8 == (size_t)c->n_layers * 7);
        CHECK(n_bias == (size_t)c->n_layers * (c->attn_qkv_bias ? 3 : 0));
        dc_expect_free(ex, n);
    }
    dc_name_info ni;
    CHECK(dc_name_parse(&q, "model.layers.1.self_attn.k_proj.bias", &ni) && ni.role == DC_ROLE_K_BIAS && ni.layer == 1);
    CHECK(dc_name_parse(&q, "model.layers.0.self_attn.v_proj.weight_scale_inv", &ni) && ni.is_scale &&
          ni.role == DC_ROLE_V_PROJ);
    CHECK(!dc_name_parse(&q, "model.layers.0.self_attn.q_proj.bias_scale_inv", &ni));
    CHECK(!dc_name_parse(&q, "model.layers.3.self_attn.q_proj.weight", &ni));            /* beyond the layers */
    CHECK(!dc_name_parse(&q, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight", &ni)); /* MLA */
    CHECK(!dc_name_parse(&q, "model.layers.0.mlp.experts.0.up_proj.weight", &ni));
    CHECK(!dc_name_parse(&v3, "model.layers.0.self_attn.k_proj.weight", &ni));           /* DeepSeek has none */
    CHECK(!dc_name_parse(&v3, "model.layers.0.self_attn.q_proj.bias", &ni));
    CHECK(dc_name_parse(&l, "lm_head.weight", &ni) && ni.role == DC_ROLE_LM_HEAD);
    CHECK(!strcmp(dc_role_name(DC_ROLE_O_BIAS), "o_bias") && !strcmp(dc_role_name(DC_ROLE_K_PROJ), "k_proj"));
}

/* ================================================================================================
 * Independent float64 reference (transformers' Qwen2ForCausalLM / LlamaForCausalLM, eager attention)
 * ================================================================================================ */

/* A whole tensor as doubles: BF16 decoded here, anything else (FP8 + scale) through the storage
 * reader. NULL if absent. */
static double *ref_tensor(const dc_ckpt *ck, const char *name)
{
    const dc_tensor *t = dc_ckpt_find(ck, name);
    if (!t)
        return NULL;
    int64_t n = dc_tensor_nelem(t);
    double *out = malloc((size_t)n * sizeof(double));
    if (t->dtype == DC_DT_BF16) {
        for (int64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(t->data[2 * i] | (t->data[2 * i + 1] << 8)) << 16;
            float f;
            memcpy(&f, &bits, 4);
            out[i] = f;
        }
        return out;
    }
    dc_weight w;
    dc_err err;
    float *tmp = malloc((size_t)n * sizeof(float));
    if (dc_ckpt_weight(ck, name, &w, &err) || dc_weight_rows(&w, 0, w.rows, tmp, DC_DEQ_BF16_ROUND, &err)) {
        fprintf(stderr, "ref: %s\n", err.msg);
        free(tmp);
        free(out);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        out[i] = tmp[i];
    free(tmp);
    return out;
}

static double *layer_tensor(const dc_ckpt *ck, int layer, const char *suffix)
{
    char name[256];
    snprintf(name, sizeof name, "model.layers.%d.%s", layer, suffix);
    return ref_tensor(ck, name);
}

/* y[t][r] = sum_k x[t][k] W[r][k] (+ b[r]) */
static void ref_linear(const double *x, int64_t n, int64_t in, const double *W, const double *b, int64_t out,
                       double *y)
{
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = 0; r < out; r++) {
            double s = b ? b[r] : 0;
            for (int64_t k = 0; k < in; k++)
                s += x[t * in + k] * W[r * in + k];
            y[t * out + r] = s;
        }
}

/* Qwen2RMSNorm / LlamaRMSNorm: weight * (x * rsqrt(mean(x^2) + eps)) */
static void ref_rmsnorm(const double *x, int64_t n, int64_t d, const double *w, double eps, double *y)
{
    for (int64_t t = 0; t < n; t++) {
        double ss = 0;
        for (int64_t i = 0; i < d; i++)
            ss += x[t * d + i] * x[t * d + i];
        double r = 1.0 / sqrt(ss / (double)d + eps);
        for (int64_t i = 0; i < d; i++)
            y[t * d + i] = w[i] * (x[t * d + i] * r);
    }
}

/* inv_freq of _compute_default_rope_parameters, then _compute_llama3_parameters when configured */
static void ref_inv_freq(const dc_config *c, double *f)
{
    int dim = c->head_dim;
    for (int i = 0; i < dim / 2; i++) {
        f[i] = 1.0 / pow(c->rope_theta, (double)(2 * i) / dim);
        if (!c->rope_llama3)
            continue;
        double old = (double)c->rope_original_max_pos;
        double low_wavelen = old / c->rope_low_freq_factor, high_wavelen = old / c->rope_high_freq_factor;
        double wavelen = 2 * M_PI / f[i];
        if (wavelen < high_wavelen)
            continue;                              /* high frequency: kept */
        if (wavelen > low_wavelen) {
            f[i] /= c->rope_factor;                /* low frequency: interpolated */
            continue;
        }
        double smooth = (old / wavelen - c->rope_low_freq_factor) / (c->rope_high_freq_factor - c->rope_low_freq_factor);
        f[i] = (1 - smooth) * f[i] / c->rope_factor + smooth * f[i];
    }
}

/* apply_rotary_pos_emb: x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1) */
static void ref_rope(double *x, int dim, const double *inv_freq, int64_t pos)
{
    int half = dim / 2;
    double tmp[1024];
    for (int i = 0; i < dim; i++) {
        double ang = (double)pos * inv_freq[i % half];
        double rot = i < half ? -x[i + half] : x[i - half];
        tmp[i] = x[i] * cos(ang) + rot * sin(ang);
    }
    memcpy(x, tmp, (size_t)dim * sizeof(double));
}

/* logits [n][V] of tokens[0..n) from position 0 */
static bool ref_forward(const dc_ckpt *ck, const int32_t *tok, int64_t n, double *logits)
{
    const dc_config *c = &ck->cfg;
    int64_t D = c->hidden_size, V = c->vocab_size, I = c->intermediate_size, H = c->n_heads, KVH = c->n_kv_heads;
    int64_t hd = c->head_dim, Q = H * hd, KV = KVH * hd, groups = H / KVH;
    double eps = c->rms_norm_eps;
    double *E = ref_tensor(ck, "model.embed_tokens.weight");
    double *x = calloc((size_t)(n * D), sizeof(double)), *h = malloc((size_t)(n * D) * sizeof(double));
    double *q = malloc((size_t)(n * Q) * sizeof(double)), *k = malloc((size_t)(n * KV) * sizeof(double));
    double *v = malloc((size_t)(n * KV) * sizeof(double)), *o = malloc((size_t)(n * Q) * sizeof(double));
    double *a = malloc((size_t)(n * D) * sizeof(double)), *g = malloc((size_t)(n * I) * sizeof(double));
    double *u = malloc((size_t)(n * I) * sizeof(double)), *p = malloc((size_t)n * sizeof(double));
    double inv_freq[512];
    ref_inv_freq(c, inv_freq);
    bool ok = E != NULL;
    for (int64_t t = 0; ok && t < n; t++)
        memcpy(x + t * D, E + (int64_t)tok[t] * D, (size_t)D * sizeof(double));
    for (int li = 0; ok && li < c->n_layers; li++) {
        double *w_in = layer_tensor(ck, li, "input_layernorm.weight");
        double *wq = layer_tensor(ck, li, "self_attn.q_proj.weight"), *bq = layer_tensor(ck, li, "self_attn.q_proj.bias");
        double *wk = layer_tensor(ck, li, "self_attn.k_proj.weight"), *bk = layer_tensor(ck, li, "self_attn.k_proj.bias");
        double *wv = layer_tensor(ck, li, "self_attn.v_proj.weight"), *bv = layer_tensor(ck, li, "self_attn.v_proj.bias");
        double *wo = layer_tensor(ck, li, "self_attn.o_proj.weight"), *bo = layer_tensor(ck, li, "self_attn.o_proj.bias");
        double *w_post = layer_tensor(ck, li, "post_attention_layernorm.weight");
        double *wg = layer_tensor(ck, li, "mlp.gate_proj.weight"), *wu = layer_tensor(ck, li, "mlp.up_proj.weight");
        double *wd = layer_tensor(ck, li, "mlp.down_proj.weight");
        ok = w_in && wq && wk && wv && wo && w_post && wg && wu && wd;
        if (ok) {
            /* self-attention */
            ref_rmsnorm(x, n, D, w_in, eps, h);
            ref_linear(h, n, D, wq, bq, Q, q);
            ref_linear(h, n, D, wk, bk, KV, k);
            ref_linear(h, n, D, wv, bv, KV, v);
            for (int64_t t = 0; t < n; t++) {
                for (int64_t hh = 0; hh < H; hh++)
                    ref_rope(q + t * Q + hh * hd, (int)hd, inv_freq, t);
                for (int64_t hh = 0; hh < KVH; hh++)
                    ref_rope(k + t * KV + hh * hd, (int)hd, inv_freq, t);
            }
            double scaling = pow((double)hd, -0.5);
            for (int64_t s = 0; s < n; s++)
                for (int64_t hh = 0; hh < H; hh++) {
                    int64_t kvh = hh / groups; /* repeat_kv */
                    double mx = -INFINITY, sum = 0;
                    for (int64_t t = 0; t <= s; t++) {
                        double d = 0;
                        for (int64_t i = 0; i < hd; i++)
                            d += q[s * Q + hh * hd + i] * k[t * KV + kvh * hd + i];
                        p[t] = d * scaling;
                        mx = fmax(mx, p[t]);
                    }
                    for (int64_t t = 0; t <= s; t++)
                        sum += (p[t] = exp(p[t] - mx));
                    for (int64_t i = 0; i < hd; i++) {
                        double acc = 0;
                        for (int64_t t = 0; t <= s; t++)
                            acc += p[t] / sum * v[t * KV + kvh * hd + i];
                        o[s * Q + hh * hd + i] = acc;
                    }
                }
            ref_linear(o, n, Q, wo, bo, D, a);
            for (int64_t i = 0; i < n * D; i++)
                x[i] += a[i];
            /* MLP: down(silu(gate(x)) * up(x)) */
            ref_rmsnorm(x, n, D, w_post, eps, h);
            ref_linear(h, n, D, wg, NULL, I, g);
            ref_linear(h, n, D, wu, NULL, I, u);
            for (int64_t i = 0; i < n * I; i++)
                g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            ref_linear(g, n, I, wd, NULL, D, a);
            for (int64_t i = 0; i < n * D; i++)
                x[i] += a[i];
        }
        free(w_in); free(wq); free(bq); free(wk); free(bk); free(wv); free(bv); free(wo); free(bo);
        free(w_post); free(wg); free(wu); free(wd);
    }
    double *wf = ref_tensor(ck, "model.norm.weight");
    double *head = c->tie_word_embeddings ? NULL : ref_tensor(ck, "lm_head.weight");
    ok = ok && wf && (c->tie_word_embeddings || head);
    if (ok) {
        ref_rmsnorm(x, n, D, wf, eps, h);
        ref_linear(h, n, D, head ? head : E, NULL, V, logits);
    }
    free(wf); free(head); free(E); free(x); free(h); free(q); free(k); free(v); free(o); free(a); free(g); free(u);
    free(p);
    return ok;
}

/* ================================================================================================
 * forward pass vs the reference
 * ================================================================================================ */

typedef void (*tweak_fn)(dc_config *c);

/* Writes a checkpoint of preset (optionally FP8, config tweaked) into a fresh directory. */
static const char *make_model(const char *name, const char *preset, int fp8, tweak_fn tweak)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s", dc_test_tmpdir(name));
    dc_mk_opts o;
    dc_mk_opts_init(&o);
    o.preset = preset;
    o.fp8 = fp8;
    o.seed = 7;
    dc_config c;
    dc_err err;
    if (dc_mk_config(&o, &c, &err) != DC_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return NULL;
    }
    if (tweak)
        tweak(&c);
    if (dc_mkmodel_write(path, &o, &c, NULL, &err) != DC_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return NULL;
    }
    return path;
}

static void random_tokens(int32_t *tok, int64_t n, int64_t vocab, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((s >> 33) % (uint64_t)vocab);
    }
}

/* Forward with 1 and 2 threads (identical bits) and the reference: max |d logits| <= 1e-4. */
static double check_model(const char *what, const char *path, int64_t n, uint64_t mem_budget)
{
    dc_ckpt *ck = NULL;
    dc_model *m = NULL;
    dc_err err;
    double maxd = INFINITY;
    CHECK_OK(dc_ckpt_open(path, &ck, &err), &err);
    if (!ck)
        return maxd;
    dc_fwd_opts opts;
    dc_fwd_opts_default(&opts);
    opts.mem_budget = mem_budget;
    CHECK_OK(dc_model_load(ck, &opts, &m, &err), &err);
    if (!m) {
        dc_ckpt_close(ck);
        return maxd;
    }
    int64_t V = dc_model_vocab(m);
    int32_t *tok = malloc((size_t)n * sizeof(int32_t));
    random_tokens(tok, n, V, 11);
    float *l2 = malloc((size_t)(n * V) * sizeof(float)), *l1 = malloc((size_t)(n * V) * sizeof(float));
    double *ref = malloc((size_t)(n * V) * sizeof(double));
    omp_set_num_threads(2);
    dc_fwd_out o2 = {l2, NULL, NULL};
    CHECK_OK(dc_forward(m, tok, n, &o2, &err), &err);
    omp_set_num_threads(1);
    dc_fwd_out o1 = {l1, NULL, NULL};
    CHECK_OK(dc_forward(m, tok, n, &o1, &err), &err);
    omp_set_num_threads(2);
    CHECK_MSG(!memcmp(l1, l2, (size_t)(n * V) * sizeof(float)), "%s: logits differ between 1 and 2 threads", what);
    bool ok = ref_forward(ck, tok, n, ref);
    CHECK_MSG(ok, "%s: reference could not read the checkpoint", what);
    if (ok) {
        maxd = 0;
        double maxabs = 0;
        for (int64_t i = 0; i < n * V; i++) {
            double d = fabs((double)l2[i] - ref[i]);
            if (!(d <= maxd))
                maxd = d;
            maxabs = fmax(maxabs, fabs(ref[i]));
        }
        CHECK_MSG(maxd <= 1e-4, "%s: max |d logits| = %.3g vs the float64 reference", what, maxd);
        CHECK_MSG(maxabs > 1, "%s: degenerate logits (max |logit| %.3g)", what, maxabs);
        printf("%-44s %3lld tokens  max|logit| %6.2f  max|d logits| vs float64 reference %.3g\n", what,
               (long long)n, maxabs, maxd);
    }
    free(tok);
    free(l1);
    free(l2);
    free(ref);
    dc_model_free(m);
    dc_ckpt_close(ck);
    return maxd;
}

/* untied lm_head (as the R1-Distill-Qwen releases), and an rms_norm_eps large enough to matter */
static void tweak_qwen_untied(dc_config *c)
{
    c->tie_word_embeddings = false;
    c->rms_norm_eps = 0.02;
}

/* llama3 scaling that matters: original_max_position_embeddings 32, tokens beyond it, theta 10000
 * so that the high, medium and low frequency bands all occur with head_dim 32. */
static void tweak_llama3_short(dc_config *c)
{
    c->rope_theta = 10000;
    c->rope_original_max_pos = 32;
    c->rope_factor = 8;
    c->rope_low_freq_factor = 1;
    c->rope_high_freq_factor = 4;
}

/* DeepSeek LLM style (MHA, no rope scaling, eps 1e-6) plus attention_bias (q/k/v/o biases) and
 * head_dim != hidden_size / num_attention_heads. */
static void tweak_llama_mha_bias(dc_config *c)
{
    c->hidden_size = 160;
    c->n_heads = c->n_kv_heads = 4;
    c->head_dim = 48;
    c->attn_qkv_bias = c->attn_o_bias = true;
    c->rope_llama3 = false;
    c->rope_factor = c->rope_low_freq_factor = c->rope_high_freq_factor = 0;
    c->rope_original_max_pos = 0;
    c->rope_theta = 10000;
    c->rms_norm_eps = 1e-6;
    c->qk_rope_head_dim = c->v_head_dim = 48;
}

static void test_forward_vs_reference(void)
{
    const char *p;
    if ((p = make_model("q-bf16", "qwen2-tiny", 0, NULL)))
        check_model("qwen2-tiny (biases, tied, GQA 8/2)", p, 96, DC_FWD_DEFAULT_MEM_BUDGET);
    if ((p = make_model("q-bf16", "qwen2-tiny", 0, NULL)))
        check_model("qwen2-tiny, weight cache off", p, 40, 0);
    if ((p = make_model("q-untied", "qwen2-tiny", 0, tweak_qwen_untied)))
        check_model("qwen2-tiny untied lm_head, rms_norm_eps 0.02", p, 64, DC_FWD_DEFAULT_MEM_BUDGET);
    if ((p = make_model("q-fp8", "qwen2-tiny", 1, NULL)))
        check_model("qwen2-tiny --dtype fp8", p, 64, DC_FWD_DEFAULT_MEM_BUDGET);
    if ((p = make_model("l-bf16", "llama-tiny", 0, NULL)))
        check_model("llama-tiny (llama3 8192, GQA 8/2, eps 1e-5)", p, 64, DC_FWD_DEFAULT_MEM_BUDGET);
    if ((p = make_model("l-fp8", "llama-tiny", 1, NULL)))
        check_model("llama-tiny --dtype fp8", p, 48, DC_FWD_DEFAULT_MEM_BUDGET);
    if ((p = make_model("l-mha", "llama-tiny", 0, tweak_llama_mha_bias)))
        check_model("llama MHA, q/k/v/o biases, head_dim 48", p, 64, DC_FWD_DEFAULT_MEM_BUDGET);

    /* llama3 scaling with positions far beyond original_max_position_embeddings */
    if (!(p = make_model("l-llama3", "llama-tiny", 0, tweak_llama3_short)))
        return;
    check_model("llama3 rope, original_max 32, 160 tokens", p, 160, DC_FWD_DEFAULT_MEM_BUDGET);
    dc_ckpt *ck;
    dc_model *m;
    dc_err err;
    CHECK_OK(dc_ckpt_open(p, &ck, &err), &err);
    CHECK_OK(dc_model_load(ck, NULL, &m, &err), &err);
    const dc_config *c = dc_model_config(m);
    double ref[64], plain[64];
    ref_inv_freq(c, ref);
    dc_config unscaled = *c;
    unscaled.rope_llama3 = false;
    ref_inv_freq(&unscaled, plain);
    const float *f = dc_model_rope_freqs(m);
    int kept = 0, smoothed = 0, divided = 0;
    for (int i = 0; i < c->head_dim / 2; i++) {
        CHECK_MSG(fabs(f[i] - ref[i]) <= 2e-7 * ref[i], "inv_freq[%d] %.9g vs %.9g", i, f[i], ref[i]);
        double r = ref[i] / plain[i];
        kept += r == 1.0;
        divided += fabs(r - 1.0 / 8) < 1e-12;
        smoothed += r < 1.0 && r > 1.0 / 8 + 1e-12;
    }
    CHECK_MSG(kept == 1 && smoothed == 2 && divided == 13, "bands: %d kept, %d smoothed, %d divided", kept, smoothed,
              divided);
    CHECK(fabs(dc_model_softmax_scale(m) - 1.0 / sqrt(32.0)) < 1e-8);
    /* the scaling changes the logits: the same weights without it differ */
    int64_t n = 160, V = dc_model_vocab(m);
    int32_t *tok = malloc((size_t)n * sizeof(int32_t));
    random_tokens(tok, n, V, 11);
    double *a = malloc((size_t)(n * V) * sizeof(double)), *b = malloc((size_t)(n * V) * sizeof(double));
    ref_forward(ck, tok, n, a);
    ck->cfg.rope_llama3 = false;
    ref_forward(ck, tok, n, b);
    ck->cfg.rope_llama3 = true;
    double diff = 0;
    for (int64_t i = 0; i < n * V; i++)
        diff = fmax(diff, fabs(a[i] - b[i]));
    CHECK_MSG(diff > 1e-2, "llama3 scaling changes the logits by only %.3g", diff);
    free(tok);
    free(a);
    free(b);
    dc_model_free(m);
    dc_ckpt_close(ck);
}

/* ================================================================================================
 * broken checkpoints
 * ================================================================================================ */

/* Overwrites dir/config.json with c. */
static void write_config(const char *dir, const dc_config *c)
{
    char *js = dc_config_to_json(c);
    char *path = dc_path_join(dir, "config.json");
    dc_err err;
    CHECK_OK(dc_write_file_atomic(path, js, strlen(js), &err), &err);
    free(js);
    free(path);
}

static void expect_load_error(const char *dir, dc_status code, const char *msg1, const char *msg2)
{
    dc_ckpt *ck;
    dc_model *m = NULL;
    dc_err err = {0};
    CHECK_OK(dc_ckpt_open(dir, &ck, &err), &err);
    if (!ck)
        return;
    dc_status st = dc_model_load(ck, NULL, &m, &err);
    CHECK_MSG(st == code && strstr(err.msg, msg1) && (!msg2 || strstr(err.msg, msg2)), "status %d: %s", (int)st,
              err.msg);
    dc_model_free(m);
    dc_ckpt_close(ck);
}

static void test_broken(void)
{
    const char *p = make_model("broken", "llama-tiny", 0, NULL);
    if (!p)
        return;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", p);
    dc_mk_opts o;
    dc_mk_opts_init(&o);
    o.preset = "llama-tiny";
    dc_config c, c2;
    dc_err err;
    CHECK_OK(dc_mk_config(&o, &c, &err), &err);
    /* attention_bias true: the q/k/v/o biases are missing */
    c2 = c;
    c2.attn_qkv_bias = c2.attn_o_bias = true;
    write_config(dir, &c2);
    expect_load_error(dir, DC_ERR_MODEL, "missing tensor model.layers.0.self_attn.q_proj.bias", "expected shape [256]");
    /* 4 key/value heads: k_proj is mis-shaped */
    c2 = c;
    c2.n_kv_heads = 4;
    write_config(dir, &c2);
    expect_load_error(dir, DC_ERR_MODEL, "self_attn.k_proj.weight", "has shape [64x256]");
    expect_load_error(dir, DC_ERR_MODEL, "key_value heads 4", "implies [128x256]");
    /* tied embeddings, but the checkpoint has an lm_head: inspect --check reports it unexpected */
    c2 = c;
    c2.tie_word_embeddings = true;
    write_config(dir, &c2);
    dc_ckpt *ck;
    CHECK_OK(dc_ckpt_open(dir, &ck, &err), &err);
    if (ck) {
        dc_check chk;
        CHECK_OK(dc_ckpt_check(ck, &chk, &err), &err);
        CHECK(chk.n_unexpected == 1 && !strcmp(chk.unexpected[0].name, "lm_head.weight") && chk.n_missing == 0);
        dc_check_free(&chk);
        dc_ckpt_close(ck);
    }
    /* back to the original: loads */
    write_config(dir, &c);
    expect_load_error(dir, DC_OK, "", NULL);
    /* token ids outside the vocabulary */
    CHECK_OK(dc_ckpt_open(dir, &ck, &err), &err);
    dc_model *m;
    CHECK_OK(dc_model_load(ck, NULL, &m, &err), &err);
    int32_t bad[3] = {1, 3000, 2};
    float *lg = malloc(3 * 3000 * sizeof(float));
    dc_fwd_out out = {lg, NULL, NULL};
    CHECK(dc_forward(m, bad, 3, &out, &err) == DC_ERR_INPUT && strstr(err.msg, "3000"));
    free(lg);
    dc_model_free(m);
    dc_ckpt_close(ck);
}

int main(void)
{
    test_real_configs();
    test_config_errors();
    test_presets_roundtrip();
    test_names();
    test_forward_vs_reference();
    test_broken();
    return dc_test_done();
}
