// mt19937 + the ATen CPU distribution transforms. See rng.h.
#include "engine/core/rng.h"

#include <math.h>
#include <string.h>

#include "engine/core/error.h"

// ---- mt19937 (Matsumoto & Nishimura, 32-bit) ----

void sl_rng_seed(sl_rng *r, uint64_t seed) {
    memset(r, 0, sizeof *r);
    r->seed = seed;
    r->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (int i = 1; i < SL_MT_N; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->idx = SL_MT_N;
}

#define MT_M 397
static inline uint32_t mt_twist(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t y = (a & 0x80000000u) | (b & 0x7fffffffu);
    return c ^ (y >> 1) ^ (0x9908b0dfu & (0u - (y & 1u)));
}

static void mt_regenerate(sl_rng *r) {
    uint32_t *mt = r->mt;
    int i = 0;
    for (; i < SL_MT_N - MT_M; i++) mt[i] = mt_twist(mt[i], mt[i + 1], mt[i + MT_M]);
    for (; i < SL_MT_N - 1; i++) mt[i] = mt_twist(mt[i], mt[i + 1], mt[i + MT_M - SL_MT_N]);
    mt[SL_MT_N - 1] = mt_twist(mt[SL_MT_N - 1], mt[0], mt[MT_M - 1]);
    r->idx = 0;
}

uint32_t sl_rng_u32(sl_rng *r) {
    if (r->idx >= SL_MT_N) mt_regenerate(r);
    uint32_t y = r->mt[r->idx++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t sl_rng_u64(sl_rng *r) {
    uint64_t hi = sl_rng_u32(r);
    uint64_t lo = sl_rng_u32(r);
    return (hi << 32) | lo;
}

// ---- uniforms: (bits & (2^digits - 1)) * 2^-digits, as ATen's uniform_real ----

float sl_rng_uniform_f32(sl_rng *r) {
    return (float)(sl_rng_u32(r) & ((1u << 24) - 1)) * (1.0f / (float)(1u << 24));
}

double sl_rng_uniform_f64(sl_rng *r) {
    return (double)(sl_rng_u64(r) & ((1ull << 53) - 1)) * (1.0 / (double)(1ull << 53));
}

uint64_t sl_rng_randint(sl_rng *r, uint64_t n) {
    if (n <= 1) return 0;
    return n >= (1ull << 32) ? sl_rng_u64(r) % n : (uint64_t)sl_rng_u32(r) % n;
}

void sl_rng_rand(sl_rng *r, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = sl_rng_uniform_f32(r);
}

// ---- scalar normal: ATen's normal_distribution<double>, second value cached ----

double sl_rng_normal_f64(sl_rng *r) {
    if (r->has_next_double) {
        r->has_next_double = 0;
        return r->next_double;
    }
    double u1 = sl_rng_uniform_f64(r);
    double u2 = sl_rng_uniform_f64(r);
    double rad = sqrt(-2.0 * log(1.0 - u2));
    double theta = 2.0 * M_PI * u1;
    r->next_double = rad * sin(theta);
    r->has_next_double = 1;
    return rad * cos(theta);
}

// ---- vectorised normal: Box-Muller on blocks of 16 floats ----
//
// torch (1.13, x86 with AVX2) runs this block through avx_mathfun.h's log256_ps / sincos256_ps
// (Cephes single-precision polynomials), compiled by GCC with -mfma, which fuses every
// `a*b` whose only use is an add/sub into one FMA. The lane functions below are the same
// arithmetic in the same order with those FMAs written out, so the floats agree bit for bit.
// (This file is compiled as ISO C, where GCC does not contract on its own.)

static float bits_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

// Cephes logf for x in (0, 1] (x <= 0 does not occur here: the argument is 1 - u, u in [0,1)).
static float cephes_logf(float x) {
    const float SQRTHF = 0.707106781186547524f;
    if (x < bits_f(0x00800000u)) x = bits_f(0x00800000u);   // no denormals
    int32_t ex = (int32_t)(f_bits(x) >> 23);
    x = bits_f((f_bits(x) & ~0x7f800000u) | f_bits(0.5f));  // mantissa in [0.5, 1)
    float e = (float)(ex - 0x7f) + 1.0f;
    float tmp = 0.0f;
    if (x < SQRTHF) { tmp = x; e -= 1.0f; }                   // x < sqrt(1/2): use 2x - 1
    x = x - 1.0f;
    x = x + tmp;
    float z = x * x;
    float y = 7.0376836292E-2f;
    y = fmaf(y, x, -1.1514610310E-1f);
    y = fmaf(y, x, 1.1676998740E-1f);
    y = fmaf(y, x, -1.2420140846E-1f);
    y = fmaf(y, x, 1.4249322787E-1f);
    y = fmaf(y, x, -1.6668057665E-1f);
    y = fmaf(y, x, 2.0000714765E-1f);
    y = fmaf(y, x, -2.4999993993E-1f);
    y = fmaf(y, x, 3.3333331174E-1f);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);   // y*z + e*q1: the first product is the fused one
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    x = fmaf(e, 0.693359375f, x);
    return x;
}

// Cephes sincosf for x >= 0 (theta = 2*pi*u, u in [0,1)).
static void cephes_sincosf(float x, float *s, float *c) {
    const float FOPI = 1.27323954473516f;
    uint32_t sign_sin = f_bits(x) & 0x80000000u;
    x = bits_f(f_bits(x) & 0x7fffffffu);
    float y = x * FOPI;
    int32_t j = (int32_t)y;                     // truncation, as cvttps
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = ((uint32_t)j & 4u) << 29;
    int poly2 = ((uint32_t)j & 2u) == 0;        // 1: sine from the sine polynomial
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    uint32_t sign_cos = (~(uint32_t)(j - 2) & 4u) << 29;
    sign_sin ^= swap_sin;
    float z = x * x;
    float yc = 2.443315711809948E-005f;
    yc = fmaf(yc, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    float ys = -1.9515295891E-4f;
    ys = fmaf(ys, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    // the AVX code selects with masks and adds zeros: (a + 0) keeps a, except -0 + 0 = +0
    float ssel1 = poly2 ? 0.0f : yc, ssel2 = poly2 ? ys : 0.0f;
    float csel1 = poly2 ? yc : 0.0f, csel2 = poly2 ? 0.0f : ys;
    *s = bits_f(f_bits(ssel1 + ssel2) ^ sign_sin);
    *c = bits_f(f_bits(csel1 + csel2) ^ sign_cos);
}

// d[16] holds uniforms in [0,1); becomes 16 normals: d[j] = r cos, d[j+8] = r sin (j < 8).
static void box_muller16(float *d, float mean, float std) {
    const float two_pi = (float)(2.0 * M_PI);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(-2.0f * cephes_logf(u1));
        float s, c;
        cephes_sincosf(two_pi * u2, &s, &c);
        d[j] = fmaf(radius * c, std, mean);
        d[j + 8] = fmaf(radius * s, std, mean);
    }
}

void sl_rng_normal(sl_rng *r, float *x, size_t n, float mean, float std) {
    if (n < 16) {
        for (size_t i = 0; i < n; i++) x[i] = (float)(sl_rng_normal_f64(r) * (double)std + (double)mean);
        return;
    }
    for (size_t i = 0; i < n; i++) x[i] = sl_rng_uniform_f32(r);
    for (size_t i = 0; i + 16 <= n; i += 16) box_muller16(x + i, mean, std);
    if (n % 16 != 0) {
        // the tail: the last 16 values are redrawn and transformed again
        float *t = x + n - 16;
        for (int i = 0; i < 16; i++) t[i] = sl_rng_uniform_f32(r);
        box_muller16(t, mean, std);
    }
}

void sl_rng_randn(sl_rng *r, float *x, size_t n) { sl_rng_normal(r, x, n, 0.0f, 1.0f); }

// ---- state ----

#define RNG_MAGIC 0x31474e52534c4753ull   // "SGLSRNG1" little-endian

static uint8_t *put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) *p++ = (uint8_t)(v >> (8 * i));
    return p;
}
static uint8_t *put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) *p++ = (uint8_t)(v >> (8 * i));
    return p;
}
static const uint8_t *get_u32(const uint8_t *p, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) *v |= (uint32_t)p[i] << (8 * i);
    return p + 4;
}
static const uint8_t *get_u64(const uint8_t *p, uint64_t *v) {
    *v = 0;
    for (int i = 0; i < 8; i++) *v |= (uint64_t)p[i] << (8 * i);
    return p + 8;
}

void sl_rng_get_state(const sl_rng *r, uint8_t out[SL_RNG_STATE_BYTES]) {
    uint8_t *p = put_u64(out, RNG_MAGIC);
    for (int i = 0; i < SL_MT_N; i++) p = put_u32(p, r->mt[i]);
    p = put_u32(p, (uint32_t)r->idx);
    p = put_u64(p, r->seed);
    uint64_t d; memcpy(&d, &r->next_double, 8);
    uint32_t f; memcpy(&f, &r->next_float, 4);
    p = put_u32(p, (uint32_t)r->has_next_double);
    p = put_u64(p, d);
    p = put_u32(p, (uint32_t)r->has_next_float);
    put_u32(p, f);
}

int sl_rng_set_state(sl_rng *r, const uint8_t *bytes, size_t n, const char *what) {
    if (n != SL_RNG_STATE_BYTES)
        return sl_error(what, "RNG state has %zu bytes, expected %d", n, SL_RNG_STATE_BYTES);
    uint64_t magic;
    const uint8_t *p = get_u64(bytes, &magic);
    if (magic != RNG_MAGIC) return sl_error(what, "not a singlora RNG state (bad magic)");
    sl_rng t;
    memset(&t, 0, sizeof t);
    for (int i = 0; i < SL_MT_N; i++) p = get_u32(p, &t.mt[i]);
    uint32_t idx, hd, hf, f;
    uint64_t d;
    p = get_u32(p, &idx);
    p = get_u64(p, &t.seed);
    p = get_u32(p, &hd);
    p = get_u64(p, &d);
    p = get_u32(p, &hf);
    get_u32(p, &f);
    if (idx > SL_MT_N || hd > 1 || hf > 1) return sl_error(what, "corrupt RNG state (index %u)", idx);
    t.idx = (int)idx;
    t.has_next_double = (int)hd;
    t.has_next_float = (int)hf;
    memcpy(&t.next_double, &d, 8);
    memcpy(&t.next_float, &f, 4);
    *r = t;
    return 0;
}
