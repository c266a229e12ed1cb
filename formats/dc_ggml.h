/* ggml tensor types as GGUF stores them: the numeric type ids of ggml.h, their block structure
 * (ggml.c's type_traits: blck_size, type_size), the mapping to deepcast's dc_dtype, and the
 * decoders (block -> f32) of the types deepcast reads: F32, F16, BF16, the integer and F64 types
 * (dc_dtype_to_f32), and the block types Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K..Q6_K Q8_K IQ4_NL IQ4_XS
 * TQ1_0 TQ2_0 MXFP4 (dc_ggml_blocks.h, dc_ggml_dequant.c). Encoders live in quantize/. */
#ifndef DC_GGML_H
#define DC_GGML_H
#include "dc_common.h"
#include "dc_dtype.h"

/* ggml_type ids (ggml/include/ggml.h). Ids 4, 5, 31-33 and 36-38 were removed from GGUF. */
enum {
    DC_GGML_F32 = 0, DC_GGML_F16 = 1, DC_GGML_Q4_0 = 2, DC_GGML_Q4_1 = 3,
    DC_GGML_Q5_0 = 6, DC_GGML_Q5_1 = 7, DC_GGML_Q8_0 = 8, DC_GGML_Q8_1 = 9,
    DC_GGML_Q2_K = 10, DC_GGML_Q3_K = 11, DC_GGML_Q4_K = 12, DC_GGML_Q5_K = 13, DC_GGML_Q6_K = 14,
    DC_GGML_Q8_K = 15, DC_GGML_IQ2_XXS = 16, DC_GGML_IQ2_XS = 17, DC_GGML_IQ3_XXS = 18,
    DC_GGML_IQ1_S = 19, DC_GGML_IQ4_NL = 20, DC_GGML_IQ3_S = 21, DC_GGML_IQ2_S = 22,
    DC_GGML_IQ4_XS = 23, DC_GGML_I8 = 24, DC_GGML_I16 = 25, DC_GGML_I32 = 26, DC_GGML_I64 = 27,
    DC_GGML_F64 = 28, DC_GGML_IQ1_M = 29, DC_GGML_BF16 = 30, DC_GGML_TQ1_0 = 34, DC_GGML_TQ2_0 = 35,
    DC_GGML_MXFP4 = 39, DC_GGML_NVFP4 = 40, DC_GGML_Q1_0 = 41, DC_GGML_Q2_0 = 42,
    DC_GGML_TYPE_COUNT = 43
};

#define DC_QK8_0 32
/* block_q8_0: f16 scale d, then 32 int8 codes; value = code * d */
#define DC_Q8_0_BLOCK_BYTES 34

/* The dc_dtype of a ggml type id, DC_DT_INVALID for an unknown or removed id. */
dc_dtype dc_ggml_dtype(uint32_t ggml_type);
/* The ggml type id of a dtype, -1 if GGUF has no such type (BOOL, U16, U32, U64, FP8). */
int dc_ggml_from_dtype(dc_dtype t);
/* ggml's own lower-case name ("q8_0", "bf16"), or "?" for an unknown id. */
const char *dc_ggml_type_name(uint32_t ggml_type);

/* Whether dc_ggml_decode can turn this dtype into f32 numbers. */
bool dc_ggml_can_decode(dc_dtype t);
/* Decodes n elements (n a multiple of the block size) stored as dtype t into f32: exact for F32,
 * F16, BF16 and the integer types; block types exactly as ggml's to_float (bit for bit). src needs
 * no particular alignment. Returns false if t has no decoder or n is not a whole number of blocks. */
bool dc_ggml_decode(dc_dtype t, const void *src, float *dst, int64_t n);

#endif
