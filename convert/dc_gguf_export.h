/* deepcast convert IN OUT.gguf --to gguf: a DeepSeek-V3/R1/V3.1 or V2/V2-Lite Hugging Face
 * checkpoint -> GGUF v3 for llama.cpp's `deepseek2` architecture, streamed.
 *
 * The metadata, tensor names and per-tensor types follow llama.cpp's convert_hf_to_gguf.py
 * (DeepseekV2Model) and what src/models/deepseek2.cpp loads; docs/gguf.md lists every key and
 * tensor. Like dc_convert: plan first (every output tensor, its source, type, bytes, split), then
 * work units (tensor, row block) run in parallel, each converted to the output type and written
 * with pwrite at its planned offset; input pages are released as they are consumed; outputs are
 * written under temporary names and renamed only when complete. The bytes do not depend on the
 * thread count. */
#ifndef DC_GGUF_EXPORT_H
#define DC_GGUF_EXPORT_H
#include "dc_ckpt.h"
#include <stdio.h>

typedef enum dc_gguf_out {
    DC_GGUF_OUT_AUTO = 0, /* bf16 if the first 2-D tensor is BF16 (or FP8), f16 otherwise */
    DC_GGUF_OUT_F32,
    DC_GGUF_OUT_F16,
    DC_GGUF_OUT_BF16,
    DC_GGUF_OUT_Q8_0,
} dc_gguf_out;

typedef struct dc_gguf_export_opts {
    dc_gguf_out type;
    uint64_t split_max_size; /* 0: one file */
    bool drop_mtp;           /* leave out the MTP (nextn) layers */
    bool dry_run;
    bool force;
    bool progress;
} dc_gguf_export_opts;

typedef struct dc_gguf_export_stats {
    size_t n_tensors_in, n_tensors_out;
    uint64_t bytes_in, bytes_out;
    int n_splits;
    int n_mtp_layers;  /* nextn layers written */
    bool tokenizer;    /* false: tokenizer.ggml.model = none */
    dc_gguf_out type;  /* resolved */
    double seconds;
} dc_gguf_export_stats;

void dc_gguf_export_opts_init(dc_gguf_export_opts *o);
/* llama.cpp's general.architecture for a config: deepseek2, deepseek32 (V3.2), qwen2 or llama. */
const char *dc_gguf_arch_name(const dc_config *c);
bool dc_gguf_out_parse(const char *s, dc_gguf_out *t);
const char *dc_gguf_out_name(dc_gguf_out t);

/* Converts the checkpoint directory in_dir into out_path (a .gguf; with a split size, the files
 * out-00001-of-0000N.gguf). With dry_run, prints the plan to plan and writes nothing. */
dc_status dc_gguf_export(const char *in_dir, const char *out_path, const dc_gguf_export_opts *o, FILE *plan,
                         dc_gguf_export_stats *stats, dc_err *err);

/* ---- the export as a tensor source -------------------------------------------------------
 * `deepcast quantize` turns a Hugging Face checkpoint into a quantized GGUF in one pass: the tensors
 * are those `convert --to gguf --type f32` would write (names, shapes, order of the plan, FP8
 * dequantized like DeepSeek), read as f32 rows on demand, never materialized. */
#include "dc_gguf.h"

typedef struct dc_gguf_src dc_gguf_src;

typedef struct dc_gguf_src_info {
    const char *name;     /* GGUF name */
    uint32_t n_dims;
    int64_t ne[4];        /* ggml order; the 2-D view has ne[0] columns, ne[1]*ne[2]*ne[3] rows */
    const char *src_name; /* the (first) Hugging Face tensor it comes from */
    dc_dtype src_dtype;
} dc_gguf_src_info;

/* Opens the checkpoint directory and plans the export (drop_mtp: leave out the nextn layers). */
dc_status dc_gguf_src_open(const char *in_dir, bool drop_mtp, dc_gguf_src **out, dc_err *err);
void dc_gguf_src_close(dc_gguf_src *s);
size_t dc_gguf_src_count(const dc_gguf_src *s);
void dc_gguf_src_tensor(const dc_gguf_src *s, size_t i, dc_gguf_src_info *info);
const dc_ckpt *dc_gguf_src_ckpt(const dc_gguf_src *s);
int dc_gguf_src_n_mtp(const dc_gguf_src *s);
uint64_t dc_gguf_src_bytes_in(const dc_gguf_src *s);
/* Adds the export's KVs (deepseek2.*, general.*, tokenizer.*) to w, in the export's order, except
 * general.file_type and general.quantization_version. *tokenizer: whether tokenizer.json existed. */
dc_status dc_gguf_src_kvs(dc_gguf_src *s, dc_ggufw *w, bool *tokenizer, dc_err *err);
/* Rows [r0, r0+n) of tensor i as f32 (n * ne[0] values). *scratch / *scratch_cap: a per-thread
 * buffer the call may grow (free it when done). Thread-safe. The input pages stay mapped: drop
 * them with dc_gguf_src_release once a larger range is done (releasing small ranges one by one
 * leaves pages behind: the kernel's fault-around maps them back). */
dc_status dc_gguf_src_rows(const dc_gguf_src *s, size_t i, int64_t r0, int64_t n, float *out, float **scratch,
                           size_t *scratch_cap, dc_err *err);
/* Drops the input pages of rows [r0, r0+n) of tensor i from this process (stored weights only). */
void dc_gguf_src_release(const dc_gguf_src *s, size_t i, int64_t r0, int64_t n);

#endif
