/* Internal helpers shared by the ggml block decoders (formats/dc_ggml_dequant.c) and encoders
 * (quantize/dc_quants*.c): conversions exactly as ggml performs them, the AVX2 clone attribute, the
 * forward pass's dot-product order. Not a public header. */
#ifndef DC_GGML_IMPL_H
#define DC_GGML_IMPL_H
#include "dc_ggml_blocks.h"
#include <math.h>
#include <stdbool.h>
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
    float dc_vec_dot_##T##_f32_ref(int64_t n, const void *vx, const float *y)                      \
    {                                                                                              \
        const BLOCK_T *x = (const BLOCK_T *)vx;                                                    \
        float acc[8] = {0}, buf[BLK];                                                              \
        int64_t nb = n / (BLK);                                                                    \
        for (int64_t i = 0; i < nb; i++) {                                                         \
            dc_dequantize_row_##T##_ref(x + i, buf, (BLK));                                        \
            for (int j = 0; j < (BLK); j++)                                                        \
                acc[j % 8] += buf[j] * y[i * (BLK) + j];                                           \
        }                                                                                          \
        return dcq_hsum8(acc);                                                                     \
    }

#endif
