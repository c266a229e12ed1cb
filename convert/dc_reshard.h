/* deepcast reshard: re-lay a checkpoint's tensors without changing a byte of their values.
 *
 *   DC_RESHARD_SHARDS          HF shards of at most max_shard_size, tensors ordered by layer
 *   DC_RESHARD_MERGE_EXPERTS   per-expert tensors -> fused [E, 2I, H] gate_up_proj / [E, H, I] down_proj
 *   DC_RESHARD_SPLIT_EXPERTS   the exact inverse
 *   DC_RESHARD_MP              DeepSeek's inference layout (convert.py): model{i}-mp{N}.safetensors
 *   DC_RESHARD_FROM_MP         back from model{i}-mp{N}.safetensors to the HF layout
 *
 * Like convert: plan first (every output tensor is a list of byte-range copies from the mmapped
 * input), then parallel work units, each a byte range of one output tensor, gathered and written
 * with pwrite at its planned offset; input pages are released as they are consumed. Memory is
 * bounded by threads x one 16 MB unit. Output is staged and renamed into place only when complete.
 * See docs/reshard.md. */
#ifndef DC_RESHARD_H
#define DC_RESHARD_H
#include "dc_ckpt.h"
#include "dc_experts.h"
#include <stdio.h>

typedef enum dc_reshard_mode {
    DC_RESHARD_SHARDS = 0,
    DC_RESHARD_MERGE_EXPERTS,
    DC_RESHARD_SPLIT_EXPERTS,
    DC_RESHARD_MP,
    DC_RESHARD_FROM_MP,
} dc_reshard_mode;

typedef struct dc_reshard_opts {
    dc_reshard_mode mode;
    int mp;                  /* DC_RESHARD_MP: number of ranks (>= 1) */
    const char *config_path; /* DC_RESHARD_FROM_MP: config.json when IN has none (NULL: IN/config.json) */
    uint64_t max_shard_size; /* HF outputs; 0: about the input's largest file (required for SHARDS) */
    bool dry_run;
    bool force;
    bool progress; /* progress line on stderr */
} dc_reshard_opts;

void dc_reshard_opts_init(dc_reshard_opts *o);
const char *dc_reshard_mode_name(dc_reshard_mode m);

typedef struct dc_reshard_stats {
    size_t n_in;      /* input tensors */
    size_t n_out;     /* output tensors (over all files) */
    size_t n_dropped; /* input tensors not carried over (--mp: the MTP layers) */
    uint64_t bytes_in, bytes_out;
    int n_files;      /* output .safetensors files */
    double seconds;
} dc_reshard_stats;

/* Re-lays the checkpoint in_path into out_dir. With dry_run the plan is printed to `plan` (stdout
 * if NULL) and nothing is written. */
dc_status dc_reshard(const char *in_path, const char *out_dir, const dc_reshard_opts *o, FILE *plan,
                     dc_reshard_stats *stats, dc_err *err);

/* ---- fused routed experts ----------------------------------------------------------------------
 * The layout of recent transformers releases (DeepseekV3/V2 "experts as 3-D tensors"):
 *   model.layers.L.mlp.experts.gate_up_proj            [E, 2*I, H]  per expert: gate rows, then up rows
 *   model.layers.L.mlp.experts.down_proj               [E, H, I]
 * and, for FP8 weights, the block scales stacked the same way:
 *   model.layers.L.mlp.experts.gate_up_proj_scale_inv  [E, 2*ceil(I/br), ceil(H/bc)]  gate's block rows, then up's
 *   model.layers.L.mlp.experts.down_proj_scale_inv     [E, ceil(H/br), ceil(I/bc)]
 * (br x bc = weight_block_size, 128 x 128). When I is a multiple of br this is exactly the shape
 * transformers' FP8 experts use ([E, ceil(2I/br), ceil(H/bc)]); otherwise gate and up have
 * partial edge blocks of their own and the two scale grids are stacked, not merged. */

#endif
