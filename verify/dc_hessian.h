/* GPTQ Hessians (deepcast convert --gptq): per weight matrix, H = sum over the calibration tokens
 * of x x^T for its input rows x (K x K, double), and the token count, collected from the reference
 * forward pass through dc_model_set_act_hook. Matrices that multiply the same input share one
 * Hessian: gate_proj and up_proj (dense MLP, shared experts, each routed expert), and the attention
 * inputs q_proj / q_a_proj / kv_a_proj_with_mqa (and k_proj / v_proj of the dense distills).
 *
 * Only the roles in the mask are collected (the matrices that will be quantized). Memory is
 * K * K * 8 bytes per distinct input: the accumulator fails cleanly (DC_ERR_NOMEM, naming the
 * matrix and the total) when a new matrix would take it past max_bytes. The MTP layer's matrices
 * are collected when the forward pass runs it (dc_fwd_opts.mtp with routing requested). A shared
 * input is counted once per pass: a matrix of the group seeing the rows the group last accumulated
 * adds nothing, even with another product in between (q_a, q_b, kv_a). Sums are taken over the
 * tokens in order, each element by one thread: identical for any thread count. */
#ifndef DC_HESSIAN_H
#define DC_HESSIAN_H
#include "dc_forward.h"

typedef struct dc_hessian_acc dc_hessian_acc;

/* role_mask: bit r set = collect the inputs of dc_role r. max_bytes: 0 = no limit. */
dc_status dc_hessian_acc_new(const dc_model *m, uint64_t role_mask, uint64_t max_bytes, dc_hessian_acc **out,
                             dc_err *err);
void dc_hessian_acc_free(dc_hessian_acc *a);
void dc_hessian_hook(void *acc, const dc_act *a);
/* The first error the hook met, DC_OK if none. */
dc_status dc_hessian_acc_status(const dc_hessian_acc *a, dc_err *err);
/* Distinct inputs collected and their bytes. */
size_t dc_hessian_acc_count(const dc_hessian_acc *a);
uint64_t dc_hessian_acc_bytes(const dc_hessian_acc *a);

/* The Hessian of the weight with this Hugging Face name (e.g. model.layers.3.mlp.experts.5.up_proj.weight):
 * K x K row-major, symmetric, with *count tokens; NULL when it was not collected (count 0) or K
 * differs. The memory stays owned by the accumulator. Not thread-safe (it fills the lower
 * triangle on first use). */
const double *dc_hessian_find(const dc_hessian_acc *a, const char *name, int64_t K, int64_t *count);

/* GPTQ's factor of the same Hessian (dc_gptq_prepare with dampening damp): computed once per
 * distinct input and kept (so gate / up and q_a / kv_a share it), owned by the accumulator. *U is
 * NULL (DC_OK) when there is no Hessian for name or nothing to weight. Errors: the factorization's
 * (DC_ERR_INPUT when not positive definite, DC_ERR_NOMEM). Not thread-safe. */
dc_status dc_hessian_factor(dc_hessian_acc *a, const char *name, int64_t K, double damp, const double **U,
                            dc_err *err);

/* Layer-by-layer collection with the factors spilled to a file, so that only one layer's Hessians
 * are in memory at a time (the limit then applies per layer):
 *   dc_hessian_acc_set_layer: collect only the inputs of that layer (-1: every layer, the default);
 *   dc_hessian_spill: for every Hessian collected and not yet spilled, computes GPTQ's factor U
 *     (dc_gptq_prepare with damp), appends it to the file fd (K * K doubles at a multiple of 8),
 *     frees the Hessian and its factor; an input seen again afterwards is an error;
 *   dc_hessian_spill_map: maps the file (read-only) once everything is spilled; dc_hessian_factor
 *     then returns U from the mapping (with the same damp; dc_hessian_find returns NULL).
 * The factors are those dc_hessian_factor computes from the same sums: the same bytes out. */
void dc_hessian_acc_set_layer(dc_hessian_acc *a, int layer);
dc_status dc_hessian_spill(dc_hessian_acc *a, int fd, double damp, dc_err *err);
dc_status dc_hessian_spill_map(dc_hessian_acc *a, int fd, dc_err *err);
uint64_t dc_hessian_spill_bytes(const dc_hessian_acc *a);

#endif
