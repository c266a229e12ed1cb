/* AVX2 fast paths of the K-quant scale searches: 8 sub-blocks at once, one per lane of a __m256.
 *
 * Each lane performs exactly the operations of the scalar code in dc_quants_k.c (make_qkx_quants
 * for Q4_K / Q5_K, dcq_make_qx_quants for Q6_K), in the same order, each one correctly rounded
 * (add, sub, mul, div; no FMA: the target is "avx2" only and the build uses -ffp-contract=off;
 * no rcp/rsqrt), so every lane's result is bit-identical to the scalar search on its sub-block.
 * Lane-wise branches become masks: a lane takes an update only where the scalar code would, and
 * the lanes the scalar code leaves early (degenerate sub-blocks) get the scalar early results at
 * the end. Comparisons use the ordered predicates of C's < > <= == (false on NaN), != the
 * unordered one; min/max use vminps/vmaxps operand order so that (x < m ? x : m) holds exactly.
 *
 * Chosen at run time (dcq_x8_enabled: CPU has AVX2, DC_QUANTS_SCALAR unset, dc_quants_simd);
 * the default build stays portable (only these functions carry the target attribute).
 * tests/test_quants.c checks the fast paths against the scalar ones byte for byte. */
#include "dc_quants_impl.h"
#include <stdint.h>
#include <stdlib.h>

static int x8_mode = -1; /* -1: not yet decided, 0: scalar, 1: AVX2 */

static int x8_cpu(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

static int x8_default(void)
{
    const char *e = getenv("DC_QUANTS_SCALAR");
    return e && *e && *e != '0' ? 0 : x8_cpu();
}

bool dcq_x8_enabled(void)
{
    int m = __atomic_load_n(&x8_mode, __ATOMIC_RELAXED);
    if (m < 0) {
        m = x8_default();
        __atomic_store_n(&x8_mode, m, __ATOMIC_RELAXED);
    }
    return m != 0;
}

bool dc_quants_simd_enabled(void) { return dcq_x8_enabled(); }

bool dc_quants_simd(int mode)
{
    int m = mode < 0 ? x8_default() : mode > 0 ? x8_cpu() : 0;
    __atomic_store_n(&x8_mode, m, __ATOMIC_RELAXED);
    return m != 0;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define X8 __attribute__((target("avx2")))

/* dcq_nearest_int per lane: the 1.5 * 2^23 addition, then the low mantissa bits */
static inline X8 __m256i nearest8(__m256 f)
{
    __m256i i = _mm256_castps_si256(_mm256_add_ps(f, _mm256_set1_ps(12582912.f)));
    return _mm256_sub_epi32(_mm256_and_si256(i, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}

static inline X8 __m256 sel(__m256 a, __m256 b, __m256 m) { return _mm256_blendv_ps(a, b, m); } /* m ? b : a */

/* The searches below are latency bound (each lane's sums are serial, in the scalar order), so
 * they run G = 1 or 2 independent groups of 8 sub-blocks interleaved; the groups never mix. */
#define X8_INLINE static inline __attribute__((always_inline, target("avx2")))

/* make_qkx_quants(SN, nmax, x + SN*j, weights + SN*j, ..., use_mad = mad) for j = 0..7 of each
 * group g (SN 32 or 16, weights non-NULL, nstep >= 1); v3: make_qkx3's degenerate test (max <= min)
 * instead of make_qkx2's (max == min). Group g: x[g][8 SN], w[g][8 SN] -> L[g][8 SN], scales[g][8],
 * mins[g][8] (the_min). */
X8_INLINE void qkx_body(const int G, const int SN, const bool mad, const float *const *xs, const float *const *ws,
                        int nmax, float rmin,
                        float rdelta, int nstep, bool v3, uint8_t *const *Ls, float *const *scs, float *const *mns)
{
    const __m256i idx = _mm256_setr_epi32(0, SN, 2 * SN, 3 * SN, 4 * SN, 5 * SN, 6 * SN, 7 * SN);
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 zero = _mm256_setzero_ps(), ones = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    const __m256i vnmax = _mm256_set1_epi32(nmax), izero = _mm256_setzero_si256();
    __m256 xt[2][32], wt[2][32], lbest[2][32], laux[2][32];
    __m256 min[2], max[2], sum_w[2], sum_x[2], min0[2], deg[2], live[2], scale[2], best_error[2];
    for (int g = 0; g < G; g++)
        for (int i = 0; i < SN; i++) {
            xt[g][i] = _mm256_i32gather_ps(xs[g] + i, idx, 4);
            wt[g][i] = _mm256_i32gather_ps(ws[g] + i, idx, 4);
        }
    for (int g = 0; g < G; g++) {
        min[g] = max[g] = xt[g][0];
        sum_w[g] = wt[g][0];
        sum_x[g] = _mm256_mul_ps(sum_w[g], xt[g][0]);
    }
    for (int i = 1; i < SN; i++)
        for (int g = 0; g < G; g++) {
            min[g] = _mm256_min_ps(xt[g][i], min[g]); /* x < min ? x : min */
            max[g] = _mm256_max_ps(xt[g][i], max[g]); /* x > max ? x : max */
            sum_w[g] = _mm256_add_ps(sum_w[g], wt[g][i]);
            sum_x[g] = _mm256_add_ps(sum_x[g], _mm256_mul_ps(wt[g][i], xt[g][i]));
        }
    int any_live = 0;
    __m256 iscale[2];
    for (int g = 0; g < G; g++) {
        min[g] = sel(min[g], zero, _mm256_cmp_ps(min[g], zero, _CMP_GT_OQ)); /* if (min > 0) min = 0 */
        min0[g] = min[g];
        deg[g] = v3 ? _mm256_cmp_ps(max[g], min[g], _CMP_LE_OQ) : _mm256_cmp_ps(max[g], min[g], _CMP_EQ_OQ);
        live[g] = _mm256_xor_ps(deg[g], ones);
        any_live |= _mm256_movemask_ps(live[g]);
        iscale[g] = _mm256_div_ps(_mm256_set1_ps((float)nmax), _mm256_sub_ps(max[g], min[g]));
        scale[g] = _mm256_div_ps(_mm256_set1_ps(1.f), iscale[g]);
        best_error[g] = zero;
    }
    for (int i = 0; i < SN; i++)
        for (int g = 0; g < G; g++) {
            __m256i l = nearest8(_mm256_mul_ps(iscale[g], _mm256_sub_ps(xt[g][i], min[g])));
            l = _mm256_max_epi32(izero, _mm256_min_epi32(vnmax, l));
            lbest[g][i] = _mm256_cvtepi32_ps(l);
            __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale[g], lbest[g][i]), min[g]), xt[g][i]);
            diff = mad ? _mm256_and_ps(diff, absm) : _mm256_mul_ps(diff, diff); /* fabsf / square */
            best_error[g] = _mm256_add_ps(best_error[g], _mm256_mul_ps(wt[g][i], diff));
        }
    for (int is = 0; is <= nstep && any_live; is++) {
        const __m256 num = _mm256_set1_ps(rmin + rdelta * (float)is + (float)nmax);
        __m256 sum_l[2], sum_l2[2], sum_xl[2];
        for (int g = 0; g < G; g++) {
            /* min is the best fit's so far, as in the scalar loop */
            iscale[g] = _mm256_div_ps(num, _mm256_sub_ps(max[g], min[g]));
            sum_l[g] = sum_l2[g] = sum_xl[g] = zero;
        }
        for (int i = 0; i < SN; i++)
            for (int g = 0; g < G; g++) {
                __m256i l = nearest8(_mm256_mul_ps(iscale[g], _mm256_sub_ps(xt[g][i], min[g])));
                l = _mm256_max_epi32(izero, _mm256_min_epi32(vnmax, l));
                const __m256 lf = _mm256_cvtepi32_ps(l);
                laux[g][i] = lf;
                const __m256 wl = _mm256_mul_ps(wt[g][i], lf);
                sum_l[g] = _mm256_add_ps(sum_l[g], wl);
                sum_l2[g] = _mm256_add_ps(sum_l2[g], _mm256_mul_ps(wl, lf));
                sum_xl[g] = _mm256_add_ps(sum_xl[g], _mm256_mul_ps(wl, xt[g][i]));
            }
        __m256 dpos[2], this_scale[2], this_min[2], err[2];
        int any_d = 0;
        for (int g = 0; g < G; g++) {
            const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w[g], sum_l2[g]), _mm256_mul_ps(sum_l[g], sum_l[g]));
            dpos[g] = _mm256_and_ps(live[g], _mm256_cmp_ps(D, zero, _CMP_GT_OQ));
            any_d |= _mm256_movemask_ps(dpos[g]);
            this_scale[g] = _mm256_div_ps(
                _mm256_sub_ps(_mm256_mul_ps(sum_w[g], sum_xl[g]), _mm256_mul_ps(sum_x[g], sum_l[g])), D);
            this_min[g] = _mm256_div_ps(
                _mm256_sub_ps(_mm256_mul_ps(sum_l2[g], sum_x[g]), _mm256_mul_ps(sum_l[g], sum_xl[g])), D);
            const __m256 mpos = _mm256_cmp_ps(this_min[g], zero, _CMP_GT_OQ);
            this_min[g] = sel(this_min[g], zero, mpos);
            this_scale[g] = sel(this_scale[g], _mm256_div_ps(sum_xl[g], sum_l2[g]), mpos);
            err[g] = zero;
        }
        if (!any_d)
            continue;
        for (int i = 0; i < SN; i++)
            for (int g = 0; g < G; g++) {
                __m256 diff =
                    _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale[g], laux[g][i]), this_min[g]), xt[g][i]);
                diff = mad ? _mm256_and_ps(diff, absm) : _mm256_mul_ps(diff, diff); /* fabsf / square */
                err[g] = _mm256_add_ps(err[g], _mm256_mul_ps(wt[g][i], diff));
            }
        for (int g = 0; g < G; g++) {
            const __m256 better = _mm256_and_ps(dpos[g], _mm256_cmp_ps(err[g], best_error[g], _CMP_LT_OQ));
            if (!_mm256_movemask_ps(better))
                continue;
            for (int i = 0; i < SN; i++)
                lbest[g][i] = sel(lbest[g][i], laux[g][i], better);
            best_error[g] = sel(best_error[g], err[g], better);
            scale[g] = sel(scale[g], this_scale[g], better);
            min[g] = sel(min[g], this_min[g], better);
        }
    }
    for (int g = 0; g < G; g++) {
        /* degenerate lanes: L = 0, the_min = -min, scale 0 */
        _mm256_storeu_ps(scs[g], sel(scale[g], zero, deg[g]));
        _mm256_storeu_ps(mns[g], _mm256_xor_ps(sel(min[g], min0[g], deg[g]), _mm256_set1_ps(-0.f)));
        for (int i = 0; i < SN; i++) {
            int32_t li[8];
            _mm256_storeu_si256((__m256i *)(void *)li, _mm256_cvtps_epi32(sel(lbest[g][i], zero, deg[g])));
            for (int j = 0; j < 8; j++)
                Ls[g][SN * j + i] = (uint8_t)li[j];
        }
    }
}

X8 void dcq_qkx_x8(const float *restrict x, const float *restrict weights, int nmax, float rmin, float rdelta,
                   int nstep, bool v3, uint8_t *restrict L, float *restrict scales, float *restrict mins)
{
    const float *xs[1] = {x}, *ws[1] = {weights};
    uint8_t *Ls[1] = {L};
    float *scs[1] = {scales}, *mns[1] = {mins};
    qkx_body(1, 32, false, xs, ws, nmax, rmin, rdelta, nstep, v3, Ls, scs, mns);
}

X8 void dcq_qkx_x8x2(const float *x0, const float *w0, const float *x1, const float *w1, int nmax, float rmin,
                     float rdelta, int nstep, bool v3, uint8_t *L0, uint8_t *L1, float *scales0, float *scales1,
                     float *mins0, float *mins1)
{
    const float *xs[2] = {x0, x1}, *ws[2] = {w0, w1};
    uint8_t *Ls[2] = {L0, L1};
    float *scs[2] = {scales0, scales1}, *mns[2] = {mins0, mins1};
    qkx_body(2, 32, false, xs, ws, nmax, rmin, rdelta, nstep, v3, Ls, scs, mns);
}

/* One candidate scale of dcq_make_qx_quants on 8 sub-blocks: l = clamp(nearest(iscale * x), -nmax,
 * nmax - 1) into lout[0..n), and sum w*x*l, sum w*l*l accumulated over i in order (the scalar loop's). */
static inline X8 void qx_pass(int n, const __m256 *xt, const __m256 *wt, __m256 iscale, __m256i lo, __m256i hi,
                              __m256 *lout, __m256 *sumlx, __m256 *suml2)
{
    __m256 sx = _mm256_setzero_ps(), s2 = _mm256_setzero_ps();
    for (int i = 0; i < n; i++) {
        __m256i l = nearest8(_mm256_mul_ps(iscale, xt[i]));
        l = _mm256_max_epi32(lo, _mm256_min_epi32(hi, l));
        const __m256 lf = _mm256_cvtepi32_ps(l);
        lout[i] = lf;
        sx = _mm256_add_ps(sx, _mm256_mul_ps(_mm256_mul_ps(wt[i], xt[i]), lf));
        s2 = _mm256_add_ps(s2, _mm256_mul_ps(_mm256_mul_ps(wt[i], lf), lf));
    }
    *sumlx = sx;
    *suml2 = s2;
}

/* dcq_make_qx_quants(16, nmax, x + 16*j, L + 16*j, 1, qw ? qw + 16*j : NULL) for j = 0..15, as
 * two interleaved groups of 8: L[256], scales[16] */
X8 void dcq_qx_x16(const float *restrict x, const float *restrict qw, int nmax, int8_t *restrict L,
                   float *restrict scales)
{
    enum { N = 16, G = 2 };
    const int NMAX = nmax;
    const __m256i idx = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112);
    const __m256 zero = _mm256_setzero_ps(), absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i lo = _mm256_set1_epi32(-NMAX), hi = _mm256_set1_epi32(NMAX - 1);
    __m256 xt[G][N], wt[G][N], lbest[G][N], lcur[G][N];
    __m256 max[G], amax[G], small[G], iscale[G], sumlx[G], suml2[G], scale[G], best[G];
    for (int g = 0; g < G; g++) {
        max[g] = amax[g] = zero;
        for (int i = 0; i < N; i++) {
            xt[g][i] = _mm256_i32gather_ps(x + 128 * g + i, idx, 4);
            wt[g][i] = qw ? _mm256_i32gather_ps(qw + 128 * g + i, idx, 4) : _mm256_mul_ps(xt[g][i], xt[g][i]);
            const __m256 ax = _mm256_and_ps(xt[g][i], absmask);
            const __m256 m = _mm256_cmp_ps(ax, amax[g], _CMP_GT_OQ);
            amax[g] = sel(amax[g], ax, m);
            max[g] = sel(max[g], xt[g][i], m);
        }
        small[g] = _mm256_cmp_ps(amax[g], _mm256_set1_ps(DCQ_GROUP_MAX_EPS), _CMP_LT_OQ);
        iscale[g] = _mm256_div_ps(_mm256_set1_ps((float)-NMAX), max[g]);
        qx_pass(N, xt[g], wt[g], iscale[g], lo, hi, lbest[g], &sumlx[g], &suml2[g]);
    }
    for (int g = 0; g < G; g++) {
        scale[g] = _mm256_and_ps(_mm256_cmp_ps(suml2[g], zero, _CMP_NEQ_UQ), _mm256_div_ps(sumlx[g], suml2[g]));
        best[g] = _mm256_mul_ps(scale[g], sumlx[g]);
    }
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        const __m256 num = _mm256_set1_ps(-((float)NMAX + 0.1f * (float)is));
        for (int g = 0; g < G; g++)
            qx_pass(N, xt[g], wt[g], _mm256_div_ps(num, max[g]), lo, hi, lcur[g], &sumlx[g], &suml2[g]);
        for (int g = 0; g < G; g++) {
            const __m256 take = _mm256_and_ps(
                _mm256_cmp_ps(suml2[g], zero, _CMP_GT_OQ),
                _mm256_cmp_ps(_mm256_mul_ps(sumlx[g], sumlx[g]), _mm256_mul_ps(best[g], suml2[g]), _CMP_GT_OQ));
            if (!_mm256_movemask_ps(take))
                continue;
            for (int i = 0; i < N; i++)
                lbest[g][i] = sel(lbest[g][i], lcur[g][i], take);
            const __m256 sc = _mm256_div_ps(sumlx[g], suml2[g]);
            scale[g] = sel(scale[g], sc, take);
            best[g] = sel(best[g], _mm256_mul_ps(sc, sumlx[g]), take);
        }
    }
    /* lanes with amax < eps: L = 0, scale 0 */
    const __m256 nm = _mm256_set1_ps((float)NMAX);
    for (int g = 0; g < G; g++) {
        _mm256_storeu_ps(scales + 8 * g, sel(scale[g], zero, small[g]));
        for (int i = 0; i < N; i++) {
            int32_t li[8];
            _mm256_storeu_si256((__m256i *)(void *)li,
                                _mm256_cvtps_epi32(sel(_mm256_add_ps(lbest[g][i], nm), zero, small[g])));
            for (int j = 0; j < 8; j++)
                L[128 * g + N * j + i] = (int8_t)li[j];
        }
    }
}


/* Q8_0: amax (max is exact and order-free), d = amax / 127 and id = 1 / d as the scalar code, then
 * cvt_roundf(x * id) per lane: trunc, and one step away from zero where the (exact) remainder is
 * >= 0.5 in magnitude; out-of-range lanes as the scalar cast stores them. */
X8 void dcq_q8_0_x8(const float *restrict x, void *restrict vy, int64_t nb)
{
    dc_block_q8_0 *y = vy;
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    const __m256 fmax = _mm256_set1_ps(3.40282347e38f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t i = 0; i < nb; i++, x += 32) {
        __m256 v[4], a[4];
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            a[k] = _mm256_andnot_ps(sign, v[k]);
        }
        __m256 bad = _mm256_or_ps(_mm256_or_ps(_mm256_cmp_ps(a[0], fmax, _CMP_NLE_UQ), _mm256_cmp_ps(a[1], fmax, _CMP_NLE_UQ)),
                                  _mm256_or_ps(_mm256_cmp_ps(a[2], fmax, _CMP_NLE_UQ), _mm256_cmp_ps(a[3], fmax, _CMP_NLE_UQ)));
        if (_mm256_movemask_ps(bad)) {
            dc_quantize_row_q8_0_ref(x, y + i, 32);
            continue;
        }
        __m256 m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = dcq_f2h(d);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m256 p = _mm256_mul_ps(v[k], vid);
            __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            __m256 r = _mm256_andnot_ps(sign, _mm256_sub_ps(p, t));
            __m256 step = _mm256_and_ps(_mm256_cmp_ps(r, half, _CMP_GE_OQ), _mm256_or_ps(_mm256_and_ps(p, sign), one));
            q[k] = _mm256_cvttps_epi32(_mm256_add_ps(t, step));
            /* out of int range (id overflowed to inf for a subnormal amax): cvt_roundf's INT32_MIN,
             * whose low byte the scalar cast stores: 0 */
            q[k] = _mm256_andnot_si256(_mm256_cmpeq_epi32(q[k], _mm256_set1_epi32(INT32_MIN)), q[k]);
        }
        __m256i s01 = _mm256_packs_epi32(q[0], q[1]), s23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(s01, s23), perm);
        _mm256_storeu_si256((__m256i *)(void *)y[i].qs, b);
    }
}

X8 void dcq_qkx16_x8x2(const float *restrict x, const float *restrict w, int nmax, float rmin, float rdelta,
                       int nstep, bool v3, bool mad, uint8_t *restrict L, float *restrict scales,
                       float *restrict mins)
{
    const float *xs[2] = {x, x + 128}, *ws[2] = {w, w + 128};
    uint8_t *Ls[2] = {L, L + 128};
    float *scs[2] = {scales, scales + 8}, *mns[2] = {mins, mins + 8};
    if (mad)
        qkx_body(2, 16, true, xs, ws, nmax, rmin, rdelta, nstep, v3, Ls, scs, mns);
    else
        qkx_body(2, 16, false, xs, ws, nmax, rmin, rdelta, nstep, v3, Ls, scs, mns);
}

/* ---- IQ4_NL / IQ4_XS scale search ------------------------------------------------------------- */

/* 16 ints, one level each as float, from two 8-lane tables (levels 0..7, 8..15) */
X8_INLINE __m256 iq4_lookup(__m256i idx, __m256 tlo, __m256 thi)
{
    return sel(_mm256_permutevar8x32_ps(tlo, idx), _mm256_permutevar8x32_ps(thi, idx),
               _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7))));
}

/* The level best_index_int8(16, levels, v) picks, per lane, as its value: v <= first: the first;
 * v >= last (or NaN, where the bisection ends high): the last; otherwise the pair around v (mu =
 * the number of levels <= v) and the lower one when v - lower < upper - v. */
X8_INLINE __m256 iq4_level8(__m256 v, const __m256 *lv, __m256 tlo, __m256 thi)
{
    __m256i c[16];
    for (int j = 0; j < 16; j++)
        c[j] = _mm256_castps_si256(_mm256_cmp_ps(lv[j], v, _CMP_LE_OQ));
    for (int w = 8; w >= 1; w /= 2) /* integer tree sum: exact in any order */
        for (int j = 0; j < w; j++)
            c[j] = _mm256_add_epi32(c[j], c[j + w]);
    __m256i mu = _mm256_sub_epi32(_mm256_setzero_si256(), c[0]);
    mu = _mm256_min_epi32(_mm256_max_epi32(mu, _mm256_set1_epi32(1)), _mm256_set1_epi32(15));
    const __m256 a = iq4_lookup(_mm256_sub_epi32(mu, _mm256_set1_epi32(1)), tlo, thi), b = iq4_lookup(mu, tlo, thi);
    __m256 q = sel(b, a, _mm256_cmp_ps(_mm256_sub_ps(v, a), _mm256_sub_ps(b, v), _CMP_LT_OQ));
    q = sel(q, lv[0], _mm256_cmp_ps(v, lv[0], _CMP_LE_OQ));
    q = sel(q, lv[15], _mm256_cmp_ps(v, lv[15], _CMP_GE_OQ));
    return sel(q, lv[15], _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

/* one pass of the search at inverse scale id: sumqx = sum (w q) x, sumq2 = sum (w q) q in order */
X8_INLINE void iq4_pass(const __m256 *xt, const __m256 *wt, __m256 id, const __m256 *lv, __m256 tlo, __m256 thi,
                        __m256 *sumqx, __m256 *sumq2)
{
    __m256 sx = _mm256_setzero_ps(), s2 = _mm256_setzero_ps();
    for (int j = 0; j < 32; j++) {
        const __m256 q = iq4_level8(_mm256_mul_ps(id, xt[j]), lv, tlo, thi);
        const __m256 wq = _mm256_mul_ps(wt[j], q);
        sx = _mm256_add_ps(sx, _mm256_mul_ps(wq, xt[j]));
        s2 = _mm256_add_ps(s2, _mm256_mul_ps(wq, q));
    }
    *sumqx = sx;
    *sumq2 = s2;
}

X8 void dcq_iq4_search_x8(const float *restrict x, const float *restrict w, const float *restrict maxs, int ntry,
                          float *restrict d_out)
{
    const __m256i idx = _mm256_setr_epi32(0, 32, 64, 96, 128, 160, 192, 224);
    const int8_t *values = dcq_kvalues_iq4nl;
    const __m256 zero = _mm256_setzero_ps();
    __m256 xt[32], wt[32], lv[16];
    float tab[16];
    for (int j = 0; j < 16; j++) {
        tab[j] = (float)values[j];
        lv[j] = _mm256_set1_ps(tab[j]);
    }
    const __m256 tlo = _mm256_loadu_ps(tab), thi = _mm256_loadu_ps(tab + 8);
    for (int j = 0; j < 32; j++) {
        xt[j] = _mm256_i32gather_ps(x + j, idx, 4);
        wt[j] = _mm256_i32gather_ps(w + j, idx, 4);
    }
    const __m256 maxv = _mm256_loadu_ps(maxs);
    __m256 d = _mm256_div_ps(_mm256_xor_ps(maxv, _mm256_set1_ps(-0.0f)), lv[0]); /* -max / values[0] */
    __m256 sumqx, sumq2;
    iq4_pass(xt, wt, _mm256_div_ps(_mm256_set1_ps(1.f), d), lv, tlo, thi, &sumqx, &sumq2);
    d = sel(zero, _mm256_div_ps(sumqx, sumq2), _mm256_cmp_ps(sumq2, zero, _CMP_GT_OQ));
    __m256 best = _mm256_mul_ps(d, sumqx);
    for (int itry = -ntry; itry <= ntry; itry++) {
        iq4_pass(xt, wt, _mm256_div_ps(_mm256_set1_ps((float)(itry + values[0])), maxv), lv, tlo, thi, &sumqx, &sumq2);
        const __m256 take = _mm256_and_ps(_mm256_cmp_ps(sumq2, zero, _CMP_GT_OQ),
                                          _mm256_cmp_ps(_mm256_mul_ps(sumqx, sumqx), _mm256_mul_ps(best, sumq2), _CMP_GT_OQ));
        const __m256 dn = _mm256_div_ps(sumqx, sumq2);
        d = sel(d, dn, take);
        best = sel(best, _mm256_mul_ps(dn, sumqx), take);
    }
    _mm256_storeu_ps(d_out, d);
}

#else /* no x86-64 GCC/clang: never called (dcq_x8_enabled is false) */

void dcq_qkx_x8(const float *restrict x, const float *restrict weights, int nmax, float rmin, float rdelta,
                int nstep, bool v3, uint8_t *restrict L, float *restrict scales, float *restrict mins)
{
    abort();
}
void dcq_qkx_x8x2(const float *x0, const float *w0, const float *x1, const float *w1, int nmax, float rmin,
                  float rdelta, int nstep, bool v3, uint8_t *L0, uint8_t *L1, float *scales0, float *scales1,
                  float *mins0, float *mins1)
{
    abort();
}
void dcq_qx_x16(const float *restrict x, const float *restrict qw, int nmax, int8_t *restrict L, float *restrict scales)
{
    abort();
}
void dcq_q8_0_x8(const float *restrict x, void *restrict y, int64_t nb)
{
    abort();
}
void dcq_iq4_search_x8(const float *restrict x, const float *restrict w, const float *restrict maxs, int ntry,
                       float *restrict d_out)
{
    abort();
}
void dcq_qkx16_x8x2(const float *restrict x, const float *restrict w, int nmax, float rmin, float rdelta, int nstep,
                    bool v3, bool mad, uint8_t *restrict L, float *restrict scales, float *restrict mins)
{
    abort();
}
#endif
