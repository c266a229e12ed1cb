/* deepcast inspect MODEL [--json] [--check] [--no-tensors] */
#include "cli_util.h"
#include "cmds.h"
#include "dc_ckpt.h"

#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: deepcast inspect MODEL [--json] [--check] [--no-tensors]\n"
    "  MODEL         checkpoint directory or .safetensors file\n"
    "  --json        one JSON object: arch, n_params, tensors[{name,dtype,shape,bytes,file}], ...\n"
    "  --check       exit 7 if tensors are missing, unexpected or mis-shaped for the config\n"
    "  --no-tensors  omit the per-tensor table\n";

static bool is_scale_name(const char *n) { return dc_str_ends_with(n, "_scale_inv"); }

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false, check = false, tensors = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "--check")) check = true;
        else if (!strcmp(argv[i], "--no-tensors")) tensors = false;
        else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("inspect: unknown option '%s'; try 'deepcast inspect --help'", argv[i]);
            return DC_ERR_USAGE;
        } else if (!path) path = argv[i];
        else {
            cli_error("inspect: unexpected argument '%s'; try 'deepcast inspect --help'", argv[i]);
            return DC_ERR_USAGE;
        }
    }
    if (!path) {
        cli_error("inspect: missing MODEL; try 'deepcast inspect --help'");
        return DC_ERR_USAGE;
    }
    dc_err err = {0};
    dc_ckpt *ck;
    dc_status st = dc_ckpt_open(path, &ck, &err);
    if (st) {
        cli_error("inspect: %s", err.msg);
        return st;
    }
    dc_check chk = {0};
    bool have_chk = false;
    if (ck->has_config) {
        if ((st = dc_ckpt_check(ck, &chk, &err)) != DC_OK) {
            cli_error("inspect: %s", err.msg);
            dc_ckpt_close(ck);
            return st;
        }
        have_chk = true;
    }
    const dc_config *c = &ck->cfg;
    uint64_t by_dtype[DC_DT_COUNT] = {0}, total_bytes = 0;
    int64_t n_params = 0, n_params_mtp = 0;
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const dc_tensor *t = ck->tensors[i];
        by_dtype[t->dtype] += t->nbytes;
        total_bytes += t->nbytes;
        if (is_scale_name(t->name))
            continue;
        n_params += dc_tensor_nelem(t);
        dc_name_info ni;
        if (ck->has_config && dc_name_parse(c, t->name, &ni) && ni.is_mtp)
            n_params_mtp += dc_tensor_nelem(t);
    }
    int64_t cfg_total = 0, cfg_active = 0, cfg_mtp = 0;
    if (ck->has_config)
        dc_config_param_counts(c, &cfg_total, &cfg_active, &cfg_mtp);
    bool consistent = !have_chk || (chk.n_missing == 0 && chk.n_unexpected == 0 && chk.n_mismatched == 0);

    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddStringToObject(o, "arch", ck->has_config ? dc_config_model_type(c) : "unknown");
        if (ck->has_config) {
            cJSON_AddStringToObject(o, "architecture", c->architecture);
            cJSON_AddNumberToObject(o, "n_layers", c->n_layers);
            cJSON_AddNumberToObject(o, "n_dense_layers", c->first_k_dense_replace);
            cJSON_AddNumberToObject(o, "n_mtp_layers", c->n_mtp_layers);
            cJSON_AddNumberToObject(o, "mtp_layers_present", chk.n_mtp_layers_present);
            cJSON_AddNumberToObject(o, "n_experts_routed", c->n_experts_routed);
            cJSON_AddNumberToObject(o, "n_experts_shared", c->n_experts_shared);
            cJSON_AddNumberToObject(o, "n_experts_per_tok", c->n_experts_per_tok);
            cJSON_AddNumberToObject(o, "n_heads", c->n_heads);
            cJSON_AddNumberToObject(o, "n_kv_heads", c->n_kv_heads);
            if (dc_arch_dense(c->arch))
                cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
            if (c->index_n_heads) {
                cJSON_AddNumberToObject(o, "index_n_heads", c->index_n_heads);
                cJSON_AddNumberToObject(o, "index_head_dim", c->index_head_dim);
                cJSON_AddNumberToObject(o, "index_topk", c->index_topk);
            }
            cJSON_AddNumberToObject(o, "hidden_size", (double)c->hidden_size);
            cJSON_AddNumberToObject(o, "vocab_size", (double)c->vocab_size);
            cJSON_AddNumberToObject(o, "n_params_active", (double)cfg_active);
        }
        cJSON_AddNumberToObject(o, "n_params", (double)n_params);
        cJSON_AddNumberToObject(o, "n_params_mtp", (double)n_params_mtp);
        cJSON_AddNumberToObject(o, "n_tensors", (double)ck->n_tensors);
        cJSON_AddNumberToObject(o, "bytes", (double)total_bytes);
        cJSON *bd = cJSON_AddObjectToObject(o, "bytes_by_dtype");
        for (int d = 1; d < DC_DT_COUNT; d++)
            if (by_dtype[d])
                cJSON_AddNumberToObject(bd, dc_dtype_name((dc_dtype)d), (double)by_dtype[d]);
        if (ck->has_config && c->quant_fp8) {
            cJSON *q = cJSON_AddObjectToObject(o, "quantization");
            cJSON_AddStringToObject(q, "quant_method", "fp8");
            cJSON_AddStringToObject(q, "fmt", c->quant_fmt);
            cJSON_AddStringToObject(q, "scale_fmt", c->scale_fmt == DC_SCALE_UE8M0 ? "ue8m0" : "f32");
            cJSON *bs = cJSON_AddArrayToObject(q, "weight_block_size");
            cJSON_AddItemToArray(bs, cJSON_CreateNumber(c->block_rows));
            cJSON_AddItemToArray(bs, cJSON_CreateNumber(c->block_cols));
        } else
            cJSON_AddNullToObject(o, "quantization");
        cJSON_AddNumberToObject(o, "n_fp8_tensors", (double)chk.n_fp8);
        cJSON_AddNumberToObject(o, "n_scale_tensors", (double)chk.n_scales);
        cJSON *files = cJSON_AddArrayToObject(o, "files");
        for (int i = 0; i < ck->n_files; i++)
            cJSON_AddItemToArray(files, cJSON_CreateString(dc_path_base(ck->files[i].path)));
        cJSON *un = cJSON_AddArrayToObject(o, "unindexed_shards");
        for (int i = 0; i < ck->n_unindexed; i++)
            cJSON_AddItemToArray(un, cJSON_CreateString(ck->unindexed[i]));
        cJSON_AddBoolToObject(o, "consistent", consistent);
        const char *lists[3] = {"missing", "unexpected", "mismatched"};
        dc_check_item *items[3] = {chk.missing, chk.unexpected, chk.mismatched};
        size_t counts[3] = {chk.n_missing, chk.n_unexpected, chk.n_mismatched};
        for (int l = 0; l < 3; l++) {
            cJSON *a = cJSON_AddArrayToObject(o, lists[l]);
            for (size_t i = 0; i < counts[l]; i++) {
                cJSON *it = cJSON_CreateObject();
                cJSON_AddStringToObject(it, "name", items[l][i].name);
                if (items[l][i].detail[0])
                    cJSON_AddStringToObject(it, "detail", items[l][i].detail);
                cJSON_AddItemToArray(a, it);
            }
        }
        if (tensors) {
            cJSON *ta = cJSON_AddArrayToObject(o, "tensors");
            for (size_t i = 0; i < ck->n_tensors; i++) {
                const dc_tensor *t = ck->tensors[i];
                cJSON *it = cJSON_CreateObject();
                cJSON_AddStringToObject(it, "name", t->name);
                cJSON_AddStringToObject(it, "dtype", dc_dtype_name(t->dtype));
                cJSON *sh = cJSON_AddArrayToObject(it, "shape");
                for (int k = 0; k < t->ndim; k++)
                    cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[k]));
                cJSON_AddNumberToObject(it, "bytes", (double)t->nbytes);
                cJSON_AddStringToObject(it, "file", dc_ckpt_file_name(ck, t));
                cJSON_AddItemToArray(ta, it);
            }
        }
        cli_print_json(stdout, o);
    } else {
        char b1[32], b2[32];
        printf("checkpoint     %s\n", path);
        if (ck->has_config) {
            printf("architecture   %s (%s)\n", dc_config_model_type(c), c->architecture);
            if (dc_arch_dense(c->arch)) {
                printf("layers         %d (dense decoder, SwiGLU MLP %lld)\n", c->n_layers,
                       (long long)c->intermediate_size);
                printf("attention      GQA, %d heads, %d key/value heads, head_dim %d, %s, rope_theta %g%s\n",
                       c->n_heads, c->n_kv_heads, c->head_dim,
                       c->attn_o_bias ? "q/k/v/o biases" : c->attn_qkv_bias ? "q/k/v biases" : "no biases",
                       c->rope_theta, c->rope_llama3 ? ", llama3 rope scaling"
                                      : c->n_rope_freq_factors ? ", rope frequency divisors (GGUF rope_freqs)" : "");
                printf("embeddings     %s\n", c->tie_word_embeddings ? "tied (lm_head = embed_tokens)" : "separate lm_head");
            } else {
                printf("layers         %d (%d dense, %d MoE), MTP layers: %d in config, %d present\n", c->n_layers,
                       c->first_k_dense_replace, c->n_layers - c->first_k_dense_replace, c->n_mtp_layers,
                       chk.n_mtp_layers_present);
                printf("experts        %d routed (%d per token, %d groups / top %d, %s, scale %g), %d shared\n",
                       c->n_experts_routed, c->n_experts_per_tok, c->n_group, c->topk_group,
                       c->scoring_func == DC_SCORE_SIGMOID ? "sigmoid" : "softmax", c->routed_scaling_factor,
                       c->n_experts_shared);
                printf("attention      MLA, %d heads, q_lora %d, kv_lora %d, nope/rope/v %d/%d/%d\n", c->n_heads,
                       c->q_lora_rank, c->kv_lora_rank, c->qk_nope_head_dim, c->qk_rope_head_dim, c->v_head_dim);
                if (c->index_n_heads)
                    printf("sparse attn    indexer: %d heads of %d, top %d keys per query\n", c->index_n_heads,
                           c->index_head_dim, c->index_topk);
            }
            printf("vocab/hidden   %lld / %lld\n", (long long)c->vocab_size, (long long)c->hidden_size);
            printf("parameters     %.3fB in tensors (%.3fB in MTP layers); config: %.3fB main, %.3fB activated per token\n",
                   n_params / 1e9, n_params_mtp / 1e9, cfg_total / 1e9, cfg_active / 1e9);
            if (c->quant_fp8)
                printf("quantization   fp8 %s, %dx%d blocks, %s scales: %zu FP8 tensors, %zu scale tensors\n",
                       c->quant_fmt, c->block_rows, c->block_cols, c->scale_fmt == DC_SCALE_UE8M0 ? "ue8m0" : "f32",
                       chk.n_fp8, chk.n_scales);
            else
                printf("quantization   none (%zu FP8 tensors)\n", chk.n_fp8);
        } else {
            printf("architecture   unknown (no config.json)\n");
            printf("parameters     %.3fB\n", n_params / 1e9);
        }
        printf("storage        %d file(s), %zu tensors, %s:", ck->n_files, ck->n_tensors,
               dc_fmt_bytes(total_bytes, b1, sizeof b1));
        for (int d = 1; d < DC_DT_COUNT; d++)
            if (by_dtype[d])
                printf(" %s %s", dc_dtype_name((dc_dtype)d), dc_fmt_bytes(by_dtype[d], b2, sizeof b2));
        printf("\n");
        for (int i = 0; i < ck->n_unindexed; i++)
            printf("warning        shard %s is not named by the index\n", ck->unindexed[i]);
        if (have_chk) {
            if (consistent)
                printf("check          ok: every expected tensor present, none unexpected\n");
            else
                printf("check          %zu missing, %zu unexpected, %zu mismatched\n", chk.n_missing,
                       chk.n_unexpected, chk.n_mismatched);
            for (size_t i = 0; i < chk.n_missing; i++)
                printf("  missing      %s%s%s\n", chk.missing[i].name, chk.missing[i].detail[0] ? ": " : "",
                       chk.missing[i].detail);
            for (size_t i = 0; i < chk.n_unexpected; i++)
                printf("  unexpected   %s: %s\n", chk.unexpected[i].name, chk.unexpected[i].detail);
            for (size_t i = 0; i < chk.n_mismatched; i++)
                printf("  mismatched   %s: %s\n", chk.mismatched[i].name, chk.mismatched[i].detail);
        }
        if (tensors) {
            printf("\n%-64s %-8s %-16s %12s  %s\n", "tensor", "dtype", "shape", "bytes", "file");
            for (size_t i = 0; i < ck->n_tensors; i++) {
                const dc_tensor *t = ck->tensors[i];
                char sb[64];
                printf("%-64s %-8s %-16s %12llu  %s\n", t->name, dc_dtype_name(t->dtype),
                       dc_shape_str(t->ndim, t->shape, sb, sizeof sb), (unsigned long long)t->nbytes,
                       dc_ckpt_file_name(ck, t));
            }
        }
    }
    if (have_chk)
        dc_check_free(&chk);
    dc_ckpt_close(ck);
    if (check && !consistent) {
        cli_error("inspect: %s: checkpoint does not match its config (missing, unexpected or mis-shaped tensors)", path);
        return DC_ERR_MODEL;
    }
    return 0;
}
