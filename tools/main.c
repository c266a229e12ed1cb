/* deepcast: one binary, many subcommands. Exit codes are the dc_status values (docs/exit-codes.md). */
#include "cmds.h"
#include "dc_common.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"inspect", cmd_inspect, "summarise a checkpoint and list its tensors (--json, --check)"},
    {"hash", cmd_hash, "print name dtype shape xxh3-64 per tensor, sorted by name"},
    {"convert", cmd_convert, "FP8 block-scaled <-> BF16/F16/F32 safetensors; GGUF for llama.cpp (--to gguf)"},
    {"imatrix", cmd_imatrix, "importance matrix (llama.cpp's format) from the reference forward pass"},
    {"quantize", cmd_quantize, "GGUF or HF checkpoint -> llama-quantize file types (Q4_K_M, Q8_0, ...), byte-exact"},
    {"reshard", cmd_reshard, "merge/split experts, DeepSeek model-parallel files, re-shard by size"},
    {"mkmodel", cmd_mkmodel, "write a synthetic checkpoint in the layout of a real release"},
    {"tokenize", cmd_tokenize, "tokenize text with a model's tokenizer.json"},
    {"logits", cmd_logits, "reference forward pass: float32 logits for every position"},
    {"perplexity", cmd_perplexity, "perplexity of a model on tokens or text"},
    {"prune-experts", cmd_prune, "keep the K most used routed experts per layer (calibrated), report the KLD"},
    {"kld", cmd_kld, "KL divergence and top-1 agreement of a model against a base"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("deepcast: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: deepcast [-q|-v] COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\n'deepcast COMMAND --help' describes a command. Exit codes: docs/exit-codes.md\n");
}

int main(int argc, char **argv)
{
    /* a file-size limit (ulimit -f) then fails writes with EFBIG, like a full disk, instead of
     * killing the process with the output half written */
    signal(SIGXFSZ, SIG_IGN);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-q"))
            dc_log_level = 0;
        else if (!strcmp(argv[i], "-v"))
            dc_log_level = 2;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("deepcast 0.1.0\n");
            return 0;
        } else {
            cli_error("unknown option '%s'; try 'deepcast --help'", argv[i]);
            return DC_ERR_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return DC_ERR_USAGE;
    }
    for (size_t k = 0; k < N_COMMANDS; k++)
        if (!strcmp(argv[i], COMMANDS[k].name))
            return COMMANDS[k].fn(argc - i, argv + i);
    cli_error("unknown command '%s'; try 'deepcast --help'", argv[i]);
    return DC_ERR_USAGE;
}
