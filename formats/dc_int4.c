#include "dc_int4.h"
#include "dc_ckpt.h"
#include "dc_float.h"
#include "dc_gguf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================================================
 * packing
 * ================================================================================================ */

const int DC_AWQ_ORDER[8] = {0, 2, 4, 6, 1, 3, 5, 7};
const int DC_AWQ_REVERSE[8] = {0, 4, 1, 5, 2, 6, 3, 7};

uint32_t dc_i4_pack8(const uint8_t c[8])
{
    uint32_t w = 0;
    for (int j = 0; j < 8; j++)
        w |= (uint32_t)(c[j] & 15u) << (4 * j);
    return w;
}

void dc_i4_unpack8(uint32_t w, uint8_t c[8])
{
    for (int j = 0; j < 8; j++)
        c[j] = (uint8_t)((w >> (4 * j)) & 15u);
}

uint32_t dc_i4_pack8_awq(const uint8_t c[8])
{
    uint32_t w = 0;
    for (int j = 0; j < 8; j++)
        w |= (uint32_t)(c[DC_AWQ_ORDER[j]] & 15u) << (4 * j);
    return w;
}

void dc_i4_unpack8_awq(uint32_t w, uint8_t c[8])
{
    for (int j = 0; j < 8; j++)
        c[DC_AWQ_ORDER[j]] = (uint8_t)((w >> (4 * j)) & 15u);
}

void dc_i4_pack_ct(const uint8_t *q, int64_t n, int64_t K, uint32_t *out)
{
    int64_t Kw = (K + 7) / 8;
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *row = q + r * K;
        for (int64_t w = 0; w < Kw; w++) {
            uint8_t c[8] = {0};
            for (int j = 0; j < 8 && 8 * w + j < K; j++)
                c[j] = row[8 * w + j];
            out[r * Kw + w] = dc_i4_pack8(c);
        }
    }
}

void dc_i4_pack_gptq(const uint8_t *q, int64_t n, int64_t K, uint32_t *out)
{
    for (int64_t w = 0; w < K / 8; w++)
        for (int64_t r = 0; r < n; r++)
            out[w * n + r] = dc_i4_pack8(q + r * K + 8 * w);
}

void dc_i4_pack_awq(const uint8_t *q, int64_t n, int64_t K, uint32_t *out)
{
    int64_t nw = n / 8;
    for (int64_t k = 0; k < K; k++)
        for (int64_t m = 0; m < nw; m++) {
            uint8_t c[8];
            for (int j = 0; j < 8; j++)
                c[j] = q[(8 * m + j) * K + k];
            out[k * nw + m] = dc_i4_pack8_awq(c);
        }
}

void dc_fp4_pack(const uint8_t *q, int64_t n, int64_t K, uint8_t *out)
{
    for (int64_t r = 0; r < n; r++)
        for (int64_t i = 0; i < K / 2; i++)
            out[r * (K / 2) + i] = (uint8_t)((q[r * K + 2 * i] & 15u) | (q[r * K + 2 * i + 1] & 15u) << 4);
}

void dc_i4_pack_zeros_ct(const uint8_t *z, int64_t n, int64_t G, uint32_t *out)
{
    int64_t nw = (n + 7) / 8;
    for (int64_t m = 0; m < nw; m++)
        for (int64_t g = 0; g < G; g++) {
            uint8_t c[8] = {0};
            for (int j = 0; j < 8 && 8 * m + j < n; j++)
                c[j] = z[(8 * m + j) * G + g];
            out[m * G + g] = dc_i4_pack8(c);
        }
}

void dc_i4_pack_zeros_gptq(const uint8_t *z, int64_t n, int64_t G, int sub, uint32_t *out)
{
    int64_t nw = (n + 7) / 8;
    for (int64_t g = 0; g < G; g++)
        for (int64_t m = 0; m < nw; m++) {
            uint8_t c[8] = {0};
            for (int j = 0; j < 8 && 8 * m + j < n; j++)
                c[j] = (uint8_t)((z[(8 * m + j) * G + g] - sub) & 15);
            out[g * nw + m] = dc_i4_pack8(c);
        }
}

void dc_i4_pack_zeros_awq(const uint8_t *z, int64_t n, int64_t G, uint32_t *out)
{
    int64_t nw = n / 8;
    for (int64_t g = 0; g < G; g++)
        for (int64_t m = 0; m < nw; m++) {
            uint8_t c[8];
            for (int j = 0; j < 8; j++)
                c[j] = z[(8 * m + j) * G + g];
            out[g * nw + m] = dc_i4_pack8_awq(c);
        }
}

const float DC_E2M1_VALUES[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                  -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

uint8_t dc_e2m1_encode(float x)
{
    if (isnan(x))
        return 0;
    float a = fabsf(x);
    uint8_t c = a <= 0.25f ? 0 : a < 0.75f ? 1 : a <= 1.25f ? 2 : a < 1.75f ? 3 : a <= 2.5f ? 4 : a < 3.5f ? 5
              : a <= 5.0f ? 6 : 7;
    return (uint8_t)(c | (signbit(x) ? 8 : 0));
}

static uint8_t clamp_e8m0(int v) { return (uint8_t)(v < 0 ? 0 : v > 254 ? 254 : v); }

uint8_t dc_e8m0_mx_floor(float amax)
{
    if (!(amax > 0) || !isfinite(amax))
        return 127;
    int ex;
    frexpf(amax, &ex); /* amax = m * 2^ex, m in [0.5, 1): floor(log2 amax) = ex - 1 */
    return clamp_e8m0(127 + (ex - 1) - 2);
}

uint8_t dc_e8m0_mx_ct(float amax)
{
    if (!(amax > 0) || !isfinite(amax))
        return 127;
    uint32_t b = dc_f32_to_bf16(amax);
    b = (b + 0x20u) & 0xff80u; /* 1 << (7 - 1 - 1) added, mantissa dropped: round_to_power_2 */
    int e = (int)((b >> 7) & 0xffu);
    if (e == 0)
        return 0;
    return clamp_e8m0(e - 2); /* 127 + (e - 127) - 2 */
}

/* ================================================================================================
 * one quantized matrix
 * ================================================================================================ */

const char *dc_i4_layout_name(dc_i4_layout l)
{
    switch (l) {
    case DC_I4_CT: return "compressed-tensors int4";
    case DC_I4_GPTQ: return "GPTQ";
    case DC_I4_AWQ: return "AWQ";
    case DC_I4_NVFP4: return "NVFP4";
    case DC_I4_CT_NVFP4: return "compressed-tensors NVFP4";
    case DC_I4_MXFP4: return "MXFP4";
    default: return "none";
    }
}

static bool float_dtype(dc_dtype d) { return d == DC_DT_BF16 || d == DC_DT_F16 || d == DC_DT_F32; }

static dc_status want_2d(const dc_i4_matrix *m, const dc_tensor *t, const char *what, dc_dtype dt, bool any_float,
                         int64_t d0, int64_t d1, dc_err *err)
{
    char b1[64];
    if (any_float ? !float_dtype(t->dtype) : t->dtype != dt)
        return dc_err_set(err, DC_ERR_MODEL, "%s: %s %s has dtype %s; %s %s needs %s", m->file_name, what, t->name,
                          dc_dtype_name(t->dtype), dc_i4_layout_name(m->layout), m->qw->name,
                          any_float ? "BF16, F16 or F32" : dc_dtype_name(dt));
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
        return dc_err_set(err, DC_ERR_MODEL,
                          "%s: %s %s has shape %s; %s weight [N=%lld, K=%lld] with group %lld needs %lldx%lld",
                          m->file_name, what, t->name, dc_shape_str(t->ndim, t->shape, b1, sizeof b1),
                          dc_i4_layout_name(m->layout), (long long)m->N, (long long)m->K, (long long)m->group,
                          (long long)d0, (long long)d1);
    return DC_OK;
}

static int64_t i32_at(const dc_tensor *t, int64_t i)
{
    int32_t v;
    memcpy(&v, t->data + 4 * i, 4);
    return v;
}

dc_status dc_i4_matrix_check(dc_i4_matrix *m, dc_err *err)
{
    dc_status st;
    if (!m->file_name)
        m->file_name = "?";
    if (m->N < 1 || m->K < 1 || m->group < 1)
        return dc_err_set(err, DC_ERR_MODEL, "%s: %s weight %s: N %lld, K %lld, group %lld", m->file_name,
                          dc_i4_layout_name(m->layout), m->qw->name, (long long)m->N, (long long)m->K,
                          (long long)m->group);
    int64_t N = m->N, K = m->K, G = (K + m->group - 1) / m->group;
    m->n_groups = G;
    switch (m->layout) {
    case DC_I4_CT:
        if ((st = want_2d(m, m->qw, "packed weight", DC_DT_I32, false, N, (K + 7) / 8, err)) ||
            (st = want_2d(m, m->scale, "scale", DC_DT_INVALID, true, N, G, err)))
            return st;
        m->zero_i8 = m->zero && m->zero->dtype == DC_DT_I8;
        if (m->zero && (st = m->zero_i8 ? want_2d(m, m->zero, "zero point", DC_DT_I8, false, N, G, err)
                                        : want_2d(m, m->zero, "zero point", DC_DT_I32, false, (N + 7) / 8, G, err)))
            return st;
        m->zero_add = 0;
        break;
    case DC_I4_GPTQ:
        if (K % 8)
            return dc_err_set(err, DC_ERR_MODEL, "%s: GPTQ weight %s: K %lld is not a multiple of 8", m->file_name,
                              m->qw->name, (long long)K);
        if ((st = want_2d(m, m->qw, "qweight", DC_DT_I32, false, K / 8, N, err)) ||
            (st = want_2d(m, m->scale, "scales", DC_DT_INVALID, true, G, N, err)))
            return st;
        if (!m->zero)
            return dc_err_set(err, DC_ERR_MODEL, "%s: GPTQ weight %s has no qzeros", m->file_name, m->qw->name);
        if ((st = want_2d(m, m->zero, "qzeros", DC_DT_I32, false, G, (N + 7) / 8, err)))
            return st;
        break;
    case DC_I4_AWQ:
        if (N % 8)
            return dc_err_set(err, DC_ERR_MODEL, "%s: AWQ weight %s: N %lld is not a multiple of 8", m->file_name,
                              m->qw->name, (long long)N);
        if ((st = want_2d(m, m->qw, "qweight", DC_DT_I32, false, K, N / 8, err)) ||
            (st = want_2d(m, m->scale, "scales", DC_DT_INVALID, true, G, N, err)))
            return st;
        if (!m->zero)
            return dc_err_set(err, DC_ERR_MODEL, "%s: AWQ weight %s has no qzeros", m->file_name, m->qw->name);
        if ((st = want_2d(m, m->zero, "qzeros", DC_DT_I32, false, G, N / 8, err)))
            return st;
        m->zero_add = 0;
        break;
    case DC_I4_NVFP4:
    case DC_I4_CT_NVFP4:
    case DC_I4_MXFP4: {
        bool mx = m->layout == DC_I4_MXFP4;
        if (m->group != (mx ? 32 : 16))
            return dc_err_set(err, DC_ERR_MODEL, "%s: %s weight %s: group size %lld; the format has %d",
                              m->file_name, dc_i4_layout_name(m->layout), m->qw->name, (long long)m->group, mx ? 32 : 16);
        if (K % 2)
            return dc_err_set(err, DC_ERR_MODEL, "%s: FP4 weight %s: K %lld is odd", m->file_name, m->qw->name,
                              (long long)K);
        if ((st = want_2d(m, m->qw, "packed weight", DC_DT_U8, false, N, K / 2, err)) ||
            (st = want_2d(m, m->scale, "scale", mx ? DC_DT_U8 : DC_DT_F8_E4M3, false, N, G, err)))
            return st;
        if (!mx) {
            if (!m->gscale)
                return dc_err_set(err, DC_ERR_MODEL, "%s: NVFP4 weight %s has no global scale (%s)", m->file_name,
                                  m->qw->name, m->layout == DC_I4_NVFP4 ? "weight_scale_2" : "weight_global_scale");
            if (m->gscale->dtype != DC_DT_F32 || dc_tensor_nelem(m->gscale) != 1)
                return dc_err_set(err, DC_ERR_MODEL, "%s: global scale %s must be one F32 value (has dtype %s, %lld values)",
                                  m->file_name, m->gscale->name, dc_dtype_name(m->gscale->dtype),
                                  (long long)dc_tensor_nelem(m->gscale));
            memcpy(&m->global, m->gscale->data, 4);
            if (!isfinite(m->global) || m->global == 0)
                return dc_err_set(err, DC_ERR_MODEL, "%s: global scale %s is %g", m->file_name, m->gscale->name,
                                  (double)m->global);
        }
        break;
    }
    default:
        return dc_err_set(err, DC_ERR_INTERNAL, "unknown 4-bit layout %d", (int)m->layout);
    }
    if (m->gidx) {
        if (m->gidx->dtype != DC_DT_I32 || m->gidx->ndim != 1 || m->gidx->shape[0] != K)
            return dc_err_set(err, DC_ERR_MODEL, "%s: g_idx %s must be I32 [%lld]", m->file_name, m->gidx->name,
                              (long long)K);
        for (int64_t k = 0; k < K; k++) {
            int64_t g = i32_at(m->gidx, k);
            if (g < 0 || g >= G)
                return dc_err_set(err, DC_ERR_MODEL, "%s: g_idx %s[%lld] = %lld; there are %lld groups", m->file_name,
                                  m->gidx->name, (long long)k, (long long)g, (long long)G);
        }
    }
    return DC_OK;
}

static inline float scale_val(const dc_tensor *s, int64_t i, const float *f16tab)
{
    switch (s->dtype) {
    case DC_DT_BF16: { uint16_t h; memcpy(&h, s->data + 2 * i, 2); return dc_bf16_to_f32(h); }
    case DC_DT_F16: { uint16_t h; memcpy(&h, s->data + 2 * i, 2); return f16tab[h]; }
    case DC_DT_F32: { float f; memcpy(&f, s->data + 4 * i, 4); return f; }
    default: return NAN;
    }
}

static inline uint32_t u32_at(const uint8_t *p, int64_t i)
{
    uint32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}

static inline int64_t group_of(const dc_i4_matrix *m, int64_t k)
{
    return m->gidx ? i32_at(m->gidx, k) : k / m->group;
}

dc_status dc_i4_matrix_rows(const dc_i4_matrix *m, int64_t r0, int64_t n, float *out, int mode, dc_err *err)
{
    const int64_t N = m->N, K = m->K, G = m->n_groups;
    if (r0 < 0 || n < 0 || r0 + n > N)
        return dc_err_set(err, DC_ERR_INTERNAL, "%s: rows [%lld, %lld) out of range (%lld rows)", m->qw->name,
                          (long long)r0, (long long)(r0 + n), (long long)N);
    const float *f16 = dc_f16_table();
    const uint8_t *qd = m->qw->data;
    switch (m->layout) {
    case DC_I4_CT: {
        const int64_t Kw = (K + 7) / 8;
        for (int64_t r = r0; r < r0 + n; r++) {
            float *dst = out + (r - r0) * K;
            int64_t zrow = (r / 8) * G;
            int zsh = 4 * (int)(r % 8);
            for (int64_t k = 0; k < K; k++) {
                int64_t g = group_of(m, k);
                int code = (int)((u32_at(qd, r * Kw + k / 8) >> (4 * (k % 8))) & 15u);
                int z = !m->zero ? 8 : m->zero_i8 ? (int)(int8_t)m->zero->data[r * G + g] + 8
                                                  : (int)((u32_at(m->zero->data, zrow + g) >> zsh) & 15u);
                dst[k] = (float)(code - z) * scale_val(m->scale, r * G + g, f16);
            }
        }
        break;
    }
    case DC_I4_GPTQ: {
        const int64_t Nw = (N + 7) / 8;
        for (int64_t w = 0; w < K / 8; w++)
            for (int64_t r = r0; r < r0 + n; r++) {
                uint32_t word = u32_at(qd, w * N + r);
                float *dst = out + (r - r0) * K + 8 * w;
                for (int j = 0; j < 8; j++) {
                    int64_t k = 8 * w + j, g = group_of(m, k);
                    int z = (int)((u32_at(m->zero->data, g * Nw + r / 8) >> (4 * (r % 8))) & 15u) + m->zero_add;
                    int code = (int)((word >> (4 * j)) & 15u);
                    dst[j] = (float)(code - z) * scale_val(m->scale, g * N + r, f16);
                }
            }
        break;
    }
    case DC_I4_AWQ: {
        const int64_t Nw = N / 8;
        for (int64_t k = 0; k < K; k++) {
            int64_t g = k / m->group;
            for (int64_t r = r0; r < r0 + n; r++) {
                int sh = 4 * DC_AWQ_REVERSE[r % 8];
                int code = (int)((u32_at(qd, k * Nw + r / 8) >> sh) & 15u);
                int z = (int)((u32_at(m->zero->data, g * Nw + r / 8) >> sh) & 15u);
                out[(r - r0) * K + k] = (float)(code - z) * scale_val(m->scale, g * N + r, f16);
            }
        }
        break;
    }
    case DC_I4_NVFP4:
    case DC_I4_CT_NVFP4: {
        const float *e4m3 = dc_e4m3_table();
        bool div = m->layout == DC_I4_CT_NVFP4;
        for (int64_t r = r0; r < r0 + n; r++) {
            const uint8_t *row = qd + r * (K / 2);
            const uint8_t *sc = m->scale->data + r * G;
            float *dst = out + (r - r0) * K;
            for (int64_t k = 0; k < K; k++) {
                uint8_t code = (uint8_t)((row[k / 2] >> (4 * (k & 1))) & 15u);
                float v = dc_e2m1_decode(code) * e4m3[sc[k / 16]]; /* exact: 2 x 4 mantissa bits */
                dst[k] = div ? v / m->global : v * m->global;
            }
        }
        break;
    }
    case DC_I4_MXFP4:
        for (int64_t r = r0; r < r0 + n; r++) {
            const uint8_t *row = qd + r * (K / 2);
            const uint8_t *sc = m->scale->data + r * G;
            float *dst = out + (r - r0) * K;
            for (int64_t g = 0; g < G; g++)
                if (sc[g] == 0xff)
                    return dc_err_set(err, DC_ERR_MODEL, "%s: scale %s[%lld][%lld] is 0xff (E8M0 NaN)", m->file_name,
                                      m->scale->name, (long long)r, (long long)g);
            for (int64_t k = 0; k < K; k++) {
                uint8_t code = (uint8_t)((row[k / 2] >> (4 * (k & 1))) & 15u);
                dst[k] = ldexpf(dc_e2m1_decode(code), (int)sc[k / 32] - 127);
            }
        }
        break;
    default:
        return dc_err_set(err, DC_ERR_INTERNAL, "unknown 4-bit layout %d", (int)m->layout);
    }
    if (mode != DC_DEQ_EXACT)
        for (int64_t i = 0; i < n * K; i++)
            out[i] = dc_round_bf16(out[i]);
    return DC_OK;
}

/* ================================================================================================
 * checkpoints
 * ================================================================================================ */

typedef enum family { FAM_NONE = 0, FAM_CT, FAM_GPTQ, FAM_AWQ, FAM_MODELOPT } family;

#define MAX_GROUP_SIZES 16

struct dc_int4_model {
    family fam;
    char method[32];
    /* compressed-tensors: the int group sizes of its config groups (-1: channel) */
    int64_t ct_groups[MAX_GROUP_SIZES];
    int n_ct_groups;
    int fp8_block_rows, fp8_block_cols; /* an FP8 block group, 0 if none */
    /* gptq / awq */
    int64_t group;
    bool gptq_v2;
    dc_tensor *own;  /* virtual and alias tensors of the HF view (names owned) */
    size_t n_own;
    dc_i4_matrix *mats; /* mats[i] belongs to own[mat_of[i]] */
    size_t n_mats;
    int64_t *own_mat;   /* own[i] -> index into mats, -1 for aliases */
    dc_strmap own_map;  /* name of a virtual tensor -> index into own */
};

static bool ends_with(const char *s, const char *suf, size_t *prefix_len)
{
    size_t l = strlen(s), m = strlen(suf);
    if (l < m || strcmp(s + l - m, suf))
        return false;
    *prefix_len = l - m;
    return true;
}

static const cJSON *jobj(const cJSON *o, const char *k)
{
    return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static bool jnum(const cJSON *o, const char *k, double *v)
{
    const cJSON *x = jobj(o, k);
    if (!cJSON_IsNumber(x))
        return false;
    *v = x->valuedouble;
    return true;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *x = jobj(o, k);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* Reads dir/NAME as JSON (NULL with DC_OK if absent). */
static dc_status read_json(const char *dir, const char *name, cJSON **out, dc_err *err)
{
    *out = NULL;
    char *p = dc_path_join(dir, name);
    if (!p)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    dc_status st = DC_OK;
    if (dc_exists(p)) {
        char *buf;
        size_t len;
        if ((st = dc_read_file(p, &buf, &len, 64u << 20, err)) == DC_OK) {
            *out = cJSON_ParseWithLength(buf, len);
            free(buf);
            if (!*out || !cJSON_IsObject(*out)) {
                cJSON_Delete(*out);
                *out = NULL;
                st = dc_err_set(err, DC_ERR_CONFIG, "%s: not a JSON object", p);
            }
        }
    }
    free(p);
    return st;
}

static family family_of(const cJSON *qc, const cJSON *hfq, const char **method)
{
    const char *m = qc ? jstr(qc, "quant_method") : NULL;
    *method = m;
    if (m) {
        if (!strcmp(m, "compressed-tensors"))
            return FAM_CT;
        if (!strcmp(m, "gptq"))
            return FAM_GPTQ;
        if (!strcmp(m, "awq"))
            return FAM_AWQ;
        if (!strncmp(m, "modelopt", 8))
            return FAM_MODELOPT;
        return FAM_NONE;
    }
    if (!qc && hfq && cJSON_IsObject(jobj(hfq, "quantization"))) {
        *method = "modelopt";
        return FAM_MODELOPT;
    }
    return FAM_NONE;
}

bool dc_int4_dir_is_quantized(const char *dir)
{
    cJSON *cfg = NULL, *hfq = NULL;
    dc_err e;
    bool r = false;
    if (read_json(dir, "config.json", &cfg, &e) == DC_OK && read_json(dir, "hf_quant_config.json", &hfq, &e) == DC_OK) {
        const cJSON *qc = jobj(cfg, "quantization_config");
        const char *m;
        r = family_of(cJSON_IsObject(qc) ? qc : NULL, hfq, &m) != FAM_NONE;
    }
    cJSON_Delete(cfg);
    cJSON_Delete(hfq);
    return r;
}

/* The quantization parameters the readers need, from quantization_config / hf_quant_config. */
static dc_status parse_qconfig(dc_int4_model *m, const cJSON *qc, const cJSON *hfq, const char *path, dc_err *err)
{
    double v;
    if (m->fam == FAM_CT) {
        const cJSON *groups = jobj(qc, "config_groups"), *g;
        if (groups && !cJSON_IsObject(groups))
            return dc_err_set(err, DC_ERR_CONFIG, "%s: quantization_config.config_groups is not an object", path);
        cJSON_ArrayForEach(g, groups) {
            const cJSON *w = jobj(g, "weights");
            if (!cJSON_IsObject(w))
                continue;
            const char *type = jstr(w, "type"), *strategy = jstr(w, "strategy");
            double bits = 0, gs = 0;
            jnum(w, "num_bits", &bits);
            bool has_gs = jnum(w, "group_size", &gs);
            if (type && !strcmp(type, "int") && bits == 4) {
                int64_t gsz = strategy && !strcmp(strategy, "channel") ? -1 : has_gs ? (int64_t)gs : 0;
                if (gsz == 0 || gsz < -1 || (strategy && strcmp(strategy, "group") && strcmp(strategy, "channel")))
                    return dc_err_set(err, DC_ERR_UNSUPPORTED,
                                      "%s: config group '%s': int4 weights with strategy %s, group_size %g (group or channel)",
                                      path, g->string, strategy ? strategy : "(none)", has_gs ? gs : 0.0);
                bool seen = false;
                for (int i = 0; i < m->n_ct_groups; i++)
                    seen |= m->ct_groups[i] == gsz;
                if (!seen && m->n_ct_groups < MAX_GROUP_SIZES)
                    m->ct_groups[m->n_ct_groups++] = gsz;
            } else if (type && !strcmp(type, "float") && bits == 8 && strategy && !strcmp(strategy, "block")) {
                const cJSON *bs = jobj(w, "block_structure");
                if (!cJSON_IsArray(bs) || cJSON_GetArraySize(bs) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(bs, 0)) ||
                    !cJSON_IsNumber(cJSON_GetArrayItem(bs, 1)))
                    return dc_err_set(err, DC_ERR_CONFIG, "%s: config group '%s': block_structure must be [rows, cols]",
                                      path, g->string);
                double r = cJSON_GetArrayItem(bs, 0)->valuedouble, c = cJSON_GetArrayItem(bs, 1)->valuedouble;
                if (r < 1 || c < 1 || r > 65536 || c > 65536 || r != floor(r) || c != floor(c))
                    return dc_err_set(err, DC_ERR_CONFIG, "%s: config group '%s': block_structure [%g, %g]", path,
                                      g->string, r, c);
                m->fp8_block_rows = (int)r;
                m->fp8_block_cols = (int)c;
            }
        }
    } else if (m->fam == FAM_GPTQ || m->fam == FAM_AWQ) {
        bool awq = m->fam == FAM_AWQ;
        double bits = 0;
        if (!jnum(qc, "bits", &bits) && !jnum(qc, "w_bit", &bits))
            return dc_err_set(err, DC_ERR_CONFIG, "%s: quantization_config has no \"bits\"", path);
        if (bits != 4)
            return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: %s with %g bits (deepcast reads 4)", path, m->method, bits);
        if (!jnum(qc, "group_size", &v) && !jnum(qc, "q_group_size", &v))
            return dc_err_set(err, DC_ERR_CONFIG, "%s: quantization_config has no \"group_size\"", path);
        if (v != floor(v) || v == 0 || v < -1 || v > (double)(1 << 30))
            return dc_err_set(err, DC_ERR_CONFIG, "%s: quantization_config.group_size %g", path, v);
        m->group = (int64_t)v;
        if (awq) {
            const char *ver = jstr(qc, "version");
            if (ver && strcasecmp(ver, "gemm"))
                return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: AWQ version \"%s\" (deepcast reads gemm)", path, ver);
            if (m->group == -1)
                return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: AWQ with group_size -1", path);
        } else {
            const char *cf = jstr(qc, "checkpoint_format");
            if (cf && strcmp(cf, "gptq") && strcmp(cf, "gptq_v2"))
                return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: GPTQ checkpoint_format \"%s\" (gptq, gptq_v2)", path, cf);
            m->gptq_v2 = cf && !strcmp(cf, "gptq_v2");
        }
    } else if (m->fam == FAM_MODELOPT) {
        const cJSON *q = qc ? qc : jobj(hfq, "quantization");
        if (qc && !jstr(qc, "quant_algo") && hfq)
            q = jobj(hfq, "quantization");
        const char *algo = jstr(q, "quant_algo");
        if (!algo || (strcasecmp(algo, "NVFP4") && strcasecmp(algo, "W4A16_NVFP4")))
            return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: ModelOpt quant_algo \"%s\" (deepcast reads NVFP4)", path,
                              algo ? algo : "(none)");
        if (jnum(q, "group_size", &v) && v != 16)
            return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: NVFP4 group_size %g (16)", path, v);
    }
    return DC_OK;
}

static dc_tensor *own_new(dc_int4_model *m, const char *name, dc_err *err)
{
    dc_tensor *t = &m->own[m->n_own];
    memset(t, 0, sizeof *t);
    if (!(t->name = dc_strdup(name))) {
        dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        return NULL;
    }
    m->own_mat[m->n_own] = -1;
    m->n_own++;
    return t;
}

typedef struct view_ctx {
    dc_ckpt *ck;
    const dc_tensor **st; /* stored, sorted by name */
    size_t n;
    bool *used;
} view_ctx;

/* The stored tensor prefix + suffix, its index in *idx (NULL if none). */
static const dc_tensor *part(view_ctx *v, const char *prefix, size_t pl, const char *suffix, int64_t *idx)
{
    char name[1024];
    if (pl + strlen(suffix) >= sizeof name)
        return NULL;
    memcpy(name, prefix, pl);
    strcpy(name + pl, suffix);
    int64_t i;
    if (!dc_strmap_get(&v->ck->by_name, name, &i))
        return NULL;
    if (idx)
        *idx = i;
    return v->ck->tensors[i];
}

static dc_status claim(view_ctx *v, const dc_ckpt *ck, const char *prefix, size_t pl, const char *suffix,
                       const dc_tensor **out, dc_err *err)
{
    int64_t i;
    *out = part(v, prefix, pl, suffix, &i);
    if (!*out)
        return DC_OK;
    if (v->used[i])
        return dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s belongs to two quantized weights", ck->path, (*out)->name);
    v->used[i] = true;
    return DC_OK;
}

/* The group size of a compressed-tensors int4 matrix with G scale columns: the config group
 * whose size gives ceil(K / g) == G. */
static dc_status ct_group(const dc_int4_model *m, dc_i4_matrix *x, dc_err *err)
{
    int64_t G = x->scale->ndim == 2 ? x->scale->shape[1] : -1, found = 0;
    int n = 0;
    for (int i = 0; i < m->n_ct_groups; i++) {
        int64_t g = m->ct_groups[i] == -1 ? x->K : m->ct_groups[i];
        if ((x->K + g - 1) / g == G && g != found) {
            found = g;
            n++;
        }
    }
    if (n == 1) {
        x->group = found;
        return DC_OK;
    }
    char sizes[256] = "";
    size_t o = 0;
    for (int i = 0; i < m->n_ct_groups && o < sizeof sizes; i++)
        o += (size_t)snprintf(sizes + o, sizeof sizes - o, "%s%lld", i ? ", " : "", (long long)m->ct_groups[i]);
    if (!m->n_ct_groups)
        return dc_err_set(err, DC_ERR_MODEL, "%s: int4 weight %s, but quantization_config has no int4 config group",
                          x->file_name, x->qw->name);
    return dc_err_set(err, DC_ERR_MODEL, "%s: scale %s has %lld columns for K = %lld; the config's group sizes (%s) give %s",
                      x->file_name, x->scale->name, (long long)G, (long long)x->K, sizes,
                      n ? "more than one match" : "none");
}

static dc_status add_matrix(dc_int4_model *m, view_ctx *v, const char *prefix, size_t pl, dc_i4_matrix *x,
                            dc_err *err)
{
    dc_status st;
    if ((st = dc_i4_matrix_check(x, err)))
        return st;
    char name[1024];
    snprintf(name, sizeof name, "%.*s.weight", (int)pl, prefix);
    dc_tensor *t = own_new(m, name, err);
    if (!t)
        return DC_ERR_NOMEM;
    t->dtype = x->qw->dtype;
    t->ndim = 2;
    t->shape[0] = x->N;
    t->shape[1] = x->K;
    t->nbytes = x->qw->nbytes + x->scale->nbytes + (x->zero ? x->zero->nbytes : 0) + (x->gidx ? x->gidx->nbytes : 0) +
                (x->gscale ? x->gscale->nbytes : 0);
    t->offset = x->qw->offset;
    t->data = NULL; /* virtual: read through dc_ckpt_weight */
    t->file = x->qw->file;
    m->own_mat[m->n_own - 1] = (int64_t)m->n_mats;
    m->mats[m->n_mats++] = *x;
    (void)v;
    return DC_OK;
}

static dc_status build_view(dc_int4_model *m, dc_ckpt *ck, dc_err *err)
{
    view_ctx v = {ck, ck->tensors, ck->n_tensors, calloc(ck->n_tensors + 1, 1)};
    m->own = calloc(ck->n_tensors + 1, sizeof *m->own);
    m->own_mat = calloc(ck->n_tensors + 1, sizeof *m->own_mat);
    m->mats = calloc(ck->n_tensors + 1, sizeof *m->mats);
    if (!v.used || !m->own || !m->own_mat || !m->mats) {
        free(v.used);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    dc_status st = DC_OK;
    size_t pl;
    for (size_t i = 0; i < v.n && !st; i++) {
        const dc_tensor *t = v.st[i];
        const char *nm = t->name;
        const char *fn = dc_ckpt_file_name(ck, t);
        dc_i4_matrix x;
        memset(&x, 0, sizeof x);
        x.file_name = fn;
        if (m->fam == FAM_CT && ends_with(nm, ".weight_packed", &pl)) {
            const dc_tensor *shape = NULL, *gs = NULL, *ig = NULL;
            v.used[i] = true;
            x.qw = t;
            if ((st = claim(&v, ck, nm, pl, ".weight_scale", &x.scale, err)) ||
                (st = claim(&v, ck, nm, pl, ".weight_shape", &shape, err)) ||
                (st = claim(&v, ck, nm, pl, ".weight_zero_point", &x.zero, err)) ||
                (st = claim(&v, ck, nm, pl, ".weight_g_idx", &x.gidx, err)) ||
                (st = claim(&v, ck, nm, pl, ".weight_global_scale", &gs, err)) ||
                (st = claim(&v, ck, nm, pl, ".input_global_scale", &ig, err)))
                break;
            if (!x.scale) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: packed weight %s has no %.*s.weight_scale", fn, nm, (int)pl, nm);
                break;
            }
            if (t->ndim != 2) {
                char b[64];
                st = dc_err_set(err, DC_ERR_MODEL, "%s: packed weight %s has shape %s; expected 2 dims", fn, nm,
                                dc_shape_str(t->ndim, t->shape, b, sizeof b));
                break;
            }
            x.N = t->shape[0];
            if (t->dtype == DC_DT_I32) {
                x.layout = DC_I4_CT;
                if (!shape || shape->dtype != DC_DT_I64 || shape->ndim != 1 || shape->shape[0] != 2) {
                    st = dc_err_set(err, DC_ERR_MODEL, "%s: packed weight %s needs %.*s.weight_shape (I64 [2])", fn, nm,
                                    (int)pl, nm);
                    break;
                }
                int64_t s0, s1;
                memcpy(&s0, shape->data, 8);
                memcpy(&s1, shape->data + 8, 8);
                if (s0 != x.N || s1 < 1 || (s1 + 7) / 8 != t->shape[1]) {
                    st = dc_err_set(err, DC_ERR_MODEL, "%s: %s says [%lld, %lld], but %s is %lldx%lld (8 values per word)",
                                    fn, shape->name, (long long)s0, (long long)s1, nm, (long long)t->shape[0],
                                    (long long)t->shape[1]);
                    break;
                }
                x.K = s1;
                if ((st = ct_group(m, &x, err)))
                    break;
            } else if (t->dtype == DC_DT_U8) {
                x.K = 2 * t->shape[1];
                if (x.scale->dtype == DC_DT_U8) {
                    x.layout = DC_I4_MXFP4;
                    x.group = 32;
                } else {
                    x.layout = DC_I4_CT_NVFP4;
                    x.group = 16;
                    x.gscale = gs;
                }
            } else {
                st = dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: packed weight %s has dtype %s (I32 int4 or U8 FP4)", fn, nm,
                                dc_dtype_name(t->dtype));
                break;
            }
            st = add_matrix(m, &v, nm, pl, &x, err);
        } else if ((m->fam == FAM_GPTQ || m->fam == FAM_AWQ) && ends_with(nm, ".qweight", &pl)) {
            v.used[i] = true;
            x.qw = t;
            x.layout = m->fam == FAM_GPTQ ? DC_I4_GPTQ : DC_I4_AWQ;
            if ((st = claim(&v, ck, nm, pl, ".scales", &x.scale, err)) ||
                (st = claim(&v, ck, nm, pl, ".qzeros", &x.zero, err)))
                break;
            if (m->fam == FAM_GPTQ && (st = claim(&v, ck, nm, pl, ".g_idx", &x.gidx, err)))
                break;
            if (!x.scale) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: qweight %s has no %.*s.scales", fn, nm, (int)pl, nm);
                break;
            }
            if (t->ndim != 2) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: qweight %s has %d dims; expected 2", fn, nm, t->ndim);
                break;
            }
            if (m->fam == FAM_GPTQ) {
                x.K = 8 * t->shape[0];
                x.N = t->shape[1];
                x.zero_add = m->gptq_v2 ? 0 : 1;
            } else {
                x.K = t->shape[0];
                x.N = 8 * t->shape[1];
            }
            x.group = m->group == -1 ? x.K : m->group;
            st = add_matrix(m, &v, nm, pl, &x, err);
        } else if (m->fam == FAM_MODELOPT && t->dtype == DC_DT_U8 && ends_with(nm, ".weight", &pl) &&
                   part(&v, nm, pl, ".weight_scale", NULL) &&
                   part(&v, nm, pl, ".weight_scale", NULL)->dtype == DC_DT_F8_E4M3) {
            const dc_tensor *is = NULL;
            v.used[i] = true;
            x.qw = t;
            x.layout = DC_I4_NVFP4;
            x.group = 16;
            if ((st = claim(&v, ck, nm, pl, ".weight_scale", &x.scale, err)) ||
                (st = claim(&v, ck, nm, pl, ".weight_scale_2", &x.gscale, err)) ||
                (st = claim(&v, ck, nm, pl, ".input_scale", &is, err)))
                break;
            if (t->ndim != 2) {
                st = dc_err_set(err, DC_ERR_MODEL, "%s: NVFP4 weight %s has %d dims; expected 2", fn, nm, t->ndim);
                break;
            }
            x.N = t->shape[0];
            x.K = 2 * t->shape[1];
            st = add_matrix(m, &v, nm, pl, &x, err);
        }
    }
    /* compressed-tensors FP8 (float-quantized, block): weight + weight_scale -> weight_scale_inv */
    for (size_t i = 0; i < v.n && !st && m->fam == FAM_CT; i++) {
        const dc_tensor *t = v.st[i], *s;
        int64_t si;
        if (v.used[i] || (t->dtype != DC_DT_F8_E4M3 && t->dtype != DC_DT_F8_E5M2) || !ends_with(t->name, ".weight", &pl) ||
            !(s = part(&v, t->name, pl, ".weight_scale", &si)))
            continue;
        if (v.used[si]) {
            st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s belongs to two weights", ck->path, s->name);
            break;
        }
        v.used[si] = true;
        char name[1024];
        snprintf(name, sizeof name, "%s_inv", s->name);
        dc_tensor *a = own_new(m, name, err);
        if (!a) {
            st = DC_ERR_NOMEM;
            break;
        }
        char *keep = a->name;
        *a = *s;
        a->name = keep;
    }
    /* the view: unclaimed stored tensors + virtual / alias ones */
    size_t nv = 0;
    const dc_tensor **view = st ? NULL : malloc((v.n + m->n_own + 1) * sizeof *view);
    if (!st && !view)
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    if (!st) {
        for (size_t i = 0; i < v.n; i++)
            if (!v.used[i])
                view[nv++] = v.st[i];
        for (size_t i = 0; i < m->n_own; i++)
            view[nv++] = &m->own[i];
        for (size_t i = 0; i < m->n_own && !st; i++)
            if (dc_strmap_put(&m->own_map, m->own[i].name, (int64_t)i) < 0)
                st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    free(v.used);
    if (st) {
        free(view);
        return st;
    }
    /* stored list -> file_tensors; the view -> tensors, by_name rebuilt */
    ck->file_tensors = ck->tensors;
    ck->n_file_tensors = ck->n_tensors;
    ck->tensors = view;
    ck->n_tensors = nv;
    return DC_OK;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp((*(const dc_tensor *const *)a)->name, (*(const dc_tensor *const *)b)->name);
}

dc_status dc_int4_ckpt_attach(dc_ckpt *ck, dc_err *err)
{
    cJSON *cfg = NULL, *hfq = NULL;
    dc_err ignored;
    /* an unreadable config.json is dc_config_load's to report */
    if (read_json(ck->dir, "config.json", &cfg, &ignored) != DC_OK || !cfg)
        return DC_OK;
    dc_status st;
    if ((st = read_json(ck->dir, "hf_quant_config.json", &hfq, err))) {
        cJSON_Delete(cfg);
        return st;
    }
    const cJSON *qc = jobj(cfg, "quantization_config");
    if (qc && !cJSON_IsObject(qc))
        qc = NULL;
    const char *method;
    family fam = family_of(qc, hfq, &method);
    if (fam == FAM_NONE) {
        cJSON_Delete(cfg);
        cJSON_Delete(hfq);
        return DC_OK;
    }
    char *path = dc_path_join(ck->dir, "config.json"), *text = NULL;
    dc_int4_model *m = calloc(1, sizeof *m);
    if (!path || !m) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    m->fam = fam;
    snprintf(m->method, sizeof m->method, "%s", method);
    ck->int4 = m;
    if ((st = parse_qconfig(m, qc, hfq, path, err)))
        goto done;
    /* the config without its quantization_config */
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "quantization_config");
    if (!(text = cJSON_PrintUnformatted(cfg))) {
        st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = dc_config_parse(text, strlen(text), path, &ck->cfg, err)))
        goto done;
    ck->has_config = true;
    if (m->fp8_block_rows) {
        ck->cfg.quant_fp8 = true;
        snprintf(ck->cfg.quant_fmt, sizeof ck->cfg.quant_fmt, "e4m3");
        ck->cfg.block_rows = m->fp8_block_rows;
        ck->cfg.block_cols = m->fp8_block_cols;
    }
    if ((st = build_view(m, ck, err)))
        goto done;
    qsort(ck->tensors, ck->n_tensors, sizeof *ck->tensors, cmp_tensor_name);
    dc_strmap_free(&ck->by_name);
    memset(&ck->by_name, 0, sizeof ck->by_name);
    for (size_t i = 0; i < ck->n_tensors && !st; i++) {
        if (i > 0 && !strcmp(ck->tensors[i]->name, ck->tensors[i - 1]->name))
            st = dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s is both stored and made from quantized parts", ck->path,
                            ck->tensors[i]->name);
        else if (dc_strmap_put(&ck->by_name, ck->tensors[i]->name, (int64_t)i) < 0)
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
done:
    free(path);
    free(text);
    cJSON_Delete(cfg);
    cJSON_Delete(hfq);
    return st; /* on failure the caller's dc_ckpt_close frees m */
}

void dc_int4_ckpt_free(dc_ckpt *ck)
{
    dc_int4_model *m = ck->int4;
    if (!m)
        return;
    for (size_t i = 0; i < m->n_own; i++)
        free(m->own[i].name);
    free(m->own);
    free(m->own_mat);
    free(m->mats);
    dc_strmap_free(&m->own_map);
    free(m);
    ck->int4 = NULL;
    if (ck->file_tensors) { /* the stored list; ck->tensors is the view (freed by the caller) */
        free(ck->file_tensors);
        ck->file_tensors = NULL;
        ck->n_file_tensors = 0;
    }
}

const dc_i4_matrix *dc_int4_ckpt_matrix(const dc_ckpt *ck, const dc_tensor *t)
{
    const dc_int4_model *m = ck ? ck->int4 : NULL;
    int64_t i;
    if (!m || !t || !dc_strmap_get(&m->own_map, t->name, &i) || &m->own[i] != t || m->own_mat[i] < 0)
        return NULL;
    return &m->mats[m->own_mat[i]];
}

const char *dc_int4_ckpt_method(const dc_ckpt *ck) { return ck && ck->int4 ? ck->int4->method : NULL; }

static dc_status i4_read(const dc_weight *w, int64_t r0, int64_t n, float *out, int mode, dc_err *err)
{
    return dc_i4_matrix_rows(w->read_ctx, r0, n, out, mode, err);
}

dc_status dc_int4_ckpt_weight(const dc_ckpt *ck, const dc_tensor *t, dc_weight *w, dc_err *err)
{
    const dc_i4_matrix *x = dc_int4_ckpt_matrix(ck, t);
    if (x) {
        memset(w, 0, sizeof *w);
        w->t = t;
        w->file_name = x->file_name;
        w->rows = x->N;
        w->cols = x->K;
        w->block_rows = w->block_cols = 128;
        w->read_rows = i4_read;
        w->read_ctx = x;
        return DC_OK;
    }
    char sname[1100];
    snprintf(sname, sizeof sname, "%s_scale_inv", t->name);
    int64_t i;
    const dc_tensor *s = dc_strmap_get(&ck->by_name, sname, &i) ? ck->tensors[i] : NULL;
    int br = ck->cfg.block_rows ? ck->cfg.block_rows : 128, bc = ck->cfg.block_cols ? ck->cfg.block_cols : 128;
    return dc_weight_init(w, t, s, br, bc, dc_ckpt_file_name(ck, t), err);
}

/* ================================================================================================
 * importance matrices
 * ================================================================================================ */

typedef struct im_entry {
    char *name; /* GGUF tensor name, without .in_sum2 */
    int64_t n_mat, ne0;
    float *v;   /* [n_mat][ne0], normalized */
} im_entry;

struct dc_i4_imatrix {
    im_entry *e;
    size_t n;
};

static int cmp_entry(const void *a, const void *b) { return strcmp(((const im_entry *)a)->name, ((const im_entry *)b)->name); }

void dc_i4_imatrix_free(dc_i4_imatrix *im)
{
    if (!im)
        return;
    for (size_t i = 0; i < im->n; i++) {
        free(im->e[i].name);
        free(im->e[i].v);
    }
    free(im->e);
    free(im);
}

size_t dc_i4_imatrix_count(const dc_i4_imatrix *im) { return im ? im->n : 0; }

dc_status dc_i4_imatrix_load(const char *path, dc_i4_imatrix **out, dc_err *err)
{
    *out = NULL;
    dc_gguf_file f;
    memset(&f, 0, sizeof f);
    dc_status st = dc_gguf_open(path, &f, err);
    if (st)
        return st;
    dc_i4_imatrix *im = calloc(1, sizeof *im);
    if (!im || !(im->e = calloc(f.n_tensors + 1, sizeof *im->e))) {
        free(im);
        dc_gguf_close(&f);
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    }
    size_t pl;
    for (size_t i = 0; i < f.n_tensors && !st; i++) {
        const dc_gguf_tinfo *s = &f.tensors[i];
        if (!ends_with(s->name, ".in_sum2", &pl))
            continue;
        char cn[256];
        snprintf(cn, sizeof cn, "%.*s.counts", (int)pl, s->name);
        const dc_gguf_tinfo *c = dc_gguf_find_tensor(&f, cn);
        if (!c) {
            st = dc_err_set(err, DC_ERR_FORMAT, "%s: %s has no %s", path, s->name, cn);
            break;
        }
        int64_t ne0 = s->ne[0], nm = s->n_dims >= 2 ? s->ne[1] : 1;
        if (s->type != 0 || c->type != 0 || s->n_dims > 2 || c->n_dims > 2 || c->ne[0] != 1 ||
            (c->n_dims >= 2 ? c->ne[1] : 1) != nm || ne0 < 1 || nm < 1) {
            st = dc_err_set(err, DC_ERR_FORMAT,
                            "%s: %s must be F32 {ne0, n_mat} and %s F32 {1, n_mat} (got types %u/%u, ne {%lld, %lld} / {%lld, %lld})",
                            path, s->name, cn, s->type, c->type, (long long)s->ne[0], (long long)s->ne[1],
                            (long long)c->ne[0], (long long)c->ne[1]);
            break;
        }
        im_entry *e = &im->e[im->n];
        e->name = strndup(s->name, pl);
        e->v = malloc((size_t)(nm * ne0) * sizeof *e->v);
        if (!e->name || !e->v) {
            free(e->name);
            free(e->v);
            st = dc_err_set(err, DC_ERR_NOMEM, "out of memory");
            break;
        }
        e->n_mat = nm;
        e->ne0 = ne0;
        im->n++;
        for (int64_t mi = 0; mi < nm; mi++) {
            float cnt;
            memcpy(&cnt, c->data + 4 * mi, 4);
            for (int64_t k = 0; k < ne0; k++) {
                float sum;
                memcpy(&sum, s->data + 4 * (mi * ne0 + k), 4);
                float val = cnt > 0 ? sum / cnt : 1.0f;
                if (!isfinite(val) || val < 0) {
                    st = dc_err_set(err, DC_ERR_FORMAT, "%s: %s[%lld][%lld] = %g / count %g", path, s->name,
                                    (long long)mi, (long long)k, (double)sum, (double)cnt);
                    break;
                }
                e->v[mi * ne0 + k] = val;
            }
            if (st)
                break;
        }
    }
    dc_gguf_close(&f);
    if (st) {
        dc_i4_imatrix_free(im);
        return st;
    }
    qsort(im->e, im->n, sizeof *im->e, cmp_entry);
    *out = im;
    return DC_OK;
}

static const im_entry *im_find(const dc_i4_imatrix *im, const char *name)
{
    im_entry key = {(char *)name, 0, 0, NULL};
    return bsearch(&key, im->e, im->n, sizeof *im->e, cmp_entry);
}

dc_status dc_i4_imatrix_get(const dc_i4_imatrix *im, const char *name, int64_t K, float **out, dc_err *err)
{
    *out = NULL;
    if (!im)
        return DC_OK;
    char g[256];
    int L, E = -1, n = 0;
    char proj[8];
    const im_entry *e = NULL;
    if (sscanf(name, "model.layers.%d.mlp.experts.%d.%4[a-z]_proj.weight%n", &L, &E, proj, &n) == 3 && n && !name[n] &&
        (!strcmp(proj, "gate") || !strcmp(proj, "up") || !strcmp(proj, "down"))) {
        snprintf(g, sizeof g, "blk.%d.ffn_%s_exps.weight", L, proj);
        e = im_find(im, g);
        if (e && E >= e->n_mat)
            return dc_err_set(err, DC_ERR_MODEL, "imatrix entry %s has %lld matrices; %s is expert %d", g,
                              (long long)e->n_mat, name, E);
    } else {
        E = -1;
        n = 0;
        if (sscanf(name, "model.layers.%d.self_attn.kv_b_proj.weight%n", &L, &n) == 1 && n && !name[n]) {
            snprintf(g, sizeof g, "blk.%d.attn_kv_b.weight", L);
            if (!(e = im_find(im, g))) { /* llama.cpp's MLA split: attn_v_b's input is the same latent */
                snprintf(g, sizeof g, "blk.%d.attn_v_b.weight", L);
                e = im_find(im, g);
            }
        } else if ((n = 0, sscanf(name, "model.layers.%d.self_attn.%4[kv]_proj.weight%n", &L, proj, &n)) == 2 && n && !name[n] &&
                   (!strcmp(proj, "k") || !strcmp(proj, "v"))) {
            snprintf(g, sizeof g, "blk.%d.attn_%s.weight", L, proj);
            e = im_find(im, g);
        } else if (dc_gguf_hf_to_name(name, g, sizeof g))
            e = im_find(im, g);
    }
    if (!e)
        return DC_OK;
    /* a 3-D weight's matrices (llama.cpp's attn_k_b / attn_v_b: one per head) are either n_mat rows
     * or, with one count, one row of n_mat * K values: their mean */
    if (E >= 0 ? e->ne0 != K : (e->ne0 % K != 0 || (e->ne0 != K && e->n_mat != 1)))
        return dc_err_set(err, DC_ERR_MODEL, "imatrix entry %s has %lld columns; %s has K = %lld", g, (long long)e->ne0,
                          name, (long long)K);
    float *v = malloc((size_t)K * sizeof *v);
    if (!v)
        return dc_err_set(err, DC_ERR_NOMEM, "out of memory");
    if (E >= 0)
        memcpy(v, e->v + (int64_t)E * K, (size_t)K * sizeof *v);
    else {
        int64_t parts = e->n_mat * (e->ne0 / K);
        for (int64_t k = 0; k < K; k++) {
            double s = 0;
            for (int64_t i = 0; i < parts; i++)
                s += e->v[i * K + k];
            v[k] = (float)(s / (double)parts);
        }
    }
    *out = v;
    return DC_OK;
}
