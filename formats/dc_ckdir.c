#define _GNU_SOURCE /* realpath */
#include "dc_ckdir.h"
#include "dc_io.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

dc_status dc_ckdir_copy_aux(const char *in_dir, const char *out_dir, dc_err *err)
{
    DIR *d = opendir(in_dir);
    if (!d)
        return dc_err_set(err, DC_ERR_IO, "%s: cannot list directory", in_dir);
    dc_status st = DC_OK;
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        const char *n = e->d_name;
        if (n[0] == '.' || dc_str_ends_with(n, ".safetensors") || !strcmp(n, "model.safetensors.index.json") ||
            !strcmp(n, "config.json") || strstr(n, ".tmp-"))
            continue;
        char *sp = dc_path_join(in_dir, n), *dp = dc_path_join(out_dir, n);
        struct stat sb;
        if (!sp || !dp)
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        else if (stat(sp, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size < (1 << 30))
            st = dc_copy_file(sp, dp, err);
        free(sp);
        free(dp);
    }
    closedir(d);
    return st;
}

bool dc_path_within(const char *in_dir, const char *out)
{
    char in_real[PATH_MAX], par_real[PATH_MAX];
    if (!realpath(in_dir, in_real))
        return false;
    char *o = dc_strdup(out);
    if (!o)
        return false;
    size_t l = strlen(o);
    while (l > 1 && o[l - 1] == '/')
        o[--l] = 0;
    char *sl = strrchr(o, '/');
    const char *base = sl ? sl + 1 : o;
    const char *par = ".";
    if (sl == o)
        par = "/";
    else if (sl) {
        *sl = 0;
        par = o;
    }
    bool r = false;
    if (realpath(par, par_real)) {
        char full[PATH_MAX * 2];
        snprintf(full, sizeof full, "%s/%s", strcmp(par_real, "/") ? par_real : "", base);
        size_t n = strlen(in_real);
        r = !strcmp(full, in_real) || (!strncmp(full, in_real, n) && full[n] == '/');
    }
    free(o);
    return r;
}

static int cmp_storage(const void *x, const void *y)
{
    const dc_tensor *a = *(const dc_tensor *const *)x, *b = *(const dc_tensor *const *)y;
    if (a->file != b->file)
        return a->file < b->file ? -1 : 1;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

const dc_tensor **dc_ckpt_storage_order(const dc_ckpt *ck)
{
    const dc_tensor **ord = malloc((ck->n_tensors + 1) * sizeof *ord);
    if (!ord)
        return NULL;
    memcpy(ord, ck->tensors, ck->n_tensors * sizeof *ord);
    qsort(ord, ck->n_tensors, sizeof *ord, cmp_storage);
    return ord;
}

void dc_json_set_number(cJSON *o, const char *key, double v)
{
    if (cJSON_GetObjectItemCaseSensitive(o, key))
        cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_CreateNumber(v));
    else
        cJSON_AddNumberToObject(o, key, v);
}

void dc_json_set_string(cJSON *o, const char *key, const char *v)
{
    if (cJSON_GetObjectItemCaseSensitive(o, key))
        cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_CreateString(v));
    else
        cJSON_AddStringToObject(o, key, v);
}

dc_status dc_ckdir_write_config(const char *in_dir, const char *out_dir, dc_config_edit_fn edit, void *ctx,
                                dc_err *err)
{
    char *src = dc_path_join(in_dir, "config.json"), *dst = dc_path_join(out_dir, "config.json");
    char *buf = NULL, *out = NULL;
    cJSON *root = NULL;
    dc_status st = DC_OK;
    size_t len;
    if (!src || !dst) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = dc_read_file(src, &buf, &len, 16u << 20, err)) != DC_OK)
        goto done;
    root = cJSON_ParseWithLength(buf, len);
    if (!root || !cJSON_IsObject(root)) {
        st = dc_err_set(err, DC_ERR_CONFIG, "%s: not a JSON object", src);
        goto done;
    }
    if (edit && (st = edit(root, ctx, err)) != DC_OK)
        goto done;
    out = cJSON_Print(root);
    if (!out) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t ol = strlen(out);
    out[ol] = '\n';
    st = dc_write_file_atomic(dst, out, ol + 1, err);
done:
    free(src);
    free(dst);
    free(buf);
    free(out);
    cJSON_Delete(root);
    return st;
}
