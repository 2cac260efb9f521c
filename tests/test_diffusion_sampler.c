// Samplers: trajectories against diffusers 0.25.1 (DDIM, Euler), timestep lists, and
// mathematical properties for the samplers without fixtures (euler_a, dpmpp_2m, heun, karras,
// ddim eta > 0).
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "engine/io/safetensors.h"
#include "engine/diffusion/sampler.h"
#include "engine/diffusion/schedule.h"
#include "engine/core/tensor.h"
#include "tests/test.h"

// int64 tensors in safetensors files need not be 8-byte aligned in the mapping
static int64_t i64_at(const void *p, int i) {
    int64_t v;
    memcpy(&v, (const char *)p + 8 * (size_t)i, 8);
    return v;
}

static sl_schedule load_tiny(void) {
    sl_schedule s;
    if (sl_schedule_load(&s, shared_path("fixtures/sd1_tiny/scheduler")) != 0) {
        fprintf(stderr, "%s\n", sl_error_msg());
        abort();
    }
    return s;
}

static sl_sampler *make(const sl_schedule *s, sl_sampler_kind k, sl_sigmas_kind sg, int steps, sl_spacing sp, int64_t n) {
    sl_sampler_opts o;
    sl_sampler_opts_default(&o);
    o.kind = k;
    o.sigmas = sg;
    o.steps = steps;
    o.spacing = sp;
    sl_sampler *sm = sl_sampler_new(s, &o, n);
    if (!sm) fprintf(stderr, "sampler: %s\n", sl_error_msg());
    return sm;
}

// ---- fixtures ----

// Runs one 20-step trajectory of scheduler.safetensors: `key`.x_init, then step(model_outputs[i])
// compared with samples[i] (and pred_original[i] / scaled_model_inputs[i] when present).
static void run_trajectory(const char *key, sl_sampler_kind kind, sl_prediction pred, sl_spacing sp) {
    sl_schedule s = load_tiny();
    s.prediction = pred;
    st_file *f = st_open(shared_path("fixtures/io/scheduler.safetensors"));
    REQUIRE(f);
    char name[128];
    const int64_t n = 64;
#define LOAD(var, suffix, nd, ...)                                        \
    snprintf(name, sizeof name, "%s.%s", key, suffix);                    \
    float *var = st_find(f, name) ? st_load_f32(f, name, nd, (int64_t[]){__VA_ARGS__}) : NULL
    LOAD(x_init, "x_init", 4, 1, 4, 4, 4);
    LOAD(outs, "model_outputs", 5, 20, 1, 4, 4, 4);
    LOAD(samples, "samples", 5, 20, 1, 4, 4, 4);
    LOAD(pred0, "pred_original", 5, 20, 1, 4, 4, 4);
    LOAD(scaled, "scaled_model_inputs", 5, 20, 1, 4, 4, 4);
    LOAD(sigmas, "sigmas", 1, 21);
    LOAD(ins, "init_noise_sigma", 0, 0);
    LOAD(noise, "noise", 4, 1, 4, 4, 4);
#undef LOAD
    REQUIRE(x_init && outs && samples);
    sl_sampler *sm = make(&s, kind, SL_SIGMAS_NORMAL, 20, sp, n);
    REQUIRE(sm);
    CHECK_EQ_INT(sm->n_evals, 20);
    // timesteps (int64 for DDIM, float32 for Euler)
    snprintf(name, sizeof name, "%s.timesteps", key);
    const st_entry *te = st_find(f, name);
    REQUIRE(te);
    for (int i = 0; i < 20; i++) {
        float f32;
        memcpy(&f32, (const char *)te->data + 4 * i, 4);
        double want = te->dt == DT_I64 ? (double)i64_at(te->data, i) : (double)f32;
        CHECK_MSG(sm->timesteps[i] == (float)want, "%s timestep %d: %.9g, want %.9g", key, i, sm->timesteps[i], want);
    }
    if (sigmas) {
        char label[96];
        snprintf(label, sizeof label, "%s sigmas", key);
        check_close(label, sm->sigmas, sigmas, 21, 0);
    }
    if (ins) {
        printf("  %s init_noise_sigma %.9g want %.9g\n", key, sm->init_noise_sigma, ins[0]);
        CHECK(sm->init_noise_sigma == ins[0]);
    }
    if (noise) {
        // x_init = noise * init_noise_sigma, as the pipeline's prepare_latents
        float x[64];
        for (int j = 0; j < 64; j++) x[j] = noise[j] * sm->init_noise_sigma;
        CHECK(memcmp(x, x_init, sizeof x) == 0);
    }
    float x[64], in[64], x0[64];
    memcpy(x, x_init, sizeof x);
    double worst = 0, worst_in = 0, worst_x0 = 0;
    size_t bitdiff = 0;
    for (int i = 0; i < 20; i++) {
        sl_sampler_scale_model_input(sm, i, in, x);
        if (scaled) worst_in = fmax(worst_in, compare_f32(in, scaled + i * n, n).max_abs);
        REQUIRE(sl_sampler_step(sm, i, outs + i * n, x, x0, NULL) == 0);
        err_stats e = compare_f32(x, samples + i * n, n);
        worst = fmax(worst, e.max_abs);
        for (int j = 0; j < n; j++) bitdiff += memcmp(&x[j], &samples[i * n + j], 4) != 0;
        if (pred0) worst_x0 = fmax(worst_x0, compare_f32(x0, pred0 + i * n, n).max_abs);
    }
    printf("  %s: 20 steps, samples max abs %.3g (%zu of %d values not bit-equal)", key, worst, bitdiff, 20 * 64);
    if (pred0) printf(", pred_original max abs %.3g", worst_x0);
    if (scaled) printf(", scaled_model_inputs max abs %.3g", worst_in);
    printf("\n");
    CHECK(worst <= 1e-5);
    CHECK(worst_x0 <= 1e-5);
    CHECK(worst_in <= 1e-5);
    free(x_init), free(outs), free(samples), free(pred0), free(scaled), free(sigmas), free(ins), free(noise);
    sl_sampler_free(sm);
    st_close(f);
    sl_schedule_free(&s);
}

TEST(sampler_ddim_leading_eps_fixture) { run_trajectory("ddim_leading_eps", SL_SAMPLER_DDIM, SL_PRED_EPSILON, SL_SPACING_DEFAULT); }
TEST(sampler_ddim_leading_v_fixture) { run_trajectory("ddim_leading_v", SL_SAMPLER_DDIM, SL_PRED_V, SL_SPACING_DEFAULT); }
TEST(sampler_ddim_trailing_eps_fixture) { run_trajectory("ddim_trailing_eps", SL_SAMPLER_DDIM, SL_PRED_EPSILON, SL_SPACING_TRAILING); }
TEST(sampler_euler_leading_eps_fixture) { run_trajectory("euler_leading_eps", SL_SAMPLER_EULER, SL_PRED_EPSILON, SL_SPACING_DEFAULT); }
TEST(sampler_euler_linspace_eps_fixture) { run_trajectory("euler_linspace_eps", SL_SAMPLER_EULER, SL_PRED_EPSILON, SL_SPACING_LINSPACE); }

TEST(sampler_pipeline_ddim4_fixture) {
    // the SD1 tiny txt2img run: DDIM leading, 4 steps -> 751, 501, 251, 1; feeding the guided
    // noise predictions reproduces the latents after each step
    sl_schedule s = load_tiny();
    st_file *f = st_open(shared_path("fixtures/io/sd1_pipeline_ddim4.safetensors"));
    REQUIRE(f);
    const st_entry *te = st_find(f, "timesteps");
    REQUIRE(te && te->dt == DT_I64 && te->shape[0] == 4);
    const int64_t n = 4 * 8 * 12;
    float *init = st_load_f32(f, "latents_init", 4, (int64_t[]){1, 4, 8, 12});
    float *eps = st_load_f32(f, "guided_noise_preds", 5, (int64_t[]){4, 1, 4, 8, 12});
    float *lat = st_load_f32(f, "latents", 5, (int64_t[]){4, 1, 4, 8, 12});
    REQUIRE(init && eps && lat);
    sl_sampler *sm = make(&s, SL_SAMPLER_DDIM, SL_SIGMAS_NORMAL, 4, SL_SPACING_DEFAULT, n);
    REQUIRE(sm);
    CHECK_EQ_INT(sm->n_evals, 4);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT((int64_t)sm->timesteps[i], i64_at(te->data, i));
    CHECK_EQ_INT(i64_at(te->data, 0), 751);
    CHECK_EQ_INT(i64_at(te->data, 3), 1);
    float *x = malloc(n * sizeof(float));
    memcpy(x, init, n * sizeof(float));
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        REQUIRE(sl_sampler_step(sm, i, eps + i * n, x, NULL, NULL) == 0);
        worst = fmax(worst, compare_f32(x, lat + i * n, n).max_abs);
    }
    printf("  sd1_pipeline_ddim4 latents: max abs %.3g over 4 steps\n", worst);
    CHECK(worst <= 1e-5);
    free(x);
    sl_free_aligned(init), sl_free_aligned(eps), sl_free_aligned(lat);
    sl_sampler_free(sm);
    st_close(f);
    sl_schedule_free(&s);
}

// ---- timestep lists (values diffusers 0.25 gives for these settings) ----

TEST(sampler_timestep_lists) {
    sl_schedule s = load_tiny();
    struct { sl_sampler_kind k; sl_spacing sp; int steps; int want[21]; } cases[] = {
        {SL_SAMPLER_DDIM, SL_SPACING_LINSPACE, 10, {999, 888, 777, 666, 555, 444, 333, 222, 111, 0}},
        {SL_SAMPLER_DDIM, SL_SPACING_TRAILING, 7, {999, 856, 713, 570, 428, 285, 142}},
        {SL_SAMPLER_DDIM, SL_SPACING_LEADING, 3, {667, 334, 1}},
        {SL_SAMPLER_DPMPP_2M, SL_SPACING_LINSPACE, 20,
         {999, 949, 899, 849, 799, 749, 699, 649, 599, 549, 500, 450, 400, 350, 300, 250, 200, 150, 100, 50}},
        {SL_SAMPLER_DPMPP_2M, SL_SPACING_LEADING, 4, {801, 601, 401, 201}},
        {SL_SAMPLER_DPMPP_2M, SL_SPACING_TRAILING, 4, {999, 749, 499, 249}},
        {SL_SAMPLER_EULER, SL_SPACING_TRAILING, 4, {999, 749, 499, 249}},
        {SL_SAMPLER_EULER_A, SL_SPACING_LEADING, 5, {801, 601, 401, 201, 1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sl_sampler *sm = make(&s, cases[c].k, SL_SIGMAS_NORMAL, cases[c].steps, cases[c].sp, 4);
        REQUIRE(sm);
        CHECK_EQ_INT(sm->n_evals, cases[c].steps);
        for (int i = 0; i < cases[c].steps && i < sm->n_evals; i++)
            CHECK_MSG(sm->timesteps[i] == (float)cases[c].want[i], "%s %s %d steps: t[%d] = %g, want %d",
                      sl_sampler_name(cases[c].k), sl_spacing_name(cases[c].sp), cases[c].steps, i, sm->timesteps[i],
                      cases[c].want[i]);
        sl_sampler_free(sm);
    }
    // the sampler's own default spacing when the config has none: ddim leading, the others linspace
    s.spacing = SL_SPACING_DEFAULT;
    sl_sampler *a = make(&s, SL_SAMPLER_DDIM, SL_SIGMAS_NORMAL, 4, SL_SPACING_DEFAULT, 4);
    sl_sampler *b = make(&s, SL_SAMPLER_EULER, SL_SIGMAS_NORMAL, 4, SL_SPACING_DEFAULT, 4);
    REQUIRE(a && b);
    CHECK(a->timesteps[0] == 751.0f);
    CHECK(b->timesteps[0] == 999.0f && b->timesteps[3] == 0.0f && b->timesteps[1] == 666.0f);
    CHECK(b->init_noise_sigma == b->sigmas[0]);   // linspace: no sqrt(sigma^2 + 1)
    sl_sampler_free(a);
    sl_sampler_free(b);
    sl_schedule_free(&s);
}

TEST(sampler_bad_options) {
    sl_schedule s = load_tiny();
    sl_sampler_opts o;
    sl_sampler_opts_default(&o);
    o.sigmas = SL_SIGMAS_KARRAS;
    CHECK(sl_sampler_new(&s, &o, 16) == NULL);
    CHECK(strstr(sl_error_msg(), "karras") != NULL);
    sl_sampler_opts_default(&o);
    o.steps = 0;
    CHECK(sl_sampler_new(&s, &o, 16) == NULL);
    o.steps = 1001;
    CHECK(sl_sampler_new(&s, &o, 16) == NULL);
    sl_sampler_opts_default(&o);
    o.kind = SL_SAMPLER_EULER;
    o.eta = 0.5f;
    CHECK(sl_sampler_new(&s, &o, 16) == NULL);
    sl_sampler_kind k;
    CHECK_EQ_INT(sl_sampler_parse("dpmpp_2m", &k), 0);
    CHECK_EQ_INT(k, SL_SAMPLER_DPMPP_2M);
    CHECK_EQ_INT(sl_sampler_parse("plms", &k), -1);
    CHECK(strstr(sl_error_msg(), "euler_a") != NULL);
    sl_sigmas_kind g;
    CHECK_EQ_INT(sl_sigmas_parse("karras", &g), 0);
    CHECK_EQ_INT(sl_sigmas_parse("exponential", &g), -1);
    // steps out of order are refused; euler_a without a generator too
    sl_sampler *sm = make(&s, SL_SAMPLER_EULER_A, SL_SIGMAS_NORMAL, 5, SL_SPACING_DEFAULT, 4);
    REQUIRE(sm);
    float x[4] = {0}, m[4] = {0};
    CHECK_EQ_INT(sl_sampler_step(sm, 0, m, x, NULL, NULL), -1);
    sl_rng r;
    sl_rng_seed(&r, 1);
    CHECK_EQ_INT(sl_sampler_step(sm, 0, m, x, NULL, &r), 0);
    CHECK_EQ_INT(sl_sampler_step(sm, 2, m, x, NULL, &r), -1);
    CHECK_EQ_INT(sl_sampler_step(sm, 9, m, x, NULL, &r), -1);
    sl_sampler_free(sm);
    sl_schedule_free(&s);
}

// ---- properties ----

// The "true noise" oracle: the model output that makes x0 the exact prediction at evaluation i.
// For sigma-parameterised samplers x = x0 + sigma * eps (euler family, scaled), for ddim and
// dpm x = sqrt(acp) x0 + sqrt(1 - acp) eps. Returned for prediction epsilon or v.
static void oracle(const sl_sampler *sm, int i, const float *x, const float *x0, float *out, sl_prediction pred) {
    double a, b;   // x = a*x0 + b*eps in the sampler's own parameterisation
    if (sm->kind == SL_SAMPLER_DDIM) {
        double acp = sm->acp[(int)sm->timesteps[i]];
        a = sqrt(acp), b = sqrt(1 - acp);
    } else if (sm->kind == SL_SAMPLER_DPMPP_2M) {
        double sg = sm->sigmas[i];
        a = 1 / sqrt(sg * sg + 1), b = sg * a;
    } else {
        a = 1, b = sm->sigmas[i];
    }
    for (int64_t j = 0; j < sm->n; j++) {
        double eps = (x[j] - a * x0[j]) / b;
        if (pred == SL_PRED_EPSILON) out[j] = (float)eps;
        else {
            // v = alpha*eps - sigma_vp*x0 in the variance-preserving scale
            double s = b / a;   // k-diffusion sigma
            double al = 1 / sqrt(s * s + 1), sv = s * al;
            out[j] = (float)(al * eps - sv * x0[j]);
        }
    }
}

static double run_oracle(sl_schedule *s, sl_sampler_kind k, sl_sigmas_kind sg, int steps, sl_prediction pred, int fsig,
                         float *last_x0_err) {
    const int64_t n = 256;
    s->prediction = pred;
    sl_sampler_opts o;
    sl_sampler_opts_default(&o);
    o.kind = k;
    o.sigmas = sg;
    o.steps = steps;
    o.final_sigma = fsig;
    sl_sampler *sm = sl_sampler_new(s, &o, n);
    if (!sm) { fprintf(stderr, "%s\n", sl_error_msg()); return 1e9; }
    float *x0 = malloc(n * 4), *x = malloc(n * 4), *m = malloc(n * 4), *px0 = malloc(n * 4), *in = malloc(n * 4);
    fill_uniform(x0, n, 3, -1.5f, 1.5f);
    sl_rng r;
    sl_rng_seed(&r, 5);
    sl_sampler_init_noise(sm, &r, x);
    // start on the schedule: x = x0 + noise scaled to the first noise level
    float *nz = malloc(n * 4);
    memcpy(nz, x, n * 4);
    for (int64_t j = 0; j < n; j++) nz[j] /= sm->init_noise_sigma;
    sl_sampler_add_noise(sm, 0, x, x0, nz);
    double x0err = 0;
    for (int i = 0; i < sm->n_evals; i++) {
        sl_sampler_scale_model_input(sm, i, in, x);
        oracle(sm, i, x, x0, m, pred);
        if (sl_sampler_step(sm, i, m, x, px0, &r) != 0) { fprintf(stderr, "%s\n", sl_error_msg()); return 1e9; }
        x0err = fmax(x0err, compare_f32(px0, x0, n).max_abs);
    }
    double err = compare_f32(x, x0, n).max_abs;
    if (last_x0_err) *last_x0_err = (float)x0err;
    free(x0), free(x), free(m), free(px0), free(in), free(nz);
    sl_sampler_free(sm);
    return err;
}

TEST(sampler_oracle_recovers_x0) {
    // with the exact noise as model output every deterministic sampler lands on x0 (their last
    // sigma is 0), and euler_a too (its last step has no noise); x0 predictions stay exact
    sl_schedule s = load_tiny();
    struct { sl_sampler_kind k; sl_sigmas_kind sg; int steps; sl_prediction pred; } cases[] = {
        {SL_SAMPLER_EULER, SL_SIGMAS_NORMAL, 20, SL_PRED_EPSILON}, {SL_SAMPLER_EULER, SL_SIGMAS_KARRAS, 12, SL_PRED_V},
        {SL_SAMPLER_EULER_A, SL_SIGMAS_NORMAL, 15, SL_PRED_EPSILON}, {SL_SAMPLER_EULER_A, SL_SIGMAS_KARRAS, 9, SL_PRED_V},
        {SL_SAMPLER_HEUN, SL_SIGMAS_NORMAL, 10, SL_PRED_EPSILON}, {SL_SAMPLER_HEUN, SL_SIGMAS_KARRAS, 7, SL_PRED_V},
        {SL_SAMPLER_DPMPP_2M, SL_SIGMAS_NORMAL, 20, SL_PRED_EPSILON}, {SL_SAMPLER_DPMPP_2M, SL_SIGMAS_KARRAS, 8, SL_PRED_V},
        {SL_SAMPLER_DPMPP_2M, SL_SIGMAS_NORMAL, 5, SL_PRED_V},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float x0err = 0;
        double err = run_oracle(&s, cases[c].k, cases[c].sg, cases[c].steps, cases[c].pred, -1, &x0err);
        printf("  %-8s %-6s %2d steps %-12s final |x - x0| %.3g, x0 predictions %.3g\n", sl_sampler_name(cases[c].k),
               sl_sigmas_name(cases[c].sg), cases[c].steps, sl_prediction_name(cases[c].pred), err, x0err);
        CHECK_MSG(err < 2e-4, "%s %s: final error %g", sl_sampler_name(cases[c].k), sl_sigmas_name(cases[c].sg), err);
        CHECK(x0err < 2e-4);
    }
    // ddim: the x0 predictions are exact; the final sample is the t=0 level, or x0 itself
    // with set_alpha_to_one
    float x0err = 0;
    double err = run_oracle(&s, SL_SAMPLER_DDIM, SL_SIGMAS_NORMAL, 10, SL_PRED_EPSILON, -1, &x0err);
    CHECK(x0err < 2e-4);
    CHECK(err > 1e-3);   // sqrt(acp[0]) x0 + sqrt(1 - acp[0]) eps is not x0
    s.set_alpha_to_one = 1;
    err = run_oracle(&s, SL_SAMPLER_DDIM, SL_SIGMAS_NORMAL, 10, SL_PRED_V, -1, &x0err);
    printf("  ddim set_alpha_to_one, v: final |x - x0| %.3g\n", err);
    CHECK(err < 2e-4);
    CHECK(x0err < 2e-4);
    // dpmpp_2m with the 0.25 final sigma (sigma_min) stops just short of x0
    err = run_oracle(&s, SL_SAMPLER_DPMPP_2M, SL_SIGMAS_NORMAL, 20, SL_PRED_EPSILON, 0, NULL);
    printf("  dpmpp_2m sigma_min final: |x - x0| %.3g\n", err);
    CHECK(err > 1e-3 && err < 0.2);
    // ... because its schedule ends on sigma(t=0) instead of 0, and so does the config's choice
    sl_sampler_opts o;
    sl_sampler_opts_default(&o);
    o.kind = SL_SAMPLER_DPMPP_2M;
    o.steps = 6;
    o.final_sigma = 0;
    sl_sampler *sm = sl_sampler_new(&s, &o, 4);
    REQUIRE(sm);
    CHECK(sm->sigmas[6] == sqrtf((1.0f - s.alphas_cumprod[0]) / s.alphas_cumprod[0]));
    sl_sampler_free(sm);
    o.final_sigma = -1;
    s.final_sigmas_type = 0;
    sm = sl_sampler_new(&s, &o, 4);
    REQUIRE(sm);
    CHECK(sm->sigmas[6] > 0.02f);
    sl_sampler_free(sm);
    s.final_sigmas_type = -1;   // not in the config: zero, as current diffusers
    sm = sl_sampler_new(&s, &o, 4);
    REQUIRE(sm);
    CHECK(sm->sigmas[6] == 0.0f);
    CHECK(sm->init_noise_sigma == 1.0f);
    sl_sampler_free(sm);
    sl_schedule_free(&s);
}

TEST(sampler_karras_sigmas) {
    sl_schedule s = load_tiny();
    s.spacing = SL_SPACING_DEFAULT;
    sl_sampler_kind kinds[] = {SL_SAMPLER_EULER, SL_SAMPLER_DPMPP_2M, SL_SAMPLER_HEUN};
    const float sig_max = sqrtf((1.0f - s.alphas_cumprod[999]) / s.alphas_cumprod[999]);
    const float sig_min = sqrtf((1.0f - s.alphas_cumprod[0]) / s.alphas_cumprod[0]);
    for (int k = 0; k < 3; k++) {
        const int steps = 12;
        sl_sampler *sm = make(&s, kinds[k], SL_SIGMAS_KARRAS, steps, SL_SPACING_DEFAULT, 4);
        REQUIRE(sm);
        int stride = kinds[k] == SL_SAMPLER_HEUN ? 2 : 1;
        float first = sm->sigmas[0], last = sm->sigmas[sm->n_evals - 1];
        // endpoints: the largest and smallest sigma of the (linspace) training range
        CHECK_NEAR(first, sig_max, 1e-5 * sig_max);
        CHECK_NEAR(last, sig_min, 1e-5);
        // sigma^(1/rho) is evenly spaced: second differences vanish
        double r[64];
        for (int i = 0; i < steps; i++) r[i] = pow(sm->sigmas[i == 0 ? 0 : (i - 1) * stride + 1], 1.0 / 7.0);
        for (int i = 1; i + 1 < steps; i++) CHECK_NEAR(r[i + 1] - 2 * r[i] + r[i - 1], 0, 1e-6);
        for (int i = 1; i < steps; i++) CHECK(r[i] < r[i - 1]);
        // the timesteps decrease and map back to sigma
        for (int i = 1; i < sm->n_evals; i++) CHECK(sm->timesteps[i] <= sm->timesteps[i - 1]);
        CHECK_NEAR(sm->timesteps[0], 999, 1e-3);
        CHECK(sm->timesteps[sm->n_evals - 1] >= 0 && sm->timesteps[sm->n_evals - 1] < 1.0f);
        for (int i = 0; i < sm->n_evals; i++) {
            float t = sm->timesteps[i];
            int j = (int)t;
            double w = t - j;
            double sj = sqrt((1.0 - s.alphas_cumprod[j]) / s.alphas_cumprod[j]);
            double sj1 = j < 999 ? sqrt((1.0 - s.alphas_cumprod[j + 1]) / s.alphas_cumprod[j + 1]) : sj;
            double back = exp((1 - w) * log(sj) + w * log(sj1));
            // dpm rounds its timesteps to integers: half a step of log-sigma at most
            double tol = kinds[k] == SL_SAMPLER_DPMPP_2M ? 0.06 : 1e-4;
            CHECK_MSG(fabs(back / sm->sigmas[i] - 1) < tol, "%s: t %g maps to sigma %g, karras sigma %g",
                      sl_sampler_name(kinds[k]), t, back, sm->sigmas[i]);
        }
        CHECK(sm->sigmas[sm->n_evals] == 0.0f);
        if (kinds[k] == SL_SAMPLER_EULER) CHECK(sm->init_noise_sigma == sm->sigmas[0]);
        sl_sampler_free(sm);
    }
    // normal vs karras differ in the middle
    sl_sampler *a = make(&s, SL_SAMPLER_EULER, SL_SIGMAS_NORMAL, 12, SL_SPACING_DEFAULT, 4);
    sl_sampler *b = make(&s, SL_SAMPLER_EULER, SL_SIGMAS_KARRAS, 12, SL_SPACING_DEFAULT, 4);
    REQUIRE(a && b);
    CHECK(fabsf(a->sigmas[6] - b->sigmas[6]) > 0.1f);
    sl_sampler_free(a);
    sl_sampler_free(b);
    sl_schedule_free(&s);
}

TEST(sampler_dpmpp_2m_update_rule) {
    // step 0 is the first-order update; step 1 the 2M midpoint update
    //   x_t = (s_t/s_s) x - a_t (e^-h - 1) [(1 + 1/(2r)) D0 - 1/(2r) D_-1],  r = h_prev / h
    // (DPM-Solver++ paper, eq. for 2M), recomputed here in double from the sigmas
    sl_schedule s = load_tiny();
    const int64_t n = 64;
    sl_sampler *sm = make(&s, SL_SAMPLER_DPMPP_2M, SL_SIGMAS_NORMAL, 10, SL_SPACING_DEFAULT, n);
    REQUIRE(sm);
    float x[64], m0[64], m1[64], m2[64], px0[64];
    fill_uniform(x, n, 1, -2, 2);
    fill_uniform(m0, n, 2, -1, 1);
    fill_uniform(m1, n, 3, -1, 1);
    fill_uniform(m2, n, 4, -1, 1);
    double xd[64], D_prev[64];
    for (int j = 0; j < n; j++) xd[j] = x[j];
    const float *mo[3] = {m0, m1, m2};
    double h_prev = 0;
    double worst = 0;
    for (int i = 0; i < 3; i++) {
        double ss = sm->sigmas[i], st = sm->sigmas[i + 1];
        double as = 1 / sqrt(ss * ss + 1), vs = ss * as, at = 1 / sqrt(st * st + 1), vt = st * at;
        double h = log(at / vt) - log(as / vs);
        double r = h_prev / h;
        for (int j = 0; j < n; j++) {
            double D0 = (xd[j] - vs * mo[i][j]) / as;   // epsilon -> x0
            double D = i == 0 ? D0 : (1 + 1 / (2 * r)) * D0 - 1 / (2 * r) * D_prev[j];
            xd[j] = (vt / vs) * xd[j] - at * (exp(-h) - 1) * D;
            D_prev[j] = D0;
        }
        h_prev = h;
        REQUIRE(sl_sampler_step(sm, i, mo[i], x, px0, NULL) == 0);
        double e = 0;
        for (int j = 0; j < n; j++) e = fmax(e, fabs(x[j] - xd[j]) / fmax(1.0, fabs(xd[j])));
        printf("  dpmpp_2m step %d (%s order): max rel error vs double formula %.3g\n", i, i == 0 ? "first" : "second", e);
        worst = fmax(worst, e);
    }
    CHECK(worst < 2e-5);
    sl_sampler_free(sm);
    // the last step of a short run is first order (lower_order_final) and lands on x0 when sigma_t = 0
    sm = make(&s, SL_SAMPLER_DPMPP_2M, SL_SIGMAS_NORMAL, 3, SL_SPACING_DEFAULT, n);
    REQUIRE(sm);
    for (int i = 0; i < 3; i++) REQUIRE(sl_sampler_step(sm, i, mo[i], x, px0, NULL) == 0);
    CHECK(sm->sigmas[3] == 0.0f);
    CHECK(memcmp(x, px0, sizeof x) == 0);
    sl_sampler_free(sm);
    sl_schedule_free(&s);
}

TEST(sampler_heun_two_evaluations) {
    // heun: [t0, t1, t1, t2, t2, ...]; a pair (first order, then the trapezoid correction)
    // recomputed here from the definition
    sl_schedule s = load_tiny();
    const int64_t n = 32;
    sl_sampler *sm = make(&s, SL_SAMPLER_HEUN, SL_SIGMAS_NORMAL, 6, SL_SPACING_LINSPACE, n);
    REQUIRE(sm);
    CHECK_EQ_INT(sm->n_evals, 11);
    for (int i = 1; i < 11; i += 2) {
        CHECK(sm->timesteps[i] == sm->timesteps[i + 1]);
        CHECK(sm->sigmas[i] == sm->sigmas[i + 1]);
    }
    CHECK(sm->timesteps[0] == 999.0f && sm->sigmas[11] == 0.0f);
    float x[32], ma[32], mb[32], in[32];
    fill_uniform(x, n, 9, -3, 3);
    fill_uniform(ma, n, 10, -1, 1);
    fill_uniform(mb, n, 11, -1, 1);
    double s0 = sm->sigmas[0], s1 = sm->sigmas[1];
    double want[32];
    for (int j = 0; j < n; j++) {
        double d0 = ma[j];                       // epsilon: (x - (x - s0*eps)) / s0
        double x1 = x[j] + d0 * (s1 - s0);
        double d1 = (x1 - (x1 - s1 * mb[j])) / s1;
        want[j] = x[j] + (d0 + d1) / 2 * (s1 - s0);
    }
    sl_sampler_scale_model_input(sm, 1, in, x);   // just exercising the index
    REQUIRE(sl_sampler_step(sm, 0, ma, x, NULL, NULL) == 0);
    // the second evaluation sees the Euler estimate at sigma_1, scaled by sqrt(s1^2 + 1)
    sl_sampler_scale_model_input(sm, 1, in, x);
    CHECK_NEAR(in[0], x[0] / sqrt(s1 * s1 + 1), 1e-6);
    REQUIRE(sl_sampler_step(sm, 1, mb, x, NULL, NULL) == 0);
    double e = 0;
    for (int j = 0; j < n; j++) e = fmax(e, fabs(x[j] - want[j]));
    printf("  heun pair vs definition: max abs %.3g\n", e);
    CHECK(e < 1e-5);
    // out-of-parity use is refused: a fresh sampler cannot start on a second-order evaluation
    sl_sampler *h2 = make(&s, SL_SAMPLER_HEUN, SL_SIGMAS_NORMAL, 6, SL_SPACING_LINSPACE, n);
    REQUIRE(h2);
    CHECK_EQ_INT(sl_sampler_step(h2, 1, ma, x, NULL, NULL), -1);
    sl_sampler_free(h2);
    sl_sampler_free(sm);
    sl_schedule_free(&s);
}

TEST(sampler_ddim_eta_noise) {
    // eta > 0: x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - std^2) eps + std * noise with
    // std = eta * sqrt((1 - a_prev)/(1 - a_t) * (1 - a_t/a_prev)); with eps = 0 and x = 0 the
    // step leaves exactly std * noise, noise drawn from the generator
    sl_schedule s = load_tiny();
    const int64_t n = 100;
    sl_sampler_opts o;
    sl_sampler_opts_default(&o);
    o.steps = 10;
    o.eta = 1.0f;
    sl_sampler *sm = sl_sampler_new(&s, &o, n);
    REQUIRE(sm);
    float x[100] = {0}, m[100] = {0}, noise[100];
    sl_rng r, r2;
    sl_rng_seed(&r, 77);
    sl_rng_seed(&r2, 77);
    REQUIRE(sl_sampler_step(sm, 0, m, x, NULL, &r) == 0);
    sl_rng_randn(&r2, noise, n);
    int t = (int)sm->timesteps[0], tp = t - 100;
    double at = s.alphas_cumprod[t], ap = s.alphas_cumprod[tp];
    double sd = sqrt((1 - ap) / (1 - at) * (1 - at / ap));
    double e = 0;
    for (int j = 0; j < n; j++) e = fmax(e, fabs(x[j] - sd * noise[j]));
    printf("  ddim eta=1 std %.6f, max abs error %.3g\n", sd, e);
    CHECK(e < 1e-6);
    CHECK(memcmp(&r, &r2, sizeof r) == 0);
    // the same run with eta = 0 draws nothing and gives 0
    sl_sampler_free(sm);
    o.eta = 0;
    sm = sl_sampler_new(&s, &o, n);
    REQUIRE(sm);
    memset(x, 0, sizeof x);
    REQUIRE(sl_sampler_step(sm, 0, m, x, NULL, NULL) == 0);
    for (int j = 0; j < n; j++) CHECK(x[j] == 0.0f);
    sl_sampler_free(sm);
    sl_schedule_free(&s);
}

TEST(sampler_ancestral_noise) {
    // euler_a with a model that predicts x0 = x (epsilon 0): each step only adds sigma_up * noise,
    // noise drawn from the generator after the deterministic part
    sl_schedule s = load_tiny();
    const int64_t n = 50;
    sl_sampler *sm = make(&s, SL_SAMPLER_EULER_A, SL_SIGMAS_NORMAL, 8, SL_SPACING_DEFAULT, n);
    REQUIRE(sm);
    float x[50], x_start[50], m[50] = {0}, noise[50];
    fill_uniform(x, n, 4, -1, 1);
    memcpy(x_start, x, sizeof x);
    sl_rng r, r2;
    sl_rng_seed(&r, 3);
    sl_rng_seed(&r2, 3);
    REQUIRE(sl_sampler_step(sm, 0, m, x, NULL, &r) == 0);
    double sf = sm->sigmas[0], st = sm->sigmas[1];
    double up = sqrt(st * st * (sf * sf - st * st) / (sf * sf));
    sl_rng_randn(&r2, noise, n);
    double e = 0;
    for (int j = 0; j < n; j++) e = fmax(e, fabs(x[j] - (x_start[j] + up * noise[j])));
    printf("  euler_a sigma_up %.5f, max abs error %.3g\n", up, e);
    CHECK(e < 1e-5);
    CHECK(up > 0.1);
    sl_sampler_free(sm);
    // euler draws (and discards) one noise tensor per step as diffusers does
    sm = make(&s, SL_SAMPLER_EULER, SL_SIGMAS_NORMAL, 3, SL_SPACING_DEFAULT, n);
    REQUIRE(sm);
    sl_rng_seed(&r, 3);
    sl_rng_seed(&r2, 3);
    for (int i = 0; i < 3; i++) REQUIRE(sl_sampler_step(sm, i, m, x, NULL, &r) == 0);
    for (int i = 0; i < 3; i++) sl_rng_randn(&r2, noise, n);
    CHECK(memcmp(&r, &r2, sizeof r) == 0);
    sl_sampler_free(sm);
    sl_schedule_free(&s);
}
