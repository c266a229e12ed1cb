/* Scalar float formats: bf16, f16, fp8 e4m3fn / e5m2, e8m0 (power-of-two scales). All
 * narrowing conversions round to nearest, ties to even. */
#ifndef DC_FLOAT_H
#define DC_FLOAT_H
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t dc_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float dc_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float dc_bf16_to_f32(uint16_t h) { return dc_bits_f32((uint32_t)h << 16); }
static inline uint16_t dc_f32_to_bf16(float f)
{
    uint32_t u = dc_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
/* Rounds an f32 to the nearest bf16 value, returned as f32. */
static inline float dc_round_bf16(float f) { return dc_bf16_to_f32(dc_f32_to_bf16(f)); }

float dc_f16_to_f32(uint16_t h);
uint16_t dc_f32_to_f16(float f);

/* FP8 e4m3fn: bias 7, no infinities, 0x7f/0xff NaN, max 448. */
float dc_e4m3_to_f32(uint8_t v);
/* Round to nearest even; |x| beyond 448 saturates to +-448; NaN -> 0x7f. */
uint8_t dc_f32_to_e4m3(float f);
/* Slow reference implementation (frexp/ldexp), for tests of the fast one. */
uint8_t dc_f32_to_e4m3_ref(float f);
/* FP8 e5m2: IEEE-like, bias 15, with infinities. */
float dc_e5m2_to_f32(uint8_t v);
uint8_t dc_f32_to_e5m2(float f);
/* E8M0: 2^(v-127); 0xff is NaN. */
static inline float dc_e8m0_to_f32(uint8_t v)
{
    if (v == 0xff)
        return NAN;
    if (v == 0)
        return dc_bits_f32(0x00400000u); /* 2^-127 */
    return dc_bits_f32((uint32_t)v << 23);
}

/* Table-based decoders for hot loops (filled on first use, thread-safe via pthread_once). */
const float *dc_e4m3_table(void);
const float *dc_f16_table(void);

/* Index of the first non-finite value of x[0..n) (NaN or infinity), -1 if none: a vectorized count
 * first, the position located only when there is one (the conversions' input checks). */
int64_t dc_first_nonfinite(const float *x, size_t n);

#endif
