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

/* Is name a fused expert tensor? Sets (if non-NULL) the layer, which (0 gate_up_proj,
 * 1 down_proj) and whether it is the _scale_inv. */
bool dc_reshard_is_fused_name(const char *name, int *layer, int *which, bool *is_scale);

/* Does the checkpoint store layer L's routed experts fused? */
bool dc_ckpt_layer_has_fused_experts(const dc_ckpt *ck, int layer);

enum { DC_EXPERT_GATE = 0, DC_EXPERT_UP = 1, DC_EXPERT_DOWN = 2 };

/* One routed expert's weight (which: DC_EXPERT_GATE/UP/DOWN) of layer `layer`, whichever layout
 * the checkpoint uses: per-expert tensors (then w points at the checkpoint's own dc_tensors) or
 * the fused tensors (then w->t and w->scale point at 2-D dc_tensor views, [I, H] or [H, I] and
 * their [ceil(rows/br), ceil(cols/bc)] scale, whose data points into the fused tensors' mmapped
 * bytes). The result is validated with dc_weight_init and can be read with dc_weight_rows.
 *
 * Lifetime: the views are owned by this module, created once per fused tensor (thread-safe,
 * immutable afterwards) and stay valid until dc_expert_views_release(ck) or process exit; like
 * every dc_tensor of ck they must not be used after dc_ckpt_close(ck). Call
 * dc_expert_views_release(ck) just before dc_ckpt_close(ck) to free them early (optional). */
dc_status dc_expert_weight(const dc_ckpt *ck, int layer, int expert, int which, dc_weight *w, dc_err *err);
void dc_expert_views_release(const dc_ckpt *ck);

/* The same, with caller-owned storage for the views (no shared state): w lives in the slot and
 * points into it, so the slot must stay where it is (do not copy or move it) while w is used,
 * and ck must stay open. */
typedef struct dc_expert_slot {
    dc_weight w;
    dc_tensor t, scale;
    char name[2][192];
} dc_expert_slot;
dc_status dc_expert_weight_into(const dc_ckpt *ck, int layer, int expert, int which, dc_expert_slot *slot,
                                dc_err *err);

#endif
