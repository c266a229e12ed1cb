/* Element types of tensors on disk: one traits table drives names, sizes and conversions. */
#ifndef DC_DTYPE_H
#define DC_DTYPE_H
#include <stdbool.h>
#include <stdint.h>

typedef enum dc_dtype {
    DC_DT_INVALID = 0,
    DC_DT_BOOL, DC_DT_U8, DC_DT_I8, DC_DT_I16, DC_DT_U16, DC_DT_F16, DC_DT_BF16,
    DC_DT_I32, DC_DT_U32, DC_DT_F32, DC_DT_F64, DC_DT_I64, DC_DT_U64,
    DC_DT_F8_E4M3, DC_DT_F8_E5M2, DC_DT_F8_E8M0,
    /* ggml block types (GGUF only; never accepted in a safetensors header). Names are ggml's type
     * names as gguf-py spells them (Q8_0, Q4_K, ...). formats/dc_ggml.c decodes the ones llama-quantize
     * writes (dc_ggml_can_decode); the others (IQ1/2/3, Q8_1, NVFP4, Q1_0/Q2_0) can be listed,
     * hashed and copied but not read as numbers. */
    DC_DT_Q4_0, DC_DT_Q4_1, DC_DT_Q5_0, DC_DT_Q5_1, DC_DT_Q8_0, DC_DT_Q8_1,
    DC_DT_Q2_K, DC_DT_Q3_K, DC_DT_Q4_K, DC_DT_Q5_K, DC_DT_Q6_K, DC_DT_Q8_K,
    DC_DT_IQ2_XXS, DC_DT_IQ2_XS, DC_DT_IQ3_XXS, DC_DT_IQ1_S, DC_DT_IQ4_NL, DC_DT_IQ3_S, DC_DT_IQ2_S,
    DC_DT_IQ4_XS, DC_DT_IQ1_M, DC_DT_TQ1_0, DC_DT_TQ2_0, DC_DT_MXFP4, DC_DT_NVFP4, DC_DT_Q1_0, DC_DT_Q2_0,
    DC_DT_COUNT
} dc_dtype;

typedef struct dc_dtype_traits {
    const char *st_name; /* safetensors name, e.g. "BF16" (ggml's name for block types) */
    int size;            /* bytes per element; 0 for block types (use block / block_bytes) */
    bool is_float;       /* convertible to f32 by dc_dtype_to_f32 */
    int block;           /* elements per block: 1 for scalar types, 32 for Q8_0, 256 for K-quants */
    int block_bytes;     /* bytes per block (== size for scalar types) */
} dc_dtype_traits;

const dc_dtype_traits *dc_dtype_info(dc_dtype t);
const char *dc_dtype_name(dc_dtype t);
/* Parses a safetensors dtype string; DC_DT_INVALID if unknown (block types are not safetensors
 * dtypes and are never returned). */
dc_dtype dc_dtype_from_name(const char *s);
static inline int dc_dtype_size(dc_dtype t) { return dc_dtype_info(t)->size; }
/* Block structure (1 / size for scalar types). */
static inline int dc_dtype_block(dc_dtype t) { return dc_dtype_info(t)->block; }
static inline int dc_dtype_block_bytes(dc_dtype t) { return dc_dtype_info(t)->block_bytes; }
static inline bool dc_dtype_is_block(dc_dtype t) { return dc_dtype_info(t)->block > 1; }
/* Bytes of n elements (n a multiple of the block size). False on a partial block, an invalid
 * dtype or overflow. */
bool dc_dtype_nbytes(dc_dtype t, uint64_t n, uint64_t *out);

/* Converts n elements of a float or integer dtype to f32. Returns false for BOOL/invalid. */
bool dc_dtype_to_f32(dc_dtype t, const void *src, float *dst, int64_t n);
/* Converts n f32 values into F32/F16/BF16/F8_E4M3/F8_E5M2 (round to nearest even, e4m3 saturating). */
bool dc_dtype_from_f32(dc_dtype t, const float *src, void *dst, int64_t n);

#endif
