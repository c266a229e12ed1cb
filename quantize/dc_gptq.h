/* GPTQ's linear algebra (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative
 * Pre-trained Transformers", 2022): from a layer input's Hessian H = sum x x^T (K x K), the upper
 * Cholesky factor U of the damped inverse, H_d^-1 = U^T U with H_d = H + damp * mean(diag H) * I
 * (zero diagonal entries, inputs that were always 0, are first set to mean(diag H)).
 *
 * Quantizing a weight row w (length K) column by column in order, column i's rounding error
 * e = (w_i - q_i) / U[i][i] is compensated on the columns not yet quantized: w_j -= e * U[i][j]
 * for j > i (the paper's Algorithm 1, row by row; rows are independent).
 *
 * U is computed without forming H^-1: with P the index reversal, chol(P H_d P) = L gives
 * H_d = (P L P)(P L P)^T, so U = (P L P)^-1 = P L^-1 P. Every element is computed by one thread
 * in a fixed order: U is identical for any thread count. */
#ifndef DC_GPTQ_H
#define DC_GPTQ_H
#include "dc_common.h"

/* U (K x K row-major, upper triangle; malloc'd, free with free()). damp: the fraction of the mean
 * diagonal added (GPTQ's percdamp, 0.01); when H_d is not numerically positive definite the
 * dampening is multiplied by 10, up to 4 times (*damp_used receives the value used). A Hessian with
 * an all-zero diagonal gives *U = NULL and DC_OK (nothing to weight: quantize without GPTQ).
 * what names the matrix in messages. */
dc_status dc_gptq_prepare(const double *H, int64_t K, double damp, const char *what, double **U, double *damp_used,
                          dc_err *err);

/* Column i of a row has been quantized to q: spread its error over columns i+1..K-1 of w. */
static inline void dc_gptq_update(double *w, const double *U, int64_t K, int64_t i, double q)
{
    const double *ui = U + i * K;
    const double e = (w[i] - q) / ui[i];
    for (int64_t j = i + 1; j < K; j++)
        w[j] -= e * ui[j];
}

#endif
