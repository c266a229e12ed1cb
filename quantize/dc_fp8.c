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

void dc_fp8_quantize_row_block(const float *src, int64_t nrows, int64_t cols, int block_cols, int mode,
                               uint8_t *q, float *scales)
{
    int64_t ncb = (cols + block_cols - 1) / block_cols;
    for (int64_t cb = 0; cb < ncb; cb++) {
        int64_t c0 = cb * block_cols, c1 = c0 + block_cols < cols ? c0 + block_cols : cols;
        float amax = 0;
        for (int64_t r = 0; r < nrows; r++)
            for (int64_t c = c0; c < c1; c++) {
                float a = fabsf(src[r * cols + c]);
                if (a > amax)
                    amax = a;
            }
        float s = dc_fp8_block_scale(amax, mode);
        scales[cb] = s;
        for (int64_t r = 0; r < nrows; r++)
            for (int64_t c = c0; c < c1; c++)
                q[r * cols + c] = dc_f32_to_e4m3(src[r * cols + c] / s);
    }
}
