#include "engine/train/example_rng.h"

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t example_stream_key(uint64_t seed, int64_t step, int64_t index) {
    uint64_t k = splitmix64(seed);
    k = splitmix64(k ^ (uint64_t)step);
    return splitmix64(k ^ ((uint64_t)index * 0xD6E8FEB86659FD93ull));
}

void example_stream(sl_rng *r, uint64_t seed, int64_t step, int64_t index) {
    uint64_t k = example_stream_key(seed, step, index);
    sl_rng_seed(r, (k ^ (k >> 32)) & 0xffffffffull);   // mt19937 takes a 32-bit seed
}
