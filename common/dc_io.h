/* File I/O: read-only mmapped views of inputs, and outputs that appear only when complete.
 *
 * Outputs are written to a temporary name next to the final path (or a staging directory) at
 * planned offsets with pwrite, and renamed into place by commit. abort (or a crash) leaves no file
 * under the final name. */
#ifndef DC_IO_H
#define DC_IO_H
#include "dc_common.h"

typedef struct dc_map {
    const uint8_t *data;
    uint64_t size;
    char *path;
} dc_map;

dc_status dc_map_open(const char *path, dc_map *m, dc_err *err);
void dc_map_close(dc_map *m);
/* Drops the whole pages inside [p, p+n) of a read-only file mapping from this process (they
 * stay in the page cache), so streaming over a large input keeps the resident set small. */
void dc_map_release(const void *p, size_t n);
/* Reads a whole (small) file into a NUL-terminated malloc'd buffer. */
dc_status dc_read_file(const char *path, char **out, size_t *len, uint64_t max_len, dc_err *err);

typedef struct dc_outfile {
    int fd;
    char *path;     /* final name */
    char *tmp_path; /* temporary name */
} dc_outfile;

/* Creates path's temporary sibling. With force == false an existing path is DC_ERR_EXISTS. */
dc_status dc_outfile_open(dc_outfile *f, const char *path, bool force, dc_err *err);
dc_status dc_outfile_pwrite(dc_outfile *f, const void *buf, size_t n, uint64_t off, dc_err *err);
/* Sets the final size (sparse until written). */
dc_status dc_outfile_truncate(dc_outfile *f, uint64_t size, dc_err *err);
/* fsync-free close + rename into place. */
dc_status dc_outfile_commit(dc_outfile *f, dc_err *err);
void dc_outfile_abort(dc_outfile *f);
/* Writes a whole small file atomically. */
dc_status dc_write_file_atomic(const char *path, const void *buf, size_t n, dc_err *err);

/* A staging directory "<final>.tmp-<pid>" renamed to <final> on commit; removed on abort. */
typedef struct dc_outdir {
    char *path;
    char *tmp_path;
} dc_outdir;

dc_status dc_outdir_open(dc_outdir *d, const char *path, bool force, dc_err *err);
dc_status dc_outdir_commit(dc_outdir *d, dc_err *err);
void dc_outdir_abort(dc_outdir *d);
/* Removes a directory tree (used for staging dirs and --force). */
int dc_rm_rf(const char *path);
/* Copies a file (small metadata files: tokenizer, generation config). */
dc_status dc_copy_file(const char *src, const char *dst, dc_err *err);

#endif
