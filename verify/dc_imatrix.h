/* Importance matrices (deepcast imatrix): per weight matrix, the sum over the calibration tokens of
 * the squared input activations of each column, and the number of tokens, collected from the
 * reference forward pass (dc_model_set_act_hook) and written in llama.cpp's imatrix formats
 * (tools/imatrix/imatrix.cpp), under the GGUF tensor names llama-quantize looks up:
 *   - GGUF: per tensor NAME, F32 "NAME.in_sum2" {ne0, n_mat} and "NAME.counts" {1, n_mat}, sorted by
 *     name; keys general.type = "imatrix", imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size;
 *   - legacy .dat: entries with all-zero counts left out, values (sum / count) * ncall.
 * Stacked routed experts (blk.L.ffn_{gate,up,down}_exps.weight) have one row of sums and one count
 * per expert (the tokens routed to it; 0 for an expert never chosen); every other matrix one count.
 * attn_k_b / attn_v_b (llama.cpp's MLA) get per-head sums of the nope queries and of the attention
 * outputs in latent space. As llama-imatrix: the MTP layer is not run, output.weight is collected
 * only on request, products over fewer than 16 tokens are skipped (except experts). */
#ifndef DC_IMATRIX_H
#define DC_IMATRIX_H
#include "dc_forward.h"

typedef struct dc_imatrix_acc dc_imatrix_acc;

/* An accumulator for m (attach it with dc_model_set_act_hook(m, dc_imatrix_hook, acc)). */
dc_status dc_imatrix_acc_new(const dc_model *m, bool process_output, dc_imatrix_acc **out, dc_err *err);
void dc_imatrix_acc_free(dc_imatrix_acc *a);
void dc_imatrix_hook(void *acc, const dc_act *a);
/* The first error the hook met (out of memory, an unknown matrix), DC_OK if none. */
dc_status dc_imatrix_acc_status(const dc_imatrix_acc *a, dc_err *err);
size_t dc_imatrix_acc_count(const dc_imatrix_acc *a);

/* Writes the GGUF imatrix (legacy: the .dat format). dataset: the calibration file's name. */
dc_status dc_imatrix_write(const dc_imatrix_acc *a, const char *path, bool legacy, const char *dataset,
                           int32_t chunk_count, int32_t chunk_size, bool force, dc_err *err);

#endif
