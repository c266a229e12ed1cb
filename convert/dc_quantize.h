/* deepcast quantize IN OUT TYPE: a GGUF (or a Hugging Face checkpoint, through the GGUF export in
 * one pass) -> a GGUF of llama-quantize's file type TYPE, byte for byte what llama.cpp's
 * llama-quantize writes for the same input (src/llama-quant.cpp, tools/quantize/quantize.cpp of
 * the llama.cpp release node-llama-cpp 3.22.1 ships; tests/interop/quantize_check.c compares).
 *
 * The same per-tensor type choice (tensor_allows_quantization, llama_tensor_get_type with its
 * counters, categories and layer rules, tensor_type_fallback for rows that are not a whole number
 * of blocks), the same tensor order (llama_model_loader's weights_map: tensors outside blk.N first,
 * then by layer, each group by name), the same KVs (the input's, split keys removed, then
 * general.quantization_version, general.file_type and the quantize.imatrix.* keys appended), the
 * same quantizers (quantize/dc_quants.h, byte-exact with ggml_quantize_chunk, one imatrix slice per
 * expert), alignment 32 with zero padding.
 *
 * Streamed: work units (a block of rows of one tensor, never crossing an expert) are read as f32,
 * quantized and written with pwrite at their planned offset on all threads; input pages are
 * released as they are consumed; memory is threads x one unit. The output is written under a
 * temporary name and renamed when complete; its bytes do not depend on the thread count. See
 * docs/quantize.md. */
#ifndef DC_QUANTIZE_H
#define DC_QUANTIZE_H
#include "dc_common.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* llama_ftype values (include/llama.h) of the file types deepcast writes */
enum {
    DC_FTYPE_ALL_F32 = 0, DC_FTYPE_F16 = 1, DC_FTYPE_Q4_0 = 2, DC_FTYPE_Q4_1 = 3, DC_FTYPE_Q8_0 = 7,
    DC_FTYPE_Q5_0 = 8, DC_FTYPE_Q5_1 = 9, DC_FTYPE_Q2_K = 10, DC_FTYPE_Q3_K_S = 11, DC_FTYPE_Q3_K_M = 12,
    DC_FTYPE_Q3_K_L = 13, DC_FTYPE_Q4_K_S = 14, DC_FTYPE_Q4_K_M = 15, DC_FTYPE_Q5_K_S = 16, DC_FTYPE_Q5_K_M = 17,
    DC_FTYPE_Q6_K = 18, DC_FTYPE_Q2_K_S = 21, DC_FTYPE_IQ4_NL = 25, DC_FTYPE_BF16 = 32, DC_FTYPE_IQ4_XS = 30,
    DC_FTYPE_TQ1_0 = 36, DC_FTYPE_TQ2_0 = 37, DC_FTYPE_MXFP4_MOE = 38,
};

/* A llama-quantize type name (case-insensitive, "Q4_K_M", "q4_k" = Q4_K_M, "MXFP4_MOE", "F16", ...)
 * or its ftype number -> ftype and the canonical name. False if deepcast does not write it. */
bool dc_ftype_parse(const char *s, int *ftype, const char **name);
const char *dc_ftype_name(int ftype);
/* The list of names, for usage messages ("Q4_0, Q4_1, ..."). */
const char *dc_ftype_names(void);
/* A ggml type name as ggml_type_name spells it, case-insensitive ("q4_K", "Q8_0", "f16") -> id;
 * -1 if unknown. */
int dc_ggml_type_parse(const char *s);

typedef struct dc_tensor_type_opt {
    const char *pattern; /* regular expression searched in the tensor name (lower-cased as llama-quantize does) */
    int type;            /* ggml type id */
} dc_tensor_type_opt;

/* --recipe NAME: a named list of --tensor-type options, applied after the user's own (so those win).
 * "deepseek": every quantizable tensor outside the routed experts (MLA attention incl. attn_k_b /
 * attn_v_b, shared experts, the dense layers' MLP, the nextn layer) at q8_0; the routed experts, the
 * token embeddings and output.weight follow the file type. llama-quantize with the same --tensor-type
 * options writes the same file. NULL if unknown. */
const dc_tensor_type_opt *dc_quantize_recipe(const char *name, size_t *n);

typedef struct dc_quantize_opts {
    int ftype;
    const char *imatrix;              /* GGUF imatrix or legacy .dat; NULL: none */
    const dc_tensor_type_opt *tt;     /* --tensor-type, in order (the first match wins) */
    size_t n_tt;
    int output_tensor_type;           /* ggml id, -1: by the rules */
    int token_embedding_type;         /* ggml id, -1: by the rules */
    bool pure;                        /* no k-quant mixtures: every quantizable tensor gets the default type */
    bool leave_output_tensor;         /* output.weight not (re)quantized */
    bool allow_requantize;            /* allow quantized inputs */
    bool drop_mtp;                    /* Hugging Face input: leave out the nextn layers */
    bool dry_run;                     /* print the plan, write nothing */
    bool force;                       /* replace OUT */
    bool progress;
} dc_quantize_opts;

typedef struct dc_quantize_stats {
    size_t n_tensors, n_quantized, n_copied, n_fallback;
    uint64_t bytes_in;   /* tensor bytes of the input (for a Hugging Face input: of its F32 GGUF) */
    uint64_t bytes_out;  /* tensor bytes written */
    uint64_t file_bytes; /* size of OUT */
    uint64_t n_elements;
    size_t n_imatrix_entries, n_imatrix_used;
    double seconds;
} dc_quantize_stats;

void dc_quantize_opts_init(dc_quantize_opts *o);
/* in: a .gguf (any split of a split set) or a Hugging Face checkpoint directory. With dry_run the
 * plan (tensor, shape, input type, output type, MiB, fallbacks) and totals go to plan. */
dc_status dc_quantize(const char *in, const char *out, const dc_quantize_opts *o, FILE *plan, dc_quantize_stats *stats,
                      dc_err *err);

/* ---- importance matrices (llama.cpp tools/imatrix, common/imatrix-loader.cpp) ----------------
 * GGUF: per tensor NAME, "NAME.in_sum2" (F32 {ne0, n_mat}: sums of squared activations) and
 * "NAME.counts" (F32 {1, n_mat}); keys imatrix.datasets (arr[str]), imatrix.chunk_count,
 * imatrix.chunk_size (u32). Legacy .dat: i32 n_entries, per entry i32 name length, name, i32 ncall,
 * i32 nval, nval f32 (mean * ncall); then optionally i32 chunk count, i32 length, dataset name. */
typedef struct dc_imatrix_entry {
    char *name;
    float *values; /* normalized as llama-quantize does: sums / count per matrix (1 where count 0) */
    size_t n;
} dc_imatrix_entry;

typedef struct dc_imatrix {
    dc_imatrix_entry *e; /* sorted by name */
    size_t n;
    char *dataset;       /* the first dataset, NULL if none */
    int32_t chunk_count;
    bool legacy;
} dc_imatrix;

dc_status dc_imatrix_load(const char *path, dc_imatrix *im, dc_err *err);
void dc_imatrix_free(dc_imatrix *im);
const dc_imatrix_entry *dc_imatrix_find(const dc_imatrix *im, const char *name);

#endif
