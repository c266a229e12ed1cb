/* deepcast reshard IN OUT --merge-experts | --split-experts | --mp N | --from-mp | --max-shard-size SIZE */
#include "cli_util.h"
#include "cmds.h"
#include "dc_reshard.h"

#include <omp.h>
#include <string.h>
#include <unistd.h>

static const char *USAGE =
    "usage: deepcast reshard IN OUT MODE [options]\n"
    "modes (one):\n"
    "  --merge-experts        stack each layer's routed experts into the fused tensors of recent transformers:\n"
    "                         mlp.experts.gate_up_proj [E, 2I, H] (gate rows, then up rows, per expert) and\n"
    "                         mlp.experts.down_proj [E, H, I]; FP8 scales stacked alongside (*_scale_inv)\n"
    "  --split-experts        the exact inverse: back to mlp.experts.{e}.{gate,up,down}_proj.weight\n"
    "  --mp N                 DeepSeek's inference layout (its convert.py): model{i}-mp{N}.safetensors,\n"
    "                         names renamed, column-parallel weights split on dim 0, row-parallel on dim 1,\n"
    "                         embed/head by vocab, routed experts in contiguous ranges per rank, the rest\n"
    "                         replicated; the MTP layers are dropped as convert.py does\n"
    "  --from-mp              IN is a directory of model{i}-mp{N}.safetensors: back to the HF layout\n"
    "                         (needs the model's config.json in IN or --config FILE)\n"
    "  --max-shard-size SIZE  alone: re-shard into HF shards of at most SIZE (e.g. 5GB, 500MB), tensors\n"
    "                         ordered by layer; with --merge/--split-experts/--from-mp: their shard size\n"
    "                         (default: about the input's largest file)\n"
    "options:\n"
    "  --config FILE          --from-mp: the original config.json\n"
    "  --threads N            worker threads (output bytes do not depend on it)\n"
    "  --dry-run              print the plan (each output tensor, op, dtype, shape, bytes, file, source)\n"
    "  --force                replace OUT if it exists\n"
    "Tensor bytes are never changed: every mode is a re-layout, and each has an exact inverse\n"
    "(--mp drops the MTP layers). See docs/reshard.md; exit codes: docs/exit-codes.md.\n";

int cmd_reshard(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *val;
    dc_reshard_opts o;
    dc_reshard_opts_init(&o);
    int n_modes = 0;
    bool have_size = false;
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--merge-experts")) {
            o.mode = DC_RESHARD_MERGE_EXPERTS;
            n_modes++;
        } else if (!strcmp(a, "--split-experts")) {
            o.mode = DC_RESHARD_SPLIT_EXPERTS;
            n_modes++;
        } else if (!strcmp(a, "--from-mp")) {
            o.mode = DC_RESHARD_FROM_MP;
            n_modes++;
        } else if (!strcmp(a, "--mp")) {
            if (!(val = cli_value("reshard", argc, argv, &i)) || !cli_int("reshard", a, val, 1, 65536, &v))
                return DC_ERR_USAGE;
            o.mode = DC_RESHARD_MP;
            o.mp = (int)v;
            n_modes++;
        } else if (!strcmp(a, "--max-shard-size")) {
            if (!(val = cli_value("reshard", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!dc_parse_size(val, &o.max_shard_size) || !o.max_shard_size) {
                cli_error("reshard: --max-shard-size: cannot parse '%s' (e.g. 5GB, 500MB)", val);
                return DC_ERR_USAGE;
            }
            have_size = true;
        } else if (!strcmp(a, "--config")) {
            if (!(o.config_path = cli_value("reshard", argc, argv, &i)))
                return DC_ERR_USAGE;
        } else if (!strcmp(a, "--threads")) {
            if (!(val = cli_value("reshard", argc, argv, &i)) || !cli_int("reshard", a, val, 1, 1024, &v))
                return DC_ERR_USAGE;
            omp_set_num_threads((int)v);
        } else if (!strcmp(a, "--dry-run")) o.dry_run = true;
        else if (!strcmp(a, "--force")) o.force = true;
        else if (a[0] == '-' && a[1]) {
            cli_error("reshard: unknown option '%s'; try 'deepcast reshard --help'", a);
            return DC_ERR_USAGE;
        } else if (!in) in = a;
        else if (!out) out = a;
        else {
            cli_error("reshard: unexpected argument '%s'", a);
            return DC_ERR_USAGE;
        }
    }
    if (n_modes > 1) {
        cli_error("reshard: choose one of --merge-experts, --split-experts, --mp N, --from-mp");
        return DC_ERR_USAGE;
    }
    if (n_modes == 0 && !have_size) {
        cli_error("reshard: need a mode: --merge-experts, --split-experts, --mp N, --from-mp or --max-shard-size SIZE; "
                  "try 'deepcast reshard --help'");
        return DC_ERR_USAGE;
    }
    if (o.mode == DC_RESHARD_MP && have_size) {
        cli_error("reshard: --mp writes one file per rank (model{i}-mp{N}.safetensors); --max-shard-size does not apply");
        return DC_ERR_USAGE;
    }
    if (o.config_path && o.mode != DC_RESHARD_FROM_MP) {
        cli_error("reshard: --config is for --from-mp (other modes read IN/config.json)");
        return DC_ERR_USAGE;
    }
    if (!in || !out) {
        cli_error("reshard: need IN and OUT; try 'deepcast reshard --help'");
        return DC_ERR_USAGE;
    }
    o.progress = isatty(2) && dc_log_level > 0;
    dc_err err = {0};
    dc_reshard_stats s;
    dc_status st = dc_reshard(in, out, &o, stdout, &s, &err);
    if (st) {
        cli_error("reshard: %s", err.msg);
        return st;
    }
    if (!o.dry_run) {
        char b1[32], b2[32];
        dc_log(1, "reshard: %s -> %s (%s): %zu tensors in (%s), %zu out (%s) in %d file(s), %zu dropped, %.1f s\n", in,
               out, dc_reshard_mode_name(o.mode), s.n_in, dc_fmt_bytes(s.bytes_in, b1, sizeof b1), s.n_out,
               dc_fmt_bytes(s.bytes_out, b2, sizeof b2), s.n_files, s.n_dropped, s.seconds);
    }
    return 0;
}
