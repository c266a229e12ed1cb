/* Routed experts in either layout: per-expert tensors, or fused 3-D tensors
 * model.layers.L.mlp.experts.gate_up_proj [E, 2I, H] (per expert: gate rows, then up rows) and
 * model.layers.L.mlp.experts.down_proj [E, H, I], their FP8 scales stacked alongside as
 * ..._scale_inv [E, 2*ceil(I/br), ceil(H/bc)] and [E, ceil(H/br), ceil(I/bc)] (docs/reshard.md). */
#ifndef DC_EXPERTS_H
#define DC_EXPERTS_H
#include "dc_ckpt.h"

enum { DC_EXPERT_GATE = 0, DC_EXPERT_UP = 1, DC_EXPERT_DOWN = 2 };

/* Is name a fused expert tensor? Sets (if non-NULL) the layer, which (0 gate_up_proj,
 * 1 down_proj) and whether it is the _scale_inv. */
bool dc_fused_expert_name(const char *name, int *layer, int *which, bool *is_scale);

/* Does the checkpoint store layer L's routed experts fused? */
bool dc_ckpt_layer_has_fused_experts(const dc_ckpt *ck, int layer);

/* One routed expert's weight (which: DC_EXPERT_GATE/UP/DOWN) of a layer, whichever layout the
 * checkpoint uses, validated and readable with dc_weight_rows. For the fused layout slot->w points
 * at 2-D views (slot->t, slot->scale) into the fused tensors' mmapped bytes; so the slot must stay
 * where it is (not copied or moved) while slot->w is used, and ck must stay open. */
typedef struct dc_expert_slot {
    dc_weight w;
    dc_tensor t, scale;
    char name[2][192];
} dc_expert_slot;
dc_status dc_expert_weight_into(const dc_ckpt *ck, int layer, int expert, int which, dc_expert_slot *slot,
                                dc_err *err);

#endif
