// A string -> int hash map with open addressing (linear probing). Keys are borrowed: they must
// outlive the map. Sized once for the number of keys it will hold (it does not grow).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char **keys;   // (cap) NULL = empty slot
    int *vals;           // (cap)
    size_t cap;          // a power of two ≥ 2n + 1
} strmap;

// A well-mixed 64-bit hash (the finalizer of MurmurHash3) and FNV-1a over a string, mixed.
uint64_t hash_mix64(uint64_t h);
uint64_t hash_string(const char *s);

// Room for n keys.
void strmap_init(strmap *m, size_t n);
void strmap_free(strmap *m);
// Inserts key -> val; returns the value already stored when the key was there (which is kept),
// else -1.
int strmap_put(strmap *m, const char *key, int val);
// The value of key, or -1.
int strmap_get(const strmap *m, const char *key);
// The smallest power of two ≥ max(n, 16).
size_t hash_capacity(size_t n);
