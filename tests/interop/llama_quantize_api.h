/* The parts of libllama's C API (include/llama.h of node-llama-cpp 3.22.1's release) that
 * tests/interop/quantize_check.c and bench/llama_quantize.c call through dlopen. */
#ifndef DC_LLAMA_QUANTIZE_API_H
#define DC_LLAMA_QUANTIZE_API_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* llama_model_quantize_params */
struct lq_params {
    int32_t nthread;
    int ftype;
    int output_tensor_type;
    int token_embedding_type;
    bool allow_requantize, quantize_output_tensor, only_copy, pure, keep_split, dry_run;
    const void *imatrix;
    const void *kv_overrides;
    const void *tt_overrides;
    const int32_t *prune_layers;
    size_t max_buf_size;
};
_Static_assert(sizeof(struct lq_params) == 64, "llama_model_quantize_params");

#endif
