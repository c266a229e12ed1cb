/* deepcast logits MODEL --tokens FILE --out FILE: the reference forward pass (verify/dc_forward.h),
 * float32 little-endian logits [n_tokens][vocab] for every position. */
#include "cli_util.h"
#include "cmds.h"
#include "dc_forward.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: deepcast logits MODEL --tokens FILE --out FILE [options]\n"
    "  Runs DeepSeek's forward pass (float32, prefill from position 0) and writes the logits of every\n"
    "  position as float32 little-endian, row-major [n_tokens][vocab].\n"
    "  --tokens FILE     token ids: whitespace-separated decimal numbers, or a JSON list\n"
    "  --out FILE        output (written under a temporary name, renamed when complete)\n"
    "  --force           overwrite an existing --out\n"
    "  --threads N       OpenMP threads (results are identical for any N)\n"
    "  --exact-fp8       dequantise FP8 as f32(fp8) * scale (default: rounded to bf16, as DeepSeek does)\n"
    "  --mem-budget SIZE keep up to SIZE of dequantised weights between uses (default 256MiB; 0 = none)\n";

int cmd_logits(int argc, char **argv)
{
    const char *model = NULL, *tokens = NULL, *outp = NULL;
    bool force = false;
    dc_fwd_opts opts;
    dc_fwd_opts_default(&opts);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--tokens")) {
            if (!(tokens = cli_value("logits", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--out")) {
            if (!(outp = cli_value("logits", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--threads")) {
            const char *v = cli_value("logits", argc, argv, &i);
            long long t;
            if (!v || !cli_int("logits", "--threads", v, 1, 4096, &t))
                return DC_ERR_USAGE;
            omp_set_num_threads((int)t);
        } else if (!strcmp(a, "--mem-budget")) {
            const char *v = cli_value("logits", argc, argv, &i);
            if (!v)
                return DC_ERR_USAGE;
            if (!dc_parse_size(v, &opts.mem_budget)) {
                cli_error("logits: --mem-budget must be a size like 512MB or 2GiB, got '%s'", v);
                return DC_ERR_USAGE;
            }
        } else if (!strcmp(a, "--exact-fp8")) {
            opts.deq_mode = DC_DEQ_EXACT;
        } else if (!strcmp(a, "--force")) {
            force = true;
        } else if (a[0] == '-' && a[1]) {
            cli_error("logits: unknown option '%s'; try 'deepcast logits --help'", a);
            return DC_ERR_USAGE;
        } else if (!model) {
            model = a;
        } else {
            cli_error("logits: unexpected argument '%s'", a);
            return DC_ERR_USAGE;
        }
    }
    if (!model || !tokens || !outp) {
        cli_error("logits: %s is required; try 'deepcast logits --help'",
                  !model ? "MODEL" : !tokens ? "--tokens FILE" : "--out FILE");
        return DC_ERR_USAGE;
    }

    dc_err err = {0};
    dc_ckpt *ck = NULL;
    dc_model *m = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    float *logits = NULL;
    dc_status st = dc_tokens_load(tokens, &ids, &n, &err);
    if (!st)
        st = dc_fwd_open(model, &opts, &ck, &m, &err);
    if (!st)
        st = dc_tokens_check(ids, n, dc_model_vocab(m), tokens, &err);
    uint64_t cells = 0;
    if (!st && !dc_mul_u64(n, (uint64_t)dc_model_vocab(m), &cells))
        st = dc_err_set(&err, DC_ERR_NOMEM, "%zu tokens x vocab %lld logits overflow", n, (long long)dc_model_vocab(m));
    if (!st && !(logits = dc_malloc((size_t)cells * sizeof(float), &err)))
        st = DC_ERR_NOMEM;
    double t0 = dc_fwd_now();
    dc_fwd_out o = {logits, NULL, NULL};
    if (!st)
        st = dc_forward(m, ids, (int64_t)n, &o, &err);
    double secs = dc_fwd_now() - t0;
    if (!st) {
        dc_outfile f;
        st = dc_outfile_open(&f, outp, force, &err);
        if (!st) {
            st = dc_outfile_pwrite(&f, logits, (size_t)cells * sizeof(float), 0, &err);
            if (st)
                dc_outfile_abort(&f);
            else
                st = dc_outfile_commit(&f, &err);
        }
    }
    if (st)
        cli_error("logits: %s", err.msg);
    else
        dc_log(1, "logits: %zu tokens x %lld vocab -> %s (%.2f s, %.1f tokens/s, %d threads)\n", n,
               (long long)dc_model_vocab(m), outp, secs, secs > 0 ? (double)n / secs : 0.0, omp_get_max_threads());
    free(logits);
    free(ids);
    dc_fwd_close(ck, m);
    return st;
}
