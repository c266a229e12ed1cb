/* safetensors: reader (mmap, validated header) and streaming writer.
 *
 * File layout (https://github.com/huggingface/safetensors):
 *   1. u64 little-endian N: length of the header.
 *   2. N bytes of UTF-8 JSON: an object mapping tensor names to
 *      {"dtype": "BF16", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, plus an optional
 *      "__metadata__" object of string -> string. Writers pad the JSON with spaces to 8 bytes.
 *   3. The data section: offsets are relative to its start. Tensors are contiguous and cover it
 *      exactly (no holes, no overlap), each span == prod(shape) * dtype size.
 * Every number above is checked: in range, no overflow, no overlap, shape x dtype == span. */
#ifndef DC_SAFETENSORS_H
#define DC_SAFETENSORS_H
#include "dc_io.h"
#include "dc_tensor.h"

#define DC_ST_MAX_HEADER (100u * 1000u * 1000u)

typedef struct dc_kv {
    char *key, *value;
} dc_kv;

typedef struct dc_st_file {
    char *path;
    dc_map map;
    dc_tensor *tensors; /* in header order */
    size_t n_tensors;
    dc_kv *meta; /* __metadata__ */
    size_t n_meta;
    uint64_t data_start;
} dc_st_file;

/* Parses and validates a header from a buffer holding the whole file (buf, size). Tensor data
 * pointers point into buf. name is used in messages. file_index is stored into each tensor. */
dc_status dc_st_parse(const uint8_t *buf, uint64_t size, const char *name, int file_index,
                      dc_st_file *out, dc_err *err);
dc_status dc_st_open(const char *path, int file_index, dc_st_file *out, dc_err *err);
void dc_st_close(dc_st_file *f);

/* ---- writer ------------------------------------------------------------------------------ */
typedef struct dc_stw_tensor {
    char *name;
    dc_dtype dtype;
    int ndim;
    int64_t shape[DC_MAX_DIMS];
    uint64_t nbytes;
    int shard;
    uint64_t offset; /* absolute offset in the shard file */
} dc_stw_tensor;

typedef struct dc_stw dc_stw;

dc_stw *dc_stw_new(void);
void dc_stw_free(dc_stw *w);
/* Adds a tensor to the plan (in output order). Returns its index via *idx. */
dc_status dc_stw_add(dc_stw *w, const char *name, dc_dtype dt, int ndim, const int64_t *shape,
                     size_t *idx, dc_err *err);
dc_status dc_stw_meta(dc_stw *w, const char *key, const char *value, dc_err *err);
/* Shard names use 5 digits for the total (Hugging Face); DeepSeek's release uses 6
 * (model-00001-of-000163.safetensors). Call before dc_stw_plan. */
void dc_stw_set_total_digits(dc_stw *w, int digits);
/* Assigns shards: a new shard starts when the next tensor would push the current one past
 * max_shard_size (0 = one file). Tensors are never split. */
dc_status dc_stw_plan(dc_stw *w, uint64_t max_shard_size, dc_err *err);
size_t dc_stw_count(const dc_stw *w);
const dc_stw_tensor *dc_stw_get(const dc_stw *w, size_t idx);
int dc_stw_n_shards(const dc_stw *w);
uint64_t dc_stw_total_bytes(const dc_stw *w);
/* The shard's file name: "model.safetensors" for one shard, else model-00001-of-00004.safetensors. */
const char *dc_stw_shard_name(const dc_stw *w, int shard);
/* Creates the shard files in dir (a staging directory), writes their headers. */
dc_status dc_stw_open(dc_stw *w, const char *dir, dc_err *err);
/* Writes bytes of tensor idx at byte offset off within the tensor. Thread-safe. */
dc_status dc_stw_write(dc_stw *w, size_t idx, uint64_t off, const void *buf, size_t n, dc_err *err);
/* Closes the shards and writes model.safetensors.index.json when there is more than one. */
dc_status dc_stw_finish(dc_stw *w, dc_err *err);
/* Removes what was written (on failure). */
void dc_stw_abort(dc_stw *w);

#endif
