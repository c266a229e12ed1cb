/* Legacy ggml quants (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0: blocks of 32, f16 scale), MXFP4 (E8M0 scale,
 * E2M1 values), the traits table and the whole-tensor entry point dc_quantize_rows. */
#include "dc_quants_impl.h"
#include <float.h>
#include <omp.h>
#include <strings.h>

#define QK 32

uint16_t dc_quants_f32_to_f16(float f) { return dcq_f2h(f); }
float dc_quants_f16_to_f32(uint16_t h) { return dcq_h2f(h); }

/* first value of largest magnitude (ggml's "max" of the symmetric quants) */
static inline float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        const float v = x[j];
        if (amax < fabsf(v)) {
            amax = fabsf(v);
            max = v;
        }
    }
    return max;
}

static inline void minmax(const float *x, int n, float *mn, float *mx)
{
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        const float v = x[j];
        if (v < min)
            min = v;
        if (v > max)
            max = v;
    }
    *mn = min;
    *mx = max;
}

/* the quantizers' float -> int8 casts, as x86 performs them */
static inline int8_t cast_i8(float f) { return (int8_t)dcq_cvtt(f); }

/* (int32_t)roundf(v) as x86 converts it (INT32_MIN when NaN or out of range), without the libm
 * call: v - trunc(v) is exact in binary32, so the half-away-from-zero step is exact too; beyond
 * 2^23 every float is an integer and the fraction is 0. */
static inline int32_t cvt_roundf(float v)
{
    int32_t i = dcq_cvtt(v);
    if (i == INT32_MIN)
        return i;
    float f = v - (float)i;
    return i + (f >= 0.5f) - (f <= -0.5f);
}

/* Weighted variants share this shape: sigma2 = mean of x^2 over the whole row, per-block weights
 * qw * sqrt(sigma2 + x^2). */
static float row_sigma2(const float *x, int64_t n)
{
    float sum_x2 = 0;
    for (int64_t j = 0; j < n; j++)
        sum_x2 += x[j] * x[j];
    return sum_x2 / (float)n;
}

static void block_weights(const float *xb, const float *qw, float sigma2, float *weight)
{
    for (int j = 0; j < QK; j++)
        weight[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
}

/* Row by row with the imatrix (impl), else the reference over everything, as ggml's quantize_T. */
#define DCQ_DEFINE_QUANTIZE_LEGACY(T, BLOCK_T)                                                     \
    size_t dc_quantize_##T(const float *src, void *dst, int64_t nrows, int64_t n_per_row,          \
                           const float *imatrix)                                                   \
    {                                                                                              \
        size_t row_size = (size_t)(n_per_row / QK) * sizeof(BLOCK_T);                              \
        if (!imatrix) {                                                                            \
            dc_quantize_row_##T##_ref(src, dst, nrows * n_per_row);                                \
        } else {                                                                                   \
            char *qrow = dst;                                                                      \
            for (int64_t r = 0; r < nrows; r++, src += n_per_row, qrow += row_size)                \
                quantize_row_##T##_impl(src, (BLOCK_T *)(void *)qrow, n_per_row, imatrix);         \
        }                                                                                          \
        return (size_t)nrows * row_size;                                                           \
    }

/* ================================================================================================
 * Q4_0: x = d*(q-8)
 * ================================================================================================ */

void dc_quantize_row_q4_0_ref(const float *x, void *vy, int64_t k)
{
    dc_block_q4_0 *y = vy;
    for (int64_t i = 0; i < k / QK; i++, x += QK) {
        const float max = signed_absmax(x, QK);
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = dcq_f2h(d);
        for (int j = 0; j < QK / 2; j++) {
            const uint8_t xi0 = (uint8_t)DCQ_MIN(15, cast_i8(x[j] * id + 8.5f));
            const uint8_t xi1 = (uint8_t)DCQ_MIN(15, cast_i8(x[QK / 2 + j] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

static void quantize_row_q4_0_impl(const float *x, dc_block_q4_0 *y, int64_t n_per_row, const float *qw)
{
    float weight[QK];
    int8_t L[QK];
    const float sigma2 = row_sigma2(x, n_per_row);
    for (int64_t ib = 0; ib < n_per_row / QK; ib++) {
        const float *xb = x + QK * ib;
        block_weights(xb, qw + QK * ib, sigma2, weight);
        float d = dcq_make_qx_quants(QK, 8, xb, L, 1, weight);
        y[ib].d = dcq_f2h(d);
        for (int j = 0; j < 16; j++)
            y[ib].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
    }
}
DCQ_DEFINE_QUANTIZE_LEGACY(q4_0, dc_block_q4_0)

/* ================================================================================================
 * Q4_1: x = d*q + m
 * ================================================================================================ */

void dc_quantize_row_q4_1_ref(const float *x, void *vy, int64_t k)
{
    dc_block_q4_1 *y = vy;
    for (int64_t i = 0; i < k / QK; i++, x += QK) {
        float min, max;
        minmax(x, QK, &min, &max);
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = dcq_f2h(d);
        y[i].m = dcq_f2h(min);
        for (int j = 0; j < QK / 2; j++) {
            const uint8_t xi0 = (uint8_t)DCQ_MIN(15, cast_i8((x[j] - min) * id + 0.5f));
            const uint8_t xi1 = (uint8_t)DCQ_MIN(15, cast_i8((x[QK / 2 + j] - min) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

static void quantize_row_q4_1_impl(const float *x, dc_block_q4_1 *y, int64_t n_per_row, const float *qw)
{
    float weight[QK];
    uint8_t L[QK], Laux[QK];
    const float sigma2 = row_sigma2(x, n_per_row);
    for (int64_t ib = 0; ib < n_per_row / QK; ib++) {
        const float *xb = x + QK * ib;
        block_weights(xb, qw + QK * ib, sigma2, weight);
        float min;
        float d = dcq_make_qkx3_quants(QK, 15, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36, false);
        y[ib].d = dcq_f2h(d);
        y[ib].m = dcq_f2h(-min);
        for (int j = 0; j < 16; j++)
            y[ib].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
    }
}
DCQ_DEFINE_QUANTIZE_LEGACY(q4_1, dc_block_q4_1)

/* ================================================================================================
 * Q5_0: x = d*(q-16), q's fifth bits in qh
 * ================================================================================================ */

static void put_q5(uint8_t *qs, uint8_t qh_out[4], const uint8_t *lo, const uint8_t *hi)
{
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((lo[j] & 0x0F) | ((hi[j] & 0x0F) << 4));
        qh |= ((lo[j] & 0x10u) >> 4) << (j + 0);
        qh |= ((hi[j] & 0x10u) >> 4) << (j + 16);
    }
    memcpy(qh_out, &qh, 4);
}

void dc_quantize_row_q5_0_ref(const float *x, void *vy, int64_t k)
{
    dc_block_q5_0 *y = vy;
    uint8_t lo[16], hi[16];
    for (int64_t i = 0; i < k / QK; i++, x += QK) {
        const float max = signed_absmax(x, QK);
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = dcq_f2h(d);
        for (int j = 0; j < QK / 2; j++) {
            lo[j] = (uint8_t)DCQ_MIN(31, cast_i8(x[j] * id + 16.5f));
            hi[j] = (uint8_t)DCQ_MIN(31, cast_i8(x[QK / 2 + j] * id + 16.5f));
        }
        put_q5(y[i].qs, y[i].qh, lo, hi);
    }
}

static void quantize_row_q5_0_impl(const float *x, dc_block_q5_0 *y, int64_t n_per_row, const float *qw)
{
    float weight[QK];
    int8_t L[QK];
    const float sigma2 = row_sigma2(x, n_per_row);
    for (int64_t ib = 0; ib < n_per_row / QK; ib++) {
        const float *xb = x + QK * ib;
        block_weights(xb, qw + QK * ib, sigma2, weight);
        float d = dcq_make_qx_quants(QK, 16, xb, L, 1, weight);
        y[ib].d = dcq_f2h(d);
        put_q5(y[ib].qs, y[ib].qh, (const uint8_t *)L, (const uint8_t *)L + 16);
    }
}
DCQ_DEFINE_QUANTIZE_LEGACY(q5_0, dc_block_q5_0)

/* ================================================================================================
 * Q5_1: x = d*q + m
 * ================================================================================================ */

void dc_quantize_row_q5_1_ref(const float *x, void *vy, int64_t k)
{
    dc_block_q5_1 *y = vy;
    uint8_t lo[16], hi[16];
    for (int64_t i = 0; i < k / QK; i++, x += QK) {
        float min, max;
        minmax(x, QK, &min, &max);
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = dcq_f2h(d);
        y[i].m = dcq_f2h(min);
        for (int j = 0; j < QK / 2; j++) {
            lo[j] = (uint8_t)dcq_cvtt((x[j] - min) * id + 0.5f);
            hi[j] = (uint8_t)dcq_cvtt((x[QK / 2 + j] - min) * id + 0.5f);
        }
        put_q5(y[i].qs, y[i].qh, lo, hi);
    }
}

static void quantize_row_q5_1_impl(const float *x, dc_block_q5_1 *y, int64_t n_per_row, const float *qw)
{
    float weight[QK];
    uint8_t L[QK], Laux[QK];
    const float sigma2 = row_sigma2(x, n_per_row);
    for (int64_t ib = 0; ib < n_per_row / QK; ib++) {
        const float *xb = x + QK * ib;
        block_weights(xb, qw + QK * ib, sigma2, weight);
        float min;
        float d = dcq_make_qkx3_quants(QK, 31, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36, false);
        y[ib].d = dcq_f2h(d);
        y[ib].m = dcq_f2h(-min);
        put_q5(y[ib].qs, y[ib].qh, L, L + 16);
    }
}
DCQ_DEFINE_QUANTIZE_LEGACY(q5_1, dc_block_q5_1)

/* ================================================================================================
 * Q8_0: x = d*q
 * ================================================================================================ */

void dc_quantize_row_q8_0_ref(const float *x, void *vy, int64_t k)
{
    dc_block_q8_0 *y = vy;
    for (int64_t i = 0; i < k / QK; i++, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++)
            amax = DCQ_MAX(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = dcq_f2h(d);
        for (int j = 0; j < QK; j++)
            y[i].qs[j] = (int8_t)cvt_roundf(x[j] * id); /* ggml: roundf, then the cast */
    }
}

size_t dc_quantize_q8_0(const float *src, void *dst, int64_t nrows, int64_t n_per_row, const float *imatrix)
{
    (void)imatrix; /* ggml ignores it */
    if (dcq_x8_enabled()) /* AVX2, same bytes */
        dcq_q8_0_x8(src, dst, nrows * n_per_row / QK);
    else
        dc_quantize_row_q8_0_ref(src, dst, nrows * n_per_row);
    return (size_t)nrows * (size_t)(n_per_row / QK) * sizeof(dc_block_q8_0);
}

/* ================================================================================================
 * MXFP4: x = 2^(e-127) * e2m1(q) (values stored doubled, scale halved)
 * ================================================================================================ */

static inline int best_index_mxfp4(float x, float e)
{
    int best_index = 0;
    float best_err = fabsf((float)dcq_kvalues_mxfp4[0] * e - x);
    for (int i = 1; i < 16; i++) {
        float err = fabsf((float)dcq_kvalues_mxfp4[i] * e - x);
        if (err < best_err) {
            best_index = i;
            best_err = err;
        }
    }
    return best_index;
}

void dc_quantize_row_mxfp4_ref(const float *x, void *vy, int64_t k)
{
    dc_block_mxfp4 *y = vy;
    for (int64_t i = 0; i < k / QK; i++, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++)
            if (amax < fabsf(x[j]))
                amax = fabsf(x[j]);
        const uint8_t e = amax > 0.0f ? (uint8_t)dcq_cvtt(floorf(log2f(amax)) - 2 + 127) : 0;
        const float d = dcq_e8m0_half(e);
        y[i].e = e;
        for (int j = 0; j < QK / 2; j++) {
            const int x0 = best_index_mxfp4(x[j], d), x1 = best_index_mxfp4(x[QK / 2 + j], d);
            y[i].qs[j] = (uint8_t)(x0 | (x1 << 4));
        }
    }
}

size_t dc_quantize_mxfp4(const float *src, void *dst, int64_t nrows, int64_t n_per_row, const float *imatrix)
{
    (void)imatrix; /* ggml ignores it */
    dc_quantize_row_mxfp4_ref(src, dst, nrows * n_per_row);
    return (size_t)nrows * (size_t)(n_per_row / QK) * sizeof(dc_block_mxfp4);
}

/* ================================================================================================
 * Traits lookup and the whole-tensor entry point
 * ================================================================================================ */

/* in ggml id order */
static const dc_qtype_traits qtypes[] = {
    DCQ_TRAITS_ENTRY(q4_0, DC_QT_Q4_0, "q4_0", QK, dc_block_q4_0),
    DCQ_TRAITS_ENTRY(q4_1, DC_QT_Q4_1, "q4_1", QK, dc_block_q4_1),
    DCQ_TRAITS_ENTRY(q5_0, DC_QT_Q5_0, "q5_0", QK, dc_block_q5_0),
    DCQ_TRAITS_ENTRY(q5_1, DC_QT_Q5_1, "q5_1", QK, dc_block_q5_1),
    DCQ_TRAITS_ENTRY(q8_0, DC_QT_Q8_0, "q8_0", QK, dc_block_q8_0),
    DCQ_TRAITS_ENTRY(q2_K, DC_QT_Q2_K, "q2_K", DC_QK_K, dc_block_q2_K),
    DCQ_TRAITS_ENTRY(q3_K, DC_QT_Q3_K, "q3_K", DC_QK_K, dc_block_q3_K),
    DCQ_TRAITS_ENTRY(q4_K, DC_QT_Q4_K, "q4_K", DC_QK_K, dc_block_q4_K),
    DCQ_TRAITS_ENTRY(q5_K, DC_QT_Q5_K, "q5_K", DC_QK_K, dc_block_q5_K),
    DCQ_TRAITS_ENTRY(q6_K, DC_QT_Q6_K, "q6_K", DC_QK_K, dc_block_q6_K),
    DCQ_TRAITS_ENTRY(q8_K, DC_QT_Q8_K, "q8_K", DC_QK_K, dc_block_q8_K),
    DCQ_TRAITS_ENTRY(iq4_nl, DC_QT_IQ4_NL, "iq4_nl", 32, dc_block_iq4_nl),
    DCQ_TRAITS_ENTRY(iq4_xs, DC_QT_IQ4_XS, "iq4_xs", DC_QK_K, dc_block_iq4_xs),
    DCQ_TRAITS_ENTRY(tq1_0, DC_QT_TQ1_0, "tq1_0", DC_QK_K, dc_block_tq1_0),
    DCQ_TRAITS_ENTRY(tq2_0, DC_QT_TQ2_0, "tq2_0", DC_QK_K, dc_block_tq2_0),
    DCQ_TRAITS_ENTRY(mxfp4, DC_QT_MXFP4, "mxfp4", QK, dc_block_mxfp4),
};
#define DCQ_NTYPES ((int)(sizeof qtypes / sizeof qtypes[0]))

const dc_qtype_traits *dc_qtype_all(int *n)
{
    if (n)
        *n = DCQ_NTYPES;
    return qtypes;
}

const dc_qtype_traits *dc_qtype_by_id(int ggml_type)
{
    for (int i = 0; i < DCQ_NTYPES; i++)
        if ((int)qtypes[i].type == ggml_type)
            return &qtypes[i];
    return NULL;
}

const dc_qtype_traits *dc_qtype_find(const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; i < DCQ_NTYPES; i++)
        if (strcasecmp(qtypes[i].name, name) == 0)
            return &qtypes[i];
    return NULL;
}

size_t dc_qtype_row_size(const dc_qtype_traits *t, int64_t n_per_row)
{
    if (!t || n_per_row <= 0 || n_per_row % t->blck_size)
        return 0;
    return (size_t)(n_per_row / t->blck_size) * (size_t)t->type_size;
}

size_t dc_quantize_rows(dc_qtype type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                        const float *imatrix)
{
    const dc_qtype_traits *t = dc_qtype_by_id((int)type);
    size_t row_size = dc_qtype_row_size(t, n_per_row);
    if (!row_size || nrows < 0 || (t->requires_imatrix && !imatrix))
        return 0;
    /* rows are independent in every quantizer here, so any split gives the same bytes; chunks of
     * about 64K elements keep the per-task overhead small */
    int64_t rows_per_chunk = n_per_row >= 65536 ? 1 : 65536 / n_per_row;
    int64_t nchunks = (nrows + rows_per_chunk - 1) / rows_per_chunk;
#pragma omp parallel for schedule(dynamic, 1) if (nchunks > 1)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t r0 = c * rows_per_chunk;
        int64_t nr = nrows - r0 < rows_per_chunk ? nrows - r0 : rows_per_chunk;
        t->quantize_imatrix(src + r0 * n_per_row, (char *)dst + (size_t)r0 * row_size, nr, n_per_row, imatrix);
    }
    return (size_t)nrows * row_size;
}
