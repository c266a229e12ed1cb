#define _GNU_SOURCE
#include "dc_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

dc_status dc_map_open(const char *path, dc_map *m, dc_err *err)
{
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dc_err_set(err, DC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return dc_err_set(err, DC_ERR_IO, "%s: not a regular file", path);
    }
    m->size = (uint64_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, (size_t)m->size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return dc_err_set(err, DC_ERR_IO, "%s: cannot mmap %llu bytes: %s", path,
                              (unsigned long long)m->size, strerror(e));
        }
        m->data = p;
    }
    close(fd);
    m->path = dc_strdup(path);
    if (!m->path) {
        dc_map_close(m);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    return DC_OK;
}

void dc_map_close(dc_map *m)
{
    if (m->data && m->size)
        munmap((void *)m->data, (size_t)m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}

void dc_map_release(const void *p, size_t n)
{
    static long page;
    if (!page)
        page = sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t b = ((uintptr_t)p + n) & ~((uintptr_t)page - 1);
    if (b > a)
        madvise((void *)a, b - a, MADV_DONTNEED);
}

dc_status dc_read_file(const char *path, char **out, size_t *len, uint64_t max_len, dc_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return dc_err_set(err, DC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return dc_err_set(err, DC_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_len) {
        fclose(f);
        return dc_err_set(err, DC_ERR_FORMAT, "%s: file is %llu bytes, more than the %llu allowed",
                          path, (unsigned long long)st.st_size, (unsigned long long)max_len);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (n != (size_t)st.st_size) {
        free(buf);
        return dc_err_set(err, DC_ERR_IO, "%s: short read", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len)
        *len = n;
    return DC_OK;
}

dc_status dc_outfile_open(dc_outfile *f, const char *path, bool force, dc_err *err)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    if (!force && dc_exists(path))
        return dc_err_set(err, DC_ERR_EXISTS, "%s: already exists (use --force to overwrite)", path);
    f->path = dc_strdup(path);
    size_t n = strlen(path) + 32;
    f->tmp_path = malloc(n);
    if (!f->path || !f->tmp_path) {
        dc_outfile_abort(f);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    snprintf(f->tmp_path, n, "%s.tmp-%ld", path, (long)getpid());
    f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        dc_status s = dc_err_set(err, DC_ERR_IO, "%s: cannot create: %s", f->tmp_path, strerror(errno));
        free(f->path);
        free(f->tmp_path);
        memset(f, 0, sizeof *f);
        f->fd = -1;
        return s;
    }
    return DC_OK;
}

dc_status dc_outfile_pwrite(dc_outfile *f, const void *buf, size_t n, uint64_t off, dc_err *err)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(f->fd, p, n > (1u << 30) ? (1u << 30) : n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return dc_err_set(err, DC_ERR_IO, "%s: write of %zu bytes at offset %llu failed: %s",
                              f->path, n, (unsigned long long)off, strerror(errno));
        }
        if (w == 0)
            return dc_err_set(err, DC_ERR_IO, "%s: write returned 0 at offset %llu", f->path,
                              (unsigned long long)off);
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return DC_OK;
}

dc_status dc_outfile_truncate(dc_outfile *f, uint64_t size, dc_err *err)
{
    if (ftruncate(f->fd, (off_t)size) != 0)
        return dc_err_set(err, DC_ERR_IO, "%s: cannot size to %llu bytes: %s", f->path,
                          (unsigned long long)size, strerror(errno));
    return DC_OK;
}

dc_status dc_outfile_commit(dc_outfile *f, dc_err *err)
{
    dc_status st = DC_OK;
    if (close(f->fd) != 0)
        st = dc_err_set(err, DC_ERR_IO, "%s: close failed: %s", f->path, strerror(errno));
    f->fd = -1;
    if (st == DC_OK && rename(f->tmp_path, f->path) != 0)
        st = dc_err_set(err, DC_ERR_IO, "%s: cannot rename into place: %s", f->path, strerror(errno));
    if (st != DC_OK)
        unlink(f->tmp_path);
    free(f->path);
    free(f->tmp_path);
    f->path = f->tmp_path = NULL;
    return st;
}

void dc_outfile_abort(dc_outfile *f)
{
    if (f->fd >= 0)
        close(f->fd);
    if (f->tmp_path)
        unlink(f->tmp_path);
    free(f->path);
    free(f->tmp_path);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

dc_status dc_write_file_atomic(const char *path, const void *buf, size_t n, dc_err *err)
{
    dc_outfile f;
    dc_status s = dc_outfile_open(&f, path, true, err);
    if (s)
        return s;
    if ((s = dc_outfile_pwrite(&f, buf, n, 0, err)) != DC_OK) {
        dc_outfile_abort(&f);
        return s;
    }
    return dc_outfile_commit(&f, err);
}

int dc_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *p = dc_path_join(path, e->d_name);
        if (!p || dc_rm_rf(p) != 0)
            rc = -1;
        free(p);
    }
    closedir(d);
    if (rmdir(path) != 0)
        rc = -1;
    return rc;
}

dc_status dc_outdir_open(dc_outdir *d, const char *path, bool force, dc_err *err)
{
    memset(d, 0, sizeof *d);
    if (!force && dc_exists(path))
        return dc_err_set(err, DC_ERR_EXISTS, "%s: already exists (use --force to overwrite)", path);
    size_t n = strlen(path) + 32;
    d->path = dc_strdup(path);
    d->tmp_path = malloc(n);
    if (!d->path || !d->tmp_path) {
        dc_outdir_abort(d);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    /* strip trailing slashes for the temp name */
    char *base = dc_strdup(path);
    if (!base) {
        dc_outdir_abort(d);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    size_t bl = strlen(base);
    while (bl > 1 && base[bl - 1] == '/')
        base[--bl] = 0;
    snprintf(d->tmp_path, n, "%s.tmp-%ld", base, (long)getpid());
    free(base);
    dc_rm_rf(d->tmp_path);
    if (mkdir(d->tmp_path, 0755) != 0) {
        dc_status s = dc_err_set(err, DC_ERR_IO, "%s: cannot create directory: %s", d->tmp_path,
                                 strerror(errno));
        free(d->path);
        free(d->tmp_path);
        memset(d, 0, sizeof *d);
        return s;
    }
    return DC_OK;
}

dc_status dc_outdir_commit(dc_outdir *d, dc_err *err)
{
    dc_status st = DC_OK;
    if (dc_exists(d->path) && dc_rm_rf(d->path) != 0)
        st = dc_err_set(err, DC_ERR_IO, "%s: cannot remove the existing output: %s", d->path,
                        strerror(errno));
    if (st == DC_OK && rename(d->tmp_path, d->path) != 0)
        st = dc_err_set(err, DC_ERR_IO, "%s: cannot rename into place: %s", d->path, strerror(errno));
    if (st != DC_OK)
        dc_rm_rf(d->tmp_path);
    free(d->path);
    free(d->tmp_path);
    memset(d, 0, sizeof *d);
    return st;
}

void dc_outdir_abort(dc_outdir *d)
{
    if (d->tmp_path)
        dc_rm_rf(d->tmp_path);
    free(d->path);
    free(d->tmp_path);
    memset(d, 0, sizeof *d);
}

dc_status dc_copy_file(const char *src, const char *dst, dc_err *err)
{
    char *buf;
    size_t n;
    dc_status s = dc_read_file(src, &buf, &n, (uint64_t)1 << 32, err);
    if (s)
        return s;
    s = dc_write_file_atomic(dst, buf, n, err);
    free(buf);
    return s;
}
