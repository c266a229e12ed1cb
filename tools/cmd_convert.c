/* deepcast convert IN OUTDIR --to bf16|f16|f32|fp8 [...]; convert IN OUT.gguf --to gguf [...] */
#include "cli_util.h"
#include "cmds.h"
#include "dc_convert.h"
#include "dc_fp8.h"
#include "dc_gguf_export.h"
#include "dc_hessian.h"
#include "dc_int4_convert.h"

#include <errno.h>
#include <omp.h>
#include <stdlib.h>
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
    "  GGUF v3 for llama.cpp (chosen by --to gguf or an OUT ending in .gguf). DeepSeek V2/V3: the deepseek2\n"
    "  architecture: metadata, tokenizer, tensors renamed, experts stacked, kv_b_proj split into\n"
    "  attn_k_b / attn_v_b, FP8 dequantized like DeepSeek (bf16(f32(fp8) * scale)). See docs/gguf.md.\n"
    "  R1 distills / DeepSeek LLM: qwen2 or llama (Q/K rows permuted, llama3 scaling as rope_freqs;\n"
    "  docs/distills.md)\n"
    "  --type T               tensor type: f32, f16, bf16, q8_0 (norms, router and biases stay F32), or auto\n"
    "                         (default: bf16 for a BF16/FP8 checkpoint, f16 otherwise)\n"
    "  --split-max-size SIZE  split into OUT-00001-of-0000N.gguf files of at most SIZE tensor bytes\n"
    "  --drop-mtp             leave out the MTP layer (written by default as llama.cpp's nextn block)\n"
    "  --threads N, --dry-run, --force  as above\n"
    "\n"
    "usage: deepcast convert IN OUTDIR --to w4a16|gptq|awq|nvfp4|mxfp4 [options]\n"
    "  4-bit weights for vLLM / SGLang (docs/int4.md): w4a16 = compressed-tensors pack-quantized int4,\n"
    "  gptq (v1 zeros, desc_act false), awq (GEMM), nvfp4 (ModelOpt), mxfp4 (compressed-tensors).\n"
    "  Input BF16 or FP8 (or one of these layouts). A checkpoint in these layouts converts back with\n"
    "  --to bf16|f16|f32.\n"
    "  --group-size 32|64|128   int4 group size (default 128; nvfp4 is 16, mxfp4 32)\n"
    "  --sym | --asym           int4 zero points (default symmetric; awq asymmetric; gptq symmetric only)\n"
    "  --scope experts|mlp|all  what becomes 4-bit: routed experts, + dense MLP and shared experts, +\n"
    "                           attention projections (default: experts for MoE models, all for the\n"
    "                           dense qwen2 / llama). Router, embeddings, lm_head stay unquantized\n"
    "  --keep-attention fp8|bf16  the projections left out: as stored by default (FP8 stays FP8 in\n"
    "                           w4a16 / mxfp4; gptq / awq / nvfp4 dequantize it to BF16)\n"
    "  --no-clip                plain round-to-nearest (default: per-group MSE clip search)\n"
    "  --imatrix FILE           llama.cpp GGUF imatrix: importance-weighted clip search\n"
    "  --gptq                   GPTQ: each column's rounding error compensated on the row's later\n"
    "                           columns, from input Hessians collected by running the reference forward\n"
    "                           pass over calibration data layer by layer (memory: one layer's\n"
    "                           Hessians, K*K*8 bytes per quantized input; their factors, as many\n"
    "                           bytes in all, go to a spill file beside OUTDIR). Needs one of:\n"
    "  --calib-tokens FILE | --calib-text FILE   calibration token ids / UTF-8 text (BOS added)\n"
    "  --calib-ctx N            calibration chunk length (default 512; chunks as deepcast imatrix)\n"
    "  --gptq-damp F            dampening, a fraction of the mean Hessian diagonal (default 0.01)\n"
    "  --gptq-max-memory SIZE   stop (exit 9) when one layer's Hessians would exceed SIZE (default: half the RAM)\n"
    "  --target vllm|sglang     check the runtime's rules (Marlin shapes, fused modules, MLA\n"
    "                           projections); printed with --dry-run, else on stderr\n"
    "  --max-shard-size, --drop-mtp, --threads, --dry-run, --force  as above\n";

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

typedef struct gptq_calib {
    bool on;
    const char *tokens, *text;
    long long ctx;
    uint64_t max_bytes; /* 0: half the physical memory */
} gptq_calib;

static dc_status hessian_factor(void *ud, const char *name, int64_t K, double damp, const double **U, dc_err *err)
{
    return dc_hessian_factor(ud, name, K, damp, U, err);
}

/* The dc_role bits of the matrices a scope quantizes (dc_int4_convert's categories). */
static uint64_t scope_roles(dc_i4_scope scope, const dc_config *c)
{
    uint64_t m = 1ull << DC_ROLE_EXP_GATE | 1ull << DC_ROLE_EXP_UP | 1ull << DC_ROLE_EXP_DOWN;
    if (scope == DC_I4_SCOPE_AUTO)
        scope = c->n_experts_routed > 0 ? DC_I4_SCOPE_EXPERTS : DC_I4_SCOPE_ALL;
    if (scope >= DC_I4_SCOPE_MLP)
        m |= 1ull << DC_ROLE_MLP_GATE | 1ull << DC_ROLE_MLP_UP | 1ull << DC_ROLE_MLP_DOWN | 1ull << DC_ROLE_SHEXP_GATE |
             1ull << DC_ROLE_SHEXP_UP | 1ull << DC_ROLE_SHEXP_DOWN;
    if (scope == DC_I4_SCOPE_ALL)
        m |= 1ull << DC_ROLE_Q_PROJ | 1ull << DC_ROLE_Q_A_PROJ | 1ull << DC_ROLE_Q_B_PROJ | 1ull << DC_ROLE_KV_A_PROJ |
             1ull << DC_ROLE_KV_B_PROJ | 1ull << DC_ROLE_O_PROJ | 1ull << DC_ROLE_K_PROJ | 1ull << DC_ROLE_V_PROJ;
    return m;
}

/* --gptq: runs the forward pass of `in` over the calibration data layer by layer (every chunk
 * through layer 0, then layer 1, ...: the chunks' residual streams are kept between layers),
 * collecting the Hessians of one layer's quantized matrices at a time; after each layer their
 * factors go to the spill file fd and the Hessians are freed, so memory holds one layer's (at most
 * half the machine's memory, or --gptq-max-memory). */
static dc_status gptq_calibrate(const char *in, const gptq_calib *g, dc_i4_scope scope, double damp, int fd,
                                dc_hessian_acc **out, dc_err *err)
{
    dc_ckpt *ck = NULL;
    dc_model *m = NULL;
    int32_t *ids = NULL, bos = -1;
    size_t n = 0;
    dc_chunking ch = {0};
    dc_fwd_opts fo;
    dc_fwd_opts_default(&fo);
    fo.mtp = true; /* DeepSeek-V3's MTP layer runs too (docs/forward.md): its matrices get Hessians */
    double t0 = dc_fwd_now();
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
    uint64_t cap = g->max_bytes ? g->max_bytes : pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz / 2 : 0;
    dc_fwd_state **S = NULL;
    dc_status st = dc_fwd_open(in, &fo, &ck, &m, err);
    if (!st)
        st = dc_fwd_input(g->tokens, g->text, ck->dir, dc_model_config(m)->bos_token_id, &ids, &n, &bos, err);
    if (!st)
        st = dc_tokens_check(ids, n, dc_model_vocab(m), g->tokens ? g->tokens : g->text, err);
    if (!st)
        st = dc_chunking_init(&ch, (int64_t)n, g->ctx > 0 ? g->ctx : 512, true, bos, err);
    if (!st)
        st = dc_hessian_acc_new(m, scope_roles(scope, dc_model_config(m)), cap, out, err);
    if (!st && !(S = calloc((size_t)(ch.n_chunks ? ch.n_chunks : 1), sizeof *S)))
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    /* every chunk's embeddings (a chunk as dc_fwd_chunk runs it: llama.cpp's BOS in front) */
    for (int64_t c = 0; !st && c < ch.n_chunks; c++) {
        int32_t *buf;
        int64_t len;
        if (!(st = dc_chunk_tokens(&ch, ids, (int64_t)n, c, &buf, &len, err))) {
            st = dc_fwd_state_new(m, buf, len, &S[c], err);
            free(buf);
        }
    }
    if (!st)
        dc_model_set_act_hook(m, dc_hessian_hook, *out);
    const int L = m ? dc_model_n_layers(m) + (dc_model_has_mtp(m) ? 1 : 0) : 0;
    for (int li = 0; !st && li < L; li++) {
        dc_hessian_acc_set_layer(*out, li);
        for (int64_t c = 0; !st && c < ch.n_chunks; c++) {
            if ((st = dc_fwd_state_step(m, S[c], err)))
                dc_err_prefix(err, "chunk %lld", (long long)c);
            else
                st = dc_hessian_acc_status(*out, err);
        }
        if (!st)
            st = dc_hessian_spill(*out, fd, damp, err);
        if (!st && dc_log_level > 0 && isatty(2))
            fprintf(stderr, "\rconvert: gptq calibration: layer %d/%d, %.1f s   ", li + 1, L, dc_fwd_now() - t0);
    }
    if (dc_log_level > 0 && isatty(2) && !st && L)
        fputc('\n', stderr);
    if (!st && *out)
        st = dc_hessian_spill_map(*out, fd, err);
    if (st) {
        dc_err_prefix(err, "--gptq calibration");
    } else {
        char b[32];
        dc_log(1, "convert: gptq: %zu input Hessians from %lld chunks of %lld tokens, layer by layer; factors %s "
                  "(spilled to disk), %.1f s\n",
               dc_hessian_acc_count(*out), (long long)ch.n_chunks, (long long)ch.ctx,
               dc_fmt_bytes(dc_hessian_spill_bytes(*out), b, sizeof b), dc_fwd_now() - t0);
    }
    for (int64_t c = 0; S && c < ch.n_chunks; c++)
        dc_fwd_state_free(S[c]);
    free(S);
    free(ids);
    if (m)
        dc_model_set_act_hook(m, NULL, NULL);
    dc_fwd_close(ck, m);
    return st;
}

/* The spill file of --gptq: created beside the output and unlinked at once (nothing is left
 * behind whatever happens; the open descriptor keeps it until the conversion ends). */
static dc_status gptq_spill_file(const char *out, int *fd, dc_err *err)
{
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        n--;
    char *tmpl = malloc(n + 32);
    if (!tmpl)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    snprintf(tmpl, n + 32, "%.*s.gptq-spill-XXXXXX", (int)n, out);
    *fd = mkstemp(tmpl);
    dc_status st = DC_OK;
    if (*fd < 0)
        st = dc_err_set(err, DC_ERR_IO, "%s: cannot create the GPTQ spill file beside the output: %s", tmpl,
                        strerror(errno));
    else
        unlink(tmpl);
    free(tmpl);
    return st;
}

/* --to w4a16|gptq|awq|nvfp4|mxfp4, or --to bf16|f16|f32 of a checkpoint in those layouts */
static int convert_int4(const char *in, const char *out, dc_int4_opts *q, const dc_convert_opts *o, bool deq,
                        const gptq_calib *gq)
{
    if (deq) {
        q->layout = DC_I4_NONE;
        q->float_dtype = o->target == DC_TARGET_F16 ? DC_DT_F16 : o->target == DC_TARGET_F32 ? DC_DT_F32 : DC_DT_BF16;
    }
    if (o->block != 128 || o->scale_mode != DC_FP8_SCALE_F32) {
        cli_error("convert: --block and --scale-format apply to --to fp8");
        return DC_ERR_USAGE;
    }
    q->max_shard_size = o->max_shard_size;
    q->drop_mtp = o->drop_mtp;
    q->dry_run = o->dry_run;
    q->force = o->force;
    q->progress = o->progress;
    dc_err err = {0};
    dc_int4_stats s;
    dc_hessian_acc *hs = NULL;
    dc_status st = DC_OK;
    int spill = -1;
    if (gq->on && !q->dry_run) {
        if (!q->force && dc_exists(out))
            st = dc_err_set(&err, DC_ERR_EXISTS, "%s: already exists (use --force to overwrite)", out);
        if (!st)
            st = gptq_spill_file(out, &spill, &err);
        if (!st)
            st = gptq_calibrate(in, gq, q->scope, q->gptq_damp, spill, &hs, &err);
        q->gptq_factor = hessian_factor;
        q->gptq_ud = hs;
    }
    if (!st)
        st = dc_int4_convert(in, out, q, stdout, &s, &err);
    dc_hessian_acc_free(hs);
    if (spill >= 0)
        close(spill);
    if (st) {
        cli_error("convert: %s", err.msg);
        return st;
    }
    if (!q->dry_run) {
        char b1[32], b2[32];
        if (deq)
            dc_log(1, "convert: %s -> %s (%s): %zu tensors, %zu dequantized, %zu copied, %zu dropped; %s read, %s written "
                      "in %d shard(s), %.1f s\n",
                   in, out, dc_dtype_name(q->float_dtype), s.n_tensors, s.n_dequant, s.n_copied, s.n_dropped,
                   dc_fmt_bytes(s.bytes_in, b1, sizeof b1), dc_fmt_bytes(s.bytes_out, b2, sizeof b2), s.n_shards, s.seconds);
        else
            dc_log(1, "convert: %s -> %s (%s%s%s%s): %zu tensors, %zu quantized to 4 bits (%zu with imatrix entries, %zu "
                      "with GPTQ Hessians), %zu FP8, %zu dequantized, %zu copied, %zu dropped; %s read, %s written in %d "
                      "shard(s), %.1f s\n",
                   in, out, dc_int4_target_name(q->layout), q->clip ? "" : ", rtn", q->imatrix ? ", imatrix" : "",
                   q->gptq_factor ? ", gptq" : "", s.n_tensors, s.n_quantized, s.n_imatrix, s.n_gptq, s.n_fp8, s.n_dequant, s.n_copied, s.n_dropped,
                   dc_fmt_bytes(s.bytes_in, b1, sizeof b1), dc_fmt_bytes(s.bytes_out, b2, sizeof b2), s.n_shards, s.seconds);
        if (s.n_partial)
            dc_log(1, "convert: warning: %zu tensor(s) have K not divisible by the group size (a partial last group): "
                      "deepcast reads them, vLLM / SGLang do not (see --dry-run --target vllm)\n", s.n_partial);
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
    bool have_to = false, to_gguf = false, have_type = false, have_split = false, to_int4 = false, have_i4opt = false;
    dc_int4_opts q;
    dc_int4_opts_init(&q);
    gptq_calib gq = {0};
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
            else if (dc_int4_target_parse(val, &q.layout))
                to_int4 = true;
            else if (!dc_target_parse(val, &o.target)) {
                cli_error("convert: --to must be bf16, f16, f32, fp8, gguf, w4a16, gptq, awq, nvfp4 or mxfp4, got '%s'", val);
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
        } else if (!strcmp(a, "--group-size")) {
            if (!(val = cli_value("convert", argc, argv, &i)) || !cli_int("convert", a, val, 1, 65536, &v))
                return DC_ERR_USAGE;
            q.group = (int)v;
            have_i4opt = true;
        } else if (!strcmp(a, "--sym") || !strcmp(a, "--asym")) {
            q.sym = !strcmp(a, "--sym");
            have_i4opt = true;
        } else if (!strcmp(a, "--scope")) {
            if (!(val = cli_value("convert", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!strcmp(val, "experts")) q.scope = DC_I4_SCOPE_EXPERTS;
            else if (!strcmp(val, "mlp")) q.scope = DC_I4_SCOPE_MLP;
            else if (!strcmp(val, "all")) q.scope = DC_I4_SCOPE_ALL;
            else {
                cli_error("convert: --scope must be experts, mlp or all, got '%s'", val);
                return DC_ERR_USAGE;
            }
            have_i4opt = true;
        } else if (!strcmp(a, "--keep-attention")) {
            if (!(val = cli_value("convert", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!strcmp(val, "fp8")) q.keep = DC_I4_KEEP_FP8;
            else if (!strcmp(val, "bf16")) q.keep = DC_I4_KEEP_BF16;
            else {
                cli_error("convert: --keep-attention must be fp8 or bf16, got '%s'", val);
                return DC_ERR_USAGE;
            }
            have_i4opt = true;
        } else if (!strcmp(a, "--imatrix")) {
            if (!(val = cli_value("convert", argc, argv, &i)))
                return DC_ERR_USAGE;
            q.imatrix = val;
            have_i4opt = true;
        } else if (!strcmp(a, "--target")) {
            if (!(val = cli_value("convert", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!strcmp(val, "vllm")) q.runtime = DC_I4_RT_VLLM;
            else if (!strcmp(val, "sglang")) q.runtime = DC_I4_RT_SGLANG;
            else {
                cli_error("convert: --target must be vllm or sglang, got '%s'", val);
                return DC_ERR_USAGE;
            }
            have_i4opt = true;
        } else if (!strcmp(a, "--gptq")) {
            gq.on = true;
            have_i4opt = true;
        } else if (!strcmp(a, "--calib-tokens") || !strcmp(a, "--calib-text")) {
            if (!(val = cli_value("convert", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!strcmp(a, "--calib-tokens"))
                gq.tokens = val;
            else
                gq.text = val;
            have_i4opt = true;
        } else if (!strcmp(a, "--calib-ctx")) {
            if (!(val = cli_value("convert", argc, argv, &i)) || !cli_int("convert", a, val, 4, 1LL << 30, &gq.ctx))
                return DC_ERR_USAGE;
            have_i4opt = true;
        } else if (!strcmp(a, "--gptq-max-memory")) {
            if (!(val = cli_value("convert", argc, argv, &i)))
                return DC_ERR_USAGE;
            if (!dc_parse_size(val, &gq.max_bytes) || gq.max_bytes == 0) {
                cli_error("convert: --gptq-max-memory: cannot parse '%s' (e.g. 8GB, 500MB)", val);
                return DC_ERR_USAGE;
            }
            have_i4opt = true;
        } else if (!strcmp(a, "--gptq-damp")) {
            char *end;
            if (!(val = cli_value("convert", argc, argv, &i)))
                return DC_ERR_USAGE;
            q.gptq_damp = strtod(val, &end);
            if (*end || end == val || !(q.gptq_damp >= 0 && q.gptq_damp <= 10)) {
                cli_error("convert: --gptq-damp must be a number in [0, 10], got '%s'", val);
                return DC_ERR_USAGE;
            }
            have_i4opt = true;
        } else if (!strcmp(a, "--no-clip")) {
            q.clip = false;
            have_i4opt = true;
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
    bool gguf = !to_int4 && (to_gguf || (out && dc_str_ends_with(out, ".gguf")));
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
    if (have_i4opt && !to_int4) {
        cli_error("convert: --group-size, --sym/--asym, --scope, --keep-attention, --imatrix, --gptq (--calib-*), "
                  "--target and --no-clip apply to --to w4a16|gptq|awq|nvfp4|mxfp4");
        return DC_ERR_USAGE;
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
    bool in4 = !to_int4 && dc_is_dir(in) && dc_int4_dir_is_quantized(in), deq4 = in4 && o.target != DC_TARGET_FP8;
    if (in4 && !deq4) {
        cli_error("convert: %s holds 4-bit weights; convert it to bf16 first (--to bf16), then to fp8", in);
        return DC_ERR_UNSUPPORTED;
    }
    if (!gq.on != (!gq.tokens && !gq.text && gq.ctx == 0 && gq.max_bytes == 0) || (gq.on && !gq.tokens == !gq.text)) {
        cli_error("convert: %s", gq.on ? "--gptq needs exactly one of --calib-tokens FILE and --calib-text FILE"
                                       : "--calib-tokens, --calib-text, --calib-ctx and --gptq-max-memory go with --gptq");
        return DC_ERR_USAGE;
    }
    if (gq.on && deq4) {
        cli_error("convert: --gptq applies to --to w4a16|gptq|awq|nvfp4|mxfp4");
        return DC_ERR_USAGE;
    }
    if (to_int4 || deq4)
        return convert_int4(in, out, &q, &o, deq4, &gq);
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
