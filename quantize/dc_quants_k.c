/* K-quants (Q2_K Q3_K Q4_K Q5_K Q6_K, Q8_K) and the ternary TQ1_0 / TQ2_0: super-blocks of 256.
 *
 * The scale searches below evaluate the same single-precision expressions as ggml, in the same
 * order (products left to right, sums in index order), which is what makes the output
 * byte-identical; do not "simplify" an expression without re-running tests/test_quants. */
#include "dc_quants_impl.h"
#include <stdbool.h>

#define QK DC_QK_K

/* ================================================================================================
 * Scale searches
 * ================================================================================================ */

/* Symmetric quants L[i] in [0, 2*nmax) (stored with +nmax), minimising the weighted error
 * sum w*(x - scale*l)^2 over 19 trial scales around nmax/max; returns the scale. */
float dcq_make_qx_quants(int n, int nmax, const float *restrict x, int8_t *restrict L, int rmse_type,
                         const float *restrict qw)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < DCQ_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = (float)-nmax / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; i++) {
            int l = dcq_nearest_int(iscale * x[i]);
            L[i] = (int8_t)(nmax + DCQ_MAX(-nmax, DCQ_MIN(nmax - 1, l)));
        }
        return 1 / iscale;
    }
    bool return_early = false;
    if (rmse_type < 0) {
        rmse_type = -rmse_type;
        return_early = true;
    }
#define QX_WEIGHT(i)                                                                               \
    (qw ? qw[i] : rmse_type == 1 ? x[i] * x[i] : rmse_type == 2 ? 1.f : rmse_type == 3 ? fabsf(x[i]) \
                                                                                  : sqrtf(fabsf(x[i])))
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = dcq_nearest_int(iscale * x[i]);
        l = DCQ_MAX(-nmax, DCQ_MIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = QX_WEIGHT(i);
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    if (return_early)
        return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = dcq_nearest_int(iscale * x[i]);
            l = DCQ_MAX(-nmax, DCQ_MIN(nmax - 1, l));
            float w = QX_WEIGHT(i);
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = dcq_nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + DCQ_MAX(-nmax, DCQ_MIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
#undef QX_WEIGHT
    return scale;
}

/* Q3_K reference: symmetric quants, then up to 5 rounds of coordinate descent on each l. */
static float make_q3_quants(int n, int nmax, const float *restrict x, int8_t *restrict L, bool do_rmse)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < DCQ_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = (float)-nmax / max;
    if (do_rmse) {
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = dcq_nearest_int(iscale * x[i]);
            l = DCQ_MAX(-nmax, DCQ_MIN(nmax - 1, l));
            L[i] = (int8_t)l;
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        for (int itry = 0; itry < 5; itry++) {
            int n_changed = 0;
            for (int i = 0; i < n; i++) {
                float w = x[i] * x[i];
                float slx = sumlx - w * x[i] * (float)L[i];
                if (slx > 0) {
                    float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                    int new_l = dcq_nearest_int(x[i] * sl2 / slx);
                    new_l = DCQ_MAX(-nmax, DCQ_MIN(nmax - 1, new_l));
                    if (new_l != L[i]) {
                        slx += w * x[i] * (float)new_l;
                        sl2 += w * (float)new_l * (float)new_l;
                        if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                            L[i] = (int8_t)new_l;
                            sumlx = slx;
                            suml2 = sl2;
                            n_changed++;
                        }
                    }
                }
            }
            if (!n_changed)
                break;
        }
        for (int i = 0; i < n; i++)
            L[i] = (int8_t)(L[i] + nmax);
        return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
    }
    for (int i = 0; i < n; i++) {
        int l = dcq_nearest_int(iscale * x[i]);
        l = DCQ_MAX(-nmax, DCQ_MIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
    }
    return 1 / iscale;
}

/* Affine quants x ~ scale*l - min, l in [0, nmax], min >= 0: weighted least squares over
 * nstep+1 trial scales. weights == NULL (make_qkx3 only) means w = x^2. */
static inline __attribute__((always_inline)) float
make_qkx_quants(int n, int nmax, const float *restrict x, const float *restrict weights, uint8_t *restrict L,
                float *restrict the_min, uint8_t *restrict Laux, float rmin, float rdelta, int nstep,
                bool use_mad, bool v3)
{
#define KX_WEIGHT(i) (weights ? weights[i] : x[i] * x[i])
    float min = x[0], max = x[0];
    float sum_w = KX_WEIGHT(0);
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        float w = KX_WEIGHT(i);
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0)
        min = 0;
    if (v3 ? max <= min : max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = dcq_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)DCQ_MAX(0, DCQ_MIN(nmax, l));
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += KX_WEIGHT(i) * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = dcq_nearest_int(iscale * (x[i] - min));
            l = DCQ_MAX(0, DCQ_MIN(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = KX_WEIGHT(i);
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                err += KX_WEIGHT(i) * diff;
            }
            if (err < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
#undef KX_WEIGHT
}

static float make_qkx2_quants(int n, int nmax, const float *restrict x, const float *restrict weights,
                              uint8_t *restrict L, float *restrict the_min, uint8_t *restrict Laux, float rmin,
                              float rdelta, int nstep, bool use_mad)
{
    return make_qkx_quants(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, use_mad, false);
}

float dcq_make_qkx3_quants(int n, int nmax, const float *restrict x, const float *restrict weights,
                           uint8_t *restrict L, float *restrict the_min, uint8_t *restrict Laux, float rmin,
                           float rdelta, int nstep, bool use_mad)
{
    return make_qkx_quants(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, use_mad, true);
}

/* Positive values x (sub-block scales or mins) as l in [0, nmax] times a common scale, weighted by
 * quant_weights; 8 trial scales then coordinate descent. */
static float make_qp_quants(int n, int nmax, const float *restrict x, uint8_t *restrict L,
                            const float *restrict quant_weights)
{
    float max = 0;
    for (int i = 0; i < n; i++)
        max = DCQ_MAX(max, x[i]);
    if (max < DCQ_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = (float)nmax / max;
    for (int i = 0; i < n; i++)
        L[i] = (uint8_t)dcq_nearest_int(iscale * x[i]);
    float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * (float)L[i];
        best_mse += quant_weights[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0)
            continue;
        float iscale_is = (0.1f * (float)is + (float)nmax) / max;
        float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            int l = DCQ_MIN(nmax, dcq_nearest_int(iscale_is * x[i]));
            float diff = x[i] - scale_is * (float)l;
            mse += quant_weights[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = DCQ_MIN(nmax, dcq_nearest_int(iscale * x[i]));
        L[i] = (uint8_t)l;
        float w = quant_weights[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = quant_weights[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = DCQ_MIN(nmax, dcq_nearest_int(x[i] * sl2 / slx));
                if (new_l != L[i]) {
                    slx += w * x[i] * (float)new_l;
                    sl2 += w * (float)new_l * (float)new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed)
            break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* ggml's 2-bit packing of 256 values in [0, 3]: byte l of each 32-byte group holds four values
 * 32 apart */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int j = 0; j < QK; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/* Packs 8 6-bit scales and mins the Q4_K / Q5_K way. */
static void pack_scale_min_k4(uint8_t *scales, int j, uint8_t ls, uint8_t lm)
{
    if (j < 4) {
        scales[j] = ls;
        scales[j + 4] = lm;
    } else {
        scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
        scales[j - 0] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* ================================================================================================
 * Q2_K: 16 sub-blocks of 16, x = d*sc*q - dmin*m, 4-bit sc and m
 * ================================================================================================ */

static void q2_K_requant(dc_block_q2_K *y, const float *x, uint8_t *L, float dm, float mm)
{
    for (int j = 0; j < QK / 16; j++) {
        const float d = dm * (float)(y->scales[j] & 0xF);
        if (!d)
            continue;
        const float m = mm * (float)(y->scales[j] >> 4);
        for (int ii = 0; ii < 16; ii++) {
            int l = dcq_nearest_int((x[16 * j + ii] + m) / d);
            L[16 * j + ii] = (uint8_t)DCQ_MAX(0, DCQ_MIN(3, l));
        }
    }
    pack_2bit(L, y->qs);
}

void dc_quantize_row_q2_K_ref(const float *x, void *vy, int64_t k)
{
    dc_block_q2_K *y = vy;
    const int64_t nb = k / QK;
    uint8_t L[QK], Laux[16];
    float weights[QK], mins[QK / 16], scales[QK / 16];
    const float q4scale = 15.f;
    const bool x8 = dcq_x8_enabled();

    for (int64_t i = 0; i < nb; i++, x += QK) {
        float max_scale = 0, max_min = 0;
        for (int l = 0; l < QK; l++)
            weights[l] = fabsf(x[l]);
        if (x8) /* the 16 searches at once, same results */
            dcq_qkx16_x8x2(x, weights, 3, -0.5f, 0.1f, 15, false, true, L, scales, mins);
        for (int j = 0; j < QK / 16; j++) {
            if (!x8)
                scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights + 16 * j, L + 16 * j, &mins[j], Laux, -0.5f,
                                             0.1f, 15, true);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < QK / 16; j++)
                y[i].scales[j] = (uint8_t)dcq_nearest_int(iscale * scales[j]);
            y[i].d = dcq_f2h(max_scale / q4scale);
        } else {
            for (int j = 0; j < QK / 16; j++)
                y[i].scales[j] = 0;
            y[i].d = dcq_f2h(0.f);
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < QK / 16; j++)
                y[i].scales[j] |= (uint8_t)((unsigned)dcq_nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = dcq_f2h(max_min / q4scale);
        } else {
            y[i].dmin = dcq_f2h(0.f);
        }
        q2_K_requant(&y[i], x, L, dcq_h2f(y[i].d), dcq_h2f(y[i].dmin));
    }
}

static void quantize_row_q2_K_impl(const float *x, dc_block_q2_K *y, int64_t n_per_row, const float *qw_row)
{
    const int64_t nb = n_per_row / QK;
    uint8_t L[QK], Laux[16], Ls[QK / 16], Lm[QK / 16];
    float mins[QK / 16], scales[QK / 16], sw[QK / 16], weight[QK];
    const bool x8 = dcq_x8_enabled();

    for (int64_t i = 0; i < nb; i++, x += QK) {
        memset(sw, 0, sizeof sw);
        float sumx2 = 0;
        for (int j = 0; j < QK; j++)
            sumx2 += x[j] * x[j];
        float sigma2 = sumx2 / QK;
        for (int j = 0; j < QK / 16; j++) {
            const float *qw = qw_row + QK * i + 16 * j;
            float *wj = weight + 16 * j;
            for (int l = 0; l < 16; l++)
                wj[l] = qw[l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
            for (int l = 0; l < 16; l++)
                sw[j] += wj[l];
            if (!x8)
                scales[j] = dcq_make_qkx3_quants(16, 3, x + 16 * j, wj, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36,
                                                 false);
        }
        if (x8) /* the 16 searches at once, same results */
            dcq_qkx16_x8x2(x, weight, 3, -0.9f, 0.05f, 36, true, false, L, scales, mins);
        float dm = make_qp_quants(QK / 16, 15, scales, Ls, sw);
        float mm = make_qp_quants(QK / 16, 15, mins, Lm, sw);
        y[i].d = dcq_f2h(dm);
        y[i].dmin = dcq_f2h(mm);
        for (int j = 0; j < QK / 16; j++)
            y[i].scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
        q2_K_requant(&y[i], x, L, dcq_h2f(y[i].d), dcq_h2f(y[i].dmin));
    }
}

/* The imatrix paths of Q2_K..Q6_K, as ggml's quantize_qN_K: the reference over the whole tensor
 * without an imatrix, else the weighted quantizer row by row. */
#define DCQ_DEFINE_QUANTIZE_K(T, BLOCK_T)                                                          \
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
DCQ_DEFINE_QUANTIZE_K(q2_K, dc_block_q2_K)

/* ================================================================================================
 * Q3_K: 16 sub-blocks of 16, x = d*(sc-32)*(q-4), 6-bit sc, q's high bit in hmask
 * ================================================================================================ */

static void q3_K_finish(dc_block_q3_K *y, const float *x, int8_t *L)
{
    for (int j = 0; j < QK / 16; j++) {
        int8_t sc = (int8_t)(j < 8 ? y->scales[j] & 0xF : y->scales[j - 8] >> 4);
        sc = (int8_t)((sc | (((y->scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
        float d = dcq_h2f(y->d) * (float)sc;
        if (!d)
            continue;
        for (int ii = 0; ii < 16; ii++) {
            int l = dcq_nearest_int(x[16 * j + ii] / d);
            L[16 * j + ii] = (int8_t)(DCQ_MAX(-4, DCQ_MIN(3, l)) + 4);
        }
    }
    memset(y->hmask, 0, sizeof y->hmask);
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < QK; j++) {
        if (L[j] > 3) {
            y->hmask[m] |= hm;
            L[j] = (int8_t)(L[j] - 4);
        }
        if (++m == QK / 8) {
            m = 0;
            hm = (uint8_t)(hm << 1);
        }
    }
    pack_2bit((const uint8_t *)L, y->qs);
}

/* stores the 6-bit biased scale l (0..63) of sub-block j */
static void q3_K_put_scale(uint8_t *scales, int j, int l)
{
    if (j < 8)
        scales[j] = (uint8_t)(l & 0xF);
    else
        scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
    l >>= 4;
    scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
}

void dc_quantize_row_q3_K_ref(const float *x, void *vy, int64_t k)
{
    dc_block_q3_K *y = vy;
    const int64_t nb = k / QK;
    int8_t L[QK];
    float scales[QK / 16];

    for (int64_t i = 0; i < nb; i++, x += QK) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < QK / 16; j++) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
            float scale = fabsf(scales[j]);
            if (scale > amax) {
                amax = scale;
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, 12);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < QK / 16; j++) {
                int8_t l = (int8_t)dcq_nearest_int(iscale * scales[j]);
                l = (int8_t)(DCQ_MAX(-32, DCQ_MIN(31, l)) + 32);
                q3_K_put_scale(y[i].scales, j, l);
            }
            y[i].d = dcq_f2h(1 / iscale);
        } else {
            y[i].d = dcq_f2h(0.f);
        }
        q3_K_finish(&y[i], x, L);
    }
}

static void quantize_row_q3_K_impl(const float *x, dc_block_q3_K *y, int64_t n_per_row, const float *qw_row)
{
    const int64_t nb = n_per_row / QK;
    int8_t L[QK], Ls[QK / 16];
    float scales[QK / 16], weight[QK], sw[QK / 16];
    const bool x8 = dcq_x8_enabled();

    for (int64_t i = 0; i < nb; i++, x += QK) {
        float sumx2 = 0;
        for (int j = 0; j < QK; j++)
            sumx2 += x[j] * x[j];
        float sigma2 = 2 * sumx2 / QK;
        for (int j = 0; j < QK / 16; j++) {
            float *wj = weight + 16 * j;
            if (qw_row) {
                const float *qw = qw_row + QK * i + 16 * j;
                for (int l = 0; l < 16; l++)
                    wj[l] = qw[l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
            } else {
                for (int l = 0; l < 16; l++)
                    wj[l] = x[16 * j + l] * x[16 * j + l];
            }
            float sumw = 0;
            for (int l = 0; l < 16; l++)
                sumw += wj[l];
            sw[j] = sumw;
            if (!x8)
                scales[j] = dcq_make_qx_quants(16, 4, x + 16 * j, L + 16 * j, 1, wj);
        }
        if (x8) /* the 16 searches at once, same results */
            dcq_qx_x16(x, weight, 4, L, scales);
        memset(y[i].scales, 0, 12);
        float d_block = dcq_make_qx_quants(QK / 16, 32, scales, Ls, 1, sw);
        for (int j = 0; j < QK / 16; j++)
            q3_K_put_scale(y[i].scales, j, Ls[j]);
        y[i].d = dcq_f2h(d_block);
        q3_K_finish(&y[i], x, L);
    }
}
DCQ_DEFINE_QUANTIZE_K(q3_K, dc_block_q3_K)

/* ================================================================================================
 * Q4_K / Q5_K: 8 sub-blocks of 32, x = d*sc*q - dmin*m, 6-bit sc and m
 * ================================================================================================ */

/* where one super-block's scales go */
typedef struct {
    uint8_t *scales;
    dc_half *d, *dmin;
} qk45_dst;

/* the 8 sub-block searches of each of nb (1 or 2) consecutive super-blocks x[nb*QK] with weights
 * w[nb*QK]: make_qkx2 (v3 false) or make_qkx3, use_mad false. L[nb*QK], scales and mins[nb*8].
 * With AVX2, all 8 (or 16) at once in vector lanes (dc_quants_k_x8.c), same results. */
static void qk45_search(int nb, const float *x, const float *w, uint8_t *L, float *scales, float *mins, int nmax,
                        float rmin, float rdelta, int nstep, bool v3)
{
    if (dcq_x8_enabled()) {
        if (nb == 2)
            dcq_qkx_x8x2(x, w, x + QK, w + QK, nmax, rmin, rdelta, nstep, v3, L, L + QK, scales, scales + 8, mins,
                         mins + 8);
        else
            dcq_qkx_x8(x, w, nmax, rmin, rdelta, nstep, v3, L, scales, mins);
        return;
    }
    uint8_t Laux[32];
    for (int j = 0; j < nb * (QK / 32); j++) {
        if (v3)
            scales[j] = dcq_make_qkx3_quants(32, nmax, x + 32 * j, w + 32 * j, L + 32 * j, &mins[j], Laux, rmin,
                                             rdelta, nstep, false);
        else
            scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, w + 32 * j, L + 32 * j, &mins[j], Laux, rmin, rdelta,
                                         nstep, false);
    }
}

/* Q4_K/Q5_K reference, nb (1 or 2) super-blocks: per sub-block affine fit with weights av_x + |x|
 * (make_qkx2), then the 8 scales and mins on a 6-bit grid. */
static void qk45_ref_scales(int nb, const float *x, uint8_t *L, const qk45_dst *dst, int nmax, float rmin, int nstep)
{
    float weights[2 * QK], mins[2 * QK / 32], scales[2 * QK / 32];
    for (int j = 0; j < nb * (QK / 32); j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            weights[32 * j + l] = av_x + fabsf(x[32 * j + l]);
    }
    qk45_search(nb, x, weights, L, scales, mins, nmax, rmin, 0.1f, nstep, false);
    for (int b = 0; b < nb; b++) {
        const float *sc = scales + 8 * b, *mn = mins + 8 * b;
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < QK / 32; j++) {
            if (sc[j] > max_scale)
                max_scale = sc[j];
            if (mn[j] > max_min)
                max_min = mn[j];
        }
        float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < QK / 32; j++) {
            uint8_t ls = (uint8_t)dcq_nearest_int(inv_scale * sc[j]);
            uint8_t lm = (uint8_t)dcq_nearest_int(inv_min * mn[j]);
            pack_scale_min_k4(dst[b].scales, j, DCQ_MIN(63, ls), DCQ_MIN(63, lm));
        }
        *dst[b].d = dcq_f2h(max_scale / 63.f);
        *dst[b].dmin = dcq_f2h(max_min / 63.f);
    }
}

/* imatrix variant, nb (1 or 2) super-blocks: weights qw*sqrt(sigma2 + x^2) (or av_x + |x|),
 * make_qkx3 per sub-block, then make_qp_quants for the scales and mins. clamp63: Q5_K clamps the
 * packed values, Q4_K not. */
static void qk45_impl_scales(int nb, const float *x, const float *qw_blk, uint8_t *L, const qk45_dst *dst, int nmax,
                             bool clamp63)
{
    uint8_t Ls[QK / 32], Lm[QK / 32];
    float weights[2 * QK], sw[2 * QK / 32], mins[2 * QK / 32], scales[2 * QK / 32];
    for (int b = 0; b < nb; b++) {
        const float *xb = x + QK * b;
        float *wb = weights + QK * b;
        float sum_x2 = 0;
        for (int l = 0; l < QK; l++)
            sum_x2 += xb[l] * xb[l];
        float sigma2 = 2 * sum_x2 / QK;
        float av_x = sqrtf(sigma2);
        for (int j = 0; j < QK / 32; j++) {
            float *w = wb + 32 * j;
            if (qw_blk) {
                const float *qw = qw_blk + QK * b + 32 * j;
                for (int l = 0; l < 32; l++)
                    w[l] = qw[l] * sqrtf(sigma2 + xb[32 * j + l] * xb[32 * j + l]);
            } else {
                for (int l = 0; l < 32; l++)
                    w[l] = av_x + fabsf(xb[32 * j + l]);
            }
            float sumw = 0;
            for (int l = 0; l < 32; l++)
                sumw += w[l];
            sw[8 * b + j] = sumw;
        }
    }
    qk45_search(nb, x, weights, L, scales, mins, nmax, -0.9f, 0.05f, 36, true);
    for (int b = 0; b < nb; b++) {
        float d_block = make_qp_quants(QK / 32, 63, scales + 8 * b, Ls, sw + 8 * b);
        float m_block = make_qp_quants(QK / 32, 63, mins + 8 * b, Lm, sw + 8 * b);
        for (int j = 0; j < QK / 32; j++) {
            uint8_t ls = Ls[j], lm = Lm[j];
            if (clamp63) {
                ls = DCQ_MIN(63, ls);
                lm = DCQ_MIN(63, lm);
            }
            pack_scale_min_k4(dst[b].scales, j, ls, lm);
        }
        *dst[b].d = dcq_f2h(d_block);
        *dst[b].dmin = dcq_f2h(m_block);
    }
}

/* final quants from the stored (rounded) scales and mins */
static void qk45_requant(const float *x, uint8_t *L, const uint8_t *scales, dc_half dh, dc_half dminh, int nmax)
{
    for (int j = 0; j < QK / 32; j++) {
        uint8_t sc, m;
        dcq_scale_min_k4(j, scales, &sc, &m);
        const float d = dcq_h2f(dh) * (float)sc;
        if (!d)
            continue;
        const float dm = dcq_h2f(dminh) * (float)m;
        for (int ii = 0; ii < 32; ii++) {
            int l = dcq_nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)DCQ_MAX(0, DCQ_MIN(nmax, l));
        }
    }
}

static void q4_K_pack(const uint8_t *L, uint8_t *q)
{
    for (int j = 0; j < QK; j += 64, q += 32)
        for (int l = 0; l < 32; l++)
            q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
}

static void q5_K_pack(const uint8_t *L, uint8_t *qh, uint8_t *ql)
{
    memset(qh, 0, QK / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QK; n += 64, ql += 32) {
        for (int j = 0; j < 32; j++) {
            int l1 = L[n + j];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] |= m1;
            }
            int l2 = L[n + j + 32];
            if (l2 > 15) {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[j] = (uint8_t)(l1 | (l2 << 4));
        }
        m1 = (uint8_t)(m1 << 2);
        m2 = (uint8_t)(m2 << 2);
    }
}

/* The row functions take the super-blocks two at a time (the AVX2 searches interleave two); every
 * block is still computed on its own, so the bytes do not depend on the pairing. */
#define QK45_LOOP(T, NMAX, PACK, SCALES)                                                                \
    uint8_t L[2 * QK];                                                                                 \
    for (int64_t i = 0; i < nblk; i += 2) {                                                            \
        const int nb = nblk - i >= 2 ? 2 : 1;                                                          \
        qk45_dst dst[2];                                                                               \
        for (int b = 0; b < nb; b++)                                                                   \
            dst[b] = (qk45_dst){y[i + b].scales, &y[i + b].d, &y[i + b].dmin};                         \
        SCALES;                                                                                        \
        for (int b = 0; b < nb; b++) {                                                                 \
            dc_block_##T *yb = &y[i + b];                                                              \
            qk45_requant(x + QK * (i + b), L + QK * b, yb->scales, yb->d, yb->dmin, NMAX);             \
            PACK;                                                                                      \
        }                                                                                              \
    }
#define QK45_ROWS(T, NMAX, RMIN, NSTEP, CLAMP63, PACK)                                                  \
    void dc_quantize_row_##T##_ref(const float *x, void *vy, int64_t k)                                \
    {                                                                                                  \
        dc_block_##T *y = vy;                                                                          \
        const int64_t nblk = k / QK;                                                                   \
        QK45_LOOP(T, NMAX, PACK, qk45_ref_scales(nb, x + QK * i, L, dst, NMAX, RMIN, NSTEP))           \
    }                                                                                                  \
    static void quantize_row_##T##_impl(const float *x, dc_block_##T *y, int64_t n_per_row, const float *qw) \
    {                                                                                                  \
        const int64_t nblk = n_per_row / QK;                                                           \
        QK45_LOOP(T, NMAX, PACK, qk45_impl_scales(nb, x + QK * i, qw ? qw + QK * i : NULL, L, dst, NMAX, CLAMP63)) \
    }                                                                                                  \
    DCQ_DEFINE_QUANTIZE_K(T, dc_block_##T)

QK45_ROWS(q4_K, 15, -1.f, 20, false, q4_K_pack(L + QK * b, yb->qs))
QK45_ROWS(q5_K, 31, -0.5f, 15, true, q5_K_pack(L + QK * b, yb->qh, yb->qs))

/* ================================================================================================
 * Q6_K: 16 sub-blocks of 16, x = d*sc*(q-32), 8-bit signed sc
 * ================================================================================================ */

static void q6_K_block(const float *x, dc_block_q6_K *y, const float *qw_blk)
{
    int8_t L[QK];
    float scales[QK / 16];
    float max_scale = 0, max_abs_scale = 0;
    if (dcq_x8_enabled()) { /* 8 sub-blocks at once, same results */
        dcq_qx_x16(x, qw_blk, 32, L, scales);
    } else {
        for (int ib = 0; ib < QK / 16; ib++)
            scales[ib] = dcq_make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, qw_blk ? qw_blk + 16 * ib : NULL);
    }
    for (int ib = 0; ib < QK / 16; ib++) {
        const float scale = scales[ib];
        const float abs_scale = fabsf(scale);
        if (abs_scale > max_abs_scale) {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }
    if (max_abs_scale < DCQ_GROUP_MAX_EPS) {
        memset(y, 0, sizeof *y);
        y->d = dcq_f2h(0.f);
        return;
    }
    float iscale = -128.f / max_scale;
    y->d = dcq_f2h(1 / iscale);
    for (int ib = 0; ib < QK / 16; ib++)
        y->scales[ib] = (int8_t)DCQ_MIN(127, dcq_nearest_int(iscale * scales[ib]));
    for (int j = 0; j < QK / 16; j++) {
        float d = dcq_h2f(y->d) * (float)y->scales[j];
        if (!d)
            continue;
        for (int ii = 0; ii < 16; ii++) {
            int l = dcq_nearest_int(x[16 * j + ii] / d);
            L[16 * j + ii] = (int8_t)(DCQ_MAX(-32, DCQ_MIN(31, l)) + 32);
        }
    }
    uint8_t *ql = y->ql, *qh = y->qh;
    for (int j = 0; j < QK; j += 128, ql += 64, qh += 32) {
        for (int l = 0; l < 32; l++) {
            const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
            const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
            ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
            ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
            qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                              ((L[j + l + 96] >> 4) << 6));
        }
    }
}

void dc_quantize_row_q6_K_ref(const float *x, void *vy, int64_t k)
{
    dc_block_q6_K *y = vy;
    for (int64_t i = 0; i < k / QK; i++)
        q6_K_block(x + i * QK, &y[i], NULL);
}

static void quantize_row_q6_K_impl(const float *x, dc_block_q6_K *y, int64_t n_per_row, const float *qw)
{
    for (int64_t i = 0; i < n_per_row / QK; i++)
        q6_K_block(x + i * QK, &y[i], qw ? qw + QK * i : NULL);
}
DCQ_DEFINE_QUANTIZE_K(q6_K, dc_block_q6_K)

/* ================================================================================================
 * Q8_K (ggml's intermediate type for K-quant dot products): x = d*q, f32 d, block sums
 * ================================================================================================ */

void dc_quantize_row_q8_K_ref(const float *x, void *vy, int64_t k)
{
    dc_block_q8_K *y = vy;
    for (int64_t i = 0; i < k / QK; i++, x += QK) {
        float max = 0, amax = 0;
        for (int j = 0; j < QK; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (!amax) {
            /* ggml leaves bsums unwritten here; they are zero here */
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK; j++)
            y[i].qs[j] = (int8_t)DCQ_MIN(127, dcq_nearest_int(iscale * x[j]));
        for (int j = 0; j < QK / 16; j++) {
            int sum = 0;
            for (int ii = 0; ii < 16; ii++)
                sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

size_t dc_quantize_q8_K(const float *src, void *dst, int64_t nrows, int64_t n_per_row, const float *imatrix)
{
    (void)imatrix;
    dc_quantize_row_q8_K_ref(src, dst, nrows * n_per_row);
    return (size_t)nrows * (size_t)(n_per_row / QK) * sizeof(dc_block_q8_K);
}

/* ================================================================================================
 * TQ1_0 (base-3, 5 trits a byte) and TQ2_0 (2 bits a trit): x = d*t, t in {-1, 0, 1}
 * ================================================================================================ */

static float absmax256(const float *x)
{
    float amax = 0.0f;
    for (int j = 0; j < QK; j++)
        amax = DCQ_MAX(amax, fabsf(x[j]));
    return amax;
}

/* trit of v (-1, 0, 1 -> 0, 1, 2) the way ggml computes it (lroundf, then int) */
static inline int trit(float v) { return (int)(lroundf(v) + 1); }

void dc_quantize_row_tq1_0_ref(const float *x, void *vy, int64_t k)
{
    dc_block_tq1_0 *y = vy;
    for (int64_t i = 0; i < k / QK; i++) {
        const float d = absmax256(x);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = dcq_f2h(d);
        /* 32 bytes of 5 trits 32 apart, 16 bytes of 5 trits 16 apart, 4 bytes of 4 trits 4 apart */
        for (int m = 0; m < 32; m++) {
            uint8_t q = 0;
            for (int n = 0; n < 5; n++)
                q = (uint8_t)(q * 3 + trit(x[m + n * 32] * id));
            y[i].qs[m] = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243); /* ceil(q * 256 / 243) */
        }
        x += 5 * 32;
        for (int m = 0; m < 16; m++) {
            uint8_t q = 0;
            for (int n = 0; n < 5; n++)
                q = (uint8_t)(q * 3 + trit(x[m + n * 16] * id));
            y[i].qs[32 + m] = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
        }
        x += 5 * 16;
        for (int j = 0; j < 4; j++) {
            uint8_t q = 0;
            for (int m = 0; m < 4; m++)
                q = (uint8_t)(q * 3 + trit(x[j + m * 4] * id));
            q = (uint8_t)(q * 3);
            y[i].qh[j] = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
        }
        x += 4 * 4;
    }
}

void dc_quantize_row_tq2_0_ref(const float *x, void *vy, int64_t k)
{
    dc_block_tq2_0 *y = vy;
    for (int64_t i = 0; i < k / QK; i++) {
        const float d = absmax256(x);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = dcq_f2h(d);
        for (int j = 0; j < 64; j += 32, x += 4 * 32) {
            for (int m = 0; m < 32; m++) {
                uint8_t q = 0;
                for (int n = 0; n < 4; n++)
                    q = (uint8_t)(q + ((trit(x[m + n * 32] * id) & 3) << (2 * n)));
                y[i].qs[j + m] = q;
            }
        }
    }
}

size_t dc_quantize_tq1_0(const float *src, void *dst, int64_t nrows, int64_t n_per_row, const float *imatrix)
{
    (void)imatrix;
    dc_quantize_row_tq1_0_ref(src, dst, nrows * n_per_row);
    return (size_t)nrows * (size_t)(n_per_row / QK) * sizeof(dc_block_tq1_0);
}

size_t dc_quantize_tq2_0(const float *src, void *dst, int64_t nrows, int64_t n_per_row, const float *imatrix)
{
    (void)imatrix;
    dc_quantize_row_tq2_0_ref(src, dst, nrows * n_per_row);
    return (size_t)nrows * (size_t)(n_per_row / QK) * sizeof(dc_block_tq2_0);
}

