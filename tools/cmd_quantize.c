/* deepcast quantize IN OUT TYPE [options]: llama-quantize's file types, byte for byte */
#include "cli_util.h"
#include "cmds.h"
#include "dc_quantize.h"

#include <ctype.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *USAGE =
    "usage: deepcast quantize IN OUT TYPE [options]\n"
    "  IN    a GGUF (any split of a split set) or a DeepSeek Hugging Face checkpoint directory (converted\n"
    "        on the fly as `convert --to gguf --type f32` would, then quantized: one pass, no F32 file)\n"
    "  OUT   the quantized .gguf\n"
    "  TYPE  a llama-quantize file type: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q2_K_S, Q3_K_S, Q3_K_M (Q3_K),\n"
    "        Q3_K_L, Q4_K_S, Q4_K_M (Q4_K), Q5_K_S, Q5_K_M (Q5_K), Q6_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0,\n"
    "        MXFP4_MOE, F16, BF16, F32 (case-insensitive, or llama_ftype's number)\n"
    "  The per-tensor types, tensor order, KVs and bytes are those of llama.cpp's llama-quantize for the\n"
    "  same input and options (docs/quantize.md).\n"
    "  --imatrix FILE              importance matrix: GGUF (deepcast imatrix, llama-imatrix) or legacy .dat\n"
    "  --tensor-type REGEX=TYPE    tensors whose name matches REGEX get ggml type TYPE (q8_0, q4_K, f16, ...);\n"
    "                              repeatable, the first match wins (skips the file type's mixture rules)\n"
    "  --recipe deepseek           DeepSeek-aware mix: everything but the routed experts (MLA attention, shared\n"
    "                              experts, dense MLPs, nextn) at q8_0 (~3%% of V3's weights); the experts, token\n"
    "                              embeddings and output.weight by TYPE. The same as --tensor-type options\n"
    "                              (listed by --dry-run), applied after any given explicitly\n"
    "  --pure                      no mixtures: every quantizable tensor gets the file type's default type\n"
    "  --output-tensor-type T      ggml type of output.weight\n"
    "  --token-embedding-type T    ggml type of token_embd.weight\n"
    "  --leave-output-tensor       keep output.weight as it is\n"
    "  --allow-requantize          accept already quantized input tensors (loses quality)\n"
    "  --drop-mtp                  Hugging Face input: leave out the MTP (nextn) layer\n"
    "  --threads N                 worker threads (the bytes do not depend on it)\n"
    "  --dry-run                   print the per-tensor plan (types, MiB, fallbacks), total size and bits per\n"
    "                              weight; write nothing\n"
    "  --force                     replace OUT if it exists\n";

static int parse_type(const char *opt, const char *v, int *out)
{
    int t = dc_ggml_type_parse(v);
    if (t < 0) {
        cli_error("quantize: %s: unknown ggml type '%s' (q8_0, q6_K, q4_K, f16, ...)", opt, v);
        return DC_ERR_USAGE;
    }
    *out = t;
    return 0;
}

int cmd_quantize(int argc, char **argv)
{
    const char *pos[3] = {0};
    int npos = 0;
    dc_quantize_opts o;
    dc_quantize_opts_init(&o);
    dc_tensor_type_opt *tt = NULL;
    char **ttbuf = NULL;
    size_t ntt = 0;
    int rc = 0;
    const char *val, *recipe = NULL;
    long long v;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            goto out;
        } else if (!strcmp(a, "--imatrix")) {
            if (!(o.imatrix = cli_value("quantize", argc, argv, &i)))
                rc = DC_ERR_USAGE;
        } else if (!strcmp(a, "--tensor-type")) {
            if (!(val = cli_value("quantize", argc, argv, &i))) {
                rc = DC_ERR_USAGE;
                break;
            }
            const char *eq = strchr(val, '=');
            if (!eq || eq == val || !eq[1]) {
                cli_error("quantize: --tensor-type needs REGEX=TYPE, got '%s'", val);
                rc = DC_ERR_USAGE;
                break;
            }
            int t;
            if ((rc = parse_type("--tensor-type", eq + 1, &t)))
                break;
            dc_tensor_type_opt *nt = realloc(tt, (ntt + 1) * sizeof *tt);
            char **nb = realloc(ttbuf, (ntt + 1) * sizeof *ttbuf);
            char *pat = strndup(val, (size_t)(eq - val));
            if (nt)
                tt = nt;
            if (nb)
                ttbuf = nb;
            if (!nt || !nb || !pat) {
                free(pat);
                cli_error("quantize: out of memory");
                rc = DC_ERR_NOMEM;
                break;
            }
            for (char *c = pat; *c; c++) /* llama-quantize lower-cases the name part */
                *c = (char)tolower((unsigned char)*c);
            ttbuf[ntt] = pat;
            tt[ntt].pattern = pat;
            tt[ntt].type = t;
            ntt++;
        } else if (!strcmp(a, "--recipe")) {
            if (!(val = cli_value("quantize", argc, argv, &i))) {
                rc = DC_ERR_USAGE;
                break;
            }
            size_t nrc;
            if (!dc_quantize_recipe(val, &nrc)) {
                cli_error("quantize: unknown --recipe '%s' (deepseek)", val);
                rc = DC_ERR_USAGE;
                break;
            }
            recipe = val;
        } else if (!strcmp(a, "--output-tensor-type")) {
            if (!(val = cli_value("quantize", argc, argv, &i)))
                rc = DC_ERR_USAGE;
            else
                rc = parse_type(a, val, &o.output_tensor_type);
        } else if (!strcmp(a, "--token-embedding-type")) {
            if (!(val = cli_value("quantize", argc, argv, &i)))
                rc = DC_ERR_USAGE;
            else
                rc = parse_type(a, val, &o.token_embedding_type);
        } else if (!strcmp(a, "--threads")) {
            if (!(val = cli_value("quantize", argc, argv, &i)) || !cli_int("quantize", a, val, 1, 1024, &v))
                rc = DC_ERR_USAGE;
            else
                omp_set_num_threads((int)v);
        } else if (!strcmp(a, "--pure")) o.pure = true;
        else if (!strcmp(a, "--leave-output-tensor")) o.leave_output_tensor = true;
        else if (!strcmp(a, "--allow-requantize")) o.allow_requantize = true;
        else if (!strcmp(a, "--drop-mtp")) o.drop_mtp = true;
        else if (!strcmp(a, "--dry-run")) o.dry_run = true;
        else if (!strcmp(a, "--force")) o.force = true;
        else if (a[0] == '-' && a[1]) {
            cli_error("quantize: unknown option '%s'; try 'deepcast quantize --help'", a);
            rc = DC_ERR_USAGE;
        } else if (npos < 3) {
            pos[npos++] = a;
        } else {
            cli_error("quantize: unexpected argument '%s'", a);
            rc = DC_ERR_USAGE;
        }
    }
    if (rc)
        goto out;
    /* IN TYPE is enough for --dry-run */
    const char *in = pos[0], *outp = npos == 3 ? pos[1] : NULL, *type = npos == 3 ? pos[2] : npos == 2 ? pos[1] : NULL;
    if (!in || !type || (!outp && !o.dry_run)) {
        cli_error("quantize: need IN, OUT and TYPE; try 'deepcast quantize --help'");
        rc = DC_ERR_USAGE;
        goto out;
    }
    const char *tname;
    if (!dc_ftype_parse(type, &o.ftype, &tname)) {
        cli_error("quantize: unknown file type '%s'; one of %s", type, dc_ftype_names());
        rc = DC_ERR_USAGE;
        goto out;
    }
    size_t nr = 0;
    if (recipe) { /* after the explicit ones: the first match wins */
        const dc_tensor_type_opt *r = dc_quantize_recipe(recipe, &nr);
        dc_tensor_type_opt *nt = realloc(tt, (ntt + nr) * sizeof *tt);
        if (!nt) {
            cli_error("quantize: out of memory");
            rc = DC_ERR_NOMEM;
            goto out;
        }
        tt = nt;
        memcpy(tt + ntt, r, nr * sizeof *r);
    }
    o.tt = tt;
    o.n_tt = ntt + nr;
    o.progress = isatty(2) && dc_log_level > 0;
    dc_err err = {0};
    dc_quantize_stats s;
    dc_status st = dc_quantize(in, outp ? outp : "", &o, stdout, &s, &err);
    if (st) {
        cli_error("quantize: %s", err.msg);
        rc = st;
        goto out;
    }
    if (!o.dry_run) {
        char b1[32], b2[32];
        double el = s.n_elements ? (double)s.n_elements : 1;
        dc_log(1, "quantize: %s -> %s (%s): %zu tensors, %zu quantized, %zu copied, %zu fallback(s)%s; %s -> %s "
                  "(%.2f -> %.2f bits per weight), %.1f s\n",
               in, outp, tname, s.n_tensors, s.n_quantized, s.n_copied, s.n_fallback,
               o.imatrix ? ", imatrix" : "", dc_fmt_bytes(s.bytes_in, b1, sizeof b1), dc_fmt_bytes(s.bytes_out, b2, sizeof b2),
               (double)s.bytes_in * 8.0 / el, (double)s.bytes_out * 8.0 / el, s.seconds);
        if (o.imatrix)
            dc_log(1, "quantize: imatrix %s: %zu entries, used for %zu tensors\n", o.imatrix, s.n_imatrix_entries,
                   s.n_imatrix_used);
    }
out:
    for (size_t i = 0; i < ntt; i++)
        free(ttbuf[i]);
    free(ttbuf);
    free(tt);
    return rc;
}
