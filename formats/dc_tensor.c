#include "dc_tensor.h"
#include "dc_float.h"
#include "dc_ggml.h"
#include "dc_io.h"
#include <stdio.h>
#include <string.h>

int64_t dc_tensor_nelem(const dc_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

int64_t dc_tensor_cols(const dc_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

int64_t dc_tensor_rows(const dc_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i + 1 < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

const char *dc_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    if (ndim == 0) {
        snprintf(buf, cap, "scalar");
        return buf;
    }
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? "x%lld" : "%lld", (long long)shape[i]);
    return buf;
}

dc_status dc_weight_init(dc_weight *w, const dc_tensor *t, const dc_tensor *scale, int block_rows,
                         int block_cols, const char *file_name, dc_err *err)
{
    memset(w, 0, sizeof *w);
    w->t = t;
    w->scale = scale;
    w->file_name = file_name ? file_name : "?";
    w->rows = dc_tensor_rows(t);
    w->cols = dc_tensor_cols(t);
    w->block_rows = block_rows > 0 ? block_rows : 128;
    w->block_cols = block_cols > 0 ? block_cols : 128;
    char b1[64], b2[64];
    if (!dc_ggml_can_decode(t->dtype))
        return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s, which cannot be read as numbers",
                          w->file_name, t->name, dc_dtype_name(t->dtype));
    if (dc_dtype_is_block(t->dtype) && w->cols % dc_dtype_block(t->dtype))
        return dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s of type %s has rows of %lld values, not a multiple of its block size %d",
                          w->file_name, t->name, dc_dtype_name(t->dtype), (long long)w->cols, dc_dtype_block(t->dtype));
    if (t->dtype == DC_DT_F8_E4M3 || t->dtype == DC_DT_F8_E5M2) {
        if (!scale)
            return dc_err_set(err, DC_ERR_MODEL, "%s: FP8 tensor %s has no scale tensor %s_scale_inv",
                              w->file_name, t->name, t->name);
    }
    if (scale) {
        if (t->dtype != DC_DT_F8_E4M3 && t->dtype != DC_DT_F8_E5M2)
            return dc_err_set(err, DC_ERR_MODEL, "%s: tensor %s has dtype %s but also a block scale %s",
                              w->file_name, t->name, dc_dtype_name(t->dtype), scale->name);
        if (scale->dtype != DC_DT_F32 && scale->dtype != DC_DT_BF16 && scale->dtype != DC_DT_F8_E8M0)
            return dc_err_set(err, DC_ERR_UNSUPPORTED, "%s: scale %s has dtype %s; expected F32, BF16 or F8_E8M0",
                              w->file_name, scale->name, dc_dtype_name(scale->dtype));
        if (t->ndim != 2)
            return dc_err_set(err, DC_ERR_MODEL, "%s: FP8 tensor %s has %d dims; block scales need 2",
                              w->file_name, t->name, t->ndim);
        int64_t er = (w->rows + w->block_rows - 1) / w->block_rows;
        int64_t ec = (w->cols + w->block_cols - 1) / w->block_cols;
        if (scale->ndim != 2 || scale->shape[0] != er || scale->shape[1] != ec)
            return dc_err_set(err, DC_ERR_MODEL,
                              "%s: scale %s has shape %s; weight %s [%lld, %lld] with %dx%d blocks needs %lldx%lld",
                              w->file_name, scale->name, dc_shape_str(scale->ndim, scale->shape, b1, sizeof b1),
                              t->name, (long long)w->rows, (long long)w->cols, w->block_rows, w->block_cols,
                              (long long)er, (long long)ec);
    }
    (void)b2;
    return DC_OK;
}

static float scale_at(const dc_tensor *s, int64_t i)
{
    switch (s->dtype) {
    case DC_DT_F32: { float f; memcpy(&f, s->data + 4 * i, 4); return f; }
    case DC_DT_BF16: { uint16_t h; memcpy(&h, s->data + 2 * i, 2); return dc_bf16_to_f32(h); }
    default: return dc_e8m0_to_f32(s->data[i]);
    }
}

/* f32 -> nearest bf16 (ties to even) -> f32, as dc_round_bf16, without branches (NaN stays a
 * quiet NaN) so the dequantisation loops below vectorise. */
static inline float round_bf16_nb(float f)
{
    uint32_t u = dc_f32_bits(f);
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    uint32_t q = (u | 0x00400000u) & 0xffff0000u;
    uint32_t m_nan = 0u - (uint32_t)((u & 0x7fffffffu) > 0x7f800000u);
    return dc_bits_f32((q & m_nan) | (r & ~m_nan));
}

/* One column block of one FP8 e4m3 row: dst[c] = f32(code) * s, optionally rounded to bf16. */
__attribute__((target_clones("avx2", "default")))
static void deq_e4m3_span(const uint8_t *src, float *dst, int64_t n, float s, const float *tab, bool round)
{
    if (round) {
#pragma omp simd
        for (int64_t c = 0; c < n; c++)
            dst[c] = round_bf16_nb(tab[src[c]] * s);
    } else {
#pragma omp simd
        for (int64_t c = 0; c < n; c++)
            dst[c] = tab[src[c]] * s;
    }
}

void dc_weight_release(const dc_weight *w, int64_t r0, int64_t n)
{
    if (w->read_rows || !w->t->data || r0 < 0 || n <= 0 || r0 + n > w->rows)
        return;
    uint64_t rb = 0;
    if (!dc_dtype_nbytes(w->t->dtype, (uint64_t)w->cols, &rb) || !rb)
        return;
    dc_map_release(w->t->data + (uint64_t)r0 * rb, (size_t)((uint64_t)n * rb));
}

dc_status dc_weight_rows(const dc_weight *w, int64_t r0, int64_t n, float *out, int mode, dc_err *err)
{
    if (r0 < 0 || n < 0 || r0 + n > w->rows)
        return dc_err_set(err, DC_ERR_INTERNAL, "tensor %s: rows [%lld, %lld) out of range (%lld rows)",
                          w->t->name, (long long)r0, (long long)(r0 + n), (long long)w->rows);
    if (w->read_rows)
        return w->read_rows(w, r0, n, out, mode, err);
    int64_t cols = w->cols;
    if (dc_dtype_is_block(w->t->dtype)) {
        uint64_t rb = 0;
        dc_dtype_nbytes(w->t->dtype, (uint64_t)cols, &rb);
        if (!dc_ggml_decode(w->t->dtype, w->t->data + (uint64_t)r0 * rb, out, n * cols))
            return dc_err_set(err, DC_ERR_UNSUPPORTED, "tensor %s: no decoder for %s", w->t->name,
                              dc_dtype_name(w->t->dtype));
        return DC_OK;
    }
    int esz = dc_dtype_size(w->t->dtype);
    const uint8_t *base = w->t->data + (uint64_t)r0 * (uint64_t)cols * (uint64_t)esz;
    if (!w->scale) {
        dc_dtype_to_f32(w->t->dtype, base, out, n * cols);
        return DC_OK;
    }
    const float *tab = dc_e4m3_table();
    int64_t sc = w->scale->shape[1];
    for (int64_t r = 0; r < n; r++) {
        int64_t row = r0 + r;
        const uint8_t *src = base + (uint64_t)r * (uint64_t)cols;
        float *dst = out + r * cols;
        int64_t srow = (row / w->block_rows) * sc;
        for (int64_t cb = 0; cb < sc; cb++) {
            float s = scale_at(w->scale, srow + cb);
            int64_t c0 = cb * w->block_cols, c1 = c0 + w->block_cols;
            if (c1 > cols)
                c1 = cols;
            if (w->t->dtype == DC_DT_F8_E4M3) {
                deq_e4m3_span(src + c0, dst + c0, c1 - c0, s, tab, mode != DC_DEQ_EXACT);
            } else {
                for (int64_t c = c0; c < c1; c++) {
                    float v = dc_e5m2_to_f32(src[c]) * s;
                    dst[c] = mode == DC_DEQ_EXACT ? v : dc_round_bf16(v);
                }
            }
        }
    }
    return DC_OK;
}
