/* Open-addressing hash map from strings (not owned) to int64 values. */
#ifndef DC_STRMAP_H
#define DC_STRMAP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dc_strmap {
    const char **keys;
    int64_t *vals;
    size_t cap, count;
} dc_strmap;

/* Inserts key -> val. Returns 1 if inserted, 0 if the key existed (val untouched), -1 on OOM. */
int dc_strmap_put(dc_strmap *m, const char *key, int64_t val);
/* Returns true and sets *val if found. */
bool dc_strmap_get(const dc_strmap *m, const char *key, int64_t *val);
void dc_strmap_free(dc_strmap *m);
uint64_t dc_str_hash(const char *s);
#endif
