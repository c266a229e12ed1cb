#include "dc_q8_0.h"
#include "dc_float.h"

#include <math.h>
#include <string.h>

void dc_q8_0_quantize_row(const float *x, uint8_t *dst, int64_t k)
{
    for (int64_t b = 0; b < k / 32; b++) {
        const float *v = x + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            float a = fabsf(v[j]);
            amax = amax > a ? amax : a; /* MAX(amax, a) as ggml writes it */
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t *blk = dst + b * 34;
        uint16_t h = dc_f32_to_f16(d);
        memcpy(blk, &h, 2);
        for (int j = 0; j < 32; j++) {
            const float x0 = v[j] * id;
            float r = roundf(x0);
            if (!(r >= -128.0f && r <= 127.0f)) /* only for non-finite input (callers reject it) */
                r = 0.0f;
            blk[2 + j] = (uint8_t)(int8_t)r;
        }
    }
}
