#include "dc_test.h"
#include <stdlib.h>

int dc_test_pass, dc_test_fail;

/* Scratch directories handed out by dc_test_tmpdir or registered with dc_test_scratch: removed by
 * dc_test_done (the suite's tests together write several GB; a CI disk fills if they stay), kept
 * when DC_KEEP_TMP=1. */
static char *scratch_dirs[256];
static int n_scratch;

static void rm_rf(const char *dir)
{
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

void dc_test_scratch(const char *dir)
{
    for (int i = 0; i < n_scratch; i++)
        if (strcmp(scratch_dirs[i], dir) == 0)
            return;
    if (n_scratch < (int)(sizeof scratch_dirs / sizeof scratch_dirs[0]))
        scratch_dirs[n_scratch++] = strdup(dir);
}

int dc_test_done(void)
{
    printf("%d passed, %d failed\n", dc_test_pass, dc_test_fail);
    const char *keep = getenv("DC_KEEP_TMP");
    for (int i = 0; i < n_scratch; i++) {
        if (!keep || strcmp(keep, "1") != 0)
            rm_rf(scratch_dirs[i]);
        free(scratch_dirs[i]);
    }
    n_scratch = 0;
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
    dc_test_scratch(buf);
    return buf;
}
