/* 4-bit weight layouts of vLLM / SGLang checkpoints: packing helpers and readers.
 *
 * A weight W [N, K] (torch's [out, in]; row n is output channel n) is stored as 4-bit codes with
 * one scale (and for asymmetric integer layouts one zero point) per group of `group` consecutive
 * input columns; group j covers columns [j*group, (j+1)*group), the last group may be partial
 * (G = ceil(K / group) groups). The layouts (docs/int4.md has the sources):
 *
 *   compressed-tensors pack-quantized (int4, "w4a16"):
 *     weight_packed I32 [N, ceil(K/8)]   word (n, w) nibble j (bits 4j..4j+3) = code of column 8w+j
 *     weight_scale  BF16/F16/F32 [N, G]
 *     weight_shape  I64 [2] = (N, K)
 *     weight_zero_point I32 [ceil(N/8), G] (asymmetric only): packed along N, word (m, g) nibble j
 *                   = zero of row 8m+j (read also: I8 [N, G] unpacked, as older versions save it)
 *     codes and zeros are the signed values + 8;  W = (code - zero) * scale  (zero 8 when symmetric)
 *   GPTQ (checkpoint_format gptq, "v1"):
 *     qweight I32 [K/8, N]  word (w, n) nibble j = code of column 8w+j;  scales F16 [G, N];
 *     qzeros I32 [G, N/8]   word (g, m) nibble j = zero(row 8m+j) - 1 (v1; gptq_v2 stores the zero);
 *     g_idx I32 [K] = group of each column;  W = (code - zero) * scale
 *   AWQ GEMM:
 *     qweight I32 [K, N/8]  word (k, m) nibble j = code of row 8m + DC_AWQ_ORDER[j];
 *     qzeros I32 [G, N/8]   the same interleave;  scales F16 [G, N];  W = (code - zero) * scale
 *   NVFP4 (NVIDIA ModelOpt):
 *     weight U8 [N, K/2]  byte (n, i) = code(2i) | code(2i+1) << 4, E2M1 codes (bit 3 = sign)
 *     weight_scale F8_E4M3 [N, K/16];  weight_scale_2 F32 scalar;  input_scale F32 scalar
 *     W = e2m1(code) * e4m3(weight_scale) * weight_scale_2
 *   compressed-tensors nvfp4-pack-quantized (read only): weight_packed U8, weight_scale F8_E4M3,
 *     weight_global_scale F32;  W = e2m1(code) * e4m3(weight_scale) / weight_global_scale
 *   MXFP4 (compressed-tensors mxfp4-pack-quantized, OCP MX):
 *     weight_packed U8 [N, K/2] (as NVFP4);  weight_scale U8 [N, K/32], E8M0: 2^(v - 127)
 *     W = e2m1(code) * 2^(scale - 127)
 */
#ifndef DC_INT4_H
#define DC_INT4_H
#include "dc_config.h"
#include "dc_tensor.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- packing ------------------------------------------------------------------------------ */

/* AWQ GEMM interleave: nibble j of a word holds element DC_AWQ_ORDER[j] of its 8 (AutoAWQ's
 * [0, 2, 4, 6, 1, 3, 5, 7]); element i sits in nibble DC_AWQ_REVERSE[i]. */
extern const int DC_AWQ_ORDER[8];
extern const int DC_AWQ_REVERSE[8];

/* 8 codes (0..15) <-> one little-endian word, nibble j = c[j]. */
uint32_t dc_i4_pack8(const uint8_t c[8]);
void dc_i4_unpack8(uint32_t w, uint8_t c[8]);
/* The AWQ interleave: nibble j = c[DC_AWQ_ORDER[j]]. */
uint32_t dc_i4_pack8_awq(const uint8_t c[8]);
void dc_i4_unpack8_awq(uint32_t w, uint8_t c[8]);

/* Codes q [n][K] (row-major, n rows of a W) into the layouts above:
 *   ct:   out [n][ceil(K/8)] (the tail word zero padded)
 *   gptq: out [K/8][n]  (K % 8 == 0): the rows' columns of qweight
 *   awq:  out [K][n/8]  (n % 8 == 0)
 *   fp4:  out [n][K/2]  bytes (K even), low nibble first */
void dc_i4_pack_ct(const uint8_t *q, int64_t n, int64_t K, uint32_t *out);
void dc_i4_pack_gptq(const uint8_t *q, int64_t n, int64_t K, uint32_t *out);
void dc_i4_pack_awq(const uint8_t *q, int64_t n, int64_t K, uint32_t *out);
void dc_fp4_pack(const uint8_t *q, int64_t n, int64_t K, uint8_t *out);
/* Zero points z [n][G] (codes 0..15 of n rows of W, the block starting at a row that is a
 * multiple of 8) packed along N, the tail word zero padded:
 *   ct:   out [ceil(n/8)][G], word (m, g) nibble j = z[8m+j][g]
 *   gptq: out [G][ceil(n/8)], word (g, m) nibble j = z[8m+j][g] - sub (sub 1: v1, 0: gptq_v2)
 *   awq:  out [G][n/8],       word (g, m) nibble j = z[8m+DC_AWQ_ORDER[j]][g] (n % 8 == 0) */
void dc_i4_pack_zeros_ct(const uint8_t *z, int64_t n, int64_t G, uint32_t *out);          /* [ceil(n/8)][G] */
void dc_i4_pack_zeros_gptq(const uint8_t *z, int64_t n, int64_t G, int sub, uint32_t *out); /* [G][ceil(n/8)] */
void dc_i4_pack_zeros_awq(const uint8_t *z, int64_t n, int64_t G, uint32_t *out);        /* [G][n/8] */

/* E2M1 (FP4): codes 0..7 = 0, 0.5, 1, 1.5, 2, 3, 4, 6; bit 3 is the sign. */
extern const float DC_E2M1_VALUES[16];
static inline float dc_e2m1_decode(uint8_t c) { return DC_E2M1_VALUES[c & 15]; }
/* Nearest E2M1 value, ties to the even code (0.25 -> 0, 0.75 -> 1, 1.25 -> 1, 1.75 -> 2, 2.5 -> 2,
 * 3.5 -> 4, 5 -> 4: compressed-tensors' cast_to_fp4 and the OCP spec's roundTiesToEven),
 * saturating at +-6; the sign bit follows signbit(x) (-0.1 -> 8). NaN -> 0. */
uint8_t dc_e2m1_encode(float x);

/* E8M0 scale of an MXFP4 block whose largest magnitude is amax (amax 0 or not finite: 127).
 *   floor: the OCP MX spec, 127 + floor(log2(amax)) - 2; values above 6 * 2^e clip to 6.
 *   ct:    compressed-tensors' generate_mxfp4_scales: amax rounded to bf16, then to a power of
 *          two with mantissas >= 1.75 going up (round_to_power_2), 127 + log2 - 2.
 * Clamped to [0, 254]. */
uint8_t dc_e8m0_mx_floor(float amax);
uint8_t dc_e8m0_mx_ct(float amax);

/* ---- one quantized matrix ------------------------------------------------------------------ */

typedef enum dc_i4_layout {
    DC_I4_NONE = 0,
    DC_I4_CT,       /* compressed-tensors pack-quantized, int4 */
    DC_I4_GPTQ,
    DC_I4_AWQ,
    DC_I4_NVFP4,    /* ModelOpt */
    DC_I4_CT_NVFP4, /* compressed-tensors nvfp4-pack-quantized (read only) */
    DC_I4_MXFP4,    /* compressed-tensors mxfp4-pack-quantized */
} dc_i4_layout;

const char *dc_i4_layout_name(dc_i4_layout l);

typedef struct dc_i4_matrix {
    dc_i4_layout layout;
    int64_t N, K;
    int64_t group;            /* columns per scale */
    int64_t n_groups;         /* G = ceil(K / group) */
    const dc_tensor *qw;      /* packed codes */
    const dc_tensor *scale;   /* per-group scales */
    const dc_tensor *zero;    /* packed zero points (asymmetric int layouts), NULL otherwise */
    const dc_tensor *gidx;    /* g_idx (GPTQ / compressed-tensors actorder), NULL: column / group */
    const dc_tensor *gscale;  /* NVFP4 global scale tensor, NULL otherwise */
    int zero_add;             /* GPTQ v1: 1 (stored zero + 1); 0 otherwise */
    bool zero_i8;             /* compressed-tensors: zero points stored unpacked, I8 [N, G] (older
                                 versions), signed: zero = value + 8 */
    float global;             /* NVFP4: weight_scale_2; CT NVFP4: weight_global_scale (a divisor) */
    const char *file_name;    /* for messages */
} dc_i4_matrix;

/* Validates the parts of m (dtypes, shapes, g_idx values) after the caller has filled layout, N,
 * K, group and the tensors. */
dc_status dc_i4_matrix_check(dc_i4_matrix *m, dc_err *err);
/* Rows [r0, r0+n) of W as f32 (n * K values). The value of a code is computed exactly in f32
 * ((code - zero) * scale is exact; FP4: e2m1 * scale exactly, one rounding by the global scale);
 * mode DC_DEQ_BF16_ROUND then rounds it to bf16 (what a bf16 kernel sees), DC_DEQ_EXACT keeps it. */
dc_status dc_i4_matrix_rows(const dc_i4_matrix *m, int64_t r0, int64_t n, float *out, int mode, dc_err *err);

/* ---- checkpoints in these layouts (dc_ckpt_open) --------------------------------------------
 * A checkpoint directory whose config.json says quantization_config.quant_method
 * "compressed-tensors", "gptq", "awq" or "modelopt" (or that has ModelOpt's hf_quant_config.json)
 * is presented under Hugging Face names: every quantized matrix as a virtual "PREFIX.weight"
 * [N, K] read through dc_ckpt_weight / dc_weight_rows (dequantized f32 rows), compressed-tensors'
 * FP8 block weights with their weight_scale as "PREFIX.weight_scale_inv" (the FP8 release's
 * name), everything else as stored. ck->file_tensors lists the tensors as stored (deepcast hash
 * prints those). The config is parsed without its quantization_config. */
struct dc_ckpt;
typedef struct dc_int4_model dc_int4_model;
/* Called by dc_ckpt_open once ck->tensors lists the stored tensors and before the config is
 * loaded. Leaves ck->int4 NULL (and does nothing) for other checkpoints. */
dc_status dc_int4_ckpt_attach(struct dc_ckpt *ck, dc_err *err);
void dc_int4_ckpt_free(struct dc_ckpt *ck);
/* dc_ckpt_weight for such a checkpoint. */
dc_status dc_int4_ckpt_weight(const struct dc_ckpt *ck, const dc_tensor *t, dc_weight *w, dc_err *err);
/* The quantized matrix behind a tensor of the Hugging Face view (NULL if t is stored as is). */
const dc_i4_matrix *dc_int4_ckpt_matrix(const struct dc_ckpt *ck, const dc_tensor *t);
/* quantization_config.quant_method ("compressed-tensors", "gptq", "awq", "modelopt"). */
const char *dc_int4_ckpt_method(const struct dc_ckpt *ck);
/* True if dir/config.json (or hf_quant_config.json) declares one of these layouts. */
bool dc_int4_dir_is_quantized(const char *dir);

/* ---- importance matrices (llama.cpp's GGUF imatrix, tools/imatrix) --------------------------
 * Per GGUF tensor NAME: "NAME.in_sum2" F32 [n_mat, ne0] (sums of squared activations of each
 * input column) and "NAME.counts" F32 [n_mat, 1]; the importance of column k of matrix i is
 * in_sum2[i][k] / counts[i] (1 where the count is 0). Names are llama.cpp's (blk.N.ffn_gate_exps,
 * ...); Hugging Face names are mapped to them (routed expert e = matrix e of ffn_*_exps). */
typedef struct dc_i4_imatrix dc_i4_imatrix;
dc_status dc_i4_imatrix_load(const char *path, dc_i4_imatrix **out, dc_err *err);
void dc_i4_imatrix_free(dc_i4_imatrix *im);
size_t dc_i4_imatrix_count(const dc_i4_imatrix *im);
/* The K importances of the input columns of HF weight `name`, malloc'd into *out (NULL and DC_OK
 * if the file has no entry for it). An entry of the wrong width is DC_ERR_MODEL. */
dc_status dc_i4_imatrix_get(const dc_i4_imatrix *im, const char *name, int64_t K, float **out, dc_err *err);

#endif
