/* deepcast common: status codes, caller-owned errors, overflow-checked size math, logging.
 *
 * Every fallible library function returns a dc_status and, on failure, fills a caller-owned
 * dc_err whose message names the file, the tensor and the numbers involved. The CLI maps the
 * status straight to its exit code (see docs/exit-codes.md), so the enum values are stable. */
#ifndef DC_COMMON_H
#define DC_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum dc_status {
    DC_OK = 0,
    DC_ERR_FAIL = 1,        /* generic failure (a check the tool performs did not pass) */
    DC_ERR_USAGE = 2,       /* bad command line */
    DC_ERR_IO = 3,          /* cannot open, read, write, rename; disk full */
    DC_ERR_FORMAT = 4,      /* malformed file: safetensors/GGUF/JSON structure, offsets, sizes */
    DC_ERR_CONFIG = 5,      /* config.json missing, invalid or contradictory */
    DC_ERR_UNSUPPORTED = 6, /* valid but unsupported: architecture, dtype, layout */
    DC_ERR_MODEL = 7,       /* checkpoint inconsistent: missing/unexpected/mis-shaped tensors */
    DC_ERR_INPUT = 8,       /* bad user data: token ids out of range, empty text, ... */
    DC_ERR_NOMEM = 9,       /* allocation failed */
    DC_ERR_EXISTS = 10,     /* output exists and --force was not given */
    DC_ERR_INTERNAL = 11,   /* a bug: please report */
} dc_status;

const char *dc_status_name(dc_status s);

typedef struct dc_err {
    dc_status code;
    char msg[1024];
} dc_err;

/* Sets err (if non-NULL) and returns code. Format like printf. */
dc_status dc_err_set(dc_err *err, dc_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to an existing message (keeps the code). */
dc_status dc_err_prefix(dc_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dc_err_clear(dc_err *err);

/* Overflow-checked arithmetic: return false on overflow. */
static inline bool dc_mul_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool dc_add_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }

/* Logging. Level 0 = quiet (errors only), 1 = normal, 2 = verbose. */
extern int dc_log_level;
void dc_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Allocation helpers that report DC_ERR_NOMEM with a message. */
void *dc_malloc(size_t n, dc_err *err);
void *dc_calloc(size_t n, size_t sz, dc_err *err);
char *dc_strdup(const char *s);
/* Growable array helper: ensures *cap >= need, doubling; returns false on OOM. */
bool dc_grow(void **ptr, size_t *cap, size_t need, size_t elem);

/* Path helpers */
char *dc_path_join(const char *a, const char *b); /* malloc'd; NULL on OOM */
const char *dc_path_base(const char *p);
bool dc_str_ends_with(const char *s, const char *suffix);
bool dc_is_dir(const char *p);
bool dc_exists(const char *p);

/* Parses "5GB", "500MB", "1.5GiB", "123" (bytes). Returns false on bad input. */
bool dc_parse_size(const char *s, uint64_t *out);
/* Formats bytes human-readably into buf. */
const char *dc_fmt_bytes(uint64_t n, char *buf, size_t cap);

#endif
