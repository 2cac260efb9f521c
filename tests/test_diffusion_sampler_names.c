// Other tools' sampler and schedule names map to singlora's samplers, and back to A1111's.
#include <string.h>

#include "engine/core/error.h"
#include "engine/diffusion/sampler_names.h"
#include "tests/test.h"

TEST(sampler_names_of_other_tools) {
    struct { const char *name; sl_sampler_kind kind; int karras; } cases[] = {
        {"ddim", SL_SAMPLER_DDIM, 0},          {"DDIM", SL_SAMPLER_DDIM, 0},
        {"euler", SL_SAMPLER_EULER, 0},        {"Euler", SL_SAMPLER_EULER, 0},       {"k_euler", SL_SAMPLER_EULER, 0},
        {"euler_a", SL_SAMPLER_EULER_A, 0},    {"Euler a", SL_SAMPLER_EULER_A, 0},   {"euler_ancestral", SL_SAMPLER_EULER_A, 0},
        {"k_euler_a", SL_SAMPLER_EULER_A, 0},  {"dpmpp_2m", SL_SAMPLER_DPMPP_2M, 0}, {"DPM++ 2M", SL_SAMPLER_DPMPP_2M, 0},
        {"dpm++2m", SL_SAMPLER_DPMPP_2M, 0},   {"DPM++ 2M Karras", SL_SAMPLER_DPMPP_2M, 1},
        {"k_dpmpp_2m_ka", SL_SAMPLER_DPMPP_2M, 1}, {"dpmpp_2m_karras", SL_SAMPLER_DPMPP_2M, 1},
        {"Heun", SL_SAMPLER_HEUN, 0},          {"Euler a Karras", SL_SAMPLER_EULER_A, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sl_sampler_kind k = SL_SAMPLER_N_KINDS;
        int karras = -1;
        int rc = sl_sampler_lookup(cases[c].name, &k, &karras);
        CHECK_MSG(rc == 0 && k == cases[c].kind && karras == cases[c].karras, "'%s': rc %d, kind %d karras %d", cases[c].name,
                  rc, (int)k, karras);
    }
    // every sampler's A1111 name maps back to it
    for (int k = 0; k < SL_SAMPLER_N_KINDS; k++) {
        sl_sampler_kind got;
        int karras;
        CHECK(sl_sampler_lookup(sl_sampler_a1111_name((sl_sampler_kind)k), &got, &karras) == 0 && (int)got == k && !karras);
    }
    CHECK(strcmp(sl_sampler_a1111_name(SL_SAMPLER_EULER_A), "Euler a") == 0);
    // what is not a sampler here: named in one error line
    const char *bad[] = {"PLMS", "DPM++ 2M SDE", "karras", "LMS", "", "eulerr"};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        sl_sampler_kind k;
        int karras;
        CHECK_MSG(sl_sampler_lookup(bad[b], &k, &karras) == -1 && strstr(sl_error_msg(), bad[b]), "'%s' was accepted", bad[b]);
    }
    sl_sigmas_kind s;
    CHECK(sl_sigmas_lookup("Automatic", &s) == 0 && s == SL_SIGMAS_NORMAL);
    CHECK(sl_sigmas_lookup("discrete", &s) == 0 && s == SL_SIGMAS_NORMAL);
    CHECK(sl_sigmas_lookup("Karras", &s) == 0 && s == SL_SIGMAS_KARRAS);
    CHECK(sl_sigmas_lookup("exponential", &s) == -1 && strstr(sl_error_msg(), "exponential"));
}
