#include "dc_mkmodel.h"
#include "dc_fp8.h"
#include "dc_float.h"
#include "dc_io.h"
#include "dc_names.h"
#include "dc_safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dc_mk_opts_init(dc_mk_opts *o)
{
    memset(o, 0, sizeof *o);
    o->preset = "v3-tiny";
    o->seed = 1;
    o->layers = o->dense = o->experts = o->mtp = o->fp8 = o->scale_fmt = -1;
    o->vocab = -1;
}

const char *dc_mk_presets(void)
{
    return "v3-tiny, v3-tiny-fp8, v3-tiny-fp8-ue8m0, v32-tiny, v32-tiny-fp8, v2-lite-tiny, v3-layer, qwen2-tiny, "
           "llama-tiny";
}

static void v3_tiny(dc_config *c)
{
    c->arch = DC_ARCH_DEEPSEEK_V3;
    snprintf(c->architecture, sizeof c->architecture, "DeepseekV3ForCausalLM");
    c->vocab_size = 3000;
    c->hidden_size = 320;
    c->intermediate_size = 448;
    c->moe_intermediate_size = 160;
    c->n_layers = 3;
    c->n_mtp_layers = 1;
    c->n_heads = c->n_kv_heads = 6;
    c->q_lora_rank = 96;
    c->kv_lora_rank = 64;
    c->qk_nope_head_dim = 32;
    c->qk_rope_head_dim = 16;
    c->v_head_dim = 32;
    c->n_experts_routed = 16;
    c->n_experts_shared = 1;
    c->n_experts_per_tok = 4;
    c->n_group = 4;
    c->topk_group = 2;
    c->first_k_dense_replace = 1;
    c->moe_layer_freq = 1;
    c->routed_scaling_factor = 2.5;
    c->scoring_func = DC_SCORE_SIGMOID;
    snprintf(c->topk_method, sizeof c->topk_method, "noaux_tc");
    c->norm_topk_prob = true;
    c->has_router_bias = true;
    c->bos_token_id = 0;
    c->eos_token_id = 1;
}

static void yarn(dc_config *c, double mscale)
{
    c->rope_theta = 10000;
    c->rms_norm_eps = 1e-6;
    c->max_position_embeddings = 163840;
    c->rope_yarn = true;
    c->rope_factor = 40;
    c->rope_original_max_pos = 4096;
    c->rope_beta_fast = 32;
    c->rope_beta_slow = 1;
    c->rope_mscale = c->rope_mscale_all_dim = mscale;
}

/* The dense distills at toy size (docs/distills.md has the real configs). qwen2-tiny: Qwen2 with
 * q/k/v biases, 4:1 GQA, rope_theta 10000, eps 1e-6 and tied embeddings (as Qwen2.5-1.5B; the
 * R1-Distill-Qwen-1.5B release itself unties them). llama-tiny: Llama with 4:1 GQA, untied
 * lm_head, rope_theta 500000, eps 1e-5 and the llama3 rope scaling of R1-Distill-Llama-8B. */
static void dense_tiny(dc_config *c, bool qwen)
{
    c->arch = qwen ? DC_ARCH_QWEN2 : DC_ARCH_LLAMA;
    snprintf(c->architecture, sizeof c->architecture, qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM");
    c->vocab_size = 3000;
    c->hidden_size = 256;
    c->intermediate_size = 640;
    c->n_layers = 3;
    c->n_heads = 8;
    c->n_kv_heads = 2;
    c->head_dim = 32;
    c->first_k_dense_replace = c->n_layers;
    c->moe_layer_freq = 1;
    c->n_group = c->topk_group = 1;
    c->routed_scaling_factor = 1.0;
    c->bos_token_id = 2998;
    c->eos_token_id = 2999;
    if (qwen) {
        c->attn_qkv_bias = true;
        c->tie_word_embeddings = true;
        c->rope_theta = 10000;
        c->rms_norm_eps = 1e-6;
        c->max_position_embeddings = 131072;
        c->max_window_layers = c->n_layers;
    } else {
        c->rope_theta = 500000;
        c->rms_norm_eps = 1e-5;
        c->max_position_embeddings = 131072;
        c->rope_llama3 = true;
        c->rope_factor = 8;
        c->rope_low_freq_factor = 1;
        c->rope_high_freq_factor = 4;
        c->rope_original_max_pos = 8192;
    }
}

dc_status dc_mk_config(const dc_mk_opts *o, dc_config *c, dc_err *err)
{
    memset(c, 0, sizeof *c);
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "bfloat16");
    bool fp8 = false;
    dc_scale_fmt sf = DC_SCALE_F32;
    uint64_t shard = 0;
    const char *p = o->preset;
    if (!strcmp(p, "v3-tiny") || !strcmp(p, "v3-tiny-fp8") || !strcmp(p, "v3-tiny-fp8-ue8m0")) {
        v3_tiny(c);
        yarn(c, 1.0);
        fp8 = strcmp(p, "v3-tiny") != 0;
        sf = !strcmp(p, "v3-tiny-fp8-ue8m0") ? DC_SCALE_UE8M0 : DC_SCALE_F32;
    } else if (!strcmp(p, "v32-tiny") || !strcmp(p, "v32-tiny-fp8")) {
        /* DeepSeek-V3.2 at toy size: v3-tiny + the sparse-attention indexer (8 heads of 128 as in the
         * release (llama.cpp's deepseek32 rotates the indexer keys in blocks of 128), the first 16
         * dims rotary) keeping the top 16 keys, so that sequences past 16 tokens are sparse; the FP8
         * variant has the release's ue8m0 scales */
        v3_tiny(c);
        yarn(c, 1.0);
        snprintf(c->architecture, sizeof c->architecture, "DeepseekV32ForCausalLM");
        c->index_n_heads = 8;
        c->index_head_dim = 128;
        c->index_topk = 16;
        fp8 = strcmp(p, "v32-tiny") != 0;
        sf = DC_SCALE_UE8M0;
    } else if (!strcmp(p, "v2-lite-tiny")) {
        v3_tiny(c);
        yarn(c, 0.707);
        c->arch = DC_ARCH_DEEPSEEK_V2;
        snprintf(c->architecture, sizeof c->architecture, "DeepseekV2ForCausalLM");
        c->hidden_size = 256;
        c->intermediate_size = 512;
        c->moe_intermediate_size = 96;
        c->n_heads = c->n_kv_heads = 4;
        c->q_lora_rank = 0;
        c->n_experts_routed = 12;
        c->n_experts_shared = 2;
        c->n_experts_per_tok = 3;
        c->n_group = c->topk_group = 1;
        c->n_mtp_layers = 0;
        c->routed_scaling_factor = 1.0;
        c->scoring_func = DC_SCORE_SOFTMAX;
        snprintf(c->topk_method, sizeof c->topk_method, "greedy");
        c->norm_topk_prob = false;
        c->has_router_bias = false;
        c->bos_token_id = 2998;
        c->eos_token_id = 2999;
    } else if (!strcmp(p, "v3-layer")) {
        /* DeepSeek-V3's real per-layer dimensions */
        v3_tiny(c);
        yarn(c, 1.0);
        c->vocab_size = 129280;
        c->hidden_size = 7168;
        c->intermediate_size = 18432;
        c->moe_intermediate_size = 2048;
        c->n_layers = 2;
        c->n_mtp_layers = 0;
        c->n_heads = c->n_kv_heads = 128;
        c->q_lora_rank = 1536;
        c->kv_lora_rank = 512;
        c->qk_nope_head_dim = 128;
        c->qk_rope_head_dim = 64;
        c->v_head_dim = 128;
        c->n_experts_routed = 256;
        c->n_experts_per_tok = 8;
        c->n_group = 8;
        c->topk_group = 4;
        fp8 = true;
        shard = 4300000000ull;
    } else if (!strcmp(p, "qwen2-tiny") || !strcmp(p, "llama-tiny")) {
        dense_tiny(c, p[0] == 'q');
        if (o->dense >= 0 || o->experts >= 0 || o->mtp > 0)
            return dc_err_set(err, DC_ERR_USAGE, "preset %s is a dense model: --dense, --experts and --mtp do not apply",
                              p);
    } else
        return dc_err_set(err, DC_ERR_USAGE, "unknown preset '%s' (presets: %s)", p, dc_mk_presets());
    bool dense = dc_arch_dense(c->arch);
    if (o->layers >= 0) c->n_layers = o->layers;
    if (o->dense >= 0) c->first_k_dense_replace = o->dense;
    if (o->experts >= 0) c->n_experts_routed = o->experts;
    if (o->mtp >= 0) c->n_mtp_layers = o->mtp;
    if (o->vocab >= 0) c->vocab_size = o->vocab;
    if (o->fp8 >= 0) fp8 = o->fp8;
    if (o->scale_fmt >= 0) sf = (dc_scale_fmt)o->scale_fmt;
    if (c->first_k_dense_replace > c->n_layers || dense)
        c->first_k_dense_replace = c->n_layers;
    if (dense && c->max_window_layers)
        c->max_window_layers = c->n_layers;
    if (c->n_experts_routed < c->n_group)
        c->n_group = c->topk_group = 1;
    if (c->n_experts_per_tok > c->n_experts_routed)
        c->n_experts_per_tok = c->n_experts_routed;
    if (c->bos_token_id >= c->vocab_size || c->eos_token_id >= c->vocab_size) {
        c->bos_token_id = 0;
        c->eos_token_id = 1;
    }
    c->quant_fp8 = fp8;
    if (fp8) {
        snprintf(c->quant_fmt, sizeof c->quant_fmt, "e4m3");
        snprintf(c->activation_scheme, sizeof c->activation_scheme, "dynamic");
        c->scale_fmt = sf;
        c->block_rows = c->block_cols = 128;
    }
    (void)shard;
    /* validate through the same parser every checkpoint goes through */
    char *js = dc_config_to_json(c);
    if (!js)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    dc_config back;
    dc_status st = dc_config_parse(js, strlen(js), "mkmodel config", &back, err);
    free(js);
    if (st)
        return st;
    *c = back;
    return DC_OK;
}

/* ---- deterministic weights ----------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Approximately standard normal: Irwin-Hall sum of four 16-bit uniforms from one 64-bit draw. */
static float rnd_normal(uint64_t *s)
{
    uint64_t r = splitmix(s);
    float sum = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) + (float)((r >> 32) & 0xffff) + (float)(r >> 48);
    return (sum / 65536.0f - 2.0f) * 1.7320508f;
}

typedef struct init_rule {
    float mean, std;
} init_rule;

static init_rule rule_for(const dc_config *c, const dc_expect *e)
{
    float fan_in = e->ndim == 2 ? (float)e->shape[1] : 1.0f;
    float inv = 1.0f / sqrtf(fan_in);
    if (e->info.role == DC_ROLE_EMBED && c->tie_word_embeddings) /* also the output head: scaled like one */
        return (init_rule){0, 2.0f * inv};
    switch (e->info.role) {
    case DC_ROLE_EMBED: case DC_ROLE_MTP_EMBED: return (init_rule){0, 1.0f};
    case DC_ROLE_LM_HEAD: case DC_ROLE_MTP_HEAD: case DC_ROLE_ROUTER: return (init_rule){0, 2.0f * inv};
    case DC_ROLE_ROUTER_BIAS: return (init_rule){0, 0.1f};
    case DC_ROLE_O_PROJ: case DC_ROLE_MLP_DOWN: return (init_rule){0, 0.5f * inv};
    case DC_ROLE_EXP_DOWN: case DC_ROLE_SHEXP_DOWN: return (init_rule){0, 0.35f * inv};
    case DC_ROLE_Q_BIAS: case DC_ROLE_K_BIAS: case DC_ROLE_V_BIAS: return (init_rule){0, 0.3f};
    case DC_ROLE_O_BIAS: return (init_rule){0, 0.05f};
    case DC_ROLE_FINAL_NORM: case DC_ROLE_ATTN_NORM: case DC_ROLE_FFN_NORM: case DC_ROLE_Q_A_NORM:
    case DC_ROLE_KV_A_NORM: case DC_ROLE_MTP_ENORM: case DC_ROLE_MTP_HNORM: case DC_ROLE_MTP_HEAD_NORM:
    case DC_ROLE_IDX_K_NORM:
        return (init_rule){1.0f, 0.1f};
    case DC_ROLE_IDX_K_NORM_BIAS: return (init_rule){0, 0.1f};
    default: return (init_rule){0, inv};
    }
}

static uint64_t name_seed(uint64_t seed, const char *name)
{
    uint64_t h = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    return h;
}

typedef struct job {
    size_t expect;   /* index into the expected list */
    size_t w_idx;    /* writer index of the tensor */
    size_t s_idx;    /* writer index of its scale (fp8 only) */
    bool fp8;
    dc_dtype dtype;
} job;

dc_status dc_mkmodel_write(const char *dir, const dc_mk_opts *o, const dc_config *cfg, uint64_t *bytes_written,
                           dc_err *err)
{
    dc_expect *ex = NULL;
    size_t nex = 0;
    dc_stw *w = NULL;
    job *jobs = NULL;
    dc_status st = dc_expect_build(cfg, false, &ex, &nex, err);
    if (st)
        return st;
    w = dc_stw_new();
    jobs = calloc(nex ? nex : 1, sizeof *jobs);
    if (!w || !jobs) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    dc_stw_meta(w, "format", "pt", err);
    dc_stw_set_total_digits(w, 6); /* like the release: model-00001-of-000163.safetensors */
    for (size_t i = 0; i < nex && !st; i++) {
        const dc_expect *e = &ex[i];
        job *j = &jobs[i];
        j->expect = i;
        j->fp8 = cfg->quant_fp8 && e->fp8;
        /* F32: the router bias; the indexer's k_norm (a LayerNorm kept in float32 in V3.2's release) */
        bool f32 = e->info.role == DC_ROLE_ROUTER_BIAS || e->info.role == DC_ROLE_IDX_K_NORM ||
                   e->info.role == DC_ROLE_IDX_K_NORM_BIAS;
        j->dtype = j->fp8 ? DC_DT_F8_E4M3 : f32 ? DC_DT_F32 : DC_DT_BF16;
        st = dc_stw_add(w, e->name, j->dtype, e->ndim, e->shape, &j->w_idx, err);
        if (!st && j->fp8) {
            char sn[600];
            int64_t ss[2] = {(e->shape[0] + cfg->block_rows - 1) / cfg->block_rows,
                             (e->shape[1] + cfg->block_cols - 1) / cfg->block_cols};
            snprintf(sn, sizeof sn, "%s_scale_inv", e->name);
            st = dc_stw_add(w, sn, DC_DT_F32, 2, ss, &j->s_idx, err);
        }
    }
    if (st)
        goto done;
    uint64_t shard = o->max_shard_size;
    if (!shard) /* about two shards for small models (so sharding is exercised), 4.3 GB like the release */
        shard = dc_stw_total_bytes(w) < 2000000000ull ? dc_stw_total_bytes(w) / 2 + 1 : 4300000000ull;
    if ((st = dc_stw_plan(w, shard, err)) != DC_OK)
        goto done;
    char *js = dc_config_to_json(cfg);
    char *cp = dc_path_join(dir, "config.json");
    if (!js || !cp) {
        free(js);
        free(cp);
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t jl = strlen(js);
    js[jl] = '\n';
    st = dc_write_file_atomic(cp, js, jl + 1, err);
    free(js);
    free(cp);
    if (st || (st = dc_stw_open(w, dir, err)) != DC_OK)
        goto done;

    /* work items: (tensor, row block) */
    size_t nitems = 0;
    int br = cfg->block_rows ? cfg->block_rows : 128;
    for (size_t i = 0; i < nex; i++) {
        int64_t rows = ex[i].ndim == 2 ? ex[i].shape[0] : 1;
        nitems += (size_t)((rows + br - 1) / br);
    }
    size_t *item_job = malloc(nitems * sizeof *item_job);
    int64_t *item_block = malloc(nitems * sizeof *item_block);
    if (!item_job || !item_block) {
        free(item_job);
        free(item_block);
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t k = 0;
    for (size_t i = 0; i < nex; i++) {
        int64_t rows = ex[i].ndim == 2 ? ex[i].shape[0] : 1;
        for (int64_t b = 0; b < (rows + br - 1) / br; b++) {
            item_job[k] = i;
            item_block[k++] = b;
        }
    }
    volatile int failed = 0;
    dc_err first = {0};
#pragma omp parallel
    {
        float *buf = NULL, *scales = NULL;
        uint8_t *out = NULL;
        size_t cap = 0;
#pragma omp for schedule(dynamic, 1)
        for (long it = 0; it < (long)nitems; it++) {
            if (failed)
                continue;
            const job *j = &jobs[item_job[it]];
            const dc_expect *e = &ex[j->expect];
            int64_t rows = e->ndim == 2 ? e->shape[0] : 1, cols = e->ndim == 2 ? e->shape[1] : e->shape[0];
            int64_t r0 = item_block[it] * br, nr = rows - r0 < br ? rows - r0 : br;
            size_t n = (size_t)(nr * cols);
            if (n > cap) {
                free(buf);
                free(out);
                free(scales);
                buf = malloc(n * sizeof *buf);
                out = malloc(n * 4);
                scales = malloc((n / 64 + 2) * sizeof *scales); /* >= ceil(cols / 128) for any n >= cols */
                cap = n;
                if (!buf || !out || !scales) {
                    cap = 0;
#pragma omp critical
                    if (!failed) {
                        failed = 1;
                        dc_err_set(&first, DC_ERR_NOMEM, "out of memory for a row block of %s", e->name);
                    }
                    continue;
                }
            }
            init_rule r = rule_for(cfg, e);
            uint64_t s = name_seed(o->seed, e->name) ^ ((uint64_t)item_block[it] * 0xd1342543de82ef95ull);
            for (size_t i = 0; i < n; i++)
                buf[i] = r.mean + r.std * rnd_normal(&s);
            dc_err le = {0};
            dc_status ws;
            int esz = dc_dtype_size(j->dtype);
            uint64_t off = (uint64_t)r0 * (uint64_t)cols * (uint64_t)esz;
            if (j->fp8) {
                int64_t ncb = (cols + cfg->block_cols - 1) / cfg->block_cols;
                dc_fp8_quantize_row_block(buf, nr, cols, cfg->block_cols, cfg->scale_fmt, out, scales);
                ws = dc_stw_write(w, j->w_idx, off, out, n, &le);
                if (!ws)
                    ws = dc_stw_write(w, j->s_idx, (uint64_t)item_block[it] * (uint64_t)ncb * 4, scales,
                                      (size_t)ncb * 4, &le);
            } else {
                dc_dtype_from_f32(j->dtype, buf, out, (int64_t)n);
                ws = dc_stw_write(w, j->w_idx, off, out, n * (size_t)esz, &le);
            }
            if (ws) {
#pragma omp critical
                if (!failed) {
                    failed = 1;
                    first = le;
                }
            }
        }
        free(buf);
        free(out);
        free(scales);
    }
    free(item_job);
    free(item_block);
    if (failed) {
        if (err)
            *err = first;
        st = first.code ? first.code : DC_ERR_IO;
        dc_stw_abort(w);
        goto done;
    }
    if (bytes_written)
        *bytes_written = dc_stw_total_bytes(w);
    st = dc_stw_finish(w, err);
done:
    if (st && w)
        dc_stw_abort(w);
    dc_stw_free(w);
    free(jobs);
    dc_expect_free(ex, nex);
    return st;
}
