#include "engine/train/generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/image.h"
#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "engine/core/tensor.h"
#include "engine/dist/dist.h"
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
    // the names first, on every rank before any rank writes: image k gets the k-th free name
    const int n = want - have, rank = dist_rank(), P = dist_size();
    char (*names)[4200] = sl_calloc((size_t)n, sizeof *names);
    if (!names) return -1;   // (never: sl_calloc dies instead; GCC's UBSan build warns "null destination" without it)
    struct stat st;
    for (int k = 0, name = 0; k < n; k++) {
        do snprintf(names[k], sizeof names[k], "%s/class-%05d.png", dir, name++);
        while (stat(names[k], &st) == 0);   // never overwrite a file already there
    }
    int rc = dist_barrier(), mine = 0;
    for (int k = rank; k < n; k += P) mine++;
    progress bar;
    if (!quiet) progress_start(&bar, "class images", mine);
    float *img = sl_alloc_f32((int64_t)3 * resolution * resolution);
    for (int k = rank; k < n && rc == 0; k += P) {   // this rank's share, round-robin
        uint64_t key = example_stream_key(seed, -1, have + k);
        rc = train_generate_image(m, prompt, resolution, resolution, key & 0xffffffffull, 25, 7.5f, img);
        if (rc == 0) rc = image_save_png(names[k], img, 3, resolution, resolution);
        if (!quiet) progress_step(&bar, NULL);
    }
    if (!quiet) progress_end(&bar);
    sl_free_aligned(img);
    free(names);
    if (rc == 0) rc = dist_barrier();   // every share is on disk before any rank scans the folder
    return rc;
}
