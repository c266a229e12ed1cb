#include "cli_util.h"
#include "cmds.h"
#include <errno.h>
#include <stdlib.h>

bool cli_int(const char *cmd, const char *opt, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        cli_error("%s: %s must be an integer in [%lld, %lld], got '%s'", cmd, opt, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        cli_error("%s: option %s needs a value; try 'deepcast %s --help'", cmd, argv[*i], cmd);
        return NULL;
    }
    return argv[++*i];
}

void cli_print_json(FILE *f, cJSON *doc)
{
    char *s = cJSON_PrintUnformatted(doc);
    if (s) {
        fputs(s, f);
        fputc('\n', f);
        free(s);
    }
    cJSON_Delete(doc);
}
