// A seeded random generator that reproduces PyTorch's CPU generator (torch.Generator on the
// CPU: mt19937 + ATen's distribution transforms), so that
//   sl_rng_seed(&r, S); sl_rng_randn(&r, x, n)
// gives the same floats as torch.randn(shape, generator=torch.Generator().manual_seed(S)) for a
// tensor of n elements, and the initial latents of a diffusers pipeline can be reproduced.
//
// The same generator serves the engine (training noise, timesteps, dropout): sl_rng_randn and
// sl_rng_rand are fast enough for that (a few ns per value) and stay torch-compatible.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define SL_MT_N 624

typedef struct {
    uint32_t mt[SL_MT_N];   // mt19937 state
    int idx;                // next word of mt[] to temper; SL_MT_N = regenerate first
    uint64_t seed;          // the seed given to sl_rng_seed (informational)
    // Box-Muller caches of the scalar path, as CPUGeneratorImpl keeps them
    int has_next_double;
    double next_double;
    int has_next_float;
    float next_float;
} sl_rng;

// torch.Generator().manual_seed(seed): mt19937 init_genrand with the seed's low 32 bits;
// clears the normal caches.
void sl_rng_seed(sl_rng *r, uint64_t seed);

// Raw draws: one mt19937 word; two words as (first << 32) | second (ATen's random64).
uint32_t sl_rng_u32(sl_rng *r);
uint64_t sl_rng_u64(sl_rng *r);

// Uniform [0,1): float from 24 bits of one word, double from 53 bits of random64.
float sl_rng_uniform_f32(sl_rng *r);
double sl_rng_uniform_f64(sl_rng *r);

// One N(0,1) double from ATen's scalar normal_distribution<double> (Box-Muller on two
// random64 uniforms; the second value is cached for the next call).
double sl_rng_normal_f64(sl_rng *r);

// x[n] = torch.randn(n) (float, contiguous): n >= 16 takes ATen's vectorised path (fill with
// uniforms, Box-Muller on blocks of 16, the last 16 redrawn when n % 16 != 0) using the AVX2
// kernel's Cephes log/sincos bit for bit; n < 16 takes the scalar double path above.
void sl_rng_randn(sl_rng *r, float *x, size_t n);
// x[n] = torch.rand(n) (float): uniform [0,1) from 24 bits per value.
void sl_rng_rand(sl_rng *r, float *x, size_t n);
// x[n] = mean + std * torch.randn(n)  (torch's normal_(mean, std) for float tensors)
void sl_rng_normal(sl_rng *r, float *x, size_t n, float mean, float std);
// Uniform integer in [0, n) (n >= 1) as torch.randint(0, n) draws it: one word mod n
// (random64 mod n when n >= 2^32).
uint64_t sl_rng_randint(sl_rng *r, uint64_t n);

// Save / restore the complete state (for checkpoints). The byte form is fixed-size,
// little-endian and versioned; sl_rng_set_state checks size, magic and index and returns -1
// with sl_error(what, ...) when the bytes are not a state.
#define SL_RNG_STATE_BYTES (8 + 4 * SL_MT_N + 4 + 8 + 4 + 8 + 4 + 4)
void sl_rng_get_state(const sl_rng *r, uint8_t out[SL_RNG_STATE_BYTES]);
int sl_rng_set_state(sl_rng *r, const uint8_t *bytes, size_t n, const char *what);
