#include "engine/core/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"

uint64_t hash_mix64(uint64_t h) {
    h ^= h >> 33; h *= 0xff51afd7ed558ccdull; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ull; h ^= h >> 33;
    return h;
}

uint64_t hash_string(const char *s) {
    uint64_t h = 1469598103934665603ull;   // FNV-1a
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return hash_mix64(h);
}

size_t hash_capacity(size_t n) {
    size_t c = 16;
    while (c < n) c *= 2;
    return c;
}

void strmap_init(strmap *m, size_t n) {
    m->cap = hash_capacity(2 * n + 1);
    m->keys = sl_calloc(m->cap, sizeof *m->keys);
    m->vals = sl_calloc(m->cap, sizeof *m->vals);
}

void strmap_free(strmap *m) {
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = 0;
}

int strmap_put(strmap *m, const char *key, int val) {
    size_t i = hash_string(key) & (m->cap - 1);
    while (m->keys[i]) {
        if (!strcmp(m->keys[i], key)) return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    m->keys[i] = key;
    m->vals[i] = val;
    return -1;
}

int strmap_get(const strmap *m, const char *key) {
    size_t i = hash_string(key) & (m->cap - 1);
    while (m->keys[i]) {
        if (!strcmp(m->keys[i], key)) return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}
