#include "dc_ckpt.h"
#include "dc_gguf.h"
#include "dc_int4.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static int cmp_tensor(const void *a, const void *b)
{
    return strcmp((*(const dc_tensor *const *)a)->name, (*(const dc_tensor *const *)b)->name);
}

void dc_ckpt_close(dc_ckpt *ck)
{
    if (!ck)
        return;
    for (int i = 0; i < ck->n_files; i++)
        dc_st_close(&ck->files[i]);
    free(ck->files);
    free(ck->tensors);
    dc_strmap_free(&ck->by_name);
    for (int i = 0; i < ck->n_unindexed; i++)
        free(ck->unindexed[i]);
    free(ck->unindexed);
    if (ck->gguf)
        dc_gguf_ckpt_free(ck);
    if (ck->int4)
        dc_int4_ckpt_free(ck);
    free(ck->path);
    free(ck->dir);
    free(ck);
}

static int cmp_name_key(const void *key, const void *elem)
{
    return strcmp((const char *)key, (*(const dc_tensor *const *)elem)->name);
}

const dc_tensor *dc_ckpt_find(const dc_ckpt *ck, const char *name)
{
    int64_t i;
    if (dc_strmap_get(&ck->by_name, name, &i))
        return ck->tensors[i];
    if (ck->file_tensors) {
        const dc_tensor *const *p = bsearch(name, ck->file_tensors, ck->n_file_tensors, sizeof *ck->file_tensors, cmp_name_key);
        return p ? *p : NULL;
    }
    return NULL;
}

const char *dc_ckpt_file_name(const dc_ckpt *ck, const dc_tensor *t)
{
    return dc_path_base(ck->files[t->file].path);
}

dc_status dc_ckpt_require_config(const dc_ckpt *ck, dc_err *err)
{
    if (!ck->has_config)
        return dc_err_set(err, DC_ERR_CONFIG, "%s: no config.json next to the weights", ck->dir);
    return DC_OK;
}

/* Lists *.safetensors in dir, sorted. */
static dc_status list_shards(const char *dir, char ***names, int *n, dc_err *err)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return dc_err_set(err, DC_ERR_IO, "%s: cannot open directory", dir);
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!dc_str_ends_with(e->d_name, ".safetensors") || e->d_name[0] == '.')
            continue;
        if (!dc_grow((void **)names, &cap, (size_t)*n + 1, sizeof **names) || !((*names)[*n] = dc_strdup(e->d_name))) {
            closedir(d);
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        }
        (*n)++;
    }
    closedir(d);
    if (*n)
        qsort(*names, (size_t)*n, sizeof **names, cmp_str);
    return DC_OK;
}

static void free_names(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Index: validates model.safetensors.index.json against the shards' contents. */
static dc_status load_index(dc_ckpt *ck, const char *ipath, dc_err *err)
{
    char *buf;
    size_t len;
    dc_status st = dc_read_file(ipath, &buf, &len, 1u << 30, err);
    if (st)
        return st;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    free(buf);
    char **shards = NULL;
    int n_shards = 0;
    size_t cap = 0;
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!root || !cJSON_IsObject(root)) {
        st = dc_err_set(err, DC_ERR_FORMAT, "%s: not valid JSON", ipath);
        goto done;
    }
    if (!cJSON_IsObject(wm)) {
        st = dc_err_set(err, DC_ERR_FORMAT, "%s: no \"weight_map\" object", ipath);
        goto done;
    }
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    const cJSON *ts = md ? cJSON_GetObjectItemCaseSensitive(md, "total_size") : NULL;
    if (cJSON_IsNumber(ts) && ts->valuedouble >= 0)
        ck->index_total_size = (uint64_t)ts->valuedouble;
    /* distinct shard names, in sorted order */
    const cJSON *it;
    dc_strmap seen = {0};
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it)) {
            dc_strmap_free(&seen);
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: weight_map entry for '%s' is not a file name", ipath, it->string);
            goto done;
        }
        const char *f = it->valuestring;
        if (!f[0] || strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, "..")) {
            dc_strmap_free(&seen);
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: weight_map names '%s' for tensor '%s': not a plain file name",
                            ipath, f, it->string);
            goto done;
        }
        if (dc_strmap_put(&seen, f, 0) == 1) {
            if (!dc_grow((void **)&shards, &cap, (size_t)n_shards + 1, sizeof *shards) ||
                !(shards[n_shards] = dc_strdup(f))) {
                dc_strmap_free(&seen);
                st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                goto done;
            }
            n_shards++;
        }
    }
    dc_strmap_free(&seen);
    if (n_shards == 0) {
        st = dc_err_set(err, DC_ERR_FORMAT, "%s: weight_map is empty", ipath);
        goto done;
    }
    qsort(shards, (size_t)n_shards, sizeof *shards, cmp_str);
    ck->files = calloc((size_t)n_shards, sizeof *ck->files);
    if (!ck->files) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_shards; i++) {
        char *p = dc_path_join(ck->dir, shards[i]);
        if (!p) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (!dc_exists(p)) {
            st = dc_err_set(err, DC_ERR_MODEL, "%s: names shard %s, which does not exist", ipath, shards[i]);
            free(p);
            goto done;
        }
        st = dc_st_open(p, i, &ck->files[i], err);
        free(p);
        if (st)
            goto done;
        ck->n_files++;
    }
    /* every mapped tensor is in its shard; every shard tensor is mapped there */
    cJSON_ArrayForEach(it, wm) {
        int fi = -1;
        for (int i = 0; i < n_shards; i++)
            if (!strcmp(shards[i], it->valuestring)) {
                fi = i;
                break;
            }
        const dc_st_file *f = &ck->files[fi];
        bool found = false;
        for (size_t k = 0; k < f->n_tensors && !found; k++)
            found = !strcmp(f->tensors[k].name, it->string);
        if (!found) {
            st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor '%s' is mapped to %s, which does not contain it", ipath,
                            it->string, it->valuestring);
            goto done;
        }
    }
    for (int i = 0; i < n_shards; i++) {
        const dc_st_file *f = &ck->files[i];
        for (size_t k = 0; k < f->n_tensors; k++) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(wm, f->tensors[k].name);
            if (!m) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: shard %s holds tensor '%s', which the index does not list",
                                ipath, shards[i], f->tensors[k].name);
                goto done;
            }
            if (strcmp(m->valuestring, shards[i])) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor '%s' is in shard %s but the index maps it to %s",
                                ipath, f->tensors[k].name, shards[i], m->valuestring);
                goto done;
            }
        }
    }
    /* shards present in the directory but not in the index */
    char **all;
    int n_all;
    if ((st = list_shards(ck->dir, &all, &n_all, err)) != DC_OK)
        goto done;
    for (int i = 0; i < n_all; i++) {
        bool named = bsearch(&all[i], shards, (size_t)n_shards, sizeof *shards, cmp_str) != NULL;
        if (!named) {
            char **nu = realloc(ck->unindexed, (size_t)(ck->n_unindexed + 1) * sizeof *nu);
            if (!nu) {
                free_names(all, n_all);
                st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                goto done;
            }
            ck->unindexed = nu;
            ck->unindexed[ck->n_unindexed++] = all[i];
            all[i] = NULL;
        }
    }
    free_names(all, n_all);
    ck->has_index = true;
done:
    free_names(shards, n_shards);
    cJSON_Delete(root);
    return st;
}

static dc_status build_lookup(dc_ckpt *ck, dc_err *err)
{
    if (!ck->gguf) { /* a GGUF's Hugging Face view is filled by dc_gguf_ckpt_open */
        size_t n = 0;
        for (int i = 0; i < ck->n_files; i++)
            n += ck->files[i].n_tensors;
        ck->tensors = malloc((n ? n : 1) * sizeof *ck->tensors);
        if (!ck->tensors)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        for (int i = 0; i < ck->n_files; i++)
            for (size_t k = 0; k < ck->files[i].n_tensors; k++)
                ck->tensors[ck->n_tensors++] = &ck->files[i].tensors[k];
    }
    qsort(ck->tensors, ck->n_tensors, sizeof *ck->tensors, cmp_tensor);
    for (size_t i = 0; i < ck->n_tensors; i++) {
        if (i > 0 && !strcmp(ck->tensors[i]->name, ck->tensors[i - 1]->name))
            return dc_err_set(err, DC_ERR_MODEL, "%s: tensor '%s' is in two shards: %s and %s", ck->path,
                              ck->tensors[i]->name, dc_ckpt_file_name(ck, ck->tensors[i - 1]),
                              dc_ckpt_file_name(ck, ck->tensors[i]));
        if (dc_strmap_put(&ck->by_name, ck->tensors[i]->name, (int64_t)i) < 0)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    return DC_OK;
}

dc_status dc_ckpt_open(const char *path, dc_ckpt **out, dc_err *err)
{
    *out = NULL;
    dc_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    dc_status st = DC_OK;
    ck->path = dc_strdup(path);
    if (!ck->path) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (dc_is_dir(path)) {
        ck->dir = dc_strdup(path);
        char *ip = dc_path_join(path, "model.safetensors.index.json");
        if (!ck->dir || !ip) {
            free(ip);
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if (dc_exists(ip)) {
            st = load_index(ck, ip, err);
            free(ip);
            if (st)
                goto fail;
        } else {
            free(ip);
            char **names;
            int n;
            if ((st = list_shards(path, &names, &n, err)) != DC_OK)
                goto fail;
            if (n == 0) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: no .safetensors files and no model.safetensors.index.json", path);
                goto fail;
            }
            ck->files = calloc((size_t)n, sizeof *ck->files);
            if (!ck->files) {
                free_names(names, n);
                st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                goto fail;
            }
            for (int i = 0; i < n && !st; i++) {
                char *p = dc_path_join(path, names[i]);
                st = p ? dc_st_open(p, i, &ck->files[i], err) : dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                free(p);
                if (!st)
                    ck->n_files++;
            }
            free_names(names, n);
            if (st)
                goto fail;
        }
    } else if (dc_str_ends_with(path, ".gguf")) {
        const char *slash = strrchr(path, '/');
        ck->dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : dc_strdup(".");
        if (!ck->dir) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if ((st = dc_gguf_ckpt_open(ck, path, err)) != DC_OK)
            goto fail;
    } else if (dc_str_ends_with(path, ".safetensors")) {
        const char *slash = strrchr(path, '/');
        ck->dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : dc_strdup(".");
        ck->files = calloc(1, sizeof *ck->files);
        if (!ck->dir || !ck->files) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if ((st = dc_st_open(path, 0, &ck->files[0], err)) != DC_OK)
            goto fail;
        ck->n_files = 1;
    } else if (!dc_exists(path)) {
        st = dc_err_set(err, DC_ERR_IO, "%s: no such file or directory", path);
        goto fail;
    } else {
        st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: not a checkpoint directory or .safetensors file", path);
        goto fail;
    }
    if ((st = build_lookup(ck, err)) != DC_OK)
        goto fail;
    if (ck->gguf) { /* the config comes from the GGUF's metadata, not a config.json beside it */
        *out = ck;
        return DC_OK;
    }
    /* 4-bit layouts: the Hugging Face view and the config (without quantization_config) */
    if ((st = dc_int4_ckpt_attach(ck, err)) != DC_OK)
        goto fail;
    if (ck->int4) {
        *out = ck;
        return DC_OK;
    }
    char *cp = dc_path_join(ck->dir, "config.json");
    if (!cp) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    bool have = dc_exists(cp);
    free(cp);
    if (have) {
        if ((st = dc_config_load(ck->dir, &ck->cfg, err)) != DC_OK)
            goto fail;
        ck->has_config = true;
    }
    *out = ck;
    return DC_OK;
fail:
    dc_ckpt_close(ck);
    return st;
}

dc_status dc_ckpt_weight(const dc_ckpt *ck, const char *name, dc_weight *w, dc_err *err)
{
    const dc_tensor *t = dc_ckpt_find(ck, name);
    if (!t)
        return dc_err_set(err, DC_ERR_MODEL, "%s: missing tensor %s", ck->path, name);
    if (ck->gguf)
        return dc_gguf_ckpt_weight(ck, t, w, err);
    if (ck->int4)
        return dc_int4_ckpt_weight(ck, t, w, err);
    char sname[600];
    snprintf(sname, sizeof sname, "%s_scale_inv", name);
    const dc_tensor *s = dc_ckpt_find(ck, sname);
    int br = ck->has_config && ck->cfg.block_rows ? ck->cfg.block_rows : 128;
    int bc = ck->has_config && ck->cfg.block_cols ? ck->cfg.block_cols : 128;
    return dc_weight_init(w, t, s, br, bc, dc_ckpt_file_name(ck, t), err);
}

/* ---- consistency check against the config --------------------------------------------------- */

static bool add_item(dc_check_item **v, size_t *n, const char *name, const char *detail)
{
    dc_check_item *nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv)
        return false;
    *v = nv;
    nv[*n].name = name;
    snprintf(nv[*n].detail, sizeof nv[*n].detail, "%.159s", detail ? detail : "");
    (*n)++;
    return true;
}

void dc_check_free(dc_check *chk)
{
    free(chk->missing);
    free(chk->unexpected);
    free(chk->mismatched);
    dc_expect_free(chk->expect, chk->n_expect);
    memset(chk, 0, sizeof *chk);
}

dc_status dc_ckpt_check(const dc_ckpt *ck, dc_check *chk, dc_err *err)
{
    memset(chk, 0, sizeof *chk);
    dc_status st = dc_ckpt_require_config(ck, err);
    if (st)
        return st;
    const dc_config *c = &ck->cfg;
    /* routed experts fused (deepcast reshard --merge-experts) or one tensor per expert */
    bool fused = false;
    for (size_t i = 0; i < ck->n_tensors && !fused; i++) {
        dc_name_info ni;
        fused = dc_name_parse(c, ck->tensors[i]->name, &ni) &&
                (ni.role == DC_ROLE_EXPS_GATE_UP || ni.role == DC_ROLE_EXPS_DOWN);
    }
    if ((st = dc_expect_build_fused(c, false, fused, &chk->expect, &chk->n_expect, err)) != DC_OK)
        return st;
    bool ok = true;
    dc_strmap exp = {0};
    for (size_t i = 0; i < chk->n_expect && ok; i++)
        ok = dc_strmap_put(&exp, chk->expect[i].name, (int64_t)i) >= 0;
    /* MTP layers present: any tensor of layer >= n_layers */
    bool *mtp_seen = calloc((size_t)c->n_mtp_layers + 1, 1);
    ok = ok && mtp_seen;
    for (size_t i = 0; i < chk->n_expect && ok; i++) {
        const dc_expect *e = &chk->expect[i];
        const dc_tensor *t = dc_ckpt_find(ck, e->name);
        if (!t) {
            ok = add_item(&chk->missing, &chk->n_missing, e->name, NULL);
            continue;
        }
        if (e->info.is_mtp)
            mtp_seen[e->info.layer - c->n_layers] = true;
        char want[64], got[64], d[160];
        bool shape_ok = t->ndim == e->ndim;
        for (int k = 0; shape_ok && k < e->ndim; k++)
            shape_ok = t->shape[k] == e->shape[k];
        if (!shape_ok) {
            snprintf(d, sizeof d, "shape %s, expected %s", dc_shape_str(t->ndim, t->shape, got, sizeof got),
                     dc_shape_str(e->ndim, e->shape, want, sizeof want));
            ok = add_item(&chk->mismatched, &chk->n_mismatched, e->name, d);
        }
        if (t->dtype == DC_DT_F8_E4M3 || t->dtype == DC_DT_F8_E5M2) {
            chk->n_fp8++;
            if (!e->fp8) {
                snprintf(d, sizeof d, "stored as %s, but the release keeps this tensor in high precision",
                         dc_dtype_name(t->dtype));
                ok = ok && add_item(&chk->mismatched, &chk->n_mismatched, e->name, d);
            }
            char sn[600];
            snprintf(sn, sizeof sn, "%s_scale_inv", e->name);
            const dc_tensor *s = dc_ckpt_find(ck, sn);
            if (!s)
                ok = ok && add_item(&chk->missing, &chk->n_missing, e->name, "its weight_scale_inv (FP8 weight without a scale)");
            else {
                dc_weight w;
                dc_err e2;
                chk->n_scales++;
                if (shape_ok && e->ndim == 3) {
                    /* fused experts: the scales of the E experts stacked (gate's block rows, then up's) */
                    int br = c->block_rows ? c->block_rows : 128, bc = c->block_cols ? c->block_cols : 128;
                    int64_t rows = e->info.role == DC_ROLE_EXPS_GATE_UP ? e->shape[1] / 2 : e->shape[1];
                    int64_t ws[3] = {e->shape[0], (rows + br - 1) / br, (e->shape[2] + bc - 1) / bc};
                    if (e->info.role == DC_ROLE_EXPS_GATE_UP)
                        ws[1] *= 2;
                    if (s->ndim != 3 || s->shape[0] != ws[0] || s->shape[1] != ws[1] || s->shape[2] != ws[2]) {
                        snprintf(d, sizeof d, "shape %s, expected %s", dc_shape_str(s->ndim, s->shape, got, sizeof got),
                                 dc_shape_str(3, ws, want, sizeof want));
                        ok = ok && add_item(&chk->mismatched, &chk->n_mismatched, s->name, d);
                    }
                } else if (shape_ok && dc_weight_init(&w, t, s, c->block_rows ? c->block_rows : 128,
                                                      c->block_cols ? c->block_cols : 128, "", &e2) != DC_OK)
                    ok = ok && add_item(&chk->mismatched, &chk->n_mismatched, s->name, e2.msg + 2);
            }
        }
    }
    for (size_t i = 0; i < ck->n_tensors && ok; i++) {
        const dc_tensor *t = ck->tensors[i];
        if (dc_strmap_get(&exp, t->name, NULL))
            continue;
        dc_name_info ni;
        if (dc_name_parse(c, t->name, &ni) && ni.is_scale) {
            char wn[600];
            snprintf(wn, sizeof wn, "%.*s", (int)(strlen(t->name) - strlen("_scale_inv")), t->name);
            const dc_tensor *wt = dc_ckpt_find(ck, wn);
            if (wt && (wt->dtype == DC_DT_F8_E4M3 || wt->dtype == DC_DT_F8_E5M2))
                continue; /* counted above */
            ok = add_item(&chk->unexpected, &chk->n_unexpected, t->name,
                          wt ? "a block scale for a tensor that is not FP8" : "a block scale without its weight");
            continue;
        }
        ok = add_item(&chk->unexpected, &chk->n_unexpected, t->name, "not part of this architecture's tensor set");
    }
    for (int k = 0; ok && k < c->n_mtp_layers; k++)
        chk->n_mtp_layers_present += mtp_seen[k];
    free(mtp_seen);
    dc_strmap_free(&exp);
    if (!ok) {
        dc_check_free(chk);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    return DC_OK;
}
