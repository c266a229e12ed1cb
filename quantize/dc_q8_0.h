/* ggml Q8_0 encoder: blocks of 32 values -> f16 scale d = amax / 127 and 32 int8 codes
 * roundf(x * (1 / d)), byte-identical to ggml's quantize_row_q8_0_ref (ggml-quants.c) and to
 * gguf-py's Q8_0 quantizer (the one convert_hf_to_gguf.py uses): dc_quantize_q8_0 (dc_quants.h),
 * with its AVX2 fast path. Decoding: formats/dc_ggml.h. */
#ifndef DC_Q8_0_H
#define DC_Q8_0_H
#include "dc_quants.h"
#include <stdint.h>

/* Quantizes k values (k a multiple of 32) into k / 32 blocks of 34 bytes at dst. */
static inline void dc_q8_0_quantize_row(const float *x, uint8_t *dst, int64_t k)
{
    dc_quantize_q8_0(x, dst, 1, k / 32 * 32, NULL);
}

#endif
