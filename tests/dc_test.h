/* Minimal test harness: CHECK records a failure and continues; the program's exit status and
 * closing line ("N passed, N failed") report the totals. */
#ifndef DC_TEST_H
#define DC_TEST_H
#include <stdio.h>
#include <string.h>
#include "dc_common.h"

extern int dc_test_pass, dc_test_fail;
#define CHECK(cond) do { if (cond) dc_test_pass++; else { dc_test_fail++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { if (cond) dc_test_pass++; else { dc_test_fail++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define CHECK_OK(expr, errp) do { dc_status s_ = (expr); if (s_ == DC_OK) dc_test_pass++; else { \
    dc_test_fail++; fprintf(stderr, "%s:%d: %s -> %d: %s\n", __FILE__, __LINE__, #expr, \
    (int)s_, (errp)->msg); } } while (0)
/* Prints the closing line, removes the scratch directories and returns the process exit code. */
int dc_test_done(void);
/* A fresh scratch directory under the build tree for this test (created, emptied); dc_test_done
 * removes it (kept with DC_KEEP_TMP=1). */
const char *dc_test_tmpdir(const char *name);
/* Registers a scratch directory made elsewhere for removal by dc_test_done. */
void dc_test_scratch(const char *dir);
#endif
