/* deepcast perplexity MODEL (--tokens FILE | --text FILE): perplexity with the reference forward
 * pass. Plain scoring: chunks of --ctx tokens (default: the whole sequence), every next-token
 * prediction inside a chunk. --llama-compat: llama.cpp's perplexity tool (chunks of 512 or --ctx,
 * first token of each chunk replaced by BOS, second half of each chunk scored). */
#include "cli_util.h"
#include "cmds.h"
#include "dc_forward.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: deepcast perplexity MODEL (--tokens FILE | --text FILE) [options]\n"
    "  Perplexity of MODEL with the reference float32 forward pass.\n"
    "  --tokens FILE     token ids: whitespace-separated decimal numbers, or a JSON list\n"
    "  --text FILE       UTF-8 text, tokenized with the model's tokenizer.json (BOS added)\n"
    "  --tokenizer DIR   tokenizer directory for --text (default: MODEL's directory)\n"
    "  --ctx N           chunk length (default: the whole sequence; 512 with --llama-compat);\n"
    "                    every chunk starts at position 0 and all its next-token predictions count\n"
    "  --llama-compat    llama.cpp perplexity scoring: n/ctx full chunks, the first token of each\n"
    "                    replaced by BOS, only the predictions from position ctx/2 on scored;\n"
    "                    needs at least 2*ctx tokens\n"
    "  --json            print one JSON object instead of text\n"
    "  --threads N       OpenMP threads (results are identical for any N)\n"
    "  --exact-fp8       dequantise FP8 as f32(fp8) * scale (default: rounded to bf16, as DeepSeek does)\n"
    "  --mem-budget SIZE keep up to SIZE of dequantised weights between chunks (default 256MiB)\n"
    "  Prints 'PPL = x +/- stderr' (stderr as llama.cpp computes it) and the speed in tokens/s.\n";

int cmd_perplexity(int argc, char **argv)
{
    const char *model = NULL, *tokens = NULL, *text = NULL, *tokdir = NULL;
    long long ctx = 0;
    bool json = false, llama = false;
    dc_fwd_opts opts;
    dc_fwd_opts_default(&opts);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--tokens")) {
            if (!(tokens = cli_value("perplexity", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--text")) {
            if (!(text = cli_value("perplexity", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!(tokdir = cli_value("perplexity", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--ctx")) {
            if (!(v = cli_value("perplexity", argc, argv, &i)) || !cli_int("perplexity", "--ctx", v, 2, 1LL << 40, &ctx))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--threads")) {
            long long t;
            if (!(v = cli_value("perplexity", argc, argv, &i)) || !cli_int("perplexity", "--threads", v, 1, 4096, &t))
                return DC_ERR_USAGE;
            omp_set_num_threads((int)t);
        } else if (!strcmp(a, "--mem-budget")) {
            if (!(v = cli_value("perplexity", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!dc_parse_size(v, &opts.mem_budget)) {
                cli_error("perplexity: --mem-budget must be a size like 512MB or 2GiB, got '%s'", v);
                return DC_ERR_USAGE;
            }
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--llama-compat")) {
            llama = true;
        } else if (!strcmp(a, "--exact-fp8")) {
            opts.deq_mode = DC_DEQ_EXACT;
        } else if (a[0] == '-' && a[1]) {
            cli_error("perplexity: unknown option '%s'; try 'deepcast perplexity --help'", a);
            return DC_ERR_USAGE;
        } else if (!model) {
            model = a;
        } else {
            cli_error("perplexity: unexpected argument '%s'", a);
            return DC_ERR_USAGE;
        }
    }
    if (!model || (!tokens == !text)) {
        cli_error("perplexity: %s; try 'deepcast perplexity --help'",
                  !model ? "MODEL is required" : "give exactly one of --tokens FILE and --text FILE");
        return DC_ERR_USAGE;
    }

    dc_err err = {0};
    dc_ckpt *ck = NULL;
    dc_model *m = NULL;
    int32_t *ids = NULL, bos = -1;
    size_t n = 0;
    float *logits = NULL;
    double *nll = NULL;
    dc_chunking ch;
    dc_nll_acc acc = {0};
    double secs = 0;
    dc_status st = dc_fwd_open(model, &opts, &ck, &m, &err);
    if (!st)
        st = dc_fwd_input(tokens, text, tokdir ? tokdir : ck->dir, dc_model_config(m)->bos_token_id, &ids, &n, &bos,
                          &err);
    if (!st)
        st = dc_tokens_check(ids, n, dc_model_vocab(m), tokens ? tokens : text, &err);
    if (!st)
        st = dc_chunking_init(&ch, (int64_t)n, ctx, llama, bos, &err);
    int64_t V = st ? 0 : dc_model_vocab(m);
    if (!st && (!(logits = dc_malloc((size_t)ch.ctx * (size_t)V * sizeof(float), &err)) ||
                !(nll = dc_malloc((size_t)ch.ctx * sizeof(double), &err))))
        st = DC_ERR_NOMEM;
    int64_t n_fwd = 0;
    for (int64_t c = 0; !st && c < ch.n_chunks; c++) {
        int64_t start, len, first;
        dc_chunk_range(&ch, (int64_t)n, c, &start, &len, &first);
        double t0 = dc_fwd_now();
        st = dc_fwd_chunk(m, ids, (int64_t)n, &ch, c, logits, &err);
        if (st)
            break;
        /* per-position NLL in parallel, accumulated in position order */
#pragma omp parallel for schedule(dynamic, 4)
        for (int64_t j = first; j < len - 1; j++) {
            const float *row = logits + j * V;
            nll[j] = dc_logsumexp(row, V) - (double)row[ids[start + j + 1]];
        }
        for (int64_t j = first; j + 1 < len; j++)
            dc_nll_add(&acc, nll[j]);
        secs += dc_fwd_now() - t0;
        n_fwd += len;
        if (!json && ch.n_chunks > 1)
            dc_log(1, "[%lld/%lld] PPL %.4f\n", (long long)(c + 1), (long long)ch.n_chunks, dc_nll_ppl(&acc, NULL));
    }
    if (st) {
        cli_error("perplexity: %s", err.msg);
    } else {
        double se, ppl = dc_nll_ppl(&acc, &se), tps = secs > 0 ? (double)n_fwd / secs : 0;
        if (json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "model", model);
            cJSON_AddNumberToObject(j, "ppl", ppl);
            cJSON_AddNumberToObject(j, "ppl_stderr", se);
            cJSON_AddNumberToObject(j, "nll_mean", dc_nll_mean(&acc));
            cJSON_AddNumberToObject(j, "n_scored", (double)acc.count);
            cJSON_AddNumberToObject(j, "n_tokens", (double)n);
            cJSON_AddNumberToObject(j, "n_chunks", (double)ch.n_chunks);
            cJSON_AddNumberToObject(j, "ctx", (double)ch.ctx);
            cJSON_AddBoolToObject(j, "llama_compat", llama);
            cJSON_AddBoolToObject(j, "exact_fp8", opts.deq_mode == DC_DEQ_EXACT);
            cJSON_AddNumberToObject(j, "threads", omp_get_max_threads());
            cJSON_AddNumberToObject(j, "seconds", secs);
            cJSON_AddNumberToObject(j, "tokens_per_s", tps);
            cli_print_json(stdout, j);
        } else {
            printf("%s: %zu tokens, %lld chunk%s of %lld%s, %lld predictions scored\n", model, n,
                   (long long)ch.n_chunks, ch.n_chunks == 1 ? "" : "s", (long long)ch.ctx,
                   llama ? " (llama.cpp scoring)" : "", (long long)acc.count);
            printf("PPL = %.4f +/- %.5f\n", ppl, se);
            printf("mean NLL = %.6f\n", dc_nll_mean(&acc));
            printf("speed: %.1f tokens/s (%lld tokens in %.2f s, %d threads)\n", tps, (long long)n_fwd, secs,
                   omp_get_max_threads());
        }
    }
    free(logits);
    free(nll);
    free(ids);
    dc_fwd_close(ck, m);
    return st;
}
