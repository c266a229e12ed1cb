#include "dc_dtype.h"
#include "dc_common.h"
#include "dc_float.h"
#include <string.h>

static const dc_dtype_traits TRAITS[DC_DT_COUNT] = {
    [DC_DT_INVALID] = {"INVALID", 0, false, 0, 0},
    [DC_DT_BOOL] = {"BOOL", 1, false, 1, 1},
    [DC_DT_U8] = {"U8", 1, true, 1, 1},
    [DC_DT_I8] = {"I8", 1, true, 1, 1},
    [DC_DT_I16] = {"I16", 2, true, 1, 2},
    [DC_DT_U16] = {"U16", 2, true, 1, 2},
    [DC_DT_F16] = {"F16", 2, true, 1, 2},
    [DC_DT_BF16] = {"BF16", 2, true, 1, 2},
    [DC_DT_I32] = {"I32", 4, true, 1, 4},
    [DC_DT_U32] = {"U32", 4, true, 1, 4},
    [DC_DT_F32] = {"F32", 4, true, 1, 4},
    [DC_DT_F64] = {"F64", 8, true, 1, 8},
    [DC_DT_I64] = {"I64", 8, true, 1, 8},
    [DC_DT_U64] = {"U64", 8, true, 1, 8},
    [DC_DT_F8_E4M3] = {"F8_E4M3", 1, true, 1, 1},
    [DC_DT_F8_E5M2] = {"F8_E5M2", 1, true, 1, 1},
    [DC_DT_F8_E8M0] = {"F8_E8M0", 1, true, 1, 1},
    [DC_DT_Q4_0] = {"Q4_0", 0, false, 32, 18},
    [DC_DT_Q4_1] = {"Q4_1", 0, false, 32, 20},
    [DC_DT_Q5_0] = {"Q5_0", 0, false, 32, 22},
    [DC_DT_Q5_1] = {"Q5_1", 0, false, 32, 24},
    [DC_DT_Q8_0] = {"Q8_0", 0, false, 32, 34},
    [DC_DT_Q8_1] = {"Q8_1", 0, false, 32, 36},
    [DC_DT_Q2_K] = {"Q2_K", 0, false, 256, 84},
    [DC_DT_Q3_K] = {"Q3_K", 0, false, 256, 110},
    [DC_DT_Q4_K] = {"Q4_K", 0, false, 256, 144},
    [DC_DT_Q5_K] = {"Q5_K", 0, false, 256, 176},
    [DC_DT_Q6_K] = {"Q6_K", 0, false, 256, 210},
    [DC_DT_Q8_K] = {"Q8_K", 0, false, 256, 292},
    [DC_DT_IQ2_XXS] = {"IQ2_XXS", 0, false, 256, 66},
    [DC_DT_IQ2_XS] = {"IQ2_XS", 0, false, 256, 74},
    [DC_DT_IQ3_XXS] = {"IQ3_XXS", 0, false, 256, 98},
    [DC_DT_IQ1_S] = {"IQ1_S", 0, false, 256, 50},
    [DC_DT_IQ4_NL] = {"IQ4_NL", 0, false, 32, 18},
    [DC_DT_IQ3_S] = {"IQ3_S", 0, false, 256, 110},
    [DC_DT_IQ2_S] = {"IQ2_S", 0, false, 256, 82},
    [DC_DT_IQ4_XS] = {"IQ4_XS", 0, false, 256, 136},
    [DC_DT_IQ1_M] = {"IQ1_M", 0, false, 256, 56},
    [DC_DT_TQ1_0] = {"TQ1_0", 0, false, 256, 54},
    [DC_DT_TQ2_0] = {"TQ2_0", 0, false, 256, 66},
    [DC_DT_MXFP4] = {"MXFP4", 0, false, 32, 17},
    [DC_DT_NVFP4] = {"NVFP4", 0, false, 64, 36},
    [DC_DT_Q1_0] = {"Q1_0", 0, false, 128, 18},
    [DC_DT_Q2_0] = {"Q2_0", 0, false, 64, 18},
};

const dc_dtype_traits *dc_dtype_info(dc_dtype t)
{
    if ((unsigned)t >= DC_DT_COUNT)
        t = DC_DT_INVALID;
    return &TRAITS[t];
}

const char *dc_dtype_name(dc_dtype t) { return dc_dtype_info(t)->st_name; }

dc_dtype dc_dtype_from_name(const char *s)
{
    for (int i = 1; i < DC_DT_COUNT; i++)
        if (TRAITS[i].block == 1 && !strcmp(s, TRAITS[i].st_name))
            return (dc_dtype)i;
    return DC_DT_INVALID;
}

bool dc_dtype_nbytes(dc_dtype t, uint64_t n, uint64_t *out)
{
    const dc_dtype_traits *tr = dc_dtype_info(t);
    if (tr->block < 1 || n % (uint64_t)tr->block)
        return false;
    return dc_mul_u64(n / (uint64_t)tr->block, (uint64_t)tr->block_bytes, out);
}

/* bf16 -> f32 is a shift: the loop is vectorized (omp simd: the build is -O2), with AVX2 where the
 * CPU has it (same bits) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static void bf16_row(const uint8_t *restrict b, float *restrict dst, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, b + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        memcpy(dst + i, &u, 4);
    }
}

bool dc_dtype_to_f32(dc_dtype t, const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    switch (t) {
    case DC_DT_F32: memcpy(dst, src, (size_t)n * 4); return true;
    case DC_DT_BF16: bf16_row(b, dst, n); return true;
    case DC_DT_F16: {
        const float *tab = dc_f16_table();
        for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, b + 2 * i, 2); dst[i] = tab[h]; }
        return true;
    }
    case DC_DT_F8_E4M3: {
        const float *tab = dc_e4m3_table();
        for (int64_t i = 0; i < n; i++) dst[i] = tab[b[i]];
        return true;
    }
    case DC_DT_F8_E5M2: for (int64_t i = 0; i < n; i++) dst[i] = dc_e5m2_to_f32(b[i]); return true;
    case DC_DT_F8_E8M0: for (int64_t i = 0; i < n; i++) dst[i] = dc_e8m0_to_f32(b[i]); return true;
    case DC_DT_F64: for (int64_t i = 0; i < n; i++) { double d; memcpy(&d, b + 8 * i, 8); dst[i] = (float)d; } return true;
    case DC_DT_U8: for (int64_t i = 0; i < n; i++) dst[i] = b[i]; return true;
    case DC_DT_I8: for (int64_t i = 0; i < n; i++) dst[i] = (int8_t)b[i]; return true;
    case DC_DT_I16: for (int64_t i = 0; i < n; i++) { int16_t v; memcpy(&v, b + 2 * i, 2); dst[i] = v; } return true;
    case DC_DT_U16: for (int64_t i = 0; i < n; i++) { uint16_t v; memcpy(&v, b + 2 * i, 2); dst[i] = v; } return true;
    case DC_DT_I32: for (int64_t i = 0; i < n; i++) { int32_t v; memcpy(&v, b + 4 * i, 4); dst[i] = (float)v; } return true;
    case DC_DT_U32: for (int64_t i = 0; i < n; i++) { uint32_t v; memcpy(&v, b + 4 * i, 4); dst[i] = (float)v; } return true;
    case DC_DT_I64: for (int64_t i = 0; i < n; i++) { int64_t v; memcpy(&v, b + 8 * i, 8); dst[i] = (float)v; } return true;
    case DC_DT_U64: for (int64_t i = 0; i < n; i++) { uint64_t v; memcpy(&v, b + 8 * i, 8); dst[i] = (float)v; } return true;
    default: return false;
    }
}

bool dc_dtype_from_f32(dc_dtype t, const float *src, void *dst, int64_t n)
{
    uint8_t *b = dst;
    switch (t) {
    case DC_DT_F32: memcpy(dst, src, (size_t)n * 4); return true;
    case DC_DT_BF16: for (int64_t i = 0; i < n; i++) { uint16_t h = dc_f32_to_bf16(src[i]); memcpy(b + 2 * i, &h, 2); } return true;
    case DC_DT_F16: for (int64_t i = 0; i < n; i++) { uint16_t h = dc_f32_to_f16(src[i]); memcpy(b + 2 * i, &h, 2); } return true;
    case DC_DT_F8_E4M3: for (int64_t i = 0; i < n; i++) b[i] = dc_f32_to_e4m3(src[i]); return true;
    case DC_DT_F8_E5M2: for (int64_t i = 0; i < n; i++) b[i] = dc_f32_to_e5m2(src[i]); return true;
    default: return false;
    }
}
