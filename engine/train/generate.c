#include "engine/train/generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "data/image.h"
#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "engine/core/tensor.h"
#include "engine/train/example_rng.h"
#include "pipeline/generate.h"

int train_generate_image(const sd_model *m, const char *prompt, int H, int W, uint64_t seed, int steps, float cfg,
                         float *img) {
    sd_generate_opts o = {.prompt = prompt, .width = W, .height = H, .denoise = {.cfg = cfg, .strength = 1.0f}};
    sl_sampler_opts_default(&o.denoise.sampler);   // DDIM
    o.denoise.sampler.steps = steps;
    sd_generator g;
    if (sd_generator_init(&g, m, &o) != 0) return -1;
    int rc = sd_generate(&g, seed, img);
    sd_generator_free(&g);
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
