// f16 / bf16 conversions: exact values, specials, subnormals, round-to-nearest-even, and the
// vectorised bulk paths against the scalar ones.
#include <string.h>

#include "engine/core/dtype.h"
#include "tests/test.h"

static float from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

TEST(f16_known_values) {
    CHECK_EQ_INT(f32_to_f16(0.0f), 0x0000);
    CHECK_EQ_INT(f32_to_f16(-0.0f), 0x8000);
    CHECK_EQ_INT(f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(f32_to_f16(-2.0f), 0xc000);
    CHECK_EQ_INT(f32_to_f16(65504.0f), 0x7bff);              // largest normal
    CHECK_EQ_INT(f32_to_f16(6.103515625e-05f), 0x0400);      // smallest normal 2^-14
    CHECK_EQ_INT(f32_to_f16(5.9604644775390625e-08f), 0x0001);  // smallest subnormal 2^-24
    CHECK_EQ_INT(f32_to_f16(6.0975551605224609e-05f), 0x03ff);  // largest subnormal
    CHECK_EQ_INT(f32_to_f16(INFINITY), 0x7c00);
    CHECK_EQ_INT(f32_to_f16(-INFINITY), 0xfc00);
    CHECK_EQ_INT(f32_to_f16(1e6f), 0x7c00);                  // overflow -> inf
    CHECK_EQ_INT(f32_to_f16(1e-9f), 0x0000);                 // underflow -> 0
    uint16_t nan = f32_to_f16(NAN);
    CHECK((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff) != 0);
    CHECK(isnan(f16_to_f32(0x7e00)));
    CHECK(isinf(f16_to_f32(0x7c00)) && f16_to_f32(0x7c00) > 0);
    CHECK_EQ_INT(to_bits(f16_to_f32(0x8000)), 0x80000000u);
    CHECK(f16_to_f32(0x0001) == 5.9604644775390625e-08f);
    CHECK(f16_to_f32(0x3555) == 0.333251953125f);
}

TEST(f16_round_to_nearest_even) {
    // 1 + 2^-11 is exactly halfway between 1 and 1 + 2^-10: ties go to even (1.0)
    CHECK_EQ_INT(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    // 1 + 3·2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even): rounds up
    CHECK_EQ_INT(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    // just above halfway rounds up
    CHECK_EQ_INT(f32_to_f16(from_bits(to_bits(1.0f + 0x1p-11f) + 1)), 0x3c01);
    // subnormal ties: 1.5 · 2^-24 -> 2 · 2^-24 (even); 2.5 · 2^-24 -> 2 · 2^-24
    CHECK_EQ_INT(f32_to_f16(1.5f * 0x1p-24f), 0x0002);
    CHECK_EQ_INT(f32_to_f16(2.5f * 0x1p-24f), 0x0002);
    CHECK_EQ_INT(f32_to_f16(0.5f * 0x1p-24f), 0x0000);       // tie to zero (even)
    CHECK_EQ_INT(f32_to_f16(0.75f * 0x1p-24f), 0x0001);
    // rounding a subnormal up into the smallest normal
    CHECK_EQ_INT(f32_to_f16(0x1p-14f - 0x1p-26f), 0x0400);
    // 65520 is the tie between 65504 and 2^16: goes to inf (even)
    CHECK_EQ_INT(f32_to_f16(65520.0f), 0x7c00);
    CHECK_EQ_INT(f32_to_f16(65519.0f), 0x7bff);
}

TEST(f16_all_values_round_trip) {
    // every f16 bit pattern survives f16 -> f32 -> f16 (NaNs stay NaN)
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((uint16_t)h);
        uint16_t back = f32_to_f16(f);
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan ? !((back & 0x7c00) == 0x7c00 && (back & 0x3ff)) : back != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(f16_bulk_matches_scalar) {
    enum { N = 70001 };
    static float x[N], y[N];
    static uint16_t a[N], b[N];
    fill_uniform(x, N, 1, -70000.0f, 70000.0f);
    for (int i = 0; i < 1000; i++) x[i] *= 1e-9f;          // subnormals
    x[5] = NAN; x[6] = INFINITY; x[7] = -0.0f;
    f32_to_f16_n(a, x, N);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        b[i] = f32_to_f16(x[i]);
        if (a[i] != b[i] && !(isnan(x[i]) && (a[i] & 0x7c00) == 0x7c00 && (a[i] & 0x3ff))) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    f16_to_f32_n(y, a, N);
    bad = 0;
    for (int i = 0; i < N; i++) {
        float s = f16_to_f32(a[i]);
        if (to_bits(s) != to_bits(y[i]) && !(isnan(s) && isnan(y[i]))) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(bf16_values_and_rounding) {
    CHECK_EQ_INT(f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(f32_to_bf16(-2.0f), 0xc000);
    CHECK_EQ_INT(f32_to_bf16(INFINITY), 0x7f80);
    CHECK_EQ_INT(f32_to_bf16(-INFINITY), 0xff80);
    CHECK(isnan(bf16_to_f32(f32_to_bf16(NAN))));
    CHECK(isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001u)))));  // signalling NaN stays NaN
    // ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7
    CHECK_EQ_INT(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    CHECK_EQ_INT(f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    CHECK_EQ_INT(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);
    // subnormals keep their bits
    CHECK_EQ_INT(f32_to_bf16(from_bits(0x00010000u)), 0x0001);
    CHECK_EQ_INT(to_bits(bf16_to_f32(0x0001)), 0x00010000u);
    // largest finite rounds to inf only past the tie
    CHECK_EQ_INT(f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80);
    CHECK_EQ_INT(f32_to_bf16(from_bits(0x7f7f7fffu)), 0x7f7f);
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bf16_to_f32((uint16_t)h);
        if (!isnan(f) && f32_to_bf16(f) != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    enum { N = 1000 };
    float x[N], y[N];
    uint16_t a[N];
    fill_uniform(x, N, 3, -5, 5);
    f32_to_bf16_n(a, x, N);
    bf16_to_f32_n(y, a, N);
    for (int i = 0; i < N; i++) CHECK_MSG(fabsf(x[i] - y[i]) <= fabsf(x[i]) * 0x1p-8f, "bf16 error at %d", i);
}

TEST(dtype_names_and_generic_conversion) {
    CHECK_EQ_INT(dtype_from_name("F32"), DT_F32);
    CHECK_EQ_INT(dtype_from_name("BF16"), DT_BF16);
    CHECK_EQ_INT(dtype_from_name("I64"), DT_I64);
    CHECK_EQ_INT(dtype_from_name("F17"), -1);
    CHECK_EQ_INT(dtype_size(DT_I64), 8);
    int64_t ints[3] = {-5, 0, 49407};
    float out[3];
    CHECK(dtype_to_f32_n(out, ints, DT_I64, 3) == 0);
    CHECK(out[0] == -5.0f && out[1] == 0.0f && out[2] == 49407.0f);
    // unaligned f16 source takes the byte-wise path
    unsigned char buf[7];
    uint16_t h = f32_to_f16(1.5f);
    memcpy(buf + 1, &h, 2);
    memcpy(buf + 3, &h, 2);
    CHECK(dtype_to_f32_n(out, buf + 1, DT_F16, 2) == 0);
    CHECK(out[0] == 1.5f && out[1] == 1.5f);
    CHECK(dtype_to_f32_n(out, buf, DT_BOOL, 1) != 0);
}
