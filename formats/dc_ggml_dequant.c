/* Decoders of the ggml block types (layouts: dc_ggml_blocks.h): ggml's to_float bit for bit,
 * vectorised (AVX2 clone), with the scalar references and the dot products in the forward pass's
 * order. tests/test_quants.c checks them against libggml-base.so. dc_ggml_decode (dc_ggml.c)
 * dispatches here. */
/* -O3 like ggml's build and the quantizers (quantize/dc_quants_impl.h); results do not depend on it */
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__)
#pragma GCC optimize("O3")
#endif
#include "dc_ggml_impl.h"

#define QK 32

const int8_t dcq_kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* ================================================================================================
 * Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 (blocks of 32, f16 scale), MXFP4 (E8M0 scale, E2M1 values)
 * ================================================================================================ */

void dc_dequantize_row_q4_0_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_q4_0 *x = vx;
    for (int64_t i = 0; i < k / QK; i++) {
        const float d = dcq_h2f(x[i].d);
        for (int j = 0; j < QK / 2; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8, x1 = (x[i].qs[j] >> 4) - 8;
            y[i * QK + j] = (float)x0 * d;
            y[i * QK + j + QK / 2] = (float)x1 * d;
        }
    }
}

static inline __attribute__((always_inline)) void deq_block_q4_0(const dc_block_q4_0 *b, float *restrict y)
{
    const float d = dcq_h2f(b->d);
#pragma omp simd
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (float)((b->qs[j] & 0x0F) - 8) * d;
        y[j + QK / 2] = (float)((b->qs[j] >> 4) - 8) * d;
    }
}

DCQ_DEFINE_DEQ_DOT(q4_0, QK, dc_block_q4_0)

void dc_dequantize_row_q4_1_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_q4_1 *x = vx;
    for (int64_t i = 0; i < k / QK; i++) {
        const float d = dcq_h2f(x[i].d), m = dcq_h2f(x[i].m);
        for (int j = 0; j < QK / 2; j++) {
            const int x0 = x[i].qs[j] & 0x0F, x1 = x[i].qs[j] >> 4;
            y[i * QK + j] = (float)x0 * d + m;
            y[i * QK + j + QK / 2] = (float)x1 * d + m;
        }
    }
}

static inline __attribute__((always_inline)) void deq_block_q4_1(const dc_block_q4_1 *b, float *restrict y)
{
    const float d = dcq_h2f(b->d), m = dcq_h2f(b->m);
#pragma omp simd
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (float)(b->qs[j] & 0x0F) * d + m;
        y[j + QK / 2] = (float)(b->qs[j] >> 4) * d + m;
    }
}

DCQ_DEFINE_DEQ_DOT(q4_1, QK, dc_block_q4_1)

void dc_dequantize_row_q5_0_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_q5_0 *x = vx;
    for (int64_t i = 0; i < k / QK; i++) {
        const float d = dcq_h2f(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof qh);
        for (int j = 0; j < QK / 2; j++) {
            const uint8_t xh_0 = (uint8_t)(((qh >> (j + 0)) << 4) & 0x10);
            const uint8_t xh_1 = (uint8_t)(((qh >> (j + 12))) & 0x10);
            const int32_t x0 = ((x[i].qs[j] & 0x0F) | xh_0) - 16;
            const int32_t x1 = ((x[i].qs[j] >> 4) | xh_1) - 16;
            y[i * QK + j] = (float)x0 * d;
            y[i * QK + j + QK / 2] = (float)x1 * d;
        }
    }
}

static inline __attribute__((always_inline)) void deq_block_q5_0(const dc_block_q5_0 *b, float *restrict y)
{
    const float d = dcq_h2f(b->d);
    uint32_t qh;
    memcpy(&qh, b->qh, sizeof qh);
#pragma omp simd
    for (int j = 0; j < QK / 2; j++) {
        const int32_t x0 = (int32_t)((b->qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10)) - 16;
        const int32_t x1 = (int32_t)((b->qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
        y[j] = (float)x0 * d;
        y[j + QK / 2] = (float)x1 * d;
    }
}

DCQ_DEFINE_DEQ_DOT(q5_0, QK, dc_block_q5_0)

void dc_dequantize_row_q5_1_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_q5_1 *x = vx;
    for (int64_t i = 0; i < k / QK; i++) {
        const float d = dcq_h2f(x[i].d), m = dcq_h2f(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof qh);
        for (int j = 0; j < QK / 2; j++) {
            const uint8_t xh_0 = (uint8_t)(((qh >> (j + 0)) << 4) & 0x10);
            const uint8_t xh_1 = (uint8_t)(((qh >> (j + 12))) & 0x10);
            const int x0 = (x[i].qs[j] & 0x0F) | xh_0;
            const int x1 = (x[i].qs[j] >> 4) | xh_1;
            y[i * QK + j] = (float)x0 * d + m;
            y[i * QK + j + QK / 2] = (float)x1 * d + m;
        }
    }
}

static inline __attribute__((always_inline)) void deq_block_q5_1(const dc_block_q5_1 *b, float *restrict y)
{
    const float d = dcq_h2f(b->d), m = dcq_h2f(b->m);
    uint32_t qh;
    memcpy(&qh, b->qh, sizeof qh);
#pragma omp simd
    for (int j = 0; j < QK / 2; j++) {
        const int x0 = (int)((b->qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10));
        const int x1 = (int)((b->qs[j] >> 4) | ((qh >> (j + 12)) & 0x10));
        y[j] = (float)x0 * d + m;
        y[j + QK / 2] = (float)x1 * d + m;
    }
}

DCQ_DEFINE_DEQ_DOT(q5_1, QK, dc_block_q5_1)

void dc_dequantize_row_q8_0_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_q8_0 *x = vx;
    for (int64_t i = 0; i < k / QK; i++) {
        const float d = dcq_h2f(x[i].d);
        for (int j = 0; j < QK; j++)
            y[i * QK + j] = (float)x[i].qs[j] * d;
    }
}

static inline __attribute__((always_inline)) void deq_block_q8_0(const dc_block_q8_0 *b, float *restrict y)
{
    const float d = dcq_h2f(b->d);
#pragma omp simd
    for (int j = 0; j < QK; j++)
        y[j] = (float)b->qs[j] * d;
}

DCQ_DEFINE_DEQ_DOT(q8_0, QK, dc_block_q8_0)

void dc_dequantize_row_mxfp4_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_mxfp4 *x = vx;
    for (int64_t i = 0; i < k / QK; i++) {
        const float d = dcq_e8m0_half(x[i].e);
        for (int j = 0; j < QK / 2; j++) {
            y[i * QK + j] = (float)dcq_kvalues_mxfp4[x[i].qs[j] & 0x0F] * d;
            y[i * QK + j + QK / 2] = (float)dcq_kvalues_mxfp4[x[i].qs[j] >> 4] * d;
        }
    }
}

static inline __attribute__((always_inline)) void deq_block_mxfp4(const dc_block_mxfp4 *b, float *restrict y)
{
    const float d = dcq_e8m0_half(b->e);
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (float)dcq_kvalues_mxfp4[b->qs[j] & 0x0F] * d;
        y[j + QK / 2] = (float)dcq_kvalues_mxfp4[b->qs[j] >> 4] * d;
    }
}

DCQ_DEFINE_DEQ_DOT(mxfp4, QK, dc_block_mxfp4)

#undef QK
#define QK DC_QK_K

/* ================================================================================================
 * K-quants Q2_K..Q6_K, Q8_K, ternary TQ1_0 / TQ2_0 (super-blocks of 256)
 * ================================================================================================ */

void dc_dequantize_row_q2_K_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_q2_K *x = vx;
    const int64_t nb = k / QK;
    for (int64_t i = 0; i < nb; i++) {
        const float d = dcq_h2f(x[i].d), min = dcq_h2f(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int n = 0; n < QK; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; j++) {
                uint8_t sc = x[i].scales[is++];
                float dl = d * (float)(sc & 0xF), ml = min * (float)(sc >> 4);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * (float)((q[l] >> shift) & 3) - ml;
                sc = x[i].scales[is++];
                dl = d * (float)(sc & 0xF);
                ml = min * (float)(sc >> 4);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * (float)((q[l + 16] >> shift) & 3) - ml;
                shift += 2;
            }
            q += 32;
        }
    }
}

static inline __attribute__((always_inline)) void deq_block_q2_K(const dc_block_q2_K *b, float *restrict y)
{
    const float d = dcq_h2f(b->d), min = dcq_h2f(b->dmin);
    for (int h = 0; h < 2; h++) {
        const uint8_t *q = b->qs + 32 * h;
        for (int j = 0; j < 4; j++) {
            const int shift = 2 * j;
            for (int half = 0; half < 2; half++) {
                const uint8_t sc = b->scales[8 * h + 2 * j + half];
                const float dl = d * (float)(sc & 0xF), ml = min * (float)(sc >> 4);
                float *yo = y + 128 * h + 32 * j + 16 * half;
                const uint8_t *qq = q + 16 * half;
#pragma omp simd
                for (int l = 0; l < 16; l++)
                    yo[l] = dl * (float)((qq[l] >> shift) & 3) - ml;
            }
        }
    }
}

DCQ_DEFINE_DEQ_DOT(q2_K, QK, dc_block_q2_K)

/* the 16 scales (biased by 32) of a Q3_K block */
static inline __attribute__((always_inline)) void q3_K_scales(const uint8_t *s, int8_t *out)
{
    for (int j = 0; j < 16; j++)
        out[j] = (int8_t)((j < 8 ? s[j] & 0xF : s[j - 8] >> 4) | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4));
}

void dc_dequantize_row_q3_K_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_q3_K *x = vx;
    const int64_t nb = k / QK;
    int8_t scales[16];
    for (int64_t i = 0; i < nb; i++) {
        const float d_all = dcq_h2f(x[i].d);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        uint8_t m = 1;
        q3_K_scales(x[i].scales, scales);
        int is = 0;
        for (int n = 0; n < QK; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; j++) {
                float dl = d_all * (float)(scales[is++] - 32);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * (float)((int8_t)((q[l + 0] >> shift) & 3) - ((hm[l + 0] & m) ? 0 : 4));
                dl = d_all * (float)(scales[is++] - 32);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * (float)((int8_t)((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
                shift += 2;
                m = (uint8_t)(m << 1);
            }
            q += 32;
        }
    }
}

static inline __attribute__((always_inline)) void deq_block_q3_K(const dc_block_q3_K *b, float *restrict y)
{
    const float d_all = dcq_h2f(b->d);
    int8_t scales[16];
    q3_K_scales(b->scales, scales);
    for (int h = 0; h < 2; h++) {
        const uint8_t *q = b->qs + 32 * h;
        for (int j = 0; j < 4; j++) {
            const int shift = 2 * j;
            const uint8_t m = (uint8_t)(1u << (4 * h + j));
            for (int half = 0; half < 2; half++) {
                const float dl = d_all * (float)(scales[8 * h + 2 * j + half] - 32);
                const uint8_t *qq = q + 16 * half, *hh = b->hmask + 16 * half;
                float *yo = y + 128 * h + 32 * j + 16 * half;
#pragma omp simd
                for (int l = 0; l < 16; l++)
                    yo[l] = dl * (float)(((qq[l] >> shift) & 3) - ((hh[l] & m) ? 0 : 4));
            }
        }
    }
}

DCQ_DEFINE_DEQ_DOT(q3_K, QK, dc_block_q3_K)

void dc_dequantize_row_q4_K_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_q4_K *x = vx;
    for (int64_t i = 0; i < k / QK; i++) {
        const uint8_t *q = x[i].qs;
        const float d = dcq_h2f(x[i].d), min = dcq_h2f(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        for (int j = 0; j < QK; j += 64) {
            dcq_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            dcq_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = min * (float)m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)(q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

static inline __attribute__((always_inline)) void deq_block_q4_K(const dc_block_q4_K *b, float *restrict y)
{
    const float d = dcq_h2f(b->d), min = dcq_h2f(b->dmin);
    for (int j = 0; j < 4; j++) {
        uint8_t sc, m;
        dcq_scale_min_k4(2 * j, b->scales, &sc, &m);
        const float d1 = d * (float)sc, m1 = min * (float)m;
        dcq_scale_min_k4(2 * j + 1, b->scales, &sc, &m);
        const float d2 = d * (float)sc, m2 = min * (float)m;
        const uint8_t *q = b->qs + 32 * j;
        float *yo = y + 64 * j;
#pragma omp simd
        for (int l = 0; l < 32; l++) {
            yo[l] = d1 * (float)(q[l] & 0xF) - m1;
            yo[l + 32] = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

DCQ_DEFINE_DEQ_DOT(q4_K, QK, dc_block_q4_K)

void dc_dequantize_row_q5_K_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_q5_K *x = vx;
    for (int64_t i = 0; i < k / QK; i++) {
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        const float d = dcq_h2f(x[i].d), min = dcq_h2f(x[i].dmin);
        int is = 0;
        uint8_t sc, m, u1 = 1, u2 = 2;
        for (int j = 0; j < QK; j += 64) {
            dcq_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            dcq_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = min * (float)m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

static inline __attribute__((always_inline)) void deq_block_q5_K(const dc_block_q5_K *b, float *restrict y)
{
    const float d = dcq_h2f(b->d), min = dcq_h2f(b->dmin);
    for (int j = 0; j < 4; j++) {
        uint8_t sc, m;
        dcq_scale_min_k4(2 * j, b->scales, &sc, &m);
        const float d1 = d * (float)sc, m1 = min * (float)m;
        dcq_scale_min_k4(2 * j + 1, b->scales, &sc, &m);
        const float d2 = d * (float)sc, m2 = min * (float)m;
        const uint8_t *ql = b->qs + 32 * j, *qh = b->qh;
        const int s1 = 2 * j, s2 = 2 * j + 1;
        float *yo = y + 64 * j;
#pragma omp simd
        for (int l = 0; l < 32; l++) {
            yo[l] = d1 * (float)((ql[l] & 0xF) | (((qh[l] >> s1) & 1) << 4)) - m1;
            yo[l + 32] = d2 * (float)((ql[l] >> 4) | (((qh[l] >> s2) & 1) << 4)) - m2;
        }
    }
}

DCQ_DEFINE_DEQ_DOT(q5_K, QK, dc_block_q5_K)

void dc_dequantize_row_q6_K_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_q6_K *x = vx;
    for (int64_t i = 0; i < k / QK; i++) {
        const float d = dcq_h2f(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < QK; n += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                const int8_t q1 = (int8_t)((int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                const int8_t q2 = (int8_t)((int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                const int8_t q3 = (int8_t)((int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                const int8_t q4 = (int8_t)((int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
                y[l + 0] = d * (float)sc[is + 0] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

static inline __attribute__((always_inline)) void deq_block_q6_K(const dc_block_q6_K *b, float *restrict y)
{
    const float d = dcq_h2f(b->d);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        const int8_t *sc = b->scales + 8 * h;
        float *yo = y + 128 * h;
        for (int half = 0; half < 2; half++) {
            const float d1 = d * (float)sc[half + 0], d2 = d * (float)sc[half + 2];
            const float d3 = d * (float)sc[half + 4], d4 = d * (float)sc[half + 6];
#pragma omp simd
            for (int l = 16 * half; l < 16 * half + 16; l++) {
                yo[l + 0] = d1 * (float)(((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                yo[l + 32] = d2 * (float)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                yo[l + 64] = d3 * (float)(((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                yo[l + 96] = d4 * (float)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
    }
}

DCQ_DEFINE_DEQ_DOT(q6_K, QK, dc_block_q6_K)

void dc_dequantize_row_q8_K_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_q8_K *x = vx;
    for (int64_t i = 0; i < k / QK; i++)
        for (int j = 0; j < QK; j++)
            *y++ = x[i].d * (float)x[i].qs[j];
}

static inline __attribute__((always_inline)) void deq_block_q8_K(const dc_block_q8_K *b, float *restrict y)
{
    const float d = b->d;
#pragma omp simd
    for (int j = 0; j < QK; j++)
        y[j] = d * (float)b->qs[j];
}

DCQ_DEFINE_DEQ_DOT(q8_K, QK, dc_block_q8_K)

static const uint8_t pow3[6] = {1, 3, 9, 27, 81, 243};

static inline float tq1_val(uint8_t byte, int n, float d)
{
    uint8_t q = (uint8_t)(byte * pow3[n]);
    int16_t xi = (int16_t)(((uint16_t)q * 3) >> 8);
    return (float)(xi - 1) * d;
}

void dc_dequantize_row_tq1_0_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_tq1_0 *x = vx;
    for (int64_t i = 0; i < k / QK; i++) {
        const float d = dcq_h2f(x[i].d);
        for (int n = 0; n < 5; n++)
            for (int m = 0; m < 32; m++)
                *y++ = tq1_val(x[i].qs[m], n, d);
        for (int n = 0; n < 5; n++)
            for (int m = 0; m < 16; m++)
                *y++ = tq1_val(x[i].qs[32 + m], n, d);
        for (int n = 0; n < 4; n++)
            for (int j = 0; j < 4; j++)
                *y++ = tq1_val(x[i].qh[j], n, d);
    }
}

static inline __attribute__((always_inline)) void deq_block_tq1_0(const dc_block_tq1_0 *b, float *restrict y)
{
    const float d = dcq_h2f(b->d);
    for (int n = 0; n < 5; n++) {
        const uint8_t p = pow3[n];
#pragma omp simd
        for (int m = 0; m < 32; m++)
            y[32 * n + m] = (float)(((((uint8_t)(b->qs[m] * p)) * 3) >> 8) - 1) * d;
    }
    for (int n = 0; n < 5; n++) {
        const uint8_t p = pow3[n];
#pragma omp simd
        for (int m = 0; m < 16; m++)
            y[160 + 16 * n + m] = (float)(((((uint8_t)(b->qs[32 + m] * p)) * 3) >> 8) - 1) * d;
    }
    for (int n = 0; n < 4; n++)
        for (int j = 0; j < 4; j++)
            y[240 + 4 * n + j] = tq1_val(b->qh[j], n, d);
}

DCQ_DEFINE_DEQ_DOT(tq1_0, QK, dc_block_tq1_0)

void dc_dequantize_row_tq2_0_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_tq2_0 *x = vx;
    for (int64_t i = 0; i < k / QK; i++) {
        const float d = dcq_h2f(x[i].d);
        for (int j = 0; j < 64; j += 32)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++) {
                    int8_t q = (int8_t)((x[i].qs[j + m] >> (l * 2)) & 3);
                    *y++ = (float)(q - 1) * d;
                }
    }
}

static inline __attribute__((always_inline)) void deq_block_tq2_0(const dc_block_tq2_0 *b, float *restrict y)
{
    const float d = dcq_h2f(b->d);
    for (int j = 0; j < 2; j++)
        for (int l = 0; l < 4; l++) {
#pragma omp simd
            for (int m = 0; m < 32; m++)
                y[128 * j + 32 * l + m] = (float)(((b->qs[32 * j + m] >> (2 * l)) & 3) - 1) * d;
        }
}

DCQ_DEFINE_DEQ_DOT(tq2_0, QK, dc_block_tq2_0)

#undef QK

const int8_t dcq_kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* ================================================================================================
 * IQ4_NL (blocks of 32) and IQ4_XS (super-blocks of 256): non-linear 4-bit levels
 * ================================================================================================ */

void dc_dequantize_row_iq4_nl_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_iq4_nl *x = vx;
    for (int64_t i = 0; i < k / 32; i++, y += 32) {
        const uint8_t *qs = x[i].qs;
        const float d = dcq_h2f(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[j + 0] = d * (float)dcq_kvalues_iq4nl[qs[j] & 0xf];
            y[j + 16] = d * (float)dcq_kvalues_iq4nl[qs[j] >> 4];
        }
    }
}

static inline __attribute__((always_inline)) void deq_block_iq4_nl(const dc_block_iq4_nl *b, float *restrict y)
{
    const float d = dcq_h2f(b->d);
    for (int j = 0; j < 16; j++) {
        y[j + 0] = d * (float)dcq_kvalues_iq4nl[b->qs[j] & 0xf];
        y[j + 16] = d * (float)dcq_kvalues_iq4nl[b->qs[j] >> 4];
    }
}

DCQ_DEFINE_DEQ_DOT(iq4_nl, 32, dc_block_iq4_nl)

void dc_dequantize_row_iq4_xs_ref(const void *vx, float *y, int64_t k)
{
    const dc_block_iq4_xs *x = vx;
    for (int64_t i = 0; i < k / DC_QK_K; i++) {
        const uint8_t *qs = x[i].qs;
        const float d = dcq_h2f(x[i].d);
        for (int ib = 0; ib < DC_QK_K / 32; ib++) {
            const int ls = ((x[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((x[i].scales_h >> 2 * ib) & 3) << 4);
            const float dl = d * (float)(ls - 32);
            for (int j = 0; j < 16; j++) {
                y[j + 0] = dl * (float)dcq_kvalues_iq4nl[qs[j] & 0xf];
                y[j + 16] = dl * (float)dcq_kvalues_iq4nl[qs[j] >> 4];
            }
            y += 32;
            qs += 16;
        }
    }
}

static inline __attribute__((always_inline)) void deq_block_iq4_xs(const dc_block_iq4_xs *b, float *restrict y)
{
    const float d = dcq_h2f(b->d);
    const unsigned sh = b->scales_h;
    for (int ib = 0; ib < DC_QK_K / 32; ib++) {
        const int ls = ((b->scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (int)(((sh >> 2 * ib) & 3) << 4);
        const float dl = d * (float)(ls - 32);
        const uint8_t *qs = b->qs + 16 * ib;
        float *yo = y + 32 * ib;
        for (int j = 0; j < 16; j++) {
            yo[j + 0] = dl * (float)dcq_kvalues_iq4nl[qs[j] & 0xf];
            yo[j + 16] = dl * (float)dcq_kvalues_iq4nl[qs[j] >> 4];
        }
    }
}

DCQ_DEFINE_DEQ_DOT(iq4_xs, DC_QK_K, dc_block_iq4_xs)
