#include "cmds.h"
int cmd_mkmodel(int argc, char **argv) { (void)argc; (void)argv; cli_error("mkmodel: not built yet"); return 1; }
