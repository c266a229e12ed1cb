/* CLI subcommands. Each returns the process exit code (a dc_status value). */
#ifndef DC_CMDS_H
#define DC_CMDS_H
int cmd_inspect(int argc, char **argv);
int cmd_hash(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_reshard(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_kld(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_imatrix(int argc, char **argv);
/* Prints "deepcast: <msg>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
