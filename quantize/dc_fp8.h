/* FP8 e4m3 with one scale per block (DeepSeek-V3's release layout: 128x128 blocks over
 * [out, in], scale = block amax / 448, stored as weight_scale_inv, W = q * scale). */
#ifndef DC_FP8_H
#define DC_FP8_H
#include "dc_config.h"
#include <stdint.h>

/* How block scales are chosen (values match dc_scale_fmt for F32 and UE8M0). */
enum {
    DC_FP8_SCALE_F32 = 0,   /* amax / 448 in f32 */
    DC_FP8_SCALE_UE8M0 = 1, /* the power of two >= amax / 448 (no value clips) */
    DC_FP8_SCALE_BF16 = 2,  /* the bf16 value >= amax / 448 (rounded up, so no value clips) */
};

/* The scale of a block whose largest magnitude is amax. An all-zero block gets scale 1. */
float dc_fp8_block_scale(float amax, int mode);

/* Quantizes one row block (nrows <= block_rows rows of cols floats, row-major) into q (same
 * layout, e4m3 codes) and scales[ceil(cols/block_cols)] (one per column block). */
void dc_fp8_quantize_row_block(const float *src, int64_t nrows, int64_t cols, int block_cols, int mode,
                               uint8_t *q, float *scales);
#endif
