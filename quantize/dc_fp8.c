#include "dc_fp8.h"
#include "dc_float.h"
#include <math.h>

float dc_fp8_block_scale(float amax, int mode)
{
    if (!(amax > 0) || !isfinite(amax))
        return 1.0f;
    float s = amax / 448.0f;
    if (mode == DC_FP8_SCALE_BF16) {
        float b = dc_round_bf16(s);
        if (b < s)
            b = dc_bf16_to_f32((uint16_t)(dc_f32_to_bf16(s) + 1));
        return b;
    }
    if (mode == DC_FP8_SCALE_UE8M0) {
        int e;
        float m = frexpf(s, &e); /* s = m * 2^e, m in [0.5, 1) */
        s = (m == 0.5f) ? s : ldexpf(1.0f, e);
    }
    return s;
}

/* Branch-free e4m3fn encoder (round to nearest even, saturating), the same function as
 * dc_f32_to_e4m3, written so the compiler vectorises the loop that calls it. */
static inline uint8_t e4m3_enc(float f)
{
    uint32_t u = dc_f32_bits(f);
    uint32_t sign = (u >> 24) & 0x80u, a = u & 0x7fffffffu;
    uint32_t an = a + 0x7ffffu + ((a >> 20) & 1u);
    uint32_t cn = (an >> 20) - ((127u - 7u) << 3);
    uint32_t cs = dc_f32_bits(dc_bits_f32(a) + 16384.0f) - 0x46800000u;
    uint32_t m_sub = 0u - (uint32_t)(a < 0x3c800000u);   /* below 2^-6: subnormal codes */
    uint32_t m_sat = 0u - (uint32_t)(a >= 0x43e00000u);  /* >= 448: saturate */
    uint32_t m_nan = 0u - (uint32_t)(a > 0x7f800000u);
    uint32_t c = (cs & m_sub) | (cn & ~m_sub);
    c = (0x7eu & m_sat) | (c & ~m_sat);
    c = (0x7fu & m_nan) | (c & ~m_nan);
    return (uint8_t)(sign | c);
}

/* target_clones on a static function: clang 14 cannot reference a cloned function from other
 * files, so the exported symbol is the plain wrapper below. */
__attribute__((target_clones("avx2", "default")))
static void quantize_row_block(const float *src, int64_t nrows, int64_t cols, int block_cols, int mode,
                               uint8_t *q, float *scales)
{
    int64_t ncb = (cols + block_cols - 1) / block_cols;
    /* pass 1, row-major: the largest |x| of each column block. |x| compares like its bit pattern
     * (inputs are finite), which vectorises. scales[] holds the bits until pass 2. */
    uint32_t *amax = (uint32_t *)(void *)scales;
    for (int64_t cb = 0; cb < ncb; cb++)
        amax[cb] = 0;
    for (int64_t r = 0; r < nrows; r++) {
        const uint32_t *row = (const uint32_t *)(const void *)(src + r * cols);
        for (int64_t cb = 0; cb < ncb; cb++) {
            int64_t c0 = cb * block_cols, c1 = c0 + block_cols < cols ? c0 + block_cols : cols;
            uint32_t m = amax[cb];
#pragma omp simd reduction(max : m)
            for (int64_t c = c0; c < c1; c++) {
                uint32_t a = row[c] & 0x7fffffffu;
                m = a > m ? a : m;
            }
            amax[cb] = m;
        }
    }
    for (int64_t cb = 0; cb < ncb; cb++)
        scales[cb] = dc_fp8_block_scale(dc_bits_f32(amax[cb]), mode);
    /* pass 2, row-major: the codes */
    for (int64_t r = 0; r < nrows; r++) {
        const float *row = src + r * cols;
        uint8_t *qr = q + r * cols;
        for (int64_t cb = 0; cb < ncb; cb++) {
            int64_t c0 = cb * block_cols, c1 = c0 + block_cols < cols ? c0 + block_cols : cols;
            float s = scales[cb];
#pragma omp simd
            for (int64_t c = c0; c < c1; c++)
                qr[c] = e4m3_enc(row[c] / s);
        }
    }
}

void dc_fp8_quantize_row_block(const float *src, int64_t nrows, int64_t cols, int block_cols, int mode,
                               uint8_t *q, float *scales)
{
    quantize_row_block(src, nrows, cols, block_cols, mode, q, scales);
}
