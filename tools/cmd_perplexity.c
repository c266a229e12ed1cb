#include "cmds.h"
int cmd_perplexity(int argc, char **argv) { (void)argc; (void)argv; cli_error("perplexity: not built yet"); return 1; }
