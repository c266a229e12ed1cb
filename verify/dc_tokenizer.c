/* Byte-level BPE tokenizer compatible with Hugging Face `tokenizers` (see dc_tokenizer.h).
 *
 * Pipeline of encode, as HF runs it for a tokenizer.json like DeepSeek-V3's:
 *   1. added tokens that are not "normalized" are cut out of the raw text (leftmost-longest);
 *   2. the normalizer runs on the remaining pieces (identity here) and "normalized" added tokens
 *      are cut out of those;
 *   3. every remaining piece goes through the pre-tokenizer: each Split step splits every piece
 *      separately (so look-arounds never see past a piece), then ByteLevel maps bytes to the GPT-2
 *      byte alphabet (optionally with a prefix space and GPT-2's regex);
 *   4. each word is merged by BPE: the adjacent pair with the lowest merge rank first, the
 *      leftmost one among equal ranks (a binary heap over pair positions, as HF's Word does). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "dc_tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* ------------------------------------------------------------------------------------------ */
/* Small containers                                                                            */

typedef struct ivec {
    int32_t *v;
    size_t n, cap;
} ivec;

static bool ivec_push(ivec *a, int32_t x)
{
    if (a->n == a->cap && !dc_grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v))
        return false;
    a->v[a->n++] = x;
    return true;
}

typedef struct span {
    size_t s, e;
} span;

typedef struct spanvec {
    span *v;
    size_t n, cap;
} spanvec;

static bool spans_push(spanvec *a, size_t s, size_t e)
{
    if (a->n == a->cap && !dc_grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v))
        return false;
    a->v[a->n].s = s;
    a->v[a->n].e = e;
    a->n++;
    return true;
}

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static bool sbuf_add(sbuf *b, const void *data, size_t n)
{
    if (b->n + n + 1 > b->cap && !dc_grow((void **)&b->p, &b->cap, b->n + n + 1, 1))
        return false;
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

static bool sbuf_adds(sbuf *b, const char *s) { return sbuf_add(b, s, strlen(s)); }

/* uint64 -> uint64 open-addressing hash map; UINT64_MAX is the empty key. */
typedef struct u64map {
    uint64_t *keys, *vals;
    size_t cap, n;
} u64map;

#define U64_EMPTY UINT64_MAX

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static bool u64map_rehash(u64map *m, size_t ncap)
{
    uint64_t *k = malloc(ncap * sizeof *k), *v = malloc(ncap * sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return false;
    }
    for (size_t i = 0; i < ncap; i++)
        k[i] = U64_EMPTY;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == U64_EMPTY)
            continue;
        size_t j = mix64(m->keys[i]) & (ncap - 1);
        while (k[j] != U64_EMPTY)
            j = (j + 1) & (ncap - 1);
        k[j] = m->keys[i];
        v[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = k;
    m->vals = v;
    m->cap = ncap;
    return true;
}

/* Inserts or overwrites. Returns false on OOM. */
static bool u64map_put(u64map *m, uint64_t key, uint64_t val)
{
    if ((m->n + 1) * 4 > m->cap * 3 && !u64map_rehash(m, m->cap ? m->cap * 2 : 64))
        return false;
    size_t j = mix64(key) & (m->cap - 1);
    while (m->keys[j] != U64_EMPTY && m->keys[j] != key)
        j = (j + 1) & (m->cap - 1);
    if (m->keys[j] == U64_EMPTY) {
        m->keys[j] = key;
        m->n++;
    }
    m->vals[j] = val;
    return true;
}

static inline bool u64map_get(const u64map *m, uint64_t key, uint64_t *val)
{
    if (!m->cap)
        return false;
    size_t j = mix64(key) & (m->cap - 1);
    while (m->keys[j] != U64_EMPTY) {
        if (m->keys[j] == key) {
            if (val)
                *val = m->vals[j];
            return true;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return false;
}

static void u64map_clear(u64map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        m->keys[i] = U64_EMPTY;
    m->n = 0;
}

static void u64map_free(u64map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* String table: byte strings (any bytes) stored in one pool, each with an int32 value, found by
 * hash. Entries keep insertion order. */
typedef struct strtab {
    char *pool;
    size_t pool_n, pool_cap;
    size_t *off;
    uint32_t *len;
    int32_t *val;
    size_t n, cap;
    int32_t *slots; /* entry index, -1 empty */
    uint32_t *shash;
    size_t nslots;
} strtab;

static inline const char *strtab_str(const strtab *t, size_t i) { return t->pool + t->off[i]; }

static inline uint32_t str_hash32(const char *s, size_t n) { return (uint32_t)XXH3_64bits(s, n); }

static long strtab_find_h(const strtab *t, const char *s, size_t n, uint32_t h)
{
    if (!t->nslots)
        return -1;
    size_t j = h & (t->nslots - 1);
    while (t->slots[j] >= 0) {
        int32_t e = t->slots[j];
        if (t->shash[j] == h && t->len[e] == n && memcmp(t->pool + t->off[e], s, n) == 0)
            return e;
        j = (j + 1) & (t->nslots - 1);
    }
    return -1;
}

static long strtab_find(const strtab *t, const char *s, size_t n)
{
    return strtab_find_h(t, s, n, str_hash32(s, n));
}

static bool strtab_reslot(strtab *t, size_t nslots)
{
    int32_t *sl = malloc(nslots * sizeof *sl);
    uint32_t *sh = malloc(nslots * sizeof *sh);
    if (!sl || !sh) {
        free(sl);
        free(sh);
        return false;
    }
    for (size_t i = 0; i < nslots; i++)
        sl[i] = -1;
    for (size_t i = 0; i < t->nslots; i++) {
        if (t->slots[i] < 0)
            continue;
        size_t j = t->shash[i] & (nslots - 1);
        while (sl[j] >= 0)
            j = (j + 1) & (nslots - 1);
        sl[j] = t->slots[i];
        sh[j] = t->shash[i];
    }
    free(t->slots);
    free(t->shash);
    t->slots = sl;
    t->shash = sh;
    t->nslots = nslots;
    return true;
}

/* Adds s -> val. Returns the entry index (existing entries keep their value and set *existed),
 * or -1 on OOM (or a table over 2^31 entries). */
static long strtab_add(strtab *t, const char *s, size_t n, int32_t val, bool *existed)
{
    uint32_t h = str_hash32(s, n);
    long e = strtab_find_h(t, s, n, h);
    if (existed)
        *existed = e >= 0;
    if (e >= 0)
        return e;
    if (t->n >= INT32_MAX - 1 || n > UINT32_MAX)
        return -1;
    if ((t->n + 1) * 4 > t->nslots * 3 && !strtab_reslot(t, t->nslots ? t->nslots * 2 : 64))
        return -1;
    if (t->n == t->cap) {
        size_t c1 = t->cap, c2 = t->cap, c3 = t->cap;
        if (!dc_grow((void **)&t->off, &c1, t->n + 1, sizeof *t->off) ||
            !dc_grow((void **)&t->len, &c2, t->n + 1, sizeof *t->len) ||
            !dc_grow((void **)&t->val, &c3, t->n + 1, sizeof *t->val))
            return -1;
        /* keep cap at the smallest of the three so a partial failure is retried */
        t->cap = c1 < c2 ? (c1 < c3 ? c1 : c3) : (c2 < c3 ? c2 : c3);
    }
    if (t->pool_n + n + 1 > t->pool_cap &&
        !dc_grow((void **)&t->pool, &t->pool_cap, t->pool_n + n + 1, 1))
        return -1;
    memcpy(t->pool + t->pool_n, s, n);
    t->pool[t->pool_n + n] = 0;
    t->off[t->n] = t->pool_n;
    t->len[t->n] = (uint32_t)n;
    t->val[t->n] = val;
    t->pool_n += n + 1;
    size_t j = h & (t->nslots - 1);
    while (t->slots[j] >= 0)
        j = (j + 1) & (t->nslots - 1);
    t->slots[j] = (int32_t)t->n;
    t->shash[j] = h;
    return (long)t->n++;
}

static void strtab_free(strtab *t)
{
    free(t->pool);
    free(t->off);
    free(t->len);
    free(t->val);
    free(t->slots);
    free(t->shash);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------------------------------ */
/* UTF-8                                                                                       */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is invalid. Sets *cp. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        unsigned b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
            return 0;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return len;
}

/* Offset of the first invalid byte, or n if s is valid UTF-8. */
static size_t utf8_invalid_at(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = utf8_next(u + i, n - i, &cp);
        if (!l)
            return i;
        i += l;
    }
    return n;
}

static size_t utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Appends s[0..n) to b replacing ill-formed sequences by U+FFFD the way Rust's
 * String::from_utf8_lossy does (one replacement per maximal ill-formed subpart). */
static bool utf8_lossy_append(sbuf *b, const unsigned char *s, size_t n)
{
    static const char repl[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    size_t i = 0, run = 0;
    while (i < n) {
        uint32_t cp;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_next(s + i, n - i, &cp);
        if (l) {
            i += l;
            continue;
        }
        /* flush the valid run before i */
        if (!sbuf_add(b, s + run, i - run))
            return false;
        /* maximal subpart: a valid prefix of a sequence, at least one byte */
        unsigned c = s[i];
        size_t need = 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            need = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 3;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 4;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        }
        size_t k = 1;
        while (need && k < need && i + k < n) {
            unsigned x = s[i + k];
            if (k == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xBF))
                break;
            k++;
        }
        if (!sbuf_add(b, repl, 3))
            return false;
        i += k;
        run = i;
    }
    return sbuf_add(b, s + run, n - run);
}

/* GPT-2's byte <-> unicode map: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order. */
static void byte_level_tables(uint16_t b2cp[256], int16_t cp2b[324])
{
    for (int i = 0; i < 324; i++)
        cp2b[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        b2cp[b] = (uint16_t)(printable ? b : 256 + n++);
        cp2b[b2cp[b]] = (int16_t)b;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Regexes: Oniguruma (what HF tokenizers compiles Split patterns with) -> PCRE2               */

#define WORD_CLASS "\\p{L}\\p{M}\\p{Nd}\\p{Pc}"

/* Translates the Oniguruma/Ruby-syntax pattern to PCRE2 syntax with the same meaning under
 * PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE. */
static dc_status onig_to_pcre2(const char *pat, size_t n, sbuf *o, const char *where, dc_err *err)
{
    size_t i = 0;
    int depth = 0;       /* character class nesting */
    bool class_start = false; /* just after '[' or '[^' */
    while (i < n) {
        char c = pat[i];
        bool was_start = class_start;
        class_start = false;
        if (c == '\\') {
            if (i + 1 >= n)
                return dc_err_set(err, DC_ERR_FORMAT, "%s: regex ends with a lone backslash", where);
            char d = pat[i + 1];
            const char *rep = NULL;
            switch (d) {
            case 's': rep = "\\p{White_Space}"; break;
            case 'S': rep = "\\P{White_Space}"; break;
            case 'd': rep = "\\p{Nd}"; break;
            case 'D': rep = "\\P{Nd}"; break;
            case 'w': rep = depth ? WORD_CLASS : "[" WORD_CLASS "]"; break;
            case 'h': rep = depth ? "0-9a-fA-F" : "[0-9a-fA-F]"; break;
            case 'v': rep = "\\x{0B}"; break;
            case 'W':
            case 'H':
                if (depth)
                    return dc_err_set(err, DC_ERR_UNSUPPORTED,
                                      "%s: regex uses \\%c inside a character class", where, d);
                rep = d == 'W' ? "[^" WORD_CLASS "]" : "[^0-9a-fA-F]";
                break;
            default: break;
            }
            if (rep) {
                if (!sbuf_adds(o, rep))
                    goto oom;
                i += 2;
                continue;
            }
            if ((d == 'p' || d == 'P') && i + 2 < n && pat[i + 2] == '{') {
                const char *close = memchr(pat + i + 3, '}', n - (i + 3));
                if (!close)
                    return dc_err_set(err, DC_ERR_FORMAT, "%s: regex has an unterminated \\%c{",
                                      where, d);
                size_t a = i + 3, b = (size_t)(close - pat);
                bool neg = d == 'P';
                if (a < b && pat[a] == '^') {
                    neg = !neg;
                    a++;
                }
                if (!sbuf_adds(o, neg ? "\\P{" : "\\p{") || !sbuf_add(o, pat + a, b - a) ||
                    !sbuf_adds(o, "}"))
                    goto oom;
                i = b + 1;
                continue;
            }
            if (d == 'u' && i + 6 <= n) {
                char hex[5];
                memcpy(hex, pat + i + 2, 4);
                hex[4] = 0;
                bool ok = true;
                for (int k = 0; k < 4; k++)
                    if (!strchr("0123456789abcdefABCDEF", hex[k]))
                        ok = false;
                if (ok) {
                    if (!sbuf_adds(o, "\\x{") || !sbuf_adds(o, hex) || !sbuf_adds(o, "}"))
                        goto oom;
                    i += 6;
                    continue;
                }
            }
            if (!sbuf_add(o, pat + i, 2))
                goto oom;
            i += 2;
            continue;
        }
        if (depth) {
            if (c == '[') {
                if (i + 1 < n && pat[i + 1] == ':') { /* POSIX bracket [:alpha:] */
                    const char *end = NULL;
                    for (size_t k = i + 2; k + 1 < n; k++)
                        if (pat[k] == ':' && pat[k + 1] == ']') {
                            end = pat + k;
                            break;
                        }
                    if (end) {
                        size_t l = (size_t)(end - (pat + i)) + 2;
                        if (!sbuf_add(o, pat + i, l))
                            goto oom;
                        i += l;
                        continue;
                    }
                }
                return dc_err_set(err, DC_ERR_UNSUPPORTED,
                                  "%s: regex uses a nested character class at offset %zu", where, i);
            }
            if (c == '&' && i + 1 < n && pat[i + 1] == '&')
                return dc_err_set(err, DC_ERR_UNSUPPORTED,
                                  "%s: regex uses class intersection '&&' at offset %zu", where, i);
            if (c == ']' && !was_start)
                depth--;
            if (!sbuf_add(o, &c, 1))
                goto oom;
            i++;
            continue;
        }
        if (c == '[') {
            depth = 1;
            class_start = true;
            if (!sbuf_add(o, &c, 1))
                goto oom;
            i++;
            if (i < n && pat[i] == '^') {
                if (!sbuf_add(o, "^", 1))
                    goto oom;
                i++;
            }
            continue;
        }
        if (c == '(' && i + 2 < n && pat[i + 1] == '?') {
            /* inline options: Ruby's 'm' is PCRE2's 's' (dot matches newline) */
            size_t k = i + 2;
            while (k < n && strchr("imx-", pat[k]))
                k++;
            if (k > i + 2 && k < n && (pat[k] == ')' || pat[k] == ':')) {
                if (!sbuf_adds(o, "(?"))
                    goto oom;
                for (size_t q = i + 2; q < k; q++) {
                    char oc = pat[q] == 'm' ? 's' : pat[q];
                    if (!sbuf_add(o, &oc, 1))
                        goto oom;
                }
                i = k;
                continue;
            }
        }
        if (!sbuf_add(o, &c, 1))
            goto oom;
        i++;
    }
    if (depth)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: regex has an unterminated character class",
                          where);
    return DC_OK;
oom:
    return dc_err_set(err, DC_ERR_NOMEM, "out of memory translating a regex");
}

static dc_status regex_compile(const char *pat, size_t n, const char *where, pcre2_code **out,
                               dc_err *err)
{
    sbuf o = {0};
    dc_status st = onig_to_pcre2(pat, n, &o, where, err);
    if (st)
        goto done;
    if (!o.p && !sbuf_add(&o, "", 0)) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory compiling a regex");
        goto done;
    }
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory compiling a regex");
        goto done;
    }
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)o.p, o.n,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NEVER_BACKSLASH_C,
                                   &ec, &eo, cc);
    pcre2_compile_context_free(cc);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        st = dc_err_set(err, DC_ERR_UNSUPPORTED,
                        "%s: cannot compile regex \"%.*s\" (as PCRE2 \"%s\"): %s at offset %zu",
                        where, (int)(n > 200 ? 200 : n), pat, o.p, (const char *)msg, (size_t)eo);
        goto done;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: the interpreter is the fallback */
    *out = re;
done:
    free(o.p);
    return st;
}

/* Finds the first match of re in subj[0..n) at or after start. Returns 1 and sets *ms/*me, 0 if
 * none, or -1 with err set. */
static int regex_find(const pcre2_code *re, pcre2_match_data *md, const char *subj, size_t n,
                      size_t start, size_t *ms, size_t *me, const char *where, dc_err *err)
{
    int rc = pcre2_match(re, (PCRE2_SPTR)subj, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_MATCHLIMIT ||
        rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT)
        rc = pcre2_match(re, (PCRE2_SPTR)subj, n, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                         NULL);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        dc_err_set(err, rc == PCRE2_ERROR_NOMEMORY ? DC_ERR_NOMEM : DC_ERR_INPUT,
                   "%s: regex match failed on a %zu-byte piece: %s", where, n, (const char *)msg);
        return -1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *ms = ov[0];
    *me = ov[1];
    if (*me < *ms) /* \K in a lookahead: treat as empty */
        *me = *ms;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Pre-tokenizer                                                                               */

enum { SB_REMOVED, SB_ISOLATED, SB_MERGED_PREV, SB_MERGED_NEXT, SB_CONTIGUOUS };

typedef struct split_step {
    pcre2_code *re; /* NULL: literal */
    char *lit;
    size_t lit_len;
    int behavior;
    bool invert;
} split_step;

typedef struct pretok {
    split_step *steps;
    size_t n_steps;
    bool byte_level;        /* ends in ByteLevel */
    bool bl_prefix_space;   /* ByteLevel add_prefix_space */
    pcre2_code *bl_re;      /* ByteLevel use_regex: GPT-2's pattern, else NULL */
} pretok;

/* GPT-2's pattern, as HF's ByteLevel pre-tokenizer uses it (Oniguruma syntax). */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static void pretok_free(pretok *p)
{
    for (size_t i = 0; i < p->n_steps; i++) {
        pcre2_code_free(p->steps[i].re);
        free(p->steps[i].lit);
    }
    free(p->steps);
    pcre2_code_free(p->bl_re);
    memset(p, 0, sizeof *p);
}

static const char *json_type_name(const cJSON *j)
{
    if (!j)
        return "missing";
    if (cJSON_IsNull(j))
        return "null";
    if (cJSON_IsBool(j))
        return "a boolean";
    if (cJSON_IsNumber(j))
        return "a number";
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsArray(j))
        return "an array";
    if (cJSON_IsObject(j))
        return "an object";
    return "invalid";
}

/* Optional boolean member: missing or null -> def. */
static dc_status json_bool(const cJSON *obj, const char *key, bool def, bool *out, const char *where,
                           const char *ctx, dc_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return DC_OK;
    }
    if (!cJSON_IsBool(j))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: %s \"%s\" must be a boolean, not %s", where, ctx,
                          key, json_type_name(j));
    *out = cJSON_IsTrue(j);
    return DC_OK;
}

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

static dc_status pretok_add_step(pretok *p, const cJSON *j, const char *where, dc_err *err)
{
    if (!cJSON_IsObject(j))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: pre_tokenizer entry is %s, not an object", where,
                          json_type_name(j));
    const char *type = json_str(j, "type");
    if (!type)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: pre_tokenizer entry has no \"type\"", where);
    if (p->byte_level)
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: pre_tokenizer \"%s\" after \"ByteLevel\" is not supported "
                          "(ByteLevel must be the last step)", where, type);
    dc_status st;
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
        if (!cJSON_IsArray(list))
            return dc_err_set(err, DC_ERR_FORMAT,
                              "%s: pre_tokenizer Sequence has no \"pretokenizers\" array", where);
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
            if ((st = pretok_add_step(p, e, where, err)))
                return st;
        }
        return DC_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        bool use_regex, aps, trim;
        if ((st = json_bool(j, "add_prefix_space", true, &aps, where, "ByteLevel pre_tokenizer", err)) ||
            (st = json_bool(j, "use_regex", true, &use_regex, where, "ByteLevel pre_tokenizer", err)) ||
            (st = json_bool(j, "trim_offsets", true, &trim, where, "ByteLevel pre_tokenizer", err)))
            return st;
        p->byte_level = true;
        p->bl_prefix_space = aps;
        if (use_regex &&
            (st = regex_compile(GPT2_PATTERN, strlen(GPT2_PATTERN), where, &p->bl_re, err)))
            return st;
        return DC_OK;
    }
    if (!strcmp(type, "Split")) {
        split_step s = {0};
        const char *beh = json_str(j, "behavior");
        if (!beh)
            return dc_err_set(err, DC_ERR_FORMAT, "%s: Split pre_tokenizer has no \"behavior\"",
                              where);
        if (!strcmp(beh, "Removed"))
            s.behavior = SB_REMOVED;
        else if (!strcmp(beh, "Isolated"))
            s.behavior = SB_ISOLATED;
        else if (!strcmp(beh, "MergedWithPrevious"))
            s.behavior = SB_MERGED_PREV;
        else if (!strcmp(beh, "MergedWithNext"))
            s.behavior = SB_MERGED_NEXT;
        else if (!strcmp(beh, "Contiguous"))
            s.behavior = SB_CONTIGUOUS;
        else
            return dc_err_set(err, DC_ERR_UNSUPPORTED,
                              "%s: Split pre_tokenizer behavior \"%s\" is not supported", where, beh);
        if ((st = json_bool(j, "invert", false, &s.invert, where, "Split pre_tokenizer", err)))
            return st;
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
        const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
        if (cJSON_IsString(rx)) {
            if ((st = regex_compile(rx->valuestring, strlen(rx->valuestring), where, &s.re, err)))
                return st;
        } else if (cJSON_IsString(lit)) {
            s.lit = dc_strdup(lit->valuestring);
            if (!s.lit)
                return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            s.lit_len = strlen(s.lit);
        } else {
            return dc_err_set(err, DC_ERR_FORMAT,
                              "%s: Split pre_tokenizer \"pattern\" must be {\"Regex\": ...} or "
                              "{\"String\": ...}", where);
        }
        size_t cap = p->n_steps;
        if (!dc_grow((void **)&p->steps, &cap, p->n_steps + 1, sizeof *p->steps)) {
            pcre2_code_free(s.re);
            free(s.lit);
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        }
        p->steps[p->n_steps++] = s;
        return DC_OK;
    }
    return dc_err_set(err, DC_ERR_UNSUPPORTED,
                      "%s: pre_tokenizer type \"%s\" is not supported (supported: Sequence of "
                      "Split steps ending in ByteLevel)", where, type);
}

static dc_status pretok_parse(pretok *p, const cJSON *j, const char *where, dc_err *err)
{
    if (!j || cJSON_IsNull(j))
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: no pre_tokenizer; only byte-level BPE (a ByteLevel pre_tokenizer) "
                          "is supported", where);
    dc_status st = pretok_add_step(p, j, where, err);
    if (st)
        return st;
    if (!p->byte_level)
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: pre_tokenizer has no ByteLevel step; only byte-level BPE is supported",
                          where);
    return DC_OK;
}

typedef struct mrange {
    size_t s, e;
    bool m;
} mrange;

typedef struct mvec {
    mrange *v;
    size_t n, cap;
} mvec;

static bool mvec_push(mvec *a, size_t s, size_t e, bool m)
{
    if (a->n == a->cap && !dc_grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v))
        return false;
    a->v[a->n].s = s;
    a->v[a->n].e = e;
    a->v[a->n].m = m;
    a->n++;
    return true;
}

/* HF's Pattern::find_matches on subj[0..n): ranges covering subj, flagged if they matched.
 * Empty matches right after the previous match are skipped (Oniguruma's find_iter). */
static dc_status find_matches(const pcre2_code *re, const char *lit, size_t lit_len,
                              pcre2_match_data *md, const char *subj, size_t n, mvec *out,
                              const char *where, dc_err *err)
{
    out->n = 0;
    if (!n)
        return mvec_push(out, 0, 0, false) ? DC_OK : dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    size_t prev = 0;
    if (!re) {
        if (!lit_len)
            return mvec_push(out, 0, n, false) ? DC_OK
                                                : dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        size_t pos = 0;
        while (pos + lit_len <= n) {
            const char *f = memmem(subj + pos, n - pos, lit, lit_len);
            if (!f)
                break;
            size_t s = (size_t)(f - subj);
            if ((prev != s && !mvec_push(out, prev, s, false)) ||
                !mvec_push(out, s, s + lit_len, true))
                return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            prev = pos = s + lit_len;
        }
    } else {
        size_t pos = 0, last_end = 0;
        bool have_last = false;
        while (pos <= n) {
            size_t s, e;
            int r = regex_find(re, md, subj, n, pos, &s, &e, where, err);
            if (r < 0)
                return err ? err->code : DC_ERR_INPUT;
            if (!r)
                break;
            if (s == e && have_last && last_end == e) {
                if (pos >= n)
                    break;
                uint32_t cp;
                size_t l = utf8_next((const unsigned char *)subj + pos, n - pos, &cp);
                pos += l ? l : 1;
                continue;
            }
            pos = e;
            last_end = e;
            have_last = true;
            if ((prev != s && !mvec_push(out, prev, s, false)) || !mvec_push(out, s, e, true))
                return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            prev = e;
        }
    }
    if (prev != n && !mvec_push(out, prev, n, false))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    return DC_OK;
}

/* Applies a split behaviour to the match list in place (HF's NormalizedString::split) and appends
 * the non-empty kept pieces, offset by base, to out. */
static bool apply_behavior(mvec *mv, int behavior, bool invert, size_t base, spanvec *out)
{
    if (invert)
        for (size_t i = 0; i < mv->n; i++)
            mv->v[i].m = !mv->v[i].m;
    size_t k = 0; /* pieces written in place; .m now means "remove" */
    bool prev_match = false;
    switch (behavior) {
    case SB_ISOLATED:
        for (size_t i = 0; i < mv->n; i++)
            mv->v[i].m = false;
        k = mv->n;
        break;
    case SB_REMOVED:
        k = mv->n;
        break;
    case SB_CONTIGUOUS:
        for (size_t i = 0; i < mv->n; i++) {
            mrange r = mv->v[i];
            if (r.m == prev_match && k)
                mv->v[k - 1].e = r.e;
            else
                mv->v[k++] = (mrange){r.s, r.e, false};
            prev_match = r.m;
        }
        break;
    case SB_MERGED_PREV:
        for (size_t i = 0; i < mv->n; i++) {
            mrange r = mv->v[i];
            if (r.m && !prev_match && k)
                mv->v[k - 1].e = r.e;
            else
                mv->v[k++] = (mrange){r.s, r.e, false};
            prev_match = r.m;
        }
        break;
    case SB_MERGED_NEXT: {
        /* fold from the right, writing from the end of the array backwards */
        size_t w = mv->n;
        for (size_t i = mv->n; i-- > 0;) {
            mrange r = mv->v[i];
            if (r.m && !prev_match && w < mv->n)
                mv->v[w].s = r.s;
            else
                mv->v[--w] = (mrange){r.s, r.e, false};
            prev_match = r.m;
        }
        memmove(mv->v, mv->v + w, (mv->n - w) * sizeof *mv->v);
        k = mv->n - w;
        break;
    }
    }
    for (size_t i = 0; i < k; i++)
        if (!mv->v[i].m && mv->v[i].e > mv->v[i].s &&
            !spans_push(out, base + mv->v[i].s, base + mv->v[i].e))
            return false;
    return true;
}
