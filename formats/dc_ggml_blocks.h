/* ggml block layouts (ggml-common.h) and their decoders: block -> f32 exactly as ggml's to_float, and
 * dot products with an f32 vector in the forward pass's fixed order. These are the read side of
 * the ggml block types (GGUF tensors of any type are read through dc_weight_rows, formats/dc_ggml.h);
 * the encoders (quantizers) live in quantize/dc_quants.h. See docs/quants.md.
 *
 * Per type T (lower case as ggml names it: q4_0, q4_K, iq4_xs, tq1_0, mxfp4, ...):
 *   void  dc_dequantize_row_T(const void *x, float *y, int64_t k)
 *         = ggml's to_float (vectorised), k a multiple of the block size;
 *   void  dc_dequantize_row_T_ref(...)  its scalar transliteration of ggml's loop (same results);
 *   float dc_vec_dot_T_f32(int64_t n, const void *x, const float *y)
 *         = dot(dequantize(x), y) in the fixed order of the forward pass (verify/dc_forward.c):
 *         eight lane accumulators (lane j sums elements i with i % 8 == j, in order, each step
 *         rounding the product then the sum), then ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7));
 *   float dc_vec_dot_T_f32_ref(...)  the scalar reference of the same.
 * Blocks need the alignment of their struct (2 bytes; 4 for Q8_K; 1 for MXFP4). */
#ifndef DC_GGML_BLOCKS_H
#define DC_GGML_BLOCKS_H
#include <stdint.h>

#define DC_QK_K 256 /* super-block size of the K-quants, IQ4_XS, TQ*_0 */

typedef uint16_t dc_half; /* IEEE binary16 bits */

typedef struct { dc_half d; uint8_t qs[16]; } dc_block_q4_0;
typedef struct { dc_half d, m; uint8_t qs[16]; } dc_block_q4_1;
typedef struct { dc_half d; uint8_t qh[4]; uint8_t qs[16]; } dc_block_q5_0;
typedef struct { dc_half d, m; uint8_t qh[4]; uint8_t qs[16]; } dc_block_q5_1;
typedef struct { dc_half d; int8_t qs[32]; } dc_block_q8_0;
typedef struct { uint8_t e; uint8_t qs[16]; } dc_block_mxfp4; /* e: E8M0 scale */
typedef struct { uint8_t scales[16]; uint8_t qs[64]; dc_half d, dmin; } dc_block_q2_K;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; dc_half d; } dc_block_q3_K;
typedef struct { dc_half d, dmin; uint8_t scales[12]; uint8_t qs[128]; } dc_block_q4_K;
typedef struct { dc_half d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } dc_block_q5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; dc_half d; } dc_block_q6_K;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } dc_block_q8_K;
typedef struct { dc_half d; uint8_t qs[16]; } dc_block_iq4_nl;
typedef struct { dc_half d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } dc_block_iq4_xs;
typedef struct { uint8_t qs[48]; uint8_t qh[4]; dc_half d; } dc_block_tq1_0;
typedef struct { uint8_t qs[64]; dc_half d; } dc_block_tq2_0;

_Static_assert(sizeof(dc_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(dc_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(dc_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(dc_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(dc_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(dc_block_mxfp4) == 17, "mxfp4 block");
_Static_assert(sizeof(dc_block_q2_K) == 84, "q2_K block");
_Static_assert(sizeof(dc_block_q3_K) == 110, "q3_K block");
_Static_assert(sizeof(dc_block_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(dc_block_q5_K) == 176, "q5_K block");
_Static_assert(sizeof(dc_block_q6_K) == 210, "q6_K block");
_Static_assert(sizeof(dc_block_q8_K) == 292, "q8_K block");
_Static_assert(sizeof(dc_block_iq4_nl) == 18, "iq4_nl block");
_Static_assert(sizeof(dc_block_iq4_xs) == 136, "iq4_xs block");
_Static_assert(sizeof(dc_block_tq1_0) == 54, "tq1_0 block");
_Static_assert(sizeof(dc_block_tq2_0) == 66, "tq2_0 block");

#define DC_GGML_DEQ_DECLARE(T)                                                                     \
    void dc_dequantize_row_##T(const void *x, float *y, int64_t k);                                \
    void dc_dequantize_row_##T##_ref(const void *x, float *y, int64_t k);                          \
    float dc_vec_dot_##T##_f32(int64_t n, const void *x, const float *y);                          \
    float dc_vec_dot_##T##_f32_ref(int64_t n, const void *x, const float *y);
DC_GGML_DEQ_DECLARE(q4_0)
DC_GGML_DEQ_DECLARE(q4_1)
DC_GGML_DEQ_DECLARE(q5_0)
DC_GGML_DEQ_DECLARE(q5_1)
DC_GGML_DEQ_DECLARE(q8_0)
DC_GGML_DEQ_DECLARE(mxfp4)
DC_GGML_DEQ_DECLARE(q2_K)
DC_GGML_DEQ_DECLARE(q3_K)
DC_GGML_DEQ_DECLARE(q4_K)
DC_GGML_DEQ_DECLARE(q5_K)
DC_GGML_DEQ_DECLARE(q6_K)
DC_GGML_DEQ_DECLARE(q8_K)
DC_GGML_DEQ_DECLARE(iq4_nl)
DC_GGML_DEQ_DECLARE(iq4_xs)
DC_GGML_DEQ_DECLARE(tq1_0)
DC_GGML_DEQ_DECLARE(tq2_0)
#undef DC_GGML_DEQ_DECLARE

#endif
