/* A checkpoint: a directory (config.json + one or many safetensors shards + index) or a single
 * .safetensors file, opened read-only with every tensor mmapped. */
#ifndef DC_CKPT_H
#define DC_CKPT_H
#include "dc_config.h"
#include "dc_names.h"
#include "dc_safetensors.h"
#include "dc_strmap.h"

typedef struct dc_ckpt {
    char *path;          /* as given */
    char *dir;           /* directory holding config/tokenizer files */
    dc_st_file *files;   /* shards, in index/sorted order */
    int n_files;
    const dc_tensor **tensors; /* all tensors, sorted by name */
    size_t n_tensors;
    dc_strmap by_name;   /* name -> index into tensors */
    bool has_config;
    dc_config cfg;
    bool has_index;
    uint64_t index_total_size; /* metadata.total_size, 0 if absent */
    char **unindexed;    /* shard files in dir not named by the index */
    int n_unindexed;
    /* GGUF input only (NULL / 0 otherwise): the tensors as stored in the file(s), with their
     * GGUF names and ggml types (shape = ne reversed, row-major like safetensors), sorted by
     * name. ck->tensors is then the Hugging Face view of the same model (docs/gguf.md). */
    const dc_tensor **file_tensors;
    size_t n_file_tensors;
    struct dc_gguf_model *gguf;
    /* 4-bit layouts (compressed-tensors, GPTQ, AWQ, ModelOpt NVFP4; formats/dc_int4.h): the
     * Hugging Face view in tensors, the stored tensors in file_tensors. NULL otherwise. */
    struct dc_int4_model *int4;
} dc_ckpt;

/* path: a checkpoint directory, a .safetensors file, or a .gguf file (any split of a split
 * GGUF: all splits are opened). */
dc_status dc_ckpt_open(const char *path, dc_ckpt **out, dc_err *err);
void dc_ckpt_close(dc_ckpt *ck);
/* By name; for a GGUF, the Hugging Face name first, then the GGUF name. */
const dc_tensor *dc_ckpt_find(const dc_ckpt *ck, const char *name);
const char *dc_ckpt_file_name(const dc_ckpt *ck, const dc_tensor *t); /* shard base name */
/* Requires a config (DC_ERR_CONFIG with a message otherwise). */
dc_status dc_ckpt_require_config(const dc_ckpt *ck, dc_err *err);
/* Finds a weight by name with its FP8 block scale (name + "_scale_inv"), validated. */
dc_status dc_ckpt_weight(const dc_ckpt *ck, const char *name, dc_weight *w, dc_err *err);

/* Comparison of a checkpoint with the tensor set its config implies. */
typedef struct dc_check_item {
    const char *name; /* points into the checkpoint or the expected list */
    char detail[160];
} dc_check_item;

typedef struct dc_check {
    dc_check_item *missing, *unexpected, *mismatched;
    size_t n_missing, n_unexpected, n_mismatched;
    int n_mtp_layers_present;
    size_t n_fp8, n_scales;
    dc_expect *expect;
    size_t n_expect;
} dc_check;

dc_status dc_ckpt_check(const dc_ckpt *ck, dc_check *chk, dc_err *err);
void dc_check_free(dc_check *chk);

#endif
