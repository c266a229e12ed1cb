/* Expert pruning: measure each routed expert's share of the routing on calibration tokens with the
 * reference forward pass, keep the K most important experts of every MoE layer (the same number
 * in every expert group, so group-limited routing keeps its meaning), rewrite the router rows,
 * the correction bias and n_routed_experts, and report the KL divergence of the pruned model from
 * the original on held-out tokens. With merge, each removed expert is folded into the most similar
 * kept expert of its group (cosine similarity of the concatenated gate/up/down weights), as a
 * routing-frequency-weighted average, instead of being dropped. */
#ifndef DC_PRUNE_H
#define DC_PRUNE_H
#include "dc_forward.h"
#include <stdio.h>

typedef struct dc_prune_opts {
    int keep;               /* experts kept per MoE layer */
    bool merge;             /* fold removed experts into kept ones */
    bool by_freq;           /* importance = selection count (default: sum of routing weights) */
    double holdout;         /* fraction of the tokens held out for the KLD (default 0.25) */
    int64_t ctx;            /* chunk length (0: whole calibration / held-out sequence) */
    const char *tokens_path, *text_path, *tok_dir;
    const char *save_holdout; /* writes the held-out token ids here (JSON list), or NULL */
    bool force, dry_run;
    dc_fwd_opts fwd;
} dc_prune_opts;

void dc_prune_opts_init(dc_prune_opts *o);

typedef struct dc_prune_report {
    int n_layers;            /* MoE layers pruned */
    double kept_mass;        /* share of the calibration routing weight on kept experts */
    double kld;              /* mean KL(original || written model) on held-out tokens */
    double kld_drop;         /* with merge: the KLD of the plain drop variant */
    double ppl_base, ppl_model;
    int64_t n_calib, n_holdout, n_scored;
} dc_prune_report;

/* Writes the pruned checkpoint to out (staged, renamed into place when complete). log receives
 * the per-layer plan and progress (may be NULL). */
dc_status dc_prune_experts(const char *in, const char *out, const dc_prune_opts *o, FILE *log,
                           dc_prune_report *rep, dc_err *err);

#endif
