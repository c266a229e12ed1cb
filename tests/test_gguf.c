/* GGUF: the reader's malformed-file catalogue (after llama.cpp's tests/test-gguf.cpp: each case
 * its dc_status, a message naming the file and the numbers, no crash), the streaming writer
 * (round trip, splits), Q8_0 against ggml's reference, and the deepseek2 export read back through
 * the Hugging Face view: every tensor of the oracle checkpoints gives the same f32 rows as the
 * source (F32 / BF16 GGUF bit for bit, Q8_0 within its quantization step). */
#include "dc_test.h"
#include "dc_ckpt.h"
#include "dc_float.h"
#include "dc_ggml.h"
#include "dc_gguf.h"
#include "dc_gguf_export.h"
#include "dc_io.h"
#include "dc_q8_0.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

/* ---- a GGUF builder with recorded field positions ------------------------------------------- */

typedef struct gb {
    uint8_t *p;
    size_t n, cap;
} gb;

static void g_raw(gb *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void g_u32(gb *b, uint32_t v) { g_raw(b, &v, 4); }
static void g_u64(gb *b, uint64_t v) { g_raw(b, &v, 8); }
static void g_str(gb *b, const char *s) { g_u64(b, strlen(s)); g_raw(b, s, strlen(s)); }
static void g_pad(gb *b, size_t a) { while (b->n % a) { uint8_t z = 0; g_raw(b, &z, 1); } }
static void put32(gb *b, size_t pos, uint32_t v) { memcpy(b->p + pos, &v, 4); }
static void put64(gb *b, size_t pos, uint64_t v) { memcpy(b->p + pos, &v, 8); }

typedef struct knobs {
    uint32_t alignment;      /* 0: no general.alignment key */
    int align_type;          /* its GGUF type (4 = u32) */
    const char *t0_name;     /* name of tensor 0 */
    const char *t1_name;
    uint32_t t0_ndims;       /* > 2 adds dims of 1 */
    const char *key1;        /* name of KV 1 */
    bool nested_array;       /* KV 2 becomes an array of arrays */
    const char *arch;        /* general.architecture */
    bool arch_as_u32;
    bool tokens_as_i32;      /* tokenizer.ggml.tokens as arr[i32] */
} knobs;

typedef struct pos {
    size_t n_tensors, n_kv, version;
    size_t kv_keylen[8], kv_type[8], kv_val[8];
    size_t t_namelen[4], t_ndims[4], t_ne0[4], t_type[4], t_off[4];
    size_t data_start;
    uint32_t align;
} pos;

/* KVs: general.architecture, KEY1 = u32 7, test.arr = [1,2,3] (i32), test.strs = ["a","bc"]
 * [, general.alignment] [, tokenizer.ggml.tokens]; tensors a F32 {4,2}, b Q8_0 {32,2}, c F16 {3}. */
static gb build(const knobs *k, pos *ps)
{
    gb b = {0};
    memset(ps, 0, sizeof *ps);
    uint32_t align = k->alignment && k->align_type == 4 && !(k->alignment & (k->alignment - 1)) ? k->alignment : 32;
    ps->align = align;
    g_raw(&b, "GGUF", 4);
    ps->version = b.n;
    g_u32(&b, 3);
    ps->n_tensors = b.n;
    g_u64(&b, 3);
    ps->n_kv = b.n;
    int nkv = 4 + (k->alignment ? 1 : 0) + (k->tokens_as_i32 ? 1 : 0);
    g_u64(&b, (uint64_t)nkv);
    int i = 0;
    /* 0 */
    ps->kv_keylen[i] = b.n;
    g_str(&b, "general.architecture");
    ps->kv_type[i] = b.n;
    if (k->arch_as_u32) {
        g_u32(&b, 4);
        ps->kv_val[i] = b.n;
        g_u32(&b, 1);
    } else {
        g_u32(&b, 8);
        ps->kv_val[i] = b.n;
        g_str(&b, k->arch ? k->arch : "llama");
    }
    i++;
    /* 1 */
    ps->kv_keylen[i] = b.n;
    g_str(&b, k->key1 ? k->key1 : "test.u32");
    ps->kv_type[i] = b.n;
    g_u32(&b, 4);
    ps->kv_val[i] = b.n;
    g_u32(&b, 7);
    i++;
    /* 2 */
    ps->kv_keylen[i] = b.n;
    g_str(&b, "test.arr");
    ps->kv_type[i] = b.n;
    g_u32(&b, 9);
    g_u32(&b, k->nested_array ? 9 : 5);
    ps->kv_val[i] = b.n; /* the count */
    g_u64(&b, 3);
    for (int32_t v = 1; v <= 3; v++)
        g_raw(&b, &v, 4);
    i++;
    /* 3 */
    ps->kv_keylen[i] = b.n;
    g_str(&b, "test.strs");
    ps->kv_type[i] = b.n;
    g_u32(&b, 9);
    g_u32(&b, 8);
    ps->kv_val[i] = b.n;
    g_u64(&b, 2);
    g_str(&b, "a");
    g_str(&b, "bc");
    i++;
    if (k->alignment) {
        ps->kv_keylen[i] = b.n;
        g_str(&b, "general.alignment");
        ps->kv_type[i] = b.n;
        g_u32(&b, (uint32_t)k->align_type);
        ps->kv_val[i] = b.n;
        if (k->align_type == 10)
            g_u64(&b, k->alignment);
        else
            g_u32(&b, k->alignment);
        i++;
    }
    if (k->tokens_as_i32) {
        ps->kv_keylen[i] = b.n;
        g_str(&b, "tokenizer.ggml.tokens");
        ps->kv_type[i] = b.n;
        g_u32(&b, 9);
        g_u32(&b, 5);
        ps->kv_val[i] = b.n;
        g_u64(&b, 1);
        g_u32(&b, 0);
        i++;
    }
    /* tensors */
    const char *names[3] = {k->t0_name ? k->t0_name : "a", k->t1_name ? k->t1_name : "b", "c"};
    uint32_t types[3] = {0, 8, 1};
    int64_t ne[3][2] = {{4, 2}, {32, 2}, {3, 1}};
    uint32_t nd[3] = {k->t0_ndims ? k->t0_ndims : 2, 2, 1};
    uint64_t sizes[3] = {32, 68, 6}, off = 0;
    for (int t = 0; t < 3; t++) {
        ps->t_namelen[t] = b.n;
        g_str(&b, names[t]);
        ps->t_ndims[t] = b.n;
        g_u32(&b, nd[t]);
        ps->t_ne0[t] = b.n;
        for (uint32_t j = 0; j < nd[t]; j++)
            g_u64(&b, j < 2 ? (uint64_t)ne[t][j] : 1);
        ps->t_type[t] = b.n;
        g_u32(&b, types[t]);
        ps->t_off[t] = b.n;
        g_u64(&b, off);
        off += (sizes[t] + align - 1) / align * align;
    }
    g_pad(&b, align);
    ps->data_start = b.n;
    for (uint64_t d = 0; d < off; d++) {
        uint8_t v = (uint8_t)(d * 7 + 1);
        g_raw(&b, &v, 1);
    }
    /* the Q8_0 scales are f16 1.0 */
    uint16_t one = 0x3c00;
    memcpy(b.p + ps->data_start + align * ((32 + align - 1) / align), &one, 2);
    return b;
}

static int expect(const gb *b, size_t len, dc_status want, const char *substr, const char *what)
{
    dc_gguf_file f;
    dc_err err = {0};
    uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees any read past the end */
    memcpy(copy, b->p, len);
    dc_status st = dc_gguf_parse(copy, len, "case.gguf", &f, &err);
    int ok = st == want;
    if (st == DC_OK) {
        dc_gguf_close(&f);
    } else {
        ok = ok && strstr(err.msg, "case.gguf") && (!substr || strstr(err.msg, substr));
    }
    CHECK_MSG(ok, "%s: status %d (want %d), message: %s", what, (int)st, (int)want, err.msg);
    free(copy);
    return ok;
}

static void test_catalogue(void)
{
    knobs k0 = {0};
    pos ps;
    gb b = build(&k0, &ps);
    expect(&b, b.n, DC_OK, NULL, "baseline");
    /* the baseline parses to what was written */
    {
        dc_gguf_file f;
        dc_err err;
        CHECK_OK(dc_gguf_parse(b.p, b.n, "base", &f, &err), &err);
        CHECK(f.n_kv == 4 && f.n_tensors == 3 && f.alignment == 32 && f.data_start == ps.data_start);
        uint32_t u;
        CHECK(dc_gguf_get_u32(&f, "test.u32", &u) && u == 7);
        const dc_gguf_kv *kv = dc_gguf_find(&f, "test.strs");
        const char *s;
        uint64_t l;
        CHECK(kv && kv->n == 2 && dc_gguf_arr_str(kv, 1, &s, &l) && l == 2 && !memcmp(s, "bc", 2));
        CHECK(!dc_gguf_arr_str(kv, 2, &s, &l));
        const dc_gguf_tinfo *t = dc_gguf_find_tensor(&f, "b");
        CHECK(t && t->dtype == DC_DT_Q8_0 && t->nbytes == 68 && t->offset == 32 && t->ne[0] == 32 && t->ne[1] == 2);
        CHECK(!dc_gguf_get_u32(&f, "test.arr", &u)); /* no conversions */
        dc_gguf_close(&f);
    }
    gb c;
#define COPY() do { c = (gb){0}; g_raw(&c, b.p, b.n); } while (0)
    /* header */
    expect(&b, 0, DC_ERR_FORMAT, "too short", "empty file");
    expect(&b, 3, DC_ERR_FORMAT, "too short", "3 bytes");
    COPY(); c.p[3] = 'X';
    expect(&c, c.n, DC_ERR_FORMAT, "magic is \"GGUX\"", "bad magic"); free(c.p);
    COPY(); put32(&c, ps.version, 0);
    expect(&c, c.n, DC_ERR_FORMAT, "version 0", "version 0"); free(c.p);
    COPY(); put32(&c, ps.version, 1);
    expect(&c, c.n, DC_ERR_UNSUPPORTED, "version 1", "version 1"); free(c.p);
    COPY(); put32(&c, ps.version, 4);
    expect(&c, c.n, DC_ERR_UNSUPPORTED, "version 4", "future version"); free(c.p);
    COPY(); put32(&c, ps.version, 0x03000000u);
    expect(&c, c.n, DC_ERR_UNSUPPORTED, "big-endian", "byte-swapped version"); free(c.p);
    expect(&b, 10, DC_ERR_FORMAT, "truncated", "header cut in the tensor count");
    COPY(); put64(&c, ps.n_tensors, 1ull << 62);
    expect(&c, c.n, DC_ERR_FORMAT, "4611686018427387904 tensors", "huge tensor count"); free(c.p);
    COPY(); put64(&c, ps.n_tensors, (uint64_t)-1);
    expect(&c, c.n, DC_ERR_FORMAT, "-1 tensors", "negative tensor count"); free(c.p);
    COPY(); put64(&c, ps.n_kv, 1ull << 40);
    expect(&c, c.n, DC_ERR_FORMAT, "1099511627776 key-value pairs", "huge KV count"); free(c.p);
    {   /* an empty but valid file: header only */
        gb e = {0};
        g_raw(&e, "GGUF", 4); g_u32(&e, 3); g_u64(&e, 0); g_u64(&e, 0);
        expect(&e, e.n, DC_OK, NULL, "header only (0 tensors, 0 KVs)");
        free(e.p);
    }
    /* KVs */
    COPY(); put64(&c, ps.kv_keylen[1], 1ull << 50);
    expect(&c, c.n, DC_ERR_FORMAT, "string length 1125899906842624", "key length past EOF"); free(c.p);
    COPY(); put64(&c, ps.kv_keylen[1], 0);
    expect(&c, c.n, DC_ERR_FORMAT, "key 1 is empty", "empty key"); free(c.p);
    COPY(); put32(&c, ps.kv_type[1], 13);
    expect(&c, c.n, DC_ERR_FORMAT, "invalid type 13", "bad KV type"); free(c.p);
    COPY(); put64(&c, ps.kv_val[2], 1ull << 61);
    expect(&c, c.n, DC_ERR_FORMAT, "2305843009213693952 values of type i32", "array count past EOF"); free(c.p);
    COPY(); put64(&c, ps.kv_val[3], 1ull << 40);
    expect(&c, c.n, DC_ERR_FORMAT, "array of 1099511627776 strings", "string array count past EOF"); free(c.p);
    COPY(); put64(&c, ps.kv_val[3] + 8, 1000);
    expect(&c, c.n, DC_ERR_FORMAT, "string length 1000", "string in array past EOF"); free(c.p);
    COPY(); put64(&c, ps.kv_val[0], 1ull << 33);
    expect(&c, c.n, DC_ERR_FORMAT, "string length 8589934592", "string value past EOF"); free(c.p);
    expect(&b, ps.kv_val[2] + 6, DC_ERR_FORMAT, "truncated", "file ends inside a KV");
    {
        knobs k = {0};
        k.key1 = "general.architecture";
        pos p2;
        gb d = build(&k, &p2);
        expect(&d, d.n, DC_ERR_FORMAT, "duplicate key 'general.architecture' (pairs 0 and 1)", "duplicate key");
        free(d.p);
        k = (knobs){0};
        k.nested_array = true;
        d = build(&k, &p2);
        expect(&d, d.n, DC_ERR_FORMAT, "nested arrays", "array of arrays");
        free(d.p);
        k = (knobs){.alignment = 64, .align_type = 10};
        d = build(&k, &p2);
        expect(&d, d.n, DC_ERR_FORMAT, "'general.alignment' has type u64, expected u32", "alignment of the wrong type");
        free(d.p);
        k = (knobs){.alignment = 24, .align_type = 4};
        d = build(&k, &p2);
        expect(&d, d.n, DC_ERR_FORMAT, "general.alignment is 24, not a power of two", "alignment 24");
        free(d.p);
        k = (knobs){.alignment = 0xffffffffu, .align_type = 4};
        d = build(&k, &p2);
        put32(&d, p2.kv_val[4], 0);
        expect(&d, d.n, DC_ERR_FORMAT, "general.alignment is 0", "alignment 0");
        free(d.p);
        k = (knobs){.alignment = 64, .align_type = 4};
        d = build(&k, &p2);
        expect(&d, d.n, DC_OK, NULL, "custom alignment 64");
        dc_gguf_file f;
        dc_err err;
        if (dc_gguf_parse(d.p, d.n, "a64", &f, &err) == DC_OK) {
            CHECK(f.alignment == 64 && f.data_start % 64 == 0 && f.tensors[1].offset == 64 && f.tensors[2].offset == 192);
            dc_gguf_close(&f);
        }
        free(d.p);
        k = (knobs){.arch_as_u32 = true};
        d = build(&k, &p2);
        expect(&d, d.n, DC_ERR_FORMAT, "key 'general.architecture' has type u32, expected str", "known key of the wrong type");
        free(d.p);
        k = (knobs){.tokens_as_i32 = true};
        d = build(&k, &p2);
        expect(&d, d.n, DC_ERR_FORMAT, "'tokenizer.ggml.tokens' has type arr[i32], expected arr[str]",
               "token list of the wrong element type");
        free(d.p);
        k = (knobs){.arch = "deepseek2", .key1 = "deepseek2.block_count"};
        d = build(&k, &p2);
        expect(&d, d.n, DC_OK, NULL, "deepseek2.block_count u32");
        put32(&d, p2.kv_type[1], 5);
        expect(&d, d.n, DC_ERR_FORMAT, "'deepseek2.block_count' has type i32, expected u32", "arch key of the wrong type");
        free(d.p);
        /* tensors */
        char longname[80];
        memset(longname, 'x', 64);
        longname[64] = 0;
        k = (knobs){.t0_name = longname};
        d = build(&k, &p2);
        expect(&d, d.n, DC_ERR_FORMAT, "is 64 bytes; ggml allows at most 63", "tensor name of 64 bytes");
        free(d.p);
        longname[63] = 0;
        k = (knobs){.t0_name = longname};
        d = build(&k, &p2);
        expect(&d, d.n, DC_OK, NULL, "tensor name of 63 bytes");
        free(d.p);
        k = (knobs){.t1_name = "a"};
        d = build(&k, &p2);
        expect(&d, d.n, DC_ERR_FORMAT, "duplicate tensor name 'a' (tensors 0 and 1)", "duplicate tensor name");
        free(d.p);
        k = (knobs){.t0_ndims = 5};
        d = build(&k, &p2);
        expect(&d, d.n, DC_ERR_FORMAT, "'a' has 5 dimensions; ggml allows at most 4", "5 dimensions");
        free(d.p);
        k = (knobs){.t0_ndims = 4};
        d = build(&k, &p2);
        expect(&d, d.n, DC_OK, NULL, "4 dimensions");
        free(d.p);
    }
    COPY(); put64(&c, ps.t_namelen[1], 1ull << 40);
    expect(&c, c.n, DC_ERR_FORMAT, "the name of tensor 1", "tensor name length past EOF"); free(c.p);
    COPY(); put64(&c, ps.t_ne0[0], (uint64_t)-5);
    expect(&c, c.n, DC_ERR_FORMAT, "ne[0] = -5 is negative", "negative dimension"); free(c.p);
    COPY(); put64(&c, ps.t_ne0[0], 1ull << 40); put64(&c, ps.t_ne0[0] + 8, 1ull << 40);
    expect(&c, c.n, DC_ERR_FORMAT, "(1099511627776, 1099511627776, 1, 1) overflows", "element count overflow"); free(c.p);
    COPY(); put64(&c, ps.t_ne0[0], 0); put64(&c, ps.t_ne0[0] + 8, 1ull << 62); put32(&c, ps.t_off[1], 0);
    put32(&c, ps.t_off[2], 96);
    expect(&c, c.n, DC_OK, NULL, "an empty tensor (ne[0] = 0)"); free(c.p);
    COPY(); put64(&c, ps.t_ne0[0], 0); put64(&c, ps.t_ne0[0] + 8, (1ull << 63) - 1);
    expect(&c, c.n, DC_ERR_FORMAT, "overflows", "an empty tensor whose other dims reach 2^63"); free(c.p);
    COPY(); put64(&c, ps.t_ne0[0], (1ull << 62) + 4); put64(&c, ps.t_ne0[0] + 8, 1);
    expect(&c, c.n, DC_ERR_FORMAT, "byte size of 4611686018427387908 F32 elements overflows", "byte size overflow"); free(c.p);
    COPY(); put32(&c, ps.t_type[0], 4);
    expect(&c, c.n, DC_ERR_FORMAT, "invalid ggml type 4", "removed ggml type 4"); free(c.p);
    COPY(); put32(&c, ps.t_type[0], 99);
    expect(&c, c.n, DC_ERR_FORMAT, "invalid ggml type 99", "ggml type 99"); free(c.p);
    COPY(); put64(&c, ps.t_ne0[1], 33);
    expect(&c, c.n, DC_ERR_FORMAT, "'b' of type Q8_0 has 33 elements per row (ne[0]), not a multiple of its block size 32",
           "Q8_0 row of 33"); free(c.p);
    COPY(); put64(&c, ps.t_off[1], 36);
    expect(&c, c.n, DC_ERR_FORMAT, "'b' has offset 36, not a multiple of the alignment 32", "misaligned offset"); free(c.p);
    COPY(); put64(&c, ps.t_off[1], 64);
    expect(&c, c.n, DC_ERR_FORMAT, "'b' has offset 64, expected 32", "offset with a hole"); free(c.p);
    COPY(); put64(&c, ps.t_off[1], 0);
    expect(&c, c.n, DC_ERR_FORMAT, "'b' has offset 0, expected 32", "overlapping offset"); free(c.p);
    COPY(); put64(&c, ps.t_off[2], 1ull << 60);
    expect(&c, c.n, DC_ERR_FORMAT, "'c' has offset 1152921504606846976, expected 128", "offset out of range"); free(c.p);
    expect(&b, ps.data_start + 130, DC_ERR_FORMAT, "'c': data [", "tensor data past EOF");
    expect(&b, ps.data_start + 134, DC_OK, NULL, "last tensor's padding missing (allowed, as in llama.cpp)");
    expect(&b, ps.t_off[2] + 8, DC_ERR_FORMAT, NULL, "file ends after the tensor infos");
    expect(&b, ps.t_type[2] + 2, DC_ERR_FORMAT, "truncated", "file ends inside a tensor info");
    COPY(); c.p[ps.t_namelen[0] + 8] = 0;
    expect(&c, c.n, DC_ERR_FORMAT, "contains a NUL byte", "NUL in a tensor name"); free(c.p);
    free(b.p);
#undef COPY
}

/* ---- writer ------------------------------------------------------------------------------- */

static void test_writer(void)
{
    const char *dir = dc_test_tmpdir("gguf_writer");
    char path[4096];
    snprintf(path, sizeof path, "%s/w.gguf", dir);
    for (int split = 0; split < 2; split++) {
        dc_ggufw *w = dc_ggufw_new();
        dc_err err = {0};
        CHECK_OK(dc_ggufw_kv_str(w, "general.architecture", "test", 4, &err), &err);
        CHECK_OK(dc_ggufw_kv_u8(w, "t.u8", 200, &err), &err);
        CHECK_OK(dc_ggufw_kv_u16(w, "t.u16", 60000, &err), &err);
        CHECK_OK(dc_ggufw_kv_i32(w, "t.i32", -5, &err), &err);
        CHECK_OK(dc_ggufw_kv_u64(w, "t.u64", 1ull << 40, &err), &err);
        CHECK_OK(dc_ggufw_kv_f32(w, "t.f32", 0.5f, &err), &err);
        CHECK_OK(dc_ggufw_kv_f64(w, "t.f64", 0.25, &err), &err);
        CHECK_OK(dc_ggufw_kv_bool(w, "t.bool", true, &err), &err);
        const char *strs[3] = {"x", "", "zz"};
        size_t lens[3] = {1, 0, 2};
        CHECK_OK(dc_ggufw_kv_arr_str(w, "t.strs", strs, lens, 3, &err), &err);
        float fa[2] = {1.5f, -2};
        CHECK_OK(dc_ggufw_kv_arr(w, "t.fa", DC_GGUF_F32, fa, 2, &err), &err);
        CHECK(dc_ggufw_kv_u32(w, "t.u8", 1, &err) == DC_ERR_INTERNAL); /* twice */
        size_t idx[3];
        int64_t ne0[2] = {5, 3}, ne1[1] = {64}, ne2[3] = {32, 2, 2};
        CHECK_OK(dc_ggufw_add(w, "t0", DC_GGML_F32, 2, ne0, &idx[0], &err), &err);
        CHECK_OK(dc_ggufw_add(w, "t1", DC_GGML_F16, 1, ne1, &idx[1], &err), &err);
        CHECK_OK(dc_ggufw_add(w, "t2", DC_GGML_Q8_0, 3, ne2, &idx[2], &err), &err);
        CHECK(dc_ggufw_add(w, "t0", DC_GGML_F32, 2, ne0, NULL, &err) == DC_ERR_INTERNAL);
        int64_t bad[1] = {33};
        CHECK(dc_ggufw_add(w, "t9", DC_GGML_Q8_0, 1, bad, NULL, &err) == DC_ERR_INTERNAL);
        CHECK_OK(dc_ggufw_plan(w, split ? 100 : 0, &err), &err);
        int ns = dc_ggufw_n_splits(w);
        CHECK(ns == (split ? 3 : 1));
        CHECK_OK(dc_ggufw_open(w, path, true, &err), &err);
        /* written in reverse order, in pieces: the file does not depend on it */
        uint8_t buf[272];
        for (int i = 0; i < 272; i++)
            buf[i] = (uint8_t)(i * 13 + 5);
        uint16_t one = 0x3c00;
        for (int bq = 0; bq < 4; bq++)
            memcpy(buf + bq * 34, &one, 2);
        CHECK_OK(dc_ggufw_write(w, idx[2], 68, buf + 68, 68, &err), &err);
        CHECK_OK(dc_ggufw_write(w, idx[2], 0, buf, 68, &err), &err);
        CHECK_OK(dc_ggufw_write(w, idx[1], 0, buf, 128, &err), &err);
        CHECK_OK(dc_ggufw_write(w, idx[0], 0, buf, 60, &err), &err);
        CHECK(dc_ggufw_write(w, idx[0], 50, buf, 20, &err) == DC_ERR_INTERNAL);
        CHECK_OK(dc_ggufw_finish(w, &err), &err);
        dc_ggufw_free(w);
        /* read back */
        dc_gguf_file f[3];
        uint64_t total = 0;
        for (int s = 0; s < ns; s++) {
            char *p = dc_ggufw_split_path(path, s, ns);
            CHECK(split == 0 || strstr(p, split ? "-0000" : ""));
            CHECK_OK(dc_gguf_open(p, &f[s], &err), &err);
            free(p);
            total += f[s].n_tensors;
            if (split) {
                uint16_t no = 99, cnt = 0;
                int32_t tc = 0;
                CHECK(dc_gguf_get_u16(&f[s], "split.no", &no) && no == s);
                CHECK(dc_gguf_get_u16(&f[s], "split.count", &cnt) && cnt == 3);
                CHECK(dc_gguf_get_i32(&f[s], "split.tensors.count", &tc) && tc == 3);
                CHECK(f[s].n_kv == (s == 0 ? 13u : 3u));
            } else
                CHECK(f[s].n_kv == 10);
        }
        CHECK(total == 3);
        uint8_t u8v = 0;
        const dc_gguf_kv *kv = dc_gguf_find(&f[0], "t.u8");
        CHECK(kv && kv->type == DC_GGUF_U8 && (u8v = kv->data[0]) == 200);
        float fv;
        CHECK(dc_gguf_get_f32(&f[0], "t.f32", &fv) && fv == 0.5f);
        bool bv;
        CHECK(dc_gguf_get_bool(&f[0], "t.bool", &bv) && bv);
        kv = dc_gguf_find(&f[0], "t.strs");
        const char *s;
        uint64_t l, p0 = 0;
        CHECK(kv && dc_gguf_arr_str_next(kv, &p0, &s, &l) && l == 1 && dc_gguf_arr_str_next(kv, &p0, &s, &l) && l == 0 &&
              dc_gguf_arr_str_next(kv, &p0, &s, &l) && l == 2 && !memcmp(s, "zz", 2) && !dc_gguf_arr_str_next(kv, &p0, &s, &l));
        const dc_gguf_tinfo *t2 = dc_gguf_find_tensor(&f[split ? 2 : 0], "t2");
        CHECK(t2 && t2->n_dims == 3 && t2->ne[2] == 2 && t2->nbytes == 136 && !memcmp(t2->data, buf, 136));
        const dc_gguf_tinfo *t0 = dc_gguf_find_tensor(&f[0], "t0");
        CHECK(t0 && t0->nbytes == 60 && !memcmp(t0->data, buf, 60) && f[0].data_start % 32 == 0);
        for (int s2 = 0; s2 < ns; s2++)
            dc_gguf_close(&f[s2]);
        if (split) {
            /* the split set opens as one checkpoint from any of its names */
            dc_ckpt *ck;
            char p2[4200];
            snprintf(p2, sizeof p2, "%s/w-00002-of-00003.gguf", dir);
            CHECK_OK(dc_ckpt_open(p2, &ck, &err), &err);
            if (ck) {
                CHECK(ck->n_files == 3 && ck->n_tensors == 3 && ck->n_file_tensors == 3 && !ck->has_config);
                const dc_tensor *t = dc_ckpt_find(ck, "t2");
                CHECK(t && t->ndim == 3 && t->shape[0] == 2 && t->shape[2] == 32 && t->dtype == DC_DT_Q8_0);
                dc_weight w2;
                float rows[4 * 32];
                CHECK_OK(dc_ckpt_weight(ck, "t2", &w2, &err), &err);
                CHECK(w2.rows == 4 && w2.cols == 32);
                CHECK_OK(dc_weight_rows(&w2, 0, 4, rows, DC_DEQ_EXACT, &err), &err);
                CHECK(rows[0] == (float)(int8_t)buf[2] && rows[32 + 5] == (float)(int8_t)buf[34 + 2 + 5]);
                dc_ckpt_close(ck);
            }
            /* a missing split */
            char p3[4200];
            snprintf(p3, sizeof p3, "%s/w-00003-of-00003.gguf", dir);
            remove(p3);
            CHECK(dc_ckpt_open(p2, &ck, &err) == DC_ERR_MODEL && strstr(err.msg, "split 3 of 3"));
        }
    }
    char *sp = dc_ggufw_split_path("/x/model.gguf", 1, 12);
    CHECK(!strcmp(sp, "/x/model-00002-of-00012.gguf"));
    free(sp);
}

/* ---- Q8_0 ---------------------------------------------------------------------------------- */

static void gen(float *x, int n)
{
    uint64_t s = 42;
    for (int i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t u = (uint32_t)(s >> 33);
        int kind = (i / 32) % 4;
        float f = ((float)(u % 2000001u) - 1000000.0f) * 1e-6f;
        if (kind == 1)
            f *= 1000.0f;
        else if (kind == 2)
            f = (i % 3 == 0) ? 0.0f : f * 1e-5f;
        else if (kind == 3)
            f = (float)((int)(u % 255u) - 127) / 64.0f;
        x[i] = f;
    }
}

static void test_q8_0(void)
{
    int n = 32 * 4096;
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
    uint8_t *q = malloc((size_t)n / 32 * 34);
    gen(x, n);
    dc_q8_0_quantize_row(x, q, n);
    /* the hashes of ggml's own quantize_row_q8_0_ref and dequantize_row_q8_0 on this input
     * (libggml-base.so of node-llama-cpp 3.22.1; tests/interop/ggml_check.c re-checks live) */
    CHECK_MSG(XXH3_64bits(q, (size_t)n / 32 * 34) == 0x7b983a611fe8f4f4ull, "Q8_0 bytes differ from ggml's");
    CHECK(dc_ggml_decode(DC_DT_Q8_0, q, y, n));
    CHECK_MSG(XXH3_64bits(y, (size_t)n * 4) == 0x46eb4e2fe65caf46ull, "Q8_0 decode differs from ggml's");
    int bad = 0;
    for (int b = 0; b < n / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        for (int j = 0; j < 32; j++)
            bad += fabsf(y[b * 32 + j] - x[b * 32 + j]) > amax / 127 * (0.5f + 127.0f / 2048) * 1.001f + 127 * 0x1p-25f;
    }
    CHECK_MSG(bad == 0, "%d values off by more than half a step", bad);
    float z[32] = {0};
    dc_q8_0_quantize_row(z, q, 32);
    CHECK(q[0] == 0 && q[1] == 0 && q[2] == 0); /* d = 0, codes 0 */
    CHECK(!dc_ggml_decode(DC_DT_Q8_0, q, y, 31));
    CHECK(!dc_ggml_decode(DC_DT_IQ2_XS, q, y, 256)); /* no decoder (deepcast writes no IQ2 types) */
    CHECK(!dc_ggml_decode(DC_DT_Q4_K, q, y, 255));   /* not a whole block */
    CHECK(dc_ggml_dtype(DC_GGML_Q8_0) == DC_DT_Q8_0 && dc_ggml_from_dtype(DC_DT_BF16) == DC_GGML_BF16 &&
          dc_ggml_dtype(4) == DC_DT_INVALID && dc_ggml_from_dtype(DC_DT_F8_E4M3) < 0);
    uint64_t nb;
    CHECK(dc_dtype_nbytes(DC_DT_Q8_0, 64, &nb) && nb == 68 && !dc_dtype_nbytes(DC_DT_Q8_0, 65, &nb));
    CHECK(dc_dtype_from_name("Q8_0") == DC_DT_INVALID); /* not a safetensors dtype */
    free(x);
    free(y);
    free(q);
}

/* ---- the deepseek2 export read back --------------------------------------------------------- */

/* Compares every Hugging Face tensor of src with the GGUF's view: same names and shapes, rows
 * equal bit for bit (tol < 0) or within tol * max|row| (Q8_0, F16). */
static void compare_views(const char *src, const char *gguf, double tol, const char *what)
{
    dc_err err = {0};
    dc_ckpt *a = NULL, *b = NULL;
    CHECK_OK(dc_ckpt_open(src, &a, &err), &err);
    CHECK_OK(dc_ckpt_open(gguf, &b, &err), &err);
    if (!a || !b) {
        dc_ckpt_close(a);
        dc_ckpt_close(b);
        return;
    }
    int compared = 0, mismatched = 0, missing = 0;
    double worst = 0;
    for (size_t i = 0; i < a->n_tensors; i++) {
        const dc_tensor *t = a->tensors[i];
        if (dc_str_ends_with(t->name, "_scale_inv"))
            continue;
        const dc_tensor *u = dc_ckpt_find(b, t->name);
        if (!u) {
            missing++;
            fprintf(stderr, "%s: %s missing from the GGUF\n", what, t->name);
            continue;
        }
        bool same_shape = t->ndim == u->ndim;
        for (int k = 0; same_shape && k < t->ndim; k++)
            same_shape = t->shape[k] == u->shape[k];
        if (!same_shape) {
            mismatched++;
            fprintf(stderr, "%s: %s shape differs\n", what, t->name);
            continue;
        }
        dc_weight wa, wb;
        if (dc_ckpt_weight(a, t->name, &wa, &err) || dc_ckpt_weight(b, t->name, &wb, &err)) {
            mismatched++;
            fprintf(stderr, "%s: %s: %s\n", what, t->name, err.msg);
            continue;
        }
        size_t n = (size_t)(wa.rows * wa.cols);
        float *ra = malloc(n * 4 + 4), *rb = malloc(n * 4 + 4);
        /* read in two pieces: the virtual kv_b_proj must serve any row range */
        int64_t h = wa.rows / 3;
        if (dc_weight_rows(&wa, 0, wa.rows, ra, DC_DEQ_BF16_ROUND, &err) ||
            dc_weight_rows(&wb, 0, h, rb, DC_DEQ_BF16_ROUND, &err) ||
            dc_weight_rows(&wb, h, wb.rows - h, rb + h * wb.cols, DC_DEQ_BF16_ROUND, &err)) {
            mismatched++;
            fprintf(stderr, "%s: %s: %s\n", what, t->name, err.msg);
        } else if (tol < 0) {
            if (memcmp(ra, rb, n * 4)) {
                mismatched++;
                fprintf(stderr, "%s: %s rows differ\n", what, t->name);
            }
        } else {
            /* quantization blocks run along the stored rows; the k half of kv_b_proj is stored
             * transposed (attn_k_b), so its error is bounded by the tensor's max, not the row's */
            bool kvb = dc_str_ends_with(t->name, "kv_b_proj.weight");
            double tmax = 0;
            for (size_t q = 0; kvb && q < n; q++)
                tmax = fmax(tmax, fabs(ra[q]));
            for (int64_t r = 0; r < wa.rows; r++) {
                double amax = tmax, d = 0;
                for (int64_t c = 0; c < wa.cols; c++) {
                    amax = fmax(amax, fabs(ra[r * wa.cols + c]));
                    d = fmax(d, fabs(ra[r * wa.cols + c] - rb[r * wa.cols + c]));
                }
                if (amax > 0 && d / amax > worst)
                    worst = d / amax;
                if (d > tol * amax + 1e-30) {
                    mismatched++;
                    fprintf(stderr, "%s: %s row %lld off by %g (max %g)\n", what, t->name, (long long)r, d, amax);
                    break;
                }
            }
        }
        free(ra);
        free(rb);
        compared++;
    }
    CHECK_MSG(compared > 100 && mismatched == 0 && missing == 0, "%s: %d compared, %d mismatched, %d missing", what,
              compared, mismatched, missing);
    if (tol >= 0)
        fprintf(stderr, "%s: worst |d| / max|row| = %.3g\n", what, worst);
    /* the config synthesized from the deepseek2.* keys is the source's */
    const dc_config *x = &a->cfg, *y = &b->cfg;
    CHECK_MSG(b->has_config && x->arch == y->arch && x->vocab_size == y->vocab_size && x->hidden_size == y->hidden_size &&
                  x->intermediate_size == y->intermediate_size && x->moe_intermediate_size == y->moe_intermediate_size &&
                  x->n_layers == y->n_layers && x->n_heads == y->n_heads && x->q_lora_rank == y->q_lora_rank &&
                  x->kv_lora_rank == y->kv_lora_rank && x->qk_nope_head_dim == y->qk_nope_head_dim &&
                  x->qk_rope_head_dim == y->qk_rope_head_dim && x->v_head_dim == y->v_head_dim &&
                  x->n_experts_routed == y->n_experts_routed && x->n_experts_shared == y->n_experts_shared &&
                  x->n_experts_per_tok == y->n_experts_per_tok && x->n_group == y->n_group && x->topk_group == y->topk_group &&
                  x->first_k_dense_replace == y->first_k_dense_replace &&
                  x->routed_scaling_factor == y->routed_scaling_factor && x->scoring_func == y->scoring_func &&
                  x->norm_topk_prob == y->norm_topk_prob && x->has_router_bias == y->has_router_bias &&
                  x->rope_theta == y->rope_theta && x->rms_norm_eps == y->rms_norm_eps &&
                  x->max_position_embeddings == y->max_position_embeddings && x->rope_yarn == y->rope_yarn &&
                  x->rope_factor == y->rope_factor && x->rope_mscale_all_dim == y->rope_mscale_all_dim &&
                  x->rope_beta_fast == y->rope_beta_fast && x->rope_beta_slow == y->rope_beta_slow &&
                  x->rope_original_max_pos == y->rope_original_max_pos && x->tie_word_embeddings == y->tie_word_embeddings,
              "%s: synthesized config differs from config.json", what);
    dc_check chk;
    if (dc_ckpt_check(b, &chk, &err) == DC_OK) {
        CHECK_MSG(chk.n_missing == 0 && chk.n_unexpected == 0 && chk.n_mismatched == 0, "%s: --check: %zu missing, %zu unexpected, %zu mismatched",
                  what, chk.n_missing, chk.n_unexpected, chk.n_mismatched);
        dc_check_free(&chk);
    } else
        CHECK_MSG(0, "%s: check: %s", what, err.msg);
    dc_ckpt_close(a);
    dc_ckpt_close(b);
}

static bool export_to(const char *src, const char *out, dc_gguf_out type, uint64_t split, bool drop_mtp)
{
    dc_gguf_export_opts o;
    dc_gguf_export_opts_init(&o);
    o.type = type;
    o.split_max_size = split;
    o.drop_mtp = drop_mtp;
    o.force = true;
    dc_gguf_export_stats s;
    dc_err err = {0};
    dc_status st = dc_gguf_export(src, out, &o, NULL, &s, &err);
    CHECK_MSG(st == DC_OK, "export %s -> %s: %s", src, out, err.msg);
    return st == DC_OK;
}

static void test_export(void)
{
    const char *dir = dc_test_tmpdir("gguf_export");
    char src[4096], out[4200];
    int saved = dc_log_level;
    dc_log_level = 0;
    snprintf(src, sizeof src, "%s/models/v3-bf16", DC_ORACLE);
    snprintf(out, sizeof out, "%s/v3.gguf", dir);
    if (export_to(src, out, DC_GGUF_OUT_F32, 0, false))
        compare_views(src, out, -1, "v3-bf16 -> F32 GGUF");
    snprintf(out, sizeof out, "%s/v3-bf16.gguf", dir);
    if (export_to(src, out, DC_GGUF_OUT_AUTO, 0, false))
        compare_views(src, out, -1, "v3-bf16 -> BF16 GGUF (auto)");
    snprintf(out, sizeof out, "%s/v3q.gguf", dir);
    if (export_to(src, out, DC_GGUF_OUT_Q8_0, 0, false))
        compare_views(src, out, (0.5 + 127.0 / 2048 + 0.01) / 127, "v3-bf16 -> Q8_0 GGUF");
    snprintf(out, sizeof out, "%s/v3h.gguf", dir);
    if (export_to(src, out, DC_GGUF_OUT_F16, 0, false))
        compare_views(src, out, 1.0 / 1024, "v3-bf16 -> F16 GGUF");
    snprintf(out, sizeof out, "%s/sp/v3.gguf", dir);
    char spdir[4200];
    snprintf(spdir, sizeof spdir, "%s/sp", dir);
    dc_rm_rf(spdir);
    mkdir(spdir, 0755);
    if (export_to(src, out, DC_GGUF_OUT_F32, 10000000, false)) {
        snprintf(out, sizeof out, "%s/sp/v3-00003-of-00007.gguf", dir);
        compare_views(src, out, -1, "v3-bf16 -> F32 GGUF in 7 splits");
    }
    /* FP8 source: dequantized as DeepSeek does, then F32: equal to the source read through
     * dc_weight_rows with DC_DEQ_BF16_ROUND */
    snprintf(src, sizeof src, "%s/models/v3-fp8", DC_ORACLE);
    snprintf(out, sizeof out, "%s/v3fp8.gguf", dir);
    if (export_to(src, out, DC_GGUF_OUT_F32, 0, false))
        compare_views(src, out, -1, "v3-fp8 -> F32 GGUF");
    snprintf(src, sizeof src, "%s/models/v2lite", DC_ORACLE);
    snprintf(out, sizeof out, "%s/v2.gguf", dir);
    if (export_to(src, out, DC_GGUF_OUT_F32, 0, false))
        compare_views(src, out, -1, "v2lite -> F32 GGUF");
    /* --drop-mtp: no layer-3 tensors, no nextn key */
    snprintf(src, sizeof src, "%s/models/v3-bf16", DC_ORACLE);
    snprintf(out, sizeof out, "%s/nomtp.gguf", dir);
    if (export_to(src, out, DC_GGUF_OUT_BF16, 0, true)) {
        dc_gguf_file f;
        dc_err err;
        CHECK_OK(dc_gguf_open(out, &f, &err), &err);
        uint32_t bc = 0;
        CHECK(dc_gguf_get_u32(&f, "deepseek2.block_count", &bc) && bc == 3 && !dc_gguf_find(&f, "deepseek2.nextn_predict_layers") &&
              !dc_gguf_find_tensor(&f, "blk.3.attn_norm.weight") && dc_gguf_find_tensor(&f, "blk.2.attn_norm.weight"));
        const char *s;
        uint64_t l;
        CHECK(dc_gguf_get_str(&f, "tokenizer.ggml.model", &s, &l) && l == 4 && !memcmp(s, "none", 4));
        dc_gguf_close(&f);
    }
    /* thread count does not change a byte */
    char o1[4200], o2[4200];
    snprintf(o1, sizeof o1, "%s/t1.gguf", dir);
    snprintf(o2, sizeof o2, "%s/t2.gguf", dir);
    omp_set_num_threads(1);
    bool e1 = export_to(src, o1, DC_GGUF_OUT_Q8_0, 0, false);
    omp_set_num_threads(3);
    bool e2 = export_to(src, o2, DC_GGUF_OUT_Q8_0, 0, false);
    omp_set_num_threads(2);
    if (e1 && e2) {
        dc_map m1, m2;
        dc_err err;
        if (dc_map_open(o1, &m1, &err) == DC_OK && dc_map_open(o2, &m2, &err) == DC_OK) {
            CHECK(m1.size == m2.size && !memcmp(m1.data, m2.data, m1.size));
            dc_map_close(&m1);
            dc_map_close(&m2);
        }
    }
    dc_log_level = saved;
}

/* A deepseek2 GGUF whose metadata is incomplete or contradicts itself. */
static void test_bad_metadata(void)
{
    const char *dir = dc_test_tmpdir("gguf_meta");
    char path[4200];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    for (int c = 0; c < 3; c++) {
        dc_ggufw *w = dc_ggufw_new();
        dc_err err = {0};
        dc_ggufw_kv_str(w, "general.architecture", "deepseek2", 9, &err);
        if (c != 0)
            dc_ggufw_kv_u32(w, "deepseek2.block_count", c == 1 ? 100000 : 1, &err);
        dc_ggufw_kv_u32(w, "deepseek2.embedding_length", 64, &err);
        dc_ggufw_kv_u32(w, "deepseek2.attention.head_count", 2, &err);
        dc_ggufw_kv_u32(w, "deepseek2.attention.kv_lora_rank", 32, &err);
        dc_ggufw_kv_u32(w, "deepseek2.rope.dimension_count", 16, &err);
        dc_ggufw_kv_u32(w, "deepseek2.attention.key_length_mla", c == 2 ? 16 : 48, &err);
        dc_ggufw_kv_u32(w, "deepseek2.attention.value_length_mla", 32, &err);
        int64_t ne[2] = {64, 100};
        size_t idx;
        dc_ggufw_add(w, "token_embd.weight", DC_GGML_F32, 2, ne, &idx, &err);
        CHECK_OK(dc_ggufw_plan(w, 0, &err), &err);
        CHECK_OK(dc_ggufw_open(w, path, true, &err), &err);
        CHECK_OK(dc_ggufw_finish(w, &err), &err);
        dc_ggufw_free(w);
        dc_ckpt *ck;
        dc_status st = dc_ckpt_open(path, &ck, &err);
        const char *want[3] = {"without the key deepseek2.block_count", "deepseek2.block_count 100000 exceeds the 1 tensors",
                               "key_length_mla 16 is not above rope.dimension_count 16"};
        CHECK_MSG(st == DC_ERR_CONFIG && strstr(err.msg, "m.gguf") && strstr(err.msg, want[c]), "case %d: %d %s", c, (int)st,
                  err.msg);
    }
}

int main(void)
{
    test_catalogue();
    test_writer();
    test_q8_0();
    test_export();
    test_bad_metadata();
    return dc_test_done();
}
