/* deepcast kld BASE MODEL: KL divergence, top-1 agreement and token-probability changes of MODEL
 * against BASE (llama.cpp's KLD report), both run with the reference forward pass. The base side
 * can be saved compactly (--save-base: per-position top-k log-probs, docs/forward.md) and reused
 * instead of the BASE model (--base-logits). */
#include "cli_util.h"
#include "cmds.h"
#include "dc_forward.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: deepcast kld BASE MODEL (--tokens FILE | --text FILE) [options]\n"
    "       deepcast kld --base-logits FILE MODEL [--tokens FILE | --text FILE] [options]\n"
    "       deepcast kld BASE --save-base FILE (--tokens FILE | --text FILE) [options]\n"
    "  Mean KL(base || model) over the scored positions, top-1 agreement (\"same top p\"),\n"
    "  delta-p = p_model(next) - p_base(next) percentiles, and both perplexities.\n"
    "  --tokens FILE       token ids: whitespace-separated decimal numbers, or a JSON list\n"
    "  --text FILE         UTF-8 text, tokenized with BASE's (or MODEL's) tokenizer.json, BOS added\n"
    "  --tokenizer DIR     tokenizer directory for --text\n"
    "  --ctx N             chunk length (default: the whole sequence; 512 with --llama-compat)\n"
    "  --llama-compat      llama.cpp scoring: BOS-prefixed chunks, second half of each scored\n"
    "  --save-base FILE    also store BASE's top-k log-probs per position (compact base-logits file)\n"
    "  --top-k N           entries per position in --save-base (default 32)\n"
    "  --base-logits FILE  use a --save-base file instead of a BASE model; its tokens and chunking\n"
    "                      are used (given --tokens/--text must match). The KLD is then\n"
    "                      sum_top p_b (log p_b - log p_m) + R_b (log R_b - log R_m), R = mass\n"
    "                      outside the base's top-k ids: exact when R_b = 0, a lower bound otherwise\n"
    "  For two MoE models with the same routing layout it also reports at how many positions the chosen\n"
    "  expert set differs in some layer, and the mean KLD over the positions where it does not.\n"
    "  --json              print one JSON object instead of text\n"
    "  --force             overwrite an existing --save-base file\n"
    "  --threads N         OpenMP threads (results are identical for any N)\n"
    "  --exact-fp8         dequantise MODEL's FP8 weights as f32(fp8) * scale (default: bf16-rounded)\n"
    "  --base-exact-fp8    the same for BASE\n"
    "  --mem-budget SIZE   dequantised-weight cache per model (default 256MiB)\n";

typedef struct pct {
    const char *label;
    double f;
} pct;

static const pct KLD_PCT[] = {{"99.9%", 0.999}, {"99.0%", 0.99}, {"95.0%", 0.95}, {"90.0%", 0.90},
                              {"10.0%", 0.10}, {" 5.0%", 0.05}, {" 1.0%", 0.01}, {" 0.1%", 0.001}};
static const pct DP_PCT[] = {{"99.9%", 0.999}, {"99.0%", 0.99}, {"95.0%", 0.95}, {"90.0%", 0.90}, {"75.0%", 0.75},
                             {"25.0%", 0.25}, {"10.0%", 0.10}, {" 5.0%", 0.05}, {" 1.0%", 0.01}, {" 0.1%", 0.001}};
#define N_KLD_PCT (sizeof KLD_PCT / sizeof *KLD_PCT)
#define N_DP_PCT (sizeof DP_PCT / sizeof *DP_PCT)

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* mean and its standard error (llama.cpp's formula) */
static void mean_se(double sum, double sum2, int64_t n, double *mean, double *se)
{
    *mean = n ? sum / (double)n : 0;
    double var = n ? sum2 / (double)n - *mean * *mean : 0;
    *se = n > 1 && var > 0 ? sqrt(var / (double)(n - 1)) : 0;
}

/* Routing comparison (both models MoE with the same routed layers and top-k): positions whose
 * expert set differs in some layer, and the KL over the others. */
typedef struct route_cmp {
    bool on;
    int64_t n_changed, n_stable;
    double sum_kld_stable;
} route_cmp;

/* Whether token t's expert sets differ between a and b in some layer (as sets). */
static bool routing_differs(const dc_routing *a, const dc_routing *b, int64_t t)
{
    const int K = a->top_k;
    for (int l = 0; l < a->n_layers; l++) {
        const int32_t *x = a->idx + ((int64_t)l * a->n_tokens + t) * K, *y = b->idx + ((int64_t)l * b->n_tokens + t) * K;
        for (int i = 0; i < K; i++) {
            bool found = false;
            for (int j = 0; j < K && !found; j++)
                found = x[i] == y[j];
            if (!found)
                return true;
        }
    }
    return false;
}

static const route_cmp *g_route; /* for report() */

static void report(const dc_kld_acc *a, bool json, const char *base_name, const char *model, bool approx, int top_k,
                   double tps, double secs)
{
    size_t n = (size_t)a->count;
    qsort(a->kld, n, sizeof(float), cmp_float);
    qsort(a->dp, n, sizeof(float), cmp_float);
    double ppl_m_se, ppl_b_se, ppl_m = dc_nll_ppl(&a->nll_model, &ppl_m_se), ppl_b = dc_nll_ppl(&a->nll_base, &ppl_b_se);
    double kl, kl_se, dp, dp_se, ms, ms_se;
    mean_se(a->sum_kld, a->sum_kld2, a->count, &kl, &kl_se);
    mean_se(a->sum_dp, a->sum_dp2, a->count, &dp, &dp_se);
    mean_se(a->sum_dp2, a->sum_dp4, a->count, &ms, &ms_se);
    double rms = sqrt(ms), rms_se = rms > 0 ? 0.5 / rms * ms_se : 0;
    double top = n ? (double)a->n_same_top / (double)n : 0;
    double top_se = n > 1 ? sqrt(top * (1 - top) / (double)(n - 1)) : 0;
    double lr = dc_nll_mean(&a->nll_model) - dc_nll_mean(&a->nll_base);
    double med_k = dc_percentile_sorted(a->kld, n, 0.5), med_p = dc_percentile_sorted(a->dp, n, 0.5);
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "base", base_name);
        cJSON_AddStringToObject(j, "model", model);
        cJSON_AddNumberToObject(j, "n_positions", (double)n);
        cJSON_AddBoolToObject(j, "base_topk_approx", approx);
        if (approx)
            cJSON_AddNumberToObject(j, "base_top_k", top_k);
        cJSON_AddNumberToObject(j, "kld_mean", kl);
        cJSON_AddNumberToObject(j, "kld_stderr", kl_se);
        cJSON_AddNumberToObject(j, "kld_max", n ? a->kld[n - 1] : 0);
        cJSON_AddNumberToObject(j, "kld_median", med_k);
        cJSON_AddNumberToObject(j, "kld_min", n ? a->kld[0] : 0);
        cJSON *kp = cJSON_AddObjectToObject(j, "kld_percentiles");
        for (size_t i = 0; i < N_KLD_PCT; i++) {
            char k[16];
            snprintf(k, sizeof k, "%g", 100 * KLD_PCT[i].f);
            cJSON_AddNumberToObject(kp, k, dc_percentile_sorted(a->kld, n, KLD_PCT[i].f));
        }
        if (g_route && g_route->on) {
            cJSON_AddNumberToObject(j, "n_routing_changed", (double)g_route->n_changed);
            cJSON_AddNumberToObject(j, "kld_mean_routing_stable",
                                    g_route->n_stable ? g_route->sum_kld_stable / (double)g_route->n_stable : 0);
        }
        cJSON_AddNumberToObject(j, "same_top_p", 100 * top);
        cJSON_AddNumberToObject(j, "same_top_p_stderr", 100 * top_se);
        cJSON_AddNumberToObject(j, "ppl_model", ppl_m);
        cJSON_AddNumberToObject(j, "ppl_model_stderr", ppl_m_se);
        cJSON_AddNumberToObject(j, "ppl_base", ppl_b);
        cJSON_AddNumberToObject(j, "ppl_base_stderr", ppl_b_se);
        cJSON_AddNumberToObject(j, "nll_mean_model", dc_nll_mean(&a->nll_model));
        cJSON_AddNumberToObject(j, "nll_mean_base", dc_nll_mean(&a->nll_base));
        cJSON_AddNumberToObject(j, "ln_ppl_ratio", lr);
        cJSON_AddNumberToObject(j, "dp_mean", dp);
        cJSON_AddNumberToObject(j, "dp_stderr", dp_se);
        cJSON_AddNumberToObject(j, "dp_rms", rms);
        cJSON_AddNumberToObject(j, "dp_max", n ? a->dp[n - 1] : 0);
        cJSON_AddNumberToObject(j, "dp_median", med_p);
        cJSON_AddNumberToObject(j, "dp_min", n ? a->dp[0] : 0);
        cJSON *dpp = cJSON_AddObjectToObject(j, "dp_percentiles");
        for (size_t i = 0; i < N_DP_PCT; i++) {
            char k[16];
            snprintf(k, sizeof k, "%g", 100 * DP_PCT[i].f);
            cJSON_AddNumberToObject(dpp, k, dc_percentile_sorted(a->dp, n, DP_PCT[i].f));
        }
        cJSON_AddNumberToObject(j, "seconds", secs);
        cJSON_AddNumberToObject(j, "tokens_per_s", tps);
        cli_print_json(stdout, j);
        return;
    }
    printf("base %s, model %s: %zu positions%s\n", base_name, model, n,
           approx ? " (base: compact top-k file; KLD over the top-k ids + rest mass)" : "");
    printf("====== Perplexity statistics ======\n");
    printf("Mean PPL(Q)                   : %10.6f +/- %10.6f\n", ppl_m, ppl_m_se);
    printf("Mean PPL(base)                : %10.6f +/- %10.6f\n", ppl_b, ppl_b_se);
    printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f\n", lr);
    printf("====== KL divergence statistics ======\n");
    printf("Mean    KLD: %10.6f +/- %10.6f\n", kl, kl_se);
    printf("Maximum KLD: %10.6f\n", n ? a->kld[n - 1] : 0.0);
    for (size_t i = 0; i < 4; i++)
        printf("%s   KLD: %10.6f\n", KLD_PCT[i].label, dc_percentile_sorted(a->kld, n, KLD_PCT[i].f));
    printf("Median  KLD: %10.6f\n", med_k);
    for (size_t i = 4; i < N_KLD_PCT; i++)
        printf("%s   KLD: %10.6f\n", KLD_PCT[i].label, dc_percentile_sorted(a->kld, n, KLD_PCT[i].f));
    printf("Minimum KLD: %10.6f\n", n ? a->kld[0] : 0.0);
    if (g_route && g_route->on)
        printf("Routing    : expert set changed at %lld of %zu positions; mean KLD over the others %10.6f\n",
               (long long)g_route->n_changed, n,
               g_route->n_stable ? g_route->sum_kld_stable / (double)g_route->n_stable : 0.0);
    printf("====== Token probability statistics ======\n");
    printf("Mean    dp: %7.3f +/- %5.3f %%\n", 100 * dp, 100 * dp_se);
    printf("Maximum dp: %7.3f%%\n", n ? 100.0 * a->dp[n - 1] : 0.0);
    for (size_t i = 0; i < 5; i++)
        printf("%s   dp: %7.3f%%\n", DP_PCT[i].label, 100 * dc_percentile_sorted(a->dp, n, DP_PCT[i].f));
    printf("Median  dp: %7.3f%%\n", 100 * med_p);
    for (size_t i = 5; i < N_DP_PCT; i++)
        printf("%s   dp: %7.3f%%\n", DP_PCT[i].label, 100 * dc_percentile_sorted(a->dp, n, DP_PCT[i].f));
    printf("Minimum dp: %7.3f%%\n", n ? 100.0 * a->dp[0] : 0.0);
    printf("RMS dp    : %7.3f +/- %5.3f %%\n", 100 * rms, 100 * rms_se);
    printf("Same top p: %7.3f +/- %5.3f %%\n", 100 * top, 100 * top_se);
    printf("speed: %.1f tokens/s (%.2f s)\n", tps, secs);
}

int cmd_kld(int argc, char **argv)
{
    const char *pos[3] = {0}, *tokens = NULL, *text = NULL, *tokdir = NULL, *save = NULL, *basef = NULL;
    int npos = 0;
    long long ctx = 0, top_k = 32;
    bool json = false, llama = false, force = false, ctx_given = false;
    dc_fwd_opts mopt, bopt;
    dc_fwd_opts_default(&mopt);
    dc_fwd_opts_default(&bopt);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--tokens")) {
            if (!(tokens = cli_value("kld", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--text")) {
            if (!(text = cli_value("kld", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!(tokdir = cli_value("kld", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--save-base")) {
            if (!(save = cli_value("kld", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--base-logits")) {
            if (!(basef = cli_value("kld", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--ctx")) {
            if (!(v = cli_value("kld", argc, argv, &i)) || !cli_int("kld", "--ctx", v, 2, 1LL << 40, &ctx))
                return DC_ERR_USAGE;
            ctx_given = true;
        } else if (!strcmp(a, "--top-k")) {
            if (!(v = cli_value("kld", argc, argv, &i)) || !cli_int("kld", "--top-k", v, 1, 1 << 20, &top_k))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--threads")) {
            long long t;
            if (!(v = cli_value("kld", argc, argv, &i)) || !cli_int("kld", "--threads", v, 1, 4096, &t))
                return DC_ERR_USAGE;
            omp_set_num_threads((int)t);
        } else if (!strcmp(a, "--mem-budget")) {
            if (!(v = cli_value("kld", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!dc_parse_size(v, &mopt.mem_budget)) {
                cli_error("kld: --mem-budget must be a size like 512MB or 2GiB, got '%s'", v);
                return DC_ERR_USAGE;
            }
            bopt.mem_budget = mopt.mem_budget;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--llama-compat")) {
            llama = true;
        } else if (!strcmp(a, "--force")) {
            force = true;
        } else if (!strcmp(a, "--exact-fp8")) {
            mopt.deq_mode = DC_DEQ_EXACT;
        } else if (!strcmp(a, "--base-exact-fp8")) {
            bopt.deq_mode = DC_DEQ_EXACT;
        } else if (a[0] == '-' && a[1]) {
            cli_error("kld: unknown option '%s'; try 'deepcast kld --help'", a);
            return DC_ERR_USAGE;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            cli_error("kld: unexpected argument '%s'", a);
            return DC_ERR_USAGE;
        }
    }
    const char *base = NULL, *model = NULL;
    if (basef) {
        if (npos != 1 || save) {
            cli_error("kld: with --base-logits give exactly one MODEL%s; try 'deepcast kld --help'",
                      save ? " and no --save-base" : "");
            return DC_ERR_USAGE;
        }
        model = pos[0];
    } else {
        if (npos == 0 || (npos == 1 && !save)) {
            cli_error("kld: BASE and MODEL are required (or BASE with --save-base); try 'deepcast kld --help'");
            return DC_ERR_USAGE;
        }
        base = pos[0];
        model = npos == 2 ? pos[1] : NULL;
    }
    if (tokens && text) {
        cli_error("kld: give only one of --tokens and --text");
        return DC_ERR_USAGE;
    }
    if (!basef && !tokens && !text) {
        cli_error("kld: --tokens FILE or --text FILE is required; try 'deepcast kld --help'");
        return DC_ERR_USAGE;
    }

    dc_err err = {0};
    dc_status st = DC_OK;
    dc_ckpt *bck = NULL, *mck = NULL;
    dc_model *bm = NULL, *mm = NULL;
    dc_base_file bf;
    bool bf_open = false;
    int32_t *ids = NULL, bos = -1;
    size_t n = 0;
    float *bl = NULL, *ml = NULL;
    uint8_t *mark = NULL;
    int32_t *rid = NULL;
    float *rlp = NULL;
    double *pv = NULL; /* per-position values of one chunk */
    float *pf = NULL;
    dc_kld_acc acc = {0};
    dc_chunking ch;
    dc_base_writer bw;
    bool writing = false;
    double secs = 0;
    int64_t n_fwd = 0, V = 0;

    /* models */
    if (base && (st = dc_fwd_open(base, &bopt, &bck, &bm, &err)))
        goto done;
    if (model && (st = dc_fwd_open(model, &mopt, &mck, &mm, &err)))
        goto done;
    if (basef) {
        if ((st = dc_base_open(basef, &bf, &err)))
            goto done;
        bf_open = true;
    }
    V = bm ? dc_model_vocab(bm) : bf_open ? bf.vocab : 0;
    if (mm && dc_model_vocab(mm) != V) {
        st = dc_err_set(&err, DC_ERR_INPUT, "%s has vocab %lld but %s has %lld: the distributions cannot be compared",
                        model, (long long)dc_model_vocab(mm), base ? base : basef, (long long)V);
        goto done;
    }

    /* tokens and chunking */
    if (bf_open) {
        if ((st = dc_base_tokens(&bf, &ids, &err)))
            goto done;
        n = (size_t)bf.n_tokens;
        if (tokens || text) {
            int32_t *ids2;
            size_t n2;
            int32_t b2;
            if ((st = dc_fwd_input(tokens, text, tokdir ? tokdir : mck->dir, dc_model_config(mm)->bos_token_id, &ids2,
                                   &n2, &b2, &err)))
                goto done;
            bool same = n2 == n && !memcmp(ids2, ids, n * sizeof *ids);
            free(ids2);
            if (!same) {
                st = dc_err_set(&err, DC_ERR_INPUT, "%s: the tokens differ from the %zu tokens stored in %s",
                                tokens ? tokens : text, n, basef);
                goto done;
            }
        }
        if ((ctx_given && ctx != bf.ctx) || (llama != bf.llama_compat)) {
            st = dc_err_set(&err, DC_ERR_USAGE, "%s was made with %s--ctx %lld; give the same options or none",
                            basef, bf.llama_compat ? "--llama-compat " : "", (long long)bf.ctx);
            goto done;
        }
        if ((st = dc_chunking_init(&ch, (int64_t)n, bf.ctx, bf.llama_compat, bf.bos, &err)))
            goto done;
    } else {
        dc_model *tm = bm;
        if ((st = dc_fwd_input(tokens, text, tokdir ? tokdir : bck->dir, dc_model_config(tm)->bos_token_id, &ids, &n,
                               &bos, &err)))
            goto done;
        if ((st = dc_chunking_init(&ch, (int64_t)n, ctx, llama, bos, &err)))
            goto done;
    }
    if ((st = dc_tokens_check(ids, n, V, tokens ? tokens : text ? text : basef, &err)))
        goto done;
    if (save) {
        if (top_k > V)
            top_k = V;
        if ((st = dc_base_create(&bw, save, force, (uint32_t)top_k, V, ids, (int64_t)n, &ch, &err)))
            goto done;
        writing = true;
    }
    int K = bf_open ? (int)bf.top_k : (int)top_k;
    /* routing comparison: two MoE models with the same routed layers and top-k */
    route_cmp route = {0};
    if (bm && mm) {
        const dc_config *cb = dc_model_config(bm), *cm = dc_model_config(mm);
        route.on = !dc_arch_dense(cb->arch) && !dc_arch_dense(cm->arch) && cb->n_experts_per_tok == cm->n_experts_per_tok &&
                   cb->n_layers == cm->n_layers && cb->first_k_dense_replace == cm->first_k_dense_replace &&
                   cb->first_k_dense_replace < cb->n_layers && cb->n_experts_routed == cm->n_experts_routed;
    }
    g_route = &route;
    int64_t cmax = ch.ctx; /* scored positions per chunk <= ctx */
    bl = bm ? dc_malloc((size_t)ch.ctx * (size_t)V * sizeof(float), &err) : NULL;
    ml = mm ? dc_malloc((size_t)ch.ctx * (size_t)V * sizeof(float), &err) : NULL;
    mark = dc_calloc((size_t)V * (size_t)omp_get_max_threads(), 1, &err); /* one row per thread */
    rid = dc_malloc((size_t)(cmax * K) * sizeof(int32_t), &err);
    rlp = dc_malloc((size_t)(cmax * K) * sizeof(float), &err);
    pv = dc_malloc((size_t)cmax * 4 * sizeof(double), &err);
    pf = dc_malloc((size_t)cmax * 2 * sizeof(float), &err);
    if ((bm && !bl) || (mm && !ml) || !mark || !rid || !rlp || !pv || !pf) {
        st = DC_ERR_NOMEM;
        goto done;
    }

    /* positions: per chunk, the per-position values in parallel (each from one thread), then
     * accumulated in position order, so that the totals do not depend on the thread count */
    int64_t pi = 0;
    for (int64_t c = 0; c < ch.n_chunks; c++) {
        int64_t start, len, first;
        dc_chunk_range(&ch, (int64_t)n, c, &start, &len, &first);
        double t0 = dc_fwd_now();
        dc_routing rb = {0}, rm = {0};
        if (bm && (st = dc_fwd_chunk_routed(bm, ids, (int64_t)n, &ch, c, bl, route.on ? &rb : NULL, &err))) {
            dc_routing_free(&rb);
            dc_err_prefix(&err, "%s", base);
            goto done;
        }
        if (mm && (st = dc_fwd_chunk_routed(mm, ids, (int64_t)n, &ch, c, ml, route.on ? &rm : NULL, &err))) {
            dc_routing_free(&rb);
            dc_routing_free(&rm);
            dc_err_prefix(&err, "%s", model);
            goto done;
        }
        int64_t ns = len - 1 - first;
        double *kl = pv, *nb = pv + cmax, *nm = pv + 2 * cmax, *same = pv + 3 * cmax;
        float *lrest = pf, *ltgt = pf + cmax;
#pragma omp parallel for schedule(dynamic, 4)
        for (int64_t q = 0; q < ns; q++) {
            int64_t j = first + q;
            int32_t target = ids[start + j + 1];
            const float *brow = bm ? bl + j * V : NULL, *mrow = mm ? ml + j * V : NULL;
            dc_topk_rec rec = {0, 0, rid + q * K, rlp + q * K};
            if (bm && writing) {
                dc_topk_from_logits(brow, V, K, target, &rec);
                lrest[q] = rec.log_rest;
                ltgt[q] = rec.logp_target;
            }
            if (bm)
                nb[q] = dc_logsumexp(brow, V) - (double)brow[target];
            if (!mm)
                continue;
            nm[q] = dc_logsumexp(mrow, V) - (double)mrow[target];
            if (bm) {
                kl[q] = dc_kld_full(brow, mrow, V);
                same[q] = dc_argmax(brow, V) == dc_argmax(mrow, V);
            } else {
                dc_base_record(&bf, pi + q, &rec);
                kl[q] = dc_kld_topk(&rec, K, mrow, V, mark + (size_t)omp_get_thread_num() * (size_t)V);
                nb[q] = -(double)rec.logp_target;
                same[q] = rec.ids[0] == dc_argmax(mrow, V);
            }
        }
        for (int64_t q = 0; q < ns; q++) {
            if (bm && writing) {
                dc_topk_rec rec = {0, 0, rid + q * K, rlp + q * K};
                rec.log_rest = lrest[q];
                rec.logp_target = ltgt[q];
                if ((st = dc_base_append(&bw, &rec, &err)))
                    goto done;
            }
            if (mm)
                dc_kld_add(&acc, kl[q], nb[q], nm[q], same[q] != 0);
            else
                dc_nll_add(&acc.nll_base, nb[q]);
            if (route.on && routing_differs(&rb, &rm, first + q))
                route.n_changed++;
            else if (route.on) {
                route.n_stable++;
                route.sum_kld_stable += kl[q];
            }
        }
        dc_routing_free(&rb);
        dc_routing_free(&rm);
        pi += ns;
        secs += dc_fwd_now() - t0;
        n_fwd += len;
    }
    if (acc.oom) {
        st = dc_err_set(&err, DC_ERR_NOMEM, "out of memory keeping per-position statistics");
        goto done;
    }
    if (writing) {
        writing = false;
        if ((st = dc_base_commit(&bw, &err)))
            goto done;
        dc_log(1, "kld: saved the top-%d log-probs of %s at %lld positions to %s\n", K, base,
               (long long)dc_chunking_scored(&ch, (int64_t)n), save);
    }
    if (!mm && !json)
        printf("%s: PPL = %.4f over %lld positions\n", base, dc_nll_ppl(&acc.nll_base, NULL),
               (long long)acc.nll_base.count);
    if (mm)
        report(&acc, json, base ? base : basef, model, bf_open, K, secs > 0 ? (double)n_fwd / secs : 0, secs);
done:
    if (writing)
        dc_base_abort(&bw);
    if (st)
        cli_error("kld: %s", err.msg);
    if (bf_open)
        dc_base_close(&bf);
    dc_kld_free(&acc);
    free(bl);
    free(ml);
    free(mark);
    free(rid);
    free(rlp);
    free(pv);
    free(pf);
    free(ids);
    dc_fwd_close(bck, bm);
    dc_fwd_close(mck, mm);
    return st;
}
