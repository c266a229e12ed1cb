#include "dc_gptq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* In place: the lower Cholesky factor of A (K x K row-major, symmetric); false if not positive
 * definite. Column by column; the rows below the diagonal in parallel. */
static bool cholesky_lower(double *A, int64_t K)
{
    bool ok = true;
    for (int64_t j = 0; j < K && ok; j++) {
        double *aj = A + j * K, d = aj[j];
        for (int64_t k = 0; k < j; k++)
            d -= aj[k] * aj[k];
        if (!(d > 0) || !isfinite(d)) {
            ok = false;
            break;
        }
        const double ljj = sqrt(d);
        aj[j] = ljj;
#pragma omp parallel for schedule(static) if ((K - j) * j >= (1 << 16))
        for (int64_t i = j + 1; i < K; i++) {
            double *ai = A + i * K, s = ai[j];
            for (int64_t k = 0; k < j; k++)
                s -= ai[k] * aj[k];
            ai[j] = s / ljj;
        }
    }
    return ok;
}

dc_status dc_gptq_prepare(const double *H, int64_t K, double damp, const char *what, double **U, double *damp_used,
                          dc_err *err)
{
    *U = NULL;
    if (damp_used)
        *damp_used = damp;
    if (K <= 0)
        return DC_OK;
    double mean = 0;
    for (int64_t i = 0; i < K; i++)
        mean += H[i * K + i];
    mean /= (double)K;
    if (!(mean > 0) || !isfinite(mean))
        return isfinite(mean) ? DC_OK
                              : dc_err_set(err, DC_ERR_INPUT, "gptq: %s: the Hessian is not finite (mean diagonal %g)",
                                           what, mean);
    size_t kk = (size_t)K * (size_t)K;
    double *A = malloc(kk * sizeof *A), *Li = malloc(kk * sizeof *Li);
    if (!A || !Li) {
        free(A);
        free(Li);
        return dc_err_set(err, DC_ERR_NOMEM, "gptq: out of memory for the %lld x %lld factors of %s", (long long)K,
                          (long long)K, what);
    }
    bool ok = false;
    double d = damp;
    for (int attempt = 0; attempt < 5 && !ok; attempt++, d *= 10) {
        /* A = P (H + d * mean * I) P, the lower triangle (what cholesky_lower reads) */
        for (int64_t i = 0; i < K; i++)
            for (int64_t j = 0; j <= i; j++) {
                double h = H[(K - 1 - i) * K + (K - 1 - j)];
                if (i == j)
                    h = (h == 0 ? mean : h) + d * mean;
                A[i * K + j] = h;
            }
        ok = cholesky_lower(A, K);
        if (ok && damp_used)
            *damp_used = d;
    }
    if (!ok) {
        free(A);
        free(Li);
        return dc_err_set(err, DC_ERR_INPUT, "gptq: %s: the %lld x %lld Hessian is not positive definite even with "
                                             "dampening %g",
                          what, (long long)K, (long long)K, d / 10);
    }
    /* Li = L^-1 (lower), stored transposed: Li[j][i] = (L^-1)[i][j], so column j is contiguous */
#pragma omp parallel for schedule(dynamic, 8) if (K >= 64)
    for (int64_t j = 0; j < K; j++) {
        double *c = Li + j * K;
        memset(c, 0, (size_t)K * sizeof *c);
        c[j] = 1.0 / A[j * K + j];
        for (int64_t i = j + 1; i < K; i++) {
            const double *ai = A + i * K;
            double s = 0;
            for (int64_t k = j; k < i; k++)
                s += ai[k] * c[k];
            c[i] = -s / ai[i];
        }
    }
    /* U[i][j] = (L^-1)[K-1-i][K-1-j] = Li[K-1-j][K-1-i] */
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < K; j++)
            A[i * K + j] = j >= i ? Li[(K - 1 - j) * K + (K - 1 - i)] : 0.0;
    free(Li);
    *U = A;
    return DC_OK;
}
