/* A minimal llama-quantize for the benchmarks: dlopens libllama (node-llama-cpp's prebuilt CPU build in
 * tests/interop/node_modules) and calls llama_model_quantize with the parameters llama.cpp's
 * tools/quantize would set for `llama-quantize IN OUT FTYPE NTHREADS` (its defaults, no options), as
 * tests/interop/quantize_check.c does. Not part of the CMake build: bench/quantize_vs_llama.sh compiles it
 * with `cc -O2 bench/llama_quantize.c -ldl`.
 * usage: llama_quantize IN OUT FTYPE_NAME NTHREADS [LIBLLAMA]   (LIBLLAMA, or $LIBLLAMA: the libllama*.so)
 * Logs of libllama are silenced except errors; LLAMA_QUANTIZE_VERBOSE=1 shows them all. */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "../tests/interop/llama_quantize_api.h"


static const struct { const char *name; int id; } FTYPES[] = {
    {"Q8_0", 7},    {"Q4_0", 2},    {"Q4_1", 3},    {"Q5_0", 8},    {"Q5_1", 9},     {"Q2_K", 10},  {"Q2_K_S", 21},
    {"Q3_K_S", 11}, {"Q3_K_M", 12}, {"Q3_K_L", 13}, {"Q4_K_S", 14}, {"Q4_K_M", 15},  {"Q5_K_S", 16}, {"Q5_K_M", 17},
    {"Q6_K", 18},   {"IQ4_NL", 25}, {"IQ4_XS", 30}, {"TQ1_0", 36},  {"TQ2_0", 37},   {"MXFP4_MOE", 38},
    {"F16", 1},     {"BF16", 32},   {"F32", 0}};

static bool verbose;
static void logcb(int level, const char *text, void *ud)
{
    (void)ud;
    if (verbose || level == 4 /* GGML_LOG_LEVEL_ERROR */)
        fputs(text, stderr);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: llama_quantize IN OUT FTYPE_NAME NTHREADS [LIBLLAMA] (or $LIBLLAMA)\n");
        return 2;
    }
    const char *lib = argc > 5 ? argv[5] : getenv("LIBLLAMA");
    if (!lib || !*lib) {
        fprintf(stderr, "llama_quantize: no libllama given (argument 5 or $LIBLLAMA)\n");
        return 2;
    }
    int ftype = -1;
    for (size_t i = 0; i < sizeof FTYPES / sizeof FTYPES[0]; i++)
        if (!strcasecmp(FTYPES[i].name, argv[3]))
            ftype = FTYPES[i].id;
    if (ftype < 0) {
        fprintf(stderr, "llama_quantize: unknown file type %s\n", argv[3]);
        return 2;
    }
    verbose = getenv("LLAMA_QUANTIZE_VERBOSE") && atoi(getenv("LLAMA_QUANTIZE_VERBOSE"));
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "llama_quantize: %s\n", dlerror());
        return 1;
    }
    struct lq_params (*l_default)(void);
    uint32_t (*l_quantize)(const char *, const char *, const struct lq_params *);
    void (*l_backend_init)(void);
    void (*l_backend_free)(void);
    void (*l_log_set)(void (*)(int, const char *, void *), void *);
#define SYM(v, name) (*(void **)&(v) = dlsym(h, name))
    if (!SYM(l_default, "llama_model_quantize_default_params") || !SYM(l_quantize, "llama_model_quantize") ||
        !SYM(l_backend_init, "llama_backend_init") || !SYM(l_backend_free, "llama_backend_free") ||
        !SYM(l_log_set, "llama_log_set")) {
        fprintf(stderr, "llama_quantize: symbol missing in %s: %s\n", lib, dlerror());
        return 1;
    }
    l_log_set(logcb, NULL);
    l_backend_init();
    struct lq_params p = l_default();
    p.ftype = ftype;
    p.nthread = atoi(argv[4]);
    uint32_t rc = l_quantize(argv[1], argv[2], &p);
    l_backend_free();
    if (rc) {
        fprintf(stderr, "llama_quantize: failed to quantize %s (%u)\n", argv[1], rc);
        return 1;
    }
    return 0;
}
