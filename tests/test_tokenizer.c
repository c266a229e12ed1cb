/* Byte-level BPE tokenizer: the real DeepSeek-V3 tokenizer against reference ids from Hugging
 * Face tokenizers, round trips, the synthetic tokenizer writer, and malformed files. */
#include "dc_test.h"
#include "dc_tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BOS_STR u8"<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>"
#define EOS_STR u8"<\uFF5Cend\u2581of\u2581sentence\uFF5C>"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 > cap) {
            cap = (n + 65536) * 2;
            char *nb = realloc(b, cap);
            if (!nb) {
                free(b);
                fclose(f);
                return NULL;
            }
            b = nb;
        }
        size_t r = fread(b + n, 1, cap - n - 1, f);
        n += r;
        if (!r)
            break;
    }
    fclose(f);
    b[n] = 0;
    if (len)
        *len = n;
    return b;
}

static void put_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool ids_equal(const int32_t *ids, size_t n, const cJSON *exp)
{
    if (!cJSON_IsArray(exp) || (size_t)cJSON_GetArraySize(exp) != n)
        return false;
    size_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, exp) {
        if (!cJSON_IsNumber(x) || x->valueint != ids[i++])
            return false;
    }
    return true;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", (int)ids[i]);
    fputc('\n', stderr);
}

static void check_roundtrip(const dc_tok *t, const char *text, size_t len)
{
    dc_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(dc_tok_encode(t, text, len, true, &ids, &n, &err), &err);
    char *back = NULL;
    size_t blen = 0;
    CHECK_OK(dc_tok_decode(t, ids, n, true, &back, &blen, &err), &err);
    CHECK_MSG(back && blen == len && memcmp(back, text, len) == 0, "round trip of \"%.60s\"",
              text);
    free(ids);
    free(back);
}

/* ---- the real tokenizer ------------------------------------------------------------------ */

static void test_real(const char *dir)
{
    dc_err err = {0};
    dc_tok *t = NULL;
    double t0 = now();
    CHECK_OK(dc_tok_load(dir, &t, &err), &err);
    if (!t)
        return;
    printf("loaded DeepSeek-V3 tokenizer in %.2f s\n", now() - t0);
    CHECK(dc_tok_vocab_size(t) == 128815);
    CHECK(dc_tok_n_merges(t) == 127741);
    CHECK(dc_tok_bos(t) == 0);
    CHECK(dc_tok_eos(t) == 1);
    CHECK(dc_tok_adds_bos(t));
    CHECK(!dc_tok_adds_eos(t));
    CHECK(dc_tok_token_id(t, u8"<\uFF5CUser\uFF5C>", strlen(u8"<\uFF5CUser\uFF5C>")) == 128803);
    size_t l = 0;
    const char *s = dc_tok_token(t, 1, &l);
    CHECK(s && l == strlen(EOS_STR) && !memcmp(s, EOS_STR, l));
    CHECK(dc_tok_token(t, 128815, NULL) == NULL);
    /* every added token written in text is one token */
    {
        int bad = 0;
        for (int32_t id = 0; id < 128815; id++) {
            if (id == 3)
                id = 128000;
            size_t tl = 0;
            const char *tok = dc_tok_token(t, id, &tl);
            int32_t *ids = NULL;
            size_t n = 0;
            if (!tok || dc_tok_encode(t, tok, tl, false, &ids, &n, &err) || n != 1 || ids[0] != id)
                bad++;
            free(ids);
        }
        CHECK_MSG(bad == 0, "%d added tokens do not encode to themselves", bad);
    }
    CHECK(dc_tok_token(t, -1, NULL) == NULL);

    char path[4096];
    snprintf(path, sizeof path, "%s/tokenize-cases.json", dir);
    size_t clen = 0;
    char *ctext = slurp(path, &clen);
    CHECK_MSG(ctext != NULL, "cannot read %s", path);
    cJSON *cases = ctext ? cJSON_ParseWithLength(ctext, clen) : NULL;
    CHECK(cJSON_IsArray(cases));
    int ncase = 0, nmatch = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *jt = cJSON_GetObjectItemCaseSensitive(c, "text");
        if (!cJSON_IsString(jt))
            continue;
        const char *text = jt->valuestring;
        size_t len = strlen(text);
        ncase++;
        bool all = true;
        for (int sp = 0; sp < 2; sp++) {
            const cJSON *exp = cJSON_GetObjectItemCaseSensitive(c, sp ? "ids_with_special" : "ids");
            int32_t *ids = NULL;
            size_t n = 0;
            dc_status st = dc_tok_encode(t, text, len, sp, &ids, &n, &err);
            CHECK_MSG(st == DC_OK, "encode \"%.60s\": %s", text, err.msg);
            bool eq = st == DC_OK && ids_equal(ids, n, exp);
            CHECK_MSG(eq, "%s of \"%.80s\" differ", sp ? "ids_with_special" : "ids", text);
            if (!eq) {
                all = false;
                print_ids("got", ids, n);
                char *e = cJSON_PrintUnformatted(exp);
                fprintf(stderr, "  expected: %s\n", e ? e : "?");
                free(e);
            }
            if (st == DC_OK && !sp) {
                char *back = NULL;
                size_t blen = 0;
                CHECK_OK(dc_tok_decode(t, ids, n, false, &back, &blen, &err), &err);
                CHECK_MSG(back && blen == len && memcmp(back, text, len) == 0,
                          "decode(encode(\"%.60s\")) = \"%.60s\"", text, back ? back : "(null)");
                free(back);
            }
            free(ids);
        }
        nmatch += all;
    }
    printf("%d of %d reference cases match\n", nmatch, ncase);
    CHECK(ncase == 73);
    cJSON_Delete(cases);
    free(ctext);

    /* skip_special drops BOS; special tokens written in text decode back */
    {
        const char *text = BOS_STR "Hi" EOS_STR;
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(dc_tok_encode(t, text, strlen(text), true, &ids, &n, &err), &err);
        CHECK(n == 4 && ids[0] == 0 && ids[1] == 0 && ids[3] == 1);
        char *back = NULL;
        size_t blen = 0;
        CHECK_OK(dc_tok_decode(t, ids, n, true, &back, &blen, &err), &err);
        CHECK(back && !strcmp(back, "Hi"));
        free(back);
        CHECK_OK(dc_tok_decode(t, ids, n, false, &back, &blen, &err), &err);
        CHECK(back && blen == strlen(BOS_STR) + strlen(text) &&
              !memcmp(back + strlen(BOS_STR), text, strlen(text)));
        free(back);
        free(ids);
    }
    /* NUL bytes are ordinary text */
    check_roundtrip(t, "a\0b\0\0 c", 7);
    /* invalid UTF-8 is a clear input error, at the right offset */
    {
        static const char *const bad[] = {"ab\xff", "\xc3", "x\xed\xa0\x80y", "\xe4\xb8", "\xc0\xaf",
                                          "\xf4\x90\x80\x80"};
        static const size_t off[] = {2, 0, 1, 0, 0, 0};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            int32_t *ids = (int32_t *)1;
            size_t n = 99;
            dc_err e = {0};
            dc_status st = dc_tok_encode(t, bad[i], strlen(bad[i]), true, &ids, &n, &e);
            char want[64];
            snprintf(want, sizeof want, "offset %zu", off[i]);
            CHECK_MSG(st == DC_ERR_INPUT && ids == NULL && n == 0 && strstr(e.msg, want),
                      "invalid UTF-8 case %zu: status %d, message \"%s\"", i, (int)st, e.msg);
        }
    }
    /* decode: unknown ids are input errors; lone bytes become U+FFFD like from_utf8_lossy */
    {
        int32_t bad_ids[] = {19923, 128815};
        char *back = (char *)1;
        dc_err e = {0};
        CHECK(dc_tok_decode(t, bad_ids, 2, false, &back, NULL, &e) == DC_ERR_INPUT);
        CHECK(back == NULL && strstr(e.msg, "128815"));
        int32_t neg = -5;
        CHECK(dc_tok_decode(t, &neg, 1, false, &back, NULL, &e) == DC_ERR_INPUT);
        /* U+00E4 is the byte-level character of byte 0xE4, the lead byte of a 3-byte sequence */
        int32_t lead = dc_tok_token_id(t, u8"\u00e4", 2), h = dc_tok_token_id(t, "H", 1);
        CHECK(lead >= 0 && h >= 0);
        int32_t seq[] = {h, lead, h};
        size_t blen = 0;
        CHECK_OK(dc_tok_decode(t, seq, 3, false, &back, &blen, &err), &err);
        CHECK(back && !strcmp(back, u8"H\uFFFDH") && blen == 5);
        free(back);
        CHECK_OK(dc_tok_decode(t, NULL, 0, false, &back, &blen, &err), &err);
        CHECK(back && blen == 0 && back[0] == 0);
        free(back);
    }
    /* empty text */
    {
        int32_t *ids = NULL;
        size_t n = 9;
        CHECK_OK(dc_tok_encode(t, "", 0, false, &ids, &n, &err), &err);
        CHECK(ids != NULL && n == 0);
        free(ids);
        CHECK_OK(dc_tok_encode(t, NULL, 0, true, &ids, &n, &err), &err);
        CHECK(n == 1 && ids[0] == 0);
        free(ids);
    }
    /* speed: 100 KB of mixed text, and 100 KB of one long word */
    {
        const char *chunk = u8"The model's weights (int4, group size 128) take 350 GB; "
                            u8"\u6a21\u578b\u91cf\u5316 \u3053\u3093\u306b\u3061\u306f! "
                            u8"for (i = 0; i < n; ++i) y[i] += a * x[i];\n";
        size_t cl = strlen(chunk), n = 0, cap = 100 * 1024;
        char *big = malloc(cap + cl);
        CHECK(big != NULL);
        if (big) {
            while (n < cap) {
                memcpy(big + n, chunk, cl);
                n += cl;
            }
            double t1 = now();
            check_roundtrip(t, big, n);
            double dt = now() - t1;
            printf("100 KB mixed text: encode + decode in %.3f s\n", dt);
            CHECK_MSG(dt < 5.0, "100 KB took %.2f s", dt);
            memset(big, 'z', cap);
            t1 = now();
            check_roundtrip(t, big, cap);
            dt = now() - t1;
            printf("100 KB single word: encode + decode in %.3f s\n", dt);
            CHECK_MSG(dt < 5.0, "100 KB took %.2f s", dt);
            free(big);
        }
    }
    dc_tok_free(t);
}

/* ---- synthetic tokenizers ------------------------------------------------------------------ */

static const char *const SAMPLES[] = {
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "def quantize(x, scale):\n    return max(-128, min(127, round(x / scale)))\n",
    u8"\u6a21\u578b\u91cf\u5316\u53ef\u4ee5\u663e\u8457\u964d\u4f4e\u663e\u5b58 "
    u8"\u3053\u3093\u306b\u3061\u306f \U0001F680\u2705 caf\u00e9 na\u00efve",
    "   leading and trailing spaces \t\r\n\n  ",
    "numbers 1234567 3.14159 1e-6 0xDEADBEEF",
    "",
};

static void test_synthetic_one(int vocab, int bos, int eos, uint64_t seed)
{
    char name[64];
    snprintf(name, sizeof name, "syn-%d-%d-%d", vocab, bos, eos);
    const char *dir0 = dc_test_tmpdir(name);
    char dir[4096], dir2[4200], path[4300], path2[4300];
    snprintf(dir, sizeof dir, "%s", dir0);
    snprintf(dir2, sizeof dir2, "%s/again", dir);
    dc_err err = {0};
    CHECK_OK(dc_tok_write_synthetic(dir, vocab, bos, eos, seed, &err), &err);
    CHECK_OK(dc_tok_write_synthetic(dir2, vocab, bos, eos, seed, &err), &err);
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        snprintf(path2, sizeof path2, "%s/%s", dir2, files[i]);
        size_t l1 = 0, l2 = 0;
        char *a = slurp(path, &l1), *b = slurp(path2, &l2);
        CHECK_MSG(a && b && l1 == l2 && !memcmp(a, b, l1), "%s is not deterministic", files[i]);
        if (a && i == 0) {
            cJSON *j = cJSON_Parse(a);
            CHECK(j != NULL);
            static const char *const keys[] = {"version", "truncation", "padding", "added_tokens",
                                               "normalizer", "pre_tokenizer", "post_processor",
                                               "decoder", "model"};
            for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
                CHECK_MSG(cJSON_HasObjectItem(j, keys[k]), "synthetic tokenizer.json lacks %s",
                          keys[k]);
            const cJSON *m = cJSON_GetObjectItem(j, "model");
            CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(m, "type")) ?: "", "BPE"));
            CHECK(cJSON_IsFalse(cJSON_GetObjectItem(m, "byte_fallback")));
            const cJSON *merges = cJSON_GetObjectItem(m, "merges");
            CHECK(cJSON_GetArraySize(merges) > 0 &&
                  cJSON_IsString(cJSON_GetArrayItem(merges, 0)));
            cJSON_Delete(j);
        }
        free(a);
        free(b);
    }
    dc_tok *t = NULL;
    CHECK_OK(dc_tok_load(dir, &t, &err), &err);
    if (!t)
        return;
    printf("synthetic vocab_size=%d bos=%d eos=%d: %zu ids used, %zu merges\n", vocab, bos, eos,
           dc_tok_vocab_size(t), dc_tok_n_merges(t));
    CHECK(dc_tok_vocab_size(t) <= (size_t)vocab);
    CHECK(dc_tok_vocab_size(t) > (size_t)(bos > eos ? bos : eos));
    CHECK(dc_tok_n_merges(t) > 0);
    CHECK(dc_tok_bos(t) == bos);
    CHECK(dc_tok_eos(t) == eos);
    CHECK(dc_tok_adds_bos(t) && !dc_tok_adds_eos(t));
    size_t l = 0;
    const char *s = dc_tok_token(t, bos, &l);
    CHECK(s && l == strlen(BOS_STR) && !memcmp(s, BOS_STR, l));
    s = dc_tok_token(t, eos, &l);
    CHECK(s && l == strlen(EOS_STR) && !memcmp(s, EOS_STR, l));
    for (size_t i = 0; i < sizeof SAMPLES / sizeof *SAMPLES; i++) {
        check_roundtrip(t, SAMPLES[i], strlen(SAMPLES[i]));
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(dc_tok_encode(t, SAMPLES[i], strlen(SAMPLES[i]), true, &ids, &n, &err), &err);
        CHECK(n >= 1 && ids[0] == bos);
        for (size_t k = 0; k < n; k++)
            CHECK_MSG(ids[k] >= 0 && ids[k] < vocab, "id %d out of range", (int)ids[k]);
        free(ids);
    }
    /* the merges do something: English compresses below one token per byte */
    {
        const char *text = SAMPLES[0];
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(dc_tok_encode(t, text, strlen(text), false, &ids, &n, &err), &err);
        CHECK_MSG(n < strlen(text), "%zu tokens for %zu bytes", n, strlen(text));
        free(ids);
    }
    /* special tokens in text */
    {
        const char *text = BOS_STR "hi" EOS_STR;
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(dc_tok_encode(t, text, strlen(text), false, &ids, &n, &err), &err);
        CHECK(n >= 3 && ids[0] == bos && ids[n - 1] == eos);
        free(ids);
    }
    dc_tok_free(t);
}

static void test_synthetic(void)
{
    test_synthetic_one(300, 0, 1, 0);
    test_synthetic_one(3000, 0, 1, 1);
    test_synthetic_one(3000, 2998, 2999, 2);
    test_synthetic_one(1000, 7, 500, 3);
    dc_err err = {0};
    const char *dir = dc_test_tmpdir("syn-bad");
    CHECK(dc_tok_write_synthetic(dir, 200, 0, 1, 0, &err) == DC_ERR_INPUT);
    CHECK(dc_tok_write_synthetic(dir, 300, 5, 5, 0, &err) == DC_ERR_INPUT);
    CHECK(dc_tok_write_synthetic(dir, 300, 0, 300, 0, &err) == DC_ERR_INPUT);
    CHECK(dc_tok_write_synthetic(dir, 300, -1, 1, 0, &err) == DC_ERR_INPUT);
    CHECK(dc_tok_write_synthetic("/nonexistent-dir/x/y", 300, 0, 1, 0, &err) == DC_ERR_IO);
    /* different seeds give different merges */
    char d1[4096], d2[4200];
    snprintf(d1, sizeof d1, "%s/s1", dir);
    snprintf(d2, sizeof d2, "%s/s2", dir);
    CHECK_OK(dc_tok_write_synthetic(d1, 600, 0, 1, 11, &err), &err);
    CHECK_OK(dc_tok_write_synthetic(d2, 600, 0, 1, 12, &err), &err);
    char p1[4300], p2[4300];
    snprintf(p1, sizeof p1, "%s/tokenizer.json", d1);
    snprintf(p2, sizeof p2, "%s/tokenizer.json", d2);
    size_t l1 = 0, l2 = 0;
    char *a = slurp(p1, &l1), *b = slurp(p2, &l2);
    CHECK(a && b && (l1 != l2 || memcmp(a, b, l1)));
    free(a);
    free(b);
}

/* ---- malformed and unsupported files ------------------------------------------------------- */

/* A minimal valid byte-level BPE tokenizer.json with %s holes for sections. */
static const char MINI_FMT[] =
    "{\"version\": \"1.0\", \"added_tokens\": [%s], \"normalizer\": %s, "
    "\"pre_tokenizer\": %s, \"post_processor\": %s, \"decoder\": %s, "
    "\"model\": {\"type\": \"%s\", \"vocab\": %s, \"merges\": %s}}";
#define MINI_ADDED "{\"id\": 4, \"content\": \"<s>\", \"special\": true, \"normalized\": false}"
#define MINI_BL "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}"
#define MINI_VOCAB "{\"a\": 0, \"b\": 1, \"ab\": 2, \"\\u0120\": 3, \"<s>\": 4}"
#define MINI_MERGES "[\"a b\"]"

static dc_status load_mini(const char *dir, const char *added, const char *norm, const char *pre,
                           const char *post, const char *dec, const char *type, const char *vocab,
                           const char *merges, const char *config, dc_err *err)
{
    char buf[8192];
    snprintf(buf, sizeof buf, MINI_FMT, added, norm, pre, post, dec, type, vocab, merges);
    put_file(dir, "tokenizer.json", buf);
    char cpath[4096];
    snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", dir);
    remove(cpath);
    if (config)
        put_file(dir, "tokenizer_config.json", config);
    dc_tok *t = NULL;
    dc_status st = dc_tok_load(dir, &t, err);
    CHECK((st == DC_OK) == (t != NULL));
    dc_tok_free(t);
    return st;
}

#define MINI(...) load_mini(dir, __VA_ARGS__, &err)

static void test_malformed(const char *real_dir)
{
    const char *dir = dc_test_tmpdir("malformed");
    dc_err err = {0};
    /* the baseline loads */
    CHECK_OK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB, MINI_MERGES,
                  NULL), &err);
    /* not JSON: the message names the file */
    put_file(dir, "tokenizer.json", "{\"model\": {\"vocab\": {\"a\": 0,,}}");
    dc_tok *t = NULL;
    CHECK(dc_tok_load(dir, &t, &err) == DC_ERR_FORMAT && !t);
    CHECK_MSG(strstr(err.msg, "tokenizer.json") && strstr(err.msg, "JSON"), "%s", err.msg);
    put_file(dir, "tokenizer.json", "");
    CHECK(dc_tok_load(dir, &t, &err) == DC_ERR_FORMAT && !t);
    put_file(dir, "tokenizer.json", "[1, 2, 3]");
    CHECK(dc_tok_load(dir, &t, &err) == DC_ERR_FORMAT && !t);
    /* missing model */
    put_file(dir, "tokenizer.json", "{\"version\": \"1.0\", \"added_tokens\": []}");
    CHECK(dc_tok_load(dir, &t, &err) == DC_ERR_FORMAT && !t);
    CHECK_MSG(strstr(err.msg, "model"), "%s", err.msg);
    /* merges referencing unknown tokens */
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB, "[\"a c\"]", NULL) ==
          DC_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "\"c\"") && strstr(err.msg, "merge 0"), "%s", err.msg);
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB,
               "[\"a b\", \"b a\"]", NULL) == DC_ERR_FORMAT); /* "ba" not in vocab */
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB, "[\"ab\"]", NULL) ==
          DC_ERR_FORMAT);
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB, "[17]", NULL) ==
          DC_ERR_FORMAT);
    CHECK_OK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB,
                  "[[\"a\", \"b\"]]", NULL), &err);
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB, "{}", NULL) ==
          DC_ERR_FORMAT);
    /* bad vocab ids */
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", "{\"a\": -1}", "[]", NULL) ==
          DC_ERR_FORMAT);
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", "{\"a\": \"x\"}", "[]", NULL) ==
          DC_ERR_FORMAT);
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", "{\"a\": 1.5}", "[]", NULL) ==
          DC_ERR_FORMAT);
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", "[]", "[]", NULL) ==
          DC_ERR_FORMAT);
    /* bad added tokens */
    CHECK(MINI("{\"id\": 9}", "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB, MINI_MERGES,
               NULL) == DC_ERR_FORMAT);
    CHECK(MINI("7", "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB, MINI_MERGES, NULL) ==
          DC_ERR_FORMAT);
    CHECK(MINI("{\"id\": 9, \"content\": \"x\xe4\xb8\"}", "null", MINI_BL, "null", MINI_BL, "BPE",
               MINI_VOCAB, MINI_MERGES, NULL) == DC_ERR_FORMAT); /* not UTF-8 */
    /* unsupported features */
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "WordPiece", MINI_VOCAB, MINI_MERGES,
               NULL) == DC_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "WordPiece"), "%s", err.msg);
    CHECK(MINI(MINI_ADDED, "{\"type\": \"NFC\"}", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB,
               MINI_MERGES, NULL) == DC_OK); /* NFC is supported (utf8proc) */
    CHECK(MINI(MINI_ADDED, "{\"type\": \"NFKD\"}", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB,
               MINI_MERGES, NULL) == DC_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "NFKD"), "%s", err.msg);
    CHECK(MINI(MINI_ADDED, "null", "{\"type\": \"Metaspace\"}", "null", MINI_BL, "BPE", MINI_VOCAB,
               MINI_MERGES, NULL) == DC_ERR_UNSUPPORTED);
    CHECK(MINI(MINI_ADDED, "null", "null", "null", MINI_BL, "BPE", MINI_VOCAB, MINI_MERGES, NULL) ==
          DC_ERR_UNSUPPORTED);
    CHECK(MINI(MINI_ADDED, "null",
               "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"}, \"behavior\": \"Isolated\"}",
               "null", MINI_BL, "BPE", MINI_VOCAB, MINI_MERGES, NULL) == DC_ERR_UNSUPPORTED);
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", "{\"type\": \"WordPiece\"}", "BPE", MINI_VOCAB,
               MINI_MERGES, NULL) == DC_ERR_UNSUPPORTED);
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "{\"type\": \"BertProcessing\"}", MINI_BL, "BPE",
               MINI_VOCAB, MINI_MERGES, NULL) == DC_ERR_UNSUPPORTED);
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB, MINI_MERGES,
               NULL) == DC_OK);
    /* a regex PCRE2 cannot take */
    CHECK(MINI(MINI_ADDED, "null",
               "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
               "{\"Regex\": \"(a\"}, \"behavior\": \"Isolated\", \"invert\": false}, " MINI_BL "]}",
               "null", MINI_BL, "BPE", MINI_VOCAB, MINI_MERGES, NULL) == DC_ERR_UNSUPPORTED);
    /* tokenizer_config.json: malformed, or BOS wanted but unknown */
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB, MINI_MERGES,
               "{\"add_bos_token\": tru") == DC_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "tokenizer_config.json"), "%s", err.msg);
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB, MINI_MERGES,
               "{\"add_bos_token\": true, \"bos_token\": \"<nope>\"}") == DC_ERR_FORMAT);
    CHECK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB, MINI_MERGES,
               "{\"add_bos_token\": 1}") == DC_ERR_FORMAT);
    CHECK_OK(MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB, MINI_MERGES,
                  "{\"add_bos_token\": true, \"bos_token\": {\"content\": \"<s>\"}}"), &err);

    /* the mini tokenizer works: BOS from the config, TemplateProcessing without a config */
    {
        MINI(MINI_ADDED, "null", MINI_BL, "null", MINI_BL, "BPE", MINI_VOCAB, MINI_MERGES,
             "{\"add_bos_token\": true, \"bos_token\": \"<s>\"}");
        CHECK_OK(dc_tok_load(dir, &t, &err), &err);
        if (t) {
            int32_t *ids = NULL;
            size_t n = 0;
            CHECK_OK(dc_tok_encode(t, "ab<s>a b", 8, true, &ids, &n, &err), &err);
            /* bytes outside the vocabulary are dropped, as HF does without unk_token */
            CHECK(n == 6 && ids[0] == 4 && ids[1] == 2 && ids[2] == 4 && ids[3] == 0 &&
                  ids[4] == 3 && ids[5] == 1);
            free(ids);
            dc_tok_free(t);
            t = NULL;
        }
        MINI(MINI_ADDED, "null", MINI_BL,
             "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}, "
             "{\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": {\"<s>\": {\"ids\": [4]}}}",
             MINI_BL, "BPE", MINI_VOCAB, MINI_MERGES, NULL);
        CHECK_OK(dc_tok_load(dir, &t, &err), &err);
        if (t) {
            CHECK(dc_tok_bos(t) == 4 && dc_tok_adds_bos(t));
            int32_t *ids = NULL;
            size_t n = 0;
            CHECK_OK(dc_tok_encode(t, "ab", 2, true, &ids, &n, &err), &err);
            CHECK(n == 2 && ids[0] == 4 && ids[1] == 2);
            free(ids);
            dc_tok_free(t);
            t = NULL;
        }
    }
    /* a missing directory or file */
    CHECK(dc_tok_load("/nonexistent/tokenizer-dir", &t, &err) == DC_ERR_IO && !t);
    CHECK_MSG(strstr(err.msg, "/nonexistent/tokenizer-dir/tokenizer.json"), "%s", err.msg);

    /* truncated and corrupted copies of the real file */
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", real_dir);
    size_t len = 0;
    char *real = slurp(path, &len);
    CHECK(real != NULL);
    if (real) {
        static const double cuts[] = {0.0001, 0.3, 0.9999};
        for (int i = 0; i < 3; i++) {
            size_t cut = (size_t)(len * cuts[i]);
            char c = real[cut];
            real[cut] = 0;
            put_file(dir, "tokenizer.json", real);
            real[cut] = c;
            CHECK(dc_tok_load(dir, &t, &err) == DC_ERR_FORMAT && !t);
        }
        /* corrupt one merge to reference a token that does not exist */
        char *m = strstr(real, "\"merges\"");
        char *q = m ? strchr(m + 9, '"') : NULL; /* the first merge, "\u0120 t" */
        CHECK(q && q[1] == (char)0xC4 && q[2] == (char)0xA0 && q[3] == ' ');
        if (q && q[1] == (char)0xC4 && q[2] == (char)0xA0) {
            /* U+02AC is outside the byte-level alphabet, so no vocabulary token contains it */
            q[1] = (char)0xCA;
            q[2] = (char)0xAC;
            put_file(dir, "tokenizer.json", real);
            CHECK(dc_tok_load(dir, &t, &err) == DC_ERR_FORMAT && !t);
            CHECK_MSG(strstr(err.msg, "not in the vocabulary"), "%s", err.msg);
        }
        free(real);
    }
}

int main(void)
{
    const char *tmp = dc_test_tmpdir("tokenizer");
    char real_dir[4096], cmd[9000];
    snprintf(real_dir, sizeof real_dir, "%s", tmp);
    snprintf(cmd, sizeof cmd, "tar -xzf '%s/tokenizer/deepseek-v3.tar.gz' -C '%s'", DC_TEST_DATA,
             real_dir);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s failed", cmd);
    if (rc == 0)
        test_real(real_dir);
    test_synthetic();
    if (rc == 0)
        test_malformed(real_dir);
    return dc_test_done();
}
