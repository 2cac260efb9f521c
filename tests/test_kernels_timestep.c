// Timestep embedding against a reimplementation of diffusers' f32 arithmetic and a double formula.
#include <stdlib.h>

#include "engine/kernels/timestep.h"
#include "tests/kernel_check.h"

TEST(timestep_embedding_matches_diffusers_formula) {
    float t[4] = {0.0f, 1.0f, 500.0f, 999.0f};
    int dims[] = {320, 7, 8};
    for (int di = 0; di < 3; di++)
        for (int flip = 0; flip < 2; flip++)
            for (int shift = 0; shift < 2; shift++) {
                int dim = dims[di], half = dim / 2;
                float *out = const_f32(4 * dim, 7.0f);
                timestep_embedding(out, t, 4, dim, flip, (float)shift);
                double *want = malloc(sizeof(double) * 4 * dim);
                for (int n = 0; n < 4; n++) {
                    for (int i = 0; i < half; i++) {
                        double arg = t[n] * exp(-log(10000.0) * i / (half - shift));
                        want[n * dim + i] = flip ? cos(arg) : sin(arg);
                        want[n * dim + half + i] = flip ? sin(arg) : cos(arg);
                    }
                    if (dim % 2) want[n * dim + dim - 1] = 0.0;
                }
                char label[64];
                snprintf(label, sizeof label, "timestep dim=%d flip=%d shift=%d", dim, flip, shift);
                // f32 args up to 999 carry an absolute error of ~ulp(999) = 6e-5 (torch has the same),
                // so the double formula agrees only to ~1e-4.
                check_close_f64(label, out, want, 4 * dim, 2e-4);
                // Known values: t = 0 → sin 0 = 0, cos 0 = 1.
                CHECK(out[flip ? 0 : half] == 1.0f && out[flip ? half : 0] == 0.0f);
                if (dim % 2) CHECK(out[dim - 1] == 0.0f);
                free(out), free(want);
            }
}

#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"

// diffusers' own output (trace.time_proj) for the fixture timesteps [999, 261], dim 16, flip, shift 0.
TEST(timestep_embedding_matches_diffusers_fixture) {
    st_file *io = st_open(shared_path("fixtures/io/sd1_unet_io.safetensors"));
    st_file *tr = st_open(shared_path("fixtures/io/sd1_unet_trace.safetensors"));
    REQUIRE(io && tr);
    float *t = st_load_f32(io, "t_f32", 1, (int64_t[]){2});
    float *want = st_load_f32(tr, "trace.time_proj", 2, (int64_t[]){2, 16});
    REQUIRE(t && want);
    float out[32];
    timestep_embedding(out, t, 2, 16, 1, 0.0f);
    // Same f32 operations in the same order as torch; only the exp/sin/cos implementations (glibc vs
    // SLEEF) may differ by an ulp (measured: 6e-8). A formula slip (e.g. dividing by half − 1, or
    // sin/cos swapped) gives errors ≥ 1e-2.
    check_close("time_proj vs diffusers", out, want, 32, 2e-6);
    sl_free_aligned(t), sl_free_aligned(want);
    st_close(io), st_close(tr);
}
