/* deepcast convert --to w4a16|gptq|awq|nvfp4|mxfp4: 4-bit checkpoints for vLLM / SGLang, and the
 * dequantization of such a checkpoint back to bf16 / f16 / f32 (docs/int4.md).
 *
 * Streamed like dc_convert: plan every output tensor, then work units (a block of rows of one
 * tensor; byte ranges for copies) run in parallel, each reading its rows through dc_weight_rows
 * (BF16, FP8 with block scales, or an already quantized 4-bit input), quantizing them group by
 * group and writing the packed words, scales and zero points with pwrite at planned offsets.
 * NVFP4 needs each tensor's amax first (weight_scale_2): a first pass over the same units. Memory
 * is threads x one unit; output bytes do not depend on the thread count. The output directory is
 * staged and renamed into place when complete.
 *
 * Quantization (per group of `group` input columns of one output row):
 *   RTN: int4 symmetric scale = amax / 7.5, codes clamp(round(x / s), -8, 7) + 8 (compressed-tensors
 *        and GPTQ's min-max); asymmetric scale = (max - min) / 15 over [min(x,0), max(x,0)],
 *        zero = round(-min / s); NVFP4 block scale e4m3(amax / 6 / weight_scale_2) with
 *        weight_scale_2 = tensor amax / (6 * 448) (ModelOpt); MXFP4 E8M0 as compressed-tensors
 *        (dc_e8m0_mx_ct). Rounding is to nearest, ties to even (E2M1: ties to the even code).
 *   clip (default): the scale (and zero) is chosen among a grid of candidates by the smallest
 *        sum_k w_k (x_k - dequant(q_k))^2 over the group, with every candidate first rounded to
 *        the scale's storage type (the codes are computed with the stored scale):
 *        int4 sym  s = p * amax / 7.5, p = 1.10, 1.08, ..., 0.60 (26 values);
 *        int4 asym [p * min, p * max], p = 1.00, 0.98, ..., 0.60 (21 values);
 *        NVFP4     e4m3(p * amax / 6 / weight_scale_2), p = 1.10 ... 0.60 (distinct codes);
 *        MXFP4     E8M0 e_ct, e_floor, e_floor + 1, e_floor - 1 (distinct);
 *        ties keep the earlier candidate. w_k = 1, or with an imatrix the mean squared
 *        activation of input column k (dc_i4_imatrix_get).
 *   GPTQ (opts.gptq_factor): the columns of a row are quantized in order; each group's scale is chosen
 *        as above from the row's current (error-compensated) values when the group starts, and
 *        each column's rounding error is spread over the later columns through the upper Cholesky
 *        factor of the damped inverse Hessian (quantize/dc_gptq.h). Rows are independent.
 *
 * (formats/dc_int4.h holds the readers and packing helpers; this header adds the writer.) */
#ifndef DC_CONVERT_INT4_H
#define DC_CONVERT_INT4_H
#include "dc_ckpt.h"
/* the readers and packing helpers */
#include "dc_int4.h"
#include <stdio.h>

/* AUTO: the routed experts of a MoE model, every projection of a dense one (qwen2 / llama) */
typedef enum dc_i4_scope { DC_I4_SCOPE_EXPERTS = 0, DC_I4_SCOPE_MLP, DC_I4_SCOPE_ALL, DC_I4_SCOPE_AUTO } dc_i4_scope;
typedef enum dc_i4_keep { DC_I4_KEEP_AUTO = 0, DC_I4_KEEP_FP8, DC_I4_KEEP_BF16 } dc_i4_keep;
typedef enum dc_i4_runtime { DC_I4_RT_NONE = 0, DC_I4_RT_VLLM, DC_I4_RT_SGLANG } dc_i4_runtime;

typedef struct dc_int4_opts {
    dc_i4_layout layout;     /* DC_I4_CT (w4a16), GPTQ, AWQ, NVFP4, MXFP4; DC_I4_NONE: dequantize */
    dc_dtype float_dtype;    /* DC_I4_NONE: BF16, F16 or F32 */
    int group;               /* 0: default (128; NVFP4 16; MXFP4 32) */
    int sym;                 /* -1: default (symmetric; AWQ asymmetric), 0 asymmetric, 1 symmetric */
    dc_i4_scope scope;       /* which projections become 4-bit */
    dc_i4_keep keep;         /* the other projections: as stored (FP8 stays FP8, BF16 stays BF16;
                                GPTQ / AWQ / NVFP4 cannot hold FP8, so BF16), FP8 or BF16 */
    bool clip;               /* MSE clip search (default true); false: plain RTN */
    const char *imatrix;     /* llama.cpp GGUF imatrix, or NULL */
    /* GPTQ (deepcast convert --gptq): the factor of a weight's input Hessian by its Hugging Face
     * name (dc_gptq_prepare's U, K x K, with dampening damp; the provider owns it and keeps it until
     * the conversion returns), or *U = NULL: that weight is quantized without error compensation.
     * Called while planning, from one thread. NULL: no GPTQ. */
    dc_status (*gptq_factor)(void *ud, const char *name, int64_t K, double damp, const double **U, dc_err *err);
    void *gptq_ud;
    double gptq_damp;        /* dampening, a fraction of the mean Hessian diagonal (default 0.01) */
    dc_i4_runtime runtime;   /* --target: compatibility rules to check and report */
    uint64_t max_shard_size; /* 0: about the input's largest shard */
    bool drop_mtp, dry_run, force, progress;
} dc_int4_opts;

void dc_int4_opts_init(dc_int4_opts *o);
/* "w4a16", "gptq", "awq", "nvfp4", "mxfp4" -> layout. */
bool dc_int4_target_parse(const char *s, dc_i4_layout *l);
const char *dc_int4_target_name(dc_i4_layout l);

typedef struct dc_int4_stats {
    size_t n_tensors, n_quantized, n_fp8, n_dequant, n_copied, n_dropped;
    size_t n_imatrix;        /* quantized tensors that had an imatrix entry */
    size_t n_gptq;           /* quantized tensors with a Hessian (GPTQ error compensation) */
    size_t n_partial;        /* quantized tensors whose K is not a multiple of the group size */
    size_t n_compat;         /* compatibility problems found for --target */
    uint64_t bytes_in, bytes_out;
    int n_shards;
    double seconds;
} dc_int4_stats;

/* Converts in_path into out_dir. With dry_run prints the plan (and, with a runtime, the
 * compatibility report) to plan and writes nothing. Compatibility problems are reported (to plan
 * on a dry run, else to stderr), never fatal. */
dc_status dc_int4_convert(const char *in_path, const char *out_dir, const dc_int4_opts *o, FILE *plan,
                          dc_int4_stats *stats, dc_err *err);

/* ---- group quantizers (one group of n <= 65536 values; imp: n weights or NULL) ---------------- */
/* int4: codes 0..15, the stored scale (already rounded to sdt: BF16, F16 or F32) and zero (8 when
 * symmetric); dequant = (code - zero) * scale. */
void dc_i4_quant_int(const float *x, const float *imp, int n, bool sym, bool clip, dc_dtype sdt, uint8_t *codes,
                     float *scale, uint8_t *zero);
/* NVFP4 block of <= 16 with global scale ws2: returns the E4M3 scale code; dequant =
 * e2m1(code) * e4m3(scale) * ws2. */
uint8_t dc_i4_quant_nvfp4(const float *x, const float *imp, int n, float ws2, bool clip, uint8_t *codes);
/* MXFP4 block of <= 32: returns the E8M0 scale; dequant = e2m1(code) * 2^(scale - 127). */
uint8_t dc_i4_quant_mxfp4(const float *x, const float *imp, int n, bool clip, uint8_t *codes);
/* GPTQ of one row x[K] (groups of grp; layout L: DC_I4_CT/GPTQ/AWQ int4, NVFP4 or MXFP4) with U from
 * dc_gptq_prepare: codes q[K], per group s[G] (int4 scales; unused for FP4) and z[G] (int4 zeros,
 * FP4 scale codes), as the group quantizers above produce them. Work: w[K], cur[grp]. */
void dc_i4_gptq_row(dc_i4_layout L, const float *x, int64_t K, int64_t grp, const float *imp, const double *U,
                    bool sym, bool clip, dc_dtype sdt, float ws2, double *w, float *cur, uint8_t *q, float *s,
                    uint8_t *z);
/* dc_i4_gptq_row for n rows x[n][K] at once (q[n][K], s[n][G], z[n][G]), the same bytes: blocks of
 * DC_GPTQ_RB rows share each row of U while it is in cache, and the compensation runs as one
 * vector loop over the block (AVX2 where the CPU has it: each element's multiply and subtract are
 * the scalar ones). Work: w[DC_GPTQ_RB * K], cur[grp]. */
#define DC_GPTQ_RB 16
void dc_i4_gptq_rows(dc_i4_layout L, const float *x, int64_t n, int64_t K, int64_t grp, const float *imp,
                     const double *U, bool sym, bool clip, dc_dtype sdt, float ws2, double *w, float *cur, uint8_t *q,
                     float *s, uint8_t *z);
/* NVFP4 weight_scale_2 of a tensor whose largest magnitude is amax (1 if amax is 0). */
float dc_i4_nvfp4_global(float amax);

#endif
