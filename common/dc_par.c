#include "dc_par.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

dc_status dc_par_run(const dc_par_job *j, dc_err *err)
{
    volatile int failed = 0;
    dc_err first = {0};
    size_t done = 0;
    uint64_t bytes_done = 0;
    double t0 = now_s(), last = t0;
#pragma omp parallel
    {
        void *tls = j->tls_size ? calloc(1, j->tls_size) : NULL;
        if (j->tls_size && !tls) {
#pragma omp critical(dc_par_err)
            if (!failed) {
                failed = 1;
                dc_err_set(&first, DC_ERR_NOMEM, "out of memory for a thread's scratch");
            }
        }
#pragma omp for schedule(dynamic, 1)
        for (long k = 0; k < (long)j->n; k++) {
            if (failed)
                continue;
            dc_err le = {0};
            if (j->run(j->ctx, (size_t)k, tls, &le)) {
#pragma omp critical(dc_par_err)
                if (!failed) {
                    failed = 1;
                    first = le;
                }
                continue;
            }
#pragma omp atomic
            done++;
            if (j->unit_bytes) {
                uint64_t b = j->unit_bytes(j->ctx, (size_t)k);
#pragma omp atomic
                bytes_done += b;
            }
            if (j->progress && omp_get_thread_num() == 0) {
                double t = now_s();
                if (t - last > 0.25) {
                    last = t;
                    if (j->unit_bytes) {
                        double rate = (double)bytes_done / (t - t0 + 1e-9);
                        fprintf(stderr, "\r%s %zu/%zu units, %.2f GB/s, ETA %.0f s   ", j->progress, done, j->n,
                                rate / 1e9, rate > 0 ? (double)(j->total_bytes - bytes_done) / rate : 0.0);
                    } else
                        fprintf(stderr, "\r%s %zu/%zu units, %.0f s   ", j->progress, done, j->n, t - t0);
                }
            }
        }
        if (tls && j->tls_free)
            j->tls_free(tls);
        free(tls);
    }
    if (j->progress)
        fprintf(stderr, "\r%70s\r", "");
    if (failed) {
        if (err)
            *err = first;
        return first.code ? first.code : DC_ERR_IO;
    }
    return DC_OK;
}
