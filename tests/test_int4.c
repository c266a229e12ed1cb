/* 4-bit layouts (formats/dc_int4.h, convert/dc_int4_convert.h):
 *  - packing against tests/data/int4-vectors.json: GPTQ qweight, AWQ's interleaved qweight,
 *    compressed-tensors weight_packed (== GPTQ's transposed), GPTQ v1 / v2 symmetric zero words,
 *    E2M1 ties-to-even examples, MXFP4 E8M0 scales (OCP floor and compressed-tensors' rule);
 *  - the readers on synthetic matrices of every layout: every value == the layout's formula, any
 *    row range, malformed parts refused with a message;
 *  - the group quantizers: codes in range, RTN scales as documented, the clip search never worse
 *    than RTN (its grid contains RTN's scale), importance weights respected;
 *  - GPTQ: dc_gptq_prepare's factor satisfies U^T U (H + damping) = I (also rank-deficient, with a
 *    dead column; all-zero and non-finite Hessians handled); with H = I GPTQ gives exactly the
 *    group quantizers' codes; on correlated inputs its output error ||X (w - q)|| is well below the
 *    clip search's for every layout;
 *  - the GPTQ Hessian accumulator against the imatrix collector on the oracle's forward pass: the
 *    diagonal over the token count equals the imatrix's mean squares for the attention input, the
 *    dense MLP and every routed expert; inputs shared by two matrices (q_a / kv_a, gate / up) are
 *    one Hessian counted once; symmetric with |h_ij| <= sqrt(h_ii h_jj);
 *  - llama.cpp GGUF imatrix reading and the Hugging Face -> GGUF name mapping;
 *  - round trips of the oracle V3 checkpoints (v3-bf16, v3-fp8) through every layout: opened with
 *    dc_ckpt_open, each quantized weight within its RTN error bound of the source, every other
 *    tensor unchanged; --to bf16 reproduces the rows; bytes identical for 1 and 2 threads. */
#include "dc_test.h"
#include "dc_int4_convert.h"
#include "dc_int4_x8.h"
#include "dc_quants.h"
#include "dc_gptq.h"
#include "dc_hessian.h"
#include "dc_imatrix.h"
#include "dc_ckpt.h"
#include "dc_float.h"
#include "dc_ggml.h"
#include "dc_gguf.h"
#include "dc_io.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <unistd.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}
static float frand(void) { return (float)((rnd() >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }
static float gauss(void)
{
    float s = 0;
    for (int i = 0; i < 6; i++)
        s += frand();
    return s * 0.7f;
}

/* ================================================================================================
 * test vectors
 * ================================================================================================ */

static uint32_t hexw(const cJSON *s) { return (uint32_t)strtoul(s->valuestring, NULL, 16); }

static void test_vectors(void)
{
    char *buf;
    size_t len;
    dc_err err = {0};
    CHECK_OK(dc_read_file(DC_TEST_DATA "/int4-vectors.json", &buf, &len, 1 << 20, &err), &err);
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    CHECK(j != NULL);
    if (!j)
        return;
    int K = cJSON_GetObjectItem(j, "K")->valueint, N = cJSON_GetObjectItem(j, "N")->valueint;
    CHECK(K == 8 && N == 16);
    uint8_t W[16][8]; /* W[n][k] = q[k][n]: torch's [out, in] */
    const cJSON *q = cJSON_GetObjectItem(j, "q_k_n");
    for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++)
            W[n][k] = (uint8_t)cJSON_GetArrayItem(cJSON_GetArrayItem(q, k), n)->valueint;
    /* GPTQ qweight [K/8, N] */
    uint32_t gq[16], aw[8][2], ct[16];
    dc_i4_pack_gptq(&W[0][0], N, K, gq);
    const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "gptq_qweight_r_n"), 0);
    int ok = 0;
    for (int n = 0; n < N; n++)
        ok += gq[n] == hexw(cJSON_GetArrayItem(g, n));
    CHECK_MSG(ok == N, "GPTQ qweight: %d of %d words match", ok, N);
    /* AWQ qweight [K, N/8] */
    dc_i4_pack_awq(&W[0][0], N, K, &aw[0][0]);
    const cJSON *a = cJSON_GetObjectItem(j, "awq_qweight_k_c");
    ok = 0;
    for (int k = 0; k < K; k++)
        for (int c = 0; c < 2; c++)
            ok += aw[k][c] == hexw(cJSON_GetArrayItem(cJSON_GetArrayItem(a, k), c));
    CHECK_MSG(ok == K * 2, "AWQ qweight: %d of %d words match", ok, K * 2);
    const cJSON *ord = cJSON_GetObjectItem(j, "awq_order");
    for (int i = 0; i < 8; i++) {
        CHECK(DC_AWQ_ORDER[i] == cJSON_GetArrayItem(ord, i)->valueint);
        CHECK(DC_AWQ_REVERSE[DC_AWQ_ORDER[i]] == i);
    }
    /* compressed-tensors weight_packed [N, K/8] == GPTQ's transposed (symmetric codes) */
    dc_i4_pack_ct(&W[0][0], N, K, ct);
    const cJSON *c = cJSON_GetObjectItem(j, "compressed_tensors_weight_packed_n_w");
    ok = 0;
    for (int n = 0; n < N; n++)
        ok += ct[n] == hexw(cJSON_GetArrayItem(cJSON_GetArrayItem(c, n), 0)) && ct[n] == gq[n];
    CHECK_MSG(ok == N, "compressed-tensors weight_packed: %d of %d words match (and equal GPTQ's)", ok, N);
    /* unpacking inverts packing */
    uint8_t u[8];
    for (int n = 0; n < N; n++) {
        dc_i4_unpack8(gq[n], u);
        CHECK(!memcmp(u, (uint8_t[8]){W[n][0], W[n][1], W[n][2], W[n][3], W[n][4], W[n][5], W[n][6], W[n][7]}, 8));
    }
    for (int k = 0; k < K; k++)
        for (int cw = 0; cw < 2; cw++) {
            dc_i4_unpack8_awq(aw[k][cw], u);
            int same = 0;
            for (int i = 0; i < 8; i++)
                same += u[i] == W[8 * cw + i][k];
            CHECK(same == 8);
        }
    /* symmetric zero points (8) as GPTQ stores them: v1 z - 1, v2 z */
    uint8_t z8[8] = {8, 8, 8, 8, 8, 8, 8, 8};
    uint32_t zw;
    dc_i4_pack_zeros_gptq(z8, 8, 1, 1, &zw);
    CHECK(zw == hexw(cJSON_GetObjectItem(j, "gptq_v1_sym_qzeros_word")));
    dc_i4_pack_zeros_gptq(z8, 8, 1, 0, &zw);
    CHECK(zw == hexw(cJSON_GetObjectItem(j, "gptq_v2_sym_qzeros_word")));
    dc_i4_pack_zeros_ct(z8, 8, 1, &zw);
    CHECK(zw == 0x88888888u);
    dc_i4_pack_zeros_awq(z8, 8, 1, &zw);
    CHECK(zw == 0x88888888u);
    /* E2M1 */
    const cJSON *ev = cJSON_GetObjectItem(j, "e2m1_values");
    for (int i = 0; i < 8; i++) {
        float v = (float)cJSON_GetArrayItem(ev, i)->valuedouble;
        CHECK(dc_e2m1_decode((uint8_t)i) == v && dc_e2m1_decode((uint8_t)(i | 8)) == -v);
        CHECK(dc_e2m1_encode(v) == i && (i == 0 || dc_e2m1_encode(-v) == (i | 8)));
    }
    const cJSON *ex, *ee = cJSON_GetObjectItem(j, "e2m1_round_half_even_examples");
    int n_ex = 0;
    cJSON_ArrayForEach(ex, ee) {
        float x = (float)cJSON_GetArrayItem(ex, 0)->valuedouble;
        int want = cJSON_GetArrayItem(ex, 1)->valueint;
        CHECK_MSG(dc_e2m1_encode(x) == want, "e2m1(%g) = %d, want %d", (double)x, dc_e2m1_encode(x), want);
        n_ex++;
    }
    CHECK(n_ex == 13);
    CHECK(dc_e2m1_encode(100.0f) == 7 && dc_e2m1_encode(-100.0f) == 15 && dc_e2m1_encode(NAN) == 0);
    /* MXFP4 E8M0 */
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "mxfp4_e8m0_examples_ocp_floor")) {
        float amax = strtof(e->string, NULL);
        CHECK_MSG(dc_e8m0_mx_floor(amax) == e->valueint, "floor e8m0(%g) = %d, want %d", (double)amax,
                  dc_e8m0_mx_floor(amax), e->valueint);
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "mxfp4_e8m0_examples_roundup")) {
        float amax = strtof(e->string, NULL);
        CHECK_MSG(dc_e8m0_mx_ct(amax) == e->valueint, "ct e8m0(%g) = %d, want %d", (double)amax, dc_e8m0_mx_ct(amax),
                  e->valueint);
    }
    CHECK(dc_e8m0_mx_floor(0) == 127 && dc_e8m0_mx_ct(0) == 127 && dc_e8m0_mx_floor(INFINITY) == 127);
    CHECK(dc_e8m0_mx_ct(6.5f) == 127 && dc_e8m0_mx_floor(1e-45f) == 0); /* ct rounds up from 1.75 * 2^e only */
    cJSON_Delete(j);
}

/* ================================================================================================
 * readers on synthetic matrices
 * ================================================================================================ */

typedef struct mt {
    dc_tensor qw, sc, zp, gi, gs;
    void *bq, *bs, *bz, *bg, *bgs;
} mt;

static void mt_free(mt *m)
{
    free(m->bq);
    free(m->bs);
    free(m->bz);
    free(m->bg);
    free(m->bgs);
}

static void set_t(dc_tensor *t, const char *name, dc_dtype dt, int64_t d0, int64_t d1, void *data, int ndim)
{
    memset(t, 0, sizeof *t);
    t->name = (char *)name;
    t->dtype = dt;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->data = data;
    t->nbytes = (uint64_t)(d0 * (ndim > 1 ? d1 : 1)) * (uint64_t)dc_dtype_size(dt);
}

/* Builds a random matrix of layout L [N, K] with group g; fills want[N*K] with the formula's values. */
static void build(mt *m, dc_i4_matrix *x, dc_i4_layout L, int64_t N, int64_t K, int64_t g, bool asym, float *want)
{
    memset(m, 0, sizeof *m);
    memset(x, 0, sizeof *x);
    int64_t G = (K + g - 1) / g;
    uint8_t *codes = malloc((size_t)(N * K)), *z = malloc((size_t)(N * G));
    float *s = malloc((size_t)(N * G) * sizeof *s);
    for (int64_t i = 0; i < N * K; i++)
        codes[i] = (uint8_t)(rnd() & 15);
    for (int64_t i = 0; i < N * G; i++) {
        z[i] = asym ? (uint8_t)(rnd() & 15) : 8;
        s[i] = L == DC_I4_CT ? dc_round_bf16(0.01f + fabsf(frand())) : dc_f16_to_f32(dc_f32_to_f16(0.01f + fabsf(frand())));
    }
    x->layout = L;
    x->N = N;
    x->K = K;
    x->group = g;
    x->file_name = "synthetic";
    float ws2 = 0.0123f;
    switch (L) {
    case DC_I4_CT: {
        int64_t Kw = (K + 7) / 8;
        m->bq = malloc((size_t)(N * Kw) * 4);
        dc_i4_pack_ct(codes, N, K, m->bq);
        uint16_t *h = malloc((size_t)(N * G) * 2);
        for (int64_t i = 0; i < N * G; i++)
            h[i] = dc_f32_to_bf16(s[i]);
        m->bs = h;
        set_t(&m->qw, "w.weight_packed", DC_DT_I32, N, Kw, m->bq, 2);
        set_t(&m->sc, "w.weight_scale", DC_DT_BF16, N, G, m->bs, 2);
        if (asym && N % 2) { /* older compressed-tensors: unpacked signed I8 [N, G] */
            int8_t *zi = malloc((size_t)(N * G));
            for (int64_t i = 0; i < N * G; i++)
                zi[i] = (int8_t)(z[i] - 8);
            m->bz = zi;
            set_t(&m->zp, "w.weight_zero_point", DC_DT_I8, N, G, m->bz, 2);
            x->zero = &m->zp;
        } else if (asym) {
            m->bz = malloc((size_t)((N + 7) / 8 * G) * 4);
            dc_i4_pack_zeros_ct(z, N, G, m->bz);
            set_t(&m->zp, "w.weight_zero_point", DC_DT_I32, (N + 7) / 8, G, m->bz, 2);
            x->zero = &m->zp;
        }
        break;
    }
    case DC_I4_GPTQ:
    case DC_I4_AWQ: {
        bool awq = L == DC_I4_AWQ;
        m->bq = malloc((size_t)(N * K) / 2);
        if (awq)
            dc_i4_pack_awq(codes, N, K, m->bq);
        else
            dc_i4_pack_gptq(codes, N, K, m->bq);
        /* the writers' packers work on row blocks; a whole matrix is one block */
        uint16_t *h = malloc((size_t)(N * G) * 2);
        for (int64_t gg = 0; gg < G; gg++)
            for (int64_t r = 0; r < N; r++)
                h[gg * N + r] = dc_f32_to_f16(s[r * G + gg]);
        m->bs = h;
        m->bz = malloc((size_t)(G * ((N + 7) / 8)) * 4);
        if (awq)
            dc_i4_pack_zeros_awq(z, N, G, m->bz);
        else
            dc_i4_pack_zeros_gptq(z, N, G, 1, m->bz);
        set_t(&m->qw, "w.qweight", DC_DT_I32, awq ? K : K / 8, awq ? N / 8 : N, m->bq, 2);
        set_t(&m->sc, "w.scales", DC_DT_F16, G, N, m->bs, 2);
        set_t(&m->zp, "w.qzeros", DC_DT_I32, G, (N + 7) / 8, m->bz, 2);
        x->zero = &m->zp;
        x->zero_add = awq ? 0 : 1;
        if (!awq) { /* v1 cannot hold a zero of 0 (stored -1 reads back as 16) */
            for (int64_t i = 0; i < N * G; i++)
                if (z[i] == 0)
                    z[i] = 16;
            int32_t *gi = malloc((size_t)K * 4);
            for (int64_t k = 0; k < K; k++)
                gi[k] = (int32_t)(k / g);
            m->bg = gi;
            set_t(&m->gi, "w.g_idx", DC_DT_I32, K, 0, gi, 1);
            x->gidx = &m->gi;
        }
        break;
    }
    case DC_I4_NVFP4:
    case DC_I4_MXFP4: {
        bool mx = L == DC_I4_MXFP4;
        m->bq = malloc((size_t)(N * K) / 2);
        dc_fp4_pack(codes, N, K, m->bq);
        uint8_t *b = malloc((size_t)(N * G));
        for (int64_t i = 0; i < N * G; i++)
            b[i] = mx ? (uint8_t)(110 + rnd() % 30) : (uint8_t)(1 + rnd() % 126);
        m->bs = b;
        set_t(&m->qw, "w.weight", DC_DT_U8, N, K / 2, m->bq, 2);
        set_t(&m->sc, "w.weight_scale", mx ? DC_DT_U8 : DC_DT_F8_E4M3, N, G, m->bs, 2);
        if (!mx) {
            m->bgs = malloc(4);
            memcpy(m->bgs, &ws2, 4);
            set_t(&m->gs, "w.weight_scale_2", DC_DT_F32, 1, 0, m->bgs, 0);
            m->gs.nbytes = 4;
            x->gscale = &m->gs;
        }
        for (int64_t r = 0; r < N; r++)
            for (int64_t k = 0; k < K; k++) {
                uint8_t sb = b[r * G + k / g];
                float v = dc_e2m1_decode(codes[r * K + k]);
                want[r * K + k] = mx ? ldexpf(v, (int)sb - 127) : (v * dc_e4m3_to_f32(sb)) * ws2;
            }
        break;
    }
    default:
        break;
    }
    x->qw = &m->qw;
    x->scale = &m->sc;
    if (L != DC_I4_NVFP4 && L != DC_I4_MXFP4)
        for (int64_t r = 0; r < N; r++)
            for (int64_t k = 0; k < K; k++) {
                int64_t gg = k / g;
                want[r * K + k] = (float)((int)codes[r * K + k] - (int)z[r * G + gg]) * s[r * G + gg];
            }
    free(codes);
    free(z);
    free(s);
}

static void test_readers(void)
{
    struct { dc_i4_layout L; int64_t N, K, g; bool asym; } C[] = {
        {DC_I4_CT, 24, 40, 16, false}, {DC_I4_CT, 21, 37, 8, true}, {DC_I4_CT, 64, 128, 32, true},
        {DC_I4_GPTQ, 16, 64, 32, false}, {DC_I4_GPTQ, 24, 40, 16, true}, {DC_I4_AWQ, 16, 64, 32, true},
        {DC_I4_AWQ, 32, 40, 16, false}, {DC_I4_NVFP4, 8, 48, 16, false}, {DC_I4_NVFP4, 5, 40, 16, false},
        {DC_I4_MXFP4, 8, 96, 32, false}, {DC_I4_MXFP4, 3, 40, 32, false},
    };
    dc_err err = {0};
    for (size_t c = 0; c < sizeof C / sizeof C[0]; c++) {
        mt m;
        dc_i4_matrix x;
        int64_t N = C[c].N, K = C[c].K;
        float *want = malloc((size_t)(N * K) * sizeof *want), *got = malloc((size_t)(N * K) * sizeof *got);
        build(&m, &x, C[c].L, N, K, C[c].g, C[c].asym, want);
        CHECK_OK(dc_i4_matrix_check(&x, &err), &err);
        CHECK_OK(dc_i4_matrix_rows(&x, 0, N, got, DC_DEQ_EXACT, &err), &err);
        int64_t bad = 0;
        for (int64_t i = 0; i < N * K; i++)
            bad += got[i] != want[i];
        CHECK_MSG(bad == 0, "%s N %lld K %lld g %lld: %lld of %lld values differ from the formula",
                  dc_i4_layout_name(C[c].L), (long long)N, (long long)K, (long long)C[c].g, (long long)bad,
                  (long long)(N * K));
        /* any row range gives the same rows; bf16 mode rounds them */
        for (int64_t r0 = 0; r0 < N; r0 += 3) {
            int64_t n = r0 + 5 <= N ? 5 : N - r0;
            CHECK_OK(dc_i4_matrix_rows(&x, r0, n, got, DC_DEQ_BF16_ROUND, &err), &err);
            int64_t diff = 0;
            for (int64_t i = 0; i < n * K; i++)
                diff += got[i] != dc_round_bf16(want[r0 * K + i]);
            CHECK(diff == 0);
        }
        CHECK(dc_i4_matrix_rows(&x, N - 1, 2, got, DC_DEQ_EXACT, &err) == DC_ERR_INTERNAL);
        /* malformed parts */
        dc_i4_matrix y = x;
        dc_tensor bad_sc = *x.scale;
        bad_sc.shape[1] += 1;
        y.scale = &bad_sc;
        dc_err e2 = {0};
        CHECK(dc_i4_matrix_check(&y, &e2) == DC_ERR_MODEL && strstr(e2.msg, "w.") && strstr(e2.msg, "needs"));
        y = x;
        dc_tensor bad_q = *x.qw;
        bad_q.dtype = bad_q.dtype == DC_DT_U8 ? DC_DT_I8 : DC_DT_F32;
        y.qw = &bad_q;
        CHECK(dc_i4_matrix_check(&y, &e2) == DC_ERR_MODEL && strstr(e2.msg, "dtype"));
        if (x.gidx) { /* a g_idx value out of range */
            int32_t *gi = m.bg, keep = gi[3];
            gi[3] = 999;
            CHECK(dc_i4_matrix_check(&x, &e2) == DC_ERR_MODEL && strstr(e2.msg, "g_idx"));
            gi[3] = keep;
        }
        if (C[c].L == DC_I4_MXFP4) { /* E8M0 0xff is NaN */
            ((uint8_t *)m.bs)[1] = 0xff;
            CHECK(dc_i4_matrix_rows(&x, 0, 1, got, DC_DEQ_EXACT, &e2) == DC_ERR_MODEL && strstr(e2.msg, "0xff"));
        }
        if (C[c].L == DC_I4_NVFP4) {
            float zero = 0;
            memcpy(m.bgs, &zero, 4);
            CHECK(dc_i4_matrix_check(&x, &e2) == DC_ERR_MODEL && strstr(e2.msg, "global scale"));
        }
        mt_free(&m);
        free(want);
        free(got);
    }
}

/* ================================================================================================
 * quantizers
 * ================================================================================================ */

static double int_werr(const float *x, const float *w, int n, const uint8_t *q, float s, int z)
{
    double e = 0;
    for (int i = 0; i < n; i++) {
        double d = (double)x[i] - (double)((float)(q[i] - z) * s);
        e += (w ? w[i] : 1.0) * d * d;
    }
    return e;
}

static double fp4_werr(const float *x, const float *w, int n, const uint8_t *q, bool mx, uint8_t sc, float ws2)
{
    double e = 0;
    for (int i = 0; i < n; i++) {
        float v = mx ? ldexpf(dc_e2m1_decode(q[i]), sc - 127) : (dc_e2m1_decode(q[i]) * dc_e4m3_to_f32(sc)) * ws2;
        double d = (double)x[i] - (double)v;
        e += (w ? w[i] : 1.0) * d * d;
    }
    return e;
}

static void test_quantizers(void)
{
    float x[128], w[128];
    uint8_t q[128], q2[128], z, z2;
    float s, s2;
    int worse = 0, better = 0, n_cases = 0;
    for (int t = 0; t < 400; t++) {
        int n = 1 + (int)(rnd() % 128);
        float mag = ldexpf(1.0f, (int)(rnd() % 20) - 14);
        for (int i = 0; i < n; i++) {
            x[i] = gauss() * mag;
            w[i] = 0.01f + fabsf(frand()) * (i % 7 == 0 ? 50.0f : 1.0f);
        }
        if (t % 17 == 0)
            x[rnd() % n] *= 8; /* an outlier */
        const float *imp = t % 2 ? w : NULL;
        for (int sym = 0; sym < 2; sym++) {
            dc_dtype sdt = t % 3 == 0 ? DC_DT_F16 : DC_DT_BF16;
            dc_i4_quant_int(x, imp, n, sym, false, sdt, q, &s, &z);
            dc_i4_quant_int(x, imp, n, sym, true, sdt, q2, &s2, &z2);
            bool range = true;
            for (int i = 0; i < n; i++)
                range &= q[i] < 16 && q2[i] < 16;
            CHECK(range && (!sym || (z == 8 && z2 == 8)) && z < 16 && z2 < 16);
            CHECK(s == (sdt == DC_DT_F16 ? dc_f16_to_f32(dc_f32_to_f16(s)) : dc_round_bf16(s)));
            double e1 = int_werr(x, imp, n, q, s, z), e2 = int_werr(x, imp, n, q2, s2, z2);
            worse += e2 > e1;
            better += e2 < e1;
            n_cases++;
            if (sym) { /* RTN: bf16/f16(amax / 7.5) */
                float amax = 0;
                for (int i = 0; i < n; i++)
                    amax = fmaxf(amax, fabsf(x[i]));
                float want = sdt == DC_DT_F16 ? dc_f16_to_f32(dc_f32_to_f16((float)(amax / 7.5))) : dc_round_bf16((float)(amax / 7.5));
                CHECK_MSG(s == want || !(want > 0), "RTN scale %g, want %g", (double)s, (double)want);
            }
        }
        float ws2 = dc_i4_nvfp4_global(mag * 3);
        int nb = n < 16 ? n : 16;
        uint8_t c1 = dc_i4_quant_nvfp4(x, imp, nb, ws2, false, q), c2 = dc_i4_quant_nvfp4(x, imp, nb, ws2, true, q2);
        float bam = 0;
        for (int i = 0; i < nb; i++)
            bam = fmaxf(bam, fabsf(x[i]));
        uint8_t want = dc_f32_to_e4m3(bam / (6.0f * ws2));
        CHECK(c1 == (want ? want : 1) && c1 < 0x7f && c2 < 0x7f && c2 > 0);
        worse += fp4_werr(x, imp, nb, q2, false, c2, ws2) > fp4_werr(x, imp, nb, q, false, c1, ws2);
        int nm = n < 32 ? n : 32;
        float mam = 0;
        for (int i = 0; i < nm; i++)
            mam = fmaxf(mam, fabsf(x[i]));
        uint8_t e1 = dc_i4_quant_mxfp4(x, imp, nm, false, q), e2 = dc_i4_quant_mxfp4(x, imp, nm, true, q2);
        CHECK(e1 == dc_e8m0_mx_ct(mam));
        worse += fp4_werr(x, imp, nm, q2, true, e2, 0) > fp4_werr(x, imp, nm, q, true, e1, 0);
    }
    CHECK_MSG(worse == 0, "the clip search was worse than RTN in %d cases", worse);
    CHECK_MSG(better > n_cases / 4, "the clip search improved only %d of %d int4 groups", better, n_cases);
    /* all-zero groups */
    memset(x, 0, sizeof x);
    dc_i4_quant_int(x, NULL, 32, true, true, DC_DT_BF16, q, &s, &z);
    CHECK(s == 1.0f && z == 8 && q[0] == 8 && q[31] == 8);
    dc_i4_quant_int(x, NULL, 32, false, true, DC_DT_F16, q, &s, &z);
    CHECK(s == 1.0f && z == 8 && q[5] == 8);
    CHECK(dc_i4_quant_nvfp4(x, NULL, 16, 1.0f, true, q) == dc_f32_to_e4m3(1.0f) && q[3] == 0);
    CHECK(dc_i4_quant_mxfp4(x, NULL, 32, true, q) == 127 && q[3] == 0);
    /* importance: a heavily weighted column is reproduced at least as well as without weights */
    for (int i = 0; i < 64; i++)
        x[i] = gauss();
    x[5] = 0.83f;
    for (int i = 0; i < 64; i++)
        w[i] = i == 5 ? 1e6f : 1.0f;
    dc_i4_quant_int(x, NULL, 64, true, true, DC_DT_F32, q, &s, &z);
    dc_i4_quant_int(x, w, 64, true, true, DC_DT_F32, q2, &s2, &z2);
    CHECK(fabsf(x[5] - (float)(q2[5] - z2) * s2) <= fabsf(x[5] - (float)(q[5] - z) * s));
    CHECK(dc_i4_nvfp4_global(2688.0f) == 1.0f && dc_i4_nvfp4_global(0) == 1.0f);
}

/* The AVX2 error sums (convert/dc_int4_x8.h) against the scalar references: the same double (bit
 * for bit) and the same codes, for every group length 1..136 (partial chunks), with and without an
 * importance, on values that sit on rounding ties, E2M1 thresholds, -0, saturation, subnormal
 * results and NaN (a zero divisor); then whole group quantizers with the fast paths on and off. */
static void test_simd(void)
{
    if (!dc_quants_simd(1)) {
        printf("test_simd: no AVX2 on this CPU, skipped\n");
        dc_quants_simd(-1);
        return;
    }
    static const float fp4_edges[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f, 7.0f, 0.5f, 3.0f};
    float x[136], w[136];
    uint8_t q1[136], q2[136];
    int bad = 0, cases = 0, early = 0;
    for (int t = 0; t < 3000; t++) {
        const int n = 1 + t % 136;
        const float s = ldexpf(1.0f + (float)(rnd() % 64) / 64.0f, (int)(rnd() % 30) - 20);
        const int z = (int)(rnd() % 16);
        for (int i = 0; i < n; i++) {
            switch (rnd() % 6) {
            case 0: x[i] = ((float)((int)(rnd() % 24) - 12) + 0.5f) * s; break;  /* int ties */
            case 1: x[i] = fp4_edges[rnd() % 11] * s * (rnd() % 2 ? -1.0f : 1.0f); break;
            case 2: x[i] = rnd() % 2 ? -0.0f : 0.0f; break;
            default: x[i] = gauss() * s * 6.0f; /* some saturate */
            }
            w[i] = t % 3 == 0 ? 0.0f : 0.01f + fabsf(frand()) * 10.0f;
        }
        const float *imp = t % 2 ? w : NULL;
        const int e = t % 97 == 0 ? 0 : t % 89 == 0 ? 254 : 100 + (int)(rnd() % 50);
        const float up = ldexpf(1.0f, 127 - e), down = ldexpf(1.0f, e - 127);
        const float div = t % 211 == 0 ? 0.0f : s; /* 0: x / 0 is NaN or inf */
        double a, b;
        a = dc_i4_int_err_ref(x, imp, n, s, z, INFINITY, q1);
        b = dc_i4x8_int_err(x, imp, n, s, z, INFINITY, q2);
        bad += memcmp(&a, &b, sizeof a) != 0 || memcmp(q1, q2, (size_t)n) != 0;
        a = dc_i4_fp4_err_ref(x, imp, n, div, s, 0.75f, INFINITY, q1);
        b = dc_i4x8_fp4_err(x, imp, n, div, s, 0.75f, INFINITY, q2);
        bad += memcmp(&a, &b, sizeof a) != 0 || memcmp(q1, q2, (size_t)n) != 0;
        a = dc_i4_mx_err_ref(x, imp, n, up, down, INFINITY, q1);
        b = dc_i4x8_mx_err(x, imp, n, up, down, INFINITY, q2);
        bad += memcmp(&a, &b, sizeof a) != 0 || memcmp(q1, q2, (size_t)n) != 0;
        /* without codes, with a bound (the early exit): the same value from both, and the same
         * decision "below the bound" as the whole sum */
        const double full = dc_i4_int_err_ref(x, imp, n, s, z, INFINITY, NULL);
        const double bound = full * (double)(rnd() % 5) / 3.0; /* 0, 1/3, 2/3, 1, 4/3 of it */
        a = dc_i4_int_err_ref(x, imp, n, s, z, bound, NULL);
        b = dc_i4x8_int_err(x, imp, n, s, z, bound, NULL);
        bad += memcmp(&a, &b, sizeof a) != 0 || (a < bound) != (full < bound) || a > full;
        early += a < full;
        const double ffull = dc_i4_fp4_err_ref(x, imp, n, div, s, 0.75f, INFINITY, NULL), fb = ffull * 0.5;
        a = dc_i4_fp4_err_ref(x, imp, n, div, s, 0.75f, fb, NULL);
        b = dc_i4x8_fp4_err(x, imp, n, div, s, 0.75f, fb, NULL);
        bad += memcmp(&a, &b, sizeof a) != 0 || (a < fb) != (ffull < fb);
        const double mfull = dc_i4_mx_err_ref(x, imp, n, up, down, INFINITY, NULL), mb = mfull * 0.5;
        a = dc_i4_mx_err_ref(x, imp, n, up, down, mb, NULL);
        b = dc_i4x8_mx_err(x, imp, n, up, down, mb, NULL);
        bad += memcmp(&a, &b, sizeof a) != 0 || (a < mb) != (mfull < mb);
        cases += 6;
    }
    CHECK_MSG(bad == 0, "%d of %d AVX2 error sums differ from the references", bad, cases);
    CHECK_MSG(early > 100, "the early exit was taken %d times", early);
    /* whole quantizers, fast paths on and off: the same scales, zeros and codes */
    int diff = 0;
    for (int t = 0; t < 300; t++) {
        const int n = 1 + (int)(rnd() % 128);
        for (int i = 0; i < n; i++) {
            x[i] = gauss() * 0.02f;
            w[i] = 0.1f + fabsf(frand());
        }
        const float *imp = t % 2 ? w : NULL;
        for (int sym = 0; sym < 2; sym++) {
            float sa, sb;
            uint8_t za, zb;
            dc_quants_simd(0);
            dc_i4_quant_int(x, imp, n, sym, true, DC_DT_BF16, q1, &sa, &za);
            dc_quants_simd(1);
            dc_i4_quant_int(x, imp, n, sym, true, DC_DT_BF16, q2, &sb, &zb);
            diff += sa != sb || za != zb || memcmp(q1, q2, (size_t)n) != 0;
        }
        const int nb = n < 16 ? n : 16, nm = n < 32 ? n : 32;
        dc_quants_simd(0);
        uint8_t ca = dc_i4_quant_nvfp4(x, imp, nb, 1e-5f, true, q1);
        dc_quants_simd(1);
        uint8_t cb = dc_i4_quant_nvfp4(x, imp, nb, 1e-5f, true, q2);
        diff += ca != cb || memcmp(q1, q2, (size_t)nb) != 0;
        dc_quants_simd(0);
        ca = dc_i4_quant_mxfp4(x, imp, nm, true, q1);
        dc_quants_simd(1);
        cb = dc_i4_quant_mxfp4(x, imp, nm, true, q2);
        diff += ca != cb || memcmp(q1, q2, (size_t)nm) != 0;
    }
    CHECK_MSG(diff == 0, "%d group quantizations differ between the fast paths and the scalar code", diff);
    dc_quants_simd(-1);
}

/* ================================================================================================
 * imatrix
 * ================================================================================================ */

static void test_imatrix(void)
{
    const char *dir = dc_test_tmpdir("int4_imatrix");
    char path[4200];
    snprintf(path, sizeof path, "%s/im.gguf", dir);
    dc_ggufw *w = dc_ggufw_new();
    dc_err err = {0};
    CHECK_OK(dc_ggufw_kv_str(w, "general.type", "imatrix", 7, &err), &err);
    size_t idx[8];
    int64_t ne_e[2] = {8, 3}, ne_ec[2] = {1, 3}, ne_d[2] = {4, 1}, ne_dc[2] = {1, 1}, ne_v[2] = {4, 2}, ne_vc[2] = {1, 2};
    CHECK_OK(dc_ggufw_add(w, "blk.1.ffn_gate_exps.weight.in_sum2", DC_GGML_F32, 2, ne_e, &idx[0], &err), &err);
    CHECK_OK(dc_ggufw_add(w, "blk.1.ffn_gate_exps.weight.counts", DC_GGML_F32, 2, ne_ec, &idx[1], &err), &err);
    CHECK_OK(dc_ggufw_add(w, "blk.0.ffn_down.weight.in_sum2", DC_GGML_F32, 2, ne_d, &idx[2], &err), &err);
    CHECK_OK(dc_ggufw_add(w, "blk.0.ffn_down.weight.counts", DC_GGML_F32, 2, ne_dc, &idx[3], &err), &err);
    CHECK_OK(dc_ggufw_add(w, "blk.0.attn_v_b.weight.in_sum2", DC_GGML_F32, 2, ne_v, &idx[4], &err), &err);
    CHECK_OK(dc_ggufw_add(w, "blk.0.attn_v_b.weight.counts", DC_GGML_F32, 2, ne_vc, &idx[5], &err), &err);
    int64_t ne_f[1] = {8}, ne_fc[1] = {1}; /* llama.cpp's current layout of a 3-D weight: one row, one count */
    CHECK_OK(dc_ggufw_add(w, "blk.1.attn_v_b.weight.in_sum2", DC_GGML_F32, 1, ne_f, &idx[6], &err), &err);
    CHECK_OK(dc_ggufw_add(w, "blk.1.attn_v_b.weight.counts", DC_GGML_F32, 1, ne_fc, &idx[7], &err), &err);
    CHECK_OK(dc_ggufw_plan(w, 0, &err), &err);
    CHECK_OK(dc_ggufw_open(w, path, true, &err), &err);
    float e[24], ec[3] = {2, 0, 4}, d[4] = {1, 2, 3, 4}, dcnt[1] = {2}, v[8] = {1, 1, 1, 1, 3, 3, 3, 3}, vc[2] = {1, 1};
    for (int i = 0; i < 24; i++)
        e[i] = (float)i;
    CHECK_OK(dc_ggufw_write(w, idx[0], 0, e, sizeof e, &err), &err);
    CHECK_OK(dc_ggufw_write(w, idx[1], 0, ec, sizeof ec, &err), &err);
    CHECK_OK(dc_ggufw_write(w, idx[2], 0, d, sizeof d, &err), &err);
    CHECK_OK(dc_ggufw_write(w, idx[3], 0, dcnt, sizeof dcnt, &err), &err);
    CHECK_OK(dc_ggufw_write(w, idx[4], 0, v, sizeof v, &err), &err);
    CHECK_OK(dc_ggufw_write(w, idx[5], 0, vc, sizeof vc, &err), &err);
    float fl[8] = {2, 2, 2, 2, 6, 6, 6, 10}, fc[1] = {2};
    CHECK_OK(dc_ggufw_write(w, idx[6], 0, fl, sizeof fl, &err), &err);
    CHECK_OK(dc_ggufw_write(w, idx[7], 0, fc, sizeof fc, &err), &err);
    CHECK_OK(dc_ggufw_finish(w, &err), &err);
    dc_ggufw_free(w);
    dc_i4_imatrix *im = NULL;
    CHECK_OK(dc_i4_imatrix_load(path, &im, &err), &err);
    CHECK(dc_i4_imatrix_count(im) == 4);
    float *out = NULL;
    CHECK_OK(dc_i4_imatrix_get(im, "model.layers.1.mlp.experts.2.gate_proj.weight", 8, &out, &err), &err);
    CHECK(out && out[0] == 16.0f / 4 && out[7] == 23.0f / 4);
    free(out);
    CHECK_OK(dc_i4_imatrix_get(im, "model.layers.1.mlp.experts.1.gate_proj.weight", 8, &out, &err), &err);
    CHECK(out && out[0] == 1.0f && out[7] == 1.0f); /* an expert never routed to: count 0 -> 1 */
    free(out);
    CHECK_OK(dc_i4_imatrix_get(im, "model.layers.0.mlp.down_proj.weight", 4, &out, &err), &err);
    CHECK(out && out[0] == 0.5f && out[3] == 2.0f);
    free(out);
    CHECK_OK(dc_i4_imatrix_get(im, "model.layers.0.self_attn.kv_b_proj.weight", 4, &out, &err), &err);
    CHECK(out && out[0] == 2.0f); /* mean over attn_v_b's heads */
    free(out);
    CHECK_OK(dc_i4_imatrix_get(im, "model.layers.1.self_attn.kv_b_proj.weight", 4, &out, &err), &err);
    CHECK(out && out[0] == 2.0f && out[3] == 3.0f); /* ((2 + 6) / 2, (2 + 10) / 2) / count 2 */
    free(out);
    CHECK(dc_i4_imatrix_get(im, "model.layers.1.self_attn.kv_b_proj.weight", 3, &out, &err) == DC_ERR_MODEL);
    CHECK_OK(dc_i4_imatrix_get(im, "model.layers.1.mlp.experts.2.up_proj.weight", 8, &out, &err), &err);
    CHECK(out == NULL);
    CHECK(dc_i4_imatrix_get(im, "model.layers.0.mlp.down_proj.weight", 5, &out, &err) == DC_ERR_MODEL &&
          strstr(err.msg, "blk.0.ffn_down.weight"));
    CHECK(dc_i4_imatrix_get(im, "model.layers.1.mlp.experts.3.gate_proj.weight", 8, &out, &err) == DC_ERR_MODEL);
    dc_i4_imatrix_free(im);
    snprintf(path, sizeof path, "%s/missing.gguf", dir);
    CHECK(dc_i4_imatrix_load(path, &im, &err) != DC_OK && im == NULL);
}

/* ================================================================================================
 * oracle round trips
 * ================================================================================================ */

static bool read_all(const dc_ckpt *ck, const char *name, int mode, float **out, int64_t *rows, int64_t *cols)
{
    dc_weight w;
    dc_err err = {0};
    *out = NULL;
    if (dc_ckpt_weight(ck, name, &w, &err) != DC_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return false;
    }
    *rows = w.rows;
    *cols = w.cols;
    *out = malloc((size_t)(w.rows * w.cols) * sizeof **out + 4);
    if (dc_weight_rows(&w, 0, w.rows, *out, mode, &err) != DC_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return false;
    }
    return true;
}

static bool same_files(const char *a, const char *b)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "diff -r '%s' '%s' >/dev/null", a, b);
    return system(cmd) == 0;
}

static void test_oracle(void)
{
    const char *V[] = {"v3-bf16", "v3-fp8"};
    struct { dc_i4_layout L; int sym, group; dc_i4_scope scope; } C[] = {
        {DC_I4_CT, 1, 32, DC_I4_SCOPE_ALL}, {DC_I4_CT, 0, 64, DC_I4_SCOPE_MLP}, {DC_I4_GPTQ, 1, 32, DC_I4_SCOPE_MLP},
        {DC_I4_AWQ, 0, 32, DC_I4_SCOPE_EXPERTS}, {DC_I4_NVFP4, 1, 0, DC_I4_SCOPE_ALL}, {DC_I4_MXFP4, 1, 0, DC_I4_SCOPE_MLP},
    };
    for (size_t vi = 0; vi < 2; vi++) {
        char in[4200];
        snprintf(in, sizeof in, "%s/models/%s", DC_ORACLE, V[vi]);
        dc_err err = {0};
        dc_ckpt *src = NULL;
        CHECK_OK(dc_ckpt_open(in, &src, &err), &err);
        if (!src)
            return;
        for (size_t ci = 0; ci < sizeof C / sizeof C[0]; ci++) {
            char tmp[64], out[4300], back[4300];
            snprintf(tmp, sizeof tmp, "int4_%s_%zu", V[vi], ci);
            const char *dir = dc_test_tmpdir(tmp);
            snprintf(out, sizeof out, "%s/q", dir);
            snprintf(back, sizeof back, "%s/bf16", dir);
            dc_int4_opts o;
            dc_int4_opts_init(&o);
            o.layout = C[ci].L;
            o.sym = C[ci].sym;
            o.group = C[ci].group;
            o.scope = C[ci].scope;
            o.clip = false; /* RTN: the error bounds below */
            dc_int4_stats st;
            CHECK_OK(dc_int4_convert(in, out, &o, NULL, &st, &err), &err);
            dc_ckpt *q = NULL;
            CHECK_OK(dc_ckpt_open(out, &q, &err), &err);
            if (!q)
                continue;
            CHECK(q->int4 != NULL && q->file_tensors != NULL && q->has_config);
            dc_check chk;
            CHECK_OK(dc_ckpt_check(q, &chk, &err), &err);
            CHECK_MSG(chk.n_missing == 0 && chk.n_unexpected == 0 && chk.n_mismatched == 0,
                      "%s %s: %zu missing, %zu unexpected, %zu mismatched (%s)", V[vi], dc_i4_layout_name(C[ci].L),
                      chk.n_missing, chk.n_unexpected, chk.n_mismatched,
                      chk.n_unexpected ? chk.unexpected[0].name : chk.n_mismatched ? chk.mismatched[0].detail : "");
            dc_check_free(&chk);
            size_t n_q = 0, bad_bound = 0, bad_same = 0;
            double worst = 0;
            for (size_t i = 0; i < src->n_tensors; i++) {
                const dc_tensor *t = src->tensors[i];
                if (dc_str_ends_with(t->name, "_scale_inv"))
                    continue;
                const dc_tensor *u = dc_ckpt_find(q, t->name);
                CHECK_MSG(u && u->ndim == t->ndim && u->shape[0] == t->shape[0], "%s missing or reshaped", t->name);
                if (!u)
                    continue;
                float *a = NULL, *b = NULL;
                int64_t r, c, r2, c2;
                if (!read_all(src, t->name, DC_DEQ_BF16_ROUND, &a, &r, &c) || !read_all(q, t->name, DC_DEQ_EXACT, &b, &r2, &c2) ||
                    r != r2 || c != c2) {
                    CHECK_MSG(0, "%s: cannot read", t->name);
                    free(a);
                    free(b);
                    continue;
                }
                const dc_i4_matrix *m = dc_int4_ckpt_matrix(q, u);
                if (!m) { /* copied, kept FP8 or dequantized: the same values */
                    size_t diff = 0;
                    for (int64_t k = 0; k < r * c; k++)
                        diff += b[k] != a[k] && dc_round_bf16(b[k]) != a[k];
                    bad_same += diff != 0;
                    if (diff)
                        fprintf(stderr, "%s: %zu values changed\n", t->name, diff);
                } else {
                    n_q++;
                    int64_t g = m->group;
                    for (int64_t row = 0; row < r; row++)
                        for (int64_t k0 = 0; k0 < c; k0 += g) {
                            int64_t kn = c - k0 < g ? c - k0 : g;
                            float mn = 0, mx = 0;
                            for (int64_t k = 0; k < kn; k++) {
                                mn = fminf(mn, a[row * c + k0 + k]);
                                mx = fmaxf(mx, a[row * c + k0 + k]);
                            }
                            float amax = fmaxf(-mn, mx);
                            double bound = m->layout == DC_I4_MXFP4 ? amax / 3.4
                                           : m->layout == DC_I4_NVFP4 ? amax / 5.4 + 6 * m->global * ldexp(1, -9)
                                           : m->zero && C[ci].sym == 0 ? 1.05 * (mx - mn) / 15 : 0.53 * amax / 7.5;
                            bound += 1e-6;
                            for (int64_t k = 0; k < kn; k++) {
                                double e = fabs((double)a[row * c + k0 + k] - (double)b[row * c + k0 + k]);
                                if (e > bound) {
                                    if (!bad_bound)
                                        fprintf(stderr, "%s [%lld][%lld]: %g vs %g, error %g > bound %g\n", t->name,
                                                (long long)row, (long long)(k0 + k), (double)a[row * c + k0 + k],
                                                (double)b[row * c + k0 + k], e, bound);
                                    bad_bound++;
                                }
                                if (amax > 0 && e / amax > worst)
                                    worst = e / amax;
                            }
                        }
                }
                free(a);
                free(b);
            }
            CHECK_MSG(n_q == st.n_quantized && n_q > 0, "%zu quantized weights read, %zu written", n_q, st.n_quantized);
            CHECK_MSG(bad_bound == 0, "%s %s: %zu values beyond their RTN error bound", V[vi],
                      dc_i4_layout_name(C[ci].L), bad_bound);
            CHECK_MSG(bad_same == 0, "%s %s: %zu unquantized tensors changed", V[vi], dc_i4_layout_name(C[ci].L), bad_same);
            /* back to bf16: the 4-bit values exactly (rounded to bf16) */
            dc_int4_opts ob;
            dc_int4_opts_init(&ob);
            ob.layout = DC_I4_NONE;
            ob.float_dtype = DC_DT_BF16;
            dc_int4_stats sb;
            CHECK_OK(dc_int4_convert(out, back, &ob, NULL, &sb, &err), &err);
            dc_ckpt *bk = NULL;
            CHECK_OK(dc_ckpt_open(back, &bk, &err), &err);
            if (bk) {
                CHECK(bk->int4 == NULL && !bk->cfg.quant_fp8);
                size_t diff = 0;
                for (size_t i = 0; i < q->n_tensors; i++) {
                    const dc_tensor *t = q->tensors[i];
                    if (dc_str_ends_with(t->name, "_scale_inv"))
                        continue;
                    float *a = NULL, *b = NULL;
                    int64_t r, c, r2, c2;
                    if (read_all(q, t->name, DC_DEQ_BF16_ROUND, &a, &r, &c) && read_all(bk, t->name, DC_DEQ_EXACT, &b, &r2, &c2))
                        for (int64_t k = 0; k < r * c; k++)
                            diff += a[k] != b[k];
                    else
                        diff++;
                    free(a);
                    free(b);
                }
                CHECK_MSG(diff == 0, "%s %s -> bf16: %zu values differ", V[vi], dc_i4_layout_name(C[ci].L), diff);
                dc_ckpt_close(bk);
            }
            dc_ckpt_close(q);
            /* the thread count does not change a byte (strided GPTQ / AWQ writes, NVFP4's two passes) */
            if (vi == 0 && (C[ci].L == DC_I4_GPTQ || C[ci].L == DC_I4_AWQ || C[ci].L == DC_I4_NVFP4 || ci == 0)) {
                char one[4300];
                snprintf(one, sizeof one, "%s/q1", dir);
                int nt = omp_get_max_threads();
                omp_set_num_threads(1);
                o.clip = false;
                CHECK_OK(dc_int4_convert(in, one, &o, NULL, &st, &err), &err);
                omp_set_num_threads(nt);
                CHECK_MSG(same_files(out, one), "%s %s: 1 and %d threads give different bytes", V[vi],
                          dc_i4_layout_name(C[ci].L), nt);
            }
        }
        dc_ckpt_close(src);
    }
}


/* ================================================================================================
 * GPTQ
 * ================================================================================================ */

/* max |(U^T U)(H + d * mean(diag) * I) - I| with dead diagonal entries set to the mean, as documented */
static double gptq_resid(const double *H, const double *U, int64_t K, double d)
{
    double mean = 0, worst = 0;
    for (int64_t i = 0; i < K; i++)
        mean += H[i * K + i];
    mean /= (double)K;
    double *M = calloc((size_t)(K * K), sizeof *M);
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < K; j++) {
            double v = 0;
            for (int64_t k = 0; k <= (i < j ? i : j); k++)
                v += U[k * K + i] * U[k * K + j];
            M[i * K + j] = v;
        }
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < K; j++) {
            double v = 0;
            for (int64_t k = 0; k < K; k++) {
                double h = H[k * K + j];
                if (k == j)
                    h = (h == 0 ? mean : h) + d * mean;
                v += M[i * K + k] * h;
            }
            double r = fabs(v - (i == j ? 1.0 : 0.0));
            worst = r > worst ? r : worst;
        }
    free(M);
    return worst;
}

/* X [n][K]: correlated columns (a shared low-rank part), column scales varying 0.2..2 */
static void gptq_inputs(float *X, int64_t n, int64_t K)
{
    float f[4];
    for (int64_t t = 0; t < n; t++) {
        for (int i = 0; i < 4; i++)
            f[i] = gauss();
        for (int64_t k = 0; k < K; k++)
            X[t * K + k] = (0.5f * gauss() + f[k % 4] * 0.8f + f[(k * 7) % 4] * 0.3f) * (0.2f + 1.8f * (float)(k % 9) / 8.0f);
    }
}

static void test_gptq(void)
{
    dc_err err = {0};
    enum { K = 96, NX = 400, NR = 24 };
    float *X = malloc(sizeof(float) * NX * K);
    double *H = calloc(K * K, sizeof *H), *U = NULL, used;
    gptq_inputs(X, NX, K);
    for (int t = 0; t < NX; t++)
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++)
                H[i * K + j] += (double)X[t * K + i] * X[t * K + j];
    CHECK(dc_gptq_prepare(H, K, 0.01, "h", &U, &used, &err) == DC_OK && U && used == 0.01);
    double r = gptq_resid(H, U, K, 0.01);
    CHECK_MSG(r < 1e-9, "U^T U H != I: %g", r);
    bool upper = true;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < i; j++)
            upper &= U[i * K + j] == 0;
    CHECK(upper);
    free(U);
    /* rank-deficient (10 tokens) with a dead column: the dampening makes it definite */
    double *H2 = calloc(K * K, sizeof *H2);
    for (int t = 0; t < 10; t++)
        for (int i = 1; i < K; i++)
            for (int j = 1; j < K; j++)
                H2[i * K + j] += (double)X[t * K + i] * X[t * K + j];
    CHECK(dc_gptq_prepare(H2, K, 0.01, "h2", &U, &used, &err) == DC_OK && U);
    r = gptq_resid(H2, U, K, used);
    CHECK_MSG(r < 1e-7, "rank-deficient: U^T U H != I: %g", r);
    free(U);
    memset(H2, 0, sizeof(double) * K * K);
    CHECK(dc_gptq_prepare(H2, K, 0.01, "h0", &U, &used, &err) == DC_OK && !U);
    H2[5 * K + 5] = NAN;
    CHECK(dc_gptq_prepare(H2, K, 0.01, "blk.nan", &U, &used, &err) == DC_ERR_INPUT && !U && strstr(err.msg, "blk.nan"));
    H2[5 * K + 5] = -1; /* negative mean: nothing to weight */
    CHECK(dc_gptq_prepare(H2, K, 0.01, "h", &U, &used, &err) == DC_OK && !U);
    free(H2);
    CHECK(dc_gptq_prepare(H, K, 0.01, "h", &U, &used, &err) == DC_OK);

    /* identity: no compensation, the group quantizers' codes */
    double *I = calloc(K * K, sizeof *I);
    for (int i = 0; i < K; i++)
        I[i * K + i] = 1;
    double *w = malloc(K * sizeof *w);
    float W[NR][K], cur[32], s1[K / 16], s2[K / 16]; /* groups: K / 16 at most (NVFP4) */
    uint8_t q1[K], q2[K], z1[K / 16], z2[K / 16];
    for (int n = 0; n < NR; n++)
        for (int k = 0; k < K; k++)
            W[n][k] = gauss() * 0.05f;
    const dc_i4_layout LS[4] = {DC_I4_CT, DC_I4_AWQ, DC_I4_NVFP4, DC_I4_MXFP4};
    int same = 0;
    for (int n = 0; n < 4; n++) {
        dc_i4_layout L = LS[n];
        int g = L == DC_I4_NVFP4 ? 16 : 32, G = K / g;
        bool sym = L != DC_I4_AWQ;
        float ws2 = dc_i4_nvfp4_global(0.3f);
        dc_i4_gptq_row(L, W[n], K, g, NULL, I, sym, true, DC_DT_BF16, ws2, w, cur, q1, s1, z1);
        bool eq = true;
        for (int gi = 0; gi < G; gi++) {
            uint8_t sc;
            if (L == DC_I4_NVFP4)
                eq &= (sc = dc_i4_quant_nvfp4(W[n] + gi * g, NULL, g, ws2, true, q2 + gi * g)) == z1[gi];
            else if (L == DC_I4_MXFP4)
                eq &= (sc = dc_i4_quant_mxfp4(W[n] + gi * g, NULL, g, true, q2 + gi * g)) == z1[gi];
            else {
                dc_i4_quant_int(W[n] + gi * g, NULL, g, sym, true, DC_DT_BF16, q2 + gi * g, &s2[gi], &z2[gi]);
                eq &= s2[gi] == s1[gi] && z2[gi] == z1[gi];
            }
        }
        same += eq && !memcmp(q1, q2, K);
    }
    CHECK_MSG(same == 4, "H = I: GPTQ equals the group quantizers for %d of 4 layouts", same);

    /* correlated inputs: output error sum_t (x_t . (w - deq))^2 well below the clip search's */
    for (int li = 0; li < 4; li++) {
        dc_i4_layout L = LS[li];
        int g = L == DC_I4_NVFP4 ? 16 : 32, G = K / g;
        bool sym = L != DC_I4_AWQ;
        float amax = 0;
        for (int n = 0; n < NR; n++)
            for (int k = 0; k < K; k++)
                amax = fmaxf(amax, fabsf(W[n][k]));
        float ws2 = dc_i4_nvfp4_global(amax);
        double e_clip = 0, e_gptq = 0;
        for (int n = 0; n < NR; n++) {
            float d1[K], d2[K];
            dc_i4_gptq_row(L, W[n], K, g, NULL, U, sym, true, DC_DT_BF16, ws2, w, cur, q1, s1, z1);
            for (int gi = 0; gi < G; gi++) {
                uint8_t *qq = q2 + gi * g;
                const float *x = W[n] + gi * g;
                if (L == DC_I4_NVFP4) {
                    uint8_t c = dc_i4_quant_nvfp4(x, NULL, g, ws2, true, qq), c1 = z1[gi];
                    for (int k = 0; k < g; k++) {
                        d1[gi * g + k] = (dc_e2m1_decode(qq[k]) * dc_e4m3_to_f32(c)) * ws2;
                        d2[gi * g + k] = (dc_e2m1_decode(q1[gi * g + k]) * dc_e4m3_to_f32(c1)) * ws2;
                    }
                } else if (L == DC_I4_MXFP4) {
                    uint8_t e = dc_i4_quant_mxfp4(x, NULL, g, true, qq);
                    for (int k = 0; k < g; k++) {
                        d1[gi * g + k] = ldexpf(dc_e2m1_decode(qq[k]), e - 127);
                        d2[gi * g + k] = ldexpf(dc_e2m1_decode(q1[gi * g + k]), z1[gi] - 127);
                    }
                } else {
                    dc_i4_quant_int(x, NULL, g, sym, true, DC_DT_BF16, qq, &s2[gi], &z2[gi]);
                    for (int k = 0; k < g; k++) {
                        d1[gi * g + k] = (float)(qq[k] - z2[gi]) * s2[gi];
                        d2[gi * g + k] = (float)(q1[gi * g + k] - z1[gi]) * s1[gi];
                    }
                }
            }
            for (int t = 0; t < NX; t++) {
                double a = 0, b = 0;
                for (int k = 0; k < K; k++) {
                    a += (double)X[t * K + k] * (W[n][k] - d1[k]);
                    b += (double)X[t * K + k] * (W[n][k] - d2[k]);
                }
                e_clip += a * a;
                e_gptq += b * b;
            }
        }
        CHECK_MSG(e_gptq < 0.8 * e_clip, "%s: GPTQ output error %g vs clip search %g", dc_int4_target_name(L), e_gptq,
                  e_clip);
        printf("gptq %s: output error %.4g, clip search %.4g (ratio %.3f)\n", dc_int4_target_name(L), e_gptq, e_clip,
               e_gptq / e_clip);
    }
    /* the batched rows (blocks of DC_GPTQ_RB sharing U) give each row's bytes: 21 rows (a partial
     * block), K 96 with groups of 40 (a partial group), every layout, AVX2 and scalar group searches */
    for (int li = 0; li < 5; li++) {
        const dc_i4_layout L = li < 4 ? LS[li] : DC_I4_GPTQ;
        enum { nr = 21 };
        const int g = L == DC_I4_NVFP4 ? 16 : L == DC_I4_MXFP4 ? 32 : 40, G = (K + g - 1) / g;
        const bool sym = L != DC_I4_AWQ;
        const float ws2 = dc_i4_nvfp4_global(0.3f);
        uint8_t *qa = malloc((size_t)nr * K), *qb = malloc((size_t)nr * K), za[nr * 6], zb[nr * 6];
        float sa[nr * 6], sb[nr * 6], cb[40];
        double *wb = malloc(sizeof(double) * DC_GPTQ_RB * K);
        for (int ri = 0; ri < nr; ri++)
            dc_i4_gptq_row(L, W[ri], K, g, NULL, U, sym, true, DC_DT_BF16, ws2, w, cb, qa + ri * K, sa + ri * G,
                           za + ri * G);
        memset(sb, 0, sizeof sb);
        for (int simd = 0; simd < 2; simd++) {
            dc_quants_simd(simd);
            dc_i4_gptq_rows(L, &W[0][0], nr, K, g, NULL, U, sym, true, DC_DT_BF16, ws2, wb, cb, qb, sb, zb);
            bool eq = !memcmp(qa, qb, (size_t)nr * K) && !memcmp(za, zb, (size_t)(nr * G));
            for (int i = 0; i < nr * G && L != DC_I4_NVFP4 && L != DC_I4_MXFP4; i++)
                eq &= sa[i] == sb[i];
            CHECK_MSG(eq, "%s: dc_i4_gptq_rows differs from dc_i4_gptq_row (simd %d)", dc_int4_target_name(L), simd);
        }
        dc_quants_simd(-1);
        free(qa);
        free(qb);
        free(wb);
    }
    free(U);
    free(I);
    free(w);
    free(H);
    free(X);
}

/* one forward pass feeding both collectors */
typedef struct both_acc { dc_imatrix_acc *im; dc_hessian_acc *h; } both_acc;
static void both_hook(void *ud, const dc_act *a)
{
    both_acc *b = ud;
    dc_imatrix_hook(b->im, a);
    dc_hessian_hook(b->h, a);
}

static void test_hessian_oracle(void)
{
    char in[4200], imf[4300];
    snprintf(in, sizeof in, "%s/models/v3-bf16", DC_ORACLE);
    snprintf(imf, sizeof imf, "%s/h.imatrix.gguf", dc_test_tmpdir("int4_hessian"));
    dc_err err = {0};
    dc_ckpt *ck = NULL;
    dc_model *m = NULL;
    dc_fwd_opts fo;
    dc_fwd_opts_default(&fo);
    CHECK_OK(dc_fwd_open(in, &fo, &ck, &m, &err), &err);
    if (!m)
        return;
    enum { NT = 120 };
    int32_t toks[NT];
    for (int i = 0; i < NT; i++)
        toks[i] = (int32_t)((i * 37 + 11) % 3000);
    both_acc b = {0};
    CHECK_OK(dc_imatrix_acc_new(m, false, &b.im, &err), &err);
    CHECK_OK(dc_hessian_acc_new(m, ~0ull, 0, &b.h, &err), &err);
    dc_model_set_act_hook(m, both_hook, &b);
    dc_fwd_out out = {0};
    CHECK_OK(dc_forward(m, toks, NT, &out, &err), &err);
    CHECK_OK(dc_forward(m, toks + 7, NT - 7, &out, &err), &err); /* a second pass: sums over both */
    CHECK_OK(dc_imatrix_acc_status(b.im, &err), &err);
    CHECK_OK(dc_hessian_acc_status(b.h, &err), &err);
    CHECK_OK(dc_imatrix_write(b.im, imf, false, "t", 2, NT, true, &err), &err);
    dc_i4_imatrix *im = NULL;
    CHECK_OK(dc_i4_imatrix_load(imf, &im, &err), &err);
    const char *names[] = {"model.layers.0.self_attn.q_a_proj.weight", "model.layers.0.self_attn.kv_a_proj_with_mqa.weight",
                           "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.down_proj.weight",
                           "model.layers.2.self_attn.o_proj.weight", "model.layers.1.mlp.shared_experts.up_proj.weight"};
    int64_t c0 = 0, c1 = 0;
    const double *h0 = dc_hessian_find(b.h, names[0], 320, &c0), *h1 = dc_hessian_find(b.h, names[1], 320, &c1);
    CHECK_MSG(h0 && h0 == h1 && c0 == 2 * NT - 7, "q_a / kv_a share one Hessian over %d tokens: %p %p, count %lld",
              2 * NT - 7, (const void *)h0, (const void *)h1, (long long)c0);
    int bad = 0, checked = 0, experts = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < (pass ? 3 * 16 * 2 : 6); i++) {
            char nm[128];
            if (pass)
                snprintf(nm, sizeof nm, "model.layers.%d.mlp.experts.%d.%s_proj.weight", 1 + i / 48, i % 16,
                         (i / 16) % 3 == 0 ? "gate" : (i / 16) % 3 == 1 ? "up" : "down");
            const char *name = pass ? nm : names[i];
            dc_weight w;
            if (dc_ckpt_weight(ck, name, &w, &err)) {
                CHECK_MSG(false, "%s: %s", name, err.msg);
                continue;
            }
            int64_t K = w.cols, cnt = 0;
            const double *H = dc_hessian_find(b.h, name, K, &cnt);
            float *imp = NULL;
            CHECK_OK(dc_i4_imatrix_get(im, name, K, &imp, &err), &err);
            if (!H || !imp) {
                CHECK_MSG(!H && pass, "%s: Hessian %p, imatrix entry %p", name, (const void *)H, (void *)imp);
                free(imp);
                continue;
            }
            experts += pass;
            for (int64_t k = 0; k < K; k++) {
                double want = imp[k], got = H[k * K + k] / (double)cnt;
                bad += !(fabs(got - want) <= 1e-4 * want + 1e-12);
                for (int64_t j = 0; j < K; j += 7)
                    bad += H[k * K + j] != H[j * K + k] ||
                           H[k * K + j] * H[k * K + j] > H[k * K + k] * H[j * K + j] * (1 + 1e-9) + 1e-30;
            }
            checked++;
            free(imp);
        }
    CHECK_MSG(bad == 0 && checked >= 6 + 16, "Hessian diagonal / count vs imatrix: %d mismatches over %d matrices (%d experts)",
              bad, checked, experts);
    /* layer by layer (dc_fwd_state over the same two sequences), one layer's Hessians at a time,
     * their factors spilled to a file: the same factors, byte for byte, as from the whole passes */
    dc_hessian_acc *hl = NULL;
    dc_fwd_state *st2[2] = {NULL, NULL};
    char spath[4300];
    snprintf(spath, sizeof spath, "%s/spill", dc_test_tmpdir("int4_hessian_spill"));
    int fd = open(spath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    dc_model_set_act_hook(m, NULL, NULL);
    CHECK_OK(dc_hessian_acc_new(m, ~0ull, 0, &hl, &err), &err);
    CHECK_OK(dc_fwd_state_new(m, toks, NT, &st2[0], &err), &err);
    CHECK_OK(dc_fwd_state_new(m, toks + 7, NT - 7, &st2[1], &err), &err);
    dc_model_set_act_hook(m, dc_hessian_hook, hl);
    uint64_t peak = 0;
    for (int li = 0; hl && st2[0] && st2[1] && fd >= 0 && li < dc_model_n_layers(m); li++) {
        dc_hessian_acc_set_layer(hl, li);
        CHECK_OK(dc_fwd_state_step(m, st2[0], &err), &err);
        CHECK_OK(dc_fwd_state_step(m, st2[1], &err), &err);
        peak = dc_hessian_acc_bytes(hl) > peak ? dc_hessian_acc_bytes(hl) : peak;
        CHECK_OK(dc_hessian_spill(hl, fd, 0.01, &err), &err);
        CHECK(dc_hessian_acc_bytes(hl) == 0);
    }
    dc_model_set_act_hook(m, NULL, NULL);
    CHECK_OK(dc_hessian_spill_map(hl, fd, &err), &err);
    CHECK_MSG(peak > 0 && peak < dc_hessian_spill_bytes(hl), "one layer's Hessians (%llu bytes) < all factors (%llu)",
              (unsigned long long)peak, (unsigned long long)dc_hessian_spill_bytes(hl));
    int same = 0, total = 0;
    for (int i = 0; i < 6 + 48; i++) {
        char nm[128];
        if (i >= 6)
            snprintf(nm, sizeof nm, "model.layers.%d.mlp.experts.%d.%s_proj.weight", 1 + (i - 6) / 48, (i - 6) % 16,
                     ((i - 6) / 16) % 3 == 0 ? "gate" : ((i - 6) / 16) % 3 == 1 ? "up" : "down");
        const char *name = i < 6 ? names[i] : nm;
        dc_weight w;
        if (dc_ckpt_weight(ck, name, &w, &err))
            continue;
        const double *ua = NULL, *ub = NULL;
        CHECK_OK(dc_hessian_factor(b.h, name, w.cols, 0.01, &ua, &err), &err);
        CHECK_OK(dc_hessian_factor(hl, name, w.cols, 0.01, &ub, &err), &err);
        total++;
        same += (!ua && !ub) || (ua && ub && !memcmp(ua, ub, (size_t)(w.cols * w.cols) * sizeof *ua));
    }
    CHECK_MSG(same == total && total == 54, "spilled layer-by-layer factors equal the whole-pass ones for %d of %d", same,
              total);
    const double *ux = NULL;
    CHECK(dc_hessian_factor(hl, names[0], 320, 0.02, &ux, &err) == DC_ERR_INTERNAL); /* other dampening */
    dc_fwd_state_free(st2[0]);
    dc_fwd_state_free(st2[1]);
    dc_hessian_acc_free(hl);
    if (fd >= 0)
        close(fd);
    dc_i4_imatrix_free(im);
    dc_imatrix_acc_free(b.im);
    dc_hessian_acc_free(b.h);
    dc_fwd_close(ck, m);
}

int main(void)
{
    omp_set_num_threads(2);
    test_vectors();
    test_readers();
    test_quantizers();
    test_simd();
    test_gptq();
    test_hessian_oracle();
    test_imatrix();
    test_oracle();
    return dc_test_done();
}
