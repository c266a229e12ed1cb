/* deepcast imatrix MODEL (--text F | --tokens F) -o FILE: importance matrix for quantize --imatrix */
#include "cli_util.h"
#include "cmds.h"
#include "dc_imatrix.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *USAGE =
    "usage: deepcast imatrix MODEL (--text FILE | --tokens FILE) -o FILE [options]\n"
    "  Runs the reference forward pass over calibration data and records, per weight matrix, the sum of\n"
    "  the squared input activations of each column and the token count (per expert for the routed\n"
    "  experts), in llama.cpp's imatrix format with GGUF tensor names (blk.N.ffn_gate_exps.weight, ...),\n"
    "  for `deepcast quantize --imatrix` and llama-quantize. See docs/quantize.md.\n"
    "  --text FILE          UTF-8 text, tokenized with the model's tokenizer.json (BOS added)\n"
    "  --tokens FILE        token ids (whitespace-separated or a JSON list)\n"
    "  --tokenizer DIR      tokenizer directory for --text (default: MODEL's directory)\n"
    "  -o, --output FILE    the imatrix (GGUF unless --output-format dat)\n"
    "  --output-format gguf|dat  llama.cpp's GGUF imatrix (default) or the legacy .dat\n"
    "  --ctx N              chunk length (default 512): as llama-imatrix, n/ctx chunks of N tokens, the\n"
    "                       first token of each replaced by BOS; at least 2*N tokens needed\n"
    "  --chunks N           use at most N chunks\n"
    "  --process-output     also collect output.weight (llama-imatrix --process-output)\n"
    "  --threads N          OpenMP threads (the file is identical for any N)\n"
    "  --force              replace FILE if it exists\n";

int cmd_imatrix(int argc, char **argv)
{
    const char *model = NULL, *tokens = NULL, *text = NULL, *tokdir = NULL, *outp = NULL;
    long long ctx = 512, max_chunks = -1, v;
    bool legacy = false, process_output = false, force = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--tokens")) {
            if (!(tokens = cli_value("imatrix", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--text")) {
            if (!(text = cli_value("imatrix", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!(tokdir = cli_value("imatrix", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(outp = cli_value("imatrix", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--output-format")) {
            if (!(val = cli_value("imatrix", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!strcmp(val, "dat"))
                legacy = true;
            else if (strcmp(val, "gguf")) {
                cli_error("imatrix: --output-format must be gguf or dat, got '%s'", val);
                return DC_ERR_USAGE;
            }
        } else if (!strcmp(a, "--ctx")) {
            if (!(val = cli_value("imatrix", argc, argv, &i)) || !cli_int("imatrix", a, val, 4, 1LL << 30, &ctx))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--chunks")) {
            if (!(val = cli_value("imatrix", argc, argv, &i)) || !cli_int("imatrix", a, val, 1, 1LL << 40, &max_chunks))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--threads")) {
            if (!(val = cli_value("imatrix", argc, argv, &i)) || !cli_int("imatrix", a, val, 1, 4096, &v))
                return DC_ERR_USAGE;
            omp_set_num_threads((int)v);
        } else if (!strcmp(a, "--process-output")) process_output = true;
        else if (!strcmp(a, "--force")) force = true;
        else if (a[0] == '-' && a[1]) {
            cli_error("imatrix: unknown option '%s'; try 'deepcast imatrix --help'", a);
            return DC_ERR_USAGE;
        } else if (!model) model = a;
        else {
            cli_error("imatrix: unexpected argument '%s'", a);
            return DC_ERR_USAGE;
        }
    }
    if (!model || !outp || (!tokens == !text)) {
        cli_error("imatrix: %s; try 'deepcast imatrix --help'",
                  !model ? "MODEL is required" : !outp ? "-o FILE is required" : "give exactly one of --tokens FILE and --text FILE");
        return DC_ERR_USAGE;
    }
    dc_err err = {0};
    dc_ckpt *ck = NULL;
    dc_model *m = NULL;
    dc_imatrix_acc *acc = NULL;
    int32_t *ids = NULL, bos = -1;
    size_t n = 0;
    float *logits = NULL;
    dc_chunking ch;
    dc_fwd_opts opts;
    dc_fwd_opts_default(&opts);
    double t0 = dc_fwd_now();
    dc_status st = dc_fwd_open(model, &opts, &ck, &m, &err);
    if (!st && !force && dc_exists(outp))
        st = dc_err_set(&err, DC_ERR_EXISTS, "%s: already exists (use --force to overwrite)", outp);
    if (!st)
        st = dc_fwd_input(tokens, text, tokdir ? tokdir : ck->dir, dc_model_config(m)->bos_token_id, &ids, &n, &bos, &err);
    if (!st)
        st = dc_tokens_check(ids, n, dc_model_vocab(m), tokens ? tokens : text, &err);
    if (!st)
        st = dc_chunking_init(&ch, (int64_t)n, ctx, true, bos, &err);
    if (!st && max_chunks > 0 && ch.n_chunks > max_chunks)
        ch.n_chunks = max_chunks;
    if (!st && process_output &&
        !(logits = dc_malloc((size_t)ch.ctx * (size_t)dc_model_vocab(m) * sizeof(float), &err)))
        st = DC_ERR_NOMEM;
    if (!st)
        st = dc_imatrix_acc_new(m, process_output, &acc, &err);
    if (!st)
        dc_model_set_act_hook(m, dc_imatrix_hook, acc);
    for (int64_t c = 0; !st && c < ch.n_chunks; c++) {
        st = dc_fwd_chunk(m, ids, (int64_t)n, &ch, c, logits, &err);
        if (!st)
            st = dc_imatrix_acc_status(acc, &err);
        if (!st && dc_log_level > 0 && isatty(2))
            fprintf(stderr, "\rimatrix: chunk %lld/%lld, %.1f s   ", (long long)(c + 1), (long long)ch.n_chunks,
                    dc_fwd_now() - t0);
    }
    if (dc_log_level > 0 && isatty(2) && ch.n_chunks > 0)
        fputc('\n', stderr);
    if (!st)
        st = dc_imatrix_write(acc, outp, legacy, tokens ? tokens : text, (int32_t)ch.n_chunks, (int32_t)ch.ctx, force,
                              &err);
    if (st)
        cli_error("imatrix: %s", err.msg);
    else
        dc_log(1, "imatrix: %s: %zu matrices over %lld chunks of %lld tokens -> %s (%s), %.1f s\n", model,
               dc_imatrix_acc_count(acc), (long long)ch.n_chunks, (long long)ch.ctx, outp, legacy ? "dat" : "gguf",
               dc_fwd_now() - t0);
    dc_imatrix_acc_free(acc);
    free(logits);
    free(ids);
    dc_fwd_close(ck, m);
    return st;
}
