// The generation pipeline end to end on the tiny SD 1.x model: `forward txt2img` against
// diffusers' StableDiffusionPipeline (DDIM leading, 4 steps, CFG 7.5): latents after each step
// and the decoded image.
#include <stdlib.h>
#include <string.h>

#include "engine/core/bf16_weights.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/io/safetensors.h"
#include "engine/kernels/gemm.h"
#include "pipeline/generate.h"
#include "tests/test.h"

TEST(txt2img_ddim4_matches_diffusers) {
    const char *out = tmp_path("t2i.safetensors");
    char log[4096];
    int rc = run_cmd(log, sizeof log, "%s forward txt2img --model %s --in %s --out %s --sampler ddim --steps 4 --cfg 7.5",
                     singlora_bin(), shared_path("fixtures/sd1_tiny"),
                     shared_path("fixtures/io/sd1_pipeline_ddim4.safetensors"), out);
    CHECK_MSG(rc == 0, "forward txt2img failed: %s", log);
    st_file *ref = st_open(shared_path("fixtures/io/sd1_pipeline_ddim4.safetensors")), *got = st_open(out);
    REQUIRE(ref && got);
    const st_entry *rl = st_find(ref, "latents"), *gl = st_find(got, "latents");
    const st_entry *ri = st_find(ref, "image"), *gi = st_find(got, "image");
    REQUIRE(rl && gl && ri && gi);
    REQUIRE(shape_numel(rl->ndim, rl->shape) == shape_numel(gl->ndim, gl->shape));
    int64_t per = shape_numel(rl->ndim - 1, rl->shape + 1);
    for (int s = 0; s < rl->shape[0]; s++) {
        char label[64];
        snprintf(label, sizeof label, "latents after step %d", s + 1);
        check_close(label, (const float *)gl->data + s * per, (const float *)rl->data + s * per, (size_t)per, 1e-4);
    }
    REQUIRE(shape_numel(ri->ndim, ri->shape) == shape_numel(gi->ndim, gi->shape));
    check_close("decoded image", gi->data, ri->data, (size_t)shape_numel(ri->ndim, ri->shape), 1e-4);
    st_close(ref);
    st_close(got);
}

// --precision bf16 with every frozen weight held in bf16 as it loads (text encoder, UNet and VAE:
// sd_load_opts.hold_bf16, what `sample` does): the image is bit for bit the one from f32 weights,
// and the held bytes are half the f32 ones.
TEST(txt2img_held_bf16_weights_identical) {
    if (!gemm_bf16_supported()) {
        fprintf(stderr, "    skipped: this CPU has no AVX512_BF16\n");
        return;
    }
    REQUIRE(gemm_set_precision(GEMM_BF16) == 0);
    float *img[2] = {NULL, NULL};
    int64_t held_bytes = 0, npx = 0;
    for (int hold = 0; hold < 2; hold++) {
        sd_load_opts lo = {.path = "models/toyworld", .hold_bf16 = hold ? SD_HOLD_TEXT | SD_HOLD_UNET | SD_HOLD_VAE : 0};
        sd_model *m = sd_model_load(&lo);
        if (!m) { CHECK_MSG(0, "models/toyworld: %s", sl_error_msg()); return; }
        if (hold) held_bytes = bf16_weights_bytes();
        sd_generate_opts go = {.prompt = "a red star and a blue circle on a green background", .width = 64, .height = 64};
        go.denoise.cfg = 4.0f;
        sl_sampler_opts_default(&go.denoise.sampler);
        go.denoise.sampler.kind = SL_SAMPLER_EULER;
        go.denoise.sampler.steps = 3;
        go.denoise.strength = 1.0f;
        sd_generator g;
        REQUIRE(sd_generator_init(&g, m, &go) == 0);
        npx = (int64_t)3 * go.width * go.height;
        img[hold] = sl_alloc_f32(npx);
        CHECK(sd_generate(&g, 5, img[hold]) == 0);
        sd_generator_free(&g);
        sd_model_free(m);
    }
    CHECK_EQ_INT(bf16_weights_count(), 0);   // sd_model_free released them
    CHECK(held_bytes > 0);
    CHECK_MSG(memcmp(img[0], img[1], sizeof(float) * (size_t)npx) == 0, "held weights change the image");
    fprintf(stderr, "    toyworld, 3 Euler steps, CFG 4: image identical with %.1f MB of weights held in bf16\n",
            held_bytes / 1e6);
    sl_free_aligned(img[0]), sl_free_aligned(img[1]);
    gemm_set_precision(GEMM_FP32);
}
