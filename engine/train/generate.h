// Images from the model being trained (or its base): the class images of prior preservation
// and the validation grids. One txt2img image: torch-exact noise from `seed`, DDIM, classifier-
// free guidance, VAE decode.
#pragma once
#include <stdint.h>

#include "pipeline/sd_model.h"

// img (3, H, W) in [-1, 1]. H, W multiples of the VAE factor. 0, or -1 with sl_error.
int train_generate_image(const sd_model *m, const char *prompt, int H, int W, uint64_t seed, int steps, float cfg,
                         float *img);

// Tops the class folder up to `want` readable images with the class prompt, written as PNGs
// (class-NNNNN.png, atomically) so an interrupted generation resumes where it stopped; image k
// (counting those already there) uses a seed derived from (seed, k). Shows progress.
// 0, or -1 with sl_error.
int train_generate_class_images(const sd_model *m, const char *dir, const char *prompt, int have, int want,
                                int resolution, uint64_t seed, int quiet);
