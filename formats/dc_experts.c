/* Routed experts in either layout: one tensor per expert and projection
 * (model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight), or fused 3-D tensors
 * (model.layers.L.mlp.experts.gate_up_proj [E, 2I, H], down_proj [E, H, I], FP8 scales stacked
 * alongside; written by deepcast reshard --merge-experts, docs/reshard.md). */
#include "dc_experts.h"

#include <stdio.h>
#include <string.h>

static const char *PROJ[3] = {"gate", "up", "down"};
static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static bool parse_idx(const char **p, long *out)
{
    const char *s = *p;
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
        return false;
    long v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > 100000000)
            return false;
        s++;
    }
    *out = v;
    *p = s;
    return true;
}

bool dc_fused_expert_name(const char *name, int *layer, int *which, bool *is_scale)
{
    const char *p = name;
    long l;
    if (strncmp(p, "model.layers.", 13))
        return false;
    p += 13;
    if (!parse_idx(&p, &l) || strncmp(p, ".mlp.experts.", 13))
        return false;
    p += 13;
    int w;
    if (!strncmp(p, "gate_up_proj", 12)) {
        w = 0;
        p += 12;
    } else if (!strncmp(p, "down_proj", 9)) {
        w = 1;
        p += 9;
    } else
        return false;
    bool sc = false;
    if (!strcmp(p, "_scale_inv"))
        sc = true;
    else if (*p)
        return false;
    if (layer)
        *layer = (int)l;
    if (which)
        *which = w;
    if (is_scale)
        *is_scale = sc;
    return true;
}

/* Fills slot with expert e's projection `which` from the fused tensor f (and its scale s). */
static dc_status fused_view(const dc_ckpt *ck, const dc_tensor *f, const dc_tensor *s, int layer, int e, int which,
                            dc_expert_slot *slot, const char *file_name, dc_err *err)
{
    int br = ck->has_config && ck->cfg.block_rows ? ck->cfg.block_rows : 128;
    int bc = ck->has_config && ck->cfg.block_cols ? ck->cfg.block_cols : 128;
    char b1[64];
    if (f->ndim != 3 || (which != DC_EXPERT_DOWN && f->shape[1] % 2))
        return dc_err_set(err, DC_ERR_MODEL, "%s: fused expert tensor %s has shape %s; expected [E, %s]", file_name,
                          f->name, dc_shape_str(f->ndim, f->shape, b1, sizeof b1),
                          which == DC_EXPERT_DOWN ? "H, I" : "2*I, H");
    if (e < 0 || e >= f->shape[0])
        return dc_err_set(err, DC_ERR_MODEL, "%s: expert %d of layer %d: %s holds %lld experts", file_name, e, layer,
                          f->name, (long long)f->shape[0]);
    bool gu = which != DC_EXPERT_DOWN;
    int64_t rows = gu ? f->shape[1] / 2 : f->shape[1], cols = f->shape[2];
    uint64_t esz = (uint64_t)dc_dtype_size(f->dtype);
    uint64_t pb = (uint64_t)rows * (uint64_t)cols * esz;
    uint64_t off = (uint64_t)e * (uint64_t)f->shape[1] * (uint64_t)cols * esz + (which == DC_EXPERT_UP ? pb : 0);
    dc_tensor *t = &slot->t;
    snprintf(slot->name[0], sizeof slot->name[0], "%s[%d].%s", f->name, e, PROJ[which]);
    t->name = slot->name[0];
    t->dtype = f->dtype;
    t->ndim = 2;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->nbytes = pb;
    t->offset = f->offset + off;
    t->data = f->data + off;
    t->file = f->file;
    const dc_tensor *sv = NULL;
    if (s) {
        int64_t sr = cdiv(rows, br), sc = cdiv(cols, bc);
        int64_t want1 = gu ? 2 * sr : sr;
        if (s->ndim != 3 || s->shape[0] != f->shape[0] || s->shape[1] != want1 || s->shape[2] != sc) {
            if (gu && s->ndim == 3 && s->shape[1] == cdiv(2 * rows, br) && s->shape[2] == sc)
                return dc_err_set(err, DC_ERR_UNSUPPORTED,
                                  "%s: scale %s is %s: one block grid over gate and up together (I = %lld is not a "
                                  "multiple of %d); expert %d's gate and up scales cannot be separated",
                                  file_name, s->name, dc_shape_str(s->ndim, s->shape, b1, sizeof b1), (long long)rows, br,
                                  e);
            return dc_err_set(err, DC_ERR_MODEL, "%s: scale %s has shape %s; %s with %dx%d blocks needs %lldx%lldx%lld",
                              file_name, s->name, dc_shape_str(s->ndim, s->shape, b1, sizeof b1), f->name, br, bc,
                              (long long)f->shape[0], (long long)want1, (long long)sc);
        }
        uint64_t ssz = (uint64_t)dc_dtype_size(s->dtype), sb = (uint64_t)sr * (uint64_t)sc * ssz;
        uint64_t soff = (uint64_t)e * (uint64_t)want1 * (uint64_t)sc * ssz + (which == DC_EXPERT_UP ? sb : 0);
        dc_tensor *st = &slot->scale;
        snprintf(slot->name[1], sizeof slot->name[1], "%s[%d].%s", s->name, e, PROJ[which]);
        st->name = slot->name[1];
        st->dtype = s->dtype;
        st->ndim = 2;
        st->shape[0] = sr;
        st->shape[1] = sc;
        st->nbytes = sb;
        st->offset = s->offset + soff;
        st->data = s->data + soff;
        st->file = s->file;
        sv = st;
    }
    return dc_weight_init(&slot->w, t, sv, br, bc, file_name, err);
}

bool dc_ckpt_layer_has_fused_experts(const dc_ckpt *ck, int layer)
{
    char n[128];
    snprintf(n, sizeof n, "model.layers.%d.mlp.experts.gate_up_proj", layer);
    if (dc_ckpt_find(ck, n))
        return true;
    snprintf(n, sizeof n, "model.layers.%d.mlp.experts.down_proj", layer);
    return dc_ckpt_find(ck, n) != NULL;
}

/* Finds the fused tensor (and scale) holding expert weights `which` of layer; NULL if per-expert. */
static dc_status find_expert(const dc_ckpt *ck, int layer, int expert, int which, dc_weight *w, const dc_tensor **f,
                             const dc_tensor **s, dc_err *err)
{
    *f = *s = NULL;
    if (which < 0 || which > 2)
        return dc_err_set(err, DC_ERR_INTERNAL, "expert weight kind %d (0 gate, 1 up, 2 down)", which);
    char n[256];
    snprintf(n, sizeof n, "model.layers.%d.mlp.experts.%d.%s_proj.weight", layer, expert, PROJ[which]);
    if (dc_ckpt_find(ck, n))
        return dc_ckpt_weight(ck, n, w, err);
    char fn[160], sn[192];
    snprintf(fn, sizeof fn, "model.layers.%d.mlp.experts.%s", layer, which == DC_EXPERT_DOWN ? "down_proj" : "gate_up_proj");
    snprintf(sn, sizeof sn, "%s_scale_inv", fn);
    *f = dc_ckpt_find(ck, fn);
    if (!*f)
        return dc_err_set(err, DC_ERR_MODEL, "%s: missing tensor %s (and no fused %s)", ck->path, n, fn);
    *s = dc_ckpt_find(ck, sn);
    return DC_OK;
}

dc_status dc_expert_weight_into(const dc_ckpt *ck, int layer, int expert, int which, dc_expert_slot *slot,
                                dc_err *err)
{
    memset(slot, 0, sizeof *slot);
    const dc_tensor *f, *s;
    dc_status st = find_expert(ck, layer, expert, which, &slot->w, &f, &s, err);
    if (st || !f)
        return st;
    return fused_view(ck, f, s, layer, expert, which, slot, dc_ckpt_file_name(ck, f), err);
}

