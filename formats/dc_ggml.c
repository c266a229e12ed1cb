#include "dc_ggml.h"
#include "dc_float.h"
#include "dc_ggml_blocks.h"

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

/* The block decoders (dc_ggml_dequant.c) by dtype, with the alignment of their block struct. */
typedef void (*deq_fn)(const void *x, float *y, int64_t k);
static const struct {
    dc_dtype dt;
    deq_fn fn;
    int align;
} DEQ[] = {
    {DC_DT_Q4_0, dc_dequantize_row_q4_0, 2},     {DC_DT_Q4_1, dc_dequantize_row_q4_1, 2},
    {DC_DT_Q5_0, dc_dequantize_row_q5_0, 2},     {DC_DT_Q5_1, dc_dequantize_row_q5_1, 2},
    {DC_DT_Q8_0, dc_dequantize_row_q8_0, 2},     {DC_DT_Q2_K, dc_dequantize_row_q2_K, 2},
    {DC_DT_Q3_K, dc_dequantize_row_q3_K, 2},     {DC_DT_Q4_K, dc_dequantize_row_q4_K, 2},
    {DC_DT_Q5_K, dc_dequantize_row_q5_K, 2},     {DC_DT_Q6_K, dc_dequantize_row_q6_K, 2},
    {DC_DT_Q8_K, dc_dequantize_row_q8_K, 4},     {DC_DT_IQ4_NL, dc_dequantize_row_iq4_nl, 2},
    {DC_DT_IQ4_XS, dc_dequantize_row_iq4_xs, 2}, {DC_DT_TQ1_0, dc_dequantize_row_tq1_0, 2},
    {DC_DT_TQ2_0, dc_dequantize_row_tq2_0, 2},   {DC_DT_MXFP4, dc_dequantize_row_mxfp4, 1},
};

static int deq_index(dc_dtype t)
{
    for (size_t i = 0; i < sizeof DEQ / sizeof DEQ[0]; i++)
        if (DEQ[i].dt == t)
            return (int)i;
    return -1;
}

bool dc_ggml_can_decode(dc_dtype t)
{
    return deq_index(t) >= 0 || (dc_dtype_info(t)->is_float && t != DC_DT_INVALID);
}

bool dc_ggml_decode(dc_dtype t, const void *src, float *dst, int64_t n)
{
    int k = deq_index(t);
    if (k < 0) {
        if (!dc_ggml_can_decode(t))
            return false;
        return dc_dtype_to_f32(t, src, dst, n);
    }
    const int blk = dc_dtype_block(t), bb = dc_dtype_block_bytes(t);
    if (n % blk)
        return false;
    if (((uintptr_t)src & (uintptr_t)(DEQ[k].align - 1)) == 0) {
        DEQ[k].fn(src, dst, n);
        return true;
    }
    /* a GGUF with general.alignment 1 can place blocks at odd addresses: decode through an
     * aligned copy, a few blocks at a time */
    _Alignas(8) uint8_t tmp[8 * 292];
    const int64_t per = (int64_t)sizeof tmp / bb, nb = n / blk;
    for (int64_t b = 0; b < nb; b += per) {
        int64_t m = nb - b < per ? nb - b : per;
        memcpy(tmp, (const uint8_t *)src + b * bb, (size_t)(m * bb));
        DEQ[k].fn(tmp, dst + b * blk, m * blk);
    }
    return true;
}
