/* The 4-bit group quantizers' error sums: scalar references and AVX2 fast paths (dc_int4_x8.h).
 *
 * The AVX2 code performs each lane's operations exactly as the reference does for its element
 * (IEEE division, round to nearest even, float multiplies, conversions to double, double
 * subtract / multiply / add; no FMA: -ffp-contract=off and the target is "avx2" only), and lane j
 * of the two __m256d accumulators is the reference's partial sum j. A partial last chunk is
 * loaded masked; its missing lanes contribute +0.0, which leaves a partial sum unchanged (the
 * sums start at +0.0 and never become -0.0). The early exit (bound) is taken at the same points
 * (after each 32 elements) with the same sum in both. */
#include "dc_int4_x8.h"
#include "dc_int4.h"

#include <math.h>

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The three kinds share the loop (as err_loop below): KIND_INT codes clamp(round(x / p0) + z, 0, 15),
 * dequant (q - z) * p0; KIND_FP4 codes e2m1(x / p0), dequant (e2m1 * p1) * p2; KIND_MX codes
 * e2m1(x * p0), dequant e2m1 * p1. */
enum { KIND_INT, KIND_FP4, KIND_MX };

static inline __attribute__((always_inline)) double ref_loop(int kind, const float *x, const float *imp, int n,
                                                             float p0, float p1, float p2, int z, double bound,
                                                             uint8_t *codes)
{
    double p[8] = {0};
    for (int i = 0; i < n; i++) {
        int q;
        float deq;
        if (kind == KIND_INT) {
            q = clampi((int)nearbyintf(x[i] / p0) + z, 0, 15);
            deq = (float)(q - z) * p0;
        } else if (kind == KIND_FP4) {
            q = dc_e2m1_encode(x[i] / p0);
            deq = (dc_e2m1_decode((uint8_t)q) * p1) * p2;
        } else {
            q = dc_e2m1_encode(x[i] * p0);
            deq = dc_e2m1_decode((uint8_t)q) * p1;
        }
        if (codes)
            codes[i] = (uint8_t)q;
        double d = (double)x[i] - (double)deq;
        p[i & 7] += (imp ? (double)imp[i] : 1.0) * d * d;
        if ((i & 31) == 31 && !codes && dc_i4_sum8(p) >= bound)
            break;
    }
    return dc_i4_sum8(p);
}

double dc_i4_int_err_ref(const float *x, const float *imp, int n, float s, int z, double bound, uint8_t *codes)
{
    return ref_loop(KIND_INT, x, imp, n, s, 0, 0, z, bound, codes);
}

double dc_i4_fp4_err_ref(const float *x, const float *imp, int n, float div, float mul1, float mul2, double bound,
                         uint8_t *codes)
{
    return ref_loop(KIND_FP4, x, imp, n, div, mul1, mul2, 0, bound, codes);
}

double dc_i4_mx_err_ref(const float *x, const float *imp, int n, float up, float down, double bound, uint8_t *codes)
{
    return ref_loop(KIND_MX, x, imp, n, up, down, 0, 0, bound, codes);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <string.h>

#define X8 __attribute__((target("avx2")))

static inline X8 __m256i lanes_below(int m) /* lane j: all ones when j < m */
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* acc_lo/hi += (w * d) * d for the 8 lanes of x - deq (float), in double; w from imp (or 1) */
static inline X8 void accumulate(__m256 xv, __m256 deq, const float *imp, int i, int m, __m256i mask, __m256d *alo,
                                 __m256d *ahi)
{
    __m256d dlo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(xv)),
                                _mm256_cvtps_pd(_mm256_castps256_ps128(deq)));
    __m256d dhi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1)),
                                _mm256_cvtps_pd(_mm256_extractf128_ps(deq, 1)));
    if (m < 8) { /* the missing lanes: d = +0 */
        __m256i mlo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(mask));
        __m256i mhi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(mask, 1));
        dlo = _mm256_and_pd(dlo, _mm256_castsi256_pd(mlo));
        dhi = _mm256_and_pd(dhi, _mm256_castsi256_pd(mhi));
    }
    if (imp) {
        __m256 w = m < 8 ? _mm256_maskload_ps(imp + i, mask) : _mm256_loadu_ps(imp + i);
        __m256d wlo = _mm256_cvtps_pd(_mm256_castps256_ps128(w)), whi = _mm256_cvtps_pd(_mm256_extractf128_ps(w, 1));
        *alo = _mm256_add_pd(*alo, _mm256_mul_pd(_mm256_mul_pd(wlo, dlo), dlo));
        *ahi = _mm256_add_pd(*ahi, _mm256_mul_pd(_mm256_mul_pd(whi, dhi), dhi));
    } else {
        *alo = _mm256_add_pd(*alo, _mm256_mul_pd(dlo, dlo));
        *ahi = _mm256_add_pd(*ahi, _mm256_mul_pd(dhi, dhi));
    }
}

/* ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7)) of lo = p0..p3, hi = p4..p7 */
static inline X8 double reduce(__m256d lo, __m256d hi)
{
    __m256d h = _mm256_hadd_pd(lo, hi); /* p0+p1, p4+p5, p2+p3, p6+p7 */
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(t) + _mm_cvtsd_f64(_mm_unpackhi_pd(t, t));
}

static inline X8 void store_codes(uint8_t *codes, __m256i q, int m)
{
    int32_t t[8];
    _mm256_storeu_si256((__m256i *)(void *)t, q);
    for (int j = 0; j < m; j++)
        codes[j] = (uint8_t)t[j];
}

/* dc_e2m1_encode per lane: the thresholds between neighbouring values, ties to the even code
 * (> where the lower code is even, >= where it is odd); sign bit from signbit; NaN -> 0 */
static inline X8 __m256i e2m1_encode8(__m256 v)
{
    const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
    __m256i c = _mm256_setzero_si256();
#define STEP(t, pred) c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(t), pred)))
    STEP(0.25f, _CMP_GT_OQ);
    STEP(0.75f, _CMP_GE_OQ);
    STEP(1.25f, _CMP_GT_OQ);
    STEP(1.75f, _CMP_GE_OQ);
    STEP(2.5f, _CMP_GT_OQ);
    STEP(3.5f, _CMP_GE_OQ);
    STEP(5.0f, _CMP_GT_OQ);
#undef STEP
    __m256i sign = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(v), 31),
                                    _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_ORD_Q)));
    return _mm256_or_si256(c, _mm256_slli_epi32(sign, 3));
}

static inline X8 __m256 e2m1_decode8(__m256i q)
{
    const __m256 tab = _mm256_loadu_ps(DC_E2M1_VALUES); /* codes 0..7 */
    __m256 mag = _mm256_permutevar8x32_ps(tab, q);   /* uses the low 3 bits */
    __m256i sign = _mm256_slli_epi32(_mm256_srli_epi32(q, 3), 31);
    return _mm256_or_ps(mag, _mm256_castsi256_ps(sign));
}

/* One candidate scale's error sum, 8 lanes at a time (the kinds as in ref_loop) */
static inline X8 __attribute__((always_inline)) double err_loop(int kind, const float *x, const float *imp, int n,
                                                                float p0, float p1, float p2, int z, double bound,
                                                                uint8_t *codes)
{
    const __m256 v0 = _mm256_set1_ps(p0), v1 = _mm256_set1_ps(p1), v2 = _mm256_set1_ps(p2);
    const __m256i vz = _mm256_set1_epi32(z), lo = _mm256_setzero_si256(), hi = _mm256_set1_epi32(15);
    __m256d alo = _mm256_setzero_pd(), ahi = _mm256_setzero_pd();
    for (int i = 0; i < n; i += 8) {
        const int m = n - i < 8 ? n - i : 8;
        const __m256i mask = lanes_below(m);
        __m256 xv = m < 8 ? _mm256_maskload_ps(x + i, mask) : _mm256_loadu_ps(x + i);
        __m256i q;
        __m256 deq;
        if (kind == KIND_INT) {
            __m256 r = _mm256_round_ps(_mm256_div_ps(xv, v0), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(r), vz), lo), hi);
            deq = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, vz)), v0);
        } else if (kind == KIND_FP4) {
            q = e2m1_encode8(_mm256_div_ps(xv, v0));
            deq = _mm256_mul_ps(_mm256_mul_ps(e2m1_decode8(q), v1), v2);
        } else {
            q = e2m1_encode8(_mm256_mul_ps(xv, v0));
            deq = _mm256_mul_ps(e2m1_decode8(q), v1);
        }
        accumulate(xv, deq, imp, i, m, mask, &alo, &ahi);
        if (codes)
            store_codes(codes + i, q, m);
        else if ((i & 31) == 24 && m == 8 && reduce(alo, ahi) >= bound) /* after elements i..i+7, i + 8 = 32k */
            break;
    }
    return reduce(alo, ahi);
}

X8 double dc_i4x8_int_err(const float *x, const float *imp, int n, float s, int z, double bound, uint8_t *codes)
{
    return err_loop(KIND_INT, x, imp, n, s, 0, 0, z, bound, codes);
}

X8 double dc_i4x8_fp4_err(const float *x, const float *imp, int n, float div, float mul1, float mul2, double bound,
                          uint8_t *codes)
{
    return err_loop(KIND_FP4, x, imp, n, div, mul1, mul2, 0, bound, codes);
}

X8 double dc_i4x8_mx_err(const float *x, const float *imp, int n, float up, float down, double bound, uint8_t *codes)
{
    return err_loop(KIND_MX, x, imp, n, up, down, 0, 0, bound, codes);
}

#else /* no AVX2 build: never called (dc_quants_simd_enabled() is false); the references */
double dc_i4x8_int_err(const float *x, const float *imp, int n, float s, int z, double bound, uint8_t *codes)
{
    return dc_i4_int_err_ref(x, imp, n, s, z, bound, codes);
}
double dc_i4x8_fp4_err(const float *x, const float *imp, int n, float div, float mul1, float mul2, double bound,
                       uint8_t *codes)
{
    return dc_i4_fp4_err_ref(x, imp, n, div, mul1, mul2, bound, codes);
}
double dc_i4x8_mx_err(const float *x, const float *imp, int n, float up, float down, double bound, uint8_t *codes)
{
    return dc_i4_mx_err_ref(x, imp, n, up, down, bound, codes);
}
#endif
