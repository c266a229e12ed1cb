/* The tensor interface: one view type for a tensor stored in any container (safetensors shard,
 * GGUF), and one reader that yields f32 rows whatever the storage (bf16, f16, f32, fp8 with block
 * scales, ...). Conversions, quantizers, the forward pass and diff tools all read through it. */
#ifndef DC_TENSOR_H
#define DC_TENSOR_H
#include "dc_common.h"
#include "dc_dtype.h"

#define DC_MAX_DIMS 8

typedef struct dc_tensor {
    char *name;
    dc_dtype dtype;
    int ndim;
    int64_t shape[DC_MAX_DIMS]; /* outermost first (row-major, as safetensors stores it) */
    uint64_t nbytes;
    uint64_t offset;     /* absolute byte offset in its file */
    const uint8_t *data; /* mmapped bytes, nbytes long */
    int file;            /* index of the file holding it in its checkpoint */
} dc_tensor;

int64_t dc_tensor_nelem(const dc_tensor *t);
/* Rows/cols of the 2-D view: cols = last dim, rows = product of the others (1 for 0/1-D). */
int64_t dc_tensor_rows(const dc_tensor *t);
int64_t dc_tensor_cols(const dc_tensor *t);
/* "3000x320" (or "scalar"). */
const char *dc_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);

/* How FP8 weights are dequantized. DeepSeek's pipeline rounds f32(fp8) * scale to bf16. */
enum { DC_DEQ_BF16_ROUND = 0, DC_DEQ_EXACT = 1 };

/* A weight with its optional block scale (FP8 e4m3 + weight_scale_inv). */
typedef struct dc_weight {
    const dc_tensor *t;
    const dc_tensor *scale; /* NULL if none */
    const char *file_name;  /* for messages */
    int64_t rows, cols;
    int block_rows, block_cols; /* scale block (128 x 128) */
    /* Optional row reader for virtual tensors, whose rows are assembled from other stored tensors
     * (a GGUF's kv_b_proj from attn_k_b and attn_v_b, see dc_gguf.h). NULL for stored tensors.
     * When set, dc_weight_rows calls it (after the range check) and t->data is not used. */
    dc_status (*read_rows)(const struct dc_weight *w, int64_t r0, int64_t n, float *out, int mode, dc_err *err);
    const void *read_ctx;
} dc_weight;

/* Validates the pairing of a weight and its scale (dtype, ceil-div shape) and fills w. */
dc_status dc_weight_init(dc_weight *w, const dc_tensor *t, const dc_tensor *scale, int block_rows,
                         int block_cols, const char *file_name, dc_err *err);
/* Reads rows [r0, r0+n) as f32 into out (n * cols floats). mode: DC_DEQ_*. Thread-safe.
 * ggml block types (Q8_0) are decoded through formats/dc_ggml.h. */
dc_status dc_weight_rows(const dc_weight *w, int64_t r0, int64_t n, float *out, int mode, dc_err *err);
/* Drops the mapped pages holding rows [r0, r0+n) of a stored weight (madvise, whole pages inside
 * the range only), after they have been read: a streaming pass keeps its resident memory at the
 * rows in flight. A later read faults them in again. No-op for virtual weights (read_rows). */
void dc_weight_release(const dc_weight *w, int64_t r0, int64_t n);

#endif
