#define _GNU_SOURCE
#include "dc_gguf.h"
#include "dc_ckpt.h"
#include "dc_ggml.h"
#include "dc_strmap.h"

#include <cjson/cJSON.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================================================
 * Value types
 * ============================================================================================ */

static const char *TYPE_NAMES[DC_GGUF_TYPE_COUNT] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                     "bool", "str", "arr", "u64", "i64", "f64"};
/* bytes of one element; 0 for STRING and ARRAY */
static const int TYPE_SIZE[DC_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *dc_gguf_type_name(dc_gguf_type t)
{
    return (unsigned)t < DC_GGUF_TYPE_COUNT ? TYPE_NAMES[t] : "invalid";
}

static uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* ============================================================================================
 * Reader
 * ============================================================================================ */

typedef struct rd {
    const uint8_t *b;
    uint64_t size, pos;
    const char *name;
    dc_err *err;
} rd;

static uint64_t left(const rd *r) { return r->size - r->pos; }

static dc_status need(rd *r, uint64_t n, const char *what)
{
    if (n > left(r))
        return dc_err_set(r->err, DC_ERR_FORMAT, "%s: truncated: %s needs %llu bytes at offset %llu, but the file has %llu",
                          r->name, what, (unsigned long long)n, (unsigned long long)r->pos,
                          (unsigned long long)r->size);
    return DC_OK;
}

static dc_status rd_u32(rd *r, uint32_t *v, const char *what)
{
    dc_status st = need(r, 4, what);
    if (!st) {
        memcpy(v, r->b + r->pos, 4);
        r->pos += 4;
    }
    return st;
}

static dc_status rd_u64(rd *r, uint64_t *v, const char *what)
{
    dc_status st = need(r, 8, what);
    if (!st) {
        memcpy(v, r->b + r->pos, 8);
        r->pos += 8;
    }
    return st;
}

/* A string: u64 length + bytes, bounds-checked. */
static dc_status rd_str(rd *r, const char **s, uint64_t *len, const char *what)
{
    uint64_t n;
    dc_status st = rd_u64(r, &n, what);
    if (st)
        return st;
    if (n > left(r))
        return dc_err_set(r->err, DC_ERR_FORMAT,
                          "%s: %s: string length %llu at offset %llu runs past the end of the file (%llu bytes)",
                          r->name, what, (unsigned long long)n, (unsigned long long)(r->pos - 8),
                          (unsigned long long)r->size);
    *s = (const char *)(r->b + r->pos);
    *len = n;
    r->pos += n;
    return DC_OK;
}

/* A printable, bounded copy of a name for messages. */
static const char *shown(const char *s, uint64_t len, char *buf, size_t cap)
{
    size_t o = 0;
    for (uint64_t i = 0; i < len && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 32 && c < 127 && c != '\\')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    }
    if (len > 0 && o + 5 >= cap && o + 4 <= cap) {
        buf[o - 3] = buf[o - 2] = buf[o - 1] = '.';
    }
    buf[o] = 0;
    return buf;
}

void dc_gguf_close(dc_gguf_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_kv; i++)
        free(f->kv[i].key);
    free(f->kv);
    for (size_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    dc_map_close(&f->map);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* Keys whose type deepcast and llama.cpp rely on. "{arch}." is replaced by the file's
 * general.architecture. ARRAY entries give the element type in elem. or_arr: the scalar type,
 * or an array of it (llama.cpp's get_key_or_arr: per-layer values). */
typedef struct known_key {
    const char *key;
    dc_gguf_type type, elem;
    bool or_arr;
} known_key;

static const known_key KNOWN[] = {
    {"general.architecture", DC_GGUF_STRING, 0, 0},
    {"general.alignment", DC_GGUF_U32, 0, 0},
    {"general.quantization_version", DC_GGUF_U32, 0, 0},
    {"general.file_type", DC_GGUF_U32, 0, 0},
    {"general.name", DC_GGUF_STRING, 0, 0},
    {"general.type", DC_GGUF_STRING, 0, 0},
    {"general.size_label", DC_GGUF_STRING, 0, 0},
    {"split.no", DC_GGUF_U16, 0, 0},
    {"split.count", DC_GGUF_U16, 0, 0},
    {"split.tensors.count", DC_GGUF_I32, 0, 0},
    {"tokenizer.ggml.model", DC_GGUF_STRING, 0, 0},
    {"tokenizer.ggml.pre", DC_GGUF_STRING, 0, 0},
    {"tokenizer.ggml.tokens", DC_GGUF_ARRAY, DC_GGUF_STRING, 0},
    {"tokenizer.ggml.token_type", DC_GGUF_ARRAY, DC_GGUF_I32, 0},
    {"tokenizer.ggml.scores", DC_GGUF_ARRAY, DC_GGUF_F32, 0},
    {"tokenizer.ggml.merges", DC_GGUF_ARRAY, DC_GGUF_STRING, 0},
    {"tokenizer.ggml.bos_token_id", DC_GGUF_U32, 0, 0},
    {"tokenizer.ggml.eos_token_id", DC_GGUF_U32, 0, 0},
    {"tokenizer.ggml.unknown_token_id", DC_GGUF_U32, 0, 0},
    {"tokenizer.ggml.seperator_token_id", DC_GGUF_U32, 0, 0},
    {"tokenizer.ggml.padding_token_id", DC_GGUF_U32, 0, 0},
    {"tokenizer.ggml.mask_token_id", DC_GGUF_U32, 0, 0},
    {"tokenizer.ggml.add_bos_token", DC_GGUF_BOOL, 0, 0},
    {"tokenizer.ggml.add_eos_token", DC_GGUF_BOOL, 0, 0},
    {"tokenizer.ggml.add_sep_token", DC_GGUF_BOOL, 0, 0},
    {"tokenizer.chat_template", DC_GGUF_STRING, 0, 0},
    {"{arch}.vocab_size", DC_GGUF_U32, 0, 0},
    {"{arch}.context_length", DC_GGUF_U32, 0, 0},
    {"{arch}.embedding_length", DC_GGUF_U32, 0, 0},
    {"{arch}.block_count", DC_GGUF_U32, 0, 0},
    {"{arch}.feed_forward_length", DC_GGUF_U32, 0, 1},
    {"{arch}.leading_dense_block_count", DC_GGUF_U32, 0, 0},
    {"{arch}.expert_feed_forward_length", DC_GGUF_U32, 0, 1},
    {"{arch}.expert_count", DC_GGUF_U32, 0, 0},
    {"{arch}.expert_used_count", DC_GGUF_U32, 0, 1},
    {"{arch}.expert_shared_count", DC_GGUF_U32, 0, 0},
    {"{arch}.expert_group_count", DC_GGUF_U32, 0, 0},
    {"{arch}.expert_group_used_count", DC_GGUF_U32, 0, 0},
    {"{arch}.expert_weights_scale", DC_GGUF_F32, 0, 0},
    {"{arch}.expert_weights_norm", DC_GGUF_BOOL, 0, 0},
    {"{arch}.expert_gating_func", DC_GGUF_U32, 0, 0},
    {"{arch}.nextn_predict_layers", DC_GGUF_U32, 0, 0},
    {"{arch}.attention.head_count", DC_GGUF_U32, 0, 1},
    {"{arch}.attention.head_count_kv", DC_GGUF_U32, 0, 1},
    {"{arch}.attention.layer_norm_rms_epsilon", DC_GGUF_F32, 0, 0},
    {"{arch}.attention.q_lora_rank", DC_GGUF_U32, 0, 0},
    {"{arch}.attention.kv_lora_rank", DC_GGUF_U32, 0, 0},
    {"{arch}.attention.key_length", DC_GGUF_U32, 0, 0},
    {"{arch}.attention.value_length", DC_GGUF_U32, 0, 0},
    {"{arch}.attention.key_length_mla", DC_GGUF_U32, 0, 0},
    {"{arch}.attention.value_length_mla", DC_GGUF_U32, 0, 0},
    {"{arch}.rope.dimension_count", DC_GGUF_U32, 0, 0},
    {"{arch}.rope.freq_base", DC_GGUF_F32, 0, 0},
    {"{arch}.rope.scaling.type", DC_GGUF_STRING, 0, 0},
    {"{arch}.rope.scaling.factor", DC_GGUF_F32, 0, 0},
    {"{arch}.rope.scaling.original_context_length", DC_GGUF_U32, 0, 0},
    {"{arch}.rope.scaling.yarn_log_multiplier", DC_GGUF_F32, 0, 0},
    {"{arch}.rope.scaling.yarn_beta_fast", DC_GGUF_F32, 0, 0},
    {"{arch}.rope.scaling.yarn_beta_slow", DC_GGUF_F32, 0, 0},
};

static char *kv_desc(const dc_gguf_kv *kv, char *buf, size_t cap)
{
    if (kv->type == DC_GGUF_ARRAY)
        snprintf(buf, cap, "arr[%s]", dc_gguf_type_name(kv->arr_type));
    else
        snprintf(buf, cap, "%s", dc_gguf_type_name(kv->type));
    return buf;
}

static dc_status check_known_keys(const dc_gguf_file *f, const char *name, dc_err *err)
{
    const char *arch = NULL;
    uint64_t arch_len = 0;
    const dc_gguf_kv *a = dc_gguf_find(f, "general.architecture");
    if (a && a->type == DC_GGUF_STRING) {
        arch = (const char *)a->data + 8;
        arch_len = a->size - 8;
    }
    for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++) {
        const known_key *k = &KNOWN[i];
        char key[160];
        if (!strncmp(k->key, "{arch}.", 7)) {
            if (!arch || arch_len == 0 || arch_len > 64)
                continue;
            snprintf(key, sizeof key, "%.*s.%s", (int)arch_len, arch, k->key + 7);
        } else
            snprintf(key, sizeof key, "%s", k->key);
        const dc_gguf_kv *kv = dc_gguf_find(f, key);
        if (!kv)
            continue;
        bool ok = kv->type == k->type && (k->type != DC_GGUF_ARRAY || kv->arr_type == k->elem);
        if (!ok && k->or_arr && kv->type == DC_GGUF_ARRAY &&
            (kv->arr_type == DC_GGUF_U32 || kv->arr_type == DC_GGUF_I32))
            ok = true;
        if (!ok) {
            char got[32], want[32];
            if (k->type == DC_GGUF_ARRAY)
                snprintf(want, sizeof want, "arr[%s]", dc_gguf_type_name(k->elem));
            else
                snprintf(want, sizeof want, "%s%s", dc_gguf_type_name(k->type), k->or_arr ? " (or an array of it)" : "");
            return dc_err_set(err, DC_ERR_FORMAT, "%s: key '%s' has type %s, expected %s", name, key,
                              kv_desc(kv, got, sizeof got), want);
        }
    }
    return DC_OK;
}

dc_status dc_gguf_parse(const uint8_t *buf, uint64_t size, const char *name, dc_gguf_file *out, dc_err *err)
{
    memset(out, 0, sizeof *out);
    out->buf = buf;
    out->size = size;
    rd r = {buf, size, 0, name, err};
    dc_status st = DC_OK;
    dc_strmap seen = {0};
    char nb[96];
    if (size < 4)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: %llu bytes, too short for a GGUF file (magic + header is 24 bytes)",
                          name, (unsigned long long)size);
    if (memcmp(buf, "GGUF", 4)) {
        char m[32];
        return dc_err_set(err, DC_ERR_FORMAT, "%s: not a GGUF file: magic is \"%s\", expected \"GGUF\"", name,
                          shown((const char *)buf, 4, m, sizeof m));
    }
    r.pos = 4;
    uint32_t version;
    if ((st = rd_u32(&r, &version, "the version")))
        return st;
    if (version == 0)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: bad GGUF version 0", name);
    if ((version & 0xffffu) == 0)
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: GGUF version %" PRIu32 " (0x%08" PRIx32 ") looks byte-swapped: a big-endian file, which deepcast does not read",
                          name, version, version);
    if (version == 1)
        return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: GGUF version 1 is obsolete (32-bit counts); deepcast reads versions 2 and 3", name);
    if (version > DC_GGUF_VERSION)
        return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: GGUF version %" PRIu32 "; deepcast reads versions 2 and 3", name,
                          version);
    out->version = version;
    uint64_t nt, nkv;
    if ((st = rd_u64(&r, &nt, "the tensor count")) || (st = rd_u64(&r, &nkv, "the key-value count")))
        return st;
    /* every tensor info takes at least 24 bytes (name length, n_dims, type, offset), every KV at
     * least 14 (key length, a 1-byte key, type, a 1-byte value): counts the file cannot hold
     * are rejected before anything is allocated */
    if ((int64_t)nt < 0 || nt > left(&r) / 24)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: header declares %lld tensors, more than the remaining %llu bytes can describe",
                          name, (long long)(int64_t)nt, (unsigned long long)left(&r));
    if ((int64_t)nkv < 0 || nkv > left(&r) / 14)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: header declares %lld key-value pairs, more than the remaining %llu bytes can hold",
                          name, (long long)(int64_t)nkv, (unsigned long long)left(&r));
    out->kv = calloc(nkv ? nkv : 1, sizeof *out->kv);
    out->tensors = calloc(nt ? nt : 1, sizeof *out->tensors);
    if (!out->kv || !out->tensors) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto fail;
    }

    /* ---- key-value pairs ---- */
    for (uint64_t i = 0; i < nkv; i++) {
        const char *ks;
        uint64_t kl;
        char what[128];
        snprintf(what, sizeof what, "key %llu", (unsigned long long)i);
        if ((st = rd_str(&r, &ks, &kl, what)))
            goto fail;
        if (kl == 0) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: key %llu is empty", name, (unsigned long long)i);
            goto fail;
        }
        if (memchr(ks, 0, kl)) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: key %llu (\"%s\") contains a NUL byte", name, (unsigned long long)i,
                            shown(ks, kl, nb, sizeof nb));
            goto fail;
        }
        dc_gguf_kv *kv = &out->kv[out->n_kv];
        kv->key = strndup(ks, kl);
        if (!kv->key) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        out->n_kv++;
        int put = dc_strmap_put(&seen, kv->key, (int64_t)i);
        if (put < 0) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if (put == 0) {
            int64_t j = 0;
            dc_strmap_get(&seen, kv->key, &j);
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: duplicate key '%s' (pairs %lld and %llu)", name, kv->key, (long long)j,
                            (unsigned long long)i);
            goto fail;
        }
        uint32_t ty;
        snprintf(what, sizeof what, "the type of key '%.40s'", kv->key);
        if ((st = rd_u32(&r, &ty, what)))
            goto fail;
        kv->type = kv->arr_type = (dc_gguf_type)ty;
        kv->n = 1;
        if (ty == DC_GGUF_ARRAY) {
            uint32_t et;
            if ((st = rd_u32(&r, &et, what)) || (st = rd_u64(&r, &kv->n, what)))
                goto fail;
            if (et == DC_GGUF_ARRAY || et >= DC_GGUF_TYPE_COUNT) {
                st = dc_err_set(err, DC_ERR_FORMAT, "%s: key '%s' is an array of invalid element type %" PRIu32 "%s", name,
                                kv->key, et, et == DC_GGUF_ARRAY ? " (nested arrays are not allowed)" : "");
                goto fail;
            }
            kv->arr_type = (dc_gguf_type)et;
        } else if (ty >= DC_GGUF_TYPE_COUNT) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: key '%s' has invalid type %" PRIu32 " (valid: 0..12)", name, kv->key, ty);
            goto fail;
        }
        kv->data = buf + r.pos;
        uint64_t start = r.pos;
        if (kv->arr_type == DC_GGUF_STRING) {
            if (kv->n > left(&r) / 8) {
                st = dc_err_set(err, DC_ERR_FORMAT,
                                "%s: key '%s': array of %llu strings cannot fit in the remaining %llu bytes", name,
                                kv->key, (unsigned long long)kv->n, (unsigned long long)left(&r));
                goto fail;
            }
            for (uint64_t k = 0; k < kv->n; k++) {
                const char *s;
                uint64_t sl;
                snprintf(what, sizeof what, "string %llu of key '%.30s'", (unsigned long long)k, kv->key);
                if ((st = rd_str(&r, &s, &sl, what)))
                    goto fail;
            }
        } else {
            uint64_t bytes;
            if (!dc_mul_u64(kv->n, (uint64_t)TYPE_SIZE[kv->arr_type], &bytes) || bytes > left(&r)) {
                st = dc_err_set(err, DC_ERR_FORMAT,
                                "%s: key '%s': %llu values of type %s at offset %llu run past the end of the file (%llu bytes)",
                                name, kv->key, (unsigned long long)kv->n, dc_gguf_type_name(kv->arr_type),
                                (unsigned long long)r.pos, (unsigned long long)size);
                goto fail;
            }
            r.pos += bytes;
        }
        kv->size = r.pos - start;
    }
    /* alignment */
    out->alignment = DC_GGUF_DEFAULT_ALIGNMENT;
    const dc_gguf_kv *al = dc_gguf_find(out, "general.alignment");
    if (al) {
        uint32_t a;
        if (al->type != DC_GGUF_U32) {
            char got[32];
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: key 'general.alignment' has type %s, expected u32", name,
                            kv_desc(al, got, sizeof got));
            goto fail;
        }
        memcpy(&a, al->data, 4);
        if (a == 0 || (a & (a - 1))) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: general.alignment is %" PRIu32 ", not a power of two", name, a);
            goto fail;
        }
        out->alignment = a;
    }
    if ((st = check_known_keys(out, name, err)))
        goto fail;

    /* ---- tensor infos ---- */
    dc_strmap_free(&seen);
    memset(&seen, 0, sizeof seen);
    for (uint64_t i = 0; i < nt; i++) {
        dc_gguf_tinfo *t = &out->tensors[i];
        const char *s;
        uint64_t sl;
        char what[128];
        snprintf(what, sizeof what, "the name of tensor %llu", (unsigned long long)i);
        if ((st = rd_str(&r, &s, &sl, what)))
            goto fail;
        if (sl >= DC_GGUF_MAX_NAME) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: the name of tensor %llu (\"%s\") is %llu bytes; ggml allows at most %d",
                            name, (unsigned long long)i, shown(s, sl, nb, sizeof nb), (unsigned long long)sl,
                            DC_GGUF_MAX_NAME - 1);
            goto fail;
        }
        if (memchr(s, 0, sl)) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: the name of tensor %llu (\"%s\") contains a NUL byte", name,
                            (unsigned long long)i, shown(s, sl, nb, sizeof nb));
            goto fail;
        }
        t->name = strndup(s, sl);
        if (!t->name) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        out->n_tensors++;
        int put = dc_strmap_put(&seen, t->name, (int64_t)i);
        if (put < 0) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if (put == 0) {
            int64_t j = 0;
            dc_strmap_get(&seen, t->name, &j);
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: duplicate tensor name '%s' (tensors %lld and %llu)", name, t->name,
                            (long long)j, (unsigned long long)i);
            goto fail;
        }
        snprintf(what, sizeof what, "the shape of tensor '%s'", t->name);
        if ((st = rd_u32(&r, &t->n_dims, what)))
            goto fail;
        if (t->n_dims > DC_GGUF_MAX_DIMS) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s' has %" PRIu32 " dimensions; ggml allows at most %d", name,
                            t->name, t->n_dims, DC_GGUF_MAX_DIMS);
            goto fail;
        }
        uint64_t nelem = 1, nz = 1; /* nz: product of the non-zero dims, kept < 2^63 too so that no
                                      * later product of the shape overflows (gguf.cpp skips the
                                      * check for empty tensors) */
        bool over = false;
        for (int j = 0; j < DC_GGUF_MAX_DIMS; j++) {
            t->ne[j] = 1;
            if ((uint32_t)j < t->n_dims) {
                uint64_t v;
                if ((st = rd_u64(&r, &v, what)))
                    goto fail;
                t->ne[j] = (int64_t)v;
                if (t->ne[j] < 0) {
                    st = dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': ne[%d] = %lld is negative", name, t->name, j,
                                    (long long)t->ne[j]);
                    goto fail;
                }
                over = over || !dc_mul_u64(nelem, v, &nelem) || (v && !dc_mul_u64(nz, v, &nz));
            }
        }
        if (over || nelem >= (uint64_t)INT64_MAX || nz >= (uint64_t)INT64_MAX) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': element count of shape (%lld, %lld, %lld, %lld) overflows 63 bits",
                            name, t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                            (long long)t->ne[3]);
            goto fail;
        }
        if ((st = rd_u32(&r, &t->type, what)))
            goto fail;
        t->dtype = dc_ggml_dtype(t->type);
        if (t->dtype == DC_DT_INVALID) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s' has invalid ggml type %" PRIu32, name, t->name, t->type);
            goto fail;
        }
        int blk = dc_dtype_block(t->dtype);
        if (t->ne[0] % blk) {
            st = dc_err_set(err, DC_ERR_FORMAT,
                            "%s: tensor '%s' of type %s has %lld elements per row (ne[0]), not a multiple of its block size %d",
                            name, t->name, dc_dtype_name(t->dtype), (long long)t->ne[0], blk);
            goto fail;
        }
        if (!dc_dtype_nbytes(t->dtype, nelem, &t->nbytes)) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': byte size of %llu %s elements overflows 64 bits", name,
                            t->name, (unsigned long long)nelem, dc_dtype_name(t->dtype));
            goto fail;
        }
        if ((st = rd_u64(&r, &t->offset, what)))
            goto fail;
    }
    /* ---- data section ---- */
    out->data_start = pad_to(r.pos, out->alignment);
    if (nt > 0 && out->data_start > size) {
        st = dc_err_set(err, DC_ERR_FORMAT, "%s: the data section would start at offset %llu, past the end of the file (%llu bytes)",
                        name, (unsigned long long)out->data_start, (unsigned long long)size);
        goto fail;
    }
    uint64_t expect = 0;
    for (uint64_t i = 0; i < nt; i++) {
        dc_gguf_tinfo *t = &out->tensors[i];
        if (t->offset % out->alignment) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s' has offset %llu, not a multiple of the alignment %" PRIu32,
                            name, t->name, (unsigned long long)t->offset, out->alignment);
            goto fail;
        }
        if (t->offset != expect) {
            st = dc_err_set(err, DC_ERR_FORMAT,
                            "%s: tensor '%s' has offset %llu, expected %llu (tensors are stored in info order, each padded to %" PRIu32 " bytes)",
                            name, t->name, (unsigned long long)t->offset, (unsigned long long)expect, out->alignment);
            goto fail;
        }
        uint64_t end;
        if (!dc_add_u64(out->data_start, t->offset, &end) || !dc_add_u64(end, t->nbytes, &end) || end > size) {
            st = dc_err_set(err, DC_ERR_FORMAT,
                            "%s: tensor '%s': data [%llu, %llu + %llu) runs past the end of the file (%llu bytes)", name,
                            t->name, (unsigned long long)(out->data_start + t->offset), (unsigned long long)(out->data_start + t->offset),
                            (unsigned long long)t->nbytes, (unsigned long long)size);
            goto fail;
        }
        t->data = buf + out->data_start + t->offset;
        uint64_t padded = pad_to(t->nbytes, out->alignment);
        if (padded < t->nbytes || !dc_add_u64(expect, padded, &expect)) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': data section size overflows 64 bits", name, t->name);
            goto fail;
        }
    }
    dc_strmap_free(&seen);
    return DC_OK;
fail:
    dc_strmap_free(&seen);
    out->map = (dc_map){0};
    dc_gguf_close(out);
    return st;
}

dc_status dc_gguf_open(const char *path, dc_gguf_file *out, dc_err *err)
{
    memset(out, 0, sizeof *out);
    dc_map m;
    dc_status st = dc_map_open(path, &m, err);
    if (st)
        return st;
    if ((st = dc_gguf_parse(m.data, m.size, path, out, err))) {
        dc_map_close(&m);
        return st;
    }
    out->map = m;
    out->path = dc_strdup(path);
    if (!out->path) {
        dc_gguf_close(out);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    return DC_OK;
}

const dc_gguf_kv *dc_gguf_find(const dc_gguf_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_kv; i++)
        if (!strcmp(f->kv[i].key, key))
            return &f->kv[i];
    return NULL;
}

const dc_gguf_tinfo *dc_gguf_find_tensor(const dc_gguf_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name))
            return &f->tensors[i];
    return NULL;
}

static const dc_gguf_kv *find_typed(const dc_gguf_file *f, const char *key, dc_gguf_type t)
{
    const dc_gguf_kv *kv = dc_gguf_find(f, key);
    return kv && kv->type == t ? kv : NULL;
}

bool dc_gguf_get_u32(const dc_gguf_file *f, const char *key, uint32_t *v)
{
    const dc_gguf_kv *kv = find_typed(f, key, DC_GGUF_U32);
    return kv ? (memcpy(v, kv->data, 4), true) : false;
}

bool dc_gguf_get_u16(const dc_gguf_file *f, const char *key, uint16_t *v)
{
    const dc_gguf_kv *kv = find_typed(f, key, DC_GGUF_U16);
    return kv ? (memcpy(v, kv->data, 2), true) : false;
}

bool dc_gguf_get_i32(const dc_gguf_file *f, const char *key, int32_t *v)
{
    const dc_gguf_kv *kv = find_typed(f, key, DC_GGUF_I32);
    return kv ? (memcpy(v, kv->data, 4), true) : false;
}

bool dc_gguf_get_f32(const dc_gguf_file *f, const char *key, float *v)
{
    const dc_gguf_kv *kv = find_typed(f, key, DC_GGUF_F32);
    return kv ? (memcpy(v, kv->data, 4), true) : false;
}

bool dc_gguf_get_bool(const dc_gguf_file *f, const char *key, bool *v)
{
    const dc_gguf_kv *kv = find_typed(f, key, DC_GGUF_BOOL);
    return kv ? (*v = kv->data[0] != 0, true) : false;
}

bool dc_gguf_get_str(const dc_gguf_file *f, const char *key, const char **s, uint64_t *len)
{
    const dc_gguf_kv *kv = find_typed(f, key, DC_GGUF_STRING);
    if (!kv)
        return false;
    memcpy(len, kv->data, 8);
    *s = (const char *)kv->data + 8;
    return true;
}

bool dc_gguf_arr_str_next(const dc_gguf_kv *kv, uint64_t *pos, const char **s, uint64_t *len)
{
    if (kv->type != DC_GGUF_ARRAY || kv->arr_type != DC_GGUF_STRING || *pos + 8 > kv->size)
        return false;
    uint64_t n;
    memcpy(&n, kv->data + *pos, 8);
    *s = (const char *)kv->data + *pos + 8;
    *len = n;
    *pos += 8 + n; /* validated by the parser */
    return true;
}

bool dc_gguf_arr_str(const dc_gguf_kv *kv, uint64_t i, const char **s, uint64_t *len)
{
    if (kv->type != DC_GGUF_ARRAY || kv->arr_type != DC_GGUF_STRING || i >= kv->n)
        return false;
    uint64_t pos = 0;
    for (uint64_t k = 0; k <= i; k++)
        if (!dc_gguf_arr_str_next(kv, &pos, s, len))
            return false;
    return true;
}

/* ============================================================================================
 * Writer
 * ============================================================================================ */

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static bool put(bytes *b, const void *src, size_t n)
{
    if (!dc_grow((void **)&b->p, &b->cap, b->n + n, 1))
        return false;
    memcpy(b->p + b->n, src, n);
    b->n += n;
    return true;
}
static bool put_u32(bytes *b, uint32_t v) { return put(b, &v, 4); }
static bool put_u64(bytes *b, uint64_t v) { return put(b, &v, 8); }
static bool put_str(bytes *b, const char *s, size_t n) { return put_u64(b, n) && put(b, s, n); }

struct dc_ggufw {
    bytes kv;        /* serialized KVs of the first split (without the split keys) */
    size_t n_kv;
    char **keys;     /* for duplicate detection */
    size_t keys_cap;
    dc_ggufw_tensor *t;
    size_t n, cap;
    dc_strmap names;
    int n_splits;
    bool planned;
    uint64_t *data_start; /* per split */
    uint64_t *fsize;      /* per split */
    dc_outfile *out;
    int n_out;
};

dc_ggufw *dc_ggufw_new(void) { return calloc(1, sizeof(dc_ggufw)); }

void dc_ggufw_abort(dc_ggufw *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n_out; i++)
        dc_outfile_abort(&w->out[i]);
    free(w->out);
    w->out = NULL;
    w->n_out = 0;
}

void dc_ggufw_free(dc_ggufw *w)
{
    if (!w)
        return;
    dc_ggufw_abort(w);
    free(w->kv.p);
    for (size_t i = 0; i < w->n_kv; i++)
        free(w->keys[i]);
    free(w->keys);
    for (size_t i = 0; i < w->n; i++)
        free(w->t[i].name);
    free(w->t);
    dc_strmap_free(&w->names);
    free(w->data_start);
    free(w->fsize);
    free(w);
}

static dc_status kv_begin(dc_ggufw *w, const char *key, uint32_t type, dc_err *err)
{
    if (w->planned)
        return dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer: key '%s' added after planning", key);
    size_t kl = strlen(key);
    if (kl == 0)
        return dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer: empty key");
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key))
            return dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer: key '%s' added twice", key);
    char *k = dc_strdup(key);
    if (!k || !dc_grow((void **)&w->keys, &w->keys_cap, w->n_kv + 1, sizeof *w->keys)) {
        free(k);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    w->keys[w->n_kv++] = k;
    if (!put_str(&w->kv, key, kl) || !put_u32(&w->kv, type))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    return DC_OK;
}

static dc_status kv_scalar(dc_ggufw *w, const char *key, dc_gguf_type t, const void *v, dc_err *err)
{
    dc_status st = kv_begin(w, key, t, err);
    if (!st && !put(&w->kv, v, (size_t)TYPE_SIZE[t]))
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    return st;
}

dc_status dc_ggufw_kv_u8(dc_ggufw *w, const char *key, uint8_t v, dc_err *err) { return kv_scalar(w, key, DC_GGUF_U8, &v, err); }
dc_status dc_ggufw_kv_u16(dc_ggufw *w, const char *key, uint16_t v, dc_err *err) { return kv_scalar(w, key, DC_GGUF_U16, &v, err); }
dc_status dc_ggufw_kv_u32(dc_ggufw *w, const char *key, uint32_t v, dc_err *err) { return kv_scalar(w, key, DC_GGUF_U32, &v, err); }
dc_status dc_ggufw_kv_i32(dc_ggufw *w, const char *key, int32_t v, dc_err *err) { return kv_scalar(w, key, DC_GGUF_I32, &v, err); }
dc_status dc_ggufw_kv_u64(dc_ggufw *w, const char *key, uint64_t v, dc_err *err) { return kv_scalar(w, key, DC_GGUF_U64, &v, err); }
dc_status dc_ggufw_kv_f32(dc_ggufw *w, const char *key, float v, dc_err *err) { return kv_scalar(w, key, DC_GGUF_F32, &v, err); }
dc_status dc_ggufw_kv_f64(dc_ggufw *w, const char *key, double v, dc_err *err) { return kv_scalar(w, key, DC_GGUF_F64, &v, err); }

dc_status dc_ggufw_kv_bool(dc_ggufw *w, const char *key, bool v, dc_err *err)
{
    uint8_t b = v ? 1 : 0;
    return kv_scalar(w, key, DC_GGUF_BOOL, &b, err);
}

dc_status dc_ggufw_kv_str(dc_ggufw *w, const char *key, const char *s, size_t len, dc_err *err)
{
    dc_status st = kv_begin(w, key, DC_GGUF_STRING, err);
    if (!st && !put_str(&w->kv, s, len))
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    return st;
}

dc_status dc_ggufw_kv_arr_str(dc_ggufw *w, const char *key, const char *const *s, const size_t *lens, size_t n,
                              dc_err *err)
{
    dc_status st = kv_begin(w, key, DC_GGUF_ARRAY, err);
    if (st)
        return st;
    if (!put_u32(&w->kv, DC_GGUF_STRING) || !put_u64(&w->kv, n))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (!put_str(&w->kv, s[i], lens[i]))
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    return DC_OK;
}

dc_status dc_ggufw_kv_arr(dc_ggufw *w, const char *key, dc_gguf_type elem_type, const void *data, size_t n,
                          dc_err *err)
{
    if ((unsigned)elem_type >= DC_GGUF_TYPE_COUNT || elem_type == DC_GGUF_STRING || elem_type == DC_GGUF_ARRAY)
        return dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer: key '%s': bad array element type %d", key, (int)elem_type);
    dc_status st = kv_begin(w, key, DC_GGUF_ARRAY, err);
    if (st)
        return st;
    if (!put_u32(&w->kv, elem_type) || !put_u64(&w->kv, n) || !put(&w->kv, data, n * (size_t)TYPE_SIZE[elem_type]))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    return DC_OK;
}

dc_status dc_ggufw_kv_copy(dc_ggufw *w, const dc_gguf_kv *kv, dc_err *err)
{
    dc_status st = kv_begin(w, kv->key, kv->type, err);
    if (st)
        return st;
    if (kv->type == DC_GGUF_ARRAY && (!put_u32(&w->kv, kv->arr_type) || !put_u64(&w->kv, kv->n)))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    if (!put(&w->kv, kv->data, (size_t)kv->size))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    return DC_OK;
}

dc_status dc_ggufw_add(dc_ggufw *w, const char *name, uint32_t ggml_type, uint32_t n_dims, const int64_t *ne,
                       size_t *idx, dc_err *err)
{
    if (w->planned)
        return dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer: tensor '%s' added after planning", name);
    size_t nl = strlen(name);
    if (nl == 0 || nl >= DC_GGUF_MAX_NAME)
        return dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer: tensor name '%s' is %zu bytes (1..%d allowed)", name, nl,
                          DC_GGUF_MAX_NAME - 1);
    dc_dtype dt = dc_ggml_dtype(ggml_type);
    if (dt == DC_DT_INVALID || n_dims < 1 || n_dims > DC_GGUF_MAX_DIMS)
        return dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer: tensor '%s': type %" PRIu32 " / %" PRIu32 " dims", name,
                          ggml_type, n_dims);
    if (!dc_grow((void **)&w->t, &w->cap, w->n + 1, sizeof *w->t))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    dc_ggufw_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->type = ggml_type;
    t->n_dims = n_dims;
    uint64_t nelem = 1;
    for (int j = 0; j < DC_GGUF_MAX_DIMS; j++) {
        t->ne[j] = (uint32_t)j < n_dims ? ne[j] : 1;
        if (t->ne[j] < 0 || !dc_mul_u64(nelem, (uint64_t)t->ne[j], &nelem))
            return dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer: tensor '%s': bad shape", name);
    }
    if (t->ne[0] % dc_dtype_block(dt) || !dc_dtype_nbytes(dt, nelem, &t->nbytes))
        return dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer: tensor '%s': %lld values per row do not fill %s blocks", name,
                          (long long)t->ne[0], dc_dtype_name(dt));
    t->name = dc_strdup(name);
    if (!t->name)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    int p = dc_strmap_put(&w->names, t->name, (int64_t)w->n);
    if (p <= 0) {
        free(t->name);
        return p < 0 ? dc_err_set(err, DC_ERR_NOMEM, "out of memory")
                     : dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer: tensor '%s' added twice", name);
    }
    if (idx)
        *idx = w->n;
    w->n++;
    return DC_OK;
}

size_t dc_ggufw_count(const dc_ggufw *w) { return w->n; }
const dc_ggufw_tensor *dc_ggufw_get(const dc_ggufw *w, size_t idx) { return &w->t[idx]; }
int dc_ggufw_n_splits(const dc_ggufw *w) { return w->n_splits; }
uint64_t dc_ggufw_split_size(const dc_ggufw *w, int i) { return w->fsize[i]; }

/* The split keys, serialized. */
static bool split_kvs(bytes *b, int no, int count, size_t total)
{
    uint16_t v16 = (uint16_t)no;
    uint16_t c16 = (uint16_t)count;
    int32_t tc = (int32_t)total;
    return put_str(b, "split.no", 8) && put_u32(b, DC_GGUF_U16) && put(b, &v16, 2) &&
           put_str(b, "split.count", 11) && put_u32(b, DC_GGUF_U16) && put(b, &c16, 2) &&
           put_str(b, "split.tensors.count", 19) && put_u32(b, DC_GGUF_I32) && put(b, &tc, 4);
}

/* Serializes split s's header (everything before the data section, padding included). */
static bool build_header(const dc_ggufw *w, int s, bytes *b)
{
    uint64_t nt = 0;
    for (size_t i = 0; i < w->n; i++)
        nt += w->t[i].split == s;
    uint64_t nkv = (s == 0 ? w->n_kv : 0) + (w->n_splits > 1 ? 3 : 0);
    uint32_t version = DC_GGUF_VERSION;
    if (!put(b, "GGUF", 4) || !put_u32(b, version) || !put_u64(b, nt) || !put_u64(b, nkv))
        return false;
    if (s == 0 && !put(b, w->kv.p, w->kv.n))
        return false;
    if (w->n_splits > 1 && !split_kvs(b, s, w->n_splits, w->n))
        return false;
    for (size_t i = 0; i < w->n; i++) {
        const dc_ggufw_tensor *t = &w->t[i];
        if (t->split != s)
            continue;
        if (!put_str(b, t->name, strlen(t->name)) || !put_u32(b, t->n_dims))
            return false;
        for (uint32_t j = 0; j < t->n_dims; j++)
            if (!put_u64(b, (uint64_t)t->ne[j]))
                return false;
        if (!put_u32(b, t->type) || !put_u64(b, t->offset))
            return false;
    }
    static const uint8_t zeros[DC_GGUF_DEFAULT_ALIGNMENT] = {0};
    size_t padn = (size_t)(pad_to(b->n, DC_GGUF_DEFAULT_ALIGNMENT) - b->n);
    return put(b, zeros, padn);
}

dc_status dc_ggufw_plan(dc_ggufw *w, uint64_t max_split_bytes, dc_err *err)
{
    if (w->planned)
        return dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer planned twice");
    int split = 0;
    uint64_t cur = 0, ncur = 0;
    for (size_t i = 0; i < w->n; i++) {
        dc_ggufw_tensor *t = &w->t[i];
        if (max_split_bytes && ncur > 0 && cur + t->nbytes > max_split_bytes) {
            split++;
            cur = ncur = 0;
        }
        t->split = split;
        cur += t->nbytes;
        ncur++;
    }
    w->n_splits = split + 1;
    if (w->n_splits > 99999)
        return dc_err_set(err, DC_ERR_USAGE, "--split-max-size %llu makes %d splits; GGUF split names allow at most 99999",
                          (unsigned long long)max_split_bytes, w->n_splits);
    if (w->n > (size_t)INT32_MAX)
        return dc_err_set(err, DC_ERR_UNSUPPORTED, "%zu tensors: split.tensors.count is an i32", w->n);
    w->data_start = calloc((size_t)w->n_splits, sizeof *w->data_start);
    w->fsize = calloc((size_t)w->n_splits, sizeof *w->fsize);
    if (!w->data_start || !w->fsize)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    w->planned = true;
    for (int s = 0; s < w->n_splits; s++) {
        uint64_t off = 0;
        for (size_t i = 0; i < w->n; i++) {
            dc_ggufw_tensor *t = &w->t[i];
            if (t->split != s)
                continue;
            t->offset = off;
            off += pad_to(t->nbytes, DC_GGUF_DEFAULT_ALIGNMENT);
        }
        bytes b = {0};
        if (!build_header(w, s, &b)) {
            free(b.p);
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        }
        w->data_start[s] = b.n;
        w->fsize[s] = b.n + off;
        free(b.p);
    }
    return DC_OK;
}

char *dc_ggufw_split_path(const char *path, int i, int n)
{
    if (n <= 1)
        return dc_strdup(path);
    size_t l = strlen(path);
    if (dc_str_ends_with(path, ".gguf"))
        l -= 5;
    size_t cap = l + 32;
    char *p = malloc(cap);
    if (p)
        snprintf(p, cap, "%.*s-%05d-of-%05d.gguf", (int)l, path, i + 1, n);
    return p;
}

dc_status dc_ggufw_open(dc_ggufw *w, const char *path, bool force, dc_err *err)
{
    if (!w->planned)
        return dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer opened before planning");
    w->out = calloc((size_t)w->n_splits, sizeof *w->out);
    if (!w->out)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    dc_status st = DC_OK;
    /* refuse before creating anything */
    for (int s = 0; s < w->n_splits && !force; s++) {
        char *p = dc_ggufw_split_path(path, s, w->n_splits);
        if (!p)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        if (dc_exists(p))
            st = dc_err_set(err, DC_ERR_EXISTS, "%s: already exists (use --force to overwrite)", p);
        free(p);
        if (st)
            return st;
    }
    for (int s = 0; s < w->n_splits; s++) {
        char *p = dc_ggufw_split_path(path, s, w->n_splits);
        if (!p) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            break;
        }
        st = dc_outfile_open(&w->out[s], p, force, err);
        free(p);
        if (st)
            break;
        w->n_out++;
        bytes b = {0};
        if (!build_header(w, s, &b)) {
            free(b.p);
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            break;
        }
        st = dc_outfile_truncate(&w->out[s], w->fsize[s], err);
        if (!st)
            st = dc_outfile_pwrite(&w->out[s], b.p, b.n, 0, err);
        free(b.p);
        if (st)
            break;
    }
    if (st)
        dc_ggufw_abort(w);
    return st;
}

dc_status dc_ggufw_write(dc_ggufw *w, size_t idx, uint64_t off, const void *buf, size_t n, dc_err *err)
{
    if (idx >= w->n || !w->out)
        return dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer: bad tensor index %zu", idx);
    const dc_ggufw_tensor *t = &w->t[idx];
    if (off > t->nbytes || n > t->nbytes - off)
        return dc_err_set(err, DC_ERR_INTERNAL, "GGUF writer: tensor '%s': write [%llu, +%zu) past its %llu bytes", t->name,
                          (unsigned long long)off, n, (unsigned long long)t->nbytes);
    return dc_outfile_pwrite(&w->out[t->split], buf, n, w->data_start[t->split] + t->offset + off, err);
}

dc_status dc_ggufw_finish(dc_ggufw *w, dc_err *err)
{
    dc_status st = DC_OK;
    for (int s = 0; s < w->n_out; s++) {
        if (st) {
            dc_outfile_abort(&w->out[s]);
            continue;
        }
        st = dc_outfile_commit(&w->out[s], err);
    }
    free(w->out);
    w->out = NULL;
    w->n_out = 0;
    return st;
}

/* ============================================================================================
 * deepseek2, qwen2 and llama tensor names (llama.cpp src/llama-arch.cpp LLM_TENSOR_NAMES, gguf-py
 * tensor_mapping.py) <-> Hugging Face names
 * ============================================================================================ */

typedef struct name_pair {
    const char *gguf, *hf;
} name_pair;

static const name_pair GLOBAL_NAMES[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

/* suffixes after "blk.L." / "model.layers.L." */
static const name_pair LAYER_NAMES[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"}, /* qwen2, llama: attention_bias */
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"attn_q_a.weight", "self_attn.q_a_proj.weight"},
    {"attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight"},
    {"attn_q_b.weight", "self_attn.q_b_proj.weight"},
    {"attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight"},
    {"attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight"},
    {"attn_kv_b.weight", "self_attn.kv_b_proj.weight"}, /* legacy (pre-MLA) files only */
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
    {"ffn_gate_inp.weight", "mlp.gate.weight"},
    {"exp_probs_b.bias", "mlp.gate.e_score_correction_bias"},
    {"ffn_gate_shexp.weight", "mlp.shared_experts.gate_proj.weight"},
    {"ffn_up_shexp.weight", "mlp.shared_experts.up_proj.weight"},
    {"ffn_down_shexp.weight", "mlp.shared_experts.down_proj.weight"},
    {"nextn.eh_proj.weight", "eh_proj.weight"},
    {"nextn.enorm.weight", "enorm.weight"},
    {"nextn.hnorm.weight", "hnorm.weight"},
    {"nextn.embed_tokens.weight", "embed_tokens.weight"},
    {"nextn.shared_head_head.weight", "shared_head.head.weight"},
    {"nextn.shared_head_norm.weight", "shared_head.norm.weight"},
    /* deepseek32: DeepSeek-V3.2's indexer */
    {"indexer.attn_q_b.weight", "self_attn.indexer.wq_b.weight"},
    {"indexer.attn_k.weight", "self_attn.indexer.wk.weight"},
    {"indexer.k_norm.weight", "self_attn.indexer.k_norm.weight"},
    {"indexer.k_norm.bias", "self_attn.indexer.k_norm.bias"},
    {"indexer.proj.weight", "self_attn.indexer.weights_proj.weight"},
};

/* "PREFIX<digits>." -> layer and the rest. */
static bool split_layer(const char *s, const char *prefix, int *layer, const char **rest)
{
    size_t pl = strlen(prefix);
    if (strncmp(s, prefix, pl))
        return false;
    const char *p = s + pl;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
        return false;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > 1000000)
            return false;
        p++;
    }
    if (*p != '.')
        return false;
    *layer = (int)v;
    *rest = p + 1;
    return true;
}

bool dc_gguf_hf_to_name(const char *hf, char *out, size_t cap)
{
    for (size_t i = 0; i < sizeof GLOBAL_NAMES / sizeof GLOBAL_NAMES[0]; i++)
        if (!strcmp(hf, GLOBAL_NAMES[i].hf))
            return (size_t)snprintf(out, cap, "%s", GLOBAL_NAMES[i].gguf) < cap;
    int L;
    const char *rest;
    if (!split_layer(hf, "model.layers.", &L, &rest))
        return false;
    for (size_t i = 0; i < sizeof LAYER_NAMES / sizeof LAYER_NAMES[0]; i++)
        if (!strcmp(rest, LAYER_NAMES[i].hf))
            return (size_t)snprintf(out, cap, "blk.%d.%s", L, LAYER_NAMES[i].gguf) < cap;
    return false;
}

bool dc_gguf_name_to_hf(const char *name, char *out, size_t cap)
{
    for (size_t i = 0; i < sizeof GLOBAL_NAMES / sizeof GLOBAL_NAMES[0]; i++)
        if (!strcmp(name, GLOBAL_NAMES[i].gguf))
            return (size_t)snprintf(out, cap, "%s", GLOBAL_NAMES[i].hf) < cap;
    int L;
    const char *rest;
    if (!split_layer(name, "blk.", &L, &rest))
        return false;
    for (size_t i = 0; i < sizeof LAYER_NAMES / sizeof LAYER_NAMES[0]; i++)
        if (!strcmp(rest, LAYER_NAMES[i].gguf))
            return (size_t)snprintf(out, cap, "model.layers.%d.%s", L, LAYER_NAMES[i].hf) < cap;
    return false;
}

/* ============================================================================================
 * GGUF checkpoints
 * ============================================================================================ */

/* kv_b_proj [H*(dn+dv), c] of layer L, assembled from attn_k_b (ne {dn, c, H}: k_b[h] is W_UK[h]
 * transposed) and attn_v_b (ne {c, dv, H}: W_UV[h] as stored). Row h*(dn+dv) + j is column j of
 * k_b[h] for j < dn, row j - dn of v_b[h] otherwise. */
typedef struct kvb_virtual {
    const dc_tensor *kb, *vb; /* file tensors (3-D) */
    dc_tensor kb2, vb2;       /* the same bytes viewed 2-D: [H*c, dn] and [H*dv, c] */
    dc_weight kbw, vbw;
    bool ok;       /* both parts decodable */
    int64_t H, dn, dv, c;
    dc_tensor *hf; /* the virtual tensor of the HF view */
} kvb_virtual;

/* A llama GGUF's attn_q / attn_k (weight or bias) seen in Hugging Face order: llama.cpp's
 * converter interleaves the two halves of every head (LlamaModel.permute), HF row a*hd/2 + i is
 * stored as row 2i + a (for a bias: value). */
typedef struct perm_virtual {
    const dc_tensor *hf; /* the tensor of the HF view */
    dc_weight base;      /* its stored rows */
    int64_t hd;
} perm_virtual;

typedef struct dc_gguf_model dc_gguf_model;
struct dc_gguf_model {
    dc_gguf_file *files;
    int n_files;
    dc_tensor *ft;   /* file tensors, in file order (names point into files[].tensors) */
    size_t n_ft;
    dc_tensor *hf;   /* the Hugging Face view (names owned) */
    size_t n_hf;
    kvb_virtual *kvb;
    size_t n_kvb;
    perm_virtual *perm;
    size_t n_perm;
};

const dc_gguf_file *dc_gguf_ckpt_file(const dc_ckpt *ck, int i)
{
    return ck && ck->gguf && i >= 0 && i < ck->gguf->n_files ? &ck->gguf->files[i] : NULL;
}

void dc_gguf_ckpt_free(dc_ckpt *ck)
{
    dc_gguf_model *m = ck->gguf;
    if (!m)
        return;
    for (size_t i = 0; i < m->n_hf; i++)
        free(m->hf[i].name);
    free(m->hf);
    free(m->ft);
    free(m->kvb);
    free(m->perm);
    for (int i = 0; i < m->n_files; i++)
        dc_gguf_close(&m->files[i]);
    free(m->files);
    free(m);
    free(ck->file_tensors);
    ck->file_tensors = NULL;
    ck->n_file_tensors = 0;
    ck->gguf = NULL;
}

static dc_status kvb_read(const dc_weight *w, int64_t r0, int64_t n, float *out, int mode, dc_err *err)
{
    const kvb_virtual *v = w->read_ctx;
    const int64_t per = v->dn + v->dv, c = v->c, dn = v->dn;
    float *head = NULL; /* k_b[h] decoded: c rows of dn */
    int64_t head_h = -1;
    dc_status st = DC_OK;
    for (int64_t r = r0; r < r0 + n && !st; r++) {
        int64_t h = r / per, j = r % per;
        float *dst = out + (r - r0) * c;
        if (j >= dn) {
            st = dc_weight_rows(&v->vbw, h * v->dv + (j - dn), 1, dst, mode, err);
            continue;
        }
        if (head_h != h) {
            if (!head && !(head = malloc((size_t)(c * dn) * sizeof *head)))
                return dc_err_set(err, DC_ERR_NOMEM, "out of memory for %lld values of %s", (long long)(c * dn),
                                  v->kb->name);
            if ((st = dc_weight_rows(&v->kbw, h * c, c, head, mode, err)))
                break;
            head_h = h;
        }
        for (int64_t x = 0; x < c; x++)
            dst[x] = head[x * dn + j];
    }
    free(head);
    return st;
}

static int64_t perm_stored(int64_t r, int64_t hd)
{
    int64_t h = r / hd, j = r % hd, half = hd / 2;
    return h * hd + 2 * (j % half) + j / half;
}

static dc_status perm_read(const dc_weight *w, int64_t r0, int64_t n, float *out, int mode, dc_err *err)
{
    const perm_virtual *v = w->read_ctx;
    const int64_t cols = w->cols;
    dc_status st = DC_OK;
    if (v->hf->ndim == 1) { /* one row: its values permuted */
        float *tmp = malloc((size_t)cols * sizeof *tmp + 1);
        if (!tmp)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        st = dc_weight_rows(&v->base, 0, 1, tmp, mode, err);
        for (int64_t j = 0; !st && j < cols; j++)
            out[j] = tmp[perm_stored(j, v->hd)];
        free(tmp);
        return st;
    }
    for (int64_t r = r0; r < r0 + n && !st; r++)
        st = dc_weight_rows(&v->base, perm_stored(r, v->hd), 1, out + (r - r0) * cols, mode, err);
    return st;
}

dc_status dc_gguf_ckpt_weight(const dc_ckpt *ck, const dc_tensor *t, dc_weight *w, dc_err *err)
{
    const dc_gguf_model *m = ck->gguf;
    for (size_t i = 0; i < m->n_perm; i++) {
        const perm_virtual *v = &m->perm[i];
        if (v->hf != t)
            continue;
        dc_status st = dc_weight_init(w, t, NULL, 128, 128, dc_ckpt_file_name(ck, t), err);
        if (st)
            return st;
        w->read_rows = perm_read;
        w->read_ctx = v;
        return DC_OK;
    }
    for (size_t i = 0; i < m->n_kvb; i++) {
        const kvb_virtual *v = &m->kvb[i];
        if (v->hf != t)
            continue;
        if (!v->ok) {
            dc_weight tmp;
            dc_status st = dc_weight_init(&tmp, &v->kb2, NULL, 128, 128, dc_ckpt_file_name(ck, v->kb), err);
            if (!st)
                st = dc_weight_init(&tmp, &v->vb2, NULL, 128, 128, dc_ckpt_file_name(ck, v->vb), err);
            return st ? st : dc_err_set(err, DC_ERR_INTERNAL, "%s: cannot read its parts", t->name);
        }
        memset(w, 0, sizeof *w);
        w->t = t;
        w->file_name = dc_ckpt_file_name(ck, v->kb);
        w->rows = v->H * (v->dn + v->dv);
        w->cols = v->c;
        w->block_rows = w->block_cols = 128;
        w->read_rows = kvb_read;
        w->read_ctx = v;
        return DC_OK;
    }
    return dc_weight_init(w, t, NULL, 128, 128, dc_ckpt_file_name(ck, t), err);
}

/* "-00001-of-00003.gguf" at the end of path: *no (1-based) and *count. */
static bool split_suffix(const char *path, int *no, int *count, size_t *prefix_len)
{
    size_t l = strlen(path);
    const char *tail = "-00000-of-00000.gguf";
    size_t tl = strlen(tail);
    if (l < tl + 1)
        return false;
    const char *s = path + l - tl;
    for (size_t i = 0; i < tl; i++) {
        if (tail[i] == '0') {
            if (s[i] < '0' || s[i] > '9')
                return false;
        } else if (s[i] != tail[i])
            return false;
    }
    *no = atoi(s + 1);
    *count = atoi(s + 10);
    *prefix_len = l - tl;
    return *no >= 1 && *count >= 1 && *no <= *count;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp((*(const dc_tensor *const *)a)->name, (*(const dc_tensor *const *)b)->name);
}

/* Value of a u32 key that llama.cpp reads with get_key_or_arr: the scalar, or the first element
 * of an array of u32/i32 (deepcast's config has one value for all layers). */
static bool get_u32_or_arr(const dc_gguf_file *f, const char *key, uint32_t *v)
{
    if (dc_gguf_get_u32(f, key, v))
        return true;
    const dc_gguf_kv *kv = dc_gguf_find(f, key);
    if (kv && kv->type == DC_GGUF_ARRAY && (kv->arr_type == DC_GGUF_U32 || kv->arr_type == DC_GGUF_I32) && kv->n > 0) {
        memcpy(v, kv->data, 4);
        return true;
    }
    return false;
}

/* The shortest decimal that rounds to the same f32: the value the exporter was given (1e-06,
 * 0.707), not the f32's binary expansion. */
static double f32_decimal(float f)
{
    char b[48];
    for (int p = 1; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)f);
        double d = strtod(b, NULL);
        if ((float)d == f)
            return d;
    }
    return (double)f;
}

static const dc_tensor *find_ft(const dc_gguf_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_ft; i++)
        if (!strcmp(m->ft[i].name, name))
            return &m->ft[i];
    return NULL;
}

/* The vocabulary size: the key, else the number of tokenizer tokens, else token_embd's rows (0 if
 * none of these). */
static uint32_t gguf_vocab(const dc_gguf_file *f, const dc_gguf_model *m, const char *key)
{
    uint32_t v = 0;
    if (dc_gguf_get_u32(f, key, &v))
        return v;
    const dc_gguf_kv *tk = dc_gguf_find(f, "tokenizer.ggml.tokens");
    if (tk && tk->n <= UINT32_MAX && tk->n > 0)
        return (uint32_t)tk->n;
    const dc_tensor *emb = find_ft(m, "token_embd.weight");
    return emb && emb->ndim == 2 && emb->shape[0] <= UINT32_MAX ? (uint32_t)emb->shape[0] : 0;
}

/* Synthesizes config.json text from the deepseek2.* (deepseek32.*: DeepSeek-V3.2, + the indexer's
 * keys) keys and parses it with dc_config_parse, which applies the same checks as to a real
 * config.json. */
static dc_status synth_config(dc_ckpt *ck, const dc_gguf_file *f, const char *fname, bool ds32, dc_err *err)
{
    dc_gguf_model *m = ck->gguf;
    const char *an = ds32 ? "deepseek32" : "deepseek2";
    char key[128];
#define K(s) (snprintf(key, sizeof key, "%s.%s", an, s), key)
    uint32_t n_all, hidden, heads, kv_lora, rope_dim, nextn = 0, ffn = 0, qlora = 0, dn = 0, dv = 0, kl, vl;
    const char *missing = NULL;
    if (!dc_gguf_get_u32(f, K("block_count"), &n_all))
        missing = "block_count";
    else if (!dc_gguf_get_u32(f, K("embedding_length"), &hidden))
        missing = "embedding_length";
    else if (!get_u32_or_arr(f, K("attention.head_count"), &heads))
        missing = "attention.head_count";
    else if (!dc_gguf_get_u32(f, K("attention.kv_lora_rank"), &kv_lora))
        missing = "attention.kv_lora_rank";
    else if (!dc_gguf_get_u32(f, K("rope.dimension_count"), &rope_dim))
        missing = "rope.dimension_count";
    if (missing)
        return dc_err_set(err, DC_ERR_CONFIG, "%s: %s model without the key %s.%s", fname, an, an, missing);
    dc_gguf_get_u32(f, K("nextn_predict_layers"), &nextn);
    get_u32_or_arr(f, K("feed_forward_length"), &ffn);
    dc_gguf_get_u32(f, K("attention.q_lora_rank"), &qlora);
    bool mla = dc_gguf_get_u32(f, K("attention.key_length_mla"), &kl) &&
               dc_gguf_get_u32(f, K("attention.value_length_mla"), &vl);
    if (!mla && !(dc_gguf_get_u32(f, K("attention.key_length"), &kl) && dc_gguf_get_u32(f, K("attention.value_length"), &vl)))
        return dc_err_set(err, DC_ERR_CONFIG, "%s: %s model without %s.attention.key_length_mla / value_length_mla",
                          fname, an, an);
    if (kl <= rope_dim)
        return dc_err_set(err, DC_ERR_CONFIG, "%s: %s.attention.key_length%s %" PRIu32 " is not above rope.dimension_count %" PRIu32,
                          fname, an, mla ? "_mla" : "", kl, rope_dim);
    dn = kl - rope_dim;
    dv = vl;
    if (nextn >= n_all)
        return dc_err_set(err, DC_ERR_CONFIG, "%s: %s.nextn_predict_layers %" PRIu32 " leaves no layers of block_count %" PRIu32,
                          fname, an, nextn, n_all);
    /* every layer has tensors: bounds the layer count by the file */
    if (n_all > m->n_ft)
        return dc_err_set(err, DC_ERR_CONFIG, "%s: %s.block_count %" PRIu32 " exceeds the %zu tensors of the file", fname, an,
                          n_all, m->n_ft);
    uint32_t n_exp = 0, used = 0, shared = 0, groups = 1, gused = 1, lead = 0, exp_ff = 0, gating = 0, vocab = 0,
             ctx = 4096, orig = 0, bos = 0, eos = 0;
    float scale = 1.0f, eps = 1e-6f, theta = 10000.0f, factor = 0, logmul = 0, bfast = 32, bslow = 1;
    bool norm = false, have_bos, have_eos, yarn = false;
    dc_gguf_get_u32(f, K("expert_count"), &n_exp);
    get_u32_or_arr(f, K("expert_used_count"), &used);
    dc_gguf_get_u32(f, K("expert_shared_count"), &shared);
    dc_gguf_get_u32(f, K("expert_group_count"), &groups);
    dc_gguf_get_u32(f, K("expert_group_used_count"), &gused);
    dc_gguf_get_u32(f, K("leading_dense_block_count"), &lead);
    get_u32_or_arr(f, K("expert_feed_forward_length"), &exp_ff);
    dc_gguf_get_u32(f, K("expert_gating_func"), &gating);
    dc_gguf_get_f32(f, K("expert_weights_scale"), &scale);
    dc_gguf_get_bool(f, K("expert_weights_norm"), &norm);
    dc_gguf_get_f32(f, K("attention.layer_norm_rms_epsilon"), &eps);
    dc_gguf_get_f32(f, K("rope.freq_base"), &theta);
    dc_gguf_get_u32(f, K("context_length"), &ctx);
    vocab = gguf_vocab(f, m, K("vocab_size"));
    const char *rt;
    uint64_t rtl;
    if (dc_gguf_get_str(f, K("rope.scaling.type"), &rt, &rtl) && rtl == 4 && !memcmp(rt, "yarn", 4)) {
        yarn = true;
        dc_gguf_get_f32(f, K("rope.scaling.factor"), &factor);
        dc_gguf_get_u32(f, K("rope.scaling.original_context_length"), &orig);
        dc_gguf_get_f32(f, K("rope.scaling.yarn_log_multiplier"), &logmul);
        dc_gguf_get_f32(f, K("rope.scaling.yarn_beta_fast"), &bfast);
        dc_gguf_get_f32(f, K("rope.scaling.yarn_beta_slow"), &bslow);
    }
    uint32_t ih = 0, ihd = 0, itk = 0;
    if (ds32 && !(dc_gguf_get_u32(f, K("attention.indexer.head_count"), &ih) &&
                  dc_gguf_get_u32(f, K("attention.indexer.key_length"), &ihd) &&
                  dc_gguf_get_u32(f, K("attention.indexer.top_k"), &itk)))
        return dc_err_set(err, DC_ERR_CONFIG, "%s: deepseek32 model without the keys deepseek32.attention.indexer."
                          "head_count / key_length / top_k", fname);
#undef K
    have_bos = dc_gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &bos);
    have_eos = dc_gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &eos);
    if (n_exp > 0 && n_all > lead) {
        /* each routed expert of each MoE layer needs at least one byte: bounds the expert count */
        uint64_t total = 0, need = (uint64_t)n_exp * (n_all - lead);
        for (size_t i = 0; i < m->n_ft; i++)
            total += m->ft[i].nbytes;
        if (need > total)
            return dc_err_set(err, DC_ERR_CONFIG, "%s: %s.expert_count %" PRIu32 " x %" PRIu32 " MoE layers exceeds the %llu bytes of tensor data",
                              fname, an, n_exp, n_all - lead, (unsigned long long)total);
    }
    bool bias = false;
    for (size_t i = 0; i < m->n_ft && !bias; i++)
        bias = dc_str_ends_with(m->ft[i].name, ".exp_probs_b.bias");
    bool sigmoid = gating == 2;
    bool tied = true;
    for (size_t i = 0; i < m->n_ft && tied; i++)
        tied = strcmp(m->ft[i].name, "output.weight") != 0;
    uint32_t ftype = 0;
    const char *torch = "bfloat16";
    if (dc_gguf_get_u32(f, "general.file_type", &ftype))
        torch = ftype == 0 ? "float32" : ftype == 1 ? "float16" : ftype == 32 ? "bfloat16" : "bfloat16";
    if (gating != 0 && gating != 1 && gating != 2)
        return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: %s.expert_gating_func %" PRIu32 " (deepcast knows 1 = softmax, 2 = sigmoid)",
                          fname, an, gating);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    cJSON_AddItemToObject(o, "architectures", cJSON_CreateStringArray(
        (const char *[]){ds32 ? "DeepseekV32ForCausalLM" : sigmoid ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"}, 1));
    cJSON_AddStringToObject(o, "model_type", ds32 ? "deepseek_v32" : sigmoid ? "deepseek_v3" : "deepseek_v2");
    if (ds32) {
        cJSON_AddNumberToObject(o, "index_n_heads", ih);
        cJSON_AddNumberToObject(o, "index_head_dim", ihd);
        cJSON_AddNumberToObject(o, "index_topk", itk);
    }
    cJSON_AddStringToObject(o, "torch_dtype", torch);
    cJSON_AddNumberToObject(o, "vocab_size", vocab);
    cJSON_AddNumberToObject(o, "hidden_size", hidden);
    cJSON_AddNumberToObject(o, "intermediate_size", ffn ? ffn : 1);
    cJSON_AddNumberToObject(o, "moe_intermediate_size", exp_ff ? exp_ff : 1);
    cJSON_AddNumberToObject(o, "num_hidden_layers", n_all - nextn);
    cJSON_AddNumberToObject(o, "num_nextn_predict_layers", nextn);
    cJSON_AddNumberToObject(o, "num_attention_heads", heads);
    cJSON_AddNumberToObject(o, "num_key_value_heads", heads);
    if (qlora)
        cJSON_AddNumberToObject(o, "q_lora_rank", qlora);
    else
        cJSON_AddNullToObject(o, "q_lora_rank");
    cJSON_AddNumberToObject(o, "kv_lora_rank", kv_lora);
    cJSON_AddNumberToObject(o, "qk_nope_head_dim", dn);
    cJSON_AddNumberToObject(o, "qk_rope_head_dim", rope_dim);
    cJSON_AddNumberToObject(o, "v_head_dim", dv);
    cJSON_AddNumberToObject(o, "n_routed_experts", n_exp ? n_exp : 1);
    cJSON_AddNumberToObject(o, "n_shared_experts", shared);
    cJSON_AddNumberToObject(o, "num_experts_per_tok", used ? used : 1);
    cJSON_AddNumberToObject(o, "n_group", groups ? groups : 1);
    cJSON_AddNumberToObject(o, "topk_group", gused ? gused : 1);
    cJSON_AddNumberToObject(o, "first_k_dense_replace", n_exp ? lead : n_all - nextn);
    cJSON_AddNumberToObject(o, "moe_layer_freq", 1);
    cJSON_AddNumberToObject(o, "routed_scaling_factor", f32_decimal(scale));
    cJSON_AddStringToObject(o, "scoring_func", sigmoid ? "sigmoid" : "softmax");
    cJSON_AddStringToObject(o, "topk_method", bias ? "noaux_tc" : groups > 1 ? "group_limited_greedy" : "greedy");
    cJSON_AddBoolToObject(o, "norm_topk_prob", norm);
    cJSON_AddNumberToObject(o, "rope_theta", f32_decimal(theta));
    cJSON_AddNumberToObject(o, "rms_norm_eps", f32_decimal(eps));
    cJSON_AddNumberToObject(o, "max_position_embeddings", ctx ? ctx : 4096);
    if (have_bos)
        cJSON_AddNumberToObject(o, "bos_token_id", bos);
    if (have_eos)
        cJSON_AddNumberToObject(o, "eos_token_id", eos);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", tied);
    if (yarn) {
        cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
        cJSON_AddStringToObject(rs, "type", "yarn");
        cJSON_AddNumberToObject(rs, "factor", f32_decimal(factor));
        if (orig)
            cJSON_AddNumberToObject(rs, "original_max_position_embeddings", orig);
        cJSON_AddNumberToObject(rs, "beta_fast", f32_decimal(bfast));
        cJSON_AddNumberToObject(rs, "beta_slow", f32_decimal(bslow));
        /* llama.cpp divides yarn_log_multiplier by 0.1 (TAG_DEEPSEEK2_YARN_LOG_MUL_FIX): mscale_all_dim */
        char mb[48];
        snprintf(mb, sizeof mb, "%.15g", f32_decimal(logmul) / 0.1);
        double msa = strtod(mb, NULL);
        cJSON_AddNumberToObject(rs, "mscale", msa);
        cJSON_AddNumberToObject(rs, "mscale_all_dim", msa);
    }
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!json)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    char what[600];
    snprintf(what, sizeof what, "%s (config from its %s.* keys)", fname, an);
    dc_status st = dc_config_parse(json, strlen(json), what, &ck->cfg, err);
    free(json);
    if (st == DC_OK)
        ck->has_config = true;
    return st;
}

/* qwen2 / llama: config.json from the {arch}.* keys (conversion/base.py TextModel.set_gguf_parameters,
 * llama.py), checked by dc_config_parse; a llama rope_freqs tensor becomes cfg.rope_freq_factors. */
static dc_status synth_config_dense(dc_ckpt *ck, const dc_gguf_file *f, const char *fname, bool llama, dc_err *err)
{
    dc_gguf_model *m = ck->gguf;
    const char *an = llama ? "llama" : "qwen2";
    char key[128];
#define K(s) (snprintf(key, sizeof key, "%s.%s", an, s), key)
    uint32_t n_layers, hidden, heads, ffn, kv, hd = 0, vocab = 0, ctx = 4096, bos = 0, eos = 0;
    float eps, theta = 10000.0f;
    const char *missing = NULL;
    if (!dc_gguf_get_u32(f, K("block_count"), &n_layers))
        missing = "block_count";
    else if (!dc_gguf_get_u32(f, K("embedding_length"), &hidden))
        missing = "embedding_length";
    else if (!get_u32_or_arr(f, K("feed_forward_length"), &ffn))
        missing = "feed_forward_length";
    else if (!get_u32_or_arr(f, K("attention.head_count"), &heads))
        missing = "attention.head_count";
    else if (!dc_gguf_get_f32(f, K("attention.layer_norm_rms_epsilon"), &eps))
        missing = "attention.layer_norm_rms_epsilon";
    if (missing)
        return dc_err_set(err, DC_ERR_CONFIG, "%s: %s model without the key %s.%s", fname, an, an, missing);
    if (!get_u32_or_arr(f, K("attention.head_count_kv"), &kv))
        kv = heads;
    if (!dc_gguf_get_u32(f, K("attention.key_length"), &hd))
        dc_gguf_get_u32(f, K("rope.dimension_count"), &hd);
    dc_gguf_get_f32(f, K("rope.freq_base"), &theta);
    dc_gguf_get_u32(f, K("context_length"), &ctx);
    if (n_layers > m->n_ft)
        return dc_err_set(err, DC_ERR_CONFIG, "%s: %s.block_count %" PRIu32 " exceeds the %zu tensors of the file", fname, an,
                          n_layers, m->n_ft);
    const char *rt;
    uint64_t rtl;
    if (dc_gguf_get_str(f, K("rope.scaling.type"), &rt, &rtl) && !(rtl == 4 && !memcmp(rt, "none", 4)))
        return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: %s.rope.scaling.type %.*s (deepcast reads llama3 scaling as a "
                          "rope_freqs tensor, no other scaling)", fname, an, (int)(rtl < 64 ? rtl : 64), rt);
#undef K
    vocab = gguf_vocab(f, m, llama ? "llama.vocab_size" : "qwen2.vocab_size");
    bool have_bos = dc_gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &bos);
    bool have_eos = dc_gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &eos);
    bool tied = !find_ft(m, "output.weight");
    bool attn_bias = false;
    for (size_t i = 0; i < m->n_ft && !attn_bias; i++)
        attn_bias = dc_str_ends_with(m->ft[i].name, ".attn_q.bias") || dc_str_ends_with(m->ft[i].name, ".attn_output.bias");
    uint32_t ftype = 0;
    const char *torch = "bfloat16";
    if (dc_gguf_get_u32(f, "general.file_type", &ftype))
        torch = ftype == 0 ? "float32" : ftype == 1 ? "float16" : "bfloat16";
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    cJSON_AddItemToObject(o, "architectures", cJSON_CreateStringArray(
        (const char *[]){llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM"}, 1));
    cJSON_AddStringToObject(o, "model_type", an);
    cJSON_AddStringToObject(o, "torch_dtype", torch);
    cJSON_AddNumberToObject(o, "vocab_size", vocab);
    cJSON_AddNumberToObject(o, "hidden_size", hidden);
    cJSON_AddNumberToObject(o, "intermediate_size", ffn);
    cJSON_AddNumberToObject(o, "num_hidden_layers", n_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", heads);
    cJSON_AddNumberToObject(o, "num_key_value_heads", kv);
    if (hd)
        cJSON_AddNumberToObject(o, "head_dim", hd);
    cJSON_AddNumberToObject(o, "rope_theta", f32_decimal(theta));
    cJSON_AddNumberToObject(o, "rms_norm_eps", f32_decimal(eps));
    cJSON_AddNumberToObject(o, "max_position_embeddings", ctx ? ctx : 4096);
    if (have_bos)
        cJSON_AddNumberToObject(o, "bos_token_id", bos);
    if (have_eos)
        cJSON_AddNumberToObject(o, "eos_token_id", eos);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", tied);
    if (llama)
        cJSON_AddBoolToObject(o, "attention_bias", attn_bias);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!json)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    char what[600];
    snprintf(what, sizeof what, "%s (config from its %s.* keys)", fname, an);
    dc_status st = dc_config_parse(json, strlen(json), what, &ck->cfg, err);
    free(json);
    if (st)
        return st;
    const dc_tensor *rf = find_ft(m, "rope_freqs.weight");
    if (rf) {
        int64_t half = ck->cfg.head_dim / 2;
        if (!llama)
            return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: tensor rope_freqs.weight in a qwen2 model", fname);
        if (rf->dtype != DC_DT_F32 || rf->ndim != 1 || rf->shape[0] != half || half > DC_MAX_ROPE_FACTORS)
            return dc_err_set(err, DC_ERR_MODEL, "%s: tensor rope_freqs.weight is %s with %lld values; expected F32 with "
                              "head_dim / 2 = %lld", fname, dc_dtype_name(rf->dtype),
                              (long long)(rf->ndim == 1 ? rf->shape[0] : -1), (long long)half);
        for (int64_t i = 0; i < half; i++) {
            float v;
            memcpy(&v, rf->data + 4 * i, 4);
            if (!(v > 0) || !isfinite(v))
                return dc_err_set(err, DC_ERR_MODEL, "%s: tensor rope_freqs.weight: value %lld is %g; frequency divisors must "
                                  "be positive", fname, (long long)i, (double)v);
            ck->cfg.rope_freq_factors[i] = v;
        }
        ck->cfg.n_rope_freq_factors = (int)half;
    }
    ck->has_config = true;
    return DC_OK;
}

/* Builds the Hugging Face view of a deepseek2 model (or, for other architectures, the file
 * tensors under their own names). */
static dc_status build_hf_view(dc_ckpt *ck, bool deepseek, dc_err *err)
{
    dc_gguf_model *m = ck->gguf;
    static const char *EXPS[3] = {"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"};
    static const char *EXPS_HF[3] = {"gate_proj", "up_proj", "down_proj"};
    /* pass 1: count; find k_b/v_b pairs */
    size_t n = 0, n_pairs = 0;
    size_t *kb_of = NULL, *vb_of = NULL; /* per layer: ft index + 1 */
    int max_layer = -1;
    for (size_t i = 0; i < m->n_ft && deepseek; i++) {
        int L;
        const char *rest;
        if (split_layer(m->ft[i].name, "blk.", &L, &rest) && L > max_layer)
            max_layer = L;
    }
    if (max_layer >= 0) {
        kb_of = calloc((size_t)max_layer + 1, sizeof *kb_of);
        vb_of = calloc((size_t)max_layer + 1, sizeof *vb_of);
        if (!kb_of || !vb_of) {
            free(kb_of);
            free(vb_of);
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        }
    }
    bool *has_kvb_legacy = max_layer >= 0 ? calloc((size_t)max_layer + 1, 1) : NULL;
    for (size_t i = 0; i < m->n_ft && deepseek; i++) {
        int L;
        const char *rest;
        if (!split_layer(m->ft[i].name, "blk.", &L, &rest))
            continue;
        if (!strcmp(rest, "attn_k_b.weight") && m->ft[i].ndim == 3)
            kb_of[L] = i + 1;
        else if (!strcmp(rest, "attn_v_b.weight") && m->ft[i].ndim == 3)
            vb_of[L] = i + 1;
        else if (!strcmp(rest, "attn_kv_b.weight") && has_kvb_legacy)
            has_kvb_legacy[L] = true;
    }
    /* validate pairs */
    for (int L = 0; L <= max_layer; L++) {
        if (!kb_of[L] || !vb_of[L] || (has_kvb_legacy && has_kvb_legacy[L])) {
            kb_of[L] = vb_of[L] = 0;
            continue;
        }
        const dc_tensor *kb = &m->ft[kb_of[L] - 1], *vb = &m->ft[vb_of[L] - 1];
        /* row-major shapes: kb [H, c, dn], vb [H, dv, c] */
        if (kb->shape[0] != vb->shape[0] || kb->shape[1] != vb->shape[2] || kb->shape[0] < 1 || kb->shape[1] < 1 ||
            kb->shape[2] < 1 || vb->shape[1] < 1) {
            kb_of[L] = vb_of[L] = 0; /* shown under their GGUF names; --check reports them */
            continue;
        }
        n_pairs++;
    }
    free(has_kvb_legacy);
    for (size_t i = 0; i < m->n_ft; i++) {
        const dc_tensor *t = &m->ft[i];
        int L;
        const char *rest;
        if (deepseek && split_layer(t->name, "blk.", &L, &rest)) {
            if ((kb_of[L] == i + 1) || (vb_of[L] == i + 1))
                continue;
            bool ex = false;
            for (int k = 0; k < 3 && !ex; k++)
                ex = !strcmp(rest, EXPS[k]);
            if (ex && t->ndim == 3 && t->shape[0] > 0 && t->nbytes / (uint64_t)t->shape[0] > 0) {
                n += (size_t)t->shape[0];
                continue;
            }
        }
        n++;
    }
    n += n_pairs;
    m->hf = calloc(n ? n : 1, sizeof *m->hf);
    m->kvb = calloc(n_pairs ? n_pairs : 1, sizeof *m->kvb);
    m->perm = calloc(n ? n : 1, sizeof *m->perm);
    ck->tensors = malloc((n ? n : 1) * sizeof *ck->tensors);
    dc_status st = DC_OK;
    if (!m->hf || !m->kvb || !m->perm || !ck->tensors) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* pass 2 */
    for (size_t i = 0; i < m->n_ft; i++) {
        const dc_tensor *t = &m->ft[i];
        char nm[256];
        int L = -1;
        const char *rest = NULL;
        bool layer = deepseek && split_layer(t->name, "blk.", &L, &rest);
        if (layer && (kb_of[L] == i + 1 || vb_of[L] == i + 1))
            continue;
        int ek = -1;
        for (int k = 0; layer && k < 3 && ek < 0; k++)
            if (!strcmp(rest, EXPS[k]))
                ek = k;
        if (ek >= 0 && t->ndim == 3 && t->shape[0] > 0 && t->nbytes / (uint64_t)t->shape[0] > 0) {
            int64_t E = t->shape[0];
            uint64_t slice = t->nbytes / (uint64_t)E;
            for (int64_t e = 0; e < E; e++) {
                dc_tensor *h = &m->hf[m->n_hf];
                *h = *t;
                snprintf(nm, sizeof nm, "model.layers.%d.mlp.experts.%lld.%s.weight", L, (long long)e, EXPS_HF[ek]);
                h->name = dc_strdup(nm);
                if (!h->name) {
                    st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                    goto done;
                }
                h->ndim = 2;
                h->shape[0] = t->shape[1];
                h->shape[1] = t->shape[2];
                h->nbytes = slice;
                h->offset = t->offset + (uint64_t)e * slice;
                h->data = t->data + (uint64_t)e * slice;
                ck->tensors[ck->n_tensors++] = h;
                m->n_hf++;
            }
            continue;
        }
        if (ck->cfg.n_rope_freq_factors && !strcmp(t->name, "rope_freqs.weight"))
            continue; /* in the config */
        dc_tensor *h = &m->hf[m->n_hf];
        *h = *t;
        if (!deepseek || !dc_gguf_name_to_hf(t->name, nm, sizeof nm))
            snprintf(nm, sizeof nm, "%s", t->name);
        h->name = dc_strdup(nm);
        if (!h->name) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        ck->tensors[ck->n_tensors++] = h;
        m->n_hf++;
        int64_t hd = ck->cfg.head_dim;
        if (deepseek && ck->cfg.arch == DC_ARCH_LLAMA && layer && hd >= 2 && hd % 2 == 0 && h->ndim >= 1 &&
            h->shape[0] % hd == 0 && (!strcmp(rest, "attn_q.weight") || !strcmp(rest, "attn_k.weight") ||
                                      !strcmp(rest, "attn_q.bias") || !strcmp(rest, "attn_k.bias"))) {
            perm_virtual *v = &m->perm[m->n_perm];
            dc_err e2; /* an undecodable type is reported when the tensor is read */
            if (dc_weight_init(&v->base, h, NULL, 128, 128, dc_path_base(ck->files[h->file].path), &e2) == DC_OK &&
                (h->ndim == 1 || v->base.rows % hd == 0)) {
                v->hf = h;
                v->hd = hd;
                m->n_perm++;
            }
        }
    }
    for (int L = 0; L <= max_layer; L++) {
        if (!kb_of[L])
            continue;
        kvb_virtual *v = &m->kvb[m->n_kvb];
        v->kb = &m->ft[kb_of[L] - 1];
        v->vb = &m->ft[vb_of[L] - 1];
        v->H = v->kb->shape[0];
        v->c = v->kb->shape[1];
        v->dn = v->kb->shape[2];
        v->dv = v->vb->shape[1];
        v->kb2 = *v->kb;
        v->kb2.ndim = 2;
        v->kb2.shape[0] = v->H * v->c;
        v->kb2.shape[1] = v->dn;
        v->vb2 = *v->vb;
        v->vb2.ndim = 2;
        v->vb2.shape[0] = v->H * v->dv;
        v->vb2.shape[1] = v->c;
        const char *fk = dc_path_base(ck->files[v->kb->file].path), *fv = dc_path_base(ck->files[v->vb->file].path);
        dc_err e2; /* an undecodable type is reported when the tensor is read (dc_gguf_ckpt_weight) */
        v->ok = dc_weight_init(&v->kbw, &v->kb2, NULL, 128, 128, fk, &e2) == DC_OK &&
                dc_weight_init(&v->vbw, &v->vb2, NULL, 128, 128, fv, &e2) == DC_OK;
        dc_tensor *h = &m->hf[m->n_hf];
        char nm[128];
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.kv_b_proj.weight", L);
        memset(h, 0, sizeof *h);
        h->name = dc_strdup(nm);
        if (!h->name) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        h->dtype = v->kb->dtype;
        h->ndim = 2;
        h->shape[0] = v->H * (v->dn + v->dv);
        h->shape[1] = v->c;
        h->nbytes = v->kb->nbytes + v->vb->nbytes;
        h->offset = v->kb->offset;
        h->data = NULL; /* virtual: read through dc_ckpt_weight */
        h->file = v->kb->file;
        v->hf = h;
        ck->tensors[ck->n_tensors++] = h;
        m->n_hf++;
        m->n_kvb++;
    }
done:
    free(kb_of);
    free(vb_of);
    return st;
}

static dc_status open_set(const char *path, dc_gguf_model *m, dc_err *err)
{
    int no, count;
    size_t pl;
    dc_status st;
    if (split_suffix(path, &no, &count, &pl)) {
        m->files = calloc((size_t)count, sizeof *m->files);
        if (!m->files)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        for (int i = 0; i < count; i++) {
            size_t cap = pl + 32;
            char *p = malloc(cap);
            if (!p)
                return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            snprintf(p, cap, "%.*s-%05d-of-%05d.gguf", (int)pl, path, i + 1, count);
            if (!dc_exists(p)) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: split %d of %d (%s) does not exist", path, i + 1, count, p);
                free(p);
                return st;
            }
            st = dc_gguf_open(p, &m->files[i], err);
            free(p);
            if (st)
                return st;
            m->n_files++;
        }
    } else {
        m->files = calloc(1, sizeof *m->files);
        if (!m->files)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        if (!dc_exists(path))
            return dc_err_set(err, DC_ERR_IO, "%s: no such file", path);
        if ((st = dc_gguf_open(path, &m->files[0], err)))
            return st;
        m->n_files = 1;
    }
    /* split keys */
    uint64_t total = 0;
    for (int i = 0; i < m->n_files; i++)
        total += m->files[i].n_tensors;
    for (int i = 0; i < m->n_files; i++) {
        const dc_gguf_file *f = &m->files[i];
        uint16_t sno = 0, scount = 0;
        int32_t stc = 0;
        bool hn = dc_gguf_get_u16(f, "split.no", &sno), hc = dc_gguf_get_u16(f, "split.count", &scount),
             ht = dc_gguf_get_i32(f, "split.tensors.count", &stc);
        if (m->n_files == 1 && (!hc || scount <= 1))
            break;
        if (!hn || !hc || !ht)
            return dc_err_set(err, DC_ERR_MODEL, "%s: split %d of %d lacks split.no / split.count / split.tensors.count", f->path,
                              i + 1, m->n_files);
        if (m->n_files == 1)
            return dc_err_set(err, DC_ERR_MODEL,
                              "%s: split.count is %u, but the file name is not NAME-0000i-of-%05u.gguf; open the splits by their names",
                              f->path, scount, scount);
        if (sno != i || scount != m->n_files || stc < 0 || (uint64_t)stc != total)
            return dc_err_set(err, DC_ERR_MODEL,
                              "%s: split.no %u, split.count %u, split.tensors.count %d; expected %d, %d, %llu (the tensors of all splits)",
                              f->path, sno, scount, stc, i, m->n_files, (unsigned long long)total);
    }
    return DC_OK;
}

static dc_status open_files(dc_ckpt *ck, const char *path, dc_err *err) { return open_set(path, ck->gguf, err); }

void dc_gguf_close_all(dc_gguf_file *files, int n)
{
    for (int i = 0; i < n; i++)
        dc_gguf_close(&files[i]);
    free(files);
}

dc_status dc_gguf_open_all(const char *path, dc_gguf_file **files, int *n, dc_err *err)
{
    dc_gguf_model m = {0};
    dc_status st = open_set(path, &m, err);
    if (st) {
        dc_gguf_close_all(m.files, m.n_files);
        m.files = NULL;
        m.n_files = 0;
    }
    *files = m.files;
    *n = m.n_files;
    return st;
}

static dc_status gguf_ckpt_finish(dc_ckpt *ck, dc_err *err)
{
    dc_gguf_model *m = ck->gguf;
    dc_status st;
    /* ck->files: paths only (the mappings are held by m->files) */
    ck->files = calloc((size_t)m->n_files, sizeof *ck->files);
    if (!ck->files)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    ck->n_files = m->n_files;
    size_t n = 0;
    for (int i = 0; i < m->n_files; i++) {
        ck->files[i].path = dc_strdup(m->files[i].path ? m->files[i].path : "(memory)");
        if (!ck->files[i].path)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        n += m->files[i].n_tensors;
    }
    m->ft = calloc(n ? n : 1, sizeof *m->ft);
    ck->file_tensors = malloc((n ? n : 1) * sizeof *ck->file_tensors);
    if (!m->ft || !ck->file_tensors)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_files; i++) {
        const dc_gguf_file *f = &m->files[i];
        for (size_t k = 0; k < f->n_tensors; k++) {
            const dc_gguf_tinfo *ti = &f->tensors[k];
            dc_tensor *t = &m->ft[m->n_ft++];
            t->name = ti->name;
            t->dtype = ti->dtype;
            t->ndim = (int)ti->n_dims;
            for (uint32_t j = 0; j < ti->n_dims; j++)
                t->shape[j] = ti->ne[ti->n_dims - 1 - j];
            t->nbytes = ti->nbytes;
            t->offset = f->data_start + ti->offset;
            t->data = ti->data;
            t->file = i;
            ck->file_tensors[ck->n_file_tensors++] = t;
        }
    }
    qsort(ck->file_tensors, ck->n_file_tensors, sizeof *ck->file_tensors, cmp_tensor_name);
    for (size_t i = 1; i < ck->n_file_tensors; i++)
        if (!strcmp(ck->file_tensors[i]->name, ck->file_tensors[i - 1]->name))
            return dc_err_set(err, DC_ERR_MODEL, "%s: tensor '%s' is in two splits: %s and %s", ck->path,
                              ck->file_tensors[i]->name, dc_path_base(ck->files[ck->file_tensors[i - 1]->file].path),
                              dc_path_base(ck->files[ck->file_tensors[i]->file].path));
    const char *arch = NULL;
    uint64_t al = 0;
    const dc_gguf_file *f0 = &m->files[0];
    bool have_arch = dc_gguf_get_str(f0, "general.architecture", &arch, &al);
    bool ds32 = have_arch && al == 10 && !memcmp(arch, "deepseek32", 10);
    bool deepseek = ds32 || (have_arch && al == 9 && !memcmp(arch, "deepseek2", 9));
    bool qwen2 = have_arch && al == 5 && !memcmp(arch, "qwen2", 5), llama = have_arch && al == 5 && !memcmp(arch, "llama", 5);
    const char *fname = f0->path ? f0->path : ck->path;
    if (deepseek && (st = synth_config(ck, f0, fname, ds32, err)))
        return st;
    if ((qwen2 || llama) && (st = synth_config_dense(ck, f0, fname, llama, err)))
        return st;
    return build_hf_view(ck, deepseek || qwen2 || llama, err);
}

dc_status dc_gguf_ckpt_open(dc_ckpt *ck, const char *path, dc_err *err)
{
    ck->gguf = calloc(1, sizeof *ck->gguf);
    if (!ck->gguf)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    dc_status st = open_files(ck, path, err);
    if (!st)
        st = gguf_ckpt_finish(ck, err);
    return st; /* on failure the caller's dc_ckpt_close frees everything */
}

dc_status dc_gguf_ckpt_parse(dc_ckpt *ck, const uint8_t *buf, uint64_t size, const char *name, dc_err *err)
{
    ck->gguf = calloc(1, sizeof *ck->gguf);
    if (!ck->gguf || !(ck->gguf->files = calloc(1, sizeof *ck->gguf->files)))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    dc_status st = dc_gguf_parse(buf, size, name, &ck->gguf->files[0], err);
    if (st)
        return st;
    ck->gguf->n_files = 1;
    if (!(ck->gguf->files[0].path = dc_strdup(name)))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    return gguf_ckpt_finish(ck, err);
}
