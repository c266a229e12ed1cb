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
    DC_DT_COUNT
} dc_dtype;

typedef struct dc_dtype_traits {
    const char *st_name; /* safetensors name, e.g. "BF16" */
    int size;            /* bytes per element */
    bool is_float;       /* convertible to f32 by dc_dtype_to_f32 */
} dc_dtype_traits;

const dc_dtype_traits *dc_dtype_info(dc_dtype t);
const char *dc_dtype_name(dc_dtype t);
/* Parses a safetensors dtype string; DC_DT_INVALID if unknown. */
dc_dtype dc_dtype_from_name(const char *s);
static inline int dc_dtype_size(dc_dtype t) { return dc_dtype_info(t)->size; }

/* Converts n elements of a float or integer dtype to f32. Returns false for BOOL/invalid. */
bool dc_dtype_to_f32(dc_dtype t, const void *src, float *dst, int64_t n);
/* Converts n f32 values into F32/F16/BF16/F8_E4M3/F8_E5M2 (round to nearest even, e4m3 saturating). */
bool dc_dtype_from_f32(dc_dtype t, const float *src, void *dst, int64_t n);

#endif
