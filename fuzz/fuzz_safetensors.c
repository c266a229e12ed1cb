/* libFuzzer harness for the safetensors header parser (dc_st_parse works on a buffer, so the
 * whole file is the fuzz input). Built with -DDC_FUZZ=ON (clang); the same entry point is
 * replayed over corpus/safetensors by fuzz_replay under ctest. */
#include "dc_safetensors.h"
#include "dc_ckpt.h"
#include "dc_names.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dc_st_file f;
    dc_err err;
    if (dc_st_parse(data, size, "fuzz", 0, &f, &err) == DC_OK) {
        /* touch every tensor's bytes: any bad offset would be caught by ASan */
        volatile uint8_t x = 0;
        for (size_t i = 0; i < f.n_tensors; i++)
            if (f.tensors[i].nbytes)
                x ^= f.tensors[i].data[0] ^ f.tensors[i].data[f.tensors[i].nbytes - 1];
        (void)x;
        dc_st_close(&f);
    }
    /* the same bytes as a config.json */
    dc_config cfg;
    if (dc_config_parse((const char *)data, size, "fuzz", &cfg, &err) == DC_OK) {
        dc_expect *ex;
        size_t n;
        if (cfg.n_layers < 64 && cfg.n_experts_routed < 1024 &&
            dc_expect_build(&cfg, true, &ex, &n, &err) == DC_OK)
            dc_expect_free(ex, n);
    }
    return 0;
}
