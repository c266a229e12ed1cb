/* AVX2 fast paths of the 4-bit group quantizers' error sums (convert/dc_int4_convert.c).
 *
 * Each function returns exactly what its scalar reference returns (same float and double
 * operations per element, same partial sums): the references accumulate the weighted squared
 * errors of element i into partial sum i % 8 and add the eight as
 * ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7)) (dc_i4_sum8), which is what two __m256d
 * accumulators and one horizontal add give. codes (when not NULL) receive the same codes.
 * Call the dc_i4x8_* only when dc_quants_simd_enabled(); tests/test_int4.c checks them against the references
 * on random, tied, saturating and partial groups. */
#ifndef DC_INT4_X8_H
#define DC_INT4_X8_H
#include <stdbool.h>
#include <stdint.h>

static inline double dc_i4_sum8(const double p[8])
{
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* The weighted squared error sum_i w_i (x_i - dequant(q_i))^2 (w_i = imp[i], or 1 when imp is
 * NULL; each term ((double)w * d) * d with d = (double)x - (double)dequant in float) of a group
 * at one candidate scale, and the codes (when codes is not NULL). *_ref: the scalar definitions,
 * dc_i4x8_*: AVX2, the same results.
 *   int:  q = clamp((int)nearbyintf(x / s) + z, 0, 15), dequant (float)(q - z) * s
 *   fp4:  q = dc_e2m1_encode(x / div), dequant (e2m1(q) * mul1) * mul2   (NVFP4)
 *   mx:   q = dc_e2m1_encode(x * up), dequant e2m1(q) * down  (MXFP4; up, down powers of two)
 * bound: a search's best error so far. When codes is NULL, the sum stops early once the partial
 * sums, added as above, reach bound after a multiple of 32 elements, and that value is returned:
 * the terms are non-negative and IEEE addition is monotone, so the whole sum would not have been
 * below bound either (a search's "e < best" decides the same). INFINITY: the whole sum. */
double dc_i4_int_err_ref(const float *x, const float *imp, int n, float s, int z, double bound, uint8_t *codes);
double dc_i4_fp4_err_ref(const float *x, const float *imp, int n, float div, float mul1, float mul2, double bound,
                         uint8_t *codes);
double dc_i4_mx_err_ref(const float *x, const float *imp, int n, float up, float down, double bound, uint8_t *codes);
double dc_i4x8_int_err(const float *x, const float *imp, int n, float s, int z, double bound, uint8_t *codes);
double dc_i4x8_fp4_err(const float *x, const float *imp, int n, float div, float mul1, float mul2, double bound,
                       uint8_t *codes);
double dc_i4x8_mx_err(const float *x, const float *imp, int n, float up, float down, double bound, uint8_t *codes);

#endif
