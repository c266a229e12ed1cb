#include "cmds.h"
int cmd_logits(int argc, char **argv) { (void)argc; (void)argv; cli_error("logits: not built yet"); return 1; }
