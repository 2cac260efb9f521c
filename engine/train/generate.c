#include "engine/train/generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "data/image.h"
#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "engine/core/tensor.h"
#include "engine/train/example_rng.h"
#include "pipeline/denoise.h"
#include "pipeline/prompt.h"

int train_generate_image(const sd_model *m, const char *prompt, int H, int W, uint64_t seed, int steps, float cfg,
                         float *img) {
    const int f = vae_factor(&m->vae->cfg), h = H / f, w = W / f, C = m->unet->cfg.in_channels;
    const int64_t n = (int64_t)C * h * w;
    sd_conditioning cond;
    if (sd_encode_prompts(m, prompt, NULL, cfg != 1.0f, 0, &cond) != 0) return -1;
    sd_denoise_opts o = {.cfg = cfg, .strength = 1.0f};
    sl_sampler_opts_default(&o.sampler);
    o.sampler.steps = steps;
    sl_rng rng;
    sl_rng_seed(&rng, seed);
    float *lat = sl_alloc_f32(n);
    sl_rng_randn(&rng, lat, (size_t)n);
    int rc = sd_denoise(m, cond.cond, cond.uncond, cond.L, lat, NULL, h, w, &o, &rng);
    if (rc == 0) {
        for (int64_t q = 0; q < n; q++) lat[q] /= m->vae->cfg.scaling_factor;
        vae_decode(m->vae, img, lat, 1, h, w);
    }
    sl_free_aligned(lat);
    sd_conditioning_free(&cond);
    return rc;
}

int train_generate_class_images(const sd_model *m, const char *dir, const char *prompt, int have, int want,
                                int resolution, uint64_t seed, int quiet) {
    if (have >= want) return 0;
    progress bar;
    if (!quiet) progress_start(&bar, "class images", want - have);
    float *img = sl_alloc_f32((int64_t)3 * resolution * resolution);
    int rc = 0, name = 0;
    for (int k = have; k < want && rc == 0; k++) {
        char path[4200];
        struct stat st;
        do snprintf(path, sizeof path, "%s/class-%05d.png", dir, name++);
        while (stat(path, &st) == 0);   // never overwrite a file already there
        uint64_t key = example_stream_key(seed, -1, k);
        rc = train_generate_image(m, prompt, resolution, resolution, key & 0xffffffffull, 25, 7.5f, img);
        if (rc == 0) rc = image_save_png(path, img, 3, resolution, resolution);
        if (!quiet) progress_step(&bar, NULL);
    }
    if (!quiet) progress_end(&bar);
    sl_free_aligned(img);
    return rc;
}
