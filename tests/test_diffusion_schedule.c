// Noise schedules: betas / alphas_cumprod / add_noise / v-target against diffusers 0.25.1.
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/diffusion/schedule.h"
#include "engine/core/tensor.h"
#include "tests/test.h"

static size_t count_bit_diffs(const float *a, const float *b, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], 4) != 0;
    return d;
}

TEST(schedule_betas_alphas_cumprod_match_diffusers) {
    sl_schedule s;
    REQUIRE(sl_schedule_load(&s, shared_path("fixtures/sd1_tiny/scheduler")) == 0);
    CHECK_EQ_INT(s.T, 1000);
    CHECK_EQ_INT(s.prediction, SL_PRED_EPSILON);
    CHECK_EQ_INT(s.spacing, SL_SPACING_LEADING);
    CHECK_EQ_INT(s.steps_offset, 1);
    CHECK_EQ_INT(s.set_alpha_to_one, 0);
    st_file *f = st_open(shared_path("fixtures/io/scheduler.safetensors"));
    REQUIRE(f);
    float *betas = st_load_f32(f, "betas", 1, (int64_t[]){1000});
    float *acp = st_load_f32(f, "alphas_cumprod", 1, (int64_t[]){1000});
    REQUIRE(betas && acp);
    check_close("betas (f32, torch)", s.betas, betas, 1000, 0);
    check_close("alphas_cumprod (f32, torch)", s.alphas_cumprod, acp, 1000, 0);
    CHECK_EQ_INT(count_bit_diffs(s.betas, betas, 1000), 0);
    CHECK_EQ_INT(count_bit_diffs(s.alphas_cumprod, acp, 1000), 0);
    // and against the exact double-precision schedule
    const st_entry *e = st_find(f, "alphas_cumprod_f64");
    REQUIRE(e && e->dt == DT_F64);
    double rel = 0;
    for (int i = 0; i < 1000; i++) {
        double a64;   // the mapping need not be 8-byte aligned
        memcpy(&a64, (const char *)e->data + 8 * i, 8);
        rel = fmax(rel, fabs(s.alphas_cumprod[i] - a64) / a64);
    }
    printf("  alphas_cumprod vs f64: max rel %.3g\n", rel);
    CHECK(rel < 1e-5);
    sl_free_aligned(betas);
    sl_free_aligned(acp);
    st_close(f);
    sl_schedule_free(&s);
}

TEST(schedule_add_noise_and_v_target) {
    sl_schedule s;
    REQUIRE(sl_schedule_load(&s, shared_path("fixtures/sd1_tiny/scheduler/scheduler_config.json")) == 0);
    st_file *f = st_open(shared_path("fixtures/io/scheduler.safetensors"));
    REQUIRE(f);
    int64_t sh[4] = {2, 4, 4, 4};
    float *x0 = st_load_f32(f, "add_noise.x0", 4, sh), *noise = st_load_f32(f, "add_noise.noise", 4, sh);
    float *noisy = st_load_f32(f, "add_noise.noisy", 4, sh), *v = st_load_f32(f, "add_noise.v_target", 4, sh);
    REQUIRE(x0 && noise && noisy && v);
    const st_entry *te = st_find(f, "add_noise.t");
    REQUIRE(te && te->dt == DT_I64);
    int64_t t[2];
    memcpy(t, te->data, sizeof t);
    float got[128];
    CHECK_EQ_INT(sl_schedule_add_noise(&s, got, x0, noise, t, 2, 64), 0);
    check_close("add_noise", got, noisy, 128, 1e-6);
    CHECK_EQ_INT(count_bit_diffs(got, noisy, 128), 0);
    CHECK_EQ_INT(sl_schedule_velocity(&s, got, x0, noise, t, 2, 64), 0);
    check_close("v-target", got, v, 128, 1e-6);
    CHECK_EQ_INT(count_bit_diffs(got, v, 128), 0);
    // the training target follows the prediction type
    CHECK_EQ_INT(sl_schedule_target(&s, got, x0, noise, t, 2, 64), 0);
    CHECK(memcmp(got, noise, sizeof got) == 0);
    s.prediction = SL_PRED_V;
    CHECK_EQ_INT(sl_schedule_target(&s, got, x0, noise, t, 2, 64), 0);
    CHECK(memcmp(got, v, sizeof got) == 0);
    // a timestep out of range is an error, not a read past the table
    int64_t bad[2] = {10, 1000};
    CHECK_EQ_INT(sl_schedule_add_noise(&s, got, x0, noise, bad, 2, 64), -1);
    sl_free_aligned(x0);
    sl_free_aligned(noise);
    sl_free_aligned(noisy);
    sl_free_aligned(v);
    st_close(f);
    sl_schedule_free(&s);
}

TEST(schedule_real_model_configs) {
    // SD 1.5 ships a PNDM config without prediction_type / timestep_spacing; SD 2.1 a DDIM one
    // with v_prediction. Both: scaled_linear 0.00085..0.012, steps_offset 1.
    sl_schedule a, b;
    REQUIRE(sl_schedule_load(&a, shared_path("models/sd15")) == 0);
    REQUIRE(sl_schedule_load(&b, shared_path("models/sd21/scheduler")) == 0);
    CHECK_EQ_INT(a.prediction, SL_PRED_EPSILON);
    CHECK_EQ_INT(b.prediction, SL_PRED_V);
    CHECK_EQ_INT(a.spacing, SL_SPACING_DEFAULT);
    CHECK_EQ_INT(a.steps_offset, 1);
    CHECK_EQ_INT(b.set_alpha_to_one, 0);
    CHECK(memcmp(a.alphas_cumprod, b.alphas_cumprod, 1000 * sizeof(float)) == 0);
    CHECK_NEAR(a.betas[0], 0.00085, 1e-9);
    CHECK_NEAR(a.betas[999], 0.012, 1e-8);
    sl_schedule_free(&a);
    sl_schedule_free(&b);
}

TEST(schedule_linear_and_cosine) {
    sl_schedule s;
    REQUIRE(sl_schedule_init(&s, "linear", 1000, 0.0001, 0.02) == 0);
    CHECK(s.betas[0] == 0.0001f);
    CHECK(s.betas[999] == 0.02f);
    // equal steps: the differences agree to f32 rounding
    for (int i = 1; i < 1000; i++) CHECK_NEAR(s.betas[i] - s.betas[i - 1], (0.02 - 0.0001) / 999, 1e-8);
    sl_schedule_free(&s);
    REQUIRE(sl_schedule_init(&s, "squaredcos_cap_v2", 1000, 0, 0) == 0);
    // alpha_bar(t) = cos^2(((t/T) + 0.008) / 1.008 * pi/2) / cos^2(0.008/1.008 * pi/2)
    double f0 = cos(0.008 / 1.008 * M_PI / 2);
    for (int t = 0; t < 990; t += 97) {
        double ab = cos(((t + 1) / 1000.0 + 0.008) / 1.008 * M_PI / 2) / f0;
        CHECK_NEAR(s.alphas_cumprod[t], ab * ab, 2e-5);
    }
    CHECK(s.betas[999] == 0.999f);   // clipped at max_beta
    for (int t = 1; t < 1000; t++) CHECK(s.alphas_cumprod[t] < s.alphas_cumprod[t - 1]);
    sl_schedule_free(&s);
}

TEST(schedule_bad_configs) {
    struct { const char *json, *expect; } cases[] = {
        {"{\"beta_schedule\": \"cubic\"}", "cubic"},
        {"{\"beta_schedule\": \"linear\", \"prediction_type\": \"flow\"}", "prediction_type"},
        {"{\"timestep_spacing\": \"sideways\"}", "timestep_spacing"},
        {"{\"thresholding\": true}", "thresholding"},
        {"{\"rescale_betas_zero_snr\": true}", "rescale_betas_zero_snr"},
        {"{\"num_train_timesteps\": 0}", "num_train_timesteps"},
        {"{\"beta_start\": 2.0}", "beta_start"},
        {"{\"trained_betas\": [0.1, \"x\"]}", "trained_betas"},
        {"{\"steps_offset\": 5000}", "steps_offset"},
        {"{\"beta_schedule\": ", "invalid JSON"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *p = tmp_path("scheduler_config.json");
        FILE *fp = fopen(p, "w");
        REQUIRE(fp);
        fputs(cases[k].json, fp);
        fclose(fp);
        sl_schedule s;
        int rc = sl_schedule_load(&s, p);
        CHECK_MSG(rc == -1, "config %s was accepted", cases[k].json);
        CHECK_MSG(strstr(sl_error_msg(), cases[k].expect) && strstr(sl_error_msg(), "scheduler_config.json"),
                  "config %s: message '%s' should name the file and '%s'", cases[k].json, sl_error_msg(), cases[k].expect);
    }
    sl_schedule s;
    CHECK_EQ_INT(sl_schedule_load(&s, tmp_path("nothing-here")), -1);
    // trained_betas are taken as given
    const char *p = tmp_path("tb.json");
    FILE *fp = fopen(p, "w");
    REQUIRE(fp);
    fputs("{\"trained_betas\": [0.1, 0.2, 0.5]}", fp);
    fclose(fp);
    REQUIRE(sl_schedule_load(&s, p) == 0);
    CHECK_EQ_INT(s.T, 3);
    CHECK_NEAR(s.alphas_cumprod[2], 0.9 * 0.8 * 0.5, 1e-7);
    sl_schedule_free(&s);
}
