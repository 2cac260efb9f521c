#include "engine/core/dtype.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_X86 1
#endif

static const struct { const char *name; size_t size; } DTYPES[DT_COUNT] = {
    [DT_F32] = {"F32", 4},   [DT_F16] = {"F16", 2},   [DT_BF16] = {"BF16", 2},
    [DT_F64] = {"F64", 8},   [DT_I64] = {"I64", 8},   [DT_I32] = {"I32", 4},
    [DT_I16] = {"I16", 2},   [DT_I8] = {"I8", 1},     [DT_U8] = {"U8", 1},
    [DT_U16] = {"U16", 2},   [DT_U32] = {"U32", 4},   [DT_U64] = {"U64", 8},
    [DT_BOOL] = {"BOOL", 1}, [DT_F8_E4M3] = {"F8_E4M3", 1}, [DT_F8_E5M2] = {"F8_E5M2", 1},
};

const char *dtype_name(dtype dt) { return (unsigned)dt < DT_COUNT ? DTYPES[dt].name : "?"; }
size_t dtype_size(dtype dt) { return (unsigned)dt < DT_COUNT ? DTYPES[dt].size : 0; }
int dtype_is_float(dtype dt) { return dt == DT_F32 || dt == DT_F16 || dt == DT_BF16 || dt == DT_F64; }

int dtype_from_name(const char *name) {
    for (int i = 0; i < DT_COUNT; i++)
        if (strcmp(DTYPES[i].name, name) == 0) return i;
    return -1;
}

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13));  // inf / NaN
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        // subnormal: value = man * 2^-24, exact in f32
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x3ff);  // NaN, quiet
    if (ax >= 0x477ff000u) return sign | 0x7c00;  // rounds to >= 65520: inf
    if (ax < 0x38800000u) {
        // result is subnormal or zero: scale so the f16 subnormal LSB (2^-24) is the f32 unit,
        // letting the FPU do round-to-nearest-even
        float v = bits_f32(ax) * 16777216.0f;     // * 2^24, exact
        uint32_t m = (uint32_t)__builtin_nearbyintf(v);  // default rounding mode: RNE
        return sign | (uint16_t)m;                // m == 0x400 becomes the smallest normal
    }
    // normal: rebias exponent, round mantissa to 10 bits (RNE)
    uint32_t r = ax - 0x38000000u;                // exponent bias 127 -> 15
    uint32_t lsb = (r >> 13) & 1;
    r += 0xfff + lsb;
    return sign | (uint16_t)(r >> 13);
}

float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);  // quiet NaN
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

#ifdef HAVE_X86
__attribute__((target("f16c,avx")))
static void f16_to_f32_f16c(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = f16_to_f32(src[i]);
}

__attribute__((target("f16c,avx")))
static void f32_to_f16_f16c(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = f32_to_f16(src[i]);
}

// F16C from CPUID leaf 1 (clang's __builtin_cpu_supports has no "f16c"); "avx" also covers the
// OS saving the YMM registers.
static int cpu_has_f16c(void) {
    static int cached = -1;
    unsigned a, b, c, d;
    if (cached < 0) cached = __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    return cached;
}
#endif

void f16_to_f32_n(float *dst, const uint16_t *src, size_t n) {
#ifdef HAVE_X86
    if (cpu_has_f16c()) { f16_to_f32_f16c(dst, src, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(src[i]);
}

void f32_to_f16_n(uint16_t *dst, const float *src, size_t n) {
#ifdef HAVE_X86
    if (cpu_has_f16c()) { f32_to_f16_f16c(dst, src, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = f32_to_f16(src[i]);
}

// bf16 is a plain shift / rounding add: these loops auto-vectorize (AVX2/AVX-512) at -O2+.
void bf16_to_f32_n(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(src[i]);
}

void f32_to_bf16_n(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = f32_to_bf16(src[i]);
}

int dtype_to_f32_n(float *dst, const void *src, dtype dt, size_t n) {
    const unsigned char *s = src;
    size_t es = dtype_size(dt);
    switch (dt) {
    case DT_F32: memcpy(dst, src, n * 4); return 0;
    case DT_F16:
        if (((uintptr_t)src & 1) == 0) { f16_to_f32_n(dst, src, n); return 0; }
        break;
    case DT_BF16:
        if (((uintptr_t)src & 1) == 0) { bf16_to_f32_n(dst, src, n); return 0; }
        break;
    default: break;
    }
    for (size_t i = 0; i < n; i++, s += es) {
        switch (dt) {
        case DT_F16: { uint16_t h; memcpy(&h, s, 2); dst[i] = f16_to_f32(h); break; }
        case DT_BF16: { uint16_t h; memcpy(&h, s, 2); dst[i] = bf16_to_f32(h); break; }
        case DT_F64: { double v; memcpy(&v, s, 8); dst[i] = (float)v; break; }
        case DT_I64: { int64_t v; memcpy(&v, s, 8); dst[i] = (float)v; break; }
        case DT_I32: { int32_t v; memcpy(&v, s, 4); dst[i] = (float)v; break; }
        case DT_I16: { int16_t v; memcpy(&v, s, 2); dst[i] = (float)v; break; }
        case DT_I8: dst[i] = (float)(int8_t)*s; break;
        case DT_U8: dst[i] = (float)*s; break;
        case DT_U16: { uint16_t v; memcpy(&v, s, 2); dst[i] = (float)v; break; }
        case DT_U32: { uint32_t v; memcpy(&v, s, 4); dst[i] = (float)v; break; }
        case DT_U64: { uint64_t v; memcpy(&v, s, 8); dst[i] = (float)v; break; }
        default: return -1;
        }
    }
    return 0;
}

int dtype_from_f32_n(void *dst, dtype dt, const float *src, size_t n) {
    switch (dt) {
    case DT_F32: memcpy(dst, src, n * 4); return 0;
    case DT_F16: f32_to_f16_n(dst, src, n); return 0;
    case DT_BF16: f32_to_bf16_n(dst, src, n); return 0;
    default: return -1;
    }
}
