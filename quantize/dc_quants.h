/* ggml block quantization: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 MXFP4, the K-quants Q2_K..Q6_K (+ Q8_K),
 * IQ4_NL IQ4_XS, TQ1_0 TQ2_0. Byte-exact with ggml (the llama.cpp release node-llama-cpp 3.22.1
 * ships): same block layouts, same quantizers (reference and importance-weighted), dequantizers
 * equal to ggml's to_float bit for bit. See docs/quants.md.
 *
 * Per type T (lower case as ggml names it: q4_0, q4_K, iq4_xs, tq1_0, mxfp4, ...):
 *   void   dc_quantize_row_T_ref(const float *x, void *y, int64_t k)
 *          = ggml's quantize_row_T_ref: k elements (a multiple of the block size), blocks are
 *          independent of one another, k may span several rows.
 *   size_t dc_quantize_T(const float *src, void *dst, int64_t nrows, int64_t n_per_row,
 *                        const float *imatrix)
 *          = ggml's quantize_T: the path ggml_quantize_chunk takes. imatrix: NULL or n_per_row
 *          positive importance weights (one per column, shared by all rows). Returns the bytes
 *          written (nrows * dc_qtype_row_size).
 * The decoders (dc_dequantize_row_T = ggml's to_float, dc_vec_dot_T_f32) and the block layouts are
 * the read side and live in formats/dc_ggml_blocks.h; the traits below point at both.
 *
 * Inputs must be finite. Blocks need the alignment of their struct (2 bytes; 4 for Q8_K). */
#ifndef DC_QUANTS_H
#define DC_QUANTS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dc_ggml_blocks.h" /* block layouts, DC_QK_K, the decoders dc_dequantize_row_T / dc_vec_dot_T_f32 */

/* ggml type ids (enum ggml_type), as stored in GGUF files */
typedef enum dc_qtype {
    DC_QT_Q4_0 = 2,
    DC_QT_Q4_1 = 3,
    DC_QT_Q5_0 = 6,
    DC_QT_Q5_1 = 7,
    DC_QT_Q8_0 = 8,
    DC_QT_Q2_K = 10,
    DC_QT_Q3_K = 11,
    DC_QT_Q4_K = 12,
    DC_QT_Q5_K = 13,
    DC_QT_Q6_K = 14,
    DC_QT_Q8_K = 15,
    DC_QT_IQ4_NL = 20,
    DC_QT_IQ4_XS = 23,
    DC_QT_TQ1_0 = 34,
    DC_QT_TQ2_0 = 35,
    DC_QT_MXFP4 = 39,
} dc_qtype;

/* ---- per-type functions ---- */
#define DC_QUANTS_DECLARE(T)                                                                       \
    void dc_quantize_row_##T##_ref(const float *x, void *y, int64_t k);                            \
    size_t dc_quantize_##T(const float *src, void *dst, int64_t nrows, int64_t n_per_row,          \
                           const float *imatrix);
DC_QUANTS_DECLARE(q4_0)
DC_QUANTS_DECLARE(q4_1)
DC_QUANTS_DECLARE(q5_0)
DC_QUANTS_DECLARE(q5_1)
DC_QUANTS_DECLARE(q8_0)
DC_QUANTS_DECLARE(mxfp4)
DC_QUANTS_DECLARE(q2_K)
DC_QUANTS_DECLARE(q3_K)
DC_QUANTS_DECLARE(q4_K)
DC_QUANTS_DECLARE(q5_K)
DC_QUANTS_DECLARE(q6_K)
DC_QUANTS_DECLARE(q8_K) /* ggml has no quantize_q8_K: dc_quantize_q8_K uses the reference */
DC_QUANTS_DECLARE(iq4_nl)
DC_QUANTS_DECLARE(iq4_xs)
DC_QUANTS_DECLARE(tq1_0)
DC_QUANTS_DECLARE(tq2_0)
#undef DC_QUANTS_DECLARE

/* ---- traits ---- */
typedef struct dc_qtype_traits {
    const char *name;      /* as ggml_type_name prints it: "q4_0", "q4_K", "iq4_xs", "mxfp4" */
    dc_qtype type;         /* ggml type id */
    int blck_size;         /* elements per block */
    int type_size;         /* bytes per block */
    bool requires_imatrix; /* ggml_quantize_requires_imatrix (false for every type here) */
    void (*quantize_ref)(const float *x, void *y, int64_t k);
    size_t (*quantize_imatrix)(const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                               const float *imatrix); /* dc_quantize_T */
    void (*dequantize)(const void *x, float *y, int64_t k);
    float (*vec_dot_f32)(int64_t n, const void *x, const float *y);
    /* scalar references of the two fast paths above (for tests; same results) */
    void (*dequantize_ref)(const void *x, float *y, int64_t k);
    float (*vec_dot_ref)(int64_t n, const void *x, const float *y);
} dc_qtype_traits;

/* By name (case-insensitive: "q4_k" == "Q4_K"); NULL if unknown. */
const dc_qtype_traits *dc_qtype_find(const char *name);
/* By ggml type id; NULL if not one of the types above. */
const dc_qtype_traits *dc_qtype_by_id(int ggml_type);
/* All types, in ggml id order; *n receives the count. */
const dc_qtype_traits *dc_qtype_all(int *n);
/* Bytes of one row of n_per_row elements; 0 if n_per_row is not a positive multiple of the
 * block size. */
size_t dc_qtype_row_size(const dc_qtype_traits *t, int64_t n_per_row);

/* Whole tensor, like ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row, imatrix): the same
 * function and path per type (imatrix NULL: the reference quantizer for most types, the
 * search-based one for IQ4_NL/IQ4_XS; non-NULL: the importance-weighted one where ggml has it).
 * Rows are quantized in parallel with OpenMP; the bytes do not depend on the thread count.
 * Returns the bytes written, 0 on bad arguments (unknown type, n_per_row not a multiple of the
 * block size, nrows < 0, or a type requiring an imatrix without one). */
size_t dc_quantize_rows(dc_qtype type, const float *src, void *dst, int64_t nrows,
                        int64_t n_per_row, const float *imatrix);

/* The AVX2 fast paths (Q8_0 and the Q4_K / Q5_K / Q6_K scale searches here, the 4-bit group
 * quantizers of convert/dc_int4_convert.c; same bytes as the scalar code; default: on when the
 * CPU has AVX2 and DC_QUANTS_SCALAR is unset or 0). mode 0: scalar code only, 1: fast paths where
 * the CPU has AVX2, -1: back to the default. Not thread-safe against running quantizations.
 * Returns whether the fast paths are now in use; dc_quants_simd_enabled() tells without changing. */
bool dc_quants_simd(int mode);
bool dc_quants_simd_enabled(void);

/* f32 <-> f16 exactly as ggml converts (round to nearest even; NaN -> 0x7e00 | sign). */
uint16_t dc_quants_f32_to_f16(float f);
float dc_quants_f16_to_f32(uint16_t h);

#endif
