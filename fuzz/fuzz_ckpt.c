/* libFuzzer harness for the checkpoint directory reader with its config-driven layouts: the
 * 4-bit readers (compressed-tensors int4 / nvfp4 / mxfp4, GPTQ, AWQ, ModelOpt NVFP4, formats/
 * dc_int4.c) and FP8 block scales. The input is CONFIG NUL HF_QUANT_CONFIG NUL SAFETENSORS: the
 * harness writes config.json, hf_quant_config.json (when not empty) and model.safetensors into a
 * scratch directory, opens it with dc_ckpt_open, runs the consistency check and reads every
 * (small) weight through dc_ckpt_weight / dc_weight_rows. Built with -DDC_FUZZ=ON (clang); the
 * same entry point is replayed over corpus/ckpt by fuzz_replay_ckpt under ctest. Seeds:
 * fuzz/mk_ckpt_seeds.py. */
#include "dc_ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[64];

static void cleanup(void)
{
    static const char *names[] = {"config.json", "hf_quant_config.json", "model.safetensors"};
    char p[128];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", g_dir, names[i]);
        unlink(p);
    }
    rmdir(g_dir);
}

static int put(const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    if (!p) {
        unlink(path);
        return 0;
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_dir, sizeof g_dir, "%s/dcfzXXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
        if (!mkdtemp(g_dir)) {
            g_dir[0] = 0;
            return 0;
        }
        atexit(cleanup);
    }
    const uint8_t *z1 = memchr(data, 0, size);
    if (!z1)
        return 0;
    const uint8_t *z2 = memchr(z1 + 1, 0, size - (size_t)(z1 + 1 - data));
    if (!z2)
        return 0;
    const uint8_t *hq = z1 + 1, *st = z2 + 1;
    if (put("config.json", data, (size_t)(z1 - data)) ||
        put("hf_quant_config.json", z2 > hq ? hq : NULL, (size_t)(z2 - hq)) ||
        put("model.safetensors", st, size - (size_t)(st - data)))
        return 0;

    dc_ckpt *ck;
    dc_err err;
    if (dc_ckpt_open(g_dir, &ck, &err) != DC_OK)
        return 0;
    dc_check chk;
    if (ck->has_config && ck->cfg.n_layers < 64 && ck->cfg.n_experts_routed < 1024 &&
        dc_ckpt_check(ck, &chk, &err) == DC_OK)
        dc_check_free(&chk);
    for (size_t i = 0; i < ck->n_tensors; i++) {
        dc_weight w;
        if (dc_ckpt_weight(ck, ck->tensors[i]->name, &w, &err) != DC_OK || w.rows < 1 || w.cols < 1 ||
            w.rows * w.cols > (1 << 18))
            continue;
        float *out = malloc((size_t)(w.rows * w.cols) * sizeof *out);
        if (out) {
            dc_weight_rows(&w, 0, w.rows, out, DC_DEQ_BF16_ROUND, &err);
            /* a row range in the middle too: the readers' offsets for r0 > 0 */
            if (w.rows > 2)
                dc_weight_rows(&w, w.rows / 2, 1, out, DC_DEQ_EXACT, &err);
            free(out);
        }
    }
    dc_ckpt_close(ck);
    return 0;
}
