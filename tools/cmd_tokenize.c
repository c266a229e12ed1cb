/* deepcast tokenize DIR --text FILE [--json] [--no-special]: token ids of a text file. */
#include "cmds.h"
#include "dc_common.h"
#include "dc_tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deepcast tokenize DIR --text FILE [--json] [--no-special]\n"
            "\n"
            "Encodes the bytes of FILE (UTF-8; '-' reads standard input; a trailing newline is\n"
            "part of the text) with DIR/tokenizer.json and DIR/tokenizer_config.json. DIR is a\n"
            "model directory or a directory holding only the tokenizer files.\n"
            "\n"
            "  --text FILE    the text to encode\n"
            "  --json         print {\"ids\": [...]} instead of space-separated ids\n"
            "  --no-special   do not add BOS/EOS (by default they are added as tokenizer_config.json\n"
            "                 says, like transformers does)\n"
            "  -h, --help     show this help\n");
}

static int read_text(const char *path, char **buf, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        cli_error("tokenize: cannot open %s: %s", path, strerror(errno));
        return DC_ERR_IO;
    }
    char *b = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 > cap && !dc_grow((void **)&b, &cap, n + 65536, 1)) {
            free(b);
            if (f != stdin)
                fclose(f);
            cli_error("tokenize: out of memory reading %s", path);
            return DC_ERR_NOMEM;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    bool bad = ferror(f);
    int e = errno;
    if (f != stdin)
        fclose(f);
    if (bad) {
        free(b);
        cli_error("tokenize: cannot read %s: %s", path, strerror(e));
        return DC_ERR_IO;
    }
    *buf = b;
    *len = n;
    return DC_OK;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *dir = NULL, *text_path = NULL;
    bool json = false, special = true, opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && a[0] == '-' && a[1]) {
            if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                usage(stdout);
                return DC_OK;
            } else if (!strcmp(a, "--json")) {
                json = true;
            } else if (!strcmp(a, "--no-special")) {
                special = false;
            } else if (!strcmp(a, "--text")) {
                if (i + 1 >= argc) {
                    cli_error("tokenize: option --text needs a value");
                    return DC_ERR_USAGE;
                }
                text_path = argv[++i];
            } else if (!strncmp(a, "--text=", 7)) {
                text_path = a + 7;
            } else if (!strcmp(a, "--")) {
                opts_done = true;
            } else {
                cli_error("tokenize: unknown option '%s'; try 'deepcast tokenize --help'", a);
                return DC_ERR_USAGE;
            }
        } else if (!dir) {
            dir = a;
        } else {
            cli_error("tokenize: unexpected argument '%s' (DIR is already '%s')", a, dir);
            return DC_ERR_USAGE;
        }
    }
    if (!dir) {
        cli_error("tokenize: missing DIR; try 'deepcast tokenize --help'");
        return DC_ERR_USAGE;
    }
    if (!text_path || !*text_path) {
        cli_error("tokenize: missing --text FILE; try 'deepcast tokenize --help'");
        return DC_ERR_USAGE;
    }

    char *text = NULL;
    size_t len = 0;
    int rc = read_text(text_path, &text, &len);
    if (rc)
        return rc;
    dc_err err = {0};
    dc_tok *tok = NULL;
    dc_status st = dc_tok_load(dir, &tok, &err);
    if (st) {
        free(text);
        cli_error("tokenize: %s", err.msg);
        return st;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    st = dc_tok_encode(tok, text, len, special, &ids, &n, &err);
    free(text);
    dc_tok_free(tok);
    if (st) {
        cli_error("tokenize: %s: %s", text_path, err.msg);
        return st;
    }
    if (json)
        fputs("{\"ids\": [", stdout);
    for (size_t i = 0; i < n; i++)
        printf(i ? (json ? ", %d" : " %d") : "%d", (int)ids[i]);
    fputs(json ? "]}\n" : "\n", stdout);
    free(ids);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("tokenize: cannot write the output: %s", strerror(errno));
        return DC_ERR_IO;
    }
    return DC_OK;
}
