// --profile (engine/core/profile.h): ops are counted once, at the outermost kernel, with the
// FLOPs of their shapes; GEMMs inside a convolution or Linear are not counted again; ops run
// inside an OpenMP parallel region are not counted; the command-line flag prints the table.
#include <omp.h>
#include <string.h>

#include "engine/core/profile.h"
#include "engine/core/tensor.h"
#include "engine/kernels/attention.h"
#include "engine/kernels/conv2d.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/linear.h"
#include "tests/test.h"

TEST(profile_counts_outermost_ops_with_their_flops) {
    conv2d_shape s = {2, 5, 9, 7, 6, 3, 1, 1};   // N, C_in, H, W, C_out, k, stride, pad
    float *x = sl_alloc_f32(2 * 5 * 9 * 7), *w = sl_alloc_f32(6 * 5 * 9), *y = sl_alloc_f32(2 * 6 * 9 * 7);
    float *dx = sl_alloc_f32(2 * 5 * 9 * 7), *dw = sl_alloc_f32(6 * 5 * 9);
    fill_uniform(x, 2 * 5 * 9 * 7, 1, -1, 1);
    fill_uniform(w, 6 * 5 * 9, 2, -1, 1);
    memset(dx, 0, sizeof(float) * 2 * 5 * 9 * 7);
    memset(dw, 0, sizeof(float) * 6 * 5 * 9);
    long long calls;
    double sec, fl;
    conv2d_forward(y, x, w, NULL, s);   // before enabling: not counted
    profile_enable();
    CHECK(profile_enabled());
    conv2d_forward(y, x, w, NULL, s);
    conv2d_backward(dx, dw, NULL, y, x, w, s);
    profile_get(PROF_CONV, 0, &calls, &sec, &fl);
    CHECK_EQ_INT(calls, 1);
    CHECK_NEAR(fl, 2.0 * 2 * 6 * 5 * 9 * 9 * 7, 0.5);
    CHECK(sec >= 0);
    profile_get(PROF_CONV, 1, &calls, NULL, &fl);
    CHECK_EQ_INT(calls, 1);
    CHECK_NEAR(fl, 2 * 2.0 * 2 * 6 * 5 * 9 * 9 * 7, 0.5);   // dinp and dw
    profile_get(PROF_GEMM, 0, &calls, NULL, NULL);
    CHECK_EQ_INT(calls, 0);   // the convolutions' GEMMs belong to them
    linear_forward(dx, x, w, NULL, 7, 45, 6);   // M = 7, d_in = 45, d_out = 6
    profile_get(PROF_LINEAR, 0, &calls, NULL, &fl);
    CHECK_EQ_INT(calls, 1);
    CHECK_NEAR(fl, 2.0 * 7 * 45 * 6, 0.5);
    gemm(GEMM_N, GEMM_N, 3, 4, 5, 1.0f, x, 5, w, 4, 0.0f, y, 4);
    profile_get(PROF_GEMM, 0, &calls, NULL, &fl);
    CHECK_EQ_INT(calls, 1);
    CHECK_NEAR(fl, 2.0 * 3 * 4 * 5, 0.5);
    // inside a parallel region: part of what encloses it, not counted
#pragma omp parallel num_threads(2)
    {
        float q[16], k[16], v[16], o[16];
        for (int i = 0; i < 16; i++) q[i] = k[i] = v[i] = 0.1f * (float)i;
        attention_forward(o, q, k, v, 1, 4, 4, 1, 4, 0.5f, 0);
    }
    profile_get(PROF_ATTENTION, 0, &calls, NULL, NULL);
    CHECK_EQ_INT(calls, 0);
    float q[16], k[16], v[16], o[16];
    for (int i = 0; i < 16; i++) q[i] = k[i] = v[i] = 0.1f * (float)i;
    attention_forward(o, q, k, v, 1, 4, 4, 1, 4, 0.5f, 0);
    profile_get(PROF_ATTENTION, 0, &calls, NULL, &fl);
    CHECK_EQ_INT(calls, 1);
    CHECK_NEAR(fl, 4.0 * 4 * 4 * 4, 0.5);
    sl_free_aligned(x), sl_free_aligned(w), sl_free_aligned(y), sl_free_aligned(dx), sl_free_aligned(dw);
}

TEST(profile_flag_prints_the_table) {
    char out[8192];
    int rc = run_cmd(out, sizeof out, "%s forward unet --model %s --in %s --out %s --profile --threads 1", singlora_bin(),
                     shared_path("fixtures/sd1_tiny"), shared_path("fixtures/io/sd1_unet_io.safetensors"),
                     tmp_path("out.safetensors"));
    REQUIRE(rc == 0);
    CHECK_MSG(strstr(out, "profile: op") && strstr(out, "profile: conv2d         forward") &&
                  strstr(out, "profile: linear         forward") && strstr(out, "profile: attention      forward") &&
                  strstr(out, "profile: total"),
              "%s", out);
}
