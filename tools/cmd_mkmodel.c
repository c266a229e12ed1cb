/* deepcast mkmodel OUTDIR --preset NAME [...]: synthetic checkpoints in the release layout. */
#include "cli_util.h"
#include "cmds.h"
#include "dc_io.h"
#include "dc_mkmodel.h"
#include "dc_tokenizer.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deepcast mkmodel OUTDIR --preset NAME [options]\n"
            "  --preset NAME          %s\n"
            "  --seed N               weights are a deterministic function of the seed (default 1)\n"
            "  --layers N             num_hidden_layers\n"
            "  --dense N              first_k_dense_replace (dense MLP layers first)\n"
            "  --experts N            n_routed_experts\n"
            "  --mtp N                num_nextn_predict_layers (MTP layers written after the main ones)\n"
            "  --vocab N              vocab_size\n"
            "  --dtype bf16|fp8       weight storage (fp8: F8_E4M3 + F32 weight_scale_inv per 128x128 block)\n"
            "  --scale-format f32|ue8m0  FP8 scale values (ue8m0: powers of two, V3.1 style)\n"
            "  --max-shard-size SIZE  e.g. 5GB (default: two shards for small models, 4.3GB otherwise)\n"
            "  --no-tokenizer         do not write tokenizer.json / tokenizer_config.json\n"
            "  --threads N            worker threads (output bytes do not depend on it)\n"
            "  --force                replace OUTDIR if it exists\n",
            dc_mk_presets());
}

int cmd_mkmodel(int argc, char **argv)
{
    const char *out = NULL;
    dc_mk_opts o;
    dc_mk_opts_init(&o);
    bool preset_given = false, force = false, tokenizer = true;
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
#define INTOPT(name, field, lo, hi) \
    else if (!strcmp(a, name)) { \
        if (!(val = cli_value("mkmodel", argc, argv, &i)) || !cli_int("mkmodel", name, val, lo, hi, &v)) \
            return DC_ERR_USAGE; \
        field = v; \
    }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--preset")) {
            if (!(o.preset = cli_value("mkmodel", argc, argv, &i)))
                return DC_ERR_USAGE;
            preset_given = true;
        }
        INTOPT("--seed", o.seed, 0, INT64_MAX)
        INTOPT("--layers", o.layers, 1, 1000)
        INTOPT("--dense", o.dense, 0, 1000)
        INTOPT("--experts", o.experts, 1, 4096)
        INTOPT("--mtp", o.mtp, 0, 16)
        INTOPT("--vocab", o.vocab, 300, 10000000)
        else if (!strcmp(a, "--threads")) {
            if (!(val = cli_value("mkmodel", argc, argv, &i)) || !cli_int("mkmodel", a, val, 1, 1024, &v))
                return DC_ERR_USAGE;
            omp_set_num_threads((int)v);
        } else if (!strcmp(a, "--dtype")) {
            if (!(val = cli_value("mkmodel", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!strcmp(val, "bf16")) o.fp8 = 0;
            else if (!strcmp(val, "fp8")) o.fp8 = 1;
            else {
                cli_error("mkmodel: --dtype must be bf16 or fp8, got '%s'", val);
                return DC_ERR_USAGE;
            }
        } else if (!strcmp(a, "--scale-format")) {
            if (!(val = cli_value("mkmodel", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!strcmp(val, "f32")) o.scale_fmt = DC_SCALE_F32;
            else if (!strcmp(val, "ue8m0")) o.scale_fmt = DC_SCALE_UE8M0;
            else {
                cli_error("mkmodel: --scale-format must be f32 or ue8m0, got '%s'", val);
                return DC_ERR_USAGE;
            }
        } else if (!strcmp(a, "--max-shard-size")) {
            if (!(val = cli_value("mkmodel", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!dc_parse_size(val, &o.max_shard_size) || !o.max_shard_size) {
                cli_error("mkmodel: --max-shard-size: cannot parse '%s' (e.g. 5GB, 500MB)", val);
                return DC_ERR_USAGE;
            }
        } else if (!strcmp(a, "--no-tokenizer")) tokenizer = false;
        else if (!strcmp(a, "--force")) force = true;
        else if (a[0] == '-' && a[1]) {
            cli_error("mkmodel: unknown option '%s'; try 'deepcast mkmodel --help'", a);
            return DC_ERR_USAGE;
        } else if (!out) out = a;
        else {
            cli_error("mkmodel: unexpected argument '%s'", a);
            return DC_ERR_USAGE;
        }
    }
    if (!out || !preset_given) {
        cli_error("mkmodel: need OUTDIR and --preset; try 'deepcast mkmodel --help'");
        return DC_ERR_USAGE;
    }
    dc_err err = {0};
    dc_config cfg;
    dc_status st = dc_mk_config(&o, &cfg, &err);
    if (st) {
        cli_error("mkmodel: %s", err.msg);
        return st == DC_ERR_USAGE || st == DC_ERR_CONFIG ? DC_ERR_USAGE : st;
    }
    dc_outdir od;
    if ((st = dc_outdir_open(&od, out, force, &err)) != DC_OK) {
        cli_error("mkmodel: %s", err.msg);
        return st;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t bytes = 0;
    st = dc_mkmodel_write(od.tmp_path, &o, &cfg, &bytes, &err);
    if (!st && tokenizer) {
        int tv = cfg.vocab_size < 4000 ? (int)cfg.vocab_size : 4000;
        st = dc_tok_write_synthetic(od.tmp_path, tv, (int)cfg.bos_token_id, (int)cfg.eos_token_id, o.seed, &err);
    }
    if (!st)
        st = dc_outdir_commit(&od, &err);
    else
        dc_outdir_abort(&od);
    if (st) {
        cli_error("mkmodel: %s", err.msg);
        return st;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    char b[32];
    dc_log(1, "mkmodel: wrote %s (%s, %s) in %.1f s\n", out, o.preset, dc_fmt_bytes(bytes, b, sizeof b), sec);
    return 0;
}
