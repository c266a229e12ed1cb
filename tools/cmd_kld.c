#include "cmds.h"
int cmd_kld(int argc, char **argv) { (void)argc; (void)argv; cli_error("kld: not built yet"); return 1; }
