/* deepcast convert IN OUTDIR --to bf16|f16|f32|fp8 [...]; convert IN OUT.gguf --to gguf [...] */
#include "cli_util.h"
#include "cmds.h"
#include "dc_convert.h"
#include "dc_fp8.h"
#include "dc_gguf_export.h"

#include <omp.h>
#include <string.h>
#include <unistd.h>

static const char *USAGE =
    "usage: deepcast convert IN OUTDIR --to bf16|f16|f32|fp8 [options]\n"
    "  --to bf16|f16|f32      dequantize FP8 weights with their block scales (bf16: bf16(f32(fp8) * scale),\n"
    "                         bit-identical to DeepSeek's fp8_cast_bf16.py; f16/f32: exact product), drop\n"
    "                         the weight_scale_inv tensors, copy everything else unchanged, remove\n"
    "                         quantization_config and set torch_dtype in config.json\n"
    "  --to fp8               quantize the tensors the release stores in FP8 (attention and MLP projections,\n"
    "                         experts, shared experts, the MTP layer's decoder) to e4m3 with one scale per\n"
    "                         block (amax / 448, round to nearest even, saturating); keep the rest\n"
    "  --block N              FP8 block edge (default 128)\n"
    "  --scale-format f32|bf16|ue8m0  FP8 scales: f32 (default), bf16 (rounded up), ue8m0 (power of two,\n"
    "                         rounded up, stored as F32, config scale_fmt: ue8m0)\n"
    "  --max-shard-size SIZE  e.g. 5GB (default: about the input's largest shard)\n"
    "  --drop-mtp             leave out the MTP layers (num_nextn_predict_layers becomes 0)\n"
    "  --threads N            worker threads (output bytes do not depend on it)\n"
    "  --dry-run              print the plan (each output tensor, source, dtype, bytes, shard) and totals\n"
    "  --force                replace OUTDIR if it exists\n"
    "\n"
    "usage: deepcast convert IN OUT.gguf [--to gguf] [--type f32|f16|bf16|q8_0|auto] [options]\n"
    "  GGUF v3 for llama.cpp's deepseek2 architecture (chosen by --to gguf or an OUT ending in .gguf):\n"
    "  deepseek2.* metadata, tokenizer, tensors renamed, experts stacked, kv_b_proj split into\n"
    "  attn_k_b / attn_v_b, FP8 dequantized like DeepSeek (bf16(f32(fp8) * scale)). See docs/gguf.md\n"
    "  --type T               tensor type: f32, f16, bf16, q8_0 (norms, router and biases stay F32), or auto\n"
    "                         (default: bf16 for a BF16/FP8 checkpoint, f16 otherwise)\n"
    "  --split-max-size SIZE  split into OUT-00001-of-0000N.gguf files of at most SIZE tensor bytes\n"
    "  --drop-mtp             leave out the MTP layer (written by default as llama.cpp's nextn block)\n"
    "  --threads N, --dry-run, --force  as above\n";

static int convert_gguf(const char *in, const char *out, const dc_gguf_export_opts *g)
{
    dc_err err = {0};
    dc_gguf_export_stats s;
    dc_status st = dc_gguf_export(in, out, g, stdout, &s, &err);
    if (st) {
        cli_error("convert: %s", err.msg);
        return st;
    }
    if (!g->dry_run) {
        char b1[32], b2[32];
        dc_log(1, "convert: %s -> %s (gguf %s): %zu tensors in, %zu out, %d MTP layer(s), tokenizer %s; %s read, %s "
                  "written in %d file(s), %.1f s\n",
               in, out, dc_gguf_out_name(s.type), s.n_tensors_in, s.n_tensors_out, s.n_mtp_layers,
               s.tokenizer ? "gpt2" : "none", dc_fmt_bytes(s.bytes_in, b1, sizeof b1),
               dc_fmt_bytes(s.bytes_out, b2, sizeof b2), s.n_splits, s.seconds);
    }
    return 0;
}

int cmd_convert(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *val;
    dc_convert_opts o;
    dc_convert_opts_init(&o);
    dc_gguf_export_opts g;
    dc_gguf_export_opts_init(&g);
    bool have_to = false, to_gguf = false, have_type = false, have_split = false;
    const char *to_val = NULL;
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--to")) {
            if (!(val = cli_value("convert", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!strcmp(val, "gguf"))
                to_gguf = true;
            else if (!dc_target_parse(val, &o.target)) {
                cli_error("convert: --to must be bf16, f16, f32, fp8 or gguf, got '%s'", val);
                return DC_ERR_USAGE;
            }
            have_to = true;
            to_val = val;
        } else if (!strcmp(a, "--type")) {
            if (!(val = cli_value("convert", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!dc_gguf_out_parse(val, &g.type)) {
                cli_error("convert: --type must be f32, f16, bf16, q8_0 or auto, got '%s'", val);
                return DC_ERR_USAGE;
            }
            have_type = true;
        } else if (!strcmp(a, "--split-max-size")) {
            if (!(val = cli_value("convert", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!dc_parse_size(val, &g.split_max_size) || !g.split_max_size) {
                cli_error("convert: --split-max-size: cannot parse '%s' (e.g. 5G, 500M)", val);
                return DC_ERR_USAGE;
            }
            have_split = true;
        } else if (!strcmp(a, "--block")) {
            if (!(val = cli_value("convert", argc, argv, &i)) || !cli_int("convert", a, val, 1, 65536, &v))
                return DC_ERR_USAGE;
            o.block = (int)v;
        } else if (!strcmp(a, "--scale-format")) {
            if (!(val = cli_value("convert", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!strcmp(val, "f32")) o.scale_mode = DC_FP8_SCALE_F32;
            else if (!strcmp(val, "bf16")) o.scale_mode = DC_FP8_SCALE_BF16;
            else if (!strcmp(val, "ue8m0")) o.scale_mode = DC_FP8_SCALE_UE8M0;
            else {
                cli_error("convert: --scale-format must be f32, bf16 or ue8m0, got '%s'", val);
                return DC_ERR_USAGE;
            }
        } else if (!strcmp(a, "--max-shard-size")) {
            if (!(val = cli_value("convert", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!dc_parse_size(val, &o.max_shard_size) || !o.max_shard_size) {
                cli_error("convert: --max-shard-size: cannot parse '%s' (e.g. 5GB, 500MB)", val);
                return DC_ERR_USAGE;
            }
        } else if (!strcmp(a, "--threads")) {
            if (!(val = cli_value("convert", argc, argv, &i)) || !cli_int("convert", a, val, 1, 1024, &v))
                return DC_ERR_USAGE;
            omp_set_num_threads((int)v);
        } else if (!strcmp(a, "--drop-mtp")) o.drop_mtp = true;
        else if (!strcmp(a, "--dry-run")) o.dry_run = true;
        else if (!strcmp(a, "--force")) o.force = true;
        else if (a[0] == '-' && a[1]) {
            cli_error("convert: unknown option '%s'; try 'deepcast convert --help'", a);
            return DC_ERR_USAGE;
        } else if (!in) in = a;
        else if (!out) out = a;
        else {
            cli_error("convert: unexpected argument '%s'", a);
            return DC_ERR_USAGE;
        }
    }
    bool gguf = to_gguf || (out && dc_str_ends_with(out, ".gguf"));
    if (gguf) {
        if (!in || !out) {
            cli_error("convert: need IN and OUT.gguf; try 'deepcast convert --help'");
            return DC_ERR_USAGE;
        }
        if (have_to && !to_gguf) { /* convert IN OUT.gguf --to bf16: the GGUF's tensor type */
            if (o.target == DC_TARGET_FP8 || have_type) {
                cli_error("convert: OUT %s is a GGUF; use --to gguf --type f32|f16|bf16|q8_0 (not --to %s)", out, to_val);
                return DC_ERR_USAGE;
            }
            dc_gguf_out_parse(to_val, &g.type);
        }
        g.drop_mtp = o.drop_mtp;
        g.dry_run = o.dry_run;
        g.force = o.force;
        g.progress = isatty(2) && dc_log_level > 0;
        return convert_gguf(in, out, &g);
    }
    if (have_type || have_split) {
        cli_error("convert: %s applies to GGUF output only (--to gguf or OUT ending in .gguf)",
                  have_type ? "--type" : "--split-max-size");
        return DC_ERR_USAGE;
    }
    if (!in || !out || !have_to) {
        cli_error("convert: need IN, OUTDIR and --to; try 'deepcast convert --help'");
        return DC_ERR_USAGE;
    }
    o.progress = isatty(2) && dc_log_level > 0;
    dc_err err = {0};
    dc_convert_stats s;
    dc_status st = dc_convert(in, out, &o, stdout, &s, &err);
    if (st) {
        cli_error("convert: %s", err.msg);
        return st;
    }
    if (!o.dry_run) {
        char b1[32], b2[32];
        dc_log(1, "convert: %s -> %s (%s): %zu tensors, %zu converted, %zu copied, %zu dropped; %s read, %s written "
                  "in %d shard(s), %.1f s, %.2f GB/s\n",
               in, out, dc_target_name(o.target), s.n_tensors, s.n_converted, s.n_copied, s.n_dropped,
               dc_fmt_bytes(s.bytes_in, b1, sizeof b1), dc_fmt_bytes(s.bytes_out, b2, sizeof b2), s.n_shards, s.seconds,
               s.seconds > 0 ? (double)s.bytes_out / s.seconds / 1e9 : 0.0);
    }
    return 0;
}
