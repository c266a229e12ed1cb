/* libFuzzer harness for the GGUF reader (dc_gguf_parse works on a buffer, so the whole file is
 * the fuzz input) and for the deepseek2 Hugging Face view built on it (dc_gguf_ckpt_parse: name
 * mapping, expert slices, the virtual kv_b_proj, the config synthesized from the keys). Built
 * with -DDC_FUZZ=ON (clang); the same entry point is replayed over corpus/gguf by
 * fuzz_replay_gguf under ctest. */
#include "dc_ckpt.h"
#include "dc_gguf.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dc_gguf_file f;
    dc_err err;
    if (dc_gguf_parse(data, size, "fuzz", &f, &err) == DC_OK) {
        /* touch every tensor's first and last byte and every KV: bad spans trip ASan */
        volatile uint8_t x = 0;
        for (size_t i = 0; i < f.n_tensors; i++)
            if (f.tensors[i].nbytes)
                x ^= f.tensors[i].data[0] ^ f.tensors[i].data[f.tensors[i].nbytes - 1];
        for (size_t i = 0; i < f.n_kv; i++) {
            if (f.kv[i].size)
                x ^= f.kv[i].data[0] ^ f.kv[i].data[f.kv[i].size - 1];
            const char *s;
            uint64_t len, pos = 0;
            while (dc_gguf_arr_str_next(&f.kv[i], &pos, &s, &len))
                if (len)
                    x ^= (uint8_t)s[len - 1];
        }
        (void)x;
        dc_gguf_close(&f);
    }
    /* the checkpoint view, and reading (small) tensors through it */
    dc_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck)
        return 0;
    ck->path = strdup("fuzz.gguf");
    ck->dir = strdup(".");
    if (ck->path && ck->dir && dc_gguf_ckpt_parse(ck, data, size, "fuzz.gguf", &err) == DC_OK) {
        for (size_t i = 0; i < ck->n_tensors; i++) {
            const dc_tensor *t = ck->tensors[i];
            dc_weight w;
            if (dc_gguf_ckpt_weight(ck, t, &w, &err) != DC_OK || w.rows < 1 || w.cols < 1 ||
                w.rows * w.cols > (1 << 16))
                continue;
            float *out = malloc((size_t)(w.rows * w.cols) * sizeof *out);
            if (out) {
                dc_weight_rows(&w, 0, w.rows, out, DC_DEQ_BF16_ROUND, &err);
                free(out);
            }
        }
    }
    dc_ckpt_close(ck);
    return 0;
}
