/* FP8 e4m3 with one scale per block (DeepSeek-V3's release layout: 128x128 blocks over
 * [out, in], scale = block amax / 448, stored as weight_scale_inv, W = q * scale). */
#ifndef DC_FP8_H
#define DC_FP8_H
#include "dc_config.h"
#include <stdint.h>

/* The scale of a block whose largest magnitude is amax. ue8m0 rounds up to a power of two so no
 * value clips. An all-zero block gets scale 1. */
float dc_fp8_block_scale(float amax, dc_scale_fmt fmt);

/* Quantizes one row block (nrows <= block_rows rows of cols floats, row-major) into q (same
 * layout, e4m3 codes) and scales[ceil(cols/block_cols)] (one per column block). */
void dc_fp8_quantize_row_block(const float *src, int64_t nrows, int64_t cols, int block_cols, dc_scale_fmt fmt,
                               uint8_t *q, float *scales);
#endif
