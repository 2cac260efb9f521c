// Hardening: no silent nan. Weights are checked finite once, at load (st_load_f32 and row loads,
// so UNet, VAE and text encoder loads), naming the file and the tensor; adapter tensors too;
// computed tensors are checked before a merge writes them; fast_expf keeps nan without UB.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/adapters/adapter_set.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/io/safetensors.h"
#include "engine/io/weights.h"
#include "engine/kernels/fast_exp.h"
#include "engine/train/step.h"
#include "pipeline/denoise.h"
#include "pipeline/model_writer.h"
#include "unet/unet.h"
#include "tests/test.h"

TEST(hardening_first_nonfinite) {
    enum { N = 10000 };
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)i - 5000.0f;
    CHECK_EQ_INT((int)f32_first_nonfinite(x, N), -1);
    CHECK_EQ_INT((int)f32_first_nonfinite(x, 0), -1);
    x[7003] = INFINITY;
    x[9000] = NAN;
    CHECK_EQ_INT((int)f32_first_nonfinite(x, N), 7003);
    x[7003] = -INFINITY;
    CHECK_EQ_INT((int)f32_first_nonfinite(x, 7003), -1);   // the end is exclusive
    x[0] = NAN;
    CHECK_EQ_INT((int)f32_first_nonfinite(x, N), 0);
    x[0] = 3.4e38f;   // the largest floats are finite
    CHECK_EQ_INT((int)f32_first_nonfinite(x, 7000), -1);
}

// f32 "good" (finite), f32 "w_nan" (nan at 5), f16 "w_inf" (inf at 2), f16 "rows" (row 3 holds inf)
static const char *weights_file(void) {
    const char *path = tmp_path("w.safetensors");
    static float good[8] = {1, 2, 3, 4, 5, 6, 7, 8}, bad[8] = {1, 2, 3, 4, 5, 0, 7, 8};
    bad[5] = NAN;
    static uint16_t h[8] = {0x3c00, 0x3c00, 0x7c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00};
    static uint16_t rows[4 * 2] = {0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0xfc00, 0x3c00};
    st_writer *w = st_writer_new();
    st_writer_add(w, "good", DT_F32, 2, (int64_t[]){2, 4}, good);
    st_writer_add(w, "w_nan", DT_F32, 2, (int64_t[]){2, 4}, bad);
    st_writer_add(w, "w_inf", DT_F16, 1, (int64_t[]){8}, h);
    st_writer_add(w, "rows", DT_F16, 2, (int64_t[]){4, 2}, rows);
    if (st_writer_save(w, path) != 0) path = NULL;
    st_writer_free(w);
    return path;
}

TEST(hardening_weights_finite_at_load) {
    const char *path = weights_file();
    REQUIRE(path);
    st_file *f = st_open(path);
    REQUIRE(f);
    float *x = st_load_f32(f, "good", -1, NULL);
    CHECK(x && x[7] == 8.0f);
    sl_free_aligned(x);
    CHECK(!st_load_f32(f, "w_nan", -1, NULL));
    CHECK_MSG(strstr(sl_error_msg(), "w.safetensors: tensor 'w_nan' holds a non-finite value (nan at index 5)"), "%s",
              sl_error_msg());
    CHECK(!st_load_f32(f, "w_inf", -1, NULL));
    CHECK_MSG(strstr(sl_error_msg(), "tensor 'w_inf' holds a non-finite value (inf at index 2)"), "%s", sl_error_msg());
    // the model loaders' path (weights_load, and row blocks of fused tensors)
    weight_loader wl = {.file = f, .prefix = ""};
    CHECK(!weights_load(&wl, "w_nan", 2, (int64_t[]){2, 4}));
    CHECK(strstr(sl_error_msg(), "'w_nan'") != NULL);
    x = weights_load_rows(&wl, "rows", 0, 3, 2);   // rows 0..2 are finite
    CHECK_MSG(x && x[5] == 1.0f, "%s", sl_error_msg());
    sl_free_aligned(x);
    CHECK(!weights_load_rows(&wl, "rows", 2, 2, 2));
    CHECK_MSG(strstr(sl_error_msg(), "tensor 'rows' holds a non-finite value (-inf at index 2)"), "%s", sl_error_msg());
    st_close(f);
}

TEST(hardening_adapter_tensor_finite) {
    const char *path = tmp_path("a.safetensors");
    float A[8] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
    A[6] = NAN;
    st_writer *w = st_writer_new();
    st_writer_add(w, "unet.x.singlora.A", DT_F32, 2, (int64_t[]){4, 2}, A);
    const char *meta[][2] = {{"singlora.format", "1"}, {"singlora.method", "singlora"}, {"singlora.rank", "2"},
                             {"singlora.alpha", "2"}, {"singlora.ramp_steps", "0"}, {"singlora.step", "0"},
                             {"singlora.init", "kaiming"}, {"singlora.targets", "x"}, {"singlora.base_model", "0"}};
    for (size_t i = 0; i < sizeof meta / sizeof *meta; i++) st_writer_meta(w, meta[i][0], meta[i][1]);
    REQUIRE(st_writer_save(w, path) == 0);
    st_writer_free(w);
    CHECK(!adapter_set_load(path));
    CHECK_MSG(strstr(sl_error_msg(), "a.safetensors: tensor 'unet.x.singlora.A' holds a non-finite value (nan at index 6)"),
              "%s", sl_error_msg());
}

TEST(hardening_merge_writes_no_nonfinite) {
    model_writer *w = mw_new(1, DT_F32);
    float *x = sl_alloc_f32(4);
    x[0] = 1, x[1] = NAN, x[2] = 3, x[3] = 4;
    CHECK(mw_add_f32(w, "t_nan", DT_F32, 1, (int64_t[]){4}, x) == -1);
    CHECK_MSG(strstr(sl_error_msg(), "'t_nan' holds a non-finite value (nan at index 1): not written"), "%s", sl_error_msg());
    // finite in f32, but F16 would round it to inf
    x = sl_alloc_f32(4);
    x[0] = 1, x[1] = 2, x[2] = 70000, x[3] = 4;
    CHECK(mw_add_f32(w, "t_big", DT_F16, 1, (int64_t[]){4}, x) == -1);
    CHECK_MSG(strstr(sl_error_msg(), "'t_big': 70000 at index 2 is beyond F16's range"), "%s", sl_error_msg());
    x = sl_alloc_f32(4);
    x[0] = 1, x[1] = 2, x[2] = 65504, x[3] = -65504;
    CHECK(mw_add_f32(w, "t_ok", DT_F16, 1, (int64_t[]){4}, x) == 0);
    mw_free(w);
}

TEST(hardening_train_check_finite) {
    CHECK(train_check_finite(12, "loss", 0.25) == 0);
    CHECK(train_check_finite(12, "loss", NAN) == -1);
    CHECK_MSG(strstr(sl_error_msg(), "step 12: the loss is nan; stopping before the update"), "%s", sl_error_msg());
    CHECK(train_check_finite(3, "gradient norm", INFINITY) == -1);
    CHECK_MSG(strstr(sl_error_msg(), "step 3: the gradient norm is inf"), "%s", sl_error_msg());
}

TEST(hardening_fast_exp_nonfinite) {
    volatile float nan = NAN, inf = INFINITY;   // volatile: computed at run time, as in a kernel
    CHECK(isnan(fast_expf(nan)));
    CHECK(isnan(fast_expf(-nan)));
    CHECK(isfinite(fast_expf(inf)) && fast_expf(inf) > 1e38f);
    CHECK(fast_expf(-inf) >= 0 && fast_expf(-inf) < 1e-37f);
    CHECK_NEAR(fast_expf(1.0f), 2.718281828, 1e-6);
}

// latents that turn nan/inf stop the sampler at that step instead of decoding a black image
TEST(hardening_denoise_nonfinite_latents) {
    const char *dir = shared_path("fixtures/sd1_tiny");
    sd_model m = {.unet = unet_load(dir, NULL, NULL)};
    REQUIRE(m.unet);
    REQUIRE(sl_schedule_load(&m.sched, dir) == 0);
    const int h = 8, w = 8, L = 4, D = m.unet->cfg.cross_attention_dim;
    const int64_t n = (int64_t)m.unet->cfg.in_channels * h * w;
    float *cond = sl_zeros_f32((int64_t)L * D), *lat = sl_alloc_f32(n);
    sd_denoise_opts o = {.cfg = 1.0f};
    sl_sampler_opts_default(&o.sampler);
    o.sampler.steps = 3;
    sl_rng rng;
    sl_rng_seed(&rng, 1);
    fill_uniform(lat, (size_t)n, 1, -1, 1);
    CHECK_MSG(sd_denoise(&m, cond, NULL, L, lat, NULL, h, w, &o, &rng) == 0, "%s", sl_error_msg());   // finite: runs
    m.unet->conv_in_b[0] = INFINITY;   // (a load refuses it: set here, it stands in for an overflow)
    fill_uniform(lat, (size_t)n, 1, -1, 1);
    CHECK(sd_denoise(&m, cond, NULL, L, lat, NULL, h, w, &o, &rng) == -1);
    CHECK_MSG(strstr(sl_error_msg(), "sampling step 1 of 3: the latents became non-finite"), "%s", sl_error_msg());
    sl_free_aligned(cond);
    sl_free_aligned(lat);
    unet_free(m.unet);
    sl_schedule_free(&m.sched);
}
