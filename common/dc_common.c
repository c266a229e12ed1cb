#include "dc_common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int dc_log_level = 1;

const char *dc_status_name(dc_status s)
{
    switch (s) {
    case DC_OK: return "ok";
    case DC_ERR_FAIL: return "check failed";
    case DC_ERR_USAGE: return "usage error";
    case DC_ERR_IO: return "I/O error";
    case DC_ERR_FORMAT: return "malformed file";
    case DC_ERR_CONFIG: return "invalid config";
    case DC_ERR_UNSUPPORTED: return "unsupported";
    case DC_ERR_MODEL: return "inconsistent checkpoint";
    case DC_ERR_INPUT: return "bad input data";
    case DC_ERR_NOMEM: return "out of memory";
    case DC_ERR_EXISTS: return "output exists";
    case DC_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}

dc_status dc_err_set(dc_err *err, dc_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

dc_status dc_err_prefix(dc_err *err, const char *fmt, ...)
{
    if (!err)
        return DC_ERR_FAIL;
    char pre[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%.500s: %.500s", pre, old);
    return err->code;
}

void dc_err_clear(dc_err *err)
{
    if (err) {
        err->code = DC_OK;
        err->msg[0] = 0;
    }
}

void dc_log(int level, const char *fmt, ...)
{
    if (level > dc_log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

void *dc_malloc(size_t n, dc_err *err)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        dc_err_set(err, DC_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *dc_calloc(size_t n, size_t sz, dc_err *err)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        dc_err_set(err, DC_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", n, sz);
    return p;
}

char *dc_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

bool dc_grow(void **ptr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t nc = *cap ? *cap : 8;
    while (nc < need)
        nc *= 2;
    void *p = realloc(*ptr, nc * elem);
    if (!p)
        return false;
    *ptr = p;
    *cap = nc;
    return true;
}

char *dc_path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    size_t o = la;
    if (la && a[la - 1] != '/')
        p[o++] = '/';
    memcpy(p + o, b, lb + 1);
    return p;
}

const char *dc_path_base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

bool dc_str_ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lf = strlen(suffix);
    return ls >= lf && memcmp(s + ls - lf, suffix, lf) == 0;
}

bool dc_is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

bool dc_exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

bool dc_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0) || !isfinite(v))
        return false;
    while (*end == ' ')
        end++;
    double mul = 1;
    char u[8] = {0};
    for (int i = 0; i < 7 && end[i]; i++)
        u[i] = (char)toupper((unsigned char)end[i]);
    if (!u[0] || !strcmp(u, "B")) mul = 1;
    else if (!strcmp(u, "K") || !strcmp(u, "KB")) mul = 1e3;
    else if (!strcmp(u, "M") || !strcmp(u, "MB")) mul = 1e6;
    else if (!strcmp(u, "G") || !strcmp(u, "GB")) mul = 1e9;
    else if (!strcmp(u, "T") || !strcmp(u, "TB")) mul = 1e12;
    else if (!strcmp(u, "KIB")) mul = 1024.0;
    else if (!strcmp(u, "MIB")) mul = 1024.0 * 1024;
    else if (!strcmp(u, "GIB")) mul = 1024.0 * 1024 * 1024;
    else if (!strcmp(u, "TIB")) mul = 1024.0 * 1024 * 1024 * 1024;
    else return false;
    double r = v * mul;
    if (r >= 1.8e19)
        return false;
    *out = (uint64_t)r;
    return true;
}

const char *dc_fmt_bytes(uint64_t n, char *buf, size_t cap)
{
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    double v = (double)n;
    int i = 0;
    while (v >= 1000 && i < 4) {
        v /= 1000;
        i++;
    }
    if (i == 0)
        snprintf(buf, cap, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, cap, "%.2f %s", v, u[i]);
    return buf;
}
