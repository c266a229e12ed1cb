#define _GNU_SOURCE
#include "dc_safetensors.h"
#include "dc_strmap.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reader ------------------------------------------------------------------------------ */

static bool json_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= 0) || d >= 9007199254740992.0 || d != floor(d))
        return false;
    *out = (uint64_t)d;
    return true;
}

void dc_st_close(dc_st_file *f)
{
    for (size_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    dc_map_close(&f->map);
    free(f->path);
    memset(f, 0, sizeof *f);
}

typedef struct span {
    uint64_t b, e;
    size_t i;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->b != y->b)
        return x->b < y->b ? -1 : 1;
    if (x->e != y->e)
        return x->e < y->e ? -1 : 1;
    return 0;
}

static dc_status parse_entry(const cJSON *it, const char *fname, uint64_t data_size, dc_tensor *t,
                             uint64_t *b, uint64_t *e, dc_err *err)
{
    const char *name = it->string;
    if (!cJSON_IsObject(it))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", fname, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(dt))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", fname, name);
    t->dtype = dc_dtype_from_name(dt->valuestring);
    if (t->dtype == DC_DT_INVALID)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': unknown dtype \"%s\"", fname, name, dt->valuestring);
    if (!cJSON_IsArray(sh))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", fname, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > DC_MAX_DIMS)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': %d dimensions, more than the %d supported",
                          fname, name, nd, DC_MAX_DIMS);
    t->ndim = nd;
    uint64_t nelem = 1;
    int k = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        uint64_t v;
        if (!json_u64(d, &v) || v > (uint64_t)INT64_MAX)
            return dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                              fname, name, k);
        t->shape[k++] = (int64_t)v;
        if (!dc_mul_u64(nelem, v, &nelem))
            return dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': element count overflows 64 bits at shape[%d] = %llu",
                              fname, name, k - 1, (unsigned long long)v);
    }
    uint64_t nbytes;
    if (!dc_mul_u64(nelem, (uint64_t)dc_dtype_size(t->dtype), &nbytes))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': byte size overflows (%llu elements of %s)",
                          fname, name, (unsigned long long)nelem, dc_dtype_name(t->dtype));
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be [begin, end]", fname, name);
    if (!json_u64(cJSON_GetArrayItem(of, 0), b) || !json_u64(cJSON_GetArrayItem(of, 1), e))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': data_offsets are not non-negative integers", fname, name);
    if (*b > *e)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                          fname, name, (unsigned long long)*b, (unsigned long long)*e);
    if (*e > data_size)
        return dc_err_set(err, DC_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%llu, %llu] run past the data section (%llu bytes)",
                          fname, name, (unsigned long long)*b, (unsigned long long)*e, (unsigned long long)data_size);
    if (*e - *b != nbytes) {
        char sb[128];
        return dc_err_set(err, DC_ERR_FORMAT,
                          "%s: tensor '%s': shape %s x %s needs %llu bytes but data_offsets [%llu, %llu] span %llu",
                          fname, name, dc_shape_str(t->ndim, t->shape, sb, sizeof sb), dc_dtype_name(t->dtype),
                          (unsigned long long)nbytes, (unsigned long long)*b, (unsigned long long)*e,
                          (unsigned long long)(*e - *b));
    }
    t->nbytes = nbytes;
    return DC_OK;
}

dc_status dc_st_parse(const uint8_t *buf, uint64_t size, const char *name, int file_index,
                      dc_st_file *out, dc_err *err)
{
    memset(out, 0, sizeof *out);
    if (size < 8)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: file is %llu bytes, too short for the 8-byte header length",
                          name, (unsigned long long)size);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | buf[i];
    if (hl > size - 8)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%llu bytes)",
                          name, (unsigned long long)hl, (unsigned long long)size);
    if (hl > DC_ST_MAX_HEADER)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: header length %llu exceeds the %u-byte limit",
                          name, (unsigned long long)hl, DC_ST_MAX_HEADER);
    if (hl < 2 || buf[8] != '{')
        return dc_err_set(err, DC_ERR_FORMAT, "%s: header (%llu bytes) does not start with '{'", name,
                          (unsigned long long)hl);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)buf + 8, (size_t)hl, &end, false);
    if (!root || !cJSON_IsObject(root)) {
        long at = end ? (long)(end - (const char *)buf - 8) : -1;
        cJSON_Delete(root);
        return dc_err_set(err, DC_ERR_FORMAT, "%s: header is not valid JSON (near byte %ld of %llu)", name, at,
                          (unsigned long long)hl);
    }
    for (const char *p = end; p < (const char *)buf + 8 + hl; p++) {
        if (*p != ' ' && *p != '\n' && *p != '\t' && *p != '\r' && *p != 0) {
            cJSON_Delete(root);
            return dc_err_set(err, DC_ERR_FORMAT, "%s: unexpected bytes after the header JSON at byte %ld",
                              name, (long)(p - (const char *)buf - 8));
        }
    }
    dc_status st = DC_OK;
    out->data_start = 8 + hl;
    uint64_t data_size = size - out->data_start;
    int n = cJSON_GetArraySize(root);
    out->tensors = calloc((size_t)n + 1, sizeof *out->tensors);
    span *spans = calloc((size_t)n + 1, sizeof *spans);
    dc_strmap seen = {0};
    if (!out->tensors || !spans) {
        st = dc_err_set(err, DC_ERR_NOMEM, "%s: out of memory for %d tensors", name, n);
        goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (!it->string) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: header entry without a name", name);
            goto done;
        }
        int r = dc_strmap_put(&seen, it->string, 0);
        if (r < 0) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (r == 0) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: duplicate header key '%s'", name, it->string);
            goto done;
        }
        if (!strcmp(it->string, "__metadata__")) {
            if (!cJSON_IsObject(it)) {
                st = dc_err_set(err, DC_ERR_FORMAT, "%s: __metadata__ is not an object", name);
                goto done;
            }
            int nm = cJSON_GetArraySize(it);
            out->meta = calloc((size_t)nm + 1, sizeof *out->meta);
            if (!out->meta) {
                st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                goto done;
            }
            const cJSON *m;
            cJSON_ArrayForEach(m, it) {
                if (!cJSON_IsString(m)) {
                    st = dc_err_set(err, DC_ERR_FORMAT, "%s: __metadata__ value for '%s' is not a string", name,
                                    m->string ? m->string : "?");
                    goto done;
                }
                dc_kv *kv = &out->meta[out->n_meta++];
                kv->key = dc_strdup(m->string);
                kv->value = dc_strdup(m->valuestring);
                if (!kv->key || !kv->value) {
                    st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                    goto done;
                }
            }
            continue;
        }
        dc_tensor *t = &out->tensors[out->n_tensors];
        uint64_t b = 0, e = 0;
        if ((st = parse_entry(it, name, data_size, t, &b, &e, err)) != DC_OK)
            goto done;
        t->name = dc_strdup(it->string);
        if (!t->name) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        t->offset = out->data_start + b;
        t->data = buf + t->offset;
        t->file = file_index;
        spans[out->n_tensors] = (span){b, e, out->n_tensors};
        out->n_tensors++;
    }
    qsort(spans, out->n_tensors, sizeof *spans, span_cmp);
    uint64_t pos = 0;
    for (size_t i = 0; i < out->n_tensors; i++) {
        const dc_tensor *t = &out->tensors[spans[i].i];
        if (spans[i].b < pos) {
            const dc_tensor *p = &out->tensors[spans[i - 1].i];
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", name,
                            p->name, (unsigned long long)spans[i - 1].b, (unsigned long long)spans[i - 1].e,
                            t->name, (unsigned long long)spans[i].b, (unsigned long long)spans[i].e);
            goto done;
        }
        if (spans[i].b > pos) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: %llu unused bytes in the data section before tensor '%s' at offset %llu",
                            name, (unsigned long long)(spans[i].b - pos), t->name, (unsigned long long)spans[i].b);
            goto done;
        }
        pos = spans[i].e;
    }
    if (pos != data_size) {
        st = dc_err_set(err, DC_ERR_FORMAT, "%s: the tensors cover %llu bytes but the data section holds %llu",
                        name, (unsigned long long)pos, (unsigned long long)data_size);
        goto done;
    }
done:
    dc_strmap_free(&seen);
    free(spans);
    cJSON_Delete(root);
    if (st != DC_OK)
        dc_st_close(out);
    return st;
}

dc_status dc_st_open(const char *path, int file_index, dc_st_file *out, dc_err *err)
{
    dc_map m;
    dc_status s = dc_map_open(path, &m, err);
    if (s)
        return s;
    s = dc_st_parse(m.data, m.size, path, file_index, out, err);
    if (s) {
        dc_map_close(&m);
        return s;
    }
    out->map = m;
    out->path = dc_strdup(path);
    if (!out->path) {
        dc_st_close(out);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    return DC_OK;
}

/* ---- writer ------------------------------------------------------------------------------ */

struct dc_stw {
    dc_stw_tensor *t;
    size_t n, cap;
    dc_kv *meta;
    size_t n_meta, cap_meta;
    int n_shards, total_digits;
    char **shard_names;
    dc_outfile *files;
    char *dir;
    bool planned, opened;
};

dc_stw *dc_stw_new(void) { return calloc(1, sizeof(dc_stw)); }
void dc_stw_set_total_digits(dc_stw *w, int digits) { w->total_digits = digits; }

void dc_stw_abort(dc_stw *w)
{
    if (w->files)
        for (int i = 0; i < w->n_shards; i++)
            if (w->files[i].fd >= 0)
                dc_outfile_abort(&w->files[i]);
    free(w->files);
    w->files = NULL;
    w->opened = false;
}

void dc_stw_free(dc_stw *w)
{
    if (!w)
        return;
    dc_stw_abort(w);
    for (size_t i = 0; i < w->n; i++)
        free(w->t[i].name);
    free(w->t);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->meta);
    for (int i = 0; i < w->n_shards; i++)
        free(w->shard_names[i]);
    free(w->shard_names);
    free(w->dir);
    free(w);
}

dc_status dc_stw_add(dc_stw *w, const char *name, dc_dtype dt, int ndim, const int64_t *shape,
                     size_t *idx, dc_err *err)
{
    if (ndim < 0 || ndim > DC_MAX_DIMS)
        return dc_err_set(err, DC_ERR_INTERNAL, "tensor %s: %d dims", name, ndim);
    if (!dc_grow((void **)&w->t, &w->cap, w->n + 1, sizeof *w->t))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    dc_stw_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = dc_strdup(name);
    if (!t->name)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    t->dtype = dt;
    t->ndim = ndim;
    uint64_t n = (uint64_t)dc_dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        if (shape[i] < 0 || !dc_mul_u64(n, (uint64_t)shape[i], &n)) {
            free(t->name);
            return dc_err_set(err, DC_ERR_INPUT, "tensor %s: invalid or overflowing shape", name);
        }
    }
    t->nbytes = n;
    if (idx)
        *idx = w->n;
    w->n++;
    return DC_OK;
}

dc_status dc_stw_meta(dc_stw *w, const char *key, const char *value, dc_err *err)
{
    if (!dc_grow((void **)&w->meta, &w->cap_meta, w->n_meta + 1, sizeof *w->meta))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    w->meta[w->n_meta].key = dc_strdup(key);
    w->meta[w->n_meta].value = dc_strdup(value);
    if (!w->meta[w->n_meta].key || !w->meta[w->n_meta].value)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    w->n_meta++;
    return DC_OK;
}

size_t dc_stw_count(const dc_stw *w) { return w->n; }
const dc_stw_tensor *dc_stw_get(const dc_stw *w, size_t idx) { return &w->t[idx]; }
int dc_stw_n_shards(const dc_stw *w) { return w->n_shards; }
const char *dc_stw_shard_name(const dc_stw *w, int shard) { return w->shard_names[shard]; }

uint64_t dc_stw_total_bytes(const dc_stw *w)
{
    uint64_t s = 0;
    for (size_t i = 0; i < w->n; i++)
        s += w->t[i].nbytes;
    return s;
}

/* Builds the JSON header of one shard; offsets relative to the data section. */
static char *shard_header(const dc_stw *w, int shard, uint64_t *hlen)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    if (w->n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (size_t i = 0; m && i < w->n_meta; i++)
            cJSON_AddStringToObject(m, w->meta[i].key, w->meta[i].value);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const dc_stw_tensor *t = &w->t[i];
        if (t->shard != shard)
            continue;
        cJSON *o = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(o, "dtype", dc_dtype_name(t->dtype));
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int k = 0; k < t->ndim; k++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[k]));
        cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + t->nbytes)));
        off += t->nbytes;
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        return NULL;
    size_t n = strlen(s), padded = (n + 7) & ~(size_t)7;
    char *p = realloc(s, padded + 1);
    if (!p) {
        free(s);
        return NULL;
    }
    memset(p + n, ' ', padded - n);
    p[padded] = 0;
    *hlen = padded;
    return p;
}

dc_status dc_stw_plan(dc_stw *w, uint64_t max_shard_size, dc_err *err)
{
    int shard = 0;
    uint64_t cur = 0;
    size_t in_cur = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (max_shard_size && in_cur > 0 && cur + w->t[i].nbytes > max_shard_size) {
            shard++;
            cur = 0;
            in_cur = 0;
        }
        w->t[i].shard = shard;
        cur += w->t[i].nbytes;
        in_cur++;
    }
    w->n_shards = w->n ? shard + 1 : 1;
    w->shard_names = calloc((size_t)w->n_shards, sizeof *w->shard_names);
    if (!w->shard_names)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    for (int s = 0; s < w->n_shards; s++) {
        char buf[64];
        if (w->n_shards == 1)
            snprintf(buf, sizeof buf, "model.safetensors");
        else
            snprintf(buf, sizeof buf, "model-%05d-of-%0*d.safetensors", s + 1,
                     w->total_digits > 0 && w->total_digits < 10 ? w->total_digits : 5, w->n_shards);
        w->shard_names[s] = dc_strdup(buf);
        if (!w->shard_names[s])
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    /* absolute offsets need the header length of each shard */
    for (int s = 0; s < w->n_shards; s++) {
        uint64_t hl;
        char *h = shard_header(w, s, &hl);
        if (!h)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory building a header");
        free(h);
        uint64_t off = 8 + hl;
        for (size_t i = 0; i < w->n; i++)
            if (w->t[i].shard == s) {
                w->t[i].offset = off;
                off += w->t[i].nbytes;
            }
    }
    w->planned = true;
    return DC_OK;
}

dc_status dc_stw_open(dc_stw *w, const char *dir, dc_err *err)
{
    dc_status st;
    if (!w->planned && (st = dc_stw_plan(w, 0, err)) != DC_OK)
        return st;
    w->dir = dc_strdup(dir);
    w->files = calloc((size_t)w->n_shards, sizeof *w->files);
    if (!w->dir || !w->files)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    for (int s = 0; s < w->n_shards; s++)
        w->files[s].fd = -1;
    w->opened = true;
    for (int s = 0; s < w->n_shards; s++) {
        char *p = dc_path_join(dir, w->shard_names[s]);
        if (!p)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        st = dc_outfile_open(&w->files[s], p, true, err);
        free(p);
        if (st)
            goto fail;
        uint64_t hl;
        char *h = shard_header(w, s, &hl);
        if (!h) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        uint8_t len8[8];
        for (int i = 0; i < 8; i++)
            len8[i] = (uint8_t)(hl >> (8 * i));
        uint64_t end = 8 + hl;
        for (size_t i = 0; i < w->n; i++)
            if (w->t[i].shard == s)
                end = w->t[i].offset + w->t[i].nbytes;
        st = dc_outfile_pwrite(&w->files[s], len8, 8, 0, err);
        if (!st)
            st = dc_outfile_pwrite(&w->files[s], h, (size_t)hl, 8, err);
        if (!st)
            st = dc_outfile_truncate(&w->files[s], end, err);
        free(h);
        if (st)
            goto fail;
    }
    return DC_OK;
fail:
    dc_stw_abort(w);
    return st;
}

dc_status dc_stw_write(dc_stw *w, size_t idx, uint64_t off, const void *buf, size_t n, dc_err *err)
{
    const dc_stw_tensor *t = &w->t[idx];
    if (off > t->nbytes || n > t->nbytes - off)
        return dc_err_set(err, DC_ERR_INTERNAL, "tensor %s: write of %zu bytes at %llu past its %llu bytes",
                          t->name, n, (unsigned long long)off, (unsigned long long)t->nbytes);
    return dc_outfile_pwrite(&w->files[t->shard], buf, n, t->offset + off, err);
}

static _Thread_local const dc_stw_tensor *sort_base;
static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(sort_base[*(const size_t *)a].name, sort_base[*(const size_t *)b].name);
}

dc_status dc_stw_finish(dc_stw *w, dc_err *err)
{
    dc_status st = DC_OK;
    if (w->n_shards > 1) {
        cJSON *root = cJSON_CreateObject();
        cJSON *md = cJSON_AddObjectToObject(root, "metadata");
        cJSON_AddNumberToObject(md, "total_size", (double)dc_stw_total_bytes(w));
        cJSON *wm = cJSON_AddObjectToObject(root, "weight_map");
        /* sorted by name, like transformers writes it */
        size_t *ord = malloc(w->n * sizeof *ord);
        if (!root || !md || !wm || !ord) {
            cJSON_Delete(root);
            free(ord);
            dc_stw_abort(w);
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < w->n; i++)
            ord[i] = i;
        sort_base = w->t;
        qsort(ord, w->n, sizeof *ord, cmp_by_name);
        for (size_t i = 0; i < w->n; i++)
            cJSON_AddStringToObject(wm, w->t[ord[i]].name, w->shard_names[w->t[ord[i]].shard]);
        free(ord);
        char *s = cJSON_Print(root);
        cJSON_Delete(root);
        if (!s) {
            dc_stw_abort(w);
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        }
        char *p = dc_path_join(w->dir, "model.safetensors.index.json");
        size_t sl = strlen(s);
        s[sl] = '\n'; /* replace NUL: cJSON_Print leaves no trailing newline */
        st = p ? dc_write_file_atomic(p, s, sl + 1, err) : dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        free(p);
        free(s);
        if (st) {
            dc_stw_abort(w);
            return st;
        }
    }
    for (int s = 0; s < w->n_shards; s++) {
        if (w->files[s].fd < 0)
            continue;
        dc_status s2 = dc_outfile_commit(&w->files[s], err);
        w->files[s].fd = -1;
        if (s2 && !st)
            st = s2;
    }
    free(w->files);
    w->files = NULL;
    w->opened = false;
    return st;
}
