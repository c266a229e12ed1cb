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
#include <math.h>
#include <stdint.h>
#include <string.h>

/* AVX2 clones of the dequantizers and dot products: GCC only (clang 14 names the dispatcher
 * "f.ifunc", which other files cannot link against), not under ASan */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define DCQ_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DCQ_CLONES
#endif

#define DCQ_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DCQ_MAX(a, b) ((a) > (b) ? (a) : (b))
#define DCQ_GROUP_MAX_EPS 1e-15f

static inline uint32_t dcq_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float dcq_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* binary16 -> binary32, exact; NaNs come out quiet with their payload */
static inline float dcq_h2f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    uint32_t r;
    if (e == 0)
        r = dcq_bits((float)m * 0x1p-24f); /* subnormal or zero: exact */
    else if (e == 31)
        r = 0x7f800000u | (m << 13) | (m ? 0x00400000u : 0);
    else
        r = ((e + 112) << 23) | (m << 13);
    return dcq_float(sign | r);
}

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

/* 2^(e-128): E8M0 scale halved (the FP4 values are stored doubled) */
static inline float dcq_e8m0_half(uint8_t e)
{
    return dcq_float(e < 2 ? (0x00200000u << e) : ((uint32_t)(e - 1) << 23));
}

/* 6-bit scale and min j of a Q4_K / Q5_K block */
static inline void dcq_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/* scale searches shared by the families (dc_quants_k.c), same arithmetic as ggml's
 * make_qx_quants, make_qkx3_quants */
float dcq_make_qx_quants(int n, int nmax, const float *restrict x, int8_t *restrict L, int rmse_type,
                         const float *restrict qw);
float dcq_make_qkx3_quants(int n, int nmax, const float *restrict x, const float *restrict weights,
                           uint8_t *restrict L, float *restrict the_min, uint8_t *restrict Laux,
                           float rmin, float rdelta, int nstep, bool use_mad);

extern const int8_t dcq_kvalues_iq4nl[16];
extern const int8_t dcq_kvalues_mxfp4[16];

/* ---- dot products: the forward pass's fixed order, continued across blocks ---- */
static inline float dcq_hsum8(const float a[8])
{
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

/* acc[l] += w[i + l] * y[i + l] for each group of 8 (n a multiple of 8) */
static inline __attribute__((always_inline)) void dcq_acc8(float *restrict acc, const float *restrict w,
                                                           const float *restrict y, int n)
{
    for (int i = 0; i < n; i += 8) {
#pragma omp simd
        for (int l = 0; l < 8; l++)
            acc[l] += w[i + l] * y[i + l];
    }
}

/* Defines the vectorised dequantizer, the dot product and their scalar references from
 * deq_block_T (fast, one block) and deq_row_T_ref (scalar transliteration of ggml's loop). */
#define DCQ_DEFINE_DEQ_DOT(T, BLK, BLOCK_T)                                                        \
    DCQ_CLONES void dc_dequantize_row_##T(const void *vx, float *y, int64_t k)                     \
    {                                                                                              \
        const BLOCK_T *x = (const BLOCK_T *)vx;                                                    \
        int64_t nb = k / (BLK);                                                                    \
        for (int64_t i = 0; i < nb; i++)                                                           \
            deq_block_##T(x + i, y + i * (BLK));                                                   \
    }                                                                                              \
    DCQ_CLONES float dc_vec_dot_##T##_f32(int64_t n, const void *vx, const float *y)               \
    {                                                                                              \
        const BLOCK_T *x = (const BLOCK_T *)vx;                                                    \
        float acc[8] = {0}, buf[BLK];                                                              \
        int64_t nb = n / (BLK);                                                                    \
        for (int64_t i = 0; i < nb; i++) {                                                         \
            deq_block_##T(x + i, buf);                                                             \
            dcq_acc8(acc, buf, y + i * (BLK), (BLK));                                              \
        }                                                                                          \
        return dcq_hsum8(acc);                                                                     \
    }                                                                                              \
    float dcq_vec_dot_##T##_ref(int64_t n, const void *vx, const float *y)                      \
    {                                                                                              \
        const BLOCK_T *x = (const BLOCK_T *)vx;                                                    \
        float acc[8] = {0}, buf[BLK];                                                              \
        int64_t nb = n / (BLK);                                                                    \
        for (int64_t i = 0; i < nb; i++) {                                                         \
            dcq_deq_row_##T##_ref(x + i, buf, (BLK));                                                  \
            for (int j = 0; j < (BLK); j++)                                                        \
                acc[j % 8] += buf[j] * y[i * (BLK) + j];                                           \
        }                                                                                          \
        return dcq_hsum8(acc);                                                                     \
    }

/* one entry of the traits table (dc_quants.c) */
#define DCQ_TRAITS_ENTRY(T, ID, NAME, BLK, BLOCK_T)                                                \
    {                                                                                              \
        .name = NAME, .type = ID, .blck_size = BLK, .type_size = (int)sizeof(BLOCK_T),             \
        .requires_imatrix = false, .quantize_ref = dc_quantize_row_##T##_ref,                      \
        .quantize_imatrix = dc_quantize_##T, .dequantize = dc_dequantize_row_##T,                  \
        .vec_dot_f32 = dc_vec_dot_##T##_f32, .dequantize_ref = dcq_deq_row_##T##_ref,                  \
        .vec_dot_ref = dcq_vec_dot_##T##_ref,                                                          \
    }

/* the scalar references of each family (defined next to their types) */
#define DCQ_DECLARE_REFS(T)                                                                        \
    void dcq_deq_row_##T##_ref(const void *x, float *y, int64_t k);                                \
    float dcq_vec_dot_##T##_ref(int64_t n, const void *x, const float *y);
DCQ_DECLARE_REFS(q4_0)
DCQ_DECLARE_REFS(q4_1)
DCQ_DECLARE_REFS(q5_0)
DCQ_DECLARE_REFS(q5_1)
DCQ_DECLARE_REFS(q8_0)
DCQ_DECLARE_REFS(mxfp4)
DCQ_DECLARE_REFS(q2_K)
DCQ_DECLARE_REFS(q3_K)
DCQ_DECLARE_REFS(q4_K)
DCQ_DECLARE_REFS(q5_K)
DCQ_DECLARE_REFS(q6_K)
DCQ_DECLARE_REFS(q8_K)
DCQ_DECLARE_REFS(iq4_nl)
DCQ_DECLARE_REFS(iq4_xs)
DCQ_DECLARE_REFS(tq1_0)
DCQ_DECLARE_REFS(tq2_0)
#undef DCQ_DECLARE_REFS

#endif
