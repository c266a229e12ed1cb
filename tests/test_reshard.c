/* convert/dc_reshard: fused expert names, and dc_expert_weight / dc_expert_weight_into reading
 * every routed expert identically from the per-expert and the fused layout (FP8 + BF16). */
#include "dc_test.h"
#include "dc_reshard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_names(void)
{
    int l = -1, w = -1;
    bool sc = true;
    CHECK(dc_fused_expert_name("model.layers.3.mlp.experts.gate_up_proj", &l, &w, &sc) && l == 3 && w == 0 && !sc);
    CHECK(dc_fused_expert_name("model.layers.61.mlp.experts.down_proj_scale_inv", &l, &w, &sc) && l == 61 && w == 1 &&
          sc);
    CHECK(!dc_fused_expert_name("model.layers.3.mlp.experts.0.gate_proj.weight", NULL, NULL, NULL));
    CHECK(!dc_fused_expert_name("model.layers.3.mlp.experts.gate_up_proj.weight", NULL, NULL, NULL));
    CHECK(!dc_fused_expert_name("model.layers.03.mlp.experts.down_proj", NULL, NULL, NULL));
    CHECK(!dc_fused_expert_name("model.layers.3.mlp.shared_experts.down_proj", NULL, NULL, NULL));
    CHECK(!dc_fused_expert_name("model.layers.3.mlp.experts.down_proj_scale", NULL, NULL, NULL));
}

/* Compares expert weights of two checkpoints (a: per-expert, b: fused) through both lookups. */
static void compare_experts(const char *va, const char *vb)
{
    dc_err err = {0};
    dc_ckpt *a = NULL, *b = NULL;
    CHECK_OK(dc_ckpt_open(va, &a, &err), &err);
    CHECK_OK(dc_ckpt_open(vb, &b, &err), &err);
    if (!a || !b) {
        dc_ckpt_close(a);
        dc_ckpt_close(b);
        return;
    }
    const dc_config *c = &a->cfg;
    int checked = 0, bad = 0;
    float *fa = NULL, *fb = NULL;
    for (int L = 0; L < c->n_layers + c->n_mtp_layers; L++) {
        if (!dc_config_layer_is_moe(c, L))
            continue;
        CHECK(!dc_ckpt_layer_has_fused_experts(a, L) && dc_ckpt_layer_has_fused_experts(b, L));
        for (int e = 0; e < c->n_experts_routed; e++)
            for (int k = 0; k < 3; k++) {
                dc_expert_slot sa, sb;
                dc_status s1 = dc_expert_weight_into(a, L, e, k, &sa, &err);
                dc_status s2 = s1 ? s1 : dc_expert_weight_into(b, L, e, k, &sb, &err);
                const dc_weight wa = sa.w, wb = sb.w;
                if (s1 || s2) {
                    CHECK_MSG(0, "layer %d expert %d %d: %s", L, e, k, err.msg);
                    bad++;
                    continue;
                }
                size_t n = (size_t)(wa.rows * wa.cols);
                bool same = wa.rows == wb.rows && wa.cols == wb.cols && wa.t->dtype == wb.t->dtype &&
                            wa.t->nbytes == wb.t->nbytes && !memcmp(wa.t->data, wb.t->data, wa.t->nbytes) &&
                            (!wa.scale) == (!wb.scale) &&
                            (!wa.scale || (wa.scale->nbytes == wb.scale->nbytes &&
                                           !memcmp(wa.scale->data, wb.scale->data, wa.scale->nbytes))) &&
                            sb.w.t == &sb.t;
                fa = realloc(fa, n * sizeof *fa);
                fb = realloc(fb, n * sizeof *fb);
                same = same && fa && fb && dc_weight_rows(&wa, 0, wa.rows, fa, DC_DEQ_BF16_ROUND, &err) == DC_OK &&
                       dc_weight_rows(&wb, 0, wb.rows, fb, DC_DEQ_BF16_ROUND, &err) == DC_OK &&
                       !memcmp(fa, fb, n * sizeof *fa);
                if (!same && bad++ < 5)
                    fprintf(stderr, "%s vs %s: layer %d expert %d proj %d differ\n", va, vb, L, e, k);
                checked++;
            }
    }
    CHECK_MSG(bad == 0 && checked > 0, "%s: %d of %d expert weights differ", vb, bad, checked);
    /* errors: expert out of range, a layer without experts */
    dc_expert_slot w;
    CHECK(dc_expert_weight_into(b, c->first_k_dense_replace, c->n_experts_routed, 0, &w, &err) == DC_ERR_MODEL);
    CHECK(strstr(err.msg, "holds") != NULL);
    CHECK(dc_expert_weight_into(b, 0, 0, 0, &w, &err) == DC_ERR_MODEL);
    CHECK(strstr(err.msg, "missing tensor model.layers.0.mlp.experts.0.gate_proj.weight") != NULL);
    CHECK(dc_expert_weight_into(b, 1, 0, 3, &w, &err) == DC_ERR_INTERNAL);
    free(fa);
    free(fb);
    dc_ckpt_close(a);
    dc_ckpt_close(b);
}

static void test_lookup(void)
{
    static const char *V[] = {"v3-fp8", "v3-bf16", "v2lite"};
    for (int i = 0; i < 3; i++) {
        char in[1024], out[1024];
        snprintf(in, sizeof in, "%s/models/%s", DC_ORACLE, V[i]);
        snprintf(out, sizeof out, "%s/merged", dc_test_tmpdir(V[i]));
        dc_reshard_opts o;
        dc_reshard_opts_init(&o);
        o.mode = DC_RESHARD_MERGE_EXPERTS;
        o.force = true;
        dc_reshard_stats s;
        dc_err err = {0};
        CHECK_OK(dc_reshard(in, out, &o, NULL, &s, &err), &err);
        CHECK(s.n_out < s.n_in && s.bytes_out == s.bytes_in);
        compare_experts(in, out);
    }
}

int main(void)
{
    test_names();
    test_lookup();
    return dc_test_done();
}
