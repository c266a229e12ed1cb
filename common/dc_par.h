/* Independent units of work on the OpenMP threads: the loop every streaming command (convert,
 * GGUF export, quantize, 4-bit layouts, reshard) runs over its planned units. */
#ifndef DC_PAR_H
#define DC_PAR_H
#include "dc_common.h"

typedef struct dc_par_job {
    size_t n;                                                   /* units */
    dc_status (*run)(void *ctx, size_t k, void *tls, dc_err *err); /* unit k; tls: this thread's scratch */
    void *ctx;
    size_t tls_size;            /* bytes of per-thread scratch, zeroed before the first unit */
    void (*tls_free)(void *tls); /* releases what run left in it (may be NULL) */
    const char *progress;       /* NULL: quiet; else "\rPROGRESS k/n units, s" on stderr, 4 times a second */
    uint64_t (*unit_bytes)(void *ctx, size_t k); /* optional: progress also shows GB/s and the ETA of total_bytes */
    uint64_t total_bytes;
} dc_par_job;

/* Runs every unit (dynamic schedule, one unit at a time). After the first failure the remaining
 * units are skipped and that failure (status and message) is returned. Units must write disjoint
 * outputs: the order in which they run is not defined. */
dc_status dc_par_run(const dc_par_job *j, dc_err *err);

#endif
