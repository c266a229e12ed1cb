/* deepcast convert: FP8 block-scaled <-> BF16/F16/F32 Hugging Face checkpoints, streamed.
 *
 * Plan first (every output tensor, its source, dtype, bytes, shard), then execute: work items
 * are (tensor, row block) or (tensor, byte chunk), processed in parallel, each written with pwrite
 * at its planned offset. Memory is bounded by threads x one row block. The output directory is
 * staged under a temporary name and renamed into place only when complete. */
#ifndef DC_CONVERT_H
#define DC_CONVERT_H
#include "dc_ckpt.h"
#include <stdio.h>

typedef enum dc_target {
    DC_TARGET_BF16, DC_TARGET_F16, DC_TARGET_F32, DC_TARGET_FP8,
} dc_target;

typedef struct dc_convert_opts {
    dc_target target;
    int block;                 /* FP8 block edge (128) */
    int scale_mode;            /* DC_FP8_SCALE_*: F32 and UE8M0 stored as F32 (as V3.1 does), BF16 as BF16 */
    uint64_t max_shard_size;   /* 0: about the input's largest shard */
    bool drop_mtp;
    bool dry_run;
    bool force;
    bool progress;             /* progress line on stderr */
    int deq_mode;              /* FP8 -> float: DC_DEQ_BF16_ROUND for bf16 (DeepSeek's), exact otherwise */
} dc_convert_opts;

void dc_convert_opts_init(dc_convert_opts *o);
bool dc_target_parse(const char *s, dc_target *t);
const char *dc_target_name(dc_target t);

typedef struct dc_convert_stats {
    size_t n_tensors, n_converted, n_copied, n_dropped;
    uint64_t bytes_in, bytes_out;
    int n_shards;
    double seconds;
} dc_convert_stats;

/* Converts the checkpoint at in_path into out_dir. With dry_run, prints the plan to `plan` and
 * writes nothing. */
dc_status dc_convert(const char *in_path, const char *out_dir, const dc_convert_opts *o, FILE *plan,
                     dc_convert_stats *stats, dc_err *err);

#endif
