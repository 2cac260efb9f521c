// Images for a list of captions, laid out for the toy world's scorer (`singlora world score`):
// DIR/NNNNN.png (the caption as its `parameters` text) and DIR/NNNNN.txt, image k from seed
// seed + k: torch-exact noise, DDIM, classifier-free guidance, as train_generate_image makes them.
#pragma once
#include <stdint.h>

#include "data/world/caption.h"
#include "pipeline/sd_model.h"

typedef struct {
    int size;            // square images, a multiple of the VAE factor
    int steps;           // DDIM steps
    float cfg;           // guidance scale
    uint64_t seed;       // image k: seed + k
    const char *label;   // the progress bar's label, NULL: none
} caption_sample_opts;

// rgb (n, size, size, 3) receives the images when not NULL. 0, or -1 with sl_error.
int sample_captions(const sd_model *m, const char (*captions)[CAPTION_MAX], int n, const caption_sample_opts *o,
                    const char *dir, uint8_t *rgb);
