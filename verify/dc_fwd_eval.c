/* Evaluation helpers shared by the logits / perplexity / kld commands (see dc_forward.h):
 * token files, chunking (plain and llama.cpp-compatible), NLL / PPL statistics, KL divergence,
 * and the base-logits file (docs/forward.md). */
#include "dc_forward.h"
#include "dc_tokenizer.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

/* ================================================================================================
 * Token files
 * ================================================================================================ */

dc_status dc_tokens_parse(const char *text, size_t len, const char *name, int32_t **ids, size_t *n, dc_err *err)
{
    *ids = NULL;
    *n = 0;
    size_t i = 0, cap = 0;
    while (i < len && isspace((unsigned char)text[i]))
        i++;
    bool json = i < len && text[i] == '[';
    if (json)
        i++;
    bool need_sep = false, closed = false;
    while (i < len) {
        unsigned char ch = (unsigned char)text[i];
        if (isspace(ch)) {
            i++;
            continue;
        }
        if (json && ch == ']') {
            closed = true;
            i++;
            break;
        }
        if (json && ch == ',') {
            if (!need_sep) {
                free(*ids);
                *ids = NULL;
                return dc_err_set(err, DC_ERR_INPUT, "%s: unexpected ',' at byte %zu", name, i);
            }
            need_sep = false;
            i++;
            continue;
        }
        if (json && need_sep) {
            free(*ids);
            *ids = NULL;
            return dc_err_set(err, DC_ERR_INPUT, "%s: expected ',' or ']' at byte %zu", name, i);
        }
        if (!(ch >= '0' && ch <= '9') && ch != '-') {
            free(*ids);
            *ids = NULL;
            return dc_err_set(err, DC_ERR_INPUT, "%s: byte %zu: expected a decimal token id, found '%c' (0x%02x)",
                              name, i, isprint(ch) ? ch : '?', ch);
        }
        size_t j = i + (ch == '-');
        long long v = 0;
        bool digits = false, big = false;
        while (j < len && text[j] >= '0' && text[j] <= '9') {
            v = v * 10 + (text[j] - '0');
            if (v > 0x7fffffffLL)
                big = true, v = 0x7fffffffLL;
            digits = true;
            j++;
        }
        if (!digits || (j < len && !isspace((unsigned char)text[j]) && !(json && (text[j] == ',' || text[j] == ']')))) {
            free(*ids);
            *ids = NULL;
            return dc_err_set(err, DC_ERR_INPUT, "%s: byte %zu: '%.*s' is not a decimal token id", name, i,
                              (int)((j < len ? j + 1 : j) - i > 32 ? 32 : (j < len ? j + 1 : j) - i), text + i);
        }
        if (ch == '-' || big) {
            free(*ids);
            *ids = NULL;
            return dc_err_set(err, DC_ERR_INPUT, "%s: byte %zu: token id %.*s is out of range", name, i,
                              (int)(j - i > 32 ? 32 : j - i), text + i);
        }
        if (!dc_grow((void **)ids, &cap, *n + 1, sizeof **ids)) {
            free(*ids);
            *ids = NULL;
            return dc_err_set(err, DC_ERR_NOMEM, "%s: out of memory", name);
        }
        (*ids)[(*n)++] = (int32_t)v;
        need_sep = true;
        i = j;
    }
    if (json && !closed) {
        free(*ids);
        *ids = NULL;
        return dc_err_set(err, DC_ERR_INPUT, "%s: JSON list is not closed with ']'", name);
    }
    while (i < len && isspace((unsigned char)text[i]))
        i++;
    if (i < len) {
        free(*ids);
        *ids = NULL;
        return dc_err_set(err, DC_ERR_INPUT, "%s: unexpected data after the JSON list at byte %zu", name, i);
    }
    if (*n == 0) {
        free(*ids);
        *ids = NULL;
        return dc_err_set(err, DC_ERR_INPUT, "%s: no token ids", name);
    }
    return DC_OK;
}

dc_status dc_tokens_load(const char *path, int32_t **ids, size_t *n, dc_err *err)
{
    char *buf;
    size_t len;
    dc_status st = dc_read_file(path, &buf, &len, (uint64_t)1 << 32, err);
    if (st)
        return st; /* DC_ERR_IO: cannot open / read */
    st = dc_tokens_parse(buf, len, path, ids, n, err);
    free(buf);
    return st;
}

dc_status dc_tokens_check(const int32_t *ids, size_t n, int64_t vocab, const char *what, dc_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return dc_err_set(err, DC_ERR_INPUT, "%s: token %zu is %d, outside the model's vocabulary [0, %lld)",
                              what, i, ids[i], (long long)vocab);
    return DC_OK;
}

/* ================================================================================================
 * Log-probabilities
 * ================================================================================================ */

int64_t dc_argmax(const float *row, int64_t n)
{
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++)
        if (row[i] > row[b])
            b = i;
    return b;
}

double dc_logsumexp(const float *row, int64_t n)
{
    float mx = row[dc_argmax(row, n)];
    if (isinf(mx))
        return mx;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += exp((double)row[i] - (double)mx);
    return (double)mx + log(s);
}

/* ================================================================================================
 * Chunking
 * ================================================================================================ */

dc_status dc_chunking_init(dc_chunking *c, int64_t n_tokens, int64_t ctx, bool llama_compat, int32_t bos,
                           dc_err *err)
{
    memset(c, 0, sizeof *c);
    c->llama_compat = llama_compat;
    c->bos = bos;
    if (llama_compat) {
        c->ctx = ctx > 0 ? ctx : 512;
        if (c->ctx < 4)
            return dc_err_set(err, DC_ERR_USAGE, "--ctx %lld is too small for llama.cpp scoring (at least 4)",
                              (long long)c->ctx);
        if (n_tokens < 2 * c->ctx)
            return dc_err_set(err, DC_ERR_INPUT, "llama.cpp-compatible scoring needs at least %lld tokens "
                              "(2 * ctx %lld); the input has %lld", (long long)(2 * c->ctx), (long long)c->ctx,
                              (long long)n_tokens);
        c->n_chunks = n_tokens / c->ctx;
        return DC_OK;
    }
    if (n_tokens < 2)
        return dc_err_set(err, DC_ERR_INPUT, "need at least 2 tokens to score a prediction; the input has %lld",
                          (long long)n_tokens);
    c->ctx = ctx > 0 && ctx < n_tokens ? ctx : n_tokens;
    if (c->ctx < 2)
        return dc_err_set(err, DC_ERR_USAGE, "--ctx must be at least 2, got %lld", (long long)c->ctx);
    c->n_chunks = n_tokens / c->ctx + (n_tokens % c->ctx >= 2);
    return DC_OK;
}

void dc_chunk_range(const dc_chunking *c, int64_t n_tokens, int64_t i, int64_t *start, int64_t *len, int64_t *first)
{
    *start = i * c->ctx;
    *len = n_tokens - *start < c->ctx ? n_tokens - *start : c->ctx;
    *first = c->llama_compat ? c->ctx / 2 : 0;
}

int64_t dc_chunking_scored(const dc_chunking *c, int64_t n_tokens)
{
    int64_t s = 0;
    for (int64_t i = 0; i < c->n_chunks; i++) {
        int64_t st, len, first;
        dc_chunk_range(c, n_tokens, i, &st, &len, &first);
        s += len - 1 - first;
    }
    return s;
}

/* ================================================================================================
 * NLL / PPL
 * ================================================================================================ */

void dc_nll_add(dc_nll_acc *a, double nll)
{
    a->sum += nll;
    a->sum2 += nll * nll;
    a->count++;
}

double dc_nll_mean(const dc_nll_acc *a) { return a->count ? a->sum / (double)a->count : 0; }

double dc_nll_ppl(const dc_nll_acc *a, double *ppl_stderr)
{
    double mean = dc_nll_mean(a), ppl = exp(mean);
    if (ppl_stderr) {
        double var = a->count ? a->sum2 / (double)a->count - mean * mean : 0;
        *ppl_stderr = a->count > 1 && var > 0 ? sqrt(var / (double)(a->count - 1)) * ppl : 0;
    }
    return ppl;
}

/* ================================================================================================
 * KL divergence
 * ================================================================================================ */

void dc_topk_from_logits(const float *row, int64_t vocab, int k, int32_t target, dc_topk_rec *rec)
{
    double lse = dc_logsumexp(row, vocab);
    /* top k by insertion into a sorted list (descending logit, ties to the lower id) */
    int n = 0;
    for (int64_t i = 0; i < vocab; i++) {
        float v = row[i];
        if (n == k && !(v > row[rec->ids[n - 1]]))
            continue;
        int p = n < k ? n++ : k - 1;
        while (p > 0 && v > row[rec->ids[p - 1]]) {
            rec->ids[p] = rec->ids[p - 1];
            p--;
        }
        rec->ids[p] = (int32_t)i;
    }
    for (int j = 0; j < n; j++)
        rec->logp[j] = (float)((double)row[rec->ids[j]] - lse);
    /* rest mass, summed over the ids outside the top k (not 1 - top mass: no cancellation) */
    double rest = 0;
    if (n < vocab) {
        float lowest = row[rec->ids[n - 1]];
        for (int64_t i = 0; i < vocab; i++) {
            if (row[i] > lowest)
                continue;
            bool in = false;
            if (row[i] == lowest)
                for (int j = 0; j < n && !in; j++)
                    in = rec->ids[j] == i;
            if (!in)
                rest += exp((double)row[i] - lse);
        }
    }
    rec->log_rest = rest > 0 ? (float)log(rest) : -INFINITY;
    rec->logp_target = (float)((double)row[target] - lse);
}

double dc_kld_full(const float *base_row, const float *model_row, int64_t vocab)
{
    double lb = dc_logsumexp(base_row, vocab), lm = dc_logsumexp(model_row, vocab);
    double s = 0;
    for (int64_t i = 0; i < vocab; i++) {
        double pb = (double)base_row[i] - lb;
        if (isinf(pb))
            continue;
        s += exp(pb) * (pb - ((double)model_row[i] - lm));
    }
    return s;
}

double dc_kld_topk(const dc_topk_rec *base, int k, const float *model_row, int64_t vocab, uint8_t *mark)
{
    double lm = dc_logsumexp(model_row, vocab);
    double s = 0;
    for (int j = 0; j < k; j++) {
        /* the model's log-prob rounded to f32 exactly as the base's was, so that a model compared
         * with its own saved base gives 0 */
        float lpm = (float)((double)model_row[base->ids[j]] - lm);
        double lpb = base->logp[j];
        if (!isinf(lpb))
            s += exp(lpb) * (lpb - (double)lpm);
        mark[base->ids[j]] = 1;
    }
    double rest_m = 0;
    for (int64_t i = 0; i < vocab; i++) {
        if (mark[i])
            continue;
        rest_m += exp((double)model_row[i] - lm);
    }
    for (int j = 0; j < k; j++)
        mark[base->ids[j]] = 0;
    if (!isinf(base->log_rest)) {
        float lrm = rest_m > 0 ? (float)log(rest_m) : -INFINITY;
        double lrb = base->log_rest;
        s += exp(lrb) * (lrb - (double)lrm);
    }
    return s;
}

void dc_kld_add(dc_kld_acc *a, double kld, double nll_base, double nll_model, bool same_top)
{
    dc_nll_add(&a->nll_model, nll_model);
    dc_nll_add(&a->nll_base, nll_base);
    a->sum_nll_cross += nll_model * nll_base;
    a->sum_kld += kld;
    a->sum_kld2 += kld * kld;
    double dp = exp(-nll_model) - exp(-nll_base);
    a->sum_dp += dp;
    a->sum_dp2 += dp * dp;
    a->sum_dp4 += dp * dp * dp * dp;
    a->n_same_top += same_top;
    if ((size_t)a->count >= a->cap && !a->oom) {
        size_t nc = a->cap ? a->cap * 2 : 1024;
        float *k2 = realloc(a->kld, nc * sizeof(float));
        if (k2)
            a->kld = k2;
        float *d2 = k2 ? realloc(a->dp, nc * sizeof(float)) : NULL;
        if (d2)
            a->dp = d2;
        if (k2 && d2)
            a->cap = nc;
        else
            a->oom = true;
    }
    if (!a->oom) {
        a->kld[a->count] = (float)kld;
        a->dp[a->count] = (float)dp;
    }
    a->count++;
}

void dc_kld_free(dc_kld_acc *a)
{
    free(a->kld);
    free(a->dp);
    memset(a, 0, sizeof *a);
}

double dc_percentile_sorted(const float *v, size_t n, double fraction)
{
    if (!n)
        return 0;
    if (fraction <= 0)
        return v[0];
    if (fraction >= 1)
        return v[n - 1];
    double p = fraction * (double)(n - 1);
    size_t ip = (size_t)p;
    p -= (double)ip;
    size_t iq = ip + 1 < n ? ip + 1 : n - 1;
    return (1 - p) * v[ip] + p * v[iq];
}

/* ================================================================================================
 * Base-logits file
 * ================================================================================================
 * Little-endian. Header (72 bytes):
 *    0  char[8] "DCKLBASE"      8  u32 version (1)        12 u32 header bytes (72)
 *   16  u32 top_k              20  u32 flags (bit 0: llama.cpp-compatible chunking)
 *   24  i64 vocab              32  i64 n_tokens           40  i64 ctx (chunk length)
 *   48  i64 n_positions        56  u64 XXH3-64 of the token array bytes
 *   64  i32 bos (llama mode)   68  u32 reserved (0)
 * then i32 tokens[n_tokens], then n_positions records of 8 + 8 * top_k bytes:
 *   f32 logp_target, f32 log_rest, i32 ids[top_k], f32 logp[top_k]. */

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static int64_t rd64(const uint8_t *p) { int64_t v; memcpy(&v, p, 8); return v; }
static float rdf(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }

void dc_base_close(dc_base_file *f)
{
    dc_map_close(&f->map);
    memset(f, 0, sizeof *f);
}

dc_status dc_base_open(const char *path, dc_base_file *f, dc_err *err)
{
    memset(f, 0, sizeof *f);
    dc_status st = dc_map_open(path, &f->map, err);
    if (st)
        return st;
    const uint8_t *d = f->map.data;
    uint64_t size = f->map.size;
    if (size < DC_BASE_HEADER_BYTES || memcmp(d, DC_BASE_MAGIC, 8)) {
        dc_base_close(f);
        return dc_err_set(err, DC_ERR_FORMAT, "%s: not a deepcast base-logits file (magic \"%s\" missing)", path,
                          DC_BASE_MAGIC);
    }
    uint32_t ver = rd32(d + 8), hb = rd32(d + 12);
    if (ver != DC_BASE_VERSION || hb != DC_BASE_HEADER_BYTES) {
        dc_base_close(f);
        return dc_err_set(err, DC_ERR_FORMAT, "%s: base-logits version %u / header %u bytes; this build reads "
                          "version %u / %u bytes", path, ver, hb, DC_BASE_VERSION, DC_BASE_HEADER_BYTES);
    }
    f->top_k = rd32(d + 16);
    f->flags = rd32(d + 20);
    f->vocab = rd64(d + 24);
    f->n_tokens = rd64(d + 32);
    f->ctx = rd64(d + 40);
    f->n_positions = rd64(d + 48);
    uint64_t hash = (uint64_t)rd64(d + 56);
    f->bos = (int32_t)rd32(d + 64);
    f->llama_compat = f->flags & 1;
    if (f->vocab < 1 || f->vocab > ((int64_t)1 << 31) || f->top_k < 1 || (int64_t)f->top_k > f->vocab ||
        f->top_k > (1u << 20) || f->n_tokens < 2 || f->n_tokens > ((int64_t)1 << 40) || f->ctx < 2 ||
        f->n_positions < 1 || (f->flags & ~1u) || rd32(d + 68) != 0) {
        dc_err_set(err, DC_ERR_FORMAT, "%s: invalid header: vocab %lld, top_k %u, n_tokens %lld, ctx %lld, "
                   "positions %lld, flags 0x%x", path, (long long)f->vocab, f->top_k, (long long)f->n_tokens,
                   (long long)f->ctx, (long long)f->n_positions, f->flags);
        dc_base_close(f);
        return DC_ERR_FORMAT;
    }
    f->record_bytes = 8 + 8 * (uint64_t)f->top_k;
    uint64_t want = DC_BASE_HEADER_BYTES + 4 * (uint64_t)f->n_tokens, recs;
    if (!dc_mul_u64(f->record_bytes, (uint64_t)f->n_positions, &recs) || !dc_add_u64(want, recs, &want) ||
        want != size) {
        dc_err_set(err, DC_ERR_FORMAT, "%s: file is %llu bytes; its header (%lld tokens, %lld positions, top %u) "
                   "implies %llu", path, (unsigned long long)size, (long long)f->n_tokens,
                   (long long)f->n_positions, f->top_k, (unsigned long long)want);
        dc_base_close(f);
        return DC_ERR_FORMAT;
    }
    f->tokens_raw = d + DC_BASE_HEADER_BYTES;
    f->records = f->tokens_raw + 4 * (uint64_t)f->n_tokens;
    if (XXH3_64bits(f->tokens_raw, 4 * (size_t)f->n_tokens) != hash) {
        dc_base_close(f);
        return dc_err_set(err, DC_ERR_FORMAT, "%s: token array hash mismatch (file corrupt)", path);
    }
    for (int64_t i = 0; i < f->n_tokens; i++) {
        int32_t t = (int32_t)rd32(f->tokens_raw + 4 * i);
        if (t < 0 || t >= f->vocab) {
            dc_base_close(f);
            return dc_err_set(err, DC_ERR_FORMAT, "%s: token %lld is %d, outside [0, %lld)", path, (long long)i, t,
                              (long long)f->vocab);
        }
    }
    dc_chunking ch;
    dc_err e2;
    if (dc_chunking_init(&ch, f->n_tokens, f->ctx, f->llama_compat, f->bos, &e2) != DC_OK ||
        dc_chunking_scored(&ch, f->n_tokens) != f->n_positions || ch.ctx != f->ctx) {
        dc_err_set(err, DC_ERR_FORMAT, "%s: %lld positions do not match %lld tokens in chunks of %lld%s", path,
                   (long long)f->n_positions, (long long)f->n_tokens, (long long)f->ctx,
                   f->llama_compat ? " (llama.cpp scoring)" : "");
        dc_base_close(f);
        return DC_ERR_FORMAT;
    }
    for (int64_t i = 0; i < f->n_positions; i++) {
        const uint8_t *r = f->records + (uint64_t)i * f->record_bytes;
        float lt = rdf(r), lr = rdf(r + 4);
        bool ok = !isnan(lt) && lt <= 0 && !isnan(lr) && lr <= 0;
        for (uint32_t j = 0; ok && j < f->top_k; j++) {
            int32_t id = (int32_t)rd32(r + 8 + 4 * j);
            float lp = rdf(r + 8 + 4 * (uint64_t)f->top_k + 4 * j);
            ok = id >= 0 && id < f->vocab && !isnan(lp) && lp <= 0;
        }
        if (!ok) {
            dc_base_close(f);
            return dc_err_set(err, DC_ERR_FORMAT, "%s: record %lld holds an invalid id or log-probability", path,
                              (long long)i);
        }
    }
    return DC_OK;
}

dc_status dc_base_tokens(const dc_base_file *f, int32_t **ids, dc_err *err)
{
    *ids = dc_malloc((size_t)f->n_tokens * sizeof(int32_t), err);
    if (!*ids)
        return DC_ERR_NOMEM;
    for (int64_t i = 0; i < f->n_tokens; i++)
        (*ids)[i] = (int32_t)rd32(f->tokens_raw + 4 * i);
    return DC_OK;
}

void dc_base_record(const dc_base_file *f, int64_t i, dc_topk_rec *rec)
{
    const uint8_t *r = f->records + (uint64_t)i * f->record_bytes;
    rec->logp_target = rdf(r);
    rec->log_rest = rdf(r + 4);
    for (uint32_t j = 0; j < f->top_k; j++) {
        rec->ids[j] = (int32_t)rd32(r + 8 + 4 * j);
        rec->logp[j] = rdf(r + 8 + 4 * (uint64_t)f->top_k + 4 * j);
    }
}

static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(uint8_t *p, int64_t v) { memcpy(p, &v, 8); }

dc_status dc_base_create(dc_base_writer *w, const char *path, bool force, uint32_t top_k, int64_t vocab,
                         const int32_t *tokens, int64_t n_tokens, const dc_chunking *chunks, dc_err *err)
{
    memset(w, 0, sizeof *w);
    w->out.fd = -1;
    w->top_k = top_k;
    w->n_positions = dc_chunking_scored(chunks, n_tokens);
    uint8_t h[DC_BASE_HEADER_BYTES];
    memset(h, 0, sizeof h);
    memcpy(h, DC_BASE_MAGIC, 8);
    wr32(h + 8, DC_BASE_VERSION);
    wr32(h + 12, DC_BASE_HEADER_BYTES);
    wr32(h + 16, top_k);
    wr32(h + 20, chunks->llama_compat ? 1u : 0u);
    wr64(h + 24, vocab);
    wr64(h + 32, n_tokens);
    wr64(h + 40, chunks->ctx);
    wr64(h + 48, w->n_positions);
    wr64(h + 56, (int64_t)XXH3_64bits(tokens, (size_t)n_tokens * sizeof(int32_t)));
    wr32(h + 64, (uint32_t)chunks->bos);
    w->buf = dc_malloc(8 + 8 * (size_t)top_k, err);
    if (!w->buf)
        return DC_ERR_NOMEM;
    dc_status st = dc_outfile_open(&w->out, path, force, err);
    if (st) {
        free(w->buf);
        w->buf = NULL;
        return st;
    }
    if ((st = dc_outfile_pwrite(&w->out, h, sizeof h, 0, err)) ||
        (st = dc_outfile_pwrite(&w->out, tokens, (size_t)n_tokens * 4, sizeof h, err))) {
        dc_base_abort(w);
        return st;
    }
    w->rec_off = sizeof h + (uint64_t)n_tokens * 4;
    return DC_OK;
}

dc_status dc_base_append(dc_base_writer *w, const dc_topk_rec *rec, dc_err *err)
{
    if (w->written >= w->n_positions)
        return dc_err_set(err, DC_ERR_INTERNAL, "base-logits writer: more records than the %lld planned",
                          (long long)w->n_positions);
    uint8_t *b = w->buf;
    memcpy(b, &rec->logp_target, 4);
    memcpy(b + 4, &rec->log_rest, 4);
    memcpy(b + 8, rec->ids, 4 * (size_t)w->top_k);
    memcpy(b + 8 + 4 * (size_t)w->top_k, rec->logp, 4 * (size_t)w->top_k);
    size_t rb = 8 + 8 * (size_t)w->top_k;
    dc_status st = dc_outfile_pwrite(&w->out, b, rb, w->rec_off + (uint64_t)w->written * rb, err);
    if (!st)
        w->written++;
    return st;
}

dc_status dc_base_commit(dc_base_writer *w, dc_err *err)
{
    if (w->written != w->n_positions) {
        dc_base_abort(w);
        return dc_err_set(err, DC_ERR_INTERNAL, "base-logits writer: %lld records written, %lld planned",
                          (long long)w->written, (long long)w->n_positions);
    }
    dc_status st = dc_outfile_commit(&w->out, err);
    free(w->buf);
    w->buf = NULL;
    return st;
}

void dc_base_abort(dc_base_writer *w)
{
    if (w->buf || w->out.fd >= 0)
        dc_outfile_abort(&w->out);
    free(w->buf);
    w->buf = NULL;
}

/* ================================================================================================
 * Command plumbing
 * ================================================================================================ */

double dc_fwd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

dc_status dc_fwd_open(const char *path, const dc_fwd_opts *opts, dc_ckpt **ck, dc_model **m, dc_err *err)
{
    *m = NULL;
    dc_status st = dc_ckpt_open(path, ck, err);
    if (st)
        return st;
    st = dc_model_load(*ck, opts, m, err);
    if (st) {
        dc_ckpt_close(*ck);
        *ck = NULL;
    }
    return st;
}

void dc_fwd_close(dc_ckpt *ck, dc_model *m)
{
    dc_model_free(m);
    dc_ckpt_close(ck);
}

dc_status dc_fwd_input(const char *tokens_path, const char *text_path, const char *tok_dir, int64_t cfg_bos,
                       int32_t **ids, size_t *n, int32_t *bos, dc_err *err)
{
    *ids = NULL;
    *n = 0;
    *bos = cfg_bos >= 0 && cfg_bos <= INT32_MAX ? (int32_t)cfg_bos : -1;
    dc_status st;
    if (tokens_path) {
        st = dc_tokens_load(tokens_path, ids, n, err);
    } else {
        dc_tok *tok;
        if ((st = dc_tok_load(tok_dir, &tok, err)) != DC_OK)
            return dc_err_prefix(err, "tokenizer for --text");
        char *text;
        size_t len;
        st = dc_read_file(text_path, &text, &len, (uint64_t)1 << 34, err);
        if (!st) {
            st = dc_tok_encode(tok, text, len, true, ids, n, err);
            free(text);
            if (st)
                dc_err_prefix(err, "%s", text_path);
        }
        *bos = dc_tok_adds_bos(tok) ? dc_tok_bos(tok) : -1;
        dc_tok_free(tok);
    }
    if (st)
        return st;
    if (*n < 2) {
        free(*ids);
        *ids = NULL;
        return dc_err_set(err, DC_ERR_INPUT, "%s: %zu token%s; scoring needs at least 2",
                          tokens_path ? tokens_path : text_path, *n, *n == 1 ? "" : "s");
    }
    return DC_OK;
}

dc_status dc_fwd_chunk(dc_model *m, const int32_t *tokens, int64_t n_tokens, const dc_chunking *ch, int64_t i,
                       float *logits, dc_err *err)
{
    return dc_fwd_chunk_routed(m, tokens, n_tokens, ch, i, logits, NULL, err);
}

dc_status dc_chunk_tokens(const dc_chunking *ch, const int32_t *tokens, int64_t n_tokens, int64_t i, int32_t **out,
                          int64_t *len, dc_err *err)
{
    int64_t start, first;
    dc_chunk_range(ch, n_tokens, i, &start, len, &first);
    int32_t *buf = dc_malloc((size_t)*len * sizeof(int32_t), err);
    *out = buf;
    if (!buf)
        return DC_ERR_NOMEM;
    memcpy(buf, tokens + start, (size_t)*len * sizeof(int32_t));
    if (ch->llama_compat && ch->bos >= 0)
        buf[0] = ch->bos;
    return DC_OK;
}

dc_status dc_fwd_chunk_routed(dc_model *m, const int32_t *tokens, int64_t n_tokens, const dc_chunking *ch, int64_t i,
                              float *logits, dc_routing *routing, dc_err *err)
{
    int32_t *buf;
    int64_t len, start, first;
    dc_status st = dc_chunk_tokens(ch, tokens, n_tokens, i, &buf, &len, err);
    if (st)
        return st;
    dc_fwd_out o = {logits, routing, NULL};
    st = dc_forward(m, buf, len, &o, err);
    free(buf);
    if (st) {
        dc_chunk_range(ch, n_tokens, i, &start, &len, &first);
        dc_err_prefix(err, "chunk %lld (tokens %lld..%lld)", (long long)i, (long long)start,
                      (long long)(start + len - 1));
    }
    return st;
}
