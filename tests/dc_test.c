#include "dc_test.h"
#include <stdlib.h>

int dc_test_pass, dc_test_fail;

int dc_test_done(void)
{
    printf("%d passed, %d failed\n", dc_test_pass, dc_test_fail);
    return dc_test_fail ? 1 : 0;
}

const char *dc_test_tmpdir(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", DC_TEST_TMP, name);
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", buf, buf);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot create %s\n", buf);
        exit(2);
    }
    return buf;
}
