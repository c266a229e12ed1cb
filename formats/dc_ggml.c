#include "dc_ggml.h"
#include "dc_float.h"

#include <string.h>

typedef struct ggml_row {
    dc_dtype dt;
    const char *name; /* ggml_type_name() */
} ggml_row;

/* Block sizes and bytes come from dc_dtype's traits table (the same numbers as ggml.c). */
static const ggml_row TYPES[DC_GGML_TYPE_COUNT] = {
    [DC_GGML_F32] = {DC_DT_F32, "f32"},         [DC_GGML_F16] = {DC_DT_F16, "f16"},
    [DC_GGML_Q4_0] = {DC_DT_Q4_0, "q4_0"},      [DC_GGML_Q4_1] = {DC_DT_Q4_1, "q4_1"},
    [DC_GGML_Q5_0] = {DC_DT_Q5_0, "q5_0"},      [DC_GGML_Q5_1] = {DC_DT_Q5_1, "q5_1"},
    [DC_GGML_Q8_0] = {DC_DT_Q8_0, "q8_0"},      [DC_GGML_Q8_1] = {DC_DT_Q8_1, "q8_1"},
    [DC_GGML_Q2_K] = {DC_DT_Q2_K, "q2_K"},      [DC_GGML_Q3_K] = {DC_DT_Q3_K, "q3_K"},
    [DC_GGML_Q4_K] = {DC_DT_Q4_K, "q4_K"},      [DC_GGML_Q5_K] = {DC_DT_Q5_K, "q5_K"},
    [DC_GGML_Q6_K] = {DC_DT_Q6_K, "q6_K"},      [DC_GGML_Q8_K] = {DC_DT_Q8_K, "q8_K"},
    [DC_GGML_IQ2_XXS] = {DC_DT_IQ2_XXS, "iq2_xxs"}, [DC_GGML_IQ2_XS] = {DC_DT_IQ2_XS, "iq2_xs"},
    [DC_GGML_IQ3_XXS] = {DC_DT_IQ3_XXS, "iq3_xxs"}, [DC_GGML_IQ1_S] = {DC_DT_IQ1_S, "iq1_s"},
    [DC_GGML_IQ4_NL] = {DC_DT_IQ4_NL, "iq4_nl"},  [DC_GGML_IQ3_S] = {DC_DT_IQ3_S, "iq3_s"},
    [DC_GGML_IQ2_S] = {DC_DT_IQ2_S, "iq2_s"},     [DC_GGML_IQ4_XS] = {DC_DT_IQ4_XS, "iq4_xs"},
    [DC_GGML_I8] = {DC_DT_I8, "i8"},            [DC_GGML_I16] = {DC_DT_I16, "i16"},
    [DC_GGML_I32] = {DC_DT_I32, "i32"},         [DC_GGML_I64] = {DC_DT_I64, "i64"},
    [DC_GGML_F64] = {DC_DT_F64, "f64"},         [DC_GGML_IQ1_M] = {DC_DT_IQ1_M, "iq1_m"},
    [DC_GGML_BF16] = {DC_DT_BF16, "bf16"},      [DC_GGML_TQ1_0] = {DC_DT_TQ1_0, "tq1_0"},
    [DC_GGML_TQ2_0] = {DC_DT_TQ2_0, "tq2_0"},   [DC_GGML_MXFP4] = {DC_DT_MXFP4, "mxfp4"},
    [DC_GGML_NVFP4] = {DC_DT_NVFP4, "nvfp4"},   [DC_GGML_Q1_0] = {DC_DT_Q1_0, "q1_0"},
    [DC_GGML_Q2_0] = {DC_DT_Q2_0, "q2_0"},
};

dc_dtype dc_ggml_dtype(uint32_t ggml_type)
{
    return ggml_type < DC_GGML_TYPE_COUNT ? TYPES[ggml_type].dt : DC_DT_INVALID;
}

int dc_ggml_from_dtype(dc_dtype t)
{
    if (t == DC_DT_INVALID)
        return -1;
    for (int i = 0; i < DC_GGML_TYPE_COUNT; i++)
        if (TYPES[i].dt == t && TYPES[i].name)
            return i;
    return -1;
}

const char *dc_ggml_type_name(uint32_t ggml_type)
{
    return ggml_type < DC_GGML_TYPE_COUNT && TYPES[ggml_type].name ? TYPES[ggml_type].name : "?";
}

bool dc_ggml_can_decode(dc_dtype t)
{
    return t == DC_DT_Q8_0 || (dc_dtype_info(t)->is_float && t != DC_DT_INVALID);
}

static void decode_q8_0(const uint8_t *src, float *dst, int64_t n)
{
    const float *f16 = dc_f16_table();
    for (int64_t b = 0; b < n / DC_QK8_0; b++) {
        const uint8_t *blk = src + b * DC_Q8_0_BLOCK_BYTES;
        uint16_t h;
        memcpy(&h, blk, 2);
        const float d = f16[h];
        const int8_t *qs = (const int8_t *)(blk + 2);
        float *y = dst + b * DC_QK8_0;
        for (int j = 0; j < DC_QK8_0; j++)
            y[j] = (float)qs[j] * d;
    }
}

bool dc_ggml_decode(dc_dtype t, const void *src, float *dst, int64_t n)
{
    if (t == DC_DT_Q8_0) {
        if (n % DC_QK8_0)
            return false;
        decode_q8_0(src, dst, n);
        return true;
    }
    if (!dc_ggml_can_decode(t))
        return false;
    return dc_dtype_to_f32(t, src, dst, n);
}
