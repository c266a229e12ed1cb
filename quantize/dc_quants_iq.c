/* Non-linear 4-bit quants: IQ4_NL (blocks of 32, one f16 scale) and IQ4_XS (super-blocks of 256,
 * 6-bit sub-block scales). Each 4-bit index selects one of 16 fixed int8 levels. */
#include "dc_quants_impl.h"

/* index of the level nearest to x (ties go up), by bisection as ggml does */
static inline int best_index_int8(int n, const int8_t *val, float x)
{
    if (x <= val[0])
        return 0;
    if (x >= val[n - 1])
        return n - 1;
    int ml = 0, mu = n - 1;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < val[mav])
            mu = mav;
        else
            ml = mav;
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

/* sigma2 over the super-block, each sub-block's weights (weight[sbs]), its largest magnitude and
 * the signed value holding it (the first, on ties) */
static void iq4_prep(const float *x, int sbs, int bs, const float *qw_blk, float *weight, float *amaxs, float *maxs)
{
    float sigma2 = 0;
    for (int j = 0; j < sbs; j++)
        sigma2 += x[j] * x[j];
    sigma2 *= 2.f / (float)sbs;
    for (int ib = 0; ib < sbs / bs; ib++) {
        const float *xb = x + ib * bs;
        float *wb = weight + ib * bs;
        if (qw_blk) {
            const float *qw = qw_blk + ib * bs;
            for (int j = 0; j < bs; j++)
                wb[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        } else {
            for (int j = 0; j < bs; j++)
                wb[j] = xb[j] * xb[j];
        }
        float amax = 0, max = 0;
        for (int j = 0; j < bs; j++) {
            float ax = fabsf(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        amaxs[ib] = amax;
        maxs[ib] = max;
    }
}

static void iq4_pack(const uint8_t *L, int n, uint8_t *q4)
{
    for (int i = 0; i < n / 32; i++)
        for (int j = 0; j < 16; j++)
            q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

/* The weighted best scale of one sub-block over 2*ntry+1 trial scales (ntry <= 0: the first
 * guess only, whose levels stay in Lb) */
static float iq4_search(const float *xb, const float *weight, float max, int bs, int ntry, uint8_t *Lb)
{
    const int8_t *values = dcq_kvalues_iq4nl;
    float d = ntry > 0 ? -max / (float)values[0] : max / (float)values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < bs; j++) {
        int l = best_index_int8(16, values, id * xb[j]);
        Lb[j] = (uint8_t)l;
        float q = values[l], w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; itry++) {
        id = (float)(itry + values[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < bs; j++) {
            int l = best_index_int8(16, values, id * xb[j]);
            float q = values[l], w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* One super-block of sbs values in sub-blocks of bs (bs == sbs for IQ4_NL). Per sub-block: the
 * weighted best scale over 2*ntry+1 trial scales (ntry <= 0: the first guess only), or given[ib]
 * when given (a search done by the caller); IQ4_XS then puts the sub-block scales on a 6-bit grid
 * and re-picks the levels. L[] carries over between calls: with ntry <= 0 an all-zero IQ4_NL block
 * reuses the previous block's indices, as in ggml. weight: sbs floats of scratch. With AVX2, the 8
 * sub-blocks of an IQ4_XS super-block are searched at once (dcq_iq4_search_x8, same scales). */
static void iq4_impl(int sbs, int bs, const float *x, dc_half *dh, uint8_t *q4, uint16_t *scales_h,
                     uint8_t *scales_l, float *scales, float *weight, uint8_t *L, const float *qw_blk, int ntry,
                     const float *given)
{
    const int8_t *values = dcq_kvalues_iq4nl;
    float amaxs[DC_QK_K / 32], maxs[DC_QK_K / 32], d8[8];
    iq4_prep(x, sbs, bs, qw_blk, weight, amaxs, maxs);

    memset(q4, 0, (size_t)sbs / 2);
    dh[0] = dcq_f2h(0.f);

    if (!given && ntry > 0 && sbs / bs == 8 && bs == 32 && dcq_x8_enabled()) {
        dcq_iq4_search_x8(x, weight, maxs, ntry, d8);
        given = d8;
    }
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < sbs / bs; ib++) {
        if (amaxs[ib] < DCQ_GROUP_MAX_EPS) {
            scales[ib] = 0;
            continue;
        }
        float d = given ? given[ib] : iq4_search(x + ib * bs, weight + ib * bs, maxs[ib], bs, ntry, L + ib * bs);
        scales[ib] = d;
        float abs_d = fabsf(d);
        if (abs_d > amax_scale) {
            amax_scale = abs_d;
            max_scale = d;
        }
    }

    if (sbs / bs > 1) {
        int nb = sbs / bs;
        memset(scales_h, 0, (size_t)((nb + 7) / 8) * sizeof(uint16_t));
        float d = -max_scale / 32;
        dh[0] = dcq_f2h(d);
        float id = d ? 1 / d : 0.f;
        for (int ib = 0; ib < nb; ib++) {
            int l = dcq_nearest_int(id * scales[ib]);
            l = DCQ_MAX(-32, DCQ_MIN(31, l));
            float dl = d * (float)l;
            float idl = dl ? 1 / dl : 0.f;
            uint8_t *Lb = L + ib * bs;
            const float *xb = x + ib * bs;
            for (int j = 0; j < bs; j++)
                Lb[j] = (uint8_t)best_index_int8(16, values, idl * xb[j]);
            l += 32;
            uint8_t l_l = (uint8_t)(l & 0xf), l_h = (uint8_t)(l >> 4);
            if (ib % 2 == 0)
                scales_l[ib / 2] = l_l;
            else
                scales_l[ib / 2] |= (uint8_t)(l_l << 4);
            scales_h[ib / 8] |= (uint16_t)(l_h << 2 * (ib % 8));
        }
    } else {
        dh[0] = dcq_f2h(scales[0]);
        if (ntry > 0) {
            float id = scales[0] ? 1 / scales[0] : 0;
            for (int j = 0; j < sbs; j++)
                L[j] = (uint8_t)best_index_int8(16, values, id * x[j]);
        }
    }
    iq4_pack(L, sbs, q4);
}

/* ---- IQ4_NL ---- */

size_t dc_quantize_iq4_nl(const float *src, void *dst, int64_t nrows, int64_t n_per_row, const float *imatrix)
{
    const int64_t nblock = n_per_row / 32;
    dc_block_iq4_nl *y = dst;
    uint8_t L[32];
    float weight[256], scale, amaxs[8], maxs[8], d8[8];
    uint16_t unused_h;
    const bool x8 = dcq_x8_enabled();
    for (int64_t r = 0; r < nrows; r++, src += n_per_row, y += nblock)
        for (int64_t ib = 0; ib < nblock;) {
            if (x8 && ib + 8 <= nblock) { /* 8 blocks' searches at once (same scales), then each block */
                for (int b = 0; b < 8; b++)
                    iq4_prep(src + 32 * (ib + b), 32, 32, imatrix ? imatrix + 32 * (ib + b) : NULL, weight + 32 * b,
                             &amaxs[b], &maxs[b]);
                dcq_iq4_search_x8(src + 32 * ib, weight, maxs, 7, d8);
                for (int b = 0; b < 8; b++, ib++) { /* iq4_impl's end for one block (sbs == bs, ntry > 0) */
                    const float *xb = src + 32 * ib, sc = amaxs[b] < DCQ_GROUP_MAX_EPS ? 0.f : d8[b];
                    y[ib].d = dcq_f2h(sc);
                    const float id = sc ? 1 / sc : 0;
                    for (int j = 0; j < 32; j++)
                        L[j] = (uint8_t)best_index_int8(16, dcq_kvalues_iq4nl, id * xb[j]);
                    iq4_pack(L, 32, y[ib].qs);
                }
            } else {
                iq4_impl(32, 32, src + 32 * ib, &y[ib].d, y[ib].qs, &unused_h, NULL, &scale, weight, L,
                         imatrix ? imatrix + 32 * ib : NULL, 7, NULL);
                ib++;
            }
        }
    return (size_t)nrows * (size_t)nblock * sizeof(dc_block_iq4_nl);
}

void dc_quantize_row_iq4_nl_ref(const float *x, void *vy, int64_t k)
{
    dc_block_iq4_nl *y = vy;
    uint8_t L[32] = {0}; /* ggml: uninitialised; only read for an all-zero first block */
    float weight[32], scale;
    uint16_t unused_h;
    for (int64_t ib = 0; ib < k / 32; ib++)
        iq4_impl(32, 32, x + 32 * ib, &y[ib].d, y[ib].qs, &unused_h, NULL, &scale, weight, L, NULL, -1, NULL);
}

/* ---- IQ4_XS ---- */

size_t dc_quantize_iq4_xs(const float *src, void *dst, int64_t nrows, int64_t n_per_row, const float *imatrix)
{
    const int64_t nblock = n_per_row / DC_QK_K;
    dc_block_iq4_xs *y = dst;
    uint8_t L[DC_QK_K];
    float weight[DC_QK_K], scales[DC_QK_K / 32];
    for (int64_t r = 0; r < nrows; r++, src += n_per_row, y += nblock)
        for (int64_t ib = 0; ib < nblock; ib++) {
            uint16_t sh;
            iq4_impl(DC_QK_K, 32, src + DC_QK_K * ib, &y[ib].d, y[ib].qs, &sh, y[ib].scales_l, scales, weight, L,
                     imatrix ? imatrix + DC_QK_K * ib : NULL, 7, NULL);
            y[ib].scales_h = sh;
        }
    return (size_t)nrows * (size_t)nblock * sizeof(dc_block_iq4_xs);
}

void dc_quantize_row_iq4_xs_ref(const float *x, void *y, int64_t k)
{
    dc_quantize_iq4_xs(x, y, 1, k, NULL);
}

