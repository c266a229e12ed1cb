/* Replays every file of the given corpus directories through LLVMFuzzerTestOneInput, so the
 * fuzz corpus runs as a regression test under ctest (and under the sanitizers). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    int n = 0;
    for (int a = 1; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        if (!d) {
            fprintf(stderr, "fuzz_replay: cannot open %s\n", argv[a]);
            return 1;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[a], e->d_name);
            FILE *f = fopen(p, "rb");
            if (!f)
                continue;
            fseek(f, 0, SEEK_END);
            long len = ftell(f);
            fseek(f, 0, SEEK_SET);
            uint8_t *buf = malloc((size_t)len + 1);
            if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
                fclose(f);
                free(buf);
                return 1;
            }
            fclose(f);
            /* an exact-size heap copy, so ASan sees reads past the end */
            uint8_t *exact = malloc((size_t)len ? (size_t)len : 1);
            memcpy(exact, buf, (size_t)len);
            LLVMFuzzerTestOneInput(exact, (size_t)len);
            free(exact);
            free(buf);
            n++;
        }
        closedir(d);
    }
    printf("replayed %d inputs\n", n);
    return n > 0 ? 0 : 1;
}
