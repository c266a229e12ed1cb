/* deepcast's GGUF bytes against ggml itself: libggml-base.so of node-llama-cpp 3.22.1 (the prebuilt
 * CPU binaries in tests/interop/node_modules, loaded with dlopen, nothing compiled from ggml):
 *   - Q8_0: dc_q8_0_quantize_row == ggml's quantize_row_q8_0_ref byte for byte, and the decoder
 *     == dequantize_row_q8_0, over a million values of several distributions;
 *   - the files `deepcast convert --to gguf` writes (F32, Q8_0, splits) parse in ggml's
 *     gguf_init_from_buffer with the same KVs, tensor names, types, shapes and offsets;
 *   - the reader is never more lenient than ggml's: every truncation of the metadata and 3000
 *     random mutations that ggml rejects, deepcast rejects too.
 * usage: ggml_check INTEROP_DIR ORACLE_DIR SCRATCH_DIR; exits 77 (skipped) without the library. */
#include "dc_test.h"
#include "dc_gguf.h"
#include "dc_gguf_export.h"
#include "dc_q8_0.h"
#include "dc_ggml.h"

#include <dlfcn.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct gguf_context;
struct gguf_init_params {
    bool no_alloc;
    void **ctx;
};
static struct gguf_context *(*g_init)(const void *, size_t, struct gguf_init_params);
static void (*g_free)(struct gguf_context *);
static int64_t (*g_n_kv)(const struct gguf_context *), (*g_n_tensors)(const struct gguf_context *);
static const char *(*g_key)(const struct gguf_context *, int64_t);
static int (*g_kv_type)(const struct gguf_context *, int64_t), (*g_arr_type)(const struct gguf_context *, int64_t);
static size_t (*g_arr_n)(const struct gguf_context *, int64_t);
static const char *(*g_tname)(const struct gguf_context *, int64_t);
static size_t (*g_toff)(const struct gguf_context *, int64_t), (*g_data_off)(const struct gguf_context *);
static int (*g_ttype)(const struct gguf_context *, int64_t);
static const int64_t *(*g_tne)(const struct gguf_context *, int64_t);
static void (*q8_ref)(const float *, void *, int64_t);
static void (*q8_deq)(const void *, float *, int64_t);

static struct gguf_context *ggml_parse(const uint8_t *b, size_t n)
{
    struct gguf_init_params p = {true, NULL};
    return g_init(b, n, p);
}

static void test_q8_0(void)
{
    const int n = 32 * 40000;
    float *x = malloc((size_t)n * 4), *ya = malloc((size_t)n * 4), *yb = malloc((size_t)n * 4);
    uint8_t *a = malloc((size_t)n / 32 * 34), *b = malloc((size_t)n / 32 * 34);
    uint64_t s = 1;
    for (int i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t u = (uint32_t)(s >> 32);
        float f;
        switch (i / 32 % 6) {
        case 0: f = ((float)u / 4294967296.0f - 0.5f) * 0.1f; break;
        case 1: memcpy(&f, &u, 4); if (!isfinite(f)) f = 1.5f; break; /* any finite bit pattern */
        case 2: f = (float)((int)(u % 255) - 127) * 0.01f; break;
        case 3: f = i % 7 == 0 ? 0.0f : ldexpf(1, -30) * (float)(u % 1000); break; /* f16 subnormal scales */
        case 4: f = ((float)u / 4294967296.0f - 0.5f) * 65000.0f; break; /* near f16's max scale */
        default: f = i % 32 == 5 ? 3.0f : 0.0f; break;
        }
        x[i] = f;
    }
    q8_ref(x, a, n);
    dc_q8_0_quantize_row(x, b, n);
    size_t diff = 0;
    for (size_t i = 0; i < (size_t)n / 32 * 34; i++)
        diff += a[i] != b[i];
    CHECK_MSG(diff == 0, "Q8_0: %zu of %d bytes differ from ggml's quantize_row_q8_0_ref", diff, n / 32 * 34);
    q8_deq(a, ya, n);
    dc_ggml_decode(DC_DT_Q8_0, a, yb, n);
    CHECK_MSG(!memcmp(ya, yb, (size_t)n * 4), "Q8_0 decode differs from ggml's dequantize_row_q8_0");
    printf("Q8_0: %d values, %zu bytes differ from ggml's reference quantizer\n", n, diff);
    free(x); free(ya); free(yb); free(a); free(b);
}

/* One file: ggml reads what deepcast's reader reads. */
static void same_as_ggml(const char *path)
{
    dc_gguf_file f;
    dc_err err;
    if (dc_gguf_open(path, &f, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    struct gguf_context *g = ggml_parse(f.buf, f.size);
    CHECK_MSG(g != NULL, "%s: ggml's gguf_init_from_buffer rejects it", path);
    if (g) {
        bool ok = g_n_kv(g) == (int64_t)f.n_kv && g_n_tensors(g) == (int64_t)f.n_tensors &&
                  (f.n_tensors == 0 || g_data_off(g) == f.data_start);
        for (size_t i = 0; ok && i < f.n_kv; i++) {
            const dc_gguf_kv *kv = &f.kv[i];
            ok = !strcmp(g_key(g, (int64_t)i), kv->key) && g_kv_type(g, (int64_t)i) == (int)kv->type &&
                 (kv->type != DC_GGUF_ARRAY ||
                  (g_arr_type(g, (int64_t)i) == (int)kv->arr_type && g_arr_n(g, (int64_t)i) == kv->n));
            if (!ok)
                fprintf(stderr, "%s: KV %zu (%s) differs\n", path, i, kv->key);
        }
        for (size_t i = 0; ok && i < f.n_tensors; i++) {
            const dc_gguf_tinfo *t = &f.tensors[i];
            const int64_t *ne = g_tne(g, (int64_t)i);
            ok = !strcmp(g_tname(g, (int64_t)i), t->name) && g_ttype(g, (int64_t)i) == (int)t->type &&
                 g_toff(g, (int64_t)i) == t->offset && ne[0] == t->ne[0] && ne[1] == t->ne[1] && ne[2] == t->ne[2] &&
                 ne[3] == t->ne[3];
            if (!ok)
                fprintf(stderr, "%s: tensor %zu (%s) differs\n", path, i, t->name);
        }
        CHECK_MSG(ok, "%s: ggml reads other KVs / tensors", path);
        g_free(g);
    }
    /* truncations of the metadata: both readers reject every one */
    int disagree = 0, tried = 0;
    uint64_t step = f.data_start / 97 + 1;
    for (uint64_t len = 0; len < f.data_start && f.n_tensors; len += step) {
        uint8_t *c = malloc(len ? len : 1);
        memcpy(c, f.buf, len);
        struct gguf_context *gt = ggml_parse(c, len);
        dc_gguf_file h;
        dc_status st = dc_gguf_parse(c, len, "trunc", &h, &err);
        if (st == DC_OK)
            dc_gguf_close(&h);
        disagree += gt != NULL || st == DC_OK;
        if (gt)
            g_free(gt);
        free(c);
        tried++;
    }
    CHECK_MSG(disagree == 0, "%s: %d of %d truncations accepted", path, disagree, tried);
    dc_gguf_close(&f);
}

/* Random mutations of the metadata of path: whenever ggml rejects, deepcast rejects. */
static void mutations(const char *path)
{
    dc_map m;
    dc_err err;
    if (dc_map_open(path, &m, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    dc_gguf_file f;
    if (dc_gguf_parse(m.data, m.size, path, &f, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        dc_map_close(&m);
        return;
    }
    uint64_t head = f.data_start;
    dc_gguf_close(&f);
    uint8_t *c = malloc(m.size);
    uint64_t s = 12345;
    int lenient = 0, stricter = 0, both = 0, n = 3000;
    for (int i = 0; i < n; i++) {
        memcpy(c, m.data, m.size);
        int k = 1 + (int)(s % 3);
        for (int j = 0; j < k; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t at = (s >> 20) % head;
            uint32_t r = (uint32_t)(s >> 40);
            switch (r % 4) {
            case 0: c[at] ^= (uint8_t)(1u << (r >> 8 & 7)); break;
            case 1: c[at] = (uint8_t)(r >> 8); break;
            case 2: c[at] = 0xff; break;
            default: c[at] = 0; break;
            }
        }
        struct gguf_context *g = ggml_parse(c, m.size);
        dc_gguf_file h;
        dc_status st = dc_gguf_parse(c, m.size, "mut", &h, &err);
        if (st == DC_OK)
            dc_gguf_close(&h);
        if (!g && st == DC_OK) {
            lenient++;
            if (lenient <= 3)
                fprintf(stderr, "%s: mutation %d: ggml rejects, deepcast accepts\n", path, i);
        } else if (g && st != DC_OK)
            stricter++;
        else if (!g)
            both++;
        if (g)
            g_free(g);
    }
    printf("%s: %d mutations: %d rejected by both, %d only by deepcast (stricter checks), %d only by ggml\n",
           dc_path_base(path), n, both, stricter, lenient);
    CHECK_MSG(lenient == 0, "%s: deepcast accepted %d mutations ggml rejects", path, lenient);
    free(c);
    dc_map_close(&m);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ggml_check INTEROP_DIR ORACLE_DIR SCRATCH_DIR\n");
        return 2;
    }
    char pat[4096];
    snprintf(pat, sizeof pat, "%s/node_modules/@node-llama-cpp/linux-x64/bins/*/libggml-base.so", argv[1]);
    glob_t gl;
    if (glob(pat, 0, NULL, &gl) != 0 || gl.gl_pathc == 0) {
        printf("SKIP: no %s (cd tests/interop && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci)\n", pat);
        return 77;
    }
    void *h = dlopen(gl.gl_pathv[0], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("SKIP: cannot load %s: %s\n", gl.gl_pathv[0], dlerror());
        globfree(&gl);
        return 77;
    }
    printf("ggml: %s\n", gl.gl_pathv[0]);
    globfree(&gl);
#define SYM(v, name) (*(void **)&(v) = dlsym(h, name))
    if (!SYM(g_init, "gguf_init_from_buffer") || !SYM(g_free, "gguf_free") || !SYM(g_n_kv, "gguf_get_n_kv") ||
        !SYM(g_n_tensors, "gguf_get_n_tensors") || !SYM(g_key, "gguf_get_key") || !SYM(g_kv_type, "gguf_get_kv_type") ||
        !SYM(g_arr_type, "gguf_get_arr_type") || !SYM(g_arr_n, "gguf_get_arr_n") || !SYM(g_tname, "gguf_get_tensor_name") ||
        !SYM(g_toff, "gguf_get_tensor_offset") || !SYM(g_data_off, "gguf_get_data_offset") ||
        !SYM(g_ttype, "gguf_get_tensor_type") || !SYM(g_tne, "gguf_get_tensor_ne") || !SYM(q8_ref, "quantize_row_q8_0_ref") ||
        !SYM(q8_deq, "dequantize_row_q8_0")) {
        printf("SKIP: symbol missing in libggml-base.so: %s\n", dlerror());
        return 77;
    }
    test_q8_0();
    const char *scratch = argv[3];
    dc_rm_rf(scratch);
    mkdir(scratch, 0755);
    dc_test_scratch(scratch);
    dc_log_level = 0;
    struct { const char *variant; dc_gguf_out type; uint64_t split; const char *out, *check; } cases[] = {
        {"v3-bf16", DC_GGUF_OUT_F32, 0, "v3-f32.gguf", "v3-f32.gguf"},
        {"v3-fp8", DC_GGUF_OUT_Q8_0, 0, "v3-q8.gguf", "v3-q8.gguf"},
        {"v2lite", DC_GGUF_OUT_BF16, 0, "v2.gguf", "v2.gguf"},
        {"v3-bf16", DC_GGUF_OUT_F16, 5000000, "sp.gguf", NULL},
    };
    char split2[4200] = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char in[4096], out[4200];
        snprintf(in, sizeof in, "%s/models/%s", argv[2], cases[i].variant);
        snprintf(out, sizeof out, "%s/%s", scratch, cases[i].out);
        dc_gguf_export_opts o;
        dc_gguf_export_opts_init(&o);
        o.type = cases[i].type;
        o.split_max_size = cases[i].split;
        dc_gguf_export_stats st;
        dc_err err = {0};
        CHECK_OK(dc_gguf_export(in, out, &o, NULL, &st, &err), &err);
        for (int s = 0; s < st.n_splits; s++) {
            char *p = dc_ggufw_split_path(out, s, st.n_splits);
            same_as_ggml(p);
            if (s == 1)
                snprintf(split2, sizeof split2, "%s", p);
            free(p);
        }
        printf("%s -> %s: %d file(s) read identically by ggml\n", cases[i].variant, cases[i].out, st.n_splits);
    }
    char p[4200];
    snprintf(p, sizeof p, "%s/v2.gguf", scratch);
    mutations(p);
    if (split2[0])
        mutations(split2); /* a split: only split.* keys, tensor infos */
    return dc_test_done();
}
