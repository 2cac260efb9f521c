// What the trainer computes once per image: the VAE posterior moments of the prepared image
// (and of its mirror image when flips are on) and the text encoder's output for its prompt.
// Kept in memory for the run and on disk in CACHE_DIR/<key>.safetensors, where the key is a
// SHA-256 over the model's weights hash, the image's bytes and every setting that changes the
// result (resolution, crop, flips, prompt); a file whose key does not match is never read, so
// changing any of them rebuilds the entry.
#pragma once
#include <stdint.h>

#include "engine/train/dataset.h"
#include "pipeline/sd_model.h"

typedef struct {
    float *moments[2];   // (2·C_lat, h, w) [mean | logvar] of the image, [1] of its mirror (NULL without flips)
    float *context;      // (L, D)
} cached_example;

typedef struct {
    int n, C_lat, h, w, L, D;
    cached_example *ex;  // (n) in the folder's order
    int built, reused;   // entries computed / read from disk
} latent_cache;

// For every image of folder f: prompt = its caption, else default_prompt. image_seed0 keys the
// per-image random crop. 0, or -1 with sl_error.
int latent_cache_build(latent_cache *c, const sd_model *m, const char *model_sha, const image_folder *f,
                       const char *default_prompt, const image_prep *prep, uint64_t image_seed0, int flips,
                       const char *cache_dir);
void latent_cache_free(latent_cache *c);
