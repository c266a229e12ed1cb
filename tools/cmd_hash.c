/* deepcast hash MODEL: one line per tensor, "name dtype shape xxh3-64", sorted by name. */
#include "cli_util.h"
#include "cmds.h"
#include "dc_ckpt.h"
#include "dc_io.h"

#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

static const char *USAGE = "usage: deepcast hash MODEL\n"
                           "  prints 'name dtype shape xxh3-64' for every tensor, sorted by name, so that two\n"
                           "  checkpoints can be compared with diff whatever their sharding.\n"
                           "  For a GGUF: the tensors as stored (GGUF names, ggml type names such as F32 or Q8_0,\n"
                           "  the shape as ne reversed to row-major like safetensors), over all splits.\n";

int cmd_hash(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("hash: unknown option '%s'; try 'deepcast hash --help'", argv[i]);
            return DC_ERR_USAGE;
        } else if (!path) path = argv[i];
        else {
            cli_error("hash: unexpected argument '%s'", argv[i]);
            return DC_ERR_USAGE;
        }
    }
    if (!path) {
        cli_error("hash: missing MODEL; try 'deepcast hash --help'");
        return DC_ERR_USAGE;
    }
    dc_err err = {0};
    dc_ckpt *ck;
    dc_status st = dc_ckpt_open(path, &ck, &err);
    if (st) {
        cli_error("hash: %s", err.msg);
        return st;
    }
    /* a GGUF is hashed as stored, not through its Hugging Face view */
    const dc_tensor **ts = ck->file_tensors ? ck->file_tensors : ck->tensors;
    size_t n = ck->file_tensors ? ck->n_file_tensors : ck->n_tensors;
    uint64_t *h = malloc((n ? n : 1) * sizeof *h);
    if (!h) {
        dc_ckpt_close(ck);
        cli_error("hash: out of memory");
        return DC_ERR_NOMEM;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (long i = 0; i < (long)n; i++) {
        /* streamed in chunks whose pages are dropped after use: RSS stays small on huge models */
        const dc_tensor *t = ts[i];
        XXH3_state_t hs;
        XXH3_64bits_reset(&hs);
        for (uint64_t off = 0; off < t->nbytes; off += 64u << 20) {
            size_t len = (size_t)(t->nbytes - off < (64u << 20) ? t->nbytes - off : (64u << 20));
            XXH3_64bits_update(&hs, t->data + off, len);
            dc_map_release(t->data + off, len);
        }
        h[i] = XXH3_64bits_digest(&hs);
    }
    for (size_t i = 0; i < n; i++) {
        const dc_tensor *t = ts[i];
        char sb[128];
        printf("%s %s %s %016llx\n", t->name, dc_dtype_name(t->dtype), dc_shape_str(t->ndim, t->shape, sb, sizeof sb),
               (unsigned long long)h[i]);
    }
    free(h);
    dc_ckpt_close(ck);
    return 0;
}
