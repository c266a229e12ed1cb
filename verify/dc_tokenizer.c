/* Byte-level BPE tokenizer compatible with Hugging Face `tokenizers` (see dc_tokenizer.h).
 *
 * Pipeline of encode, as HF runs it for a tokenizer.json like DeepSeek-V3's:
 *   1. added tokens that are not "normalized" are cut out of the raw text (leftmost-longest);
 *   2. the normalizer runs on the remaining pieces (identity, or Unicode NFC via utf8proc) and "normalized" added tokens
 *      are cut out of those;
 *   3. every remaining piece goes through the pre-tokenizer: each Split step splits every piece
 *      separately (so look-arounds never see past a piece), then ByteLevel maps bytes to the GPT-2
 *      byte alphabet (optionally with a prefix space and GPT-2's regex);
 *   4. each word is merged by BPE: the adjacent pair with the lowest merge rank first, the
 *      leftmost one among equal ranks (a binary heap over pair positions, as HF's Word does). */
#define _GNU_SOURCE /* memmem */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "dc_tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pcre2.h>
#include <utf8proc.h>
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

/* Finds the first match of re in subj[0..n) at or after start. Returns 1 and sets *ms, *me; 0 if
 * none, or -1 with err set. */
static int regex_find(const pcre2_code *re, pcre2_match_data *md, const char *subj, size_t n,
                      size_t start, size_t *ms, size_t *me, const char *where, dc_err *err)
{
    int rc = pcre2_match(re, (PCRE2_SPTR)subj, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* the interpreter keeps its backtracking on the heap */
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
            size_t ll = strlen(lit->valuestring);
            if (utf8_invalid_at(lit->valuestring, ll) < ll)
                return dc_err_set(err, DC_ERR_FORMAT,
                                  "%s: Split pre_tokenizer String pattern is not valid UTF-8", where);
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

/* ------------------------------------------------------------------------------------------ */
/* Added tokens                                                                                */

typedef struct added_tok {
    size_t off; /* content in dc_tok.added_pool */
    uint32_t len;
    bool special, normalized, lstrip, rstrip, single_word;
} added_tok;

/* Byte trie over added-token contents; term[node] is the token id ending there, or -1. */
typedef struct trie {
    int32_t *term;
    size_t n, cap;
    int32_t root[256];
    u64map edges; /* (node << 8 | byte) -> child */
} trie;

static bool trie_init(trie *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < 256; i++)
        t->root[i] = -1;
    if (!dc_grow((void **)&t->term, &t->cap, 1, sizeof *t->term))
        return false;
    t->term[0] = -1;
    t->n = 1;
    return true;
}

static bool trie_insert(trie *t, const unsigned char *s, size_t n, int32_t id)
{
    size_t node = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t key = ((uint64_t)node << 8) | s[i], child;
        bool found;
        if (node == 0) {
            found = t->root[s[i]] >= 0;
            child = found ? (uint64_t)t->root[s[i]] : 0;
        } else {
            found = u64map_get(&t->edges, key, &child);
        }
        if (!found) {
            if (t->n >= INT32_MAX)
                return false;
            if (t->n == t->cap && !dc_grow((void **)&t->term, &t->cap, t->n + 1, sizeof *t->term))
                return false;
            child = t->n;
            t->term[t->n++] = -1;
            if (node == 0)
                t->root[s[i]] = (int32_t)child;
            else if (!u64map_put(&t->edges, key, child))
                return false;
        }
        node = (size_t)child;
    }
    /* aho-corasick reports the first pattern among equal ones; all map to the same id anyway */
    if (t->term[node] < 0)
        t->term[node] = id;
    return true;
}

/* Longest match starting at s[0..n): returns its length (0 if none) and sets *id. */
static size_t trie_longest(const trie *t, const unsigned char *s, size_t n, int32_t *id)
{
    if (t->n <= 1 || !n || t->root[s[0]] < 0)
        return 0;
    size_t node = (size_t)t->root[s[0]], best = 0;
    if (t->term[node] >= 0) {
        best = 1;
        *id = t->term[node];
    }
    for (size_t i = 1; i < n; i++) {
        uint64_t child;
        if (!u64map_get(&t->edges, ((uint64_t)node << 8) | s[i], &child))
            break;
        node = (size_t)child;
        if (t->term[node] >= 0) {
            best = i + 1;
            *id = t->term[node];
        }
    }
    return best;
}

static void trie_free(trie *t)
{
    free(t->term);
    u64map_free(&t->edges);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------------------------------ */
/* The tokenizer                                                                               */

struct dc_tok {
    char *name; /* tokenizer.json path, for messages */

    /* BPE model */
    strtab vocab;       /* token string -> id */
    u64map id2vocab;    /* id -> vocab entry */
    u64map merges;      /* (a << 32 | b) -> (rank << 32 | merged id) */
    size_t n_merges;
    int32_t sym[2][2][256]; /* [not first && prefix][last && suffix][byte] -> id, -1 unknown */
    char *cont_prefix, *eow_suffix;
    int32_t unk_id;
    bool fuse_unk, byte_fallback, ignore_merges;

    /* added tokens */
    strtab added_map;     /* content -> id */
    char *added_pool;
    size_t added_pool_n, added_pool_cap;
    added_tok *atoks;     /* distinct token records */
    size_t n_atoks, atoks_cap;
    u64map id2added;      /* id -> atoks index */
    strtab special_set;   /* contents of special tokens */
    trie trie_raw, trie_norm;
    pcre2_code *re_word;  /* one Rust-regex \w character */

    pretok pre;

    /* special tokens */
    int32_t bos, eos;
    bool add_bos, add_eos;
    bool nfc;                    /* the normalizer is Unicode NFC */
    ivec tpl_prefix, tpl_suffix; /* from TemplateProcessing */
    bool cfg_has_add;            /* tokenizer_config.json decides */

    int32_t max_id;
    uint16_t b2cp[256];
    int16_t cp2b[324];
};

static inline uint64_t pair_key(int32_t a, int32_t b)
{
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static const added_tok *added_by_id(const dc_tok *t, int32_t id)
{
    uint64_t v;
    if (id < 0 || !u64map_get(&t->id2added, (uint64_t)id, &v))
        return NULL;
    return &t->atoks[v];
}

int32_t dc_tok_token_id(const dc_tok *t, const char *s, size_t len)
{
    long e = strtab_find(&t->added_map, s, len);
    if (e >= 0)
        return t->added_map.val[e];
    e = strtab_find(&t->vocab, s, len);
    return e >= 0 ? t->vocab.val[e] : -1;
}

const char *dc_tok_token(const dc_tok *t, int32_t id, size_t *len)
{
    const added_tok *a = added_by_id(t, id);
    if (a) {
        if (len)
            *len = a->len;
        return t->added_pool + a->off;
    }
    uint64_t v;
    if (id < 0 || !u64map_get(&t->id2vocab, (uint64_t)id, &v))
        return NULL;
    if (len)
        *len = t->vocab.len[v];
    return strtab_str(&t->vocab, v);
}

int32_t dc_tok_bos(const dc_tok *t) { return t->bos; }
int32_t dc_tok_eos(const dc_tok *t) { return t->eos; }
size_t dc_tok_vocab_size(const dc_tok *t) { return (size_t)((int64_t)t->max_id + 1); }
size_t dc_tok_n_merges(const dc_tok *t) { return t->n_merges; }

bool dc_tok_adds_bos(const dc_tok *t)
{
    return t->cfg_has_add ? t->add_bos && t->bos >= 0 : t->tpl_prefix.n > 0;
}

bool dc_tok_adds_eos(const dc_tok *t)
{
    return t->cfg_has_add ? t->add_eos && t->eos >= 0 : t->tpl_suffix.n > 0;
}

void dc_tok_free(dc_tok *t)
{
    if (!t)
        return;
    free(t->name);
    strtab_free(&t->vocab);
    u64map_free(&t->id2vocab);
    u64map_free(&t->merges);
    free(t->cont_prefix);
    free(t->eow_suffix);
    strtab_free(&t->added_map);
    free(t->added_pool);
    free(t->atoks);
    u64map_free(&t->id2added);
    strtab_free(&t->special_set);
    trie_free(&t->trie_raw);
    trie_free(&t->trie_norm);
    pcre2_code_free(t->re_word);
    pretok_free(&t->pre);
    free(t->tpl_prefix.v);
    free(t->tpl_suffix.v);
    free(t);
}

/* A JSON number that is an integer id in [0, INT32_MAX). */
static bool json_id(const cJSON *j, int32_t *out)
{
    if (!cJSON_IsNumber(j))
        return false;
    double d = j->valuedouble;
    if (!(d >= 0 && d < (double)INT32_MAX) || d != (double)(int64_t)d)
        return false;
    *out = (int32_t)d;
    return true;
}

static dc_status parse_model(dc_tok *t, const cJSON *model, dc_err *err)
{
    const char *w = t->name;
    if (!cJSON_IsObject(model))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: no \"model\" object", w);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (type && !cJSON_IsString(type))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: model \"type\" is %s, not a string", w,
                          json_type_name(type));
    if (type && strcmp(type->valuestring, "BPE"))
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: model type \"%s\" is not supported (only BPE)", w, type->valuestring);
    if (!type && !merges)
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: model has no \"type\" and no \"merges\"; only BPE is supported", w);
    if (!cJSON_IsObject(vocab))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: model \"vocab\" is %s, not an object", w,
                          json_type_name(vocab));
    if (!cJSON_IsArray(merges))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: model \"merges\" is %s, not an array", w,
                          json_type_name(merges));
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) &&
        !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0.0))
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: BPE dropout is not supported (encoding would be random)", w);
    dc_status st;
    if ((st = json_bool(model, "fuse_unk", false, &t->fuse_unk, w, "model", err)) ||
        (st = json_bool(model, "byte_fallback", false, &t->byte_fallback, w, "model", err)) ||
        (st = json_bool(model, "ignore_merges", false, &t->ignore_merges, w, "model", err)))
        return st;
    static const char *const strkeys[] = {"continuing_subword_prefix", "end_of_word_suffix",
                                          "unk_token"};
    for (int k = 0; k < 3; k++) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(model, strkeys[k]);
        if (j && !cJSON_IsNull(j) && !cJSON_IsString(j))
            return dc_err_set(err, DC_ERR_FORMAT, "%s: model \"%s\" is %s, not a string or null",
                              w, strkeys[k], json_type_name(j));
    }
    const char *cp = json_str(model, "continuing_subword_prefix");
    const char *ew = json_str(model, "end_of_word_suffix");
    if ((cp && *cp && !(t->cont_prefix = dc_strdup(cp))) ||
        (ew && *ew && !(t->eow_suffix = dc_strdup(ew))))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");

    /* vocab: the last of duplicate strings wins (serde map), the first string of an id names it */
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id;
        if (!json_id(e, &id))
            return dc_err_set(err, DC_ERR_FORMAT,
                              "%s: vocab entry \"%.100s\" has id %s, not an integer in [0, %d)", w,
                              e->string ? e->string : "", cJSON_IsNumber(e) ? "out of range" :
                              json_type_name(e), INT32_MAX);
        bool existed;
        long ix = strtab_add(&t->vocab, e->string, strlen(e->string), id, &existed);
        if (ix < 0)
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory loading the vocabulary");
        t->vocab.val[ix] = id;
    }
    for (size_t i = 0; i < t->vocab.n; i++) {
        uint64_t id = (uint64_t)t->vocab.val[i];
        if (!u64map_get(&t->id2vocab, id, NULL) && !u64map_put(&t->id2vocab, id, i))
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory loading the vocabulary");
        if ((int32_t)id > t->max_id)
            t->max_id = (int32_t)id;
    }

    const char *unk = json_str(model, "unk_token");
    t->unk_id = -1;
    if (unk) {
        long ix = strtab_find(&t->vocab, unk, strlen(unk));
        if (ix < 0)
            return dc_err_set(err, DC_ERR_FORMAT, "%s: unk_token \"%.100s\" is not in the vocabulary",
                              w, unk);
        t->unk_id = t->vocab.val[ix];
    }

    /* merges: "a b" strings or ["a", "b"] pairs; rank = position, later duplicates win */
    size_t plen = t->cont_prefix ? strlen(t->cont_prefix) : 0, rank = 0;
    sbuf joined = {0};
    st = DC_OK;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t alen, blen;
        if (cJSON_IsString(e)) {
            const char *s = e->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                st = dc_err_set(err, DC_ERR_FORMAT,
                                "%s: merge %zu \"%.100s\" is not two tokens separated by one space",
                                w, rank, s);
                break;
            }
            a = s;
            alen = (size_t)(sp - s);
            b = sp + 1;
            blen = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
            alen = strlen(a);
            blen = strlen(b);
        } else {
            st = dc_err_set(err, DC_ERR_FORMAT,
                            "%s: merge %zu is %s, not a \"a b\" string or a pair of strings", w,
                            rank, json_type_name(e));
            break;
        }
        long ia = strtab_find(&t->vocab, a, alen), ib = strtab_find(&t->vocab, b, blen);
        if (ia < 0 || ib < 0) {
            st = dc_err_set(err, DC_ERR_FORMAT,
                            "%s: merge %zu (\"%.*s\" + \"%.*s\") uses token \"%.*s\" that is not "
                            "in the vocabulary", w, rank, (int)(alen > 100 ? 100 : alen), a,
                            (int)(blen > 100 ? 100 : blen), b,
                            ia < 0 ? (int)(alen > 100 ? 100 : alen) : (int)(blen > 100 ? 100 : blen),
                            ia < 0 ? a : b);
            break;
        }
        size_t skip = 0;
        if (plen) {
            if (blen < plen || memcmp(b, t->cont_prefix, plen)) {
                st = dc_err_set(err, DC_ERR_FORMAT,
                                "%s: merge %zu: right token \"%.100s\" does not start with the "
                                "continuing_subword_prefix", w, rank, b);
                break;
            }
            skip = plen;
        }
        joined.n = 0;
        if (!sbuf_add(&joined, a, alen) || !sbuf_add(&joined, b + skip, blen - skip)) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            break;
        }
        long im = strtab_find(&t->vocab, joined.p, joined.n);
        if (im < 0) {
            st = dc_err_set(err, DC_ERR_FORMAT,
                            "%s: merge %zu (\"%.*s\" + \"%.*s\"): the merged token is not in the "
                            "vocabulary", w, rank, (int)(alen > 100 ? 100 : alen), a,
                            (int)(blen > 100 ? 100 : blen), b);
            break;
        }
        if (rank >= UINT32_MAX) {
            st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: more than 2^32 merges", w);
            break;
        }
        if (!u64map_put(&t->merges, pair_key(t->vocab.val[ia], t->vocab.val[ib]),
                        ((uint64_t)rank << 32) | (uint32_t)t->vocab.val[im])) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory loading merges");
            break;
        }
        rank++;
    }
    free(joined.p);
    if (st)
        return st;
    t->n_merges = rank;

    /* initial symbols: the byte-level character of each byte, with prefix/suffix variants */
    if ((t->cont_prefix && strlen(t->cont_prefix) > 200) ||
        (t->eow_suffix && strlen(t->eow_suffix) > 200))
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: continuing_subword_prefix/end_of_word_suffix over 200 bytes", w);
    for (int pf = 0; pf < 2; pf++)
        for (int sf = 0; sf < 2; sf++)
            for (int b = 0; b < 256; b++) {
                char s[512];
                size_t n = 0;
                if (pf && t->cont_prefix) {
                    size_t l = strlen(t->cont_prefix);
                    memcpy(s, t->cont_prefix, l);
                    n = l;
                }
                n += utf8_put(s + n, t->b2cp[b]);
                if (sf && t->eow_suffix) {
                    size_t l = strlen(t->eow_suffix);
                    memcpy(s + n, t->eow_suffix, l);
                    n += l;
                }
                long ix = strtab_find(&t->vocab, s, n);
                t->sym[pf][sf][b] = ix >= 0 ? t->vocab.val[ix] : -1;
            }
    return DC_OK;
}

/* Records one added token (content + flags); returns its index in t->atoks or -1 on OOM. */
static long atok_new(dc_tok *t, const char *s, size_t n, const added_tok *flags)
{
    if (n > UINT32_MAX)
        return -1;
    if (t->n_atoks == t->atoks_cap &&
        !dc_grow((void **)&t->atoks, &t->atoks_cap, t->n_atoks + 1, sizeof *t->atoks))
        return -1;
    if (t->added_pool_n + n + 1 > t->added_pool_cap &&
        !dc_grow((void **)&t->added_pool, &t->added_pool_cap, t->added_pool_n + n + 1, 1))
        return -1;
    memcpy(t->added_pool + t->added_pool_n, s, n);
    t->added_pool[t->added_pool_n + n] = 0;
    added_tok *a = &t->atoks[t->n_atoks];
    *a = *flags;
    a->off = t->added_pool_n;
    a->len = (uint32_t)n;
    t->added_pool_n += n + 1;
    return (long)t->n_atoks++;
}

/* added_tokens, the way HF's AddedVocabulary::add_tokens assigns ids: a content already known
 * (added before, or in the model vocab) keeps that id; a new one gets max(added ids) + 1, or the
 * model's vocab size for the first. The "id" fields of the file are only checked. */
static dc_status parse_added(dc_tok *t, const cJSON *list, dc_err *err)
{
    const char *w = t->name;
    if (!list || cJSON_IsNull(list))
        return DC_OK;
    if (!cJSON_IsArray(list))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: \"added_tokens\" is %s, not an array", w,
                          json_type_name(list));
    dc_status st = DC_OK;
    size_t n = (size_t)cJSON_GetArraySize(list), k = 0;
    long *rec = calloc(n ? n : 1, sizeof *rec);
    ivec specials = {0}, classics = {0};
    strtab seen = {0};
    sbuf key = {0};
    if (!rec) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* parse the records; the specials list keeps the first record of each special content */
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        if (!cJSON_IsObject(e)) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: added_tokens[%zu] is %s, not an object", w, k,
                            json_type_name(e));
            goto done;
        }
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        const cJSON *idj = cJSON_GetObjectItemCaseSensitive(e, "id");
        int32_t fid;
        if (!cJSON_IsString(content)) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: added_tokens[%zu] has no \"content\" string", w,
                            k);
            goto done;
        }
        if (!json_id(idj, &fid)) {
            st = dc_err_set(err, DC_ERR_FORMAT,
                            "%s: added_tokens[%zu] (\"%.100s\") has no valid \"id\"", w, k,
                            content->valuestring);
            goto done;
        }
        added_tok f = {0};
        char ctx[64];
        snprintf(ctx, sizeof ctx, "added_tokens[%zu]", k);
        if ((st = json_bool(e, "special", false, &f.special, w, ctx, err)) ||
            (st = json_bool(e, "normalized", !f.special, &f.normalized, w, ctx, err)) ||
            (st = json_bool(e, "lstrip", false, &f.lstrip, w, ctx, err)) ||
            (st = json_bool(e, "rstrip", false, &f.rstrip, w, ctx, err)) ||
            (st = json_bool(e, "single_word", false, &f.single_word, w, ctx, err)))
            goto done;
        const char *s = content->valuestring;
        size_t sl = strlen(s);
        if (utf8_invalid_at(s, sl) < sl) {
            st = dc_err_set(err, DC_ERR_FORMAT,
                            "%s: added_tokens[%zu] content is not valid UTF-8 (byte %zu)", w, k,
                            utf8_invalid_at(s, sl));
            goto done;
        }
        if ((rec[k] = atok_new(t, s, sl, &f)) < 0) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (f.special && sl) {
            bool existed;
            if (strtab_add(&t->special_set, s, sl, 0, &existed) < 0 ||
                (!existed && !ivec_push(&specials, (int32_t)rec[k]))) {
                st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                goto done;
            }
        }
        k++;
    }
    /* assign ids */
    int64_t max_added = -1;
    size_t model_size = t->vocab.n;
    k = 0;
    cJSON_ArrayForEach(e, list) {
        const added_tok *a = &t->atoks[rec[k]];
        const char *s = t->added_pool + a->off;
        size_t sl = a->len;
        int32_t fid = 0;
        json_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &fid);
        k++;
        if (!sl)
            continue;
        /* an identical record (content and flags) is ignored */
        key.n = 0;
        char fl = (char)('0' + a->special + 2 * a->normalized + 4 * a->lstrip + 8 * a->rstrip +
                         16 * a->single_word);
        bool existed;
        if (!sbuf_add(&key, &fl, 1) || !sbuf_add(&key, s, sl) ||
            strtab_add(&seen, key.p, key.n, 0, &existed) < 0) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (existed)
            continue;
        int32_t id = dc_tok_token_id(t, s, sl);
        if (id < 0) {
            int64_t nid;
            if (max_added < 0)
                nid = (int64_t)model_size;
            else if (max_added >= (int64_t)model_size || model_size == 0)
                nid = max_added + 1;
            else
                nid = (int64_t)model_size;
            if (nid >= INT32_MAX) {
                st = dc_err_set(err, DC_ERR_FORMAT, "%s: too many added tokens", w);
                goto done;
            }
            id = (int32_t)nid;
        }
        if (id != fid)
            dc_log(2, "%s: added token \"%.100s\" has id %d in the file but gets id %d\n", w, s,
                   (int)fid, (int)id);
        long ix = strtab_add(&t->added_map, s, sl, id, &existed);
        if (ix < 0 || !u64map_put(&t->id2added, (uint64_t)id, (uint64_t)rec[k - 1])) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        t->added_map.val[ix] = id;
        if (id > max_added)
            max_added = id;
        if (id > t->max_id)
            t->max_id = id;
        if (strtab_find(&t->special_set, s, sl) < 0 && !ivec_push(&classics, (int32_t)rec[k - 1])) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    /* the matching tries: specials then classic tokens, split by their "normalized" flag */
    for (int pass = 0; pass < 2; pass++) {
        const ivec *l = pass ? &classics : &specials;
        for (size_t i = 0; i < l->n; i++) {
            const added_tok *a = &t->atoks[l->v[i]];
            const char *s = t->added_pool + a->off;
            int32_t id = dc_tok_token_id(t, s, a->len);
            if (id < 0) {
                st = dc_err_set(err, DC_ERR_INTERNAL, "%s: added token \"%.100s\" lost its id", w, s);
                goto done;
            }
            if (!trie_insert(a->normalized ? &t->trie_norm : &t->trie_raw,
                             (const unsigned char *)s, a->len, id)) {
                st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                goto done;
            }
        }
    }
done:
    free(rec);
    free(specials.v);
    free(classics.v);
    strtab_free(&seen);
    free(key.p);
    return st;
}

/* Normalizers: none, NFC (Qwen's tokenizers), or Sequences of those. */
static dc_status check_normalizer(const cJSON *j, const char *w, bool *nfc, dc_err *err)
{
    if (!j || cJSON_IsNull(j))
        return DC_OK;
    const char *type = cJSON_IsObject(j) ? json_str(j, "type") : NULL;
    if (!type)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: normalizer is %s without a \"type\"", w,
                          json_type_name(j));
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
        if (!cJSON_IsArray(list))
            return dc_err_set(err, DC_ERR_FORMAT,
                              "%s: normalizer Sequence has no \"normalizers\" array", w);
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
            dc_status st = check_normalizer(e, w, nfc, err);
            if (st)
                return st;
        }
        return DC_OK;
    }
    if (!strcmp(type, "NFC")) {
        *nfc = true;
        return DC_OK;
    }
    return dc_err_set(err, DC_ERR_UNSUPPORTED,
                      "%s: normalizer \"%s\" is not supported (only none, NFC, or a Sequence of those)", w,
                      type);
}

static dc_status check_decoder(const cJSON *j, const char *w, int depth, dc_err *err)
{
    if (!j || cJSON_IsNull(j))
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: no decoder; only the ByteLevel decoder is supported", w);
    const char *type = cJSON_IsObject(j) ? json_str(j, "type") : NULL;
    if (!type)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: decoder is %s without a \"type\"", w,
                          json_type_name(j));
    if (!strcmp(type, "ByteLevel"))
        return DC_OK;
    if (!strcmp(type, "Sequence") && depth == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "decoders");
        if (cJSON_IsArray(list) && cJSON_GetArraySize(list) == 1)
            return check_decoder(cJSON_GetArrayItem(list, 0), w, depth + 1, err);
    }
    return dc_err_set(err, DC_ERR_UNSUPPORTED,
                      "%s: decoder \"%s\" is not supported (only ByteLevel)", w, type);
}

/* TemplateProcessing "single": [SpecialToken...] Sequence A [SpecialToken...]. */
static dc_status parse_template(dc_tok *t, const cJSON *j, dc_err *err)
{
    const char *w = t->name;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(j, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
    if (!cJSON_IsArray(single))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: TemplateProcessing has no \"single\" array", w);
    bool seen_a = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, single) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
        if (seq) {
            const char *id = json_str(seq, "id");
            if (seen_a || !id || strcmp(id, "A"))
                return dc_err_set(err, DC_ERR_UNSUPPORTED,
                                  "%s: TemplateProcessing \"single\" must hold sequence A once", w);
            seen_a = true;
            continue;
        }
        const char *name = sp ? json_str(sp, "id") : NULL;
        if (!name)
            return dc_err_set(err, DC_ERR_FORMAT,
                              "%s: TemplateProcessing \"single\" piece is neither Sequence nor "
                              "SpecialToken", w);
        const cJSON *def = cJSON_GetObjectItemCaseSensitive(specials, name);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
        if (!cJSON_IsArray(ids))
            return dc_err_set(err, DC_ERR_FORMAT,
                              "%s: TemplateProcessing special token \"%.100s\" has no \"ids\"", w,
                              name);
        const cJSON *x;
        cJSON_ArrayForEach(x, ids) {
            int32_t id;
            if (!json_id(x, &id))
                return dc_err_set(err, DC_ERR_FORMAT,
                                  "%s: TemplateProcessing special token \"%.100s\" has a bad id", w,
                                  name);
            if (!ivec_push(seen_a ? &t->tpl_suffix : &t->tpl_prefix, id))
                return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        }
    }
    if (!seen_a)
        return dc_err_set(err, DC_ERR_UNSUPPORTED,
                          "%s: TemplateProcessing \"single\" does not contain sequence A", w);
    return DC_OK;
}

static dc_status parse_post_processor(dc_tok *t, const cJSON *j, int depth, dc_err *err)
{
    const char *w = t->name;
    if (!j || cJSON_IsNull(j))
        return DC_OK;
    const char *type = cJSON_IsObject(j) ? json_str(j, "type") : NULL;
    if (!type)
        return dc_err_set(err, DC_ERR_FORMAT, "%s: post_processor is %s without a \"type\"", w,
                          json_type_name(j));
    if (!strcmp(type, "ByteLevel"))
        return DC_OK; /* only adjusts offsets */
    if (!strcmp(type, "TemplateProcessing")) {
        if (t->tpl_prefix.n || t->tpl_suffix.n)
            return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: more than one TemplateProcessing", w);
        return parse_template(t, j, err);
    }
    if (!strcmp(type, "Sequence") && depth < 4) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "processors");
        if (!cJSON_IsArray(list))
            return dc_err_set(err, DC_ERR_FORMAT,
                              "%s: post_processor Sequence has no \"processors\" array", w);
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
            dc_status st = parse_post_processor(t, e, depth + 1, err);
            if (st)
                return st;
        }
        return DC_OK;
    }
    return dc_err_set(err, DC_ERR_UNSUPPORTED,
                      "%s: post_processor \"%s\" is not supported (ByteLevel, TemplateProcessing, "
                      "Sequence)", w, type);
}

/* bos_token/eos_token: a string, an {"content": ...} object, or null/missing. */
static dc_status config_token(dc_tok *t, const cJSON *cfg, const char *key, const char *cw,
                              int32_t *id, const char **content, dc_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, key);
    *id = -1;
    *content = NULL;
    if (!j || cJSON_IsNull(j))
        return DC_OK;
    const char *s = cJSON_IsString(j) ? j->valuestring
                    : cJSON_IsObject(j) ? json_str(j, "content") : NULL;
    if (!s)
        return dc_err_set(err, DC_ERR_FORMAT,
                          "%s: \"%s\" must be a string or an object with a \"content\" string", cw,
                          key);
    *content = s;
    *id = dc_tok_token_id(t, s, strlen(s));
    return DC_OK;
}

static dc_status parse_config(dc_tok *t, const cJSON *cfg, const char *cw, dc_err *err)
{
    if (!cJSON_IsObject(cfg))
        return dc_err_set(err, DC_ERR_FORMAT, "%s: not a JSON object", cw);
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    dc_status st;
    if ((st = json_bool(cfg, "add_bos_token", false, &t->add_bos, cw, "tokenizer config", err)) ||
        (st = json_bool(cfg, "add_eos_token", false, &t->add_eos, cw, "tokenizer config", err)))
        return st;
    t->cfg_has_add = (ab && !cJSON_IsNull(ab)) || (ae && !cJSON_IsNull(ae));
    const char *bs, *es;
    if ((st = config_token(t, cfg, "bos_token", cw, &t->bos, &bs, err)) ||
        (st = config_token(t, cfg, "eos_token", cw, &t->eos, &es, err)))
        return st;
    if (t->cfg_has_add && t->add_bos && t->bos < 0)
        return dc_err_set(err, DC_ERR_FORMAT,
                          bs ? "%s: add_bos_token is true but bos_token \"%.100s\" is not in the "
                               "vocabulary"
                             : "%s: add_bos_token is true but there is no bos_token%.0s",
                          cw, bs ? bs : "");
    if (t->cfg_has_add && t->add_eos && t->eos < 0)
        return dc_err_set(err, DC_ERR_FORMAT,
                          es ? "%s: add_eos_token is true but eos_token \"%.100s\" is not in the "
                               "vocabulary"
                             : "%s: add_eos_token is true but there is no eos_token%.0s",
                          cw, es ? es : "");
    return DC_OK;
}

static dc_status json_parse(const char *buf, size_t len, const char *name, cJSON **out, dc_err *err)
{
    cJSON *j = cJSON_ParseWithLength(buf, len);
    if (!j) {
        const char *ep = cJSON_GetErrorPtr();
        if (ep && ep >= buf && ep <= buf + len) {
            size_t off = (size_t)(ep - buf), line = 1;
            for (size_t i = 0; i < off; i++)
                line += buf[i] == '\n';
            return dc_err_set(err, DC_ERR_FORMAT, "%s: not valid JSON (error near byte %zu, line %zu)",
                              name, off, line);
        }
        return dc_err_set(err, DC_ERR_FORMAT, "%s: not valid JSON", name);
    }
    *out = j;
    return DC_OK;
}

dc_status dc_tok_load_mem(const char *json, size_t json_len, const char *json_name,
                          const char *cfg, size_t cfg_len, const char *cfg_name, dc_tok **out,
                          dc_err *err)
{
    *out = NULL;
    if (!json_name)
        json_name = "tokenizer.json";
    if (!cfg_name)
        cfg_name = "tokenizer_config.json";
    dc_tok *t = calloc(1, sizeof *t);
    if (!t)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    t->max_id = -1;
    t->bos = t->eos = t->unk_id = -1;
    byte_level_tables(t->b2cp, t->cp2b);
    cJSON *root = NULL, *croot = NULL;
    dc_status st;
    if (!(t->name = dc_strdup(json_name)) || !trie_init(&t->trie_raw) || !trie_init(&t->trie_norm)) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = json_parse(json, json_len, json_name, &root, err)))
        goto fail;
    if (!cJSON_IsObject(root)) {
        st = dc_err_set(err, DC_ERR_FORMAT, "%s: top level is %s, not an object", json_name,
                        json_type_name(root));
        goto fail;
    }
    if ((st = parse_model(t, cJSON_GetObjectItemCaseSensitive(root, "model"), err)) ||
        (st = parse_added(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), err)) ||
        (st = check_normalizer(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), json_name, &t->nfc,
                               err)) ||
        (st = pretok_parse(&t->pre, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"),
                           json_name, err)) ||
        (st = parse_post_processor(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), 0,
                                   err)) ||
        (st = check_decoder(cJSON_GetObjectItemCaseSensitive(root, "decoder"), json_name, 0, err)))
        goto fail;
    static const char WORD_RE[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]";
    int ec;
    PCRE2_SIZE eo;
    t->re_word = pcre2_compile((PCRE2_SPTR)WORD_RE, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                               &ec, &eo, NULL);
    if (!t->re_word) {
        st = dc_err_set(err, DC_ERR_INTERNAL, "cannot compile the character-class regexes");
        goto fail;
    }
    for (size_t i = 0; i < t->tpl_prefix.n + t->tpl_suffix.n; i++) {
        int32_t id = i < t->tpl_prefix.n ? t->tpl_prefix.v[i] : t->tpl_suffix.v[i - t->tpl_prefix.n];
        if (!dc_tok_token(t, id, NULL)) {
            st = dc_err_set(err, DC_ERR_FORMAT,
                            "%s: TemplateProcessing uses token id %d that is not in the vocabulary",
                            json_name, (int)id);
            goto fail;
        }
    }
    if (cfg) {
        if ((st = json_parse(cfg, cfg_len, cfg_name, &croot, err)) ||
            (st = parse_config(t, croot, cfg_name, err)))
            goto fail;
    }
    if (t->bos < 0 && t->tpl_prefix.n)
        t->bos = t->tpl_prefix.v[0];
    if (t->eos < 0 && t->tpl_suffix.n)
        t->eos = t->tpl_suffix.v[t->tpl_suffix.n - 1];
    if (t->max_id < 0) {
        st = dc_err_set(err, DC_ERR_FORMAT, "%s: the vocabulary is empty", json_name);
        goto fail;
    }
    cJSON_Delete(root);
    cJSON_Delete(croot);
    *out = t;
    return DC_OK;
fail:
    cJSON_Delete(root);
    cJSON_Delete(croot);
    dc_tok_free(t);
    return st;
}

/* Reads a whole file. Returns DC_ERR_IO naming the path. */
static dc_status read_all(const char *path, char **buf, size_t *len, dc_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dc_err_set(err, DC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    sbuf b = {0};
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (!sbuf_add(&b, chunk, r)) {
            fclose(f);
            free(b.p);
            return dc_err_set(err, DC_ERR_NOMEM, "out of memory reading %s", path);
        }
    }
    bool bad = ferror(f);
    int e = errno;
    fclose(f);
    if (bad) {
        free(b.p);
        return dc_err_set(err, DC_ERR_IO, "cannot read %s: %s", path, strerror(e));
    }
    if (!b.p && !sbuf_add(&b, "", 0))
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory reading %s", path);
    *buf = b.p;
    *len = b.n;
    return DC_OK;
}

dc_status dc_tok_load(const char *dir, dc_tok **out, dc_err *err)
{
    *out = NULL;
    struct stat sb;
    char *jpath, *cpath;
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode)) {
        jpath = dc_strdup(dir);
        const char *slash = strrchr(dir, '/');
        char *d = slash ? dc_strdup(dir) : dc_strdup(".");
        if (d && slash)
            d[slash - dir + (slash == dir)] = 0;
        cpath = d ? dc_path_join(d, "tokenizer_config.json") : NULL;
        free(d);
    } else {
        jpath = dc_path_join(dir, "tokenizer.json");
        cpath = dc_path_join(dir, "tokenizer_config.json");
    }
    char *json = NULL, *cfg = NULL;
    size_t jlen = 0, clen = 0;
    dc_status st;
    if (!jpath || !cpath) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = read_all(jpath, &json, &jlen, err)))
        goto done;
    if (dc_exists(cpath) && (st = read_all(cpath, &cfg, &clen, err)))
        goto done;
    st = dc_tok_load_mem(json, jlen, jpath, cfg, clen, cpath, out, err);
done:
    free(json);
    free(cfg);
    free(jpath);
    free(cpath);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Encode                                                                                      */

typedef struct heap_ent {
    uint32_t rank, pos;
    int32_t id;
} heap_ent;

typedef struct enc {
    const dc_tok *t;
    const char *text;
    pcre2_match_data *md;
    ivec out;
    spanvec a, b;
    mvec mv;
    sbuf pre;  /* piece with a prefix space */
    sbuf word; /* byte-level string of a word (ignore_merges) */
    int32_t *sid, *prev, *next;
    size_t m, scap;
    heap_ent *heap;
    size_t hn, hcap;
    dc_err *err;
} enc;

static void enc_free(enc *c)
{
    pcre2_match_data_free(c->md);
    free(c->out.v);
    free(c->a.v);
    free(c->b.v);
    free(c->mv.v);
    free(c->pre.p);
    free(c->word.p);
    free(c->sid);
    free(c->prev);
    free(c->next);
    free(c->heap);
}

static dc_status enc_oom(enc *c)
{
    return dc_err_set(c->err, DC_ERR_NOMEM, "out of memory while encoding");
}

static bool is_white_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Rust regex's Unicode \w for the one character at s[0..n). */
static bool is_word_char(const enc *c, const char *s, size_t n)
{
    int rc = pcre2_match(c->t->re_word, (PCRE2_SPTR)s, n, 0, PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED,
                         c->md, NULL);
    return rc >= 0;
}

static size_t last_char_start(const char *s, size_t n)
{
    size_t i = n - 1;
    while (i > 0 && n - i < 4 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

static bool sym_push(enc *c, int32_t id)
{
    if (c->m == c->scap) {
        size_t c1 = c->scap, c2 = c->scap, c3 = c->scap;
        if (!dc_grow((void **)&c->sid, &c1, c->m + 1, sizeof *c->sid) ||
            !dc_grow((void **)&c->prev, &c2, c->m + 1, sizeof *c->prev) ||
            !dc_grow((void **)&c->next, &c3, c->m + 1, sizeof *c->next))
            return false;
        c->scap = c1 < c2 ? (c1 < c3 ? c1 : c3) : (c2 < c3 ? c2 : c3);
    }
    c->sid[c->m++] = id;
    return true;
}

static inline bool heap_less(const heap_ent *a, const heap_ent *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static bool heap_push(enc *c, uint32_t rank, uint32_t pos, int32_t id)
{
    if (c->hn == c->hcap && !dc_grow((void **)&c->heap, &c->hcap, c->hn + 1, sizeof *c->heap))
        return false;
    size_t i = c->hn++;
    heap_ent e = {rank, pos, id};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &c->heap[p]))
            break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = e;
    return true;
}

static heap_ent heap_pop(enc *c)
{
    heap_ent top = c->heap[0], last = c->heap[--c->hn];
    size_t i = 0, n = c->hn;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const heap_ent *best = &last;
        if (l < n && heap_less(&c->heap[l], best)) {
            m = l;
            best = &c->heap[l];
        }
        if (r < n && heap_less(&c->heap[r], best))
            m = r;
        if (m == i)
            break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n)
        c->heap[i] = last;
    return top;
}

static inline bool merge_lookup(const dc_tok *t, int32_t a, int32_t b, uint32_t *rank, int32_t *id)
{
    uint64_t v;
    if (!u64map_get(&t->merges, pair_key(a, b), &v))
        return false;
    *rank = (uint32_t)(v >> 32);
    *id = (int32_t)(uint32_t)v;
    return true;
}

/* Initial symbols of one character that is not in the vocabulary (byte fallback, unk). */
static dc_status unknown_char(enc *c, int b, bool pf, bool sf, int32_t *pending_unk)
{
    const dc_tok *t = c->t;
    if (t->byte_fallback) {
        char s[512];
        size_t n = 0;
        if (pf && t->cont_prefix) {
            memcpy(s, t->cont_prefix, strlen(t->cont_prefix));
            n = strlen(t->cont_prefix);
        }
        n += utf8_put(s + n, t->b2cp[b]);
        if (sf && t->eow_suffix) {
            memcpy(s + n, t->eow_suffix, strlen(t->eow_suffix));
            n += strlen(t->eow_suffix);
        }
        int32_t ids[512];
        bool all = true;
        for (size_t i = 0; i < n && all; i++) {
            char hex[8];
            snprintf(hex, sizeof hex, "<0x%02X>", (unsigned char)s[i]);
            long ix = strtab_find(&t->vocab, hex, strlen(hex));
            if (ix < 0)
                all = false;
            else
                ids[i] = t->vocab.val[ix];
        }
        if (all) { /* like HF, a pending unk is not flushed before byte-fallback tokens */
            for (size_t i = 0; i < n; i++)
                if (!sym_push(c, ids[i]))
                    return enc_oom(c);
            return DC_OK;
        }
    }
    if (t->unk_id >= 0) {
        if (*pending_unk >= 0 && !t->fuse_unk && !sym_push(c, *pending_unk))
            return enc_oom(c);
        *pending_unk = t->unk_id;
    }
    /* no unk token: the character is dropped, as HF does */
    return DC_OK;
}

/* BPE on one pre-tokenized word (raw bytes; the byte-level mapping is implied). */
static dc_status bpe_word(enc *c, const unsigned char *w, size_t n)
{
    const dc_tok *t = c->t;
    if (!n)
        return DC_OK;
    if (t->ignore_merges) {
        c->word.n = 0;
        for (size_t i = 0; i < n; i++) {
            char u[4];
            if (!sbuf_add(&c->word, u, utf8_put(u, t->b2cp[w[i]])))
                return enc_oom(c);
        }
        long ix = strtab_find(&t->vocab, c->word.p, c->word.n);
        if (ix >= 0)
            return ivec_push(&c->out, t->vocab.val[ix]) ? DC_OK : enc_oom(c);
    }
    c->m = 0;
    int32_t pending = -1;
    for (size_t i = 0; i < n; i++) {
        bool pf = i > 0 && t->cont_prefix, sf = i + 1 == n && t->eow_suffix;
        int32_t id = t->sym[pf][sf][w[i]];
        if (id >= 0) {
            if (pending >= 0 && !sym_push(c, pending))
                return enc_oom(c);
            pending = -1;
            if (!sym_push(c, id))
                return enc_oom(c);
        } else {
            dc_status st = unknown_char(c, w[i], pf, sf, &pending);
            if (st)
                return st;
        }
    }
    if (pending >= 0 && !sym_push(c, pending))
        return enc_oom(c);
    size_t m = c->m;
    if (m > UINT32_MAX)
        return dc_err_set(c->err, DC_ERR_INPUT, "a %zu-byte word is too long to encode", n);
    if (m > 1) {
        c->hn = 0;
        for (size_t i = 0; i < m; i++) {
            c->prev[i] = (int32_t)i - 1;
            c->next[i] = i + 1 < m ? (int32_t)(i + 1) : -1;
        }
        for (size_t i = 0; i + 1 < m; i++) {
            uint32_t rank;
            int32_t nid;
            if (merge_lookup(t, c->sid[i], c->sid[i + 1], &rank, &nid) &&
                !heap_push(c, rank, (uint32_t)i, nid))
                return enc_oom(c);
        }
        while (c->hn) {
            heap_ent top = heap_pop(c);
            uint32_t p = top.pos;
            if (c->sid[p] < 0 || c->next[p] < 0)
                continue;
            int32_t q = c->next[p];
            uint32_t rank;
            int32_t nid;
            if (!merge_lookup(t, c->sid[p], c->sid[q], &rank, &nid) || nid != top.id)
                continue; /* stale entry */
            c->sid[p] = top.id;
            c->sid[q] = -1;
            c->next[p] = c->next[q];
            if (c->next[q] >= 0)
                c->prev[c->next[q]] = (int32_t)p;
            if (c->prev[p] >= 0) {
                int32_t l = c->prev[p];
                if (merge_lookup(t, c->sid[l], c->sid[p], &rank, &nid) &&
                    !heap_push(c, rank, (uint32_t)l, nid))
                    return enc_oom(c);
            }
            if (c->next[p] >= 0) {
                if (merge_lookup(t, c->sid[p], c->sid[c->next[p]], &rank, &nid) &&
                    !heap_push(c, rank, p, nid))
                    return enc_oom(c);
            }
        }
    }
    for (size_t i = 0; i < m; i++)
        if (c->sid[i] >= 0 && !ivec_push(&c->out, c->sid[i]))
            return enc_oom(c);
    return DC_OK;
}

/* ByteLevel pre-tokenizer on one piece, then BPE on each word. */
static dc_status byte_level_piece(enc *c, size_t s, size_t e)
{
    const dc_tok *t = c->t;
    const char *p = c->text + s;
    size_t n = e - s;
    if (t->pre.bl_prefix_space && p[0] != ' ') {
        c->pre.n = 0;
        if (!sbuf_add(&c->pre, " ", 1) || !sbuf_add(&c->pre, p, n))
            return enc_oom(c);
        p = c->pre.p;
        n = c->pre.n;
    }
    if (!t->pre.bl_re)
        return bpe_word(c, (const unsigned char *)p, n);
    dc_status st = find_matches(t->pre.bl_re, NULL, 0, c->md, p, n, &c->mv, t->name, c->err);
    if (st)
        return st;
    for (size_t i = 0; i < c->mv.n; i++) {
        mrange r = c->mv.v[i];
        if (r.e > r.s && (st = bpe_word(c, (const unsigned char *)p + r.s, r.e - r.s)))
            return st;
    }
    return DC_OK;
}

/* The pre-tokenizer's Split steps on text[s..e), then ByteLevel + BPE. */
static dc_status pretokenize(enc *c, size_t s, size_t e)
{
    const pretok *pt = &c->t->pre;
    c->a.n = 0;
    if (!spans_push(&c->a, s, e))
        return enc_oom(c);
    for (size_t k = 0; k < pt->n_steps; k++) {
        const split_step *st = &pt->steps[k];
        c->b.n = 0;
        for (size_t i = 0; i < c->a.n; i++) {
            span sp = c->a.v[i];
            dc_status r = find_matches(st->re, st->lit, st->lit_len, c->md, c->text + sp.s,
                                       sp.e - sp.s, &c->mv, c->t->name, c->err);
            if (r)
                return r;
            if (!apply_behavior(&c->mv, st->behavior, st->invert, sp.s, &c->b))
                return enc_oom(c);
        }
        spanvec tmp = c->a;
        c->a = c->b;
        c->b = tmp;
    }
    /* byte_level_piece reuses c->mv but not c->a */
    for (size_t i = 0; i < c->a.n; i++) {
        dc_status r = byte_level_piece(c, c->a.v[i].s, c->a.v[i].e);
        if (r)
            return r;
    }
    return DC_OK;
}

static dc_status split_added(enc *c, int phase, size_t s, size_t e);

/* Phase 2 on text[s..e): the normalizer (NFC or identity), then the "normalized" added tokens and
 * the pre-tokenizer on the normalized piece. */
static dc_status normalized_pass(enc *c, size_t s, size_t e)
{
    if (!c->t->nfc)
        return split_added(c, 2, s, e);
    utf8proc_uint8_t *norm = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)c->text + s, (utf8proc_ssize_t)(e - s), &norm,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (n < 0)
        return dc_err_set(c->err, DC_ERR_INPUT, "NFC normalization failed at offset %zu: %s", s,
                          utf8proc_errmsg(n));
    const char *saved = c->text;
    c->text = (const char *)norm;
    dc_status st = split_added(c, 2, 0, (size_t)n);
    c->text = saved;
    free(norm);
    return st;
}

/* Cuts the added tokens of tr out of text[s..e) (HF's AddedVocabulary::find_matches); the
 * pieces between go to the normalized-token pass (phase 1) or the pre-tokenizer (phase 2). */
static dc_status split_added(enc *c, int phase, size_t s, size_t e)
{
    const dc_tok *t = c->t;
    const trie *tr = phase == 1 ? &t->trie_raw : &t->trie_norm;
    const char *x = c->text;
    size_t start_offset = s, pos = s;
    dc_status st;
#define PLAIN(a, b)                                                                        \
    do {                                                                                   \
        if ((b) > (a) &&                                                                   \
            (st = phase == 1 ? normalized_pass(c, (a), (b)) : pretokenize(c, (a), (b))))    \
            return st;                                                                     \
    } while (0)
    while (tr->n > 1 && pos < e) {
        int32_t id = -1;
        size_t ml = 0, q = pos;
        for (; q < e; q++)
            if ((ml = trie_longest(tr, (const unsigned char *)x + q, e - q, &id)))
                break;
        if (!ml)
            break;
        size_t ms = q, me = q + ml;
        pos = me;
        const added_tok *a = added_by_id(t, id);
        if (!a)
            return dc_err_set(c->err, DC_ERR_INTERNAL, "added token id %d has no record", (int)id);
        if (a->single_word) {
            bool start_space = ms == s || !is_word_char(c, x + last_char_start(x + s, ms - s) + s,
                                                        ms - s - last_char_start(x + s, ms - s));
            bool stop_space = true;
            if (me < e) {
                uint32_t cp;
                size_t l = utf8_next((const unsigned char *)x + me, e - me, &cp);
                stop_space = !is_word_char(c, x + me, l ? l : 1);
            }
            if (!start_space || !stop_space)
                continue;
        }
        if (a->lstrip) {
            size_t ns = ms;
            while (ns > s) {
                size_t b = s + last_char_start(x + s, ns - s);
                uint32_t cp;
                if (!utf8_next((const unsigned char *)x + b, ns - b, &cp) || !is_white_space(cp))
                    break;
                ns = b;
            }
            ms = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            while (me < e) {
                uint32_t cp;
                size_t l = utf8_next((const unsigned char *)x + me, e - me, &cp);
                if (!l || !is_white_space(cp))
                    break;
                me += l;
            }
        }
        PLAIN(start_offset, ms);
        if (!ivec_push(&c->out, id))
            return enc_oom(c);
        start_offset = me;
    }
    PLAIN(start_offset, e);
#undef PLAIN
    return DC_OK;
}

dc_status dc_tok_encode(const dc_tok *t, const char *text, size_t len, bool add_special,
                        int32_t **ids, size_t *n, dc_err *err)
{
    *ids = NULL;
    *n = 0;
    if (!text && len)
        return dc_err_set(err, DC_ERR_INPUT, "encode: NULL text of length %zu", len);
    if (!text)
        text = "";
    size_t bad = utf8_invalid_at(text, len);
    if (bad < len)
        return dc_err_set(err, DC_ERR_INPUT,
                          "text is not valid UTF-8: byte 0x%02X at offset %zu of %zu",
                          (unsigned char)text[bad], bad, len);
    enc c = {.t = t, .text = text, .err = err};
    dc_status st = DC_OK;
    c.md = pcre2_match_data_create(32, NULL);
    if (!c.md) {
        st = enc_oom(&c);
        goto done;
    }
    if (add_special) {
        if (t->cfg_has_add) {
            if (t->add_bos && t->bos >= 0 && !ivec_push(&c.out, t->bos)) {
                st = enc_oom(&c);
                goto done;
            }
        } else {
            for (size_t i = 0; i < t->tpl_prefix.n; i++)
                if (!ivec_push(&c.out, t->tpl_prefix.v[i])) {
                    st = enc_oom(&c);
                    goto done;
                }
        }
    }
    if ((st = split_added(&c, 1, 0, len)))
        goto done;
    if (add_special) {
        if (t->cfg_has_add) {
            if (t->add_eos && t->eos >= 0 && !ivec_push(&c.out, t->eos)) {
                st = enc_oom(&c);
                goto done;
            }
        } else {
            for (size_t i = 0; i < t->tpl_suffix.n; i++)
                if (!ivec_push(&c.out, t->tpl_suffix.v[i])) {
                    st = enc_oom(&c);
                    goto done;
                }
        }
    }
    if (!c.out.v && !(c.out.v = malloc(sizeof *c.out.v))) {
        st = enc_oom(&c);
        goto done;
    }
    *ids = c.out.v;
    *n = c.out.n;
    c.out.v = NULL;
done:
    enc_free(&c);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Decode                                                                                      */

dc_status dc_tok_decode(const dc_tok *t, const int32_t *ids, size_t n, bool skip_special,
                        char **text, size_t *len, dc_err *err)
{
    *text = NULL;
    if (len)
        *len = 0;
    sbuf bytes = {0}, out = {0};
    dc_status st = DC_OK;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *s = dc_tok_token(t, ids[i], &l);
        if (!s) {
            st = dc_err_set(err, DC_ERR_INPUT,
                            "token id %d at position %zu is not in the vocabulary (ids 0..%d)",
                            (int)ids[i], i, (int)t->max_id);
            goto done;
        }
        if (skip_special && strtab_find(&t->special_set, s, l) >= 0)
            continue;
        size_t mark = bytes.n, k = 0;
        bool mapped = true;
        while (k < l) {
            uint32_t cp;
            size_t cl = utf8_next((const unsigned char *)s + k, l - k, &cp);
            if (!cl || cp >= 324 || t->cp2b[cp] < 0) {
                mapped = false;
                break;
            }
            unsigned char b = (unsigned char)t->cp2b[cp];
            if (!sbuf_add(&bytes, &b, 1)) {
                st = dc_err_set(err, DC_ERR_NOMEM, "out of memory while decoding");
                goto done;
            }
            k += cl;
        }
        if (!mapped) { /* HF keeps the token's own bytes when a char is outside the map */
            bytes.n = mark;
            if (!sbuf_add(&bytes, s, l)) {
                st = dc_err_set(err, DC_ERR_NOMEM, "out of memory while decoding");
                goto done;
            }
        }
    }
    if (!utf8_lossy_append(&out, (const unsigned char *)(bytes.p ? bytes.p : ""), bytes.n) ||
        (!out.p && !sbuf_add(&out, "", 0))) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory while decoding");
        goto done;
    }
    *text = out.p;
    if (len)
        *len = out.n;
    out.p = NULL;
done:
    free(bytes.p);
    free(out.p);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Synthetic tokenizer                                                                         */

/* DeepSeek-V3's normalizer, pre_tokenizer, post_processor and decoder sections (configuration
 * facts of the real tokenizer.json; the CJK ranges are written as \u escapes). */
static const char SYN_NORMALIZER[] = "{\"type\": \"Sequence\", \"normalizers\": []}";
static const char SYN_PRE_TOKENIZER[] =
    "{\"type\": \"Sequence\", \"pretokenizers\": ["
    "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\p{N}{1,3}\"}, \"behavior\": \"Isolated\", "
    "\"invert\": false}, "
    "{\"type\": \"Split\", \"pattern\": "
    "{\"Regex\": \"[\\u4e00-\\u9fa5\\u3040-\\u309f\\u30a0-\\u30ff]+\"}, "
    "\"behavior\": \"Isolated\", \"invert\": false}, "
    "{\"type\": \"Split\", \"pattern\": "
    "{\"Regex\": \"[!\\\"#$%&'()*+,\\\\-./:;<=>?@\\\\[\\\\\\\\\\\\]^_`{|}~]"
    "[A-Za-z]+|[^\\r\\n\\\\p{L}\\\\p{P}\\\\p{S}]?[\\\\p{L}\\\\p{M}]+| ?[\\\\p{P}\\\\p{S}]+[\\r\\n]*|"
    "\\\\s*[\\r\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": \"Isolated\", \"invert\": false}, "
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "
    "\"use_regex\": false}]}";
static const char SYN_POST_PROCESSOR[] =
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, "
    "\"use_regex\": true}";
static const char SYN_DECODER[] =
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, "
    "\"use_regex\": true}";

#define SYN_BOS u8"<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>"
#define SYN_EOS u8"<\uFF5Cend\u2581of\u2581sentence\uFF5C>"

static const char SYN_CHAT_TEMPLATE[] =
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

/* Training text for the synthetic merges: English prose and a little code, written for this
 * project. Paragraphs are separated by blank lines; the seed weights them. */
static const char SYN_TEXT[] =
    "A tokenizer turns text into a sequence of integers, and a model turns those integers back "
    "into text one piece at a time. The pieces are called tokens. Short, common words usually "
    "become a single token, while rare words are split into several smaller pieces. Numbers are "
    "cut into groups of at most three digits, so 2024 becomes 202 and 4.\n\n"
    "Byte pair encoding starts from the 256 possible bytes and repeatedly joins the most frequent "
    "pair of neighbouring symbols into a new symbol. Every join is written down as a merge rule. "
    "When the tokenizer later encodes a word, it applies the merge rules in the order in which "
    "they were learned, always picking the earliest rule that still applies.\n\n"
    "The quick brown fox jumps over the lazy dog. The lazy dog sleeps in the warm sun while the "
    "fox runs through the green field and over the old stone wall. Then the dog wakes up, looks "
    "around, and goes back to sleep.\n\n"
    "Quantization stores the weights of a large language model with fewer bits. A weight that "
    "used sixteen bits may be stored with eight or four bits, together with a scale for every "
    "block of values. The memory footprint shrinks, the model loads faster, and the quality "
    "usually stays close to the original when the scales are chosen with care.\n\n"
    "A mixture of experts layer routes every token to a few experts out of many. The router "
    "computes a score for each expert, keeps the best ones, and mixes their outputs with the "
    "normalized scores as weights. Only the chosen experts run, so the layer is large but cheap.\n\n"
    "def quantize(x, scale):\n"
    "    \"\"\"Round x / scale to the nearest integer in [-128, 127].\"\"\"\n"
    "    q = round(x / scale)\n"
    "    return max(-128, min(127, q))\n\n"
    "def dequantize(q, scale):\n"
    "    return q * scale\n\n"
    "for name, tensor in model.items():\n"
    "    print(name, tensor.shape, tensor.dtype)\n\n"
    "#include <stdio.h>\n"
    "#include <stdint.h>\n\n"
    "static int32_t clamp(int32_t v, int32_t lo, int32_t hi)\n"
    "{\n"
    "    return v < lo ? lo : v > hi ? hi : v;\n"
    "}\n\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    for (int i = 0; i < argc; i++)\n"
    "        printf(\"%d: %s\\n\", i, argv[i]);\n"
    "    return 0;\n"
    "}\n\n"
    "{\"hidden_size\": 7168, \"num_hidden_layers\": 61, \"vocab_size\": 129280, "
    "\"n_routed_experts\": 256, \"num_experts_per_tok\": 8, \"rms_norm_eps\": 1e-06}\n\n"
    "To convert a checkpoint, read the configuration first, then walk over every tensor, check "
    "its name, its shape and its data type, and write it to the output file. If a tensor is "
    "missing or has the wrong shape, stop and report the name of the file and the numbers that "
    "do not match. Never guess what the user meant.\n\n"
    "The tokenizer and the model must agree on the vocabulary. When the model has more rows in "
    "its embedding table than the tokenizer has tokens, the extra rows are padding and are never "
    "produced by the tokenizer. The beginning of sentence token is added in front of every "
    "prompt, and the end of sentence token tells the model to stop.\n\n"
    "Hello world! How are you today? I am fine, thank you. What time is it? It is half past "
    "nine in the morning, and the meeting starts at ten. Please bring the report, the charts and "
    "the numbers for the last three months.\n\n"
    "Tests are small programs that check one thing at a time. A good test writes its input, runs "
    "the code, and compares the result with the value it expects. When a test fails, its message "
    "should say what was expected, what was found, and where.\n\n"
    "The weather was cold and clear. Snow covered the hills, the rivers were frozen, and the "
    "children went out with their sleds. In the evening they came home, ate hot soup, and told "
    "their parents about the long ride down the hill.\n\n"
    "SELECT name, count(*) FROM tokens WHERE length(text) > 3 GROUP BY name ORDER BY 2 DESC;\n\n"
    "$ deepcast tokenize ./model --text prompt.txt --json\n"
    "{\"ids\": [0, 19923, 2058]}\n";

/* splitmix64 */
static uint64_t syn_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef struct trainer {
    strtab toks;        /* token strings (byte-level form) -> creation index */
    strtab words;       /* distinct words (raw bytes) -> count */
    int32_t **wsym;     /* per word: symbol token indices */
    size_t *wlen;
    ivec merge_a, merge_b; /* merges as token indices */
    u64map pairs;
} trainer;

static void trainer_free(trainer *tr)
{
    strtab_free(&tr->toks);
    if (tr->wsym)
        for (size_t i = 0; i < tr->words.n; i++)
            free(tr->wsym[i]);
    free(tr->wsym);
    free(tr->wlen);
    strtab_free(&tr->words);
    free(tr->merge_a.v);
    free(tr->merge_b.v);
    u64map_free(&tr->pairs);
}

/* Learns merges until the vocabulary has target tokens or no pair is left. */
static dc_status syn_train(trainer *tr, const pretok *pt, uint64_t seed, size_t target, dc_err *err)
{
    /* words of the text, weighted per paragraph by the seed */
    enc c = {.err = err, .text = SYN_TEXT};
    dc_status st = DC_OK;
    sbuf mapped = {0};
    c.md = pcre2_match_data_create(32, NULL);
    if (!c.md) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    uint64_t rs = seed;
    size_t len = sizeof SYN_TEXT - 1, p = 0;
    while (p < len) {
        const char *nx = strstr(SYN_TEXT + p, "\n\n");
        size_t e = nx ? (size_t)(nx - SYN_TEXT) + 2 : len;
        int32_t weight = 1 + (int32_t)(syn_rand(&rs) % 3);
        /* split the paragraph with the pre-tokenizer's Split steps */
        c.a.n = 0;
        if (!spans_push(&c.a, p, e)) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t k = 0; k < pt->n_steps; k++) {
            const split_step *sp = &pt->steps[k];
            c.b.n = 0;
            for (size_t i = 0; i < c.a.n; i++) {
                span s = c.a.v[i];
                if ((st = find_matches(sp->re, sp->lit, sp->lit_len, c.md, SYN_TEXT + s.s,
                                       s.e - s.s, &c.mv, "synthetic", err)))
                    goto done;
                if (!apply_behavior(&c.mv, sp->behavior, sp->invert, s.s, &c.b)) {
                    st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                    goto done;
                }
            }
            spanvec tmp = c.a;
            c.a = c.b;
            c.b = tmp;
        }
        for (size_t i = 0; i < c.a.n; i++) {
            bool existed;
            long ix = strtab_add(&tr->words, SYN_TEXT + c.a.v[i].s, c.a.v[i].e - c.a.v[i].s, 0,
                                 &existed);
            if (ix < 0) {
                st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                goto done;
            }
            tr->words.val[ix] += weight;
        }
        p = e;
    }
    /* the 256 byte tokens, in the order of their byte-level characters */
    uint16_t b2cp[256];
    int16_t cp2b[324];
    byte_level_tables(b2cp, cp2b);
    int32_t byte_tok[256];
    for (int cp = 0; cp < 324; cp++) {
        if (cp2b[cp] < 0)
            continue;
        char u[4];
        size_t l = utf8_put(u, (uint32_t)cp);
        long ix = strtab_add(&tr->toks, u, l, 0, NULL);
        if (ix < 0) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        byte_tok[cp2b[cp]] = (int32_t)ix;
    }
    size_t nw = tr->words.n;
    tr->wsym = calloc(nw ? nw : 1, sizeof *tr->wsym);
    tr->wlen = calloc(nw ? nw : 1, sizeof *tr->wlen);
    if (!tr->wsym || !tr->wlen) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nw; i++) {
        size_t l = tr->words.len[i];
        const unsigned char *s = (const unsigned char *)strtab_str(&tr->words, i);
        if (!(tr->wsym[i] = malloc((l ? l : 1) * sizeof **tr->wsym))) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t k = 0; k < l; k++)
            tr->wsym[i][k] = byte_tok[s[k]];
        tr->wlen[i] = l;
    }
    /* merge loop: the most frequent pair; ties go to the smallest (left, right) token indices */
    while (tr->toks.n < target) {
        u64map_clear(&tr->pairs);
        for (size_t i = 0; i < nw; i++)
            for (size_t k = 0; k + 1 < tr->wlen[i]; k++) {
                uint64_t key = pair_key(tr->wsym[i][k], tr->wsym[i][k + 1]), v = 0;
                u64map_get(&tr->pairs, key, &v);
                if (!u64map_put(&tr->pairs, key, v + (uint64_t)tr->words.val[i])) {
                    st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
                    goto done;
                }
            }
        uint64_t best = U64_EMPTY, best_n = 0;
        for (size_t i = 0; i < tr->pairs.cap; i++) {
            if (tr->pairs.keys[i] == U64_EMPTY)
                continue;
            uint64_t k = tr->pairs.keys[i], v = tr->pairs.vals[i];
            if (v > best_n || (v == best_n && k < best)) {
                best = k;
                best_n = v;
            }
        }
        if (best == U64_EMPTY)
            break;
        int32_t a = (int32_t)(best >> 32), b = (int32_t)(uint32_t)best;
        mapped.n = 0;
        if (!sbuf_add(&mapped, strtab_str(&tr->toks, a), tr->toks.len[a]) ||
            !sbuf_add(&mapped, strtab_str(&tr->toks, b), tr->toks.len[b])) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        long nt = strtab_add(&tr->toks, mapped.p, mapped.n, 0, NULL);
        if (nt < 0 || !ivec_push(&tr->merge_a, a) || !ivec_push(&tr->merge_b, b)) {
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < nw; i++) {
            size_t o = 0, l = tr->wlen[i];
            int32_t *s = tr->wsym[i];
            for (size_t k = 0; k < l; k++) {
                if (k + 1 < l && s[k] == a && s[k + 1] == b) {
                    s[o++] = (int32_t)nt;
                    k++;
                } else {
                    s[o++] = s[k];
                }
            }
            tr->wlen[i] = o;
        }
    }
done:
    free(mapped.p);
    pcre2_match_data_free(c.md);
    free(c.a.v);
    free(c.b.v);
    free(c.mv.v);
    return st;
}

static cJSON *syn_added_token(int32_t id, const char *content)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "id", id);
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddBoolToObject(o, "single_word", 0);
    cJSON_AddBoolToObject(o, "lstrip", 0);
    cJSON_AddBoolToObject(o, "rstrip", 0);
    cJSON_AddBoolToObject(o, "normalized", 0);
    cJSON_AddBoolToObject(o, "special", 1);
    return o;
}

static cJSON *syn_config_token(const char *content)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "__type", "AddedToken");
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddBoolToObject(o, "lstrip", 0);
    cJSON_AddBoolToObject(o, "normalized", 1);
    cJSON_AddBoolToObject(o, "rstrip", 0);
    cJSON_AddBoolToObject(o, "single_word", 0);
    return o;
}

/* Writes buf to path through a temporary sibling and a rename. */
static dc_status write_file(const char *path, const char *buf, size_t n, dc_err *err)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 32);
    if (!tmp)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    snprintf(tmp, pl + 32, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        dc_status st = dc_err_set(err, DC_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    bool ok = fwrite(buf, 1, n, f) == n;
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            e = errno;
        unlink(tmp);
        free(tmp);
        return dc_err_set(err, DC_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    free(tmp);
    return DC_OK;
}

dc_status dc_tok_write_synthetic(const char *dir, int vocab_size, int bos_id, int eos_id,
                                 uint64_t seed, dc_err *err)
{
    if (vocab_size < 258)
        return dc_err_set(err, DC_ERR_INPUT,
                          "synthetic tokenizer: vocab_size %d is below 258 (256 bytes + BOS + EOS)",
                          vocab_size);
    if (bos_id < 0 || bos_id >= vocab_size || eos_id < 0 || eos_id >= vocab_size ||
        bos_id == eos_id)
        return dc_err_set(err, DC_ERR_INPUT,
                          "synthetic tokenizer: bos_id %d and eos_id %d must be distinct and in "
                          "[0, %d)", bos_id, eos_id, vocab_size);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return dc_err_set(err, DC_ERR_IO, "cannot create directory %s: %s", dir, strerror(errno));

    trainer tr;
    memset(&tr, 0, sizeof tr);
    pretok pt;
    memset(&pt, 0, sizeof pt);
    cJSON *root = NULL, *cfg = NULL, *pre_j = NULL;
    char *text = NULL, *ctext = NULL, *jpath = NULL, *cpath = NULL;
    dc_status st;
    if (!(pre_j = cJSON_Parse(SYN_PRE_TOKENIZER))) {
        st = dc_err_set(err, DC_ERR_INTERNAL, "synthetic tokenizer: bad embedded pre_tokenizer");
        goto done;
    }
    if ((st = pretok_parse(&pt, pre_j, "synthetic pre_tokenizer", err)) ||
        (st = syn_train(&tr, &pt, seed, (size_t)vocab_size - 2, err)))
        goto done;

    /* ids: BOS and EOS where asked, the learned tokens in creation order in the other ids, and
     * placeholder specials in the unused ids below BOS/EOS */
    size_t ntok = tr.toks.n;
    int32_t *tok_id = malloc(ntok * sizeof *tok_id);
    if (!tok_id) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    int32_t next = 0;
    for (size_t i = 0; i < ntok; i++) {
        while (next == bos_id || next == eos_id)
            next++;
        tok_id[i] = next++;
    }
    int32_t top = next - 1;
    if (bos_id > top)
        top = bos_id;
    if (eos_id > top)
        top = eos_id;

    root = cJSON_CreateObject();
    cJSON *added = cJSON_CreateArray(), *vocab = cJSON_CreateObject(),
          *merges = cJSON_CreateArray(), *model = cJSON_CreateObject();
    cJSON *sections[4] = {cJSON_Parse(SYN_NORMALIZER), cJSON_Parse(SYN_PRE_TOKENIZER),
                          cJSON_Parse(SYN_POST_PROCESSOR), cJSON_Parse(SYN_DECODER)};
    bool ok = root && added && vocab && merges && model && sections[0] && sections[1] &&
              sections[2] && sections[3];
    if (!ok) {
        cJSON_Delete(added);
        cJSON_Delete(vocab);
        cJSON_Delete(merges);
        cJSON_Delete(model);
        for (int i = 0; i < 4; i++)
            cJSON_Delete(sections[i]);
        free(tok_id);
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory building the synthetic tokenizer");
        goto done;
    }
    /* id -> string for every id in [0, top] */
    size_t i_tok = 0;
    char ph[96];
    for (int32_t id = 0; id <= top; id++) {
        const char *s;
        if (id == bos_id)
            s = SYN_BOS;
        else if (id == eos_id)
            s = SYN_EOS;
        else if (i_tok < ntok && tok_id[i_tok] == id)
            s = strtab_str(&tr.toks, i_tok++);
        else {
            snprintf(ph, sizeof ph, u8"<\uFF5Cplace\u2581holder\u2581no\u2581%d\uFF5C>", (int)id);
            s = ph;
        }
        ok &= cJSON_AddNumberToObject(vocab, s, id) != NULL;
        if (id == bos_id || id == eos_id || s == ph) {
            cJSON *a = syn_added_token(id, s);
            ok &= a != NULL;
            if (a)
                cJSON_AddItemToArray(added, a);
        }
    }
    sbuf m = {0};
    for (size_t k = 0; k < tr.merge_a.n && ok; k++) {
        m.n = 0;
        ok &= sbuf_add(&m, strtab_str(&tr.toks, tr.merge_a.v[k]), tr.toks.len[tr.merge_a.v[k]]) &&
              sbuf_add(&m, " ", 1) &&
              sbuf_add(&m, strtab_str(&tr.toks, tr.merge_b.v[k]), tr.toks.len[tr.merge_b.v[k]]);
        cJSON *ms = ok ? cJSON_CreateString(m.p) : NULL;
        ok &= ms != NULL;
        if (ms)
            cJSON_AddItemToArray(merges, ms);
    }
    free(m.p);
    free(tok_id);
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON_AddItemToObject(root, "added_tokens", added);
    cJSON_AddItemToObject(root, "normalizer", sections[0]);
    cJSON_AddItemToObject(root, "pre_tokenizer", sections[1]);
    cJSON_AddItemToObject(root, "post_processor", sections[2]);
    cJSON_AddItemToObject(root, "decoder", sections[3]);
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", 0);
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddItemToObject(root, "model", model);

    cfg = cJSON_CreateObject();
    ok &= cfg != NULL;
    if (cfg) {
        cJSON_AddBoolToObject(cfg, "add_bos_token", 1);
        cJSON_AddBoolToObject(cfg, "add_eos_token", 0);
        cJSON_AddItemToObject(cfg, "bos_token", syn_config_token(SYN_BOS));
        cJSON_AddBoolToObject(cfg, "clean_up_tokenization_spaces", 0);
        cJSON_AddItemToObject(cfg, "eos_token", syn_config_token(SYN_EOS));
        cJSON_AddBoolToObject(cfg, "legacy", 1);
        cJSON_AddNumberToObject(cfg, "model_max_length", 16384);
        cJSON_AddItemToObject(cfg, "pad_token", syn_config_token(SYN_EOS));
        cJSON_AddItemToObject(cfg, "sp_model_kwargs", cJSON_CreateObject());
        cJSON_AddNullToObject(cfg, "unk_token");
        cJSON_AddStringToObject(cfg, "tokenizer_class", "LlamaTokenizerFast");
        cJSON_AddStringToObject(cfg, "chat_template", SYN_CHAT_TEMPLATE);
    }
    if (!ok || !(text = cJSON_Print(root)) || !(ctext = cJSON_Print(cfg)) ||
        !(jpath = dc_path_join(dir, "tokenizer.json")) ||
        !(cpath = dc_path_join(dir, "tokenizer_config.json"))) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory building the synthetic tokenizer");
        goto done;
    }
    /* cJSON_Print has no trailing newline */
    size_t tl = strlen(text), cl = strlen(ctext);
    char *t2 = realloc(text, tl + 2), *c2 = t2 ? realloc(ctext, cl + 2) : NULL;
    if (t2)
        text = t2;
    if (c2)
        ctext = c2;
    if (!t2 || !c2) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    text[tl] = '\n';
    text[tl + 1] = 0;
    ctext[cl] = '\n';
    ctext[cl + 1] = 0;
    if ((st = write_file(jpath, text, tl + 1, err)) || (st = write_file(cpath, ctext, cl + 1, err)))
        goto done;
done:
    trainer_free(&tr);
    pretok_free(&pt);
    cJSON_Delete(pre_j);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    free(text);
    free(ctext);
    free(jpath);
    free(cpath);
    return st;
}
