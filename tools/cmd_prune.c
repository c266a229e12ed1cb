/* deepcast prune-experts IN OUT --keep K (--text F | --tokens F) [--merge] ... */
#include "cli_util.h"
#include "cmds.h"
#include "dc_prune.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: deepcast prune-experts IN OUT --keep K (--tokens FILE | --text FILE) [options]\n"
    "  Runs the reference forward pass on the calibration tokens, keeps the K most important routed\n"
    "  experts of every MoE layer (K / n_group in each expert group), rewrites the router rows, the\n"
    "  correction bias and n_routed_experts, and prints the KL divergence of the pruned model from the\n"
    "  original on held-out tokens. MTP layers are dropped (they are not evaluated).\n"
    "  --keep K            experts kept per layer (a multiple of n_group)\n"
    "  --merge             fold each removed expert into the most similar kept expert of its group\n"
    "                      (frequency-weighted average) instead of dropping it; prints both KLDs\n"
    "  --by-freq           rank experts by selection count (default: by summed routing weight)\n"
    "  --holdout F         fraction of the tokens held out for the KLD (default 0.25)\n"
    "  --save-holdout FILE write the held-out token ids (so 'deepcast kld IN OUT --tokens FILE' can\n"
    "                      reproduce the reported KLD)\n"
    "  --ctx N             chunk length (default: whole sequences)\n"
    "  --tokenizer DIR     tokenizer for --text (default: IN)\n"
    "  --json              print the report as JSON\n"
    "  --threads N, --dry-run (print the selection only), --force\n";

int cmd_prune(int argc, char **argv)
{
    dc_prune_opts o;
    dc_prune_opts_init(&o);
    const char *in = NULL, *out = NULL, *v;
    bool json = false, have_keep = false;
    long long x;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--keep")) {
            if (!(v = cli_value("prune-experts", argc, argv, &i)) || !cli_int("prune-experts", a, v, 1, 1 << 20, &x))
                return DC_ERR_USAGE;
            o.keep = (int)x;
            have_keep = true;
        } else if (!strcmp(a, "--tokens")) {
            if (!(o.tokens_path = cli_value("prune-experts", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--text")) {
            if (!(o.text_path = cli_value("prune-experts", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!(o.tok_dir = cli_value("prune-experts", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--save-holdout")) {
            if (!(o.save_holdout = cli_value("prune-experts", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--holdout")) {
            if (!(v = cli_value("prune-experts", argc, argv, &i)))
                return DC_ERR_USAGE;
            char *end;
            o.holdout = strtod(v, &end);
            if (*end || !(o.holdout > 0 && o.holdout < 1)) {
                cli_error("prune-experts: --holdout must be a fraction in (0, 1), got '%s'", v);
                return DC_ERR_USAGE;
            }
        } else if (!strcmp(a, "--ctx")) {
            if (!(v = cli_value("prune-experts", argc, argv, &i)) || !cli_int("prune-experts", a, v, 2, 1LL << 40, &x))
                return DC_ERR_USAGE;
            o.ctx = x;
        } else if (!strcmp(a, "--threads")) {
            if (!(v = cli_value("prune-experts", argc, argv, &i)) || !cli_int("prune-experts", a, v, 1, 1024, &x))
                return DC_ERR_USAGE;
            omp_set_num_threads((int)x);
        } else if (!strcmp(a, "--merge")) o.merge = true;
        else if (!strcmp(a, "--by-freq")) o.by_freq = true;
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--dry-run")) o.dry_run = true;
        else if (!strcmp(a, "--force")) o.force = true;
        else if (a[0] == '-' && a[1]) {
            cli_error("prune-experts: unknown option '%s'; try 'deepcast prune-experts --help'", a);
            return DC_ERR_USAGE;
        } else if (!in) in = a;
        else if (!out) out = a;
        else {
            cli_error("prune-experts: unexpected argument '%s'", a);
            return DC_ERR_USAGE;
        }
    }
    if (!in || (!out && !o.dry_run) || !have_keep || (!o.tokens_path == !o.text_path)) {
        cli_error("prune-experts: need IN, OUT, --keep K and one of --tokens / --text; try 'deepcast prune-experts --help'");
        return DC_ERR_USAGE;
    }
    dc_err err = {0};
    dc_prune_report r;
    dc_status st = dc_prune_experts(in, out ? out : "", &o, json ? stderr : stdout, &r, &err);
    if (st) {
        cli_error("prune-experts: %s", err.msg);
        return st;
    }
    if (o.dry_run)
        return 0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "keep", o.keep);
        cJSON_AddNumberToObject(j, "n_moe_layers", r.n_layers);
        cJSON_AddNumberToObject(j, "kept_routing_weight", r.kept_mass);
        cJSON_AddNumberToObject(j, "n_calibration_tokens", (double)r.n_calib);
        cJSON_AddNumberToObject(j, "n_holdout_tokens", (double)r.n_holdout);
        cJSON_AddNumberToObject(j, "n_scored", (double)r.n_scored);
        cJSON_AddNumberToObject(j, "kld_mean", r.kld);
        if (o.merge)
            cJSON_AddNumberToObject(j, "kld_mean_drop", r.kld_drop);
        cJSON_AddNumberToObject(j, "ppl_base", r.ppl_base);
        cJSON_AddNumberToObject(j, "ppl_pruned", r.ppl_model);
        cli_print_json(stdout, j);
    } else {
        printf("held-out KLD(original || %s) = %.6g over %lld positions; PPL %.4f -> %.4f\n",
               o.merge ? "merged" : "pruned", r.kld, (long long)r.n_scored, r.ppl_base, r.ppl_model);
        if (o.merge)
            printf("held-out KLD(original || dropped) = %.6g (the same selection without merging)\n", r.kld_drop);
    }
    return 0;
}
