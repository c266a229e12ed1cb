/* common/ and formats/: scalar float formats, the safetensors reader and writer, checkpoints,
 * configs, tensor names, and the malformed-input catalog (each case: status code, a message
 * that names the file and the numbers, no crash). */
#include "dc_test.h"
#include "dc_ckpt.h"
#include "dc_float.h"
#include "dc_fp8.h"
#include "dc_io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------------- */

static void write_bytes(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fclose(f);
}

/* A safetensors file with the given header text and data_len zero bytes of data. */
static void write_st(const char *path, const char *header, size_t data_len)
{
    size_t hl = strlen(header);
    size_t n = 8 + hl + data_len;
    uint8_t *b = calloc(1, n);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    write_bytes(path, b, n);
    free(b);
}

static char *pjoin(const char *a, const char *b)
{
    static char buf[8][4096];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 4096, "%s/%s", a, b);
    return p;
}

/* ---- float formats ------------------------------------------------------------------------- */

static void test_floats(void)
{
    /* e4m3: every finite code decodes and re-encodes to itself */
    int bad = 0;
    for (int c = 0; c < 256; c++) {
        if ((c & 0x7f) == 0x7f)
            continue;
        float f = dc_e4m3_to_f32((uint8_t)c);
        uint8_t back = dc_f32_to_e4m3(f);
        if (back != c && !(f == 0 && (back & 0x7f) == 0))
            bad++;
    }
    CHECK_MSG(bad == 0, "%d e4m3 codes do not round-trip", bad);
    CHECK(dc_e4m3_to_f32(0x7e) == 448.0f);
    CHECK(dc_e4m3_to_f32(0x01) == ldexpf(1, -9));
    CHECK(dc_f32_to_e4m3(1000.0f) == 0x7e);     /* saturates */
    CHECK(dc_f32_to_e4m3(-1000.0f) == 0xfe);
    CHECK(isnan(dc_e4m3_to_f32(0x7f)));
    /* ties to even: 1.0625 is halfway between 1.0 (0x38) and 1.125 (0x39) -> even mantissa 0x38 */
    CHECK(dc_f32_to_e4m3(1.0625f) == 0x38);
    CHECK(dc_f32_to_e4m3(1.1875f) == 0x3a); /* halfway 1.125/1.25 -> 1.25 (even) */
    /* subnormal halfway: 2^-10 is halfway between 0 and 2^-9 -> 0 */
    CHECK(dc_f32_to_e4m3(ldexpf(1, -10)) == 0);
    CHECK(dc_f32_to_e4m3(ldexpf(3, -10)) == 0x02); /* 1.5 * 2^-9 -> 2 * 2^-9 (even) */
    /* bf16 round to nearest even */
    CHECK(dc_f32_to_bf16(dc_bits_f32(0x3f808000u)) == 0x3f80); /* tie, even stays */
    CHECK(dc_f32_to_bf16(dc_bits_f32(0x3f818000u)) == 0x3f82); /* tie, odd rounds up */
    CHECK(dc_f32_to_bf16(dc_bits_f32(0x3f808001u)) == 0x3f81);
    /* f16 */
    int badh = 0;
    for (int h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue;
        if (dc_f32_to_f16(dc_f16_to_f32((uint16_t)h)) != h)
            badh++;
    }
    CHECK_MSG(badh == 0, "%d f16 values do not round-trip", badh);
    CHECK(dc_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(dc_f32_to_f16(65519.0f) == 0x7bff);
    /* e5m2 round trip */
    int bad5 = 0;
    for (int c = 0; c < 256; c++) {
        float f = dc_e5m2_to_f32((uint8_t)c);
        if (isnan(f))
            continue;
        if (dc_f32_to_e5m2(f) != c)
            bad5++;
    }
    CHECK(bad5 == 0);
    /* fast e4m3 encoder == reference on a dense sweep of f32 bit patterns */
    long mism = 0;
    for (uint64_t u = 0; u < 0x100000000ull; u += 997) {
        float f = dc_bits_f32((uint32_t)u);
        if (dc_f32_to_e4m3(f) != dc_f32_to_e4m3_ref(f))
            mism++;
    }
    for (int c = 0; c < 126; c++) { /* exact midpoints between neighbouring codes */
        float mid = 0.5f * (dc_e4m3_to_f32((uint8_t)c) + dc_e4m3_to_f32((uint8_t)(c + 1)));
        if (dc_f32_to_e4m3(mid) != dc_f32_to_e4m3_ref(mid) || dc_f32_to_e4m3(-mid) != dc_f32_to_e4m3_ref(-mid))
            mism++;
    }
    CHECK_MSG(mism == 0, "%ld fast/reference e4m3 mismatches", mism);
    CHECK(dc_e8m0_to_f32(127) == 1.0f && dc_e8m0_to_f32(130) == 8.0f);
    /* fp8 block scale */
    CHECK(dc_fp8_block_scale(448.0f, DC_SCALE_F32) == 1.0f);
    CHECK(dc_fp8_block_scale(300.0f, DC_SCALE_UE8M0) == 1.0f);
    CHECK(dc_fp8_block_scale(449.0f, DC_SCALE_UE8M0) == 2.0f);
    CHECK(dc_fp8_block_scale(0.0f, DC_SCALE_F32) == 1.0f);
    /* dtype names */
    const char *names[] = {"BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64",
                           "F8_E4M3", "F8_E5M2", "F8_E8M0"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        CHECK_MSG(!strcmp(dc_dtype_name(dc_dtype_from_name(names[i])), names[i]), "%s", names[i]);
    CHECK(dc_dtype_from_name("F7") == DC_DT_INVALID);
    uint64_t sz;
    CHECK(dc_parse_size("5GB", &sz) && sz == 5000000000ull);
    CHECK(dc_parse_size("1.5GiB", &sz) && sz == 1610612736ull);
    CHECK(!dc_parse_size("5XB", &sz));
}

/* ---- writer round trip --------------------------------------------------------------------- */

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
}

static void write_model(const char *dir, uint64_t shard)
{
    dc_err err = {0};
    dc_stw *w = dc_stw_new();
    size_t idx[5];
    int64_t s0[2] = {100, 64}, s1[1] = {64}, s2[2] = {256, 256}, s3[3] = {2, 3, 4}, s4[0];
    CHECK_OK(dc_stw_add(w, "b.weight", DC_DT_BF16, 2, s0, &idx[0], &err), &err);
    CHECK_OK(dc_stw_add(w, "a.norm", DC_DT_F32, 1, s1, &idx[1], &err), &err);
    CHECK_OK(dc_stw_add(w, "c.fp8", DC_DT_F8_E4M3, 2, s2, &idx[2], &err), &err);
    CHECK_OK(dc_stw_add(w, "d.i64", DC_DT_I64, 3, s3, &idx[3], &err), &err);
    CHECK_OK(dc_stw_add(w, "e.scalar", DC_DT_F16, 0, s4, &idx[4], &err), &err);
    CHECK_OK(dc_stw_meta(w, "format", "pt", &err), &err);
    CHECK_OK(dc_stw_plan(w, shard, &err), &err);
    CHECK_OK(dc_stw_open(w, dir, &err), &err);
    for (int i = 4; i >= 0; i--) { /* any order */
        const dc_stw_tensor *t = dc_stw_get(w, idx[i]);
        uint8_t *b = malloc(t->nbytes + 1);
        fill(b, t->nbytes, (unsigned)i);
        CHECK_OK(dc_stw_write(w, idx[i], 0, b, t->nbytes, &err), &err);
        free(b);
    }
    CHECK_OK(dc_stw_finish(w, &err), &err);
    dc_stw_free(w);
}

static void test_writer(void)
{
    const char *d1 = dc_test_tmpdir("writer1");
    write_model(d1, 20000); /* forces several shards */
    CHECK(access(pjoin(d1, "model.safetensors.index.json"), F_OK) == 0);
    CHECK(access(pjoin(d1, "model-00001-of-00003.safetensors"), F_OK) == 0);
    CHECK(access(pjoin(d1, "model-00003-of-00003.safetensors"), F_OK) == 0);
    dc_err err = {0};
    dc_ckpt *ck = NULL;
    CHECK_OK(dc_ckpt_open(d1, &ck, &err), &err);
    if (!ck)
        return;
    CHECK(ck->n_tensors == 5 && ck->n_files == 3 && ck->has_index && !ck->has_config);
    CHECK(ck->index_total_size == 100 * 64 * 2 + 64 * 4 + 256 * 256 + 24 * 8 + 2);
    const char *order[] = {"b.weight", "a.norm", "c.fp8", "d.i64", "e.scalar"};
    for (int i = 0; i < 5; i++) {
        const dc_tensor *t = dc_ckpt_find(ck, order[i]);
        CHECK_MSG(t != NULL, "%s", order[i]);
        if (!t)
            continue;
        uint8_t *b = malloc(t->nbytes + 1);
        fill(b, t->nbytes, (unsigned)i);
        CHECK_MSG(memcmp(b, t->data, t->nbytes) == 0, "bytes of %s", order[i]);
        CHECK(t->offset % 8 == 0 || i != 0); /* headers are padded to 8 bytes */
        free(b);
    }
    CHECK(dc_ckpt_find(ck, "e.scalar")->ndim == 0);
    CHECK(!strcmp(ck->files[0].meta[0].key, "format"));
    dc_ckpt_close(ck);
    /* single shard: model.safetensors, no index; identical bytes on a second run */
    const char *d2 = dc_test_tmpdir("writer2");
    write_model(d2, 0);
    CHECK(access(pjoin(d2, "model.safetensors"), F_OK) == 0);
    CHECK(access(pjoin(d2, "model.safetensors.index.json"), F_OK) != 0);
    const char *d3 = dc_test_tmpdir("writer3");
    write_model(d3, 0);
    char *a, *b;
    size_t la, lb;
    CHECK_OK(dc_read_file(pjoin(d2, "model.safetensors"), &a, &la, 1 << 30, &err), &err);
    CHECK_OK(dc_read_file(pjoin(d3, "model.safetensors"), &b, &lb, 1 << 30, &err), &err);
    CHECK(la == lb && memcmp(a, b, la) == 0);
    free(a);
    free(b);
    CHECK_OK(dc_ckpt_open(pjoin(d2, "model.safetensors"), &ck, &err), &err);
    if (ck) {
        CHECK(ck->n_tensors == 5);
        dc_ckpt_close(ck);
    }
    /* abort leaves nothing behind */
    const char *d4 = dc_test_tmpdir("writer4");
    dc_stw *w = dc_stw_new();
    int64_t s[1] = {10};
    CHECK_OK(dc_stw_add(w, "x", DC_DT_F32, 1, s, NULL, &err), &err);
    CHECK_OK(dc_stw_open(w, d4, &err), &err);
    dc_stw_abort(w);
    dc_stw_free(w);
    CHECK(access(pjoin(d4, "model.safetensors"), F_OK) != 0);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", d4);
    CHECK(system(cmd) == 0);
    /* outfile: nothing under the final name until commit */
    dc_outfile of;
    const char *fp = pjoin(d4, "out.bin");
    CHECK_OK(dc_outfile_open(&of, fp, false, &err), &err);
    CHECK(access(fp, F_OK) != 0);
    CHECK_OK(dc_outfile_pwrite(&of, "abc", 3, 0, &err), &err);
    CHECK_OK(dc_outfile_commit(&of, &err), &err);
    CHECK(access(fp, F_OK) == 0);
    CHECK(dc_outfile_open(&of, fp, false, &err) == DC_ERR_EXISTS);
}

/* ---- malformed inputs ---------------------------------------------------------------------- */

typedef struct st_case {
    const char *what;
    const char *header; /* NULL: raw bytes below */
    size_t data_len;
    const char *raw;
    size_t raw_len;
    dc_status code;
    const char *msg; /* substring of the message */
} st_case;

#define T(h) "{\"t\":" h "}"
static const st_case ST_CASES[] = {
    {"empty file", NULL, 0, "", 0, DC_ERR_FORMAT, "too short for the 8-byte header length"},
    {"truncated length", NULL, 0, "\x10\x00\x00", 3, DC_ERR_FORMAT, "file is 3 bytes"},
    {"header length past end", NULL, 0, "\xff\x00\x00\x00\x00\x00\x00\x00{}", 10, DC_ERR_FORMAT,
     "header length 255 runs past the end of the file (10 bytes)"},
    {"header length 2^63", NULL, 0, "\x00\x00\x00\x00\x00\x00\x00\x80{}", 10, DC_ERR_FORMAT, "runs past the end"},
    {"header not JSON", "{not json}", 0, NULL, 0, DC_ERR_FORMAT, "header is not valid JSON"},
    {"header is an array", "[]", 0, NULL, 0, DC_ERR_FORMAT, "does not start with '{'"},
    {"header starts with a space", " {}", 0, NULL, 0, DC_ERR_FORMAT, "does not start with '{'"},
    {"garbage after the JSON", "{}xx", 0, NULL, 0, DC_ERR_FORMAT, "unexpected bytes after the header JSON"},
    {"unknown dtype", T("{\"dtype\":\"F7\",\"shape\":[1],\"data_offsets\":[0,1]}"), 1, NULL, 0, DC_ERR_FORMAT,
     "tensor 't': unknown dtype \"F7\""},
    {"missing dtype", T("{\"shape\":[1],\"data_offsets\":[0,1]}"), 1, NULL, 0, DC_ERR_FORMAT, "\"dtype\""},
    {"shape not an array", T("{\"dtype\":\"U8\",\"shape\":5,\"data_offsets\":[0,5]}"), 5, NULL, 0, DC_ERR_FORMAT,
     "\"shape\""},
    {"negative dim", T("{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}"), 0, NULL, 0, DC_ERR_FORMAT,
     "shape[0] is not a non-negative integer"},
    {"fractional dim", T("{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,0]}"), 0, NULL, 0, DC_ERR_FORMAT,
     "shape[0] is not a non-negative integer"},
    {"too many dims", T("{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}"), 1, NULL, 0,
     DC_ERR_FORMAT, "9 dimensions"},
    {"overflowing dims", T("{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}"), 0, NULL, 0,
     DC_ERR_FORMAT, "overflows 64 bits"},
    {"overflowing bytes", T("{\"dtype\":\"F64\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,0]}"), 0, NULL, 0,
     DC_ERR_FORMAT, "byte size overflows"},
    {"no data_offsets", T("{\"dtype\":\"U8\",\"shape\":[1]}"), 1, NULL, 0, DC_ERR_FORMAT, "must be [begin, end]"},
    {"data_offsets of length 1", T("{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}"), 1, NULL, 0, DC_ERR_FORMAT,
     "must be [begin, end]"},
    {"offsets backwards", T("{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,2]}"), 4, NULL, 0, DC_ERR_FORMAT,
     "data_offsets [4, 2] end before they begin"},
    {"offsets out of range", T("{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}"), 4, NULL, 0, DC_ERR_FORMAT,
     "data_offsets [0, 8] run past the data section (4 bytes)"},
    {"shape/bytes mismatch", T("{\"dtype\":\"BF16\",\"shape\":[3,2],\"data_offsets\":[0,8]}"), 8, NULL, 0,
     DC_ERR_FORMAT, "shape 3x2 x BF16 needs 12 bytes but data_offsets [0, 8] span 8"},
    {"overlapping tensors",
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"U8\",\"shape\":[4],"
     "\"data_offsets\":[2,6]}}",
     6, NULL, 0, DC_ERR_FORMAT, "tensors 'a' [0, 4] and 'b' [2, 6] overlap"},
    {"hole in the data",
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"U8\",\"shape\":[2],"
     "\"data_offsets\":[6,8]}}",
     8, NULL, 0, DC_ERR_FORMAT, "2 unused bytes in the data section before tensor 'b' at offset 6"},
    {"trailing data", T("{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}"), 9, NULL, 0, DC_ERR_FORMAT,
     "the tensors cover 4 bytes but the data section holds 9"},
    {"duplicate names",
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
     "\"data_offsets\":[1,2]}}",
     2, NULL, 0, DC_ERR_FORMAT, "duplicate header key 'a'"},
    {"__metadata__ not an object", "{\"__metadata__\":[1]}", 0, NULL, 0, DC_ERR_FORMAT, "__metadata__ is not an object"},
    {"__metadata__ value not a string", "{\"__metadata__\":{\"format\":1}}", 0, NULL, 0, DC_ERR_FORMAT,
     "__metadata__ value for 'format' is not a string"},
    {"entry not an object", "{\"t\":[1,2]}", 0, NULL, 0, DC_ERR_FORMAT, "header entry is not an object"},
    {"offsets not integers", T("{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[\"0\",1]}"), 1, NULL, 0,
     DC_ERR_FORMAT, "data_offsets are not non-negative integers"},
};

static void test_malformed_files(void)
{
    const char *d = dc_test_tmpdir("malformed");
    for (size_t i = 0; i < sizeof ST_CASES / sizeof *ST_CASES; i++) {
        const st_case *c = &ST_CASES[i];
        char path[4200];
        snprintf(path, sizeof path, "%s/case%02zu.safetensors", d, i);
        if (c->header)
            write_st(path, c->header, c->data_len);
        else
            write_bytes(path, c->raw, c->raw_len);
        dc_err err = {0};
        dc_ckpt *ck = NULL;
        dc_status st = dc_ckpt_open(path, &ck, &err);
        CHECK_MSG(st == c->code, "%s: status %d, expected %d (%s)", c->what, st, c->code, err.msg);
        CHECK_MSG(strstr(err.msg, c->msg) != NULL, "%s: message '%s' lacks '%s'", c->what, err.msg, c->msg);
        CHECK_MSG(strstr(err.msg, path) != NULL, "%s: message '%s' does not name the file", c->what, err.msg);
        CHECK(ck == NULL);
    }
}

static const char *GOOD_A = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
static const char *GOOD_B = "{\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";

typedef struct dir_case {
    const char *what;
    const char *index; /* NULL: no index */
    const char *config;
    bool both_have_x; /* shard b also holds "x" */
    dc_status code;
    const char *msg;
} dir_case;

#define IDX(m) "{\"metadata\":{\"total_size\":12},\"weight_map\":{" m "}}"
static const dir_case DIR_CASES[] = {
    {"index names a missing shard", IDX("\"x\":\"a.safetensors\",\"y\":\"zz.safetensors\""), NULL, false, DC_ERR_MODEL,
     "names shard zz.safetensors, which does not exist"},
    {"index maps a tensor to the wrong shard", IDX("\"x\":\"b.safetensors\",\"y\":\"b.safetensors\""), NULL, false,
     DC_ERR_MODEL, "tensor 'x' is mapped to b.safetensors, which does not contain it"},
    {"index names a missing tensor", IDX("\"x\":\"a.safetensors\",\"y\":\"b.safetensors\",\"w\":\"a.safetensors\""),
     NULL, false, DC_ERR_MODEL, "tensor 'w' is mapped to a.safetensors, which does not contain it"},
    {"tensor in two shards (no index)", NULL, NULL, true, DC_ERR_MODEL,
     "tensor 'x' is in two shards: a.safetensors and b.safetensors"},
    {"tensor in two shards (index)", IDX("\"x\":\"a.safetensors\",\"y\":\"b.safetensors\""), NULL, true, DC_ERR_MODEL,
     "tensor 'x' is in shard b.safetensors but the index maps it to a.safetensors"},
    {"index not JSON", "{weight_map", NULL, false, DC_ERR_FORMAT, "not valid JSON"},
    {"index without weight_map", "{\"metadata\":{}}", NULL, false, DC_ERR_FORMAT, "no \"weight_map\" object"},
    {"index path traversal", IDX("\"x\":\"../a.safetensors\""), NULL, false, DC_ERR_FORMAT, "not a plain file name"},
    {"config not JSON", NULL, "{model_type", false, DC_ERR_CONFIG, "not a JSON object"},
    {"config unsupported architecture", NULL, "{\"model_type\":\"mistral\",\"architectures\":[\"MistralForCausalLM\"]}",
     false, DC_ERR_UNSUPPORTED, "unsupported architecture: model_type \"mistral\""},
    {"config missing field", NULL, "{\"model_type\":\"deepseek_v3\",\"vocab_size\":10}", false, DC_ERR_CONFIG,
     "missing required field \"hidden_size\""},
};

/* A complete, consistent V3 config with one field replaced (key: JSON fragment). */
static char *v3_config(const char *key, const char *value)
{
    static const char *fields[][2] = {
        {"model_type", "\"deepseek_v3\""}, {"vocab_size", "100"}, {"hidden_size", "64"},
        {"intermediate_size", "96"}, {"moe_intermediate_size", "32"}, {"num_hidden_layers", "2"},
        {"num_attention_heads", "2"}, {"kv_lora_rank", "16"}, {"qk_nope_head_dim", "8"},
        {"qk_rope_head_dim", "8"}, {"v_head_dim", "8"}, {"n_routed_experts", "8"},
        {"num_experts_per_tok", "2"}, {"n_group", "4"}, {"topk_group", "2"}, {"first_k_dense_replace", "1"},
        {"scoring_func", "\"sigmoid\""}, {"q_lora_rank", "16"},
        {"quantization_config", "{\"quant_method\":\"fp8\",\"fmt\":\"e4m3\",\"weight_block_size\":[128,128]}"},
    };
    size_t cap = 4096, o = 0;
    char *s = malloc(cap);
    o += (size_t)snprintf(s + o, cap - o, "{");
    bool replaced = false;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const char *v = fields[i][1];
        if (!strcmp(fields[i][0], key)) {
            v = value;
            replaced = true;
        }
        if (v)
            o += (size_t)snprintf(s + o, cap - o, "%s\"%s\":%s", o > 1 ? "," : "", fields[i][0], v);
    }
    if (!replaced && value)
        o += (size_t)snprintf(s + o, cap - o, ",\"%s\":%s", key, value);
    snprintf(s + o, cap - o, "}");
    return s;
}

typedef struct cfg_case {
    const char *what, *key, *value;
    dc_status code;
    const char *msg;
} cfg_case;

static const cfg_case CFG_CASES[] = {
    {"valid", "x", NULL, DC_OK, ""},
    {"experts per token > experts", "num_experts_per_tok", "9", DC_ERR_CONFIG,
     "num_experts_per_tok 9 exceeds n_routed_experts 8"},
    {"experts not divisible by groups", "n_group", "3", DC_ERR_CONFIG, "not divisible by n_group 3"},
    {"topk_group > n_group", "topk_group", "5", DC_ERR_CONFIG, "topk_group 5 exceeds n_group 4"},
    {"groups cannot supply top-k", "num_experts_per_tok", "5", DC_ERR_CONFIG, "cannot supply num_experts_per_tok 5"},
    {"negative hidden", "hidden_size", "-64", DC_ERR_CONFIG, "\"hidden_size\" = -64 is out of range"},
    {"string where a number belongs", "vocab_size", "\"100\"", DC_ERR_CONFIG, "\"vocab_size\" must be an integer"},
    {"odd rope dim", "qk_rope_head_dim", "7", DC_ERR_CONFIG, "qk_rope_head_dim 7 must be even"},
    {"unknown scoring func", "scoring_func", "\"relu\"", DC_ERR_UNSUPPORTED, "unsupported scoring_func \"relu\""},
    {"unknown scale_fmt", "quantization_config",
     "{\"quant_method\":\"fp8\",\"fmt\":\"e4m3\",\"scale_fmt\":\"e5m3\"}", DC_ERR_UNSUPPORTED,
     "unknown quantization_config.scale_fmt \"e5m3\""},
    {"unknown quant method", "quantization_config", "{\"quant_method\":\"gptq\"}", DC_ERR_UNSUPPORTED,
     "quant_method \"gptq\""},
    {"bad block size", "quantization_config", "{\"quant_method\":\"fp8\",\"weight_block_size\":[0,128]}",
     DC_ERR_CONFIG, "weight_block_size [0, 128] is invalid"},
    {"dense layers > layers", "first_k_dense_replace", "3", DC_ERR_CONFIG,
     "first_k_dense_replace 3 exceeds num_hidden_layers 2"},
    {"bos out of vocab", "bos_token_id", "100", DC_ERR_CONFIG, "bos_token_id 100"},
    {"kv heads differ", "num_key_value_heads", "1", DC_ERR_CONFIG, "num_key_value_heads 1 differs"},
    {"unsupported rope scaling", "rope_scaling", "{\"type\":\"linear\",\"factor\":2}", DC_ERR_UNSUPPORTED,
     "unsupported rope_scaling type \"linear\""},
};

static void test_malformed_dirs(void)
{
    for (size_t i = 0; i < sizeof DIR_CASES / sizeof *DIR_CASES; i++) {
        const dir_case *c = &DIR_CASES[i];
        char name[64];
        snprintf(name, sizeof name, "dircase%02zu", i);
        const char *d = dc_test_tmpdir(name);
        write_st(pjoin(d, "a.safetensors"), GOOD_A, 8);
        if (c->both_have_x)
            write_st(pjoin(d, "b.safetensors"),
                     "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"y\":{\"dtype\":\"F32\","
                     "\"shape\":[1],\"data_offsets\":[4,8]}}",
                     8);
        else
            write_st(pjoin(d, "b.safetensors"), GOOD_B, 4);
        if (c->index)
            write_bytes(pjoin(d, "model.safetensors.index.json"), c->index, strlen(c->index));
        if (c->config)
            write_bytes(pjoin(d, "config.json"), c->config, strlen(c->config));
        dc_err err = {0};
        dc_ckpt *ck = NULL;
        dc_status st = dc_ckpt_open(d, &ck, &err);
        CHECK_MSG(st == c->code, "%s: status %d, expected %d (%s)", c->what, st, c->code, err.msg);
        CHECK_MSG(strstr(err.msg, c->msg) != NULL, "%s: message '%s' lacks '%s'", c->what, err.msg, c->msg);
        CHECK_MSG(strstr(err.msg, d) != NULL, "%s: message '%s' does not name the path", c->what, err.msg);
        dc_ckpt_close(ck);
    }
    /* a shard the index does not name is reported, not fatal */
    const char *d = dc_test_tmpdir("unindexed");
    write_st(pjoin(d, "a.safetensors"), GOOD_A, 8);
    write_st(pjoin(d, "b.safetensors"), GOOD_B, 4);
    const char *ix = IDX("\"x\":\"a.safetensors\"");
    write_bytes(pjoin(d, "model.safetensors.index.json"), ix, strlen(ix));
    dc_err uerr = {0};
    dc_ckpt *ck = NULL;
    CHECK_OK(dc_ckpt_open(d, &ck, &uerr), &uerr);
    CHECK(ck && ck->n_unindexed == 1 && !strcmp(ck->unindexed[0], "b.safetensors") && ck->n_tensors == 1);
    dc_ckpt_close(ck);
    for (size_t i = 0; i < sizeof CFG_CASES / sizeof *CFG_CASES; i++) {
        const cfg_case *c = &CFG_CASES[i];
        char *js = v3_config(c->key, c->value);
        dc_config cfg;
        dc_err err = {0};
        dc_status st = dc_config_parse(js, strlen(js), "cfg.json", &cfg, &err);
        CHECK_MSG(st == c->code, "%s: status %d, expected %d (%s) for %s", c->what, st, c->code, err.msg, js);
        CHECK_MSG(st == DC_OK || (strstr(err.msg, c->msg) && strstr(err.msg, "cfg.json")),
                  "%s: message '%s' lacks '%s'", c->what, err.msg, c->msg);
        free(js);
    }
}

/* FP8 pairing errors: weight without scale, scale of the wrong shape, scale on a BF16 tensor. */
static void test_weight_pairing(void)
{
    dc_tensor w = {.name = "w", .dtype = DC_DT_F8_E4M3, .ndim = 2, .shape = {200, 300}};
    dc_tensor s = {.name = "w_scale_inv", .dtype = DC_DT_F32, .ndim = 2, .shape = {2, 3}};
    dc_tensor bad = {.name = "w_scale_inv", .dtype = DC_DT_F32, .ndim = 2, .shape = {2, 2}};
    dc_tensor bf = {.name = "b", .dtype = DC_DT_BF16, .ndim = 2, .shape = {200, 300}};
    dc_weight wt;
    dc_err err = {0};
    CHECK_OK(dc_weight_init(&wt, &w, &s, 128, 128, "f.safetensors", &err), &err);
    CHECK(dc_weight_init(&wt, &w, NULL, 128, 128, "f.safetensors", &err) == DC_ERR_MODEL &&
          strstr(err.msg, "FP8 tensor w has no scale"));
    CHECK(dc_weight_init(&wt, &w, &bad, 128, 128, "f.safetensors", &err) == DC_ERR_MODEL &&
          strstr(err.msg, "has shape 2x2") && strstr(err.msg, "needs 2x3"));
    CHECK(dc_weight_init(&wt, &bf, &s, 128, 128, "f.safetensors", &err) == DC_ERR_MODEL &&
          strstr(err.msg, "has dtype BF16 but also a block scale"));
    /* dequantisation: bf16(f32(fp8) * scale), edge blocks */
    uint8_t q[4 * 130];
    float sc[2] = {0.3f, 2.0f};
    for (int i = 0; i < 4 * 130; i++)
        q[i] = (uint8_t)(i % 126);
    dc_tensor t = {.name = "q", .dtype = DC_DT_F8_E4M3, .ndim = 2, .shape = {4, 130}, .data = q};
    dc_tensor ts = {.name = "q_scale_inv", .dtype = DC_DT_F32, .ndim = 2, .shape = {1, 2}, .data = (uint8_t *)sc};
    CHECK_OK(dc_weight_init(&wt, &t, &ts, 128, 128, "mem", &err), &err);
    float out[2 * 130], ex[2 * 130];
    CHECK_OK(dc_weight_rows(&wt, 2, 2, out, DC_DEQ_BF16_ROUND, &err), &err);
    CHECK_OK(dc_weight_rows(&wt, 2, 2, ex, DC_DEQ_EXACT, &err), &err);
    int bad_r = 0, bad_e = 0;
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 130; c++) {
            float v = dc_e4m3_to_f32(q[(r + 2) * 130 + c]) * sc[c / 128];
            bad_e += ex[r * 130 + c] != v;
            bad_r += out[r * 130 + c] != dc_round_bf16(v);
        }
    CHECK(bad_r == 0 && bad_e == 0);
    CHECK(dc_weight_rows(&wt, 3, 2, out, 0, &err) == DC_ERR_INTERNAL);
}

/* The oracle checkpoints open, match their configs, and the names parse back to roles. */
static void test_oracle(void)
{
    const char *variants[] = {"v3-bf16", "v3-fp8", "v3-fp8-ue8m0", "v2lite"};
    for (int v = 0; v < 4; v++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/models/%s", DC_ORACLE, variants[v]);
        dc_err err = {0};
        dc_ckpt *ck = NULL;
        CHECK_OK(dc_ckpt_open(path, &ck, &err), &err);
        if (!ck)
            continue;
        dc_check chk;
        CHECK_OK(dc_ckpt_check(ck, &chk, &err), &err);
        CHECK_MSG(chk.n_missing == 0 && chk.n_unexpected == 0 && chk.n_mismatched == 0, "%s: %zu/%zu/%zu",
                  variants[v], chk.n_missing, chk.n_unexpected, chk.n_mismatched);
        bool fp8 = v == 1 || v == 2;
        CHECK(chk.n_fp8 == (fp8 ? 176u : 0u) && chk.n_scales == chk.n_fp8);
        CHECK(chk.n_mtp_layers_present == (v < 3 ? 1 : 0));
        CHECK(ck->cfg.scale_fmt == (v == 2 ? DC_SCALE_UE8M0 : DC_SCALE_F32));
        int unparsed = 0;
        for (size_t i = 0; i < ck->n_tensors; i++) {
            dc_name_info ni;
            char back[512];
            if (!dc_name_parse(&ck->cfg, ck->tensors[i]->name, &ni)) {
                unparsed++;
                continue;
            }
            dc_name_build(&ni, back, sizeof back);
            unparsed += strcmp(back, ck->tensors[i]->name) != 0;
        }
        CHECK_MSG(unparsed == 0, "%s: %d names do not round-trip", variants[v], unparsed);
        dc_check_free(&chk);
        dc_ckpt_close(ck);
    }
}

/* dc_first_nonfinite: the first NaN / infinity wherever it is, -1 for finite data (FLT_MAX, subnormals,
 * -0 included) */
static void test_first_nonfinite(void)
{
    float x[1000];
    for (int i = 0; i < 1000; i++)
        x[i] = i % 3 == 0 ? 3.4028235e38f : i % 3 == 1 ? -1e-45f : -0.0f;
    CHECK(dc_first_nonfinite(x, 1000) == -1 && dc_first_nonfinite(x, 0) == -1);
    const int at[] = {0, 7, 8, 500, 999};
    for (int k = 0; k < 5; k++) {
        float save = x[at[k]];
        x[at[k]] = k % 2 ? INFINITY : NAN;
        if (k == 4)
            x[at[k]] = -INFINITY;
        CHECK_MSG(dc_first_nonfinite(x, 1000) == at[k], "non-finite at %d found at %lld", at[k],
                  (long long)dc_first_nonfinite(x, 1000));
        x[at[k]] = save;
    }
    x[300] = NAN, x[20] = INFINITY;
    CHECK(dc_first_nonfinite(x, 1000) == 20 && dc_first_nonfinite(x, 20) == -1);
}

int main(void)
{
    test_floats();
    test_first_nonfinite();
    test_writer();
    test_malformed_files();
    test_malformed_dirs();
    test_weight_pairing();
    test_oracle();
    return dc_test_done();
}
