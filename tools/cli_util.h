/* Small helpers shared by the subcommands. */
#ifndef DC_CLI_UTIL_H
#define DC_CLI_UTIL_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <cjson/cJSON.h>

/* Strict integer parsing of an option value; prints an error naming the option on failure. */
bool cli_int(const char *cmd, const char *opt, const char *s, long long lo, long long hi, long long *out);
/* Returns argv[++*i] or prints "option X needs a value" and returns NULL. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
/* Prints a JSON document followed by a newline to f and frees it. */
void cli_print_json(FILE *f, cJSON *doc);
#endif
