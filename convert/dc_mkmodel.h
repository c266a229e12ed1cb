/* Synthetic checkpoints in the exact layout of the real releases, for tests, demos and benches.
 * Weights are deterministic functions of (seed, tensor name, row block), so output bytes do not
 * depend on the thread count, and are scaled like trained weights (std ~ gain / sqrt(fan_in)) so
 * the forward pass produces non-degenerate logits. Memory use is one row block per thread. */
#ifndef DC_MKMODEL_H
#define DC_MKMODEL_H
#include "dc_config.h"

typedef struct dc_mk_opts {
    const char *preset; /* v3-tiny, v3-tiny-fp8, v3-tiny-fp8-ue8m0, v2-lite-tiny, v3-layer, qwen2-tiny, llama-tiny */
    uint64_t seed;
    int layers;      /* -1: preset default */
    int dense;       /* first_k_dense_replace, -1: preset default (not for the dense presets) */
    int experts;     /* n_routed_experts, -1: preset default */
    int mtp;         /* num_nextn_predict_layers, -1: preset default */
    int64_t vocab;   /* -1: preset default */
    int fp8;         /* -1 preset default, 0 BF16, 1 FP8 */
    int scale_fmt;   /* -1 preset default, else dc_scale_fmt */
    uint64_t max_shard_size; /* 0: preset default */
} dc_mk_opts;

void dc_mk_opts_init(dc_mk_opts *o);
/* Lists the preset names, separated by ", ". */
const char *dc_mk_presets(void);
/* Resolves the preset and overrides into a config. */
dc_status dc_mk_config(const dc_mk_opts *o, dc_config *cfg, dc_err *err);
/* Writes config.json and the shards (+ index) into dir (an existing, empty staging directory). */
dc_status dc_mkmodel_write(const char *dir, const dc_mk_opts *o, const dc_config *cfg, uint64_t *bytes_written,
                           dc_err *err);

#endif
