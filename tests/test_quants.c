/* ggml block quants (quantize/dc_quants.h) against ggml itself: the prebuilt libggml-base.so that
 * node-llama-cpp ships (dlopen'ed from tests/interop/node_modules, else /tmp/nlc/node_modules, else
 * $DC_GGML_BASE; the comparisons are skipped with a note when none exists).
 *
 * Per type, on deterministic inputs (gaussian, outliers, all-zero rows, zero / constant / single
 * blocks inside rows, tiny and subnormal values, large values, one-signed rows; several row
 * lengths): dc_quantize_rows == ggml_quantize_chunk byte for byte without and with an imatrix;
 * dc_quantize_row_T_ref == quantize_row_T_ref; dequantize == ggml's to_float bit for bit (also on
 * random block bytes); fast == scalar reference paths; dot == dequantize + the forward pass's dot;
 * round-trip error within the type's range; 1 and 2 OpenMP threads give the same bytes.
 *
 * DC_QUANTS_BENCH=1 prints single-thread quantize / dequantize / dot speeds instead of testing
 * (bench/quants.sh). */
#include "dc_test.h"
#include "dc_ggml.h"
#include "dc_quants.h"

#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ================================================================================================
 * ggml, dlopen'ed
 * ================================================================================================ */

/* struct ggml_type_traits of ggml.h (this release) */
struct ggml_type_traits_mirror {
    const char *type_name;
    int64_t blck_size;
    int64_t blck_size_interleave;
    size_t type_size;
    bool is_quantized;
    void (*to_float)(const void *x, float *y, int64_t k);
    void (*from_float_ref)(const float *x, void *y, int64_t k);
};

static struct {
    void *h;
    size_t (*quantize_chunk)(int type, const float *src, void *dst, int64_t start, int64_t nrows,
                             int64_t n_per_row, const float *imatrix);
    const struct ggml_type_traits_mirror *(*get_type_traits)(int type);
    bool (*requires_imatrix)(int type);
    size_t (*row_size)(int type, int64_t ne);
    uint16_t (*fp32_to_fp16)(float f);
    float (*fp16_to_fp32)(uint16_t h);
} G;

static bool ggml_load(void)
{
    const char *env = getenv("DC_GGML_BASE");
    const char *cands[] = {
        env,
        DC_TEST_DATA "/../interop/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so",
        "/tmp/nlc/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so",
    };
    for (size_t i = 0; i < sizeof cands / sizeof cands[0] && !G.h; i++) {
        if (!cands[i] || !*cands[i])
            continue;
        G.h = dlopen(cands[i], RTLD_NOW | RTLD_LOCAL);
        if (G.h)
            printf("ggml: %s\n", cands[i]);
    }
    if (!G.h) {
        printf("NOTE: libggml-base.so (node-llama-cpp) not found: comparisons with ggml skipped, "
               "self-consistency tests only\n");
        return false;
    }
    *(void **)&G.quantize_chunk = dlsym(G.h, "ggml_quantize_chunk");
    *(void **)&G.get_type_traits = dlsym(G.h, "ggml_get_type_traits");
    *(void **)&G.requires_imatrix = dlsym(G.h, "ggml_quantize_requires_imatrix");
    *(void **)&G.row_size = dlsym(G.h, "ggml_row_size");
    *(void **)&G.fp32_to_fp16 = dlsym(G.h, "ggml_fp32_to_fp16");
    *(void **)&G.fp16_to_fp32 = dlsym(G.h, "ggml_fp16_to_fp32");
    bool ok = G.quantize_chunk && G.get_type_traits && G.requires_imatrix && G.row_size && G.fp32_to_fp16 &&
              G.fp16_to_fp32;
    CHECK_MSG(ok, "libggml-base.so lacks an expected symbol");
    if (!ok) {
        dlclose(G.h);
        G.h = NULL;
    }
    return ok;
}

typedef void (*row_fn)(const float *x, void *y, int64_t k);
typedef void (*deq_fn)(const void *x, float *y, int64_t k);

static void *ggml_sym(const char *fmt, const char *name)
{
    char s[64];
    snprintf(s, sizeof s, fmt, name);
    return G.h ? dlsym(G.h, s) : NULL;
}

/* ================================================================================================
 * Inputs
 * ================================================================================================ */

static uint64_t rng_state;
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rng_unif(void) { return (double)(rng_next() >> 11) * 0x1p-53; }
static float rng_gauss(void)
{
    double u1 = rng_unif(), u2 = rng_unif();
    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}

enum { IN_GAUSS, IN_OUTLIERS, IN_ZERO_ROWS, IN_BLOCKS, IN_TINY, IN_LARGE, IN_POSITIVE, IN_QUANTIZED, IN_COUNT };
static const char *IN_NAMES[IN_COUNT] = {"gauss",   "outliers", "zero-rows", "mixed-blocks",
                                         "tiny",    "large",    "positive",  "few-levels"};

/* fills x[nrows][n] with the pattern of case c */
static void make_input(int c, float *x, int64_t nrows, int64_t n, uint64_t seed)
{
    rng_state = seed * 7919 + (uint64_t)c;
    for (int64_t r = 0; r < nrows; r++) {
        float *row = x + r * n;
        float rs = (float)exp(rng_gauss()); /* rows of different magnitudes */
        for (int64_t i = 0; i < n; i++) {
            float g = rng_gauss();
            switch (c) {
            case IN_GAUSS:
                row[i] = g * rs;
                break;
            case IN_OUTLIERS:
                row[i] = (rng_next() % 97 == 0) ? g * 100.0f * rs : g * rs * 0.1f;
                break;
            case IN_ZERO_ROWS:
                row[i] = (r % 2 == 0) ? 0.0f : g;
                break;
            case IN_BLOCKS: {
                /* per 32 values: zero, constant, a single spike, negative zeros, or noise */
                int kind = (int)((uint64_t)(i / 32) * 2654435761u % 7);
                row[i] = kind == 0 ? 0.0f
                       : kind == 1 ? 0.75f * rs
                       : kind == 2 ? (i % 32 == 5 ? -3.0f * rs : 0.0f)
                       : kind == 3 ? -0.0f
                       : kind == 4 ? (i % 2 ? 1e-3f : -1e-3f) * rs
                       : g * rs;
                break;
            }
            case IN_TINY:
                /* down to f16 subnormals, f32 subnormals and below the 1e-15 group threshold */
                row[i] = g * (r % 3 == 0 ? 1e-6f : r % 3 == 1 ? 1e-30f : 1e-40f);
                break;
            case IN_LARGE:
                row[i] = g * 3.0e4f * rs;
                break;
            case IN_POSITIVE:
                row[i] = fabsf(g) * rs + 0.5f;
                break;
            case IN_QUANTIZED:
                row[i] = (float)((int)(rng_next() % 9) - 4) * 0.25f * rs;
                break;
            }
        }
    }
}

static void make_imatrix(float *w, int64_t n, uint64_t seed)
{
    rng_state = seed ^ 0xabcdefull;
    for (int64_t i = 0; i < n; i++)
        w[i] = (i % 53 == 7) ? 1e-4f : (float)exp(1.5 * rng_gauss()); /* positive, wide range */
}

/* ================================================================================================
 * Checks
 * ================================================================================================ */

/* forward-pass order dot (verify/dc_forward.c): 8 lanes, fixed pairwise reduction, tail in order */
static float dot_fwd(const float *a, const float *b, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* first differing block, or -1 */
static int64_t first_diff_block(const void *a, const void *b, size_t bytes, int type_size)
{
    const uint8_t *p = a, *q = b;
    for (size_t i = 0; i < bytes; i++)
        if (p[i] != q[i])
            return (int64_t)(i / (size_t)type_size);
    return -1;
}

static int64_t count_diff_blocks(const void *a, const void *b, size_t bytes, int type_size)
{
    int64_t n = 0;
    for (size_t o = 0; o < bytes; o += (size_t)type_size)
        n += memcmp((const uint8_t *)a + o, (const uint8_t *)b + o, (size_t)type_size) != 0;
    return n;
}

static void dump_block(const char *what, const void *blk, int size)
{
    fprintf(stderr, "  %s:", what);
    for (int i = 0; i < size; i++)
        fprintf(stderr, " %02x", ((const uint8_t *)blk)[i]);
    fputc('\n', stderr);
}

/* relative RMS error of the round trip */
static double rel_rmse(const float *x, const float *y, int64_t n)
{
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        s += (double)x[i] * x[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

/* upper bounds on the relative RMS error for gaussian rows (sanity, with margin), without and with
 * an imatrix (the weighted fit trades plain RMSE for weighted error) */
static double rmse_bound(const dc_qtype_traits *t, bool imatrix)
{
    static const struct { const char *name; double plain, weighted; } B[] = {
        {"q4_0", 0.11, 0.11},  {"q4_1", 0.10, 0.10},  {"q5_0", 0.055, 0.055}, {"q5_1", 0.05, 0.05},
        {"q8_0", 0.008, 0.008}, {"q2_K", 0.36, 0.36},  {"q3_K", 0.19, 0.19},  {"q4_K", 0.09, 0.095},
        {"q5_K", 0.046, 0.048}, {"q6_K", 0.023, 0.024}, {"q8_K", 0.01, 0.01},  {"iq4_nl", 0.095, 0.10},
        {"iq4_xs", 0.095, 0.10}, {"tq1_0", 0.9, 0.9},   {"tq2_0", 0.9, 0.9}, {"mxfp4", 0.14, 0.14},
    };
    for (size_t i = 0; i < sizeof B / sizeof B[0]; i++)
        if (!strcmp(B[i].name, t->name))
            return imatrix ? B[i].weighted : B[i].plain;
    return 0;
}

static const int64_t LENS_32[] = {32, 96, 256, 1024, 4096};
static const int64_t LENS_256[] = {256, 768, 1024, 4096};
#define NROWS 6

static void test_type(const dc_qtype_traits *t, bool have_ggml)
{
    const bool kq = t->blck_size == DC_QK_K;
    const int64_t *lens = kq ? LENS_256 : LENS_32;
    const int nlens = kq ? 4 : 5;
    const bool chunk_ok = t->type != DC_QT_Q8_K; /* ggml_quantize_chunk has no Q8_K */
    row_fn g_ref = (row_fn)ggml_sym("quantize_row_%s_ref", t->name);
    deq_fn g_deq = NULL;
    if (have_ggml) {
        const struct ggml_type_traits_mirror *gt = G.get_type_traits((int)t->type);
        CHECK_MSG(gt && gt->type_name && !strcmp(gt->type_name, t->name), "%s: ggml name %s", t->name,
                  gt && gt->type_name ? gt->type_name : "?");
        CHECK_MSG(gt && gt->blck_size == t->blck_size && gt->type_size == (size_t)t->type_size,
                  "%s: block %d/%d vs ggml", t->name, t->blck_size, t->type_size);
        CHECK_MSG(G.requires_imatrix((int)t->type) == t->requires_imatrix, "%s: requires_imatrix", t->name);
        g_deq = gt ? gt->to_float : NULL;
        if (!g_deq)
            g_deq = (deq_fn)ggml_sym("dequantize_row_%s", t->name);
        CHECK_MSG(g_deq && g_ref, "%s: ggml functions missing", t->name);
    }

    int64_t stats_same[2] = {0}, stats_blocks[2] = {0};
    int64_t ref_same = 0, ref_blocks = 0;
    for (int li = 0; li < nlens; li++) {
        const int64_t n = lens[li], nrows = NROWS, ne = n * nrows;
        const size_t row_size = dc_qtype_row_size(t, n), bytes = row_size * (size_t)nrows;
        CHECK(row_size == (size_t)(n / t->blck_size * t->type_size));
        if (have_ggml)
            CHECK(G.row_size((int)t->type, n) == row_size);
        float *x = malloc((size_t)ne * sizeof(float)), *imat = malloc((size_t)n * sizeof(float));
        float *y1 = malloc((size_t)ne * sizeof(float)), *y2 = malloc((size_t)ne * sizeof(float));
        float *v = malloc((size_t)n * sizeof(float));
        uint8_t *q1 = malloc(bytes), *q2 = malloc(bytes);
        if (!x || !imat || !y1 || !y2 || !v || !q1 || !q2) {
            CHECK_MSG(0, "out of memory");
            exit(2);
        }
        make_imatrix(imat, n, (uint64_t)n);
        for (int c = 0; c < IN_COUNT; c++) {
            make_input(c, x, nrows, n, (uint64_t)(n * 31 + li));
            for (int wi = 0; wi < 2; wi++) {
                const float *qw = wi ? imat : NULL;
                memset(q1, 0xA5, bytes);
                size_t got = dc_quantize_rows(t->type, x, q1, nrows, n, qw);
                CHECK_MSG(got == bytes, "%s: dc_quantize_rows returned %zu, want %zu", t->name, got, bytes);
                /* the per-type entry point in one call gives the same bytes */
                memset(q2, 0x5A, bytes);
                CHECK(t->quantize_imatrix(x, q2, nrows, n, qw) == bytes);
                CHECK_MSG(!memcmp(q1, q2, bytes), "%s %s n=%lld %s: dc_quantize_rows != dc_quantize_%s",
                          t->name, IN_NAMES[c], (long long)n, qw ? "imatrix" : "plain", t->name);
                if (have_ggml && chunk_ok) {
                    memset(q2, 0xA5, bytes);
                    size_t gb = G.quantize_chunk((int)t->type, x, q2, 0, nrows, n, qw);
                    CHECK(gb == bytes);
                    int64_t nd = count_diff_blocks(q1, q2, bytes, t->type_size);
                    stats_blocks[wi] += (int64_t)(bytes / (size_t)t->type_size);
                    stats_same[wi] += (int64_t)(bytes / (size_t)t->type_size) - nd;
                    CHECK_MSG(nd == 0, "%s %s n=%lld %s: %lld of %zu blocks differ from ggml_quantize_chunk",
                              t->name, IN_NAMES[c], (long long)n, qw ? "imatrix" : "plain", (long long)nd,
                              bytes / (size_t)t->type_size);
                    if (nd) {
                        int64_t b = first_diff_block(q1, q2, bytes, t->type_size);
                        dump_block("ours", q1 + b * t->type_size, t->type_size);
                        dump_block("ggml", q2 + b * t->type_size, t->type_size);
                    }
                }
                /* dequantize: fast == scalar reference == ggml, bit for bit */
                t->dequantize(q1, y1, ne);
                t->dequantize_ref(q1, y2, ne);
                CHECK_MSG(!memcmp(y1, y2, (size_t)ne * sizeof(float)), "%s %s: dequantize != dequantize_ref",
                          t->name, IN_NAMES[c]);
                if (g_deq) {
                    g_deq(q1, y2, ne);
                    CHECK_MSG(!memcmp(y1, y2, (size_t)ne * sizeof(float)), "%s %s n=%lld: dequantize != ggml to_float",
                              t->name, IN_NAMES[c], (long long)n);
                }
                /* dot: fast == reference == dequantize + forward dot */
                rng_state = (uint64_t)c * 1000003u + (uint64_t)n;
                for (int64_t i = 0; i < n; i++)
                    v[i] = rng_gauss();
                for (int64_t r = 0; r < nrows; r++) {
                    const uint8_t *qr = q1 + (size_t)r * row_size;
                    float d1 = t->vec_dot_f32(n, qr, v), d2 = t->vec_dot_ref(n, qr, v);
                    float d3 = dot_fwd(y1 + r * n, v, n);
                    CHECK_MSG(!memcmp(&d1, &d2, 4) && !memcmp(&d1, &d3, 4), "%s %s: dot %.9g ref %.9g fwd %.9g",
                              t->name, IN_NAMES[c], d1, d2, d3);
                }
                /* round-trip error on the gaussian rows */
                if (c == IN_GAUSS) {
                    double e = rel_rmse(x, y1, ne), bound = rmse_bound(t, qw != NULL);
                    CHECK_MSG(e <= bound, "%s n=%lld %s: relative RMSE %.4f > %.4f", t->name, (long long)n,
                              qw ? "imatrix" : "plain", e, bound);
                    if (n == 4096)
                        printf("%-6s relative RMSE %s: %.4f\n", t->name, qw ? "imatrix" : "plain  ", e);
                }
            }
            /* the reference quantizer over all rows at once == ggml's quantize_row_T_ref. ggml's
             * IQ4_NL reference reads uninitialised indices for an all-zero first block: skipped. */
            bool first_block_zero = true;
            for (int i = 0; i < t->blck_size; i++)
                first_block_zero &= fabsf(x[i]) < 1e-15f;
            memset(q1, 0, bytes);
            t->quantize_ref(x, q1, ne);
            if (g_ref && !(t->type == DC_QT_IQ4_NL && first_block_zero)) {
                memset(q2, 0, bytes);
                g_ref(x, q2, ne);
                int64_t nd = count_diff_blocks(q1, q2, bytes, t->type_size);
                ref_blocks += (int64_t)(bytes / (size_t)t->type_size);
                ref_same += (int64_t)(bytes / (size_t)t->type_size) - nd;
                CHECK_MSG(nd == 0, "%s %s n=%lld: %lld blocks of dc_quantize_row_%s_ref differ from ggml", t->name,
                          IN_NAMES[c], (long long)n, (long long)nd, t->name);
                if (nd) {
                    int64_t b = first_diff_block(q1, q2, bytes, t->type_size);
                    dump_block("ours", q1 + b * t->type_size, t->type_size);
                    dump_block("ggml", q2 + b * t->type_size, t->type_size);
                }
            }
        }
        /* dequantize arbitrary block bytes (any scale bits, NaN / inf included) */
        rng_state = 0x1234 + (uint64_t)n;
        for (size_t i = 0; i < bytes; i++)
            q1[i] = (uint8_t)rng_next();
        t->dequantize(q1, y1, ne);
        t->dequantize_ref(q1, y2, ne);
        CHECK_MSG(!memcmp(y1, y2, (size_t)ne * sizeof(float)), "%s random bytes: dequantize != dequantize_ref",
                  t->name);
        if (g_deq) {
            g_deq(q1, y2, ne);
            CHECK_MSG(!memcmp(y1, y2, (size_t)ne * sizeof(float)), "%s random bytes: dequantize != ggml to_float",
                      t->name);
        }
        free(x), free(imat), free(y1), free(y2), free(v), free(q1), free(q2);
    }
    if (have_ggml)
        printf("%-6s == ggml: quantize_chunk plain %lld/%lld blocks, imatrix %lld/%lld, row_ref %lld/%lld\n",
               t->name, (long long)stats_same[0], (long long)stats_blocks[0], (long long)stats_same[1],
               (long long)stats_blocks[1], (long long)ref_same, (long long)ref_blocks);
}

/* many rows in parallel: the same bytes for 1 and 2 threads (and as ggml) */
static void test_threads(const dc_qtype_traits *t, bool have_ggml)
{
    const int64_t n = 512, nrows = 300, ne = n * nrows;
    const size_t bytes = dc_qtype_row_size(t, n) * (size_t)nrows;
    float *x = malloc((size_t)ne * sizeof(float)), *imat = malloc((size_t)n * sizeof(float));
    uint8_t *a = malloc(bytes), *b = malloc(bytes);
    if (!x || !imat || !a || !b)
        exit(2);
    make_input(IN_OUTLIERS, x, nrows, n, 99);
    make_imatrix(imat, n, 5);
    int saved = omp_get_max_threads();
    for (int wi = 0; wi < 2; wi++) {
        const float *qw = wi ? imat : NULL;
        omp_set_num_threads(1);
        CHECK(dc_quantize_rows(t->type, x, a, nrows, n, qw) == bytes);
        omp_set_num_threads(2);
        CHECK(dc_quantize_rows(t->type, x, b, nrows, n, qw) == bytes);
        CHECK_MSG(!memcmp(a, b, bytes), "%s %s: 1 and 2 threads differ", t->name, qw ? "imatrix" : "plain");
        if (have_ggml && t->type != DC_QT_Q8_K) {
            memset(b, 0, bytes);
            G.quantize_chunk((int)t->type, x, b, 0, nrows, n, qw);
            CHECK_MSG(!memcmp(a, b, bytes), "%s %s: %lld-row tensor differs from ggml", t->name,
                      qw ? "imatrix" : "plain", (long long)nrows);
        }
    }
    omp_set_num_threads(saved);
    free(x), free(imat), free(a), free(b);
}

/* the AVX2 fast paths of the Q4_K / Q5_K / Q6_K scale searches (dc_quants_simd) against the scalar
 * code, byte for byte, on rows of many shapes: random scales, all zeros, one huge outlier, one-signed,
 * f32 subnormals, below the 1e-15 group threshold, constant sub-blocks, ties, values whose squares
 * overflow; without an imatrix, with a wide-range one and with one holding zeros and subnormals */
static void simd_rows(float *x, int64_t nrows, int64_t n, uint64_t seed)
{
    rng_state = seed * 104729 + 17;
    for (int64_t r = 0; r < nrows; r++) {
        float *row = x + r * n;
        float rs = (float)exp(2.0 * rng_gauss());
        int pat = (int)(r % 14);
        for (int64_t i = 0; i < n; i++) {
            float g = rng_gauss();
            float v;
            switch (pat) {
            case 0: v = g * rs; break;
            case 1: v = 0.0f; break;
            case 2: v = g * rs * 0.01f; break; /* + one outlier per super-block below */
            case 3: v = -fabsf(g) * rs; break;
            case 4: v = fabsf(g) * rs; break;
            case 5: v = g * 1e-40f; break;                       /* f32 subnormals */
            case 6: v = g * (i % 256 < 128 ? 1e-16f : 1e-38f); break; /* around the thresholds */
            case 7: {                                            /* per 16 values */
                uint64_t k = ((uint64_t)(i / 16) * 2654435761u + (uint64_t)r * 40503u) % 9;
                v = k == 0 ? 0.0f : k == 1 ? 0.75f * rs : k == 2 ? -0.75f * rs : k == 3 ? -0.0f
                  : k == 4 ? (i % 16 == 3 ? 5.0f * rs : 0.0f) : k == 5 ? (i % 16 == 9 ? -5.0f * rs : 0.0f)
                  : k == 6 ? (i % 2 ? 1e-3f : -1e-3f) * rs : k == 7 ? (float)(i % 16) * rs : g * rs;
                break;
            }
            case 8: v = (float)((int)(rng_next() % 31) - 15) * 0.5f * rs; break; /* ties */
            case 9: v = g * 2e19f; break;                                      /* x*x overflows */
            case 10: v = g * (float)exp(3.0 * rng_gauss()); break;              /* heavy tails */
            case 11: v = (i / 32) % 2 ? 1.5f * rs : -2.5f * rs; break;        /* constant sub-blocks */
            case 12: v = (float)(rng_next() % 3) * rs; break;                  /* three levels, >= 0 */
            default: v = g * rs + 3.0f * rs; break;                            /* offset */
            }
            row[i] = v;
        }
        if (pat == 2)
            for (int64_t b = 0; b < n; b += 256)
                row[b + (int64_t)(rng_next() % 256)] = (rng_next() & 1 ? 1e6f : -1e6f) * rs;
    }
}

static void test_simd(void)
{
    if (!dc_quants_simd(1)) {
        printf("test_simd: no AVX2 fast paths on this CPU, skipped\n");
        dc_quants_simd(-1);
        return;
    }
    /* 5 super-blocks a row: the fast Q4_K / Q5_K paths take them in pairs, plus a single one */
    const int64_t n = 1280, nrows = 14 * 24, ne = n * nrows;
    const dc_qtype types[] = {DC_QT_Q2_K, DC_QT_Q3_K, DC_QT_Q4_K, DC_QT_Q5_K, DC_QT_Q6_K, DC_QT_Q8_0, DC_QT_IQ4_NL, DC_QT_IQ4_XS};
    float *x = malloc((size_t)ne * sizeof(float)), *im[3] = {NULL, malloc((size_t)n * 4), malloc((size_t)n * 4)};
    uint8_t *a = malloc((size_t)ne * 2), *b = malloc((size_t)ne * 2);
    if (!x || !im[1] || !im[2] || !a || !b)
        exit(2);
    for (int seed = 1; seed <= 3; seed++) {
        simd_rows(x, nrows, n, (uint64_t)seed);
        make_imatrix(im[1], n, (uint64_t)seed + 100);
        for (int64_t i = 0; i < n; i++) /* zeros, subnormals, huge */
            im[2][i] = i % 5 == 0 ? 0.0f : i % 5 == 1 ? 1e-42f : i % 5 == 2 ? 1e20f : im[1][i];
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const dc_qtype_traits *t = dc_qtype_by_id((int)types[ti]);
            const size_t bytes = dc_qtype_row_size(t, n) * (size_t)nrows;
            for (int wi = 0; wi < 3; wi++) {
                dc_quants_simd(0);
                memset(a, 0, bytes);
                CHECK(dc_quantize_rows(t->type, x, a, nrows, n, im[wi]) == bytes);
                dc_quants_simd(1);
                memset(b, 0xff, bytes);
                CHECK(dc_quantize_rows(t->type, x, b, nrows, n, im[wi]) == bytes);
                int64_t d = first_diff_block(a, b, bytes, t->type_size);
                CHECK_MSG(d < 0, "%s seed %d imatrix %d: AVX2 differs from scalar at block %lld (row %lld), %lld blocks",
                          t->name, seed, wi, (long long)d, (long long)(d * t->blck_size / n),
                          (long long)count_diff_blocks(a, b, bytes, t->type_size));
                if (d >= 0) {
                    dump_block("scalar", a + (size_t)d * t->type_size, t->type_size);
                    dump_block("avx2", b + (size_t)d * t->type_size, t->type_size);
                }
            }
            /* the _ref entry point too, on an odd number of super-blocks */
            const size_t rbytes = bytes - (size_t)t->type_size;
            dc_quants_simd(0);
            t->quantize_ref(x, a, ne - DC_QK_K);
            dc_quants_simd(1);
            t->quantize_ref(x, b, ne - DC_QK_K);
            CHECK_MSG(!memcmp(a, b, rbytes), "%s seed %d: ref AVX2 differs from scalar", t->name, seed);
        }
    }
    /* Q8_0's roundf: blocks whose scaled values are exact ties (amax = 127 * 2^k, values (j + 1/2) *
     * 2^k), near ties, signed zeros, and blocks with an infinity or a NaN (the scalar code's
     * handling, whatever it is, is what the fast path must give) */
    const dc_qtype_traits *t8 = dc_qtype_by_id((int)DC_QT_Q8_0);
    const int64_t nb8 = 64;
    for (int64_t bi = 0; bi < nb8; bi++) {
        float *v = x + bi * 32, sc = ldexpf(1.0f, (int)(bi % 11) - 5);
        for (int j = 0; j < 32; j++) {
            float tie = ((float)(j * 4 - 64) + 0.5f) * sc;
            v[j] = bi % 4 == 0 ? tie : bi % 4 == 1 ? nextafterf(tie, 0.0f) : bi % 4 == 2 ? nextafterf(tie, INFINITY)
                 : (j % 2 ? -0.0f : 0.0f);
        }
        v[31] = 127.0f * sc; /* amax: id = 1 / sc exactly */
        if (bi == 9)
            v[4] = INFINITY;
        if (bi == 13)
            v[7] = NAN;
        if (bi == 17)
            v[0] = -INFINITY, v[1] = NAN;
    }
    dc_quants_simd(0);
    CHECK(dc_quantize_rows(t8->type, x, a, 1, nb8 * 32, NULL) == (size_t)nb8 * 34);
    dc_quants_simd(1);
    CHECK(dc_quantize_rows(t8->type, x, b, 1, nb8 * 32, NULL) == (size_t)nb8 * 34);
    int64_t d8 = first_diff_block(a, b, (size_t)nb8 * 34, 34);
    CHECK_MSG(d8 < 0, "q8_0 ties: AVX2 differs from scalar at block %lld", (long long)d8);
    int ties = 0; /* the tie blocks really round half away from zero: q = j * 4 - 64 (+1 if >= 0) */
    for (int64_t bi = 0; bi < nb8; bi += 4)
        for (int j = 0; j < 31; j++) {
            int want = j * 4 - 64 + (j * 4 - 64 >= 0 ? 1 : 0);
            ties += (int8_t)b[bi * 34 + 2 + j] == want;
        }
    CHECK_MSG(ties == 16 * 31, "q8_0: %d of %d ties rounded away from zero", ties, 16 * 31);
    dc_quants_simd(-1);
    free(x), free(im[1]), free(im[2]), free(a), free(b);
}

static void test_f16(bool have_ggml)
{
    /* decoding: all 65536 halves; encoding: a stride through all floats plus edge cases */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dc_quants_f16_to_f32((uint16_t)h);
        if (dc_quants_f32_to_f16(f) != h && !isnan(f))
            bad++;
        if (have_ggml) {
            float g = G.fp16_to_fp32((uint16_t)h);
            bad += memcmp(&f, &g, 4) != 0;
        }
    }
    CHECK_MSG(bad == 0, "%d f16 decodings differ", bad);
    if (!have_ggml)
        return;
    bad = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += 251) {
        float f;
        uint32_t w = (uint32_t)u;
        memcpy(&f, &w, 4);
        bad += dc_quants_f32_to_f16(f) != G.fp32_to_fp16(f);
    }
    static const uint32_t edges[] = {0x00000000, 0x80000000, 0x33000000, 0x33000001, 0x337fffff, 0x38800000,
                                     0x387fe000, 0x387ff000, 0x477fe000, 0x477fefff, 0x477ff000, 0x7f800000,
                                     0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0x38ffe000, 0x38fff000};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        float f;
        memcpy(&f, &edges[i], 4);
        bad += dc_quants_f32_to_f16(f) != G.fp32_to_fp16(f);
    }
    CHECK_MSG(bad == 0, "%d f16 encodings differ from ggml", bad);
}

static void test_traits(void)
{
    int n;
    const dc_qtype_traits *all = dc_qtype_all(&n);
    CHECK(n == 16);
    for (int i = 0; i < n; i++) {
        CHECK(dc_qtype_by_id((int)all[i].type) == &all[i]);
        CHECK(dc_qtype_find(all[i].name) == &all[i]);
        CHECK(!all[i].requires_imatrix);
        if (i)
            CHECK(all[i].type > all[i - 1].type);
    }
    CHECK(dc_qtype_find("Q4_K") && dc_qtype_find("Q4_K")->type == DC_QT_Q4_K);
    CHECK(dc_qtype_find("IQ4_XS") && dc_qtype_find("iq4_xs")->type_size == 136);
    CHECK(dc_qtype_find("q4_k_m") == NULL && dc_qtype_find("f16") == NULL && dc_qtype_find(NULL) == NULL);
    CHECK(dc_qtype_by_id(0) == NULL && dc_qtype_by_id(16) == NULL && dc_qtype_by_id(40) == NULL);
    CHECK(dc_qtype_by_id(DC_QT_MXFP4)->type_size == 17);
    const dc_qtype_traits *q4k = dc_qtype_by_id(DC_QT_Q4_K);
    CHECK(dc_qtype_row_size(q4k, 4096) == 16 * 144 && dc_qtype_row_size(q4k, 4000) == 0 &&
          dc_qtype_row_size(q4k, 0) == 0);
    float x[256] = {0};
    uint8_t y[256];
    CHECK(dc_quantize_rows(DC_QT_Q4_K, x, y, 1, 100, NULL) == 0); /* not a multiple of 256 */
    CHECK(dc_quantize_rows((dc_qtype)1, x, y, 1, 256, NULL) == 0);  /* F16: not a block type */
    CHECK(dc_quantize_rows(DC_QT_Q4_0, x, y, -1, 32, NULL) == 0);
    CHECK(dc_quantize_rows(DC_QT_Q4_0, x, y, 0, 32, NULL) == 0);
}

/* The formats/ side: dc_ggml_decode (what dc_weight_rows calls for GGUF tensors) decodes every type
 * here exactly like the type's dequantizer, from aligned and from odd addresses (a GGUF with
 * general.alignment 1), and refuses partial blocks. */
static void test_ggml_decode(const dc_qtype_traits *t)
{
    const dc_dtype dt = dc_ggml_dtype((uint32_t)t->type);
    CHECK_MSG(dt != DC_DT_INVALID && dc_dtype_block(dt) == t->blck_size && dc_dtype_block_bytes(dt) == t->type_size,
              "%s: dtype traits", t->name);
    CHECK_MSG(dc_ggml_can_decode(dt), "%s: dc_ggml_can_decode", t->name);
    const int64_t ne = 8 * (int64_t)t->blck_size;
    const size_t bytes = (size_t)(ne / t->blck_size) * (size_t)t->type_size;
    uint8_t *q = malloc(bytes + 16);
    float *a = malloc((size_t)ne * 4), *b = malloc((size_t)ne * 4);
    rng_state = 77 + (uint64_t)t->type;
    for (size_t i = 0; i < bytes + 16; i++)
        q[i] = (uint8_t)rng_next();
    uint8_t *al = q + (16 - ((uintptr_t)q & 15)) % 16; /* 16-aligned */
    if (al + bytes > q + bytes + 16)
        al = q;
    t->dequantize(al, a, ne);
    CHECK_MSG(dc_ggml_decode(dt, al, b, ne) && !memcmp(a, b, (size_t)ne * 4), "%s: dc_ggml_decode (aligned)", t->name);
    uint8_t *odd = malloc(bytes + 1);
    memcpy(odd + 1, al, bytes);
    memset(b, 0, (size_t)ne * 4);
    CHECK_MSG(dc_ggml_decode(dt, odd + 1, b, ne) && !memcmp(a, b, (size_t)ne * 4), "%s: dc_ggml_decode (odd address)",
              t->name);
    CHECK_MSG(!dc_ggml_decode(dt, al, b, ne - 1), "%s: partial block accepted", t->name);
    free(odd);
    free(q);
    free(a);
    free(b);
}

/* ================================================================================================
 * Speed (DC_QUANTS_BENCH=1)
 * ================================================================================================ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void bench(bool have_ggml)
{
    const int64_t n = 4096, nrows = 256, ne = n * nrows; /* 4 MB of f32 */
    float *x = malloc((size_t)ne * 4), *y = malloc((size_t)ne * 4), *imat = malloc((size_t)n * 4);
    uint8_t *q = malloc((size_t)ne * 2);
    if (!x || !y || !imat || !q)
        exit(2);
    make_input(IN_GAUSS, x, nrows, n, 1);
    make_imatrix(imat, n, 1);
    omp_set_num_threads(1);
    int nt;
    const dc_qtype_traits *all = dc_qtype_all(&nt);
    printf("single thread, MB/s of f32 (%lld x %lld):\n", (long long)nrows, (long long)n);
    printf("%-7s %9s %9s %9s %9s %9s %9s %9s\n", "type", "quant", "q+imat", "ggml", "g+imat", "dequant", "ggml-deq",
           "dot");
    for (int i = 0; i < nt; i++) {
        const dc_qtype_traits *t = &all[i];
        double mb = (double)ne * 4 / 1e6, r[7] = {0};
        for (int k = 0; k < 7; k++) {
            if (k >= 2 && k <= 3 && (!have_ggml || t->type == DC_QT_Q8_K))
                continue;
            const struct ggml_type_traits_mirror *gt = have_ggml ? G.get_type_traits((int)t->type) : NULL;
            if (k == 5 && (!gt || !gt->to_float))
                continue;
            double best = 1e30;
            for (int rep = 0; rep < 3; rep++) {
                double t0 = now_s();
                volatile float sink = 0;
                switch (k) {
                case 0: dc_quantize_rows(t->type, x, q, nrows, n, NULL); break;
                case 1: dc_quantize_rows(t->type, x, q, nrows, n, imat); break;
                case 2: G.quantize_chunk((int)t->type, x, q, 0, nrows, n, NULL); break;
                case 3: G.quantize_chunk((int)t->type, x, q, 0, nrows, n, imat); break;
                case 4: t->dequantize(q, y, ne); break;
                case 5: gt->to_float(q, y, ne); break;
                case 6:
                    for (int64_t r0 = 0; r0 < nrows; r0++)
                        sink += t->vec_dot_f32(n, q + (size_t)r0 * dc_qtype_row_size(t, n), x);
                    break;
                }
                (void)sink;
                double dt = now_s() - t0;
                if (dt < best)
                    best = dt;
            }
            r[k] = mb / best;
        }
        printf("%-7s %9.1f %9.1f %9.1f %9.1f %9.0f %9.0f %9.0f\n", t->name, r[0], r[1], r[2], r[3], r[4], r[5], r[6]);
    }
    free(x), free(y), free(imat), free(q);
}

int main(void)
{
    bool have_ggml = ggml_load();
    if (getenv("DC_QUANTS_BENCH")) {
        bench(have_ggml);
        return 0;
    }
    test_traits();
    test_simd();
    test_f16(have_ggml);
    int nt;
    const dc_qtype_traits *all = dc_qtype_all(&nt);
    for (int i = 0; i < nt; i++) {
        test_type(&all[i], have_ggml);
        test_threads(&all[i], have_ggml);
        test_ggml_decode(&all[i]);
    }
    if (G.h)
        dlclose(G.h);
    return dc_test_done();
}
