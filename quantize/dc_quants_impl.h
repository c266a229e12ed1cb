/* Internal helpers of dc_quants*.c: conversions and rounding exactly as ggml performs them.
 *
 * Byte-exactness with ggml rests on doing the same IEEE single-precision operations in the same
 * order (the build uses -ffp-contract=off, so no fused multiply-adds, like ggml's generic x86-64
 * build), and on reproducing the x86 behaviour of the float -> small integer casts ggml relies
 * on: a truncating conversion to int32 (INT32_MIN when out of range, cvttss2si / cvttps2dq),
 * then the low bits. */
#ifndef DC_QUANTS_IMPL_H
#define DC_QUANTS_IMPL_H

/* The quantizers are scalar search loops; GCC's -O3 (the level ggml is built at: unswitching,
 * peeling, vectorisation of the non-reducing loops) makes them about 1.5x faster than -O2. It
 * does not change results: without -ffast-math GCC never reassociates float arithmetic. Release
 * builds only (-O0/-O1 debug and sanitizer builds keep their flags). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__)
#pragma GCC optimize("O3")
#endif
#include "dc_quants.h"
#include "dc_ggml_impl.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#define DCQ_GROUP_MAX_EPS 1e-15f

/* binary32 -> binary16, round to nearest even, overflow to inf, NaN -> 0x7e00 (ggml's result) */
static inline uint16_t dcq_f2h(float f)
{
    uint32_t u = dcq_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return sign | 0x7e00u;
    if (a >= 0x477ff000u) /* >= 65520: rounds to infinity */
        return sign | 0x7c00u;
    if (a < 0x38800000u) /* below 2^-14: adding 0.5 rounds to the 2^-24 grid of f16 subnormals */
        return sign | (uint16_t)(dcq_bits(dcq_float(a) + 0.5f) - 0x3f000000u);
    a += 0xfffu + ((a >> 13) & 1u);
    return sign | (uint16_t)((a >> 13) - (112u << 10));
}

/* ggml's nearest_int: round half to even through the 1.5 * 2^23 trick (|fval| < 2^22) */
static inline int dcq_nearest_int(float fval)
{
    float val = fval + 12582912.f;
    int32_t i;
    memcpy(&i, &val, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* (int32_t)f as x86 does it: truncation, INT32_MIN when NaN or out of range */
static inline int32_t dcq_cvtt(float f)
{
    return (f > -2147483904.0f && f < 2147483648.0f) ? (int32_t)f : INT32_MIN;
}

/* scale searches shared by the families (dc_quants_k.c), same arithmetic as ggml's
 * make_qx_quants, make_qkx3_quants */
float dcq_make_qx_quants(int n, int nmax, const float *restrict x, int8_t *restrict L, int rmse_type,
                         const float *restrict qw);
float dcq_make_qkx3_quants(int n, int nmax, const float *restrict x, const float *restrict weights,
                           uint8_t *restrict L, float *restrict the_min, uint8_t *restrict Laux,
                           float rmin, float rdelta, int nstep, bool use_mad);

/* AVX2 fast paths (dc_quants_k_x8.c): 8 sub-blocks per vector, one per lane, each lane doing the
 * scalar search's operations in its order (same bytes). Call only when dcq_x8_enabled().
 * dcq_qkx_x8 = make_qkx2 (v3 false) / make_qkx3 (v3 true) on the 8 sub-blocks of 32 of one
 * super-block (weights[256] non-NULL, use_mad false, nstep >= 1); dcq_qkx_x8x2: the same on two
 * super-blocks at once; dcq_qx_x16 = dcq_make_qx_quants(16, nmax, ..., 1, qw) on the 16 sub-blocks
 * of 16 of one super-block (qw NULL or 256 weights; Q6_K nmax 32, Q3_K's imatrix path 4). */
bool dcq_x8_enabled(void);
void dcq_qkx_x8(const float *restrict x, const float *restrict weights, int nmax, float rmin, float rdelta,
                int nstep, bool v3, uint8_t *restrict L, float *restrict scales, float *restrict mins);
void dcq_qkx_x8x2(const float *x0, const float *w0, const float *x1, const float *w1, int nmax, float rmin,
                  float rdelta, int nstep, bool v3, uint8_t *L0, uint8_t *L1, float *scales0, float *scales1,
                  float *mins0, float *mins1);
void dcq_qx_x16(const float *restrict x, const float *restrict qw, int nmax, int8_t *restrict L,
                float *restrict scales);
/* Q8_0 (dc_quantize_row_q8_0_ref) on nb blocks of 32, 32 lanes per block: same bytes; a block
 * holding a non-finite value goes through the scalar code. */
void dcq_q8_0_x8(const float *restrict x, void *restrict y, int64_t nb);
/* make_qkx2 (v3 false) / make_qkx3 (v3 true) with use_mad = mad on the 16 sub-blocks of 16 of one
 * super-block (Q2_K): x[256], w[256] -> L[256], scales[16], mins[16] (the_min); nstep >= 1. */
void dcq_qkx16_x8x2(const float *restrict x, const float *restrict w, int nmax, float rmin, float rdelta, int nstep,
                    bool v3, bool mad, uint8_t *restrict L, float *restrict scales, float *restrict mins);
/* IQ4_NL / IQ4_XS: the trial-scale search of 8 sub-blocks of 32 (sub-block b at x + 32 b, its
 * weights at w + 32 b, maxs[b] its signed largest-magnitude value, not below the group threshold),
 * ntry > 0: d_out[b] = the scale the scalar search (dc_quants_iq.c) picks. */
void dcq_iq4_search_x8(const float *restrict x, const float *restrict w, const float *restrict maxs, int ntry,
                       float *restrict d_out);

/* one entry of the traits table (dc_quants.c) */
#define DCQ_TRAITS_ENTRY(T, ID, NAME, BLK, BLOCK_T)                                                \
    {                                                                                              \
        .name = NAME, .type = ID, .blck_size = BLK, .type_size = (int)sizeof(BLOCK_T),             \
        .requires_imatrix = false, .quantize_ref = dc_quantize_row_##T##_ref,                      \
        .quantize_imatrix = dc_quantize_##T, .dequantize = dc_dequantize_row_##T,                  \
        .vec_dot_f32 = dc_vec_dot_##T##_f32, .dequantize_ref = dc_dequantize_row_##T##_ref,      \
        .vec_dot_ref = dc_vec_dot_##T##_f32_ref,                                                 \
    }

#endif
