/* GGUF v3 (ggml's model file format): validating reader and streaming writer.
 *
 * File layout (ggml/include/gguf.h; everything little-endian):
 *   1. magic "GGUF", u32 version (3), i64 n_tensors, i64 n_kv
 *   2. n_kv key/value pairs: key (u64 length + bytes, no NUL), u32 type, value. Arrays are
 *      u32 element type + u64 count + elements (no nested arrays). Strings: u64 length + bytes.
 *      Bools are one byte.
 *   3. n_tensors tensor infos: name (string, < 64 bytes), u32 n_dims (<= 4), i64 ne[n_dims]
 *      (ne[0] is the innermost, contiguous dimension: the reverse of safetensors' shape), u32
 *      ggml type, u64 offset relative to the data section.
 *   4. zero padding to `general.alignment` (u32 power of two, default 32), then the data
 *      section: the tensors in info order, each padded to the alignment.
 * Every count, length, offset and size is checked against the buffer (see dc_gguf_parse), so a
 * malformed file gives DC_ERR_FORMAT with a message naming the file, the key or tensor and the
 * numbers, never a crash.
 *
 * Split models (llama.cpp's gguf-split / convert_hf_to_gguf.py --split-max-size):
 * NAME-00001-of-00003.gguf ... each a complete GGUF holding some of the tensors; the first holds
 * all metadata; every split has split.no (u16, 0-based), split.count (u16) and
 * split.tensors.count (i32, the total over all splits). */
#ifndef DC_GGUF_H
#define DC_GGUF_H
#include "dc_io.h"
#include "dc_tensor.h"

#define DC_GGUF_VERSION 3
#define DC_GGUF_DEFAULT_ALIGNMENT 32
#define DC_GGUF_MAX_DIMS 4
#define DC_GGUF_MAX_NAME 64 /* ggml's GGML_MAX_NAME: a tensor name has fewer bytes */

typedef enum dc_gguf_type {
    DC_GGUF_U8 = 0, DC_GGUF_I8 = 1, DC_GGUF_U16 = 2, DC_GGUF_I16 = 3, DC_GGUF_U32 = 4, DC_GGUF_I32 = 5,
    DC_GGUF_F32 = 6, DC_GGUF_BOOL = 7, DC_GGUF_STRING = 8, DC_GGUF_ARRAY = 9, DC_GGUF_U64 = 10,
    DC_GGUF_I64 = 11, DC_GGUF_F64 = 12, DC_GGUF_TYPE_COUNT
} dc_gguf_type;

const char *dc_gguf_type_name(dc_gguf_type t);

typedef struct dc_gguf_kv {
    char *key;             /* NUL-terminated copy */
    dc_gguf_type type;     /* DC_GGUF_ARRAY for arrays */
    dc_gguf_type arr_type; /* element type of an array (== type for scalars) */
    uint64_t n;            /* elements: 1 for a scalar */
    const uint8_t *data;   /* the value's bytes in the buffer (after the type / array header) */
    uint64_t size;         /* their byte length */
} dc_gguf_kv;

typedef struct dc_gguf_tinfo {
    char *name;
    uint32_t n_dims;
    int64_t ne[DC_GGUF_MAX_DIMS]; /* ggml order, unused dims = 1 */
    uint32_t type;                /* ggml type id (dc_ggml.h) */
    dc_dtype dtype;               /* dc_ggml_dtype(type) */
    uint64_t offset;              /* relative to the data section */
    uint64_t nbytes;
    const uint8_t *data;          /* in the buffer */
} dc_gguf_tinfo;

typedef struct dc_gguf_file {
    char *path;
    dc_map map;          /* when opened from a file */
    const uint8_t *buf;  /* the whole file */
    uint64_t size;
    uint32_t version;
    dc_gguf_kv *kv;
    size_t n_kv;
    dc_gguf_tinfo *tensors; /* in file order */
    size_t n_tensors;
    uint32_t alignment;
    uint64_t data_start; /* absolute offset of the data section */
} dc_gguf_file;

/* Parses and validates a GGUF held entirely in buf (the fuzz entry point). Tensor data pointers
 * point into buf. name is used in messages. */
dc_status dc_gguf_parse(const uint8_t *buf, uint64_t size, const char *name, dc_gguf_file *out, dc_err *err);
/* mmaps and parses path. */
dc_status dc_gguf_open(const char *path, dc_gguf_file *out, dc_err *err);
void dc_gguf_close(dc_gguf_file *f);
/* Opens path, or, for a split NAME-0000i-of-0000n.gguf, every split of its set (split.no,
 * split.count and split.tensors.count checked). *files: n files, in split order. */
dc_status dc_gguf_open_all(const char *path, dc_gguf_file **files, int *n, dc_err *err);
void dc_gguf_close_all(dc_gguf_file *files, int n);

const dc_gguf_kv *dc_gguf_find(const dc_gguf_file *f, const char *key);
const dc_gguf_tinfo *dc_gguf_find_tensor(const dc_gguf_file *f, const char *name);
/* Typed scalar getters: false if the key is absent or has another type (no conversions). */
bool dc_gguf_get_u32(const dc_gguf_file *f, const char *key, uint32_t *v);
bool dc_gguf_get_u16(const dc_gguf_file *f, const char *key, uint16_t *v);
bool dc_gguf_get_i32(const dc_gguf_file *f, const char *key, int32_t *v);
bool dc_gguf_get_f32(const dc_gguf_file *f, const char *key, float *v);
bool dc_gguf_get_bool(const dc_gguf_file *f, const char *key, bool *v);
/* A string value (not NUL-terminated; *len bytes). */
bool dc_gguf_get_str(const dc_gguf_file *f, const char *key, const char **s, uint64_t *len);
/* Element i of an array of strings (O(i): walks the array). */
bool dc_gguf_arr_str(const dc_gguf_kv *kv, uint64_t i, const char **s, uint64_t *len);
/* Sequential walk over a string array: *pos starts at 0. */
bool dc_gguf_arr_str_next(const dc_gguf_kv *kv, uint64_t *pos, const char **s, uint64_t *len);

/* ---- writer --------------------------------------------------------------------------------
 * Plan, then stream: add KVs and tensors (in file order), plan the splits, open (creates
 * temporary files next to the final names and writes the headers), write tensor bytes at any
 * offset from any thread, finish (renames every split into place). Padding is zero bytes. The
 * output depends only on what was added, never on the order of dc_ggufw_write calls. */
typedef struct dc_ggufw dc_ggufw;

typedef struct dc_ggufw_tensor {
    char *name;
    uint32_t type;          /* ggml type id */
    uint32_t n_dims;
    int64_t ne[DC_GGUF_MAX_DIMS];
    uint64_t nbytes;
    int split;              /* 0-based */
    uint64_t offset;        /* relative to its split's data section */
} dc_ggufw_tensor;

dc_ggufw *dc_ggufw_new(void);
void dc_ggufw_free(dc_ggufw *w);
/* KVs, in file order, all into the first split. A key added twice is DC_ERR_INTERNAL. */
dc_status dc_ggufw_kv_u8(dc_ggufw *w, const char *key, uint8_t v, dc_err *err);
dc_status dc_ggufw_kv_u16(dc_ggufw *w, const char *key, uint16_t v, dc_err *err);
dc_status dc_ggufw_kv_u32(dc_ggufw *w, const char *key, uint32_t v, dc_err *err);
dc_status dc_ggufw_kv_i32(dc_ggufw *w, const char *key, int32_t v, dc_err *err);
dc_status dc_ggufw_kv_u64(dc_ggufw *w, const char *key, uint64_t v, dc_err *err);
dc_status dc_ggufw_kv_f32(dc_ggufw *w, const char *key, float v, dc_err *err);
dc_status dc_ggufw_kv_f64(dc_ggufw *w, const char *key, double v, dc_err *err);
dc_status dc_ggufw_kv_bool(dc_ggufw *w, const char *key, bool v, dc_err *err);
dc_status dc_ggufw_kv_str(dc_ggufw *w, const char *key, const char *s, size_t len, dc_err *err);
/* Arrays: strings given as pointers + lengths; numbers as a packed little-endian array of n
 * elements of elem_type (U8..F64, not STRING/ARRAY). */
dc_status dc_ggufw_kv_arr_str(dc_ggufw *w, const char *key, const char *const *s, const size_t *lens, size_t n,
                              dc_err *err);
dc_status dc_ggufw_kv_arr(dc_ggufw *w, const char *key, dc_gguf_type elem_type, const void *data, size_t n,
                          dc_err *err);
/* Copies a KV of a parsed file verbatim (its key, type and value bytes). */
dc_status dc_ggufw_kv_copy(dc_ggufw *w, const dc_gguf_kv *kv, dc_err *err);
/* Adds a tensor (ne in ggml order, n_dims 1..4). Names must be unique and < 64 bytes. */
dc_status dc_ggufw_add(dc_ggufw *w, const char *name, uint32_t ggml_type, uint32_t n_dims, const int64_t *ne,
                       size_t *idx, dc_err *err);
/* Assigns splits like convert_hf_to_gguf.py --split-max-size (gguf-py): a new split starts when
 * the current one holds at least one tensor and its tensor bytes (unpadded) plus the next
 * tensor's would exceed max_split_bytes; 0 = one file. Tensors are never cut. */
dc_status dc_ggufw_plan(dc_ggufw *w, uint64_t max_split_bytes, dc_err *err);
int dc_ggufw_n_splits(const dc_ggufw *w);
size_t dc_ggufw_count(const dc_ggufw *w);
const dc_ggufw_tensor *dc_ggufw_get(const dc_ggufw *w, size_t idx);
/* Size of split i's file, after plan. */
uint64_t dc_ggufw_split_size(const dc_ggufw *w, int i);
/* The file name of split i for the output path: path itself for one split, else
 * "<path without .gguf>-00001-of-00003.gguf". malloc'd. */
char *dc_ggufw_split_path(const char *path, int i, int n);
/* Creates the splits' temporary files (an existing final name is DC_ERR_EXISTS unless force)
 * and writes headers, KVs and tensor infos. */
dc_status dc_ggufw_open(dc_ggufw *w, const char *path, bool force, dc_err *err);
/* Writes n bytes of tensor idx at byte offset off within the tensor. Thread-safe. */
dc_status dc_ggufw_write(dc_ggufw *w, size_t idx, uint64_t off, const void *buf, size_t n, dc_err *err);
/* Renames every split into place. */
dc_status dc_ggufw_finish(dc_ggufw *w, dc_err *err);
/* Removes the temporary files. */
void dc_ggufw_abort(dc_ggufw *w);

/* deepseek2 tensor names: GGUF <-> Hugging Face, for the tensors stored one-to-one (not the
 * stacked experts ffn_*_exps, not attn_k_b / attn_v_b). False if the name is not in the table. */
bool dc_gguf_hf_to_name(const char *hf, char *out, size_t cap);
bool dc_gguf_name_to_hf(const char *gguf, char *out, size_t cap);

/* ---- GGUF checkpoints (dc_ckpt_open on a .gguf) ----------------------------------------------
 * A GGUF model (one file or all splits) presented with Hugging Face tensor names and a config
 * synthesized from the deepseek2.* keys, so the rest of deepcast reads it like a safetensors
 * checkpoint (dc_ckpt.h). See docs/gguf.md for the name mapping. */
struct dc_ckpt;
/* Opens path (a .gguf, or any split NAME-0000i-of-0000n.gguf: all splits are opened) into ck:
 * fills ck->files (paths), ck->tensors (HF view), ck->file_tensors (as stored), ck->cfg. */
dc_status dc_gguf_ckpt_open(struct dc_ckpt *ck, const char *path, dc_err *err);
void dc_gguf_ckpt_free(struct dc_ckpt *ck);
/* The same for one GGUF held in memory (fuzzing, tests); name is used in messages. */
dc_status dc_gguf_ckpt_parse(struct dc_ckpt *ck, const uint8_t *buf, uint64_t size, const char *name, dc_err *err);
/* The parsed GGUF file i (0 <= i < ck->n_files) of a GGUF checkpoint: its KVs and tensor infos as
 * stored. NULL for a safetensors checkpoint or i out of range. */
const dc_gguf_file *dc_gguf_ckpt_file(const struct dc_ckpt *ck, int i);
/* dc_ckpt_weight for a GGUF checkpoint: also serves the virtual kv_b_proj tensors. */
dc_status dc_gguf_ckpt_weight(const struct dc_ckpt *ck, const dc_tensor *t, dc_weight *w, dc_err *err);

#endif
