#include "dc_float.h"

#include <float.h>
#include <pthread.h>

float dc_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f)
        return dc_bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    return dc_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t dc_f32_to_f16(float f)
{
    uint32_t u = dc_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return sign | 0x7e00;
    if (a >= 0x477ff000u) /* rounds to >= 65520 -> inf */
        return sign | 0x7c00;
    if (a < 0x38800000u) { /* subnormal or zero in f16: value = m * 2^-24 */
        float v = dc_bits_f32(a);
        float m = v * 16777216.0f; /* exact scaling */
        /* round half to even */
        float r = nearbyintf(m);
        return sign | (uint16_t)r;
    }
    uint32_t exp = (a >> 23) - 112, man = a & 0x7fffff;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;
    return sign | (uint16_t)h;
}

float dc_e4m3_to_f32(uint8_t v)
{
    uint32_t s = v >> 7, e = (v >> 3) & 0xf, m = v & 7;
    float r;
    if (e == 0xf && m == 7)
        return NAN;
    if (e == 0)
        r = ldexpf((float)m, -9);
    else
        r = ldexpf((float)(8 + m), (int)e - 10);
    return s ? -r : r;
}

/* Generic round-to-nearest-even into a small float with ebits/mbits/bias; returns magnitude
 * code (without sign) clamped to max_code. */
static uint8_t round_small(float a, int mbits, int bias, uint8_t max_code)
{
    if (a == 0)
        return 0;
    int e;
    frexpf(a, &e); /* a = f * 2^e, f in [0.5,1) -> unbiased exponent e-1 */
    int ue = e - 1;
    int min_normal_exp = 1 - bias;
    int q_exp = ue < min_normal_exp ? min_normal_exp : ue;
    /* quantum = 2^(q_exp - mbits) */
    float scaled = ldexpf(a, mbits - q_exp); /* exact */
    float r = nearbyintf(scaled);            /* ties to even in default rounding mode */
    uint32_t ir = (uint32_t)r;
    uint32_t code;
    if (ue < min_normal_exp) {
        /* subnormal: ir in [0, 2^mbits]; ir == 2^mbits becomes the smallest normal */
        code = ir; /* works since code = exp<<mbits | man and exp=1,man=0 == 1<<mbits */
    } else {
        /* ir in [2^mbits, 2^(mbits+1)] */
        uint32_t be = (uint32_t)(q_exp + bias);
        if (ir == (1u << (mbits + 1))) {
            be++;
            ir = 1u << mbits;
        }
        code = (be << mbits) | (ir - (1u << mbits));
    }
    if (code > max_code)
        code = max_code;
    return (uint8_t)code;
}

uint8_t dc_f32_to_e4m3(float f)
{
    uint32_t u = dc_f32_bits(f);
    uint8_t s = (uint8_t)((u >> 24) & 0x80);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return 0x7f;
    if (a >= 0x43e00000u) /* >= 448 */
        return s | 0x7e;
    if (a < 0x3c800000u) { /* below 2^-6: subnormal quanta of 2^-9, rounded by the FPU (ties even) */
        float r = dc_bits_f32(a) + 16384.0f; /* 2^14: ulp becomes 2^-9 */
        return s | (uint8_t)(dc_f32_bits(r) - 0x46800000u);
    }
    a += 0x7ffffu + ((a >> 20) & 1); /* round the mantissa to 3 bits, ties to even */
    uint32_t code = (a >> 20) - ((127 - 7) << 3);
    return s | (uint8_t)(code > 0x7e ? 0x7e : code);
}

uint8_t dc_f32_to_e4m3_ref(float f)
{
    if (isnan(f))
        return 0x7f;
    uint8_t s = signbit(f) ? 0x80 : 0;
    float a = fabsf(f);
    if (a >= 448.0f)
        return s | 0x7e;
    return s | round_small(a, 3, 7, 0x7e);
}

float dc_e5m2_to_f32(uint8_t v)
{
    return dc_f16_to_f32((uint16_t)v << 8);
}

uint8_t dc_f32_to_e5m2(float f)
{
    if (isnan(f))
        return 0x7f;
    uint8_t s = signbit(f) ? 0x80 : 0;
    float a = fabsf(f);
    if (isinf(a))
        return s | 0x7c;
    uint8_t c = round_small(a, 2, 15, 0x7c); /* overflow rounds to inf (0x7c) */
    return s | c;
}

static float e4m3_tab[256];
static float f16_tab[65536];
static pthread_once_t e4m3_once = PTHREAD_ONCE_INIT, f16_once = PTHREAD_ONCE_INIT;
static void init_e4m3(void) { for (int i = 0; i < 256; i++) e4m3_tab[i] = dc_e4m3_to_f32((uint8_t)i); }
static void init_f16(void) { for (int i = 0; i < 65536; i++) f16_tab[i] = dc_f16_to_f32((uint16_t)i); }
const float *dc_e4m3_table(void) { pthread_once(&e4m3_once, init_e4m3); return e4m3_tab; }
const float *dc_f16_table(void) { pthread_once(&f16_once, init_f16); return f16_tab; }

int64_t dc_first_nonfinite(const float *x, size_t n)
{
    size_t bad = 0;
#pragma omp simd reduction(+ : bad)
    for (size_t i = 0; i < n; i++)
        bad += !(fabsf(x[i]) <= FLT_MAX); /* false for NaN and infinities */
    for (size_t i = 0; bad && i < n; i++)
        if (!isfinite(x[i]))
            return (int64_t)i;
    return -1;
}
