// Timestep spacings (leading / linspace / trailing): the timesteps against the formulas of
// diffusers' schedulers, a whole trajectory with each spacing against the DDIM and Euler update
// rules written out here in double precision, and the default of each kind of model (a single
// file: each sampler's own default, as A1111 / ComfyUI / stable-diffusion.cpp; a diffusers folder:
// its scheduler config).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/diffusion/sampler.h"
#include "engine/diffusion/schedule.h"
#include "engine/io/safetensors.h"
#include "pipeline/sd_model.h"
#include "tests/test.h"

enum { T = 1000, N = 20, OFFSET = 1 };

// diffusers' formulas (numpy float64), largest timestep first:
//   leading  = arange(0, N) * (T // N) + steps_offset
//   trailing = round(arange(T, 0, -T/N)) - 1
//   linspace = linspace(0, T-1, N) (rounded for DDIM)
static void expected_timesteps(sl_spacing sp, int ddim, double *t) {
    for (int i = 0; i < N; i++) {
        int k = N - 1 - i;   // the arange / linspace index, reversed
        if (sp == SL_SPACING_LEADING) t[i] = (double)k * (T / N) + OFFSET;
        else if (sp == SL_SPACING_TRAILING) t[i] = rint((double)T - (double)i * ((double)T / N)) - 1;
        else {
            double v = (double)k * ((double)(T - 1) / (N - 1));
            t[i] = ddim ? rint(v) : v;
        }
    }
}

// sigma(t) = sqrt((1 - acp) / acp), linearly interpolated at fractional t (np.interp)
static double sigma_at(const float *acp, double t) {
    int j = (int)floor(t);
    double s0 = sqrt((1.0 - acp[j]) / acp[j]);
    if (j >= T - 1 || t == j) return s0;
    double s1 = sqrt((1.0 - acp[j + 1]) / acp[j + 1]);
    return s0 + (t - j) * (s1 - s0);
}

TEST(spacing_trajectories_follow_the_formulas) {
    sl_schedule s;
    REQUIRE(sl_schedule_load(&s, shared_path("fixtures/sd1_tiny/scheduler")) == 0);
    REQUIRE(s.T == T && s.steps_offset == OFFSET);
    st_file *f = st_open(shared_path("fixtures/io/scheduler.safetensors"));
    REQUIRE(f);
    const int64_t n = 64;
    float *x_init = st_load_f32(f, "euler_linspace_eps.noise", 4, (int64_t[]){1, 4, 4, 4});
    float *outs = st_load_f32(f, "euler_linspace_eps.model_outputs", 5, (int64_t[]){N, 1, 4, 4, 4});
    REQUIRE(x_init && outs);
    const sl_spacing spacings[3] = {SL_SPACING_LEADING, SL_SPACING_LINSPACE, SL_SPACING_TRAILING};
    for (int kind = 0; kind < 2; kind++) {
        int ddim = kind == 0;
        for (int q = 0; q < 3; q++) {
            sl_sampler_opts o;
            sl_sampler_opts_default(&o);
            o.kind = ddim ? SL_SAMPLER_DDIM : SL_SAMPLER_EULER;
            o.steps = N;
            o.spacing = spacings[q];
            sl_sampler *sm = sl_sampler_new(&s, &o, n);
            REQUIRE(sm);
            const char *name = sl_spacing_name(spacings[q]);
            CHECK_EQ_INT(sm->n_evals, N);
            double t[N];
            expected_timesteps(spacings[q], ddim, t);
            for (int i = 0; i < N; i++)
                CHECK_MSG(sm->timesteps[i] == (float)t[i], "%s %s: t[%d] = %.9g, want %.9g", sl_sampler_name(o.kind), name,
                          i, sm->timesteps[i], t[i]);
            // the trajectory: feed the same model outputs, compare with the update rule in double
            float x[64];
            double ref[64];
            double s0 = ddim ? 1.0 : sigma_at(s.alphas_cumprod, t[0]);
            // diffusers' Euler: init_noise_sigma = sigma_max, sqrt(sigma_max^2 + 1) for leading
            double ins = ddim ? 1.0 : spacings[q] == SL_SPACING_LEADING ? sqrt(s0 * s0 + 1) : s0;
            for (int j = 0; j < n; j++) x[j] = x_init[j] * sm->init_noise_sigma, ref[j] = x_init[j] * ins;
            CHECK_NEAR(sm->init_noise_sigma, ins, 1e-5 * ins);
            double worst = 0;
            for (int i = 0; i < N; i++) {
                const float *eps = outs + i * n;
                REQUIRE(sl_sampler_step(sm, i, eps, x, NULL, NULL) == 0);
                if (ddim) {
                    // x0 = (x - sqrt(1-a) eps) / sqrt(a); x' = sqrt(a') x0 + sqrt(1-a') eps, a' at t - T/N
                    int tc = (int)t[i], tp = tc - T / N;
                    double a = s.alphas_cumprod[tc], ap = tp >= 0 ? s.alphas_cumprod[tp] : s.alphas_cumprod[0];
                    for (int j = 0; j < n; j++) {
                        double x0 = (ref[j] - sqrt(1 - a) * eps[j]) / sqrt(a);
                        ref[j] = sqrt(ap) * x0 + sqrt(1 - ap) * eps[j];
                    }
                } else {
                    // epsilon prediction: dx/dsigma = eps; x' = x + (sigma' - sigma) eps, sigma_N = 0
                    double sg = sigma_at(s.alphas_cumprod, t[i]);
                    double sn = i + 1 < N ? sigma_at(s.alphas_cumprod, t[i + 1]) : 0.0;
                    for (int j = 0; j < n; j++) ref[j] += (sn - sg) * eps[j];
                }
                for (int j = 0; j < n; j++) worst = fmax(worst, fabs(x[j] - ref[j]) / (1 + fabs(ref[j])));
            }
            printf("  %s %s: %g .. %g, trajectory max rel %.3g\n", sl_sampler_name(o.kind), name, t[0], t[N - 1], worst);
            CHECK_MSG(worst < 2e-5, "%s %s: the trajectory leaves the update rule by %g", sl_sampler_name(o.kind), name,
                      worst);
            sl_sampler_free(sm);
        }
    }
    free(x_init), free(outs);
    st_close(f);
    sl_schedule_free(&s);
}

TEST(spacing_default_follows_the_model_kind) {
    // a diffusers folder keeps its scheduler config (leading, offset 1): 751 .. 1 at 4 steps;
    // a single file spaces Euler evenly from 999 (A1111 / ComfyUI / sd.cpp) and DDIM as A1111's
    const char *models[2] = {"fixtures/sd1_tiny", "fixtures/sd1_tiny.original.safetensors"};
    const float want_euler[2][4] = {{751, 501, 251, 1}, {999, 666, 333, 0}};
    // the tiny single file's sizes are not SD's: its configs, without a scheduler
    char cfg[1024], log[1024];
    snprintf(cfg, sizeof cfg, "%s", tmp_path("configs"));
    const char *tiny = shared_path("fixtures/sd1_tiny");
    REQUIRE(run_cmd(log, sizeof log, "mkdir -p %s && for c in unet vae text_encoder; do ln -s \"$(realpath %s)\"/$c %s/$c; done", cfg, tiny,
                    cfg) == 0);
    for (int k = 0; k < 2; k++) {
        sd_load_opts lo = {.path = shared_path(models[k]), .config_dir = k ? cfg : NULL, .no_tokenizer = 1};
        sd_model *m = sd_model_load(&lo);
        if (!m) { CHECK_MSG(0, "%s: %s", models[k], sl_error_msg()); return; }
        sl_sampler_opts o;
        sl_sampler_opts_default(&o);
        o.kind = SL_SAMPLER_EULER;
        o.steps = 4;
        sl_sampler *sm = sl_sampler_new(&m->sched, &o, 4);
        REQUIRE(sm);
        for (int i = 0; i < 4; i++)
            CHECK_MSG(sm->timesteps[i] == want_euler[k][i], "%s euler t[%d] = %g, want %g", models[k], i, sm->timesteps[i],
                      want_euler[k][i]);
        CHECK_EQ_INT(sl_sampler_spacing(&m->sched, &o), k ? SL_SPACING_LINSPACE : SL_SPACING_LEADING);
        sl_sampler_free(sm);
        o.kind = SL_SAMPLER_DDIM;
        sm = sl_sampler_new(&m->sched, &o, 4);
        REQUIRE(sm);
        CHECK(sm->timesteps[0] == 751 && sm->timesteps[3] == 1);
        sl_sampler_free(sm);
        // an explicit spacing wins over both
        o.kind = SL_SAMPLER_EULER;
        o.spacing = SL_SPACING_TRAILING;
        sm = sl_sampler_new(&m->sched, &o, 4);
        REQUIRE(sm);
        CHECK(sm->timesteps[0] == 999 && sm->timesteps[3] == 249);
        sl_sampler_free(sm);
        sd_model_free(m);
    }
}
