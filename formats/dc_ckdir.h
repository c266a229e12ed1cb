/* Checkpoint directories as a whole: the small files around the weights (config.json edits,
 * tokenizer / generation config / chat template copies), shared by every command that writes a
 * new checkpoint directory. */
#ifndef DC_CKDIR_H
#define DC_CKDIR_H
#include "dc_ckpt.h"
#include <cjson/cJSON.h>

/* Copies every regular file of in_dir except the weights (*.safetensors, the index), config.json
 * and temporaries into out_dir: tokenizer files, generation_config.json, chat templates, model
 * code, README, ... */
dc_status dc_ckdir_copy_aux(const char *in_dir, const char *out_dir, dc_err *err);

/* Reads in_dir/config.json, lets edit() change the parsed JSON (it may be NULL), writes
 * out_dir/config.json. Unknown fields are kept. */
typedef dc_status (*dc_config_edit_fn)(cJSON *root, void *ctx, dc_err *err);
dc_status dc_ckdir_write_config(const char *in_dir, const char *out_dir, dc_config_edit_fn edit, void *ctx,
                                dc_err *err);
/* Is out (which may not exist yet) the directory in_dir itself or inside it? Writing a
 * conversion there would read and write the same files. */
bool dc_path_within(const char *in_dir, const char *out);

/* The checkpoint's tensors in storage order (shard, then offset): a malloc'd array of
 * ck->n_tensors pointers (NULL on OOM). Streaming in this order reads each shard sequentially. */
const dc_tensor **dc_ckpt_storage_order(const dc_ckpt *ck);

/* Sets (replacing or adding) a number / string field of a JSON object. */
void dc_json_set_number(cJSON *o, const char *key, double v);
void dc_json_set_string(cJSON *o, const char *key, const char *v);

#endif
